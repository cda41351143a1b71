/* SPDX-License-Identifier: MIT
 * Helpers shared by the cmocka suites: temporary directories and a failing
 * allocator. */
#ifndef LS_TEST_HELPERS_H
#define LS_TEST_HELPERS_H

#include <sys/types.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "lodestone/lodestone.h"
#include "lodestone/ls_flow.h"
#include "lodestone/ls_id.h"
#include "flow/history.h"

/* Creates a fresh directory under $TMPDIR (or /tmp) named for the suite;
 * returns a malloc'd path. Aborts the test on failure. */
char *th_mkdtemp(const char *suite);

/* Removes path and everything below it. */
void th_rmtree(const char *path);

/* Joins dir and name into a malloc'd path. */
char *th_path(const char *dir, const char *name);

/* Failing allocator: after th_fail_after(n), the n+1-th allocation fails
 * (n = 0 fails the next one); th_fail_never() turns it off. th_fail_install
 * puts it in place with ls_set_allocator; th_fail_uninstall restores libc. */
void th_fail_install(void);
void th_fail_uninstall(void);
void th_fail_after(long n);
void th_fail_never(void);
long th_alloc_count(void); /* allocations seen since install */

/* Runs fn(arg) in a forked child and returns its exit status, or minus
 * the signal that ended it: for what may take the process down (SIGBUS),
 * or leave it unable to take locks. */
int th_run_child(int (*fn)(const char *arg), const char *arg);

/* Runs fn(ud) with allocation failing at each point in turn, from the first
 * allocation until one run completes without an injected failure. fn returns
 * LS_OK or the code of its failure; every injected failure must come back as
 * LS_ENOMEM (asserted). fn must clean up after itself either way. Returns the
 * number of allocation points exercised. */
long th_each_alloc_failure(ls_rc (*fn)(void *ud), void *ud);

/* An HS256 JWS over the given header and payload JSON, signed with the
 * NUL-terminated key. Caller frees with free(). */
char *th_mint_hs256(const char *header_json, const char *payload_json, const char *key);

/* ---- the workflow engine's suites ---- */

/* A clock that moves only when the test says so. A test that closes the
 * engine while a run sleeps must see the run asleep: on the system clock a
 * slow machine may let the sleep run out first. (ls_manual_clock would do,
 * but it is not meant to be read and moved from different threads.) */
typedef struct {
    ls_clock clock;
    _Atomic int64_t ms;
} th_clock;

/* Sets the clock to wall_ms and its functions; c->clock is the ls_clock. */
void th_clock_init(th_clock *c, int64_t wall_ms);
void th_clock_advance(th_clock *c, int64_t ms);

/* Sleeps ms milliseconds of real time. */
void th_nap_ms(long ms);

/* Opens (creating them) the store at store_path and the vault keyed by
 * key_path; closes both and clears the pointers. */
void th_store_open(const char *store_path, const char *key_path, ls_store_t **st, ls_vault_t **v);
void th_store_close(ls_store_t **st, ls_vault_t **v);

/* A suite's temporary directory with a store ("store") and a vault keyed
 * by "master.key" in it, both open; _close closes what is open, removes
 * the directory and frees d's strings. */
typedef struct {
    char *dir, *store_path, *key_path;
    ls_store_t *st;
    ls_vault_t *v;
} th_store_dir;
void th_store_dir_open(th_store_dir *d, const char *suite);
void th_store_dir_close(th_store_dir *d);

/* ls_flow_runner stubs for runners that keep no per-worker state: each
 * worker's state is the runner's ud. */
ls_rc th_worker_open(void *ud, unsigned index, void **worker, ls_err *err);
void th_worker_close(void *ud, void *worker);

/* For a runner's activate: 1 when rc is LS_OK (go on); else fails the run
 * with err's text (or abandons the activation when even that fails) and
 * returns 0: the activation is over. */
int th_act_ok(ls_flow_act *a, ls_rc rc, const ls_err *err);

/* Waits up to ms for run name of f to end (its watch fires once, or it has
 * ended already); fails the test otherwise. */
void th_wait_run_end(ls_flow_t *f, const char *name, long ms);

/* Flips 64 bytes in the middle of the largest LevelDB table file (.ldb,
 * .sst) of the store directory dir, which must be over at_least bytes. */
void th_damage_largest_table(const char *dir, off_t at_least);

/* ---- records as older lodestoned wrote them ---- */

/* Makes *ev (decoded from run id's history, or from its inbox entry
 * arrival; the run's first event of version started) an event as lodestoned wrote it before
 * payloads were bound to their records: version 1, its payload (when it has one) opened with v and
 * sealed again, into sealed (ev->payload then points there), under v's current key with the run id
 * and seq (FLOW_SEQ_INBOX for an inbox entry) alone as associated data, 24 bytes. An event of a
 * kind that holds no payload (and a failure without a traceback) loses its sealed value: older
 * writers sealed none. Fails the test when the payload does not open. */
void th_event_as_v1(ls_vault_t *v, const ls_id *id, const ls_id *arrival, unsigned started,
                    ls_event *ev, ls_buf *sealed);
/* The same as version (1 or 2): version 2 seals the payload in the record
 * form, bound to every field, as lodestoned did before every event was
 * sealed (version 3). */
void th_event_as(ls_vault_t *v, unsigned version, const ls_id *id, const ls_id *arrival,
                 unsigned started, ls_event *ev, ls_buf *sealed);

/* Rewrites in st every history event (inbox 0) or inbox entry (inbox 1)
 * of run (NULL: of every run) with th_event_as_v1 (th_event_as). Returns
 * how many. */
size_t th_events_as_v1(ls_store_t *st, ls_vault_t *v, int inbox, const ls_id *run);
size_t th_events_as(ls_store_t *st, ls_vault_t *v, unsigned version, int inbox, const ls_id *run);

/* Counts, in st, the history events (inbox 0) or inbox entries (inbox 1)
 * of run (NULL: of every run) that carry a sealed value (since version 3,
 * every one), and of them those of event version 1 into *v1 (may be
 * NULL). */
size_t th_payload_events(ls_store_t *st, int inbox, const ls_id *run, size_t *v1);

/* Asserts rc == LS_OK, printing err's message otherwise. */
#define th_ok(rc, err)                                                                     \
    do {                                                                                   \
        ls_rc th_rc_ = (rc);                                                               \
        if (th_rc_ != LS_OK) fail_msg("%s: %s (%s)", #rc, ls_rc_name(th_rc_), (err)->msg); \
    } while (0)

#endif
