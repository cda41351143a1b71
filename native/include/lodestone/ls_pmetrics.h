/* SPDX-License-Identifier: MIT
 * Policy decision metrics shared by the processes of one lighttpd: counters
 * of decisions by (policy, decision, reason) and a histogram of decision
 * times per policy, in a fixed-size table in a shared memory file, updated
 * with lock-free atomic adds, and rendered as Prometheus text.
 *
 * Conventions: see ls_err.h. A handle may be used by one thread at a time;
 * any number of processes may open the same file. Label values are
 * truncated to LS_PMETRICS_POLICY_MAX / LS_PMETRICS_REASON_MAX bytes. When
 * the table is full, new series are not counted (counted as dropped).
 */
#ifndef LODESTONE_PMETRICS_H
#define LODESTONE_PMETRICS_H

#include <stddef.h>
#include <stdint.h>

#include "ls_buf.h"
#include "ls_err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LS_PMETRICS_LAYOUT     1
#define LS_PMETRICS_SERIES     1024 /* (policy, decision, reason) series per table */
#define LS_PMETRICS_POLICIES   256  /* histograms (policies) per table */
#define LS_PMETRICS_POLICY_MAX 63   /* bytes of a policy name kept */
#define LS_PMETRICS_REASON_MAX 47   /* bytes of a reason kept */
#define LS_PMETRICS_BUCKETS    12   /* finite histogram bounds (then +Inf) */

typedef struct ls_pmetrics ls_pmetrics_t;
typedef struct ls_pmetrics_counter ls_pmetrics_counter; /* one series' slot */
typedef struct ls_pmetrics_hist ls_pmetrics_hist;       /* one policy's histogram */

/* Opens the table at path, creating it (mode 0600) when missing; another
 * process creating it at the same time is fine (the file appears whole).
 * LS_EFORMAT when the file is not a table of this layout; LS_EPERM when it
 * is a symbolic link, belongs to another user (not root) or is writable by
 * others. Caller frees with ls_pmetrics_close. */
LS_API ls_rc ls_pmetrics_open(ls_pmetrics_t **out, const char *path, ls_err *err);

/* Unmaps the table. m may be NULL. The file stays (it is shared). */
LS_API void ls_pmetrics_close(ls_pmetrics_t *m);

/* The slot of series (policy, allow ? "allow" : "deny", reason), claimed
 * when new. NULL when the table is full (the decision is then counted in
 * the dropped counter by ls_pmetrics_counter_add(m, NULL)). The pointer is
 * borrowed until ls_pmetrics_close: callers cache it. */
LS_API ls_pmetrics_counter *ls_pmetrics_counter_get(ls_pmetrics_t *m, const char *policy, int allow,
                                                    const char *reason);

/* Adds one to a series; c NULL adds one to the dropped counter. */
LS_API void ls_pmetrics_counter_add(ls_pmetrics_t *m, ls_pmetrics_counter *c);

/* The histogram of policy, claimed when new; NULL when full. Borrowed
 * until ls_pmetrics_close. */
LS_API ls_pmetrics_hist *ls_pmetrics_hist_get(ls_pmetrics_t *m, const char *policy);

/* Records one decision time (nanoseconds; negative counts as 0). h NULL
 * does nothing. */
LS_API void ls_pmetrics_hist_observe(ls_pmetrics_hist *h, int64_t ns);

/* The upper bound of bucket i (0 <= i < LS_PMETRICS_BUCKETS) in ns. */
LS_API int64_t ls_pmetrics_bucket_ns(size_t i);

/* Both of the above by name, looking the slots up each time (tools and
 * tests; the policy engine caches the slots). */
LS_API void ls_pmetrics_record(ls_pmetrics_t *m, const char *policy, int allow, const char *reason,
                               int64_t ns);

/* Appends the table in Prometheus text format (version 0.0.4) to out:
 * lodestone_policy_decisions_total{policy,decision,reason},
 * lodestone_policy_decision_seconds{policy} (histogram) and
 * lodestone_policy_metrics_dropped_total, series sorted by their labels.
 * LS_ENOMEM; LS_EIO when the table was cut short (see below). */
LS_API ls_rc ls_pmetrics_render(ls_pmetrics_t *m, ls_buf *out, ls_err *err);

/* A file cut short under its mapping (truncate(1) while in use) does not
 * end the process: the access that finds it marks the table damaged, and
 * from then on nothing is counted (the calls above do nothing, the _get
 * calls return NULL, slots got before stay safe to pass) and rendering
 * fails with LS_EIO. Says so once: the first call after that returns
 * LS_EIO with why (for a log); every other call returns LS_OK and leaves
 * err untouched. m may be NULL. An atomic load: cheap enough for every
 * decision. */
LS_API ls_rc ls_pmetrics_take_fault(ls_pmetrics_t *m, ls_err *err);

#ifdef __cplusplus
}
#endif
#endif
