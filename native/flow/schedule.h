/* SPDX-License-Identifier: MIT
 * Schedules of workflow runs (internal to native/flow/). schedule_plan.c
 * holds the pure parts (a definition's validation, which fire is due and
 * what was missed, the overlap decision, fire ids): no clock, no store, no
 * locks. schedule.c holds the table of schedules, their records in the
 * store and the scheduler thread that fires them through ls_flow_start.
 *
 * Record: LS_NS_SCHEDULE str(name) -> sealed JSON (associated data: the
 * key), the definition plus its state: anchor_ms (the last fire time dealt
 * with: fired, skipped, buffered or passed over), last_fire_ms, last_run,
 * last_outcome, buffered_ms, counters, source, created_ms, updated_ms.
 * After a restart the fire times in (anchor_ms, now] are the ones missed
 * while the daemon was down: `catchup` decides what happens to them.
 */
#ifndef LS_FLOW_SCHEDULE_H
#define LS_FLOW_SCHEDULE_H

#include <stddef.h>
#include <stdint.h>

#include "cron.h"
#include "lodestone/ls_flow.h"

struct json_t;

enum { FLOW_OVERLAP_SKIP = 0, FLOW_OVERLAP_BUFFER_ONE, FLOW_OVERLAP_ALLOW };
enum { FLOW_CATCHUP_ONE = 0, FLOW_CATCHUP_NONE };

/* Longest schedule name: a fire id (name@YYYYMMDDTHHMMSSZ) must stay a
 * valid run id. */
#define FLOW_SCHED_NAMEMAX 100
/* Longest input of a schedule, as compact JSON. */
#define FLOW_SCHED_INPUTMAX ((size_t)64 * 1024)
/* "@YYYYMMDDTHHMMSSZ" */
#define FLOW_SCHED_IDSUFFIX 17

/* A schedule's definition. Strings are NUL-terminated, owned (ls_free). */
typedef struct {
    char *name;
    char *workflow;
    char *cron_text;
    ls_cron cron;
    char *timezone; /* the zone of the cron times (an IANA name); NULL: UTC */
    int overlap;    /* FLOW_OVERLAP_* */
    int catchup;    /* FLOW_CATCHUP_* */
    char *input;    /* compact JSON, or NULL (the runs get null) */
    size_t input_len;
} flow_sched_def;

/* Reads and checks a definition object {"name", "workflow", "cron",
 * "timezone"?, "overlap"?, "catchup"?, "input"?}. Unknown fields, a bad
 * name, a cron text the parser refuses or that never fires, a timezone
 * ICU does not know are LS_EINVAL with a message naming the field. extra
 * lists further field names to accept and ignore (NULL-terminated, may be
 * NULL): a stored record carries its state beside the definition, and
 * with extra a name of "." or ".." (refused in new definitions since, but
 * stored before) still reads. On failure *d is left empty. */
ls_rc flow_sched_def_parse(const struct json_t *obj, const char *const *extra, flow_sched_def *d,
                           ls_err *err);
void flow_sched_def_free(flow_sched_def *d);
/* 1 when a and b define the same schedule. */
int flow_sched_def_equal(const flow_sched_def *a, const flow_sched_def *b);
/* Adds the definition's fields to obj (name, workflow, cron, timezone,
 * overlap, catchup, input when there is one). */
ls_rc flow_sched_def_to_json(const flow_sched_def *d, struct json_t *obj, ls_err *err);

const char *flow_overlap_name(int overlap);
const char *flow_catchup_name(int catchup);

/* What a look at a schedule at time now finds. */
typedef struct {
    int64_t fire;    /* the fire time to act on now; 0 when none is due */
    uint64_t missed; /* due fire times passed over without a run */
    int64_t anchor;  /* the anchor afterwards: the last fire time dealt with */
    int64_t next;    /* the first fire time after that anchor; 0 when none */
} flow_sched_plan;

/* The fire times due in (anchor, now]. Normally the latest of them fires
 * and the others (a scheduler that woke late) are passed over. When
 * after_downtime is set (the first look after the engine opened), they
 * were missed while the daemon was down: catchup ONE fires the latest,
 * NONE passes over all of them. */
void flow_sched_plan_at(const ls_cron *c, const char *zone, int64_t anchor, int64_t now,
                        int after_downtime, int catchup, flow_sched_plan *p);

/* What to do with a due fire, given whether the previous fire's run is
 * still running and whether a buffered fire already waits. */
typedef enum { FLOW_SCHED_START = 0, FLOW_SCHED_SKIP, FLOW_SCHED_BUFFER } flow_sched_action;
flow_sched_action flow_sched_decide(int overlap, int prev_running, int buffered_waiting);

/* The fire's run id, "<name>@YYYYMMDDTHHMMSSZ" (UTC, whole seconds), into
 * out (at least FLOW_SCHED_NAMEMAX + FLOW_SCHED_IDSUFFIX + 1 bytes).
 * Returns its length. */
size_t flow_sched_fire_id(const char *name, int64_t fire_ms, char *out, size_t cap);

/* ---- schedule.c: the engine's hooks (engine.c calls these) ---- */

/* Loads every stored schedule (nothing fires yet). */
ls_rc flow_sched_open(ls_flow_t *f, ls_err *err);
/* Starts the scheduler thread (from ls_flow_run). */
ls_rc flow_sched_start(ls_flow_t *f, ls_err *err);
/* Stops and joins it (from ls_flow_stop, before the workers stop). */
void flow_sched_stop(ls_flow_t *f);
/* Frees the table (from ls_flow_close). */
void flow_sched_free(ls_flow_t *f);

/* Looks at every schedule at the engine clock's now and acts on what is
 * due; returns the earliest time something may be due next (INT64_MAX:
 * nothing). The scheduler thread calls it; tests call it to step a
 * schedule deterministically (calls are serialised). */
int64_t flow_sched_tick(ls_flow_t *f);

#endif
