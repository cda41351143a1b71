/* SPDX-License-Identifier: MIT
 * Retention (internal to native/flow/): finished runs and everything they
 * left in the store are deleted once they have been over for longer than
 * the retention of their type (ls_flow_opts.retention_ms, or the runner's
 * retention_ms for the type). A pass walks the ended index from the oldest
 * end and deletes in bounded write batches, each holding whole runs, so a
 * crash leaves every run either whole or gone.
 */
#ifndef LS_FLOW_RETENTION_H
#define LS_FLOW_RETENTION_H

#include <stddef.h>
#include <stdint.h>

#include "lodestone/ls_err.h"
#include "lodestone/ls_flow.h"

#define LS_FLOW_RETENTION_MS       (1000LL * 3600 * 24 * 7) /* default: 7 days */
#define LS_FLOW_RETENTION_INTERVAL 60000                    /* a pass a minute */
#define LS_FLOW_RETENTION_FIRST    5000       /* the first pass, this soon after start */
#define LS_FLOW_RETENTION_BATCH    500u       /* runs per write batch */
#define LS_FLOW_RETENTION_BYTES    (4u << 20) /* ... or about this many key bytes */

/* What one pass did. */
typedef struct {
    uint64_t deleted;   /* runs deleted */
    uint64_t batches;   /* store writes it made */
    uint64_t max_batch; /* most runs one write deleted */
    uint64_t kept;      /* ended runs looked at and kept (their type keeps them longer) */
    uint64_t orphans;   /* inbox entries of runs that no longer exist, deleted */
} flow_retention_result;

/* Fills in the retention defaults of f->o (called by ls_flow_open) and
 * prepares the pass's lock. */
void flow_retention_init(ls_flow_t *f);
/* Frees what flow_retention_init made (ls_flow_close). */
void flow_retention_free(ls_flow_t *f);

/* Starts the background thread (ls_flow_run): a pass soon after start,
 * then every retention_interval_ms. */
ls_rc flow_retention_start(ls_flow_t *f, ls_err *err);
/* Joins it (ls_flow_stop, after f->stopping is set and ret_cv signalled;
 * called without mu). */
void flow_retention_join(ls_flow_t *f);

/* Runs one pass now on the calling thread (one pass at a time: a second
 * caller waits). res may be NULL. Stops early, with what it did so far,
 * when the engine is stopping. Errors of the store come back; the runs of
 * batches written before the error are gone, the others whole. */
ls_rc flow_retention_pass(ls_flow_t *f, flow_retention_result *res, ls_err *err);

#endif
