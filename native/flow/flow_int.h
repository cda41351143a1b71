/* SPDX-License-Identifier: MIT
 * Internals of the workflow engine (ls_flow.h), shared by engine.c (life
 * cycle, threads, queue, timers, watches), act.c (the activation API),
 * query.c (JSON views of runs) and runtab.c (the table of unfinished runs).
 *
 * Keys written by the engine (besides history.h's):
 *   run record     LS_NS_RUN     id16                         -> ls_run_record
 *   name index     LS_NS_INDEX   'n' name bytes               -> id16
 *                  (only for runs started with a name: a run named by its
 *                  own id is found through its record)
 *   status index   LS_NS_INDEX   's' status(u8) id16          -> empty
 *   type index     LS_NS_INDEX   't' str(type) id16           -> empty
 *   ended index    LS_NS_INDEX   'e' i64(ended_ms) id16       -> empty
 *                  (runs that have ended, by when: retention walks it)
 *   timer          LS_NS_TIMER   i64(due_ms) id16 u64(seq)    -> empty
 *   inbox          LS_NS_SIGNAL  id16 id16(arrival)           -> event (seq 1
 *                  placeholder): SignalReceived or ChildCompleted (payload
 *                  sealed for this entry: flow_seal_event), ChildFailed,
 *                  Resumed, CancelRequested or WorkflowTerminated (name:
 *                  who, error: reason; sealed empty since version 3). The
 *                  run's next activation moves them into history
 *                  (re-sealed) in its next write.
 *   source         LS_NS_SOURCE  version bytes                -> workflow source
 *                  (written with the start of the first run of a version)
 *   custom status  LS_NS_RUNINFO id16 'c'                     -> sealed JSON
 *                  (flow_seal_status_with)
 *   concurrency    LS_NS_RUNINFO id16 'k'                     -> u8 held (1: waits
 *                  for a slot), then the key (runs of types with limits)
 *   parent         LS_NS_RUNINFO id16 'p'                     -> parent id16,
 *                  u8 flags (1: detached), the parent's name (child runs)
 *   branch         LS_NS_RUNINFO id16 'b'                     -> u64 fork, then
 *                  the branch's scope (branch runs of ctx:all: their history
 *                  begins with a copy of the parent's first fork events)
 * A timer key exists while a run waits on a TimerStarted or a retryable
 * StepFailed (seq is that event's); it lets a restart rebuild the timer
 * queue without replaying sleeping runs.
 *
 * Writes: every transition's batch goes through the committer (engine.c),
 * which merges what is queued into one synced store write. An activation
 * has at most one write in flight; with a runner that parks, it comes back
 * through its worker's queue (rq) once written, and only its worker ever
 * touches it, so activations need no lock of their own.
 *
 * Locking: f->mu guards the run table, the ready queue, the workers' queues
 * and idle flags, the timer queue, the watch list, the counters and each
 * run's state fields; f->cmu guards the commit queue. A run's history is
 * written only by the worker that holds it (state R_BUSY), or by
 * ls_flow_start before the run is visible, or (a branch run) in its
 * parent's write before flow_branch_register makes it known; name stripes
 * serialise starts under one name. Lock order: stripe, then cmu, then mu, then wmu (the
 * committer hands written activations back under cmu and mu). The
 * concurrency buckets are under mu, and admitting a held run asks the
 * runner for its type's limits (runner.type_limits) while mu is held: the
 * runner's own lock is a leaf that never calls back into the engine.
 *
 * Schedules (schedule.c): their table's lock (sched->mu) comes before all
 * of these: the scheduler starts runs, writes records and watches runs
 * while it holds it. Its wake-up lock (sched->kmu) is a leaf, the only
 * lock a watch callback takes: schedules, stripe, cmu, mu, wmu, kmu.
 * Retention (retention.c): its thread waits on ret_cv under mu between
 * passes; a pass holds ret_mu (one pass at a time, taken before any other
 * lock), reads without engine locks, and takes every name stripe, in index
 * order, only around each of its store writes (so that a start under a
 * name finds a run being deleted either whole or gone), then mu for the
 * counters. It writes to the store directly, unsynced (retention.c says
 * why), never through the committer, and never holds mu during I/O.
 */
#ifndef LS_FLOW_INT_H
#define LS_FLOW_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "history.h"
#include "lodestone/ls_flow.h"
#include "lodestone/ls_id.h"
#include "replay.h"
#include "results.h"
#include "timerq.h"

#define LS_FLOW_NAMEMAX 200
#define LS_FLOW_STRIPES 64

enum { R_IDLE = 0, R_QUEUED, R_BUSY };

typedef struct flow_run {
    ls_id id;
    char *name;
    char *type;
    ls_run_status status;
    int64_t created_ms;
    int64_t updated_ms;
    uint64_t last_seq;
    uint32_t steps_completed;
    uint32_t attempts_failed;
    int state;                  /* R_* */
    int again;                  /* woken while busy: queue again afterwards */
    struct flow_watch *watches; /* this run's entries of the watch list (rnext) */
    unsigned char *fresh;       /* a new run's history (its WorkflowStarted value), */
    size_t fresh_len;           /* handed to its first activation: no store read */
    int has_timer;              /* a timer of this run is in the timer queue */
    uint64_t timer_seq;         /* ... under this seq */
    int64_t wait_due;           /* suspended: when it wakes (0: no timer) */
    int waiting;                /* suspended on a wait (below), until woken */
    char wait_kind;             /* 's' sleep, 'r' retry, 'g' signal */
    char *wait_name;            /* step name for a retry, signal name, "" for a sleep */
    unsigned inbox;             /* inbox entries (signals, cancel, terminate) maybe pending */
    int resuming;               /* a resume was accepted and no activation has ended with it */
    atomic_int terminating;     /* a terminate was requested: interrupt its code */
    char *output;               /* ending completed: its output as the runner gave it */
    size_t output_len;          /* (for the results cache; NULL when too large) */
    char *custom;               /* custom status last written (JSON), or NULL */
    size_t custom_len;
    char *version;  /* the workflow source it is pinned to ("" when none) */
    char *ckey;     /* concurrency key (its type has limits), else NULL */
    int held;       /* waits for a concurrency slot: never activated meanwhile */
    int unhold;     /* admitted: its next write clears the held mark */
    int has_parent; /* a child workflow: its end goes to its parent's inbox */
    ls_id parent;
    unsigned depth;         /* runs above it (0: started by no run), once depth_known */
    int depth_known;        /* (flow_run_depth: known at its start, else read once) */
    char *branch;           /* a branch run: the ctx:all branch it runs ("[1.2]"), else NULL */
    uint64_t fork;          /* ... and the last of its events copied from its parent */
    struct flow_run *hnext; /* run table chain */
    struct flow_run *qnext; /* ready queue */
} flow_run;

typedef struct {
    flow_run **b;
    size_t nb;
    size_t n;
} flow_runtab;

/* Concurrency: the runs of one (type, key) admitted now, and those held,
 * oldest first (chained through qnext: a held run is in no ready queue). */
typedef struct flow_bucket {
    char *type;
    char *key; /* "\x01" for the per-type total */
    unsigned admitted;
    flow_run *held_head, *held_tail;
    struct flow_bucket *next;
} flow_bucket;

/* Runs by type since open (under mu). */
typedef struct flow_tstat {
    char *type;
    uint64_t n[LS_RUN_STATUS_LAST + 1]; /* [RUNNING]: started; else ended with that status */
    struct flow_tstat *next;
} flow_tstat;

/* A watch is on the engine's list (next/prev: found by id when it is
 * dropped) and on its run's (rnext: fired when the run ends). */
typedef struct flow_watch {
    uint64_t id;
    ls_id run;
    void (*fn)(void *ud);
    void *ud;
    struct flow_watch *next, *prev, *rnext;
} flow_watch;

/* A write handed to the committer: one transition's batch. The committer
 * merges every queued batch into one store write (group commit: one fsync
 * for all of them), then wakes each writer: a waiting thread (cv) or the
 * worker that owns the activation (act), through its queue. */
typedef struct flow_commit {
    ls_store_batch_t *b;
    int sync;
    ls_rc rc;
    ls_err err;
    int done;           /* sync waiters: set under cmu */
    pthread_cond_t *cv; /* a waiting thread, or NULL */
    ls_flow_act *act;   /* an activation to hand back to its worker */
    /* Or called once the write has landed (rc, err set), under cmu, and
     * may free c: a start that nobody waits for. */
    void (*written)(struct flow_commit *c);
    struct flow_commit *next;
} flow_commit;

/* A worker thread. With a runner that can park (ls_flow_runner.resume),
 * it holds up to LS_FLOW_INFLIGHT activations at once: while one waits
 * for its write, the worker runs others. */
#define LS_FLOW_INFLIGHT 64

typedef struct flow_worker {
    ls_flow_t *f;
    unsigned index;
    pthread_t th;
    pthread_cond_t cv;
    void *rw;                       /* the runner's state for this worker */
    ls_flow_act *rq_head, *rq_tail; /* activations whose write is done */
    unsigned inflight;              /* activations begun, not finalised */
    int idle;                       /* waiting on cv */
    int polling;                    /* waiting in runner.poll: wake it with runner.wake */
    /* Its thread's alone (no lock): */
    unsigned io_parked; /* activations parked on the runner's I/O */
    unsigned io_skips;  /* items run since the last look at that I/O */
} flow_worker;

#define LS_FLOW_MAX_PAYLOAD     (1u << 20)
#define LS_FLOW_MAX_EVENTS      50000u
#define LS_FLOW_MAX_STEPS       10000u
#define LS_FLOW_MAX_DEPTH       32u
#define LS_FLOW_MAX_DEPTH_LIMIT 1000u /* what max_depth is cut to (lodestoned's range) */

struct ls_flow {
    ls_flow_opts o; /* the limits filled in with their defaults */
    const ls_clock *clock;
    pthread_mutex_t mu;
    pthread_cond_t work_cv;
    pthread_cond_t timer_cv;
    pthread_cond_t idle_cv;
    pthread_mutex_t wmu; /* held while watch callbacks run */
    pthread_mutex_t stripe[LS_FLOW_STRIPES];
    /* Names of runs whose start is being written (a start of the same
     * name waits for it to land, then finds the run). */
    pthread_mutex_t pmu;
    pthread_cond_t pcv;
    struct start_op *pending;
    flow_runtab runs;
    flow_bucket *buckets; /* concurrency (under mu) */
    flow_tstat *tstats;   /* runs by type (under mu) */
    char **sources;       /* versions whose source is known to be in the store (under mu) */
    size_t nsources;
    flow_run *q_head, *q_tail;
    size_t queued;
    ls_flow_timerq_t *tq;
    flow_watch *watches;
    uint64_t next_watch;
    flow_worker *workers;
    unsigned nworkers;
    unsigned inflight_cap; /* per worker: 1 unless the runner can park */
    /* the committer */
    pthread_mutex_t cmu;
    pthread_cond_t ccv;
    flow_commit *c_head, *c_tail;
    pthread_t committer;
    int c_running;
    int c_busy; /* a group is being written */
    int c_stop;
    unsigned workers_started;
    unsigned workers_exited;
    pthread_t timer_thread;
    int timer_started;
    int running;
    int stopping;
    int stopped;
    atomic_int interrupt;
    unsigned busy;
    ls_flow_stats st;
    struct flow_scheds *sched; /* schedules (schedule.c) */
    flow_results *results;     /* answers of runs that completed while watched */
    ls_vault_mask_t *mask;     /* secret values out of texts kept in clear (flow_mask) */
    /* retention (retention.c) */
    pthread_t ret_thread;
    int ret_started;
    pthread_cond_t ret_cv;  /* wakes the retention thread (with mu) */
    pthread_mutex_t ret_mu; /* one pass at a time */
};

/* A parallel branch's replay state (ctx:all); scopes[0] is the root's. The
 * current scope's state lives in the activation's own fields (rp,
 * cancel_delivered, new_commands) and is swapped in and out. */
typedef struct {
    char *scope; /* "[1.2]": the prefix of its command names; "" at the root */
    size_t len;
    ls_replay rp;
    int cancel_delivered;
    uint64_t new_commands;
} flow_scope;

struct ls_flow_act {
    ls_flow_t *f;
    flow_run *r;
    flow_worker *w;
    struct ls_flow_act *qnext; /* the worker's queue */
    /* the write in flight (at most one) */
    flow_commit c;
    int commit_pending; /* handed to the committer, not yet applied */
    int parked;         /* the runner must be resumed after it */
    int ending;         /* the write ends the run */
    unsigned drained;   /* inbox entries moved into the write in progress */
    int resume_taken;   /* ... a Resumed among them */
    unsigned forks;     /* branch runs started since the last flush */
    flow_run **born;    /* branch runs in the write in progress, known once it lands */
    size_t nborn, born_cap;
    ls_buf custom_new; /* custom status queued in the write in progress */
    int custom_queued;
    int cancel_delivered; /* the code has been handed the cancellation (this scope) */
    int cancel_seen;      /* ... in any scope: the run ends cancelled */
    int64_t step_t0;      /* when the step attempt being run began (mono ns) */
    flow_scope *scopes;   /* NULL until the code runs branches */
    size_t nscopes, cur;  /* cur: index of the current scope */
    ls_buf scname;        /* a command's name with its scope prefix */
    int terminate;        /* the inbox held a terminate request */
    unsigned started;     /* the version of the run's first event, as loaded */
    ls_buf term_by, term_reason;
    ls_buf newkids; /* children started by this activation: flag ('a'|'d'), name, NUL */
    ls_buf kill;    /* ids of children asked to cancel by the end of this run */
    ls_run_status pend_status;
    uint64_t pend_last_seq;
    int64_t pend_now;
    /* history as loaded: values copied into arena, events point into it */
    ls_buf arena;
    size_t *voff;
    size_t *vlen;
    ls_event *ev;
    size_t nev;
    ls_replay rp;
    int rp_ready;
    int replaying;
    /* the write in progress */
    ls_store_batch_t *b;
    ls_buf k, v, sealed, tmp;
    ls_buf cut;            /* an error text bound to FLOW_ERROR_MAX (bound_text) */
    ls_buf masked;         /* a text of the code's masked for the log (log lines, quotes) */
    uint64_t new_events;   /* events queued in b */
    uint64_t new_commands; /* commands issued past the end of history */
    int unsynced;          /* side effects written without sync since the last sync */
    /* outcome */
    int ended;
    int waiting;
    int abandoned;
    int broken;   /* a write failed: the activation must end */
    ls_rc sticky; /* non-determinism or broken: every call fails */
    ls_err sticky_err;
    int64_t wait_due;
    uint64_t wait_seq;
    char wait_kind;
    char io_wait; /* parked on the runner's I/O: its poll hands it back */
    char *wait_name;
    char idbuf[LS_ID_TEXTLEN + 1];
};

/* ---- runtab.c ---- */
ls_rc flow_runtab_init(flow_runtab *t, ls_err *err);
void flow_runtab_free(flow_runtab *t); /* frees every run */
flow_run *flow_runtab_find(const flow_runtab *t, const ls_id *id);
ls_rc flow_runtab_add(flow_runtab *t, flow_run *r, ls_err *err);
void flow_runtab_remove(flow_runtab *t, flow_run *r);
flow_run *flow_run_new(const ls_id *id, const char *name, size_t nlen, const char *type,
                       size_t tlen);
void flow_run_free(flow_run *r);

/* ---- engine.c ---- */
/* Hands c (batch, sync set) to the committer and waits for the write;
 * writes directly when the engine's threads are not running. */
ls_rc flow_commit_wait(ls_flow_t *f, flow_commit *c, ls_err *err);
/* Hands c (act set) to the committer; the act comes back through its
 * worker's queue once written. */
void flow_commit_submit(ls_flow_t *f, flow_commit *c);
/* A worker's activations (act.c). */
void flow_act_start(flow_worker *w, flow_run *r);
void flow_act_item(flow_worker *w, ls_flow_act *a);
/* An activation that was parked on the runner's I/O goes on (act.c). */
void flow_act_io_item(flow_worker *w, ls_flow_act *a);
/* An activation is over: release it (engine.c). */
void flow_worker_done(flow_worker *w);
void flow_log(ls_flow_t *f, int level, const char *run, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Room for the longest line flow_log_line writes: LS_FLOW_LOG_LINEMAX
 * bytes that are all NUL (3 bytes each as U+FFFD), the mark, the NUL. */
#define FLOW_LOG_LINECAP ((size_t)3 * LS_FLOW_LOG_LINEMAX + 64)
/* Writes the line a run's log gets for msg (len bytes, from the run's
 * code) into out (cap >= FLOW_LOG_LINECAP bytes, NUL-terminated): NULs as
 * U+FFFD, and past LS_FLOW_LOG_LINEMAX bytes cut where the character at
 * that byte starts, followed by " [cut: N bytes dropped]". Returns its
 * length (engine.c). */
size_t flow_log_line(const char *msg, size_t len, char *out, size_t cap);
/* Appends text (from the run's code) to out with the values of the
 * store's secrets masked (ls_vault_mask_text: at most limit bytes, cut
 * where a character starts and never inside a mark; *used receives the
 * bytes of text it stands for). LS_ENOMEM only (engine.c). Every text of
 * the code that is kept or shown in clear goes through it: a step's or
 * the run's error and traceback, log lines, lodestoned's lines that quote
 * them. */
ls_rc flow_mask(ls_flow_t *f, const char *text, size_t len, size_t limit, ls_buf *out,
                size_t *used);
/* flow_log_line for a line of the run's code, masked first (scratch
 * holds the masked text): a cut line says how many bytes of msg were
 * dropped. When msg cannot be masked (out of memory) the line says so
 * instead of holding it (engine.c). */
size_t flow_log_text(ls_flow_t *f, const char *msg, size_t len, ls_buf *scratch, char *out,
                     size_t cap);
int64_t flow_now(const ls_flow_t *f);
/* ts = the realtime clock in ms (for pthread_cond_timedwait). */
void flow_deadline_in(struct timespec *ts, int64_t ms);
/* Counts a run of type (status RUNNING: started). Caller holds mu. */
void flow_count_type(ls_flow_t *f, const char *type, ls_run_status status);
/* Records a step attempt's duration. Caller holds mu. */
void flow_count_step(ls_flow_t *f, int64_t ns);
/* A run ended (record written): wake watchers, tell its parent, drop it
 * from memory. Takes mu. */
void flow_run_ended(ls_flow_t *f, flow_run *r);
/* An inbox entry for run id has been written: its next activation takes it. */
void flow_inbox_bump(ls_flow_t *f, const ls_id *id);
/* The parent a child run is started under. A branch run (branch not
 * NULL, flow_branch_put) runs one branch of a ctx:all of its parent: its
 * history starts as a copy of the parent's first fork events (durable),
 * it is pinned to the parent's version and exempt from concurrency
 * limits. */
typedef struct {
    const ls_id *id;
    const char *name;
    int detached;
    const char *branch; /* "[1.2]": the branch's scope */
    size_t blen;
    uint64_t fork;
    const char *version;
    unsigned depth; /* the parent's (flow_run_depth): its child is one deeper */
} flow_parent;
/* ls_flow_start, for a child run when parent is not NULL (the parent link
 * is written with the start). A child's name that exists as a run that is
 * not this parent's child is LS_ESTATE. */
ls_rc flow_start(ls_flow_t *f, const char *type, size_t tlen, const char *name, size_t nlen,
                 const char *input, size_t ilen, const flow_parent *parent, ls_buf *run,
                 int *created, ls_err *err);
/* A branch run `name` of parent (parent->branch set), of type: its keys go
 * into b, the parent's write in progress, and *out is the run, to hand to
 * flow_branch_register once b is written (or to free when it is not).
 * *out is NULL when the run exists already (started before). On failure
 * *unopened is 1 when the cause is the copy of the parent's history not
 * reading or opening (a wrong key file, a damaged record: no fault of the
 * parent's code), 0 for any other (a bad name, out of memory). */
ls_rc flow_branch_put(ls_flow_t *f, ls_store_batch_t *b, const flow_parent *parent,
                      const char *type, const char *name, size_t nlen, flow_run **out,
                      int *unopened, ls_err *err);
/* Makes a branch run from flow_branch_put known and ready to run. */
void flow_branch_register(ls_flow_t *f, flow_run *r);

/* ---- keys and payloads (query.c) ---- */
ls_rc flow_key_name(ls_buf *k, const char *name, size_t nlen, ls_err *err);
ls_rc flow_key_status(ls_buf *k, ls_run_status s, const ls_id *id, ls_err *err);
ls_rc flow_key_type(ls_buf *k, const char *type, size_t tlen, const ls_id *id, ls_err *err);
ls_rc flow_key_timer(ls_buf *k, int64_t due, const ls_id *id, uint64_t seq, ls_err *err);
/* The inbox prefix of a run (arrival NULL) or one entry's key. */
ls_rc flow_key_inbox(ls_buf *k, const ls_id *id, const ls_id *arrival, ls_err *err);
ls_rc flow_key_custom(ls_buf *k, const ls_id *id, ls_err *err);
/* The ended index: runs by the time they ended (retention walks it). */
ls_rc flow_key_ended(ls_buf *k, int64_t ended_ms, const ls_id *id, ls_err *err);
ls_rc flow_key_parent(ls_buf *k, const ls_id *id, ls_err *err);
/* A child run's parent link (flow_key_parent): the parent's id, a flags
 * byte, the child's depth (4 bytes, big-endian) when the flags say so, and
 * the parent's name. Links written before depths were kept have no depth
 * (and are read as they are). */
#define FLOW_LINK_DETACHED 0x01u /* started with detached = true */
#define FLOW_LINK_DEPTH    0x02u /* the depth follows the flags */
typedef struct {
    ls_id parent;
    unsigned flags;
    int has_depth;
    unsigned depth;   /* the run's own (its parent's + 1), when has_depth */
    const char *name; /* the parent's name, borrowed from the value read */
    size_t nlen;
} flow_link;
/* Puts a link into v (replacing what it held). depth < 0: none, the form
 * older lodestoned wrote. */
ls_rc flow_link_encode(ls_buf *v, const ls_id *parent, unsigned flags, int64_t depth,
                       const char *name, size_t nlen, ls_err *err);
/* Reads a link's value; LS_ECORRUPT saying what is wrong with it. */
ls_rc flow_link_decode(const void *val, size_t len, flow_link *l, ls_err *err);
ls_rc flow_key_ckey(ls_buf *k, const ls_id *id, ls_err *err);
ls_rc flow_key_branch(ls_buf *k, const ls_id *id, ls_err *err);
#define FLOW_SEQ_INBOX  0          /* seq in the slot form of an inbox entry's payload */
#define FLOW_SEQ_CUSTOM UINT64_MAX /* ... and of the custom status (query.c) */
/* Whether events of type t hold a payload whatever they carry ("null"
 * too): a run's input, a step's result, a side effect's value, a signal,
 * the workflow's output, a child's start and its result. lodestoned seals
 * one for each (put_event); a version 2 event of these types without one
 * is refused at opening (flow_open_event), as are a signal and a child's
 * result without one of any version. */
int flow_event_holds_payload(ls_event_type t);
/* Whether events of type t hold no payload at all (every kind but those
 * above and a run's failure, whose traceback is optional): since version
 * 3 they are sealed all the same, with an empty plaintext, and one whose
 * sealed plaintext is not empty is refused (query.c). */
int flow_event_holds_none(ls_event_type t);
/* Seals pt (len bytes; NULL with 0 for an event that holds none) as the
 * payload of ev, an event of run id's history (arrival NULL) or its inbox
 * entry of that arrival id, into out: bound to the run, the place, every
 * other field of ev, which must be final, and whether the run's first
 * event is of version 3 (started: that event's version, 3 when ev is the
 * first event itself; flow_first_version reads it) (query.c says how).
 * Every event is sealed, whatever its kind. Sets ev->version to
 * LS_EVENT_VERSION and points ev->payload at out (borrowed until out
 * changes). */
ls_rc flow_seal_event(ls_flow_t *f, const ls_id *id, const ls_id *arrival, unsigned started,
                      ls_event *ev, const void *pt, size_t len, ls_buf *out, ls_err *err);
/* Opens the payload of ev (as decoded: its version says how it was
 * sealed), of run id's history or its inbox entry arrival, whose first
 * event (as the reader found it) is of version started, into out
 * ("null" when there is none, or when ev's kind holds none). Fails with
 * the vault's code, "payload of event N: ..." ("payload of a pending
 * signal or child result (inbox entry ARRIVAL, TYPE "NAME"): ..." for an
 * inbox entry, "seal of a pending request (...)" for a cancel, resume or
 * terminate request; the name cut and escaped); a key the keyring does
 * not hold is LS_EAUTH, never LS_ENOTFOUND. A field of ev changed since
 * it was sealed is LS_EAUTH, and so is an event of version 3 without a
 * sealed payload, or one of a kind that holds none whose sealed payload
 * is not empty: so for version 3 it verifies an event of any kind. */
ls_rc flow_open_event(ls_flow_t *f, const ls_id *id, const ls_id *arrival, unsigned started,
                      const ls_event *ev, ls_buf *out, ls_err *err);
/* The same with a vault and no engine (keyload.c before one is open,
 * retire.c offline). */
ls_rc flow_seal_event_with(ls_vault_t *v, const ls_id *id, const ls_id *arrival, unsigned started,
                           ls_event *ev, const void *pt, size_t len, ls_buf *out, ls_err *err);
ls_rc flow_open_event_with(ls_vault_t *v, const ls_id *id, const ls_id *arrival, unsigned started,
                           const ls_event *ev, ls_buf *out, ls_err *err);
/* flow_seal_event_with as event version 3 or 2 (both of the record form;
 * LS_EINVAL for another): a key retirement keeps a run's first event of
 * version 2 or 1 at version 2 (retire.c says why). */
ls_rc flow_seal_event_as(ls_vault_t *v, unsigned version, const ls_id *id, const ls_id *arrival,
                         unsigned started, ls_event *ev, const void *pt, size_t len, ls_buf *out,
                         ls_err *err);
/* Opens ev as flow_open_event_with does, into out the plaintext to seal
 * it again with (a branch run's copy, a key retirement): its payload as
 * sealed, empty for a kind that holds none, and "null" for a payload a
 * version 1 writer left out. */
ls_rc flow_open_event_raw_with(ls_vault_t *v, const ls_id *id, const ls_id *arrival,
                               unsigned started, const ls_event *ev, ls_buf *out, ls_err *err);
/* The version of run id's first event as st holds it, into *version:
 * what the writer of an inbox entry seals it with (the reader checks it
 * against the run's history as it finds it). LS_ECORRUPT when there is
 * none or it does not decode: a run that cannot load, whose entries a
 * writer may seal with 0. */
ls_rc flow_first_version(ls_store_t *st, const ls_id *id, unsigned *version, ls_err *err);
/* What a reader of one run's history checks of each event, in key order,
 * before the replay (or the API) takes it (query.c): the first is seq 1
 * and each next one follows without a gap (a missing event is
 * LS_ECORRUPT naming its seq), the record holds its key's seq
 * (LS_ECORRUPT), and versions never go down: once an event is of version
 * 3, every later one is too (LS_EAUTH: "event N: a version V event in a
 * run started at version 3" when the first event is, else "event N: a
 * version V event after event M of version 3"); flow_hist_check_entry
 * checks the same for an inbox entry, which comes after every event
 * (named as flow_open_event names it). Start from FLOW_HIST_INIT. The
 * seals are opened by the caller, with started. */
typedef struct {
    uint64_t next;    /* the seq the next event must have */
    unsigned started; /* the first event's version (0: not read yet) */
    uint64_t v3;      /* the first event of version 3 read (0: none yet) */
} flow_hist;
#define FLOW_HIST_INIT \
    {                  \
        1, 0, 0        \
    }
ls_rc flow_hist_check(flow_hist *h, uint64_t seq, const ls_event *ev, ls_err *err);
ls_rc flow_hist_check_entry(const flow_hist *h, const ls_id *arrival, const ls_event *ev,
                            ls_err *err);
/* Seals and opens run id's custom status (flow_key_custom), bound to the
 * run and that slot; a key the keyring lacks is LS_EAUTH. */
ls_rc flow_seal_status_with(ls_vault_t *v, const ls_id *id, const void *pt, size_t len, ls_buf *out,
                            ls_err *err);
ls_rc flow_open_status_with(ls_vault_t *v, const ls_id *id, const void *sealed, size_t len,
                            ls_buf *out, ls_err *err);
/* Looks a run's internal id up by name. LS_ENOTFOUND names the run. */
ls_rc flow_lookup(ls_flow_t *f, const char *name, size_t nlen, ls_id *id, ls_err *err);
/* Renders the run object (describe) of id into out. With type (tlen bytes),
 * the run must be of that type: LS_ESTATE naming both types otherwise (a
 * start that names another type's run must not get that run back). */
ls_rc flow_render_run(ls_flow_t *f, const ls_id *id, const char *type, size_t tlen, int full,
                      ls_buf *out, ls_err *err);
/* Checks a run name: 1..LS_FLOW_NAMEMAX of [A-Za-z0-9._:@-]. */
ls_rc flow_check_name(const char *name, size_t nlen, ls_err *err);
/* Checks a name of 1 to max characters of letters, digits and - _ . :
 * that is not "." or ".." (unless dots_ok: a record stored before that
 * rule), as a URL's path segment carries it as it is: a schedule's name,
 * a workflow type's (ls_flow_check_type_name). LS_EINVAL saying
 * "what: ..." otherwise (query.c). */
ls_rc flow_check_word(const char *what, const char *s, size_t n, size_t max, int dots_ok,
                      ls_err *err);
/* Checks a name or a note kept in a run's history (a signal's name, a
 * step's, who cancelled): at most max bytes of UTF-8 without control
 * characters; LS_EINVAL saying "what: ..." otherwise (engine.c). */
ls_rc flow_check_text(const char *what, const char *s, size_t n, size_t max, ls_err *err);
/* Checks a signal's name (ls_flow_signal, a new ctx:wait_signal): 1 to
 * LS_FLOW_NAMEMAX bytes of text (flow_check_text), without "/", and not
 * "." or "..": a name the API's /signals/NAME can carry. LS_EINVAL
 * saying "signal name: ..." otherwise (engine.c). */
ls_rc flow_check_signal_name(const char *s, size_t n, ls_err *err);
/* How many runs are above run r (its parent, its parent's parent...; 0
 * for a run no run started), into *depth: once known it is kept in r. It
 * is known from the run's start, or from its own parent link when it was
 * recovered; a link written before links held depths is followed up the
 * ancestors' links (at most cap + 1 of them) to one that holds its depth
 * or to a run no run started. An ancestor that is deleted, or whose link
 * is corrupt, ends that walk, logged: the depth is then the runs counted
 * up to it. Past cap the answer is cap + 1, whatever the true depth: a
 * caller that only compares it with cap reads no more links than that.
 * A read that fails otherwise (LS_EIO, LS_ENOMEM) returns that code with
 * a message naming r and the link, and keeps nothing. Only the thread
 * that holds r calls it (engine.c). */
ls_rc flow_run_depth(ls_flow_t *f, flow_run *r, unsigned cap, unsigned *depth, ls_err *err);

/* The results cache (results.h): ls_flow_result's answer for runs that
 * completed while a long poll watched them. Outputs larger than
 * FLOW_RESULT_TEXT_MAX are not kept. */
/* Error texts a run's history keeps (a step's failure, the run's): at most
 * this many bytes, the rest cut (flow_bound_text); a traceback at most
 * FLOW_TRACE_MAX. */
#define FLOW_ERROR_MAX       8192u
#define FLOW_TRACE_MAX       (16u << 10)
#define FLOW_RESULTS_ENTRIES 4096
#define FLOW_RESULTS_BYTES   (2u << 20)
#define FLOW_RESULT_TEXT_MAX (64u << 10)
/* Writes ls_flow_result's answer {"id","output"?,"status"} for a run
 * named name whose status is st and output is output (NULL: none) into
 * out (replacing what it held). */
struct json_t;
ls_rc flow_result_text(ls_buf *out, const char *name, size_t nlen, const struct json_t *output,
                       ls_run_status st, ls_err *err);

#endif
