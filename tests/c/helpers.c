/* SPDX-License-Identifier: MIT
 * Helpers shared by the cmocka suites. */
#define _GNU_SOURCE 1
#include "helpers.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "flow/flow_int.h"

char *th_mkdtemp(const char *suite)
{
    const char *tmp = getenv("TMPDIR");
    char *path;
    if (asprintf(&path, "%s/lodestone-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", suite) < 0) abort();
    if (mkdtemp(path) == NULL) fail_msg("mkdtemp %s failed", path);
    return path;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void th_rmtree(const char *path)
{
    if (path) nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

char *th_path(const char *dir, const char *name)
{
    char *p;
    if (asprintf(&p, "%s/%s", dir, name) < 0) abort();
    return p;
}

/* ---- tokens ---- */

char *th_mint_hs256(const char *header_json, const char *payload_json, const char *key)
{
    ls_buf tok = LS_BUF_INIT, part = LS_BUF_INIT;
    ls_base64url_encode(header_json, strlen(header_json), &tok, NULL);
    ls_buf_putc(&tok, '.', NULL);
    ls_base64url_encode(payload_json, strlen(payload_json), &part, NULL);
    ls_buf_append(&tok, part.ptr, part.len, NULL);
    unsigned char mac[LS_HMAC_SHA256_BYTES];
    ls_hmac_sha256(key, strlen(key), tok.ptr, tok.len, mac);
    ls_buf_clear(&part);
    ls_base64url_encode(mac, sizeof mac, &part, NULL);
    ls_buf_putc(&tok, '.', NULL);
    ls_buf_append(&tok, part.ptr, part.len, NULL);
    char *out = strdup((char *)tok.ptr);
    ls_buf_free(&tok);
    ls_buf_free(&part);
    if (out == NULL) abort();
    return out;
}

/* ---- failing allocator ---- */

static long fail_at = -1; /* allocation index that fails; -1 never */
static long count;

static void *failing_alloc(void *ud, void *ptr, size_t size)
{
    (void)ud;
    if (size == 0) {
        free(ptr);
        return NULL;
    }
    long n = count++;
    if (fail_at >= 0 && n == fail_at) return NULL;
    return realloc(ptr, size);
}

void th_fail_install(void)
{
    count = 0;
    fail_at = -1;
    ls_set_allocator(failing_alloc, NULL);
}

void th_fail_uninstall(void)
{
    ls_set_allocator(NULL, NULL);
    fail_at = -1;
}

void th_fail_after(long n)
{
    fail_at = count + n;
}

void th_fail_never(void)
{
    fail_at = -1;
}

long th_alloc_count(void)
{
    return count;
}

long th_each_alloc_failure(ls_rc (*fn)(void *ud), void *ud)
{
    th_fail_install();
    long points = 0;
    for (long i = 0;; i++) {
        th_fail_after(i);
        long before = count;
        ls_rc rc = fn(ud);
        int injected = fail_at >= before && fail_at < count;
        th_fail_never();
        if (!injected) {
            assert_int_equal(rc, LS_OK);
            break;
        }
        if (rc != LS_ENOMEM)
            fail_msg("allocation %ld failed but the call returned %s, not ENOMEM", i,
                     ls_rc_name(rc));
        points++;
    }
    th_fail_uninstall();
    return points;
}

/* ---- the workflow engine's suites ---- */

static int64_t clock_wall_ms(const ls_clock *c)
{
    return atomic_load(&((th_clock *)c->ud)->ms);
}

static int64_t clock_mono_ns(const ls_clock *c)
{
    return atomic_load(&((th_clock *)c->ud)->ms) * 1000000;
}

void th_clock_init(th_clock *c, int64_t wall_ms)
{
    c->clock.wall_ms = clock_wall_ms;
    c->clock.mono_ns = clock_mono_ns;
    c->clock.ud = c;
    atomic_store(&c->ms, wall_ms);
}

void th_clock_advance(th_clock *c, int64_t ms)
{
    atomic_fetch_add(&c->ms, ms);
}

void th_nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {}
}

void th_store_open(const char *store_path, const char *key_path, ls_store_t **st, ls_vault_t **v)
{
    ls_err err = {0};
    ls_store_opts so = {.create_if_missing = 1};
    ls_vault_opts vo = {.create_if_missing = 1};
    th_ok(ls_store_open(st, store_path, &so, &err), &err);
    th_ok(ls_vault_load(v, key_path, &vo, &err), &err);
}

void th_store_close(ls_store_t **st, ls_vault_t **v)
{
    ls_store_close(*st);
    ls_vault_close(*v);
    *st = NULL;
    *v = NULL;
}

void th_store_dir_open(th_store_dir *d, const char *suite)
{
    d->dir = th_mkdtemp(suite);
    d->store_path = th_path(d->dir, "store");
    d->key_path = th_path(d->dir, "master.key");
    th_store_open(d->store_path, d->key_path, &d->st, &d->v);
}

void th_store_dir_close(th_store_dir *d)
{
    if (d->st) ls_store_close(d->st);
    if (d->v) ls_vault_close(d->v);
    d->st = NULL;
    d->v = NULL;
    th_rmtree(d->dir);
    free(d->dir);
    free(d->store_path);
    free(d->key_path);
    d->dir = d->store_path = d->key_path = NULL;
}

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int fired;
} end_waiter;

static void on_end(void *ud)
{
    end_waiter *w = ud;
    pthread_mutex_lock(&w->mu);
    w->fired++;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void th_wait_run_end(ls_flow_t *f, const char *name, long ms)
{
    end_waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    uint64_t id;
    ls_err err = {0};
    ls_rc rc = ls_flow_watch(f, name, strlen(name), on_end, &w, &id, &err);
    if (rc == LS_EEXIST) return; /* ended already */
    th_ok(rc, &err);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&w.mu);
    while (!w.fired && pthread_cond_timedwait(&w.cv, &w.mu, &ts) != ETIMEDOUT) {}
    pthread_mutex_unlock(&w.mu);
    /* Pending: cancels it; fired: returns once on_end has returned, so w
     * can go. */
    if (ls_flow_unwatch(f, id)) fail_msg("run %s did not end within %ld ms", name, ms);
    assert_int_equal(w.fired, 1);
}

ls_rc th_worker_open(void *ud, unsigned index, void **worker, ls_err *err)
{
    (void)index;
    (void)err;
    *worker = ud;
    return LS_OK;
}

void th_worker_close(void *ud, void *worker)
{
    (void)ud;
    (void)worker;
}

int th_act_ok(ls_flow_act *a, ls_rc rc, const ls_err *err)
{
    if (rc == LS_OK) return 1;
    const char *m = ls_err_text(err);
    ls_err e2;
    if (ls_flow_act_fail(a, m, strlen(m), NULL, 0, &e2) != LS_OK) ls_flow_act_abandon(a);
    return 0;
}

int th_run_child(int (*fn)(const char *arg), const char *arg)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) _exit(fn(arg));
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status)) return -WTERMSIG(status);
    return WEXITSTATUS(status);
}

void th_damage_largest_table(const char *dir, off_t at_least)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    char *file = NULL;
    off_t largest = 0;
    const struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n < 4 ||
            (strcmp(de->d_name + n - 4, ".ldb") != 0 && strcmp(de->d_name + n - 4, ".sst") != 0))
            continue;
        char *f = th_path(dir, de->d_name);
        struct stat sb;
        assert_int_equal(stat(f, &sb), 0);
        if (sb.st_size > largest) {
            free(file);
            file = f;
            largest = sb.st_size;
        } else {
            free(f);
        }
    }
    closedir(d);
    if (file == NULL) {
        fail_msg("no table file in %s", dir);
        return;
    }
    assert_true(largest > at_least);

    int fd = open(file, O_RDWR);
    assert_true(fd >= 0);
    unsigned char junk[64];
    memset(junk, 0x5A, sizeof junk);
    assert_int_equal(pwrite(fd, junk, sizeof junk, largest / 2), (ssize_t)sizeof junk);
    close(fd);
    free(file);
}

/* ---- records as older lodestoned wrote them ---- */

void th_event_as(ls_vault_t *v, unsigned version, const ls_id *id, const ls_id *arrival,
                 unsigned started, ls_event *ev, ls_buf *sealed)
{
    ls_err err = {0};
    ls_buf pt = LS_BUF_INIT;
    if (ev->payload_len)
        th_ok(flow_open_event_raw_with(v, id, arrival, started, ev, &pt, &err), &err);
    /* Older writers sealed nothing for a kind that holds no payload, nor
     * for a failure without a traceback. */
    int keep = ev->payload_len && !flow_event_holds_none(ev->type) &&
               (pt.len || flow_event_holds_payload(ev->type));
    ev->payload = NULL;
    ev->payload_len = 0;
    if (keep && version == 1) {
        uint64_t seq = arrival ? FLOW_SEQ_INBOX : ev->seq;
        unsigned char ad[LS_ID_BYTES + 8];
        memcpy(ad, id->b, LS_ID_BYTES);
        for (int i = 0; i < 8; i++) ad[LS_ID_BYTES + i] = (unsigned char)(seq >> (56 - 8 * i));
        th_ok(ls_vault_seal(v, ad, sizeof ad, pt.ptr, pt.len, sealed, &err), &err);
        ev->payload = sealed->ptr;
        ev->payload_len = sealed->len;
    } else if (keep) {
        th_ok(flow_seal_event_as(v, version, id, arrival, 0, ev, pt.ptr, pt.len, sealed, &err),
              &err);
    }
    ev->version = version;
    ls_buf_free(&pt);
}

void th_event_as_v1(ls_vault_t *v, const ls_id *id, const ls_id *arrival, unsigned started,
                    ls_event *ev, ls_buf *sealed)
{
    th_event_as(v, 1, id, arrival, started, ev, sealed);
}

/* Calls fn for each history event (inbox 0) or inbox entry (inbox 1) of
 * run (NULL: every run) in st, with its run id and arrival (NULL for a
 * history event). */
static void each_event(ls_store_t *st, int inbox, const ls_id *run,
                       void (*fn)(void *ud, const void *key, size_t klen, const ls_id *id,
                                  const ls_id *arrival, ls_event *ev),
                       void *ud)
{
    ls_err err = {0};
    unsigned char prefix[1 + LS_ID_BYTES] = {inbox ? LS_NS_SIGNAL : LS_NS_HISTORY};
    if (run) memcpy(prefix + 1, run->b, LS_ID_BYTES);
    ls_store_iter_t *it = NULL;
    const void *key, *val;
    size_t klen, vlen;
    ls_rc rc;
    th_ok(ls_store_iter_prefix(&it, st, prefix, run ? sizeof prefix : 1, 0, &err), &err);
    while ((rc = ls_store_iter_next(it, &key, &klen, &val, &vlen, &err)) == LS_OK) {
        ls_id id, arrival;
        ls_event ev;
        assert_true(klen >= 1 + LS_ID_BYTES);
        memcpy(id.b, (const unsigned char *)key + 1, LS_ID_BYTES);
        if (inbox) {
            assert_int_equal(klen, 1 + 2 * LS_ID_BYTES);
            memcpy(arrival.b, (const unsigned char *)key + 1 + LS_ID_BYTES, LS_ID_BYTES);
        }
        th_ok(ls_event_decode(val, vlen, &ev, &err), &err);
        fn(ud, key, klen, &id, inbox ? &arrival : NULL, &ev);
    }
    assert_int_equal(rc, LS_ENOTFOUND);
    ls_store_iter_free(it);
}

typedef struct {
    ls_store_t *st; /* as it was: written once every event is read */
    ls_vault_t *v;
    unsigned version;
    ls_store_batch_t *b;
    ls_buf sealed, val;
    size_t n;
} as_v1_state;

static void put_as_v1(void *ud, const void *key, size_t klen, const ls_id *id, const ls_id *arrival,
                      ls_event *ev)
{
    as_v1_state *s = ud;
    ls_err err = {0};
    unsigned started = 0;
    if (flow_first_version(s->st, id, &started, &err) != LS_OK) started = 0; /* no history */
    th_event_as(s->v, s->version, id, arrival, started, ev, &s->sealed);
    th_ok(ls_event_encode(ev, &s->val, &err), &err);
    ls_store_batch_put(s->b, key, klen, s->val.ptr, s->val.len);
    s->n++;
}

size_t th_events_as_v1(ls_store_t *st, ls_vault_t *v, int inbox, const ls_id *run)
{
    return th_events_as(st, v, 1, inbox, run);
}

size_t th_events_as(ls_store_t *st, ls_vault_t *v, unsigned version, int inbox, const ls_id *run)
{
    ls_err err = {0};
    as_v1_state s = {
        .st = st, .v = v, .version = version, .sealed = LS_BUF_INIT, .val = LS_BUF_INIT};
    th_ok(ls_store_batch_new(&s.b, &err), &err);
    each_event(st, inbox, run, put_as_v1, &s);
    th_ok(ls_store_write(st, s.b, LS_STORE_SYNC, &err), &err);
    ls_store_batch_free(s.b);
    ls_buf_free(&s.sealed);
    ls_buf_free(&s.val);
    return s.n;
}

typedef struct {
    size_t n, v1;
} count_state;

static void count_payload(void *ud, const void *key, size_t klen, const ls_id *id,
                          const ls_id *arrival, ls_event *ev)
{
    (void)key, (void)klen, (void)id, (void)arrival;
    count_state *c = ud;
    if (ev->payload_len == 0) return;
    c->n++;
    c->v1 += ev->version == 1;
}

size_t th_payload_events(ls_store_t *st, int inbox, const ls_id *run, size_t *v1)
{
    count_state c = {0, 0};
    each_event(st, inbox, run, count_payload, &c);
    if (v1) *v1 = c.v1;
    return c.n;
}
