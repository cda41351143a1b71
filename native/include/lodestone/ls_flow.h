/* SPDX-License-Identifier: MIT
 * The workflow engine. It owns the runs of one store: starts them, hands
 * each activation to a runner (the LuaJIT runner in lodestoned; a C runner
 * in the tests) on one of its worker threads, persists every transition as
 * one atomic write batch (synced unless told otherwise) before anything
 * that follows it can be seen outside the run, keeps durable timers, and
 * answers the queries of the HTTP API.
 *
 * Conventions:
 *  - JSON crosses this header as text (const char *, length); results go
 *    into caller-owned ls_buf as compact JSON text.
 *  - A run has an internal id (ls_id, time-sortable; keys use it) and a
 *    name, which is what users call its id: the one given at start, or the
 *    text form of the internal id. API calls take the name.
 *  - Every function is thread-safe unless noted. ls_flow_act_* functions
 *    are called by the runner, on the worker thread that runs the
 *    activation, only during runner.activate.
 *  - Payloads (inputs, step results, outputs) are sealed by the vault
 *    before they are written, and not masked; secrets are never recorded,
 *    and their values are masked in the texts of the code that are kept
 *    or logged in clear (errors, tracebacks, log lines).
 */
#ifndef LODESTONE_FLOW_H
#define LODESTONE_FLOW_H

#include <stddef.h>
#include <stdint.h>

#include "ls_buf.h"
#include "ls_clock.h"
#include "ls_err.h"
#include "ls_store.h"
#include "ls_vault.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ls_flow ls_flow_t;
typedef struct ls_flow_act ls_flow_act;

/* ---- the runner: how the engine runs workflow code ---- */

typedef struct {
    /* Creates the state one worker thread uses (a Lua state with the
     * workflow files loaded). Called on that worker's thread. */
    ls_rc (*worker_open)(void *ud, unsigned index, void **worker, ls_err *err);
    /* Releases it, on the same thread. */
    void (*worker_close)(void *ud, void *worker);
    /* Runs one activation of a run: replays its code against history
     * through the ls_flow_act_* calls until it ends (ls_flow_act_complete
     * or ls_flow_act_fail) or suspends (an act call answered WAIT), or
     * gives up (ls_flow_act_abandon). Returning with none of these fails
     * the run. */
    void (*activate)(void *ud, void *worker, ls_flow_act *act);
    /* Whether a workflow type of that name is loaded. Any thread. */
    int (*has_type)(void *ud, const char *type, size_t len);
    /* Appends the loaded type names, comma-separated, to out. Any thread. */
    void (*list_types)(void *ud, ls_buf *out);
    /* Optional. A runner that can park an activation sets it: then a call
     * that writes (a step's start after a step's result or side effects,
     * a failure that gives up) returns at once with ls_flow_act_parked true;
     * the runner unwinds (keeping the code's state, e.g. a coroutine) and
     * returns from activate or resume, and the engine calls resume on the
     * same worker once the write is durable. Meanwhile the worker runs
     * other activations. Without it (NULL) such calls block until durable. */
    void (*resume)(void *ud, void *worker, ls_flow_act *act);
    /* Optional. The version (a content hash) and source of the file that
     * defines type now; a new run is pinned to that version and the source
     * is kept in the store, so that later activations of the run use it
     * even after the file changed (ls_flow_act_version/_source); source may
     * be NULL (only the version is wanted). Returns 0 when unknown. Any
     * thread. */
    int (*type_version)(void *ud, const char *type, size_t len, ls_buf *version, ls_buf *source);
    /* Optional. The concurrency limits of type as JSON {"limit": N,
     * "key"?: "input.field.path", "total"?: M}: at most N runs per value of
     * the key (one bucket without a key) and M of the type are admitted
     * (started and not ended) at once; the others wait, in order, before
     * running any code. Returns 0 when the type has none. Any thread. */
    int (*type_limits)(void *ud, const char *type, size_t len, ls_buf *json);
    /* Optional. How long finished runs of type are kept: ms (> 0),
     * LS_FLOW_KEEP_FOREVER, or LS_FLOW_RETENTION_DEFAULT when the type sets
     * none or is unknown (then ls_flow_opts.retention_ms applies). Called
     * from the engine's retention thread. */
    int64_t (*retention_ms)(void *ud, const char *type, size_t len);
    /* Optional, with resume. A runner whose activations wait for I/O of
     * its own (the HTTP calls of steps) without holding their worker parks
     * them with ls_flow_act_park_io and sets both. While a worker has
     * activations parked so, it calls poll on its own thread: poll waits up
     * to ms (0: not at all) for that I/O or a wake, writes the activations
     * that can go on (their I/O is done, or ls_flow_act_interrupted) to out,
     * at most cap, and returns how many; the engine resumes each (resume).
     * wake makes the worker's poll in progress, or its next, return at
     * once; any thread, never blocks. */
    size_t (*poll)(void *ud, void *worker, int ms, ls_flow_act **out, size_t cap);
    void (*wake)(void *ud, void *worker);
} ls_flow_runner;

/* Retention values (ls_flow_opts.retention_ms, runner.retention_ms). */
#define LS_FLOW_KEEP_FOREVER      (-1) /* never delete finished runs */
#define LS_FLOW_RETENTION_DEFAULT (-2) /* runner: the type sets none */

/* Log levels of the engine's log callback. */
enum { LS_FLOW_LOG_DEBUG = 0, LS_FLOW_LOG_INFO, LS_FLOW_LOG_WARN, LS_FLOW_LOG_ERROR };

typedef struct {
    ls_store_t *store;            /* required; the engine never closes it */
    ls_vault_t *vault;            /* required; seals payloads */
    const ls_clock *clock;        /* NULL: the system clock */
    const ls_flow_runner *runner; /* required */
    void *runner_ud;
    unsigned workers; /* worker threads; 0 picks 8 */
    int nosync;       /* 1: do not fsync transitions (benchmarks only) */
    /* Limits (0 picks the default): a run that crosses one fails with an
     * error naming it and the lodestoned option that raises it. */
    size_t max_payload;  /* bytes of an input, step result, output, signal (1 MiB) */
    uint64_t max_events; /* events in a run's history (50,000) */
    uint64_t max_steps;  /* steps a run may start (10,000) */
    unsigned max_depth;  /* how deep runs nest (32; over 1000 is 1000): ls_flow_act_child_start */
    /* Optional log sink: level, the run's name (NULL when none), message. */
    void (*log)(void *ud, int level, const char *run, const char *msg);
    void *log_ud;
    /* Retention: finished runs (record, history, indexes, leftovers) are
     * deleted in the background once they have been over for longer than
     * this (0: 7 days; LS_FLOW_KEEP_FOREVER: never), unless the runner's
     * retention_ms gives their type another value. */
    int64_t retention_ms;
    int64_t retention_interval_ms; /* how often the pass runs (0: every minute) */
    unsigned retention_batch;      /* runs deleted per store write (0: 500) */
} ls_flow_opts;

/* Opens the engine over an open store: reads every unfinished run and
 * durable timer (nothing starts yet). Caller frees with ls_flow_close. */
LS_API ls_rc ls_flow_open(ls_flow_t **out, const ls_flow_opts *opts, ls_err *err);

/* Starts the worker and timer threads; unfinished runs resume. */
LS_API ls_rc ls_flow_run(ls_flow_t *f, ls_err *err);

/* Stops taking work, lets running activations finish for up to grace_ms,
 * then interrupts the rest (ls_flow_act_interrupted turns true) and waits
 * for them. Returns LS_EBUSY when a worker is still stuck a second after
 * that (the caller should then exit without closing the store: every
 * transition is already durable). Idempotent. */
LS_API ls_rc ls_flow_stop(ls_flow_t *f, int64_t grace_ms, ls_err *err);

/* Stops (grace 0) if needed and frees the engine. f may be NULL. */
LS_API void ls_flow_close(ls_flow_t *f);

/* ---- the store's key ---- */

/* Loads the keyring of store st from key_file into *out, once it is sure
 * the keyring opens the store's sealed data; call it before ls_flow_open.
 * - An absent key file is created (0600, one new key) only for a new store,
 *   one that holds nothing but its format record (ls_store_holds_data);
 *   for any other, LS_ENOTFOUND: "key file F does not exist, and this
 *   store holds data sealed under a key (written under key N)".
 * - The store's key check (ls_vault_check_open) must open: LS_EAUTH "key
 *   file F does not open this store's data (written under key N)"
 *   otherwise.
 * - A store without one (new, or written before key checks existed) has
 *   one sealed record of each kind probed: its first secret, its first
 *   schedule, its oldest and newest history payloads. It is refused with
 *   LS_EAUTH naming the record when one names a key the keyring does not
 *   hold, or when none opens and one does not authenticate. Otherwise the
 *   key check is written when one opened or the store holds none; records
 *   that did not open beside one that did (unreadable: damaged, a failed
 *   read of the store; or not authentic under a key the keyring holds)
 *   are damage, not a wrong key, and are reported. When every one found
 *   was unreadable, none is written and the next call probes again.
 * Other errors are those of the store and of ls_vault_load. On any error
 * *out is NULL, nothing was written to the store, and a key file this call
 * created is removed again. Caller frees with ls_vault_close. */
LS_API ls_rc ls_flow_key_load(ls_vault_t **out, ls_store_t *st, const char *key_file, ls_err *err);

/* What ls_flow_key_load_report found probing a store written before key
 * checks (all zero for any other store). */
typedef struct {
    unsigned probed;        /* sealed records looked at, and failed reads */
    unsigned opened;        /* ... that opened under the keyring */
    unsigned damaged;       /* ... that did not, passed over as damage */
    char first_damage[400]; /* the first of those, and why ("" when none) */
} ls_flow_key_report;

/* ls_flow_key_load, filling *rep (may be NULL) on LS_OK: damaged records
 * a probe passed over, for the caller to log. */
LS_API ls_rc ls_flow_key_load_report(ls_vault_t **out, ls_store_t *st, const char *key_file,
                                     ls_flow_key_report *rep /* OUT, may be NULL */, ls_err *err);

/* ---- retiring old keys ---- */

/* The kinds of sealed values a store holds, as ls_flow_key_retire counts
 * them. */
typedef enum {
    LS_FLOW_SEALED_SECRETS = 0, /* secrets (ls_vault_secret_put) */
    LS_FLOW_SEALED_HISTORY,     /* history payloads: inputs, results, signals, outputs */
    LS_FLOW_SEALED_INBOX,       /* pending signals and child results */
    LS_FLOW_SEALED_STATUS,      /* custom statuses (ctx:set_status) */
    LS_FLOW_SEALED_SCHEDULES,   /* schedule records */
    LS_FLOW_SEALED_KEYCHECK,    /* the store's key check */
    LS_FLOW_SEALED_KINDS
} ls_flow_sealed_kind;

/* What a kind is called in messages ("history", "custom statuses"...).
 * Static, never NULL. */
LS_API const char *ls_flow_sealed_kind_name(ls_flow_sealed_kind k);

/* What ls_flow_key_retire did. Caller's memory; nothing in it is freed. */
typedef struct {
    uint32_t key;                          /* the current key: the one kept */
    size_t keys_before;                    /* keys the keyring held */
    size_t resealed[LS_FLOW_SEALED_KINDS]; /* resealed under key and written, by kind */
    size_t failed;          /* under another key and did not open: left as they were */
    char first_failed[400]; /* the first of those, and why ("" when none) */
    size_t remaining;       /* the check after the pass: values naming another key */
    int retired;            /* the key file now holds key alone */
} ls_flow_retire_report;

/* Retires every key of v but the current one, offline (no engine open on
 * st; v loaded with ls_flow_key_load). Each sealed value of st that names
 * another key (every kind above) is opened with the associated data it
 * was sealed with and sealed again under the current key, in synced
 * batches of bounded size; a value already under the current key is left
 * as it is. One that does not open is left as it was, counted, and the
 * first remembered (the run and event, the schedule, the secret), and the
 * pass goes on. Then a check reads every sealed value's key id again;
 * when nothing failed and none names another key, the key file is
 * rewritten to hold the current key alone (ls_vault_retire_old_keys) and
 * rep->retired is 1. When v holds one key already there is nothing to do:
 * LS_OK, rep->keys_before 1. Returns LS_OK when the pass reached its end,
 * retired or not: check rep->retired and rep->failed. A store, I/O or
 * memory failure stops it with its code; the batches written before stay
 * and the key file is unchanged, unless rep->retired is 1: then only the
 * sync of the key file's directory failed, after the file was replaced
 * (ls_vault_retire_old_keys). Interrupted at any point, a call again
 * finishes the job. rep must not be NULL. */
LS_API ls_rc ls_flow_key_retire(ls_vault_t *v, ls_store_t *st, ls_flow_retire_report *rep,
                                ls_err *err);

/* ---- runs ---- */

/* Checks a workflow type's name: 1 to 200 characters of letters, digits
 * and - _ . :, and not "." or ".." (the API's POST /v1/workflows/{type}
 * carries it as one path segment, which HTTP clients remove when it is a
 * dot segment). LS_EINVAL saying "what: ..." otherwise (what NULL:
 * "workflow type"). A runner checks the types it loads with it; starts
 * (API, children, schedules) check theirs. Runs stored with another type
 * name are read, listed and replayed as they are. */
LS_API ls_rc ls_flow_check_type_name(const char *name, size_t len, const char *what, ls_err *err);

/* Starts a run of type with input (JSON text; NULL/0 means null) under
 * name (NULL/0: a fresh id). When a run of that name exists, nothing is
 * started and *created is 0; otherwise the start is durable before this
 * returns and *created is 1. Either way *run receives the run's object
 * (as ls_flow_describe). Errors: LS_ENOTFOUND for an unknown type (the
 * message lists the known ones), LS_EINVAL for a bad name, type name
 * (ls_flow_check_type_name) or input, LS_EBUSY when the engine is
 * stopping. */
LS_API ls_rc ls_flow_start(ls_flow_t *f, const char *type, size_t tlen, const char *name,
                           size_t nlen, const char *input, size_t ilen, ls_buf *run, int *created,
                           ls_err *err);

/* input is the text ls_json_dump wrote for a value (compact, object keys
 * sorted, as the engine stores inputs): it is taken as it is instead of
 * being parsed and written again. Only the size limit is checked. */
#define LS_FLOW_INPUT_DUMPED 1u

/* Starts a run of type with input, named name (NULL or empty: under a
 * fresh id), without waiting for its write. On LS_OK *run holds the run's
 * object (as ls_flow_start gives it) and:
 *   - *created 1: a new run; done(ud, rc, err) is called once, when the
 *     start is durable and the run exists (rc LS_OK, err NULL), or when it
 *     could not be written (nothing was started);
 *   - *created 0: a run of that name exists already (*run is its object,
 *     whatever its type and input) and done is never called. A start of a
 *     name whose start is still being written waits here for it to land.
 * done runs on the thread that wrote the start (the engine's committer, or
 * the caller's own before this returns) with the engine's write lock
 * held: it must be quick, may read (ls_flow_watch, ls_flow_result), and
 * must not call anything that writes (a start, a signal, a cancel...),
 * which would wait for that lock. On an error returned here done is never
 * called. flags: 0, or LS_FLOW_INPUT_DUMPED. */
LS_API ls_rc ls_flow_start_async(ls_flow_t *f, const char *type, size_t tlen, const char *name,
                                 size_t nlen, const char *input, size_t ilen, unsigned flags,
                                 ls_buf *run, int *created,
                                 void (*done)(void *ud, ls_rc rc, const ls_err *err), void *ud,
                                 ls_err *err);

/* The run's object: {"id","type","status","created_at","updated_at",
 * "steps_completed","attempts_failed","input","output"|"error",
 * "waiting"}. LS_ENOTFOUND when there is no such run. */
LS_API ls_rc ls_flow_describe(ls_flow_t *f, const char *name, size_t nlen, ls_buf *out,
                              ls_err *err);

/* The result object {"id","status","output"|"error"} of a run; *done is 1
 * when the run has ended (else the object only has id and status). */
LS_API ls_rc ls_flow_result(ls_flow_t *f, const char *name, size_t nlen, ls_buf *out, int *done,
                            ls_err *err);

/* {"id","events":[...]}: every event of the run in order, payloads
 * decrypted. */
LS_API ls_rc ls_flow_history(ls_flow_t *f, const char *name, size_t nlen, ls_buf *out, ls_err *err);

/* {"runs":[...],"next_cursor"?}: runs newest first, filtered by status
 * and type (NULL: any), at most limit (1..1000; 0 picks 50), starting
 * after cursor (NULL: from the newest). LS_EINVAL names a bad filter or
 * cursor. */
LS_API ls_rc ls_flow_list(ls_flow_t *f, const char *status, const char *type, unsigned limit,
                          const char *cursor, ls_buf *out, ls_err *err);

/* Calls fn(ud) once, from an engine thread, when the named run ends.
 * LS_EEXIST (err untouched, fn not called) when it has ended already;
 * LS_ENOTFOUND when there is no such run. On LS_OK *watch identifies the
 * registration for ls_flow_unwatch. fn must not call back into the
 * engine. */
LS_API ls_rc ls_flow_watch(ls_flow_t *f, const char *name, size_t nlen, void (*fn)(void *ud),
                           void *ud, uint64_t *watch, ls_err *err);

/* Cancels a registration; returns 1 when it was still pending (fn will
 * not be called), 0 when fn has been called or is being called (it
 * returns only after fn has returned). */
LS_API int ls_flow_unwatch(ls_flow_t *f, uint64_t watch);

/* Sends signal `signal` with payload (JSON text; NULL/0: null) to the
 * running run `name`: durable before this returns; the run sees signals
 * in the order they were accepted. LS_ENOTFOUND (no such run), LS_ESTATE
 * (the run has finished: the message says how), LS_EINVAL (a bad name or
 * payload; a signal's name is 1 to 200 bytes of UTF-8 without control
 * characters (C0, DEL, C1) or "/", and not "." or "..": one segment of the
 * API's path), LS_EBUSY (stopping). */
LS_API ls_rc ls_flow_signal(ls_flow_t *f, const char *name, size_t nlen, const char *signal,
                            size_t slen, const char *payload, size_t plen, ls_err *err);

/* Longest "by" of a cancel, terminate or resume (who asks: lighttpd's
 * X-User, such as an OpenID subject of up to 255 characters or an e-mail
 * address), in bytes. */
#define LS_FLOW_BYMAX 1024

/* Asks the running run to cancel: at its next wait point (ctx:step,
 * ctx:sleep, ctx:wait_signal) its code gets a cancellation error, which it
 * may catch to run cleanup steps; it then ends `cancelled`. by (who) and
 * reason (NULL: none) are recorded. Errors as ls_flow_signal. */
LS_API ls_rc ls_flow_cancel(ls_flow_t *f, const char *name, size_t nlen, const char *by,
                            const char *reason, ls_err *err);

/* Resumes a run paused by a step that used up its attempts (on_exhausted
 * = "pause"): the step gets a new round of attempts. LS_ESTATE when the
 * run is not paused (or has finished). */
LS_API ls_rc ls_flow_resume(ls_flow_t *f, const char *name, size_t nlen, const char *by,
                            ls_err *err);

/* Ends the running run `terminated` at once: no more of its code runs (a
 * step running now is interrupted at its next Lua instruction count
 * check). Waits up to wait_ms for the end to be durable; *ended says
 * whether it was. Errors as ls_flow_signal. */
LS_API ls_rc ls_flow_terminate(ls_flow_t *f, const char *name, size_t nlen, const char *by,
                               const char *reason, int64_t wait_ms, int *ended, ls_err *err);

/* Upper bounds (seconds) of the step duration histogram's buckets. */
#define LS_FLOW_STEP_NBUCKETS 13
LS_API extern const double LS_FLOW_STEP_BUCKETS[LS_FLOW_STEP_NBUCKETS];

typedef struct {
    uint64_t runs_active; /* unfinished runs held in memory */
    uint64_t runs_queued; /* waiting for a worker */
    uint64_t timers;      /* durable timers pending */
    uint64_t started;     /* since open */
    uint64_t completed;
    uint64_t failed;
    uint64_t cancelled;
    uint64_t terminated;
    uint64_t paused; /* runs paused now (on_exhausted = "pause") */
    uint64_t steps_completed;
    uint64_t steps_failed;
    uint64_t activations;
    uint64_t commits;     /* store writes made by the committer */
    uint64_t transitions; /* transitions they carried (group commit) */
    unsigned workers;
    unsigned workers_alive; /* worker threads running */
    unsigned workers_busy;  /* ... running an activation now */
    uint64_t busy_ns;       /* time workers spent in activations, since open */
    /* Step attempts by how long their code ran (seconds): the counts of
     * attempts that took at most LS_FLOW_STEP_BUCKETS[i], and all. */
    uint64_t step_hist[LS_FLOW_STEP_NBUCKETS];
    uint64_t step_count;
    uint64_t step_sum_us;
    uint64_t runs_deleted;     /* finished runs deleted by retention since open */
    uint64_t retention_passes; /* retention passes done since open */
} ls_flow_stats;

LS_API void ls_flow_get_stats(ls_flow_t *f, ls_flow_stats *s);

/* {"TYPE": {"started": n, "completed": n, "failed": n, "cancelled": n,
 * "terminated": n}, ...}: runs by type since open. */
LS_API ls_rc ls_flow_type_stats(ls_flow_t *f, ls_buf *out, ls_err *err);

/* {"TYPE": {"VERSION": running runs, ...}, ...}: how many unfinished runs
 * each version of each type still has. */
LS_API ls_rc ls_flow_versions(ls_flow_t *f, ls_buf *out, ls_err *err);

/* Queues every unfinished run that is idle without a timer: runs whose
 * activation gave up (their workflow type was not loaded) try again, e.g.
 * after the runner reloaded its files. Returns how many were queued. */
LS_API size_t ls_flow_retry_idle(ls_flow_t *f);

/* ---- the activation API, for runners ---- */

/* The run's name and type (NUL-terminated, borrowed until the activation
 * ends). */
LS_API const char *ls_flow_act_name(const ls_flow_act *a);
LS_API const char *ls_flow_act_type(const ls_flow_act *a);

/* The version of the workflow source the run is pinned to ("" for runs
 * started before versions or by a runner without them), and that
 * source as the store keeps it. */
LS_API const char *ls_flow_act_version(const ls_flow_act *a);
LS_API ls_rc ls_flow_act_source(ls_flow_act *a, ls_buf *out, ls_err *err);

/* The input as JSON text into out. */
LS_API ls_rc ls_flow_act_input(ls_flow_act *a, ls_buf *out, ls_err *err);

/* Whether the code is still replaying recorded history (logs are muted
 * then). */
LS_API int ls_flow_act_replaying(const ls_flow_act *a);

/* Whether the last call parked the activation (see ls_flow_runner.resume):
 * return from activate/resume now; calls made before resume fail. */
LS_API int ls_flow_act_parked(const ls_flow_act *a);

/* Parks the activation while it waits for I/O of the runner's own (see
 * ls_flow_runner.poll): returns 1, and the runner returns from activate or
 * resume and gets it back from poll. Returns 0 when it cannot park (the
 * runner has no poll, or a write is in flight): the runner waits itself. */
LS_API int ls_flow_act_park_io(ls_flow_act *a);

/* After a resume: LS_OK, or the error of the write the activation waited
 * for (the runner should then give up, ls_flow_act_abandon). */
LS_API ls_rc ls_flow_act_check(ls_flow_act *a, ls_err *err);

/* Whether the engine is stopping and wants the activation to give up. */
LS_API int ls_flow_act_interrupted(const ls_flow_act *a);

/* What a command's outcome asks of the runner. */
typedef enum {
    LS_FLOW_DONE = 1,  /* recorded value in out: return it */
    LS_FLOW_FAILED,    /* step failed for good: message in out; raise it */
    LS_FLOW_RUN,       /* run the step's attempt now (attempt, key below) */
    LS_FLOW_WAIT,      /* suspend: unwind the code and return from activate */
    LS_FLOW_CANCELLED, /* the run is cancelled: raise the cancellation (reason in out) */
    LS_FLOW_TIMEOUT    /* a signal wait timed out */
} ls_flow_outcome;

typedef struct {
    ls_flow_outcome outcome;
    uint32_t attempt; /* RUN: the attempt to run (1-based) */
    char key[64];     /* RUN: idempotency key, stable across attempts */
} ls_flow_step_info;

/* ctx:step(name): replays the step or tells the runner to run it. On DONE
 * out holds the result (JSON), on FAILED the error message, on CANCELLED
 * the cancel reason. Errors:
 * LS_ENONDET (history holds another command here), LS_EINVAL for a name
 * of a new step that is not 1 to 200 bytes of UTF-8 without control
 * characters ("ctx:step: step name: ..."; a step that history holds
 * replays whatever its name), others. */
LS_API ls_rc ls_flow_act_step(ls_flow_act *a, const char *name, size_t nlen,
                              ls_flow_step_info *info, ls_buf *out, ls_err *err);

/* Records a successful attempt (result: JSON text). It is queued, not
 * written: the run's next write carries it (the next step's start, a timer,
 * a child, the end, or the activation's end), synced, so it is durable
 * before anything that follows it can be seen. Never parks. */
LS_API ls_rc ls_flow_act_step_done(ls_flow_act *a, const char *name, size_t nlen, uint32_t attempt,
                                   const char *result, size_t rlen, ls_err *err);

/* A failed attempt, as the runner saw it. */
typedef struct {
    uint32_t attempt;
    const char *error; /* message (kept in clear, secrets' values masked: ls_vault_mask_text) */
    size_t error_len;
    const char *code; /* error code matched against non_retryable, or NULL */
    int fatal;        /* raised with workflow.fatal: never retried */
    /* Retry policies as JSON objects (ls_flow_retry_parse's keys), NULL
     * when absent: the step's fields override the workflow's, which
     * override the defaults. */
    const char *retry_workflow;
    size_t retry_workflow_len;
    const char *retry_step;
    size_t retry_step_len;
    int pause; /* on_exhausted = "pause": used-up attempts pause the run, not fail it */
} ls_flow_failure;

/* Records a failed attempt and decides what follows. Answers WAIT (a retry
 * is scheduled: suspend) or FAILED (given up: out holds the final message
 * to raise). LS_EINVAL names a bad retry policy. */
LS_API ls_rc ls_flow_act_step_failed(ls_flow_act *a, const char *name, size_t nlen,
                                     const ls_flow_failure *failure, ls_flow_outcome *outcome,
                                     ls_buf *out, ls_err *err);

/* ctx:sleep(ms): DONE when the timer has fired, WAIT otherwise, CANCELLED
 * when a cancellation is delivered here. */
LS_API ls_rc ls_flow_act_sleep(ls_flow_act *a, int64_t ms, ls_flow_outcome *outcome, ls_err *err);

/* ctx:wait_signal(name, timeout_ms; < 0: none): DONE with the payload
 * (JSON) in out, WAIT, TIMEOUT, or CANCELLED (reason in out). LS_EINVAL
 * ("ctx:wait_signal: signal name: ...") for a name that is not 1 to 200
 * bytes, or, when the wait is not already decided by history, for one
 * that no signal could have (ls_flow_signal refuses it: not UTF-8, a
 * control character, a "/", "." or ".."). */
LS_API ls_rc ls_flow_act_wait_signal(ls_flow_act *a, const char *name, size_t nlen,
                                     int64_t timeout_ms, ls_flow_outcome *outcome, ls_buf *out,
                                     ls_err *err);

/* ctx:start_child(type, input, {id, detached}): starts a child run (or
 * finds the one started before, on replay) and puts its id into child. The
 * id is the one given, else derived from this run's id and the command's
 * position. Errors of the start (an unknown type, a bad input; LS_ESTATE
 * when the id names a run that is not this run's child) are returned. A
 * child that is not detached is cancelled when this run ends first.
 * Runs nest at most opts.max_depth deep (a run no run started is at depth
 * 0, its children at 1...; branch runs count too): a new child of a run at
 * that depth is refused with LS_EINVAL naming the limit, and the run's
 * calls all fail from then on (it ends failed), as past max_events. */
LS_API ls_rc ls_flow_act_child_start(ls_flow_act *a, const char *type, size_t tlen, const char *id,
                                     size_t idlen, const char *input, size_t ilen, int detached,
                                     ls_buf *child, ls_err *err);

/* Parallel branches as runs of their own (ctx:all on the worker pool).
 * ls_flow_act_flush writes what the activation has queued (it may park);
 * then ls_flow_act_branch_start starts (or, replaying, finds) the branch
 * run of scope ("[1.2]": branch 2 of the run's first ctx:all; nested
 * sections add a token): a child run named "ID-b1.2" whose history starts
 * as a copy of this run's, pinned to its version, exempt from concurrency
 * limits, waited for with ls_flow_act_child_wait. In that run,
 * ls_flow_act_branch_of is the scope it runs (NULL in other runs): its code
 * replays up to that ctx:all, runs only that branch and ends with the
 * branch's result. */
LS_API ls_rc ls_flow_act_flush(ls_flow_act *a, ls_err *err);
LS_API ls_rc ls_flow_act_branch_start(ls_flow_act *a, const char *scope, size_t len, ls_buf *child,
                                      ls_err *err);
LS_API const char *ls_flow_act_branch_of(const ls_flow_act *a);

/* Waits for child `id` to end: DONE with its output (JSON) in out, FAILED
 * with a message naming the child and how it ended, WAIT, or CANCELLED
 * (a wait point). */
LS_API ls_rc ls_flow_act_child_wait(ls_flow_act *a, const char *id, size_t idlen,
                                    ls_flow_outcome *outcome, ls_buf *out, ls_err *err);

/* Branch scopes (ctx:all): a branch run runs its branch's code with its
 * scope set ("[SECTION.BRANCH]" per level, "" for the root), and the
 * commands it issues are recorded and replayed per scope (their names
 * carry the prefix); several scopes of one activation replay alike however
 * they interleaved. Ending the run checks that the current scope left no
 * recorded command unreplayed (non-determinism). Signal waits are refused
 * in a branch. */
LS_API ls_rc ls_flow_act_branch(ls_flow_act *a, const char *scope, size_t len, ls_err *err);

/* ctx:set_status(value): the run's custom status (JSON text), shown by
 * ls_flow_describe; written with the run's next write. */
LS_API ls_rc ls_flow_act_set_status(ls_flow_act *a, const char *json, size_t len, ls_err *err);

/* Ends the run `cancelled` after a cancellation was delivered (the code
 * let the cancellation error escape). ls_flow_act_complete after a
 * delivery ends it cancelled too. */
LS_API ls_rc ls_flow_act_cancelled(ls_flow_act *a, ls_err *err);

/* ctx:now/random/uuid: the recorded value (JSON) into out, recording
 * value (JSON text) first when history has none. */
LS_API ls_rc ls_flow_act_side_effect(ls_flow_act *a, const char *kind, const char *value,
                                     size_t vlen, ls_buf *out, ls_err *err);

/* Ends the run: completed with output (JSON text), or failed with an
 * error message and an optional traceback (NULL), both kept in clear with
 * the secrets' values masked (ls_vault_mask_text) and cut when too long
 * (masked first, so that a cut never leaves part of a value). Synced. */
LS_API ls_rc ls_flow_act_complete(ls_flow_act *a, const char *output, size_t olen, ls_err *err);
LS_API ls_rc ls_flow_act_fail(ls_flow_act *a, const char *error, size_t elen, const char *trace,
                              size_t tlen, ls_err *err);

/* Ends the activation without an outcome: the run stays unfinished and
 * resumes on the next start of the engine (used on shutdown). */
LS_API void ls_flow_act_abandon(ls_flow_act *a);

/* A secret for the step code (decrypted; never recorded). Caller frees
 * with ls_secret_free. LS_ENOTFOUND names the secret. */
LS_API ls_rc ls_flow_act_secret(ls_flow_act *a, const char *name, ls_secret_t **out, ls_err *err);

/* Longest log line of a run (ctx:log, s:log) that the log gets whole, in
 * bytes. */
#define LS_FLOW_LOG_LINEMAX 8192

/* Logs a line for the run: msg, len bytes, with the values of the
 * store's secrets masked ("[secret NAME]", ls_vault_mask_text; NUL bytes
 * in it are logged as U+FFFD). A line of more than LS_FLOW_LOG_LINEMAX
 * bytes (masked) is cut where a character starts, never inside a mark,
 * and " [cut: N bytes dropped]" (bytes of msg) follows what is kept.
 * Debug and info lines are muted while replaying (the code logged them
 * when it first ran); warnings and errors never are. */
LS_API void ls_flow_act_log(ls_flow_act *a, int level, const char *msg, size_t len);

/* ---- schedules ----
 *
 * A schedule starts a run of a workflow type at each fire time of a cron
 * expression (UTC): 5 fields, @hourly/@daily/@weekly/@monthly/@yearly, or
 * `@every DURATION`. Each fire is an ordinary run named
 * <schedule>@<fire time as YYYYMMDDTHHMMSSZ>, so a fire is never started
 * twice. Schedules and their last fire are durable; after a restart the
 * fires missed while the engine was down follow the schedule's catchup.
 * The engine's scheduler thread (started by ls_flow_run) fires them. */

/* Where a schedule was declared. */
enum { LS_FLOW_SCHEDULE_API = 0, LS_FLOW_SCHEDULE_FILE = 1 };

/* Creates or replaces a schedule. def is a JSON object {"name",
 * "workflow", "cron", "timezone"? ("UTC", the only one for now),
 * "overlap"? ("skip" (default) | "buffer_one" | "allow"), "catchup"?
 * ("one" (default) | "none"), "input"? (any JSON)}. The same definition
 * again changes nothing; a changed one keeps the schedule's last fire and
 * counters and takes fire times from now on. Durable before it returns.
 * *created (may be NULL) is 1 when the schedule is new; out (may be NULL)
 * receives the schedule's object (as ls_flow_schedule_get). Errors:
 * LS_EINVAL naming the field, LS_ENOTFOUND when the workflow type is not
 * loaded, LS_ESTATE when source is API and a workflow file declares a
 * schedule of that name. A file's schedule replaces an API one. */
LS_API ls_rc ls_flow_schedule_put(ls_flow_t *f, const char *def, size_t len, int source,
                                  ls_buf *out, int *created, ls_err *err);

/* Makes the file-declared schedules those of defs, a JSON array of
 * definitions as above: puts each (source FILE) and deletes the file
 * schedules it does not name. A definition that fails is logged and the
 * others still apply; the first failure is returned. */
LS_API ls_rc ls_flow_schedule_sync_files(ls_flow_t *f, const char *defs, size_t len, ls_err *err);

/* Checks def, one definition as above (a workflow file's schedule), as a
 * put would, without a flow: its fields, its cron text and its timezone
 * (against ICU's zones). LS_EINVAL naming the field. */
LS_API ls_rc ls_flow_schedule_check(const char *def, size_t len, ls_err *err);

/* The schedule's object: the definition (input only when set) plus
 * "source" ("file" | "api"), "next_fire", "last_fire"?, "last_outcome"?
 * ("started" | "skipped" | "buffered" | "failed"), "last_run"?,
 * "buffered_fire"?, "fires_started", "fires_skipped", "fires_missed",
 * "fires_failed", "created_at", "updated_at". LS_ENOTFOUND when none. */
LS_API ls_rc ls_flow_schedule_get(ls_flow_t *f, const char *name, size_t nlen, ls_buf *out,
                                  ls_err *err);

/* {"schedules":[...]}: every schedule's object, by name. */
LS_API ls_rc ls_flow_schedule_list(ls_flow_t *f, ls_buf *out, ls_err *err);

/* Deletes a schedule (its runs go on). LS_ENOTFOUND when none;
 * LS_ESTATE when source is API and a workflow file declares it. */
LS_API ls_rc ls_flow_schedule_delete(ls_flow_t *f, const char *name, size_t nlen, int source,
                                     ls_err *err);

typedef struct {
    uint64_t schedules;     /* schedules defined now */
    uint64_t fires_started; /* since open: runs started by fires */
    uint64_t fires_skipped; /* fires not started: the previous run still ran (overlap) */
    uint64_t fires_missed;  /* fire times passed over (downtime, catchup; a late wake-up) */
    uint64_t fires_failed;  /* fires the engine refused (e.g. the type is not loaded) */
} ls_flow_schedule_stats;

LS_API void ls_flow_schedule_get_stats(ls_flow_t *f, ls_flow_schedule_stats *s);

#ifdef __cplusplus
}
#endif

#endif
