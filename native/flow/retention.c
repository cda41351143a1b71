/* SPDX-License-Identifier: MIT
 * Retention: deletes finished runs once they have been over for longer
 * than the retention of their type, with everything they left in the
 * store, in bounded batches of whole runs, from a thread of its own.
 *
 * Why the writes are not synced: a deletion that a power cut loses brings
 * whole runs back (each batch is atomic in LevelDB's log, synced or not),
 * and the next pass deletes them again; a later synced transition makes
 * it durable anyway, since LevelDB's log is written in order. Not syncing
 * keeps the pass from competing with transitions for fsyncs.
 */
#include "ls_config.h"

#include <errno.h>
#include <sched.h>
#include <string.h>
#include <time.h>

#include "flow_int.h"
#include "lodestone/ls_alloc.h"
#include "retention.h"

/* ---- configuration ---- */

void flow_retention_init(ls_flow_t *f)
{
    if (f->o.retention_ms == 0) f->o.retention_ms = LS_FLOW_RETENTION_MS;
    if (f->o.retention_ms < 0) f->o.retention_ms = LS_FLOW_KEEP_FOREVER;
    if (f->o.retention_interval_ms <= 0) f->o.retention_interval_ms = LS_FLOW_RETENTION_INTERVAL;
    if (f->o.retention_batch == 0) f->o.retention_batch = LS_FLOW_RETENTION_BATCH;
    pthread_cond_init(&f->ret_cv, NULL);
    pthread_mutex_init(&f->ret_mu, NULL);
}

void flow_retention_free(ls_flow_t *f)
{
    pthread_cond_destroy(&f->ret_cv);
    pthread_mutex_destroy(&f->ret_mu);
}

/* The retention of a type: ms, or LS_FLOW_KEEP_FOREVER. */
static int64_t type_retention(ls_flow_t *f, const char *type, size_t len)
{
    int64_t ms = LS_FLOW_RETENTION_DEFAULT;
    if (f->o.runner->retention_ms) ms = f->o.runner->retention_ms(f->o.runner_ud, type, len);
    if (ms == LS_FLOW_KEEP_FOREVER) return ms;
    if (ms <= 0) ms = f->o.retention_ms; /* the default (itself maybe forever) */
    return ms;
}

/* The shortest retention of any type (runs of types no longer loaded get
 * the default): nothing that ended later than now minus it can go.
 * LS_FLOW_KEEP_FOREVER when every run is kept. */
static ls_rc shortest_retention(ls_flow_t *f, int64_t *out, ls_err *err)
{
    int64_t best = f->o.retention_ms;
    *out = best;
    if (f->o.runner->retention_ms == NULL) return LS_OK;
    /* list_types cannot say it ran out of memory: room made first. */
    ls_buf names = LS_BUF_INIT;
    ls_rc rc = ls_buf_reserve(&names, 4096, err);
    if (rc != LS_OK) return rc;
    f->o.runner->list_types(f->o.runner_ud, &names);
    const char *p = (const char *)names.ptr, *end = p + names.len;
    while (p && p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end;
        while (p < stop && *p == ' ') p++;
        if (p < stop) {
            int64_t ms = type_retention(f, p, (size_t)(stop - p));
            if (ms > 0 && (best < 0 || ms < best)) best = ms;
        }
        p = comma ? comma + 1 : end;
    }
    ls_buf_free(&names);
    *out = best;
    return LS_OK;
}

/* ---- one pass ---- */

#define TYPE_CACHE 16

typedef struct {
    ls_flow_t *f;
    ls_store_batch_t *b;
    ls_buf k, rec, kx;
    uint64_t runs; /* runs in b */
    size_t bytes;  /* key bytes in b */
    flow_retention_result res;
    struct {
        char name[128];
        size_t len;
        int64_t ms;
    } cache[TYPE_CACHE];
    unsigned ncache, next;
} pass;

static int64_t cached_retention(pass *p, const char *type, size_t len)
{
    for (unsigned i = 0; i < p->ncache; i++)
        if (p->cache[i].len == len && memcmp(p->cache[i].name, type, len) == 0)
            return p->cache[i].ms;
    int64_t ms = type_retention(p->f, type, len);
    if (len < sizeof p->cache[0].name) {
        unsigned i = p->ncache < TYPE_CACHE ? p->ncache++ : p->next++ % TYPE_CACHE;
        memcpy(p->cache[i].name, type, len);
        p->cache[i].len = len;
        p->cache[i].ms = ms;
    }
    return ms;
}

static void del(pass *p, const void *key, size_t klen)
{
    ls_store_batch_delete(p->b, key, klen);
    p->bytes += klen;
}

/* Deletes the current p->k when the store holds it. */
static ls_rc del_if_present(pass *p, ls_err *err)
{
    ls_rc rc = ls_store_get(p->f->o.store, p->k.ptr, p->k.len, &p->kx, err);
    if (rc == LS_ENOTFOUND) return LS_OK;
    if (rc == LS_OK) del(p, p->k.ptr, p->k.len);
    return rc;
}

/* Every key under prefix p->k; with timers set, also the durable timer
 * keys that history events (TimerStarted, a retryable StepFailed) name. */
static ls_rc del_prefix(pass *p, const ls_id *id, int timers, ls_err *err)
{
    ls_store_iter_t *it = NULL;
    const void *key, *val;
    size_t klen, vlen;
    ls_rc rc = ls_store_iter_prefix(&it, p->f->o.store, p->k.ptr, p->k.len, 0, err);
    while (rc == LS_OK && (rc = ls_store_iter_next(it, &key, &klen, &val, &vlen, err)) == LS_OK) {
        del(p, key, klen);
        ls_event ev;
        if (!timers || ls_event_decode(val, vlen, &ev, NULL) != LS_OK || ev.due_ms == 0 ||
            (ev.type != LS_EV_TIMER_STARTED && ev.type != LS_EV_STEP_FAILED))
            continue;
        /* Normally gone with the timer's end; left only by an end that
         * raced it. */
        if ((rc = flow_key_timer(&p->k, ev.due_ms, id, ev.seq, err)) != LS_OK ||
            (rc = del_if_present(p, err)) != LS_OK)
            break;
    }
    ls_store_iter_free(it);
    return rc == LS_ENOTFOUND ? LS_OK : rc;
}

/* Queues the deletion of everything run id has: record, history (and
 * timers it names), status, type, name and ended index keys, run info
 * (custom status, parent link, ...) and inbox leftovers. */
static ls_rc add_run(pass *p, const ls_id *id, const ls_run_record *rec, const void *ekey,
                     size_t eklen, ls_err *err)
{
    ls_rc rc;
    del(p, ekey, eklen);
    if ((rc = ls_run_key(&p->k, id, err)) != LS_OK) return rc;
    del(p, p->k.ptr, p->k.len);
    if ((rc = flow_key_status(&p->k, rec->status, id, err)) != LS_OK) return rc;
    del(p, p->k.ptr, p->k.len);
    if ((rc = flow_key_type(&p->k, rec->type, rec->type_len, id, err)) != LS_OK) return rc;
    del(p, p->k.ptr, p->k.len);
    /* The name index, when it still names this run (a run named by its
     * own id has none). */
    if ((rc = flow_key_name(&p->k, rec->name, rec->name_len, err)) != LS_OK) return rc;
    rc = ls_store_get(p->f->o.store, p->k.ptr, p->k.len, &p->kx, err);
    if (rc == LS_OK && p->kx.len == LS_ID_BYTES && memcmp(p->kx.ptr, id->b, LS_ID_BYTES) == 0)
        del(p, p->k.ptr, p->k.len);
    else if (rc != LS_OK && rc != LS_ENOTFOUND)
        return rc;
    if ((rc = ls_history_prefix(&p->k, id, err)) != LS_OK ||
        (rc = del_prefix(p, id, 1, err)) != LS_OK)
        return rc;
    ls_buf_clear(&p->k);
    if ((rc = ls_key_ns(&p->k, LS_NS_RUNINFO, err)) != LS_OK ||
        (rc = ls_buf_append(&p->k, id->b, LS_ID_BYTES, err)) != LS_OK ||
        (rc = del_prefix(p, id, 0, err)) != LS_OK)
        return rc;
    if ((rc = flow_key_inbox(&p->k, id, NULL, err)) != LS_OK ||
        (rc = del_prefix(p, id, 0, err)) != LS_OK)
        return rc;
    p->runs++;
    return LS_OK;
}

/* Writes the batch: whole runs, atomically. Returns 1 in *stop when the
 * engine is stopping. */
static ls_rc flush(pass *p, int *stop, ls_err *err)
{
    ls_flow_t *f = p->f;
    ls_rc rc = LS_OK;
    if (p->runs || ls_store_batch_count(p->b)) {
        for (int i = 0; i < LS_FLOW_STRIPES; i++) pthread_mutex_lock(&f->stripe[i]);
        rc = ls_store_write(f->o.store, p->b, 0, err);
        for (int i = LS_FLOW_STRIPES - 1; i >= 0; i--) pthread_mutex_unlock(&f->stripe[i]);
        /* Deleted runs have no answers: the cache forgets (it holds only
         * recent ends, and passes are rare). */
        if (p->runs) flow_results_clear(f->results);
    }
    ls_store_batch_clear(p->b);
    pthread_mutex_lock(&f->mu);
    if (rc == LS_OK && p->runs) {
        f->st.runs_deleted += p->runs;
        p->res.deleted += p->runs;
        p->res.batches++;
        if (p->runs > p->res.max_batch) p->res.max_batch = p->runs;
    }
    *stop = f->stopping;
    pthread_mutex_unlock(&f->mu);
    p->runs = 0;
    p->bytes = 0;
    if (rc == LS_OK && !*stop) sched_yield(); /* let transitions have the store */
    return rc;
}

/* Looks at one entry of the ended index: queues the run's deletion when
 * its type's retention has passed. */
static ls_rc visit(pass *p, int64_t now, const void *key, size_t klen, ls_err *err)
{
    ls_flow_t *f = p->f;
    ls_key_reader kr;
    int64_t ended;
    ls_id id = {{0}};
    unsigned char tag;
    ls_key_reader_init(&kr, key, klen);
    if (ls_key_read_ns(&kr, NULL, err) != LS_OK || ls_key_read_bytes(&kr, &tag, 1, err) != LS_OK ||
        ls_key_read_i64(&kr, &ended, err) != LS_OK ||
        ls_key_read_bytes(&kr, id.b, LS_ID_BYTES, err) != LS_OK || kr.left != 0)
        return ls_err_set(err, LS_ECORRUPT, "ended index key of %zu bytes", klen);
    /* Still in memory: its end is being applied right now. */
    pthread_mutex_lock(&f->mu);
    int live = flow_runtab_find(&f->runs, &id) != NULL;
    pthread_mutex_unlock(&f->mu);
    if (live) return LS_OK;
    ls_run_record rec;
    ls_rc rc = ls_run_key(&p->k, &id, err);
    if (rc == LS_OK) rc = ls_store_get(f->o.store, p->k.ptr, p->k.len, &p->rec, err);
    if (rc == LS_ENOTFOUND) { /* a stale entry: only it goes */
        del(p, key, klen);
        return LS_OK;
    }
    if (rc == LS_OK) rc = ls_run_decode(p->rec.ptr, p->rec.len, &rec, err);
    if (rc != LS_OK) return rc;
    if (rec.status == LS_RUN_RUNNING) return LS_OK; /* never: the end moves both */
    int64_t keep = cached_retention(p, rec.type, rec.type_len);
    if (keep < 0 || ended >= now - keep) {
        p->res.kept++;
        return LS_OK;
    }
    return add_run(p, &id, &rec, key, klen, err);
}

/* Whether run id is gone: not in memory and without a record. */
static ls_rc run_gone(pass *p, const ls_id *id, int *gone, ls_err *err)
{
    pthread_mutex_lock(&p->f->mu);
    int live = flow_runtab_find(&p->f->runs, id) != NULL;
    pthread_mutex_unlock(&p->f->mu);
    *gone = 0;
    if (live) return LS_OK;
    ls_rc rc = ls_run_key(&p->k, id, err);
    if (rc == LS_OK) rc = ls_store_get(p->f->o.store, p->k.ptr, p->k.len, &p->rec, err);
    if (rc == LS_ENOTFOUND) *gone = 1;
    return rc == LS_ENOTFOUND ? LS_OK : rc;
}

/* Inbox entries of runs that no longer exist: the end of a detached child
 * that reached its parent after the parent was deleted. (Every other
 * writer of an inbox entry has just found its run; the namespace holds
 * only entries not yet taken, so the walk is short.) */
static ls_rc sweep_inbox(pass *p, int *stop, ls_err *err)
{
    ls_store_iter_t *it = NULL;
    const void *key;
    size_t klen;
    ls_id last;
    int have = 0, gone = 0;
    ls_buf_clear(&p->k);
    ls_rc rc = ls_key_ns(&p->k, LS_NS_SIGNAL, err);
    if (rc == LS_OK) rc = ls_store_iter_prefix(&it, p->f->o.store, p->k.ptr, p->k.len, 0, err);
    while (rc == LS_OK && !*stop &&
           (rc = ls_store_iter_next(it, &key, &klen, NULL, NULL, err)) == LS_OK) {
        if (klen < 1 + LS_ID_BYTES) continue;
        if (!have || memcmp(last.b, (const unsigned char *)key + 1, LS_ID_BYTES) != 0) {
            memcpy(last.b, (const unsigned char *)key + 1, LS_ID_BYTES);
            have = 1;
            if ((rc = run_gone(p, &last, &gone, err)) != LS_OK) break;
        }
        if (!gone) continue;
        del(p, key, klen);
        p->res.orphans++;
        if (p->bytes >= LS_FLOW_RETENTION_BYTES) rc = flush(p, stop, err);
    }
    ls_store_iter_free(it);
    if (rc == LS_ENOTFOUND) rc = LS_OK;
    if (rc == LS_OK && !*stop) rc = flush(p, stop, err);
    return rc;
}

ls_rc flow_retention_pass(ls_flow_t *f, flow_retention_result *res, ls_err *err)
{
    pthread_mutex_lock(&f->ret_mu);
    pass *p = ls_calloc(1, sizeof *p);
    if (res) memset(res, 0, sizeof *res);
    if (p == NULL) {
        pthread_mutex_unlock(&f->ret_mu);
        return ls_err_set(err, LS_ENOMEM, "retention: out of memory");
    }
    p->f = f;
    ls_buf lower = LS_BUF_INIT, upper = LS_BUF_INIT;
    ls_store_iter_t *it = NULL;
    int stop = 0;
    int64_t now = flow_now(f), shortest;
    ls_rc rc = shortest_retention(f, &shortest, err);
    if (rc != LS_OK || shortest < 0) goto done; /* < 0: every run is kept */
    if ((rc = ls_store_batch_new(&p->b, err)) != LS_OK ||
        (rc = flow_key_ended(&lower, INT64_MIN, NULL, err)) != LS_OK ||
        (rc = flow_key_ended(&upper, now - shortest, NULL, err)) != LS_OK)
        goto done;
    ls_store_range range = {lower.ptr, lower.len, upper.ptr, upper.len, 0};
    if ((rc = ls_store_iter_new(&it, f->o.store, &range, err)) != LS_OK) goto done;
    const void *key;
    size_t klen;
    for (unsigned n = 1;
         !stop && (rc = ls_store_iter_next(it, &key, &klen, NULL, NULL, err)) == LS_OK; n++) {
        if ((rc = visit(p, now, key, klen, err)) != LS_OK) break;
        if (n % 1024 == 0) { /* a long walk past kept runs: look up */
            pthread_mutex_lock(&f->mu);
            stop = f->stopping;
            pthread_mutex_unlock(&f->mu);
        }
        if (p->runs >= f->o.retention_batch || p->bytes >= LS_FLOW_RETENTION_BYTES)
            if ((rc = flush(p, &stop, err)) != LS_OK) break;
    }
    if (rc == LS_ENOTFOUND) rc = LS_OK;
    if (rc == LS_OK && !stop) rc = flush(p, &stop, err);
    if (rc == LS_OK && !stop) rc = sweep_inbox(p, &stop, err);
done:
    if (rc != LS_OK) ls_err_prefix(err, "retention");
    pthread_mutex_lock(&f->mu);
    f->st.retention_passes++;
    pthread_mutex_unlock(&f->mu);
    if (res) *res = p->res;
    ls_store_iter_free(it);
    ls_store_batch_free(p->b);
    ls_buf_free(&lower);
    ls_buf_free(&upper);
    ls_buf_free(&p->k);
    ls_buf_free(&p->rec);
    ls_buf_free(&p->kx);
    ls_free(p);
    pthread_mutex_unlock(&f->ret_mu);
    return rc;
}

/* ---- the thread ---- */

static void *retention_main(void *arg)
{
    ls_flow_t *f = arg;
    int64_t wait = f->o.retention_interval_ms < LS_FLOW_RETENTION_FIRST ? f->o.retention_interval_ms
                                                                        : LS_FLOW_RETENTION_FIRST;
    pthread_mutex_lock(&f->mu);
    while (!f->stopping) {
        struct timespec ts;
        flow_deadline_in(&ts, wait);
        while (!f->stopping && pthread_cond_timedwait(&f->ret_cv, &f->mu, &ts) != ETIMEDOUT) {}
        if (f->stopping) break;
        pthread_mutex_unlock(&f->mu);
        flow_retention_result res = {0};
        ls_err err;
        ls_rc rc = flow_retention_pass(f, &res, &err);
        if (rc != LS_OK)
            flow_log(f, LS_FLOW_LOG_WARN, NULL, "%s (the next pass tries again)",
                     ls_err_text(&err));
        if (res.deleted)
            flow_log(f, LS_FLOW_LOG_INFO, NULL,
                     "retention: deleted %llu finished runs in %llu writes",
                     (unsigned long long)res.deleted, (unsigned long long)res.batches);
        pthread_mutex_lock(&f->mu);
        wait = f->o.retention_interval_ms;
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

ls_rc flow_retention_start(ls_flow_t *f, ls_err *err)
{
    int e = pthread_create(&f->ret_thread, NULL, retention_main, f);
    if (e != 0)
        return ls_err_set(err, LS_EIO, "flow: cannot start the retention thread: %s", strerror(e));
    pthread_setname_np(f->ret_thread, "ls-retention");
    f->ret_started = 1;
    return LS_OK;
}

void flow_retention_join(ls_flow_t *f)
{
    if (!f->ret_started) return;
    pthread_mutex_lock(&f->mu);
    pthread_cond_broadcast(&f->ret_cv);
    pthread_mutex_unlock(&f->mu);
    pthread_join(f->ret_thread, NULL);
    f->ret_started = 0;
}
