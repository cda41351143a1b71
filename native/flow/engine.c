/* SPDX-License-Identifier: MIT
 * The engine's life cycle: recovery from the store, worker threads that
 * take runs from the ready queue and hand each activation to the runner,
 * the timer thread that wakes suspended runs, starts, watches and shutdown.
 * What an activation may do is in act.c; JSON views in query.c.
 */
#include "ls_config.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <sodium.h>
#include <string.h>
#include <time.h>

#include "flow_int.h"
#include "lodestone/ls_alloc.h"
#include "ls_json.h"
#include "schedule.h"
#include "retention.h"

/* ---- small helpers ---- */

int64_t flow_now(const ls_flow_t *f)
{
    return ls_clock_wall_ms(f->clock);
}

void flow_log(ls_flow_t *f, int level, const char *run, const char *fmt, ...)
{
    if (f->o.log == NULL) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    f->o.log(f->o.log_ud, level, run, msg);
}

/* The line for msg[0..keep), then the mark saying that dropped bytes
 * were cut (none when dropped is 0). */
static size_t log_line(const char *msg, size_t keep, size_t dropped, char *out, size_t cap)
{
    assert(cap >= FLOW_LOG_LINECAP && keep <= LS_FLOW_LOG_LINEMAX);
    size_t n = 0;
    for (size_t i = 0; i < keep; i++) {
        if (msg[i] != '\0') {
            out[n++] = msg[i];
        } else { /* U+FFFD */
            out[n++] = (char)0xEF;
            out[n++] = (char)0xBF;
            out[n++] = (char)0xBD;
        }
    }
    if (dropped)
        n += (size_t)snprintf(out + n, cap - n, " [cut: %zu byte%s dropped]", dropped,
                              dropped == 1 ? "" : "s");
    out[n] = '\0';
    return n;
}

size_t flow_log_line(const char *msg, size_t len, char *out, size_t cap)
{
    size_t keep = len;
    if (len > LS_FLOW_LOG_LINEMAX) keep = ls_utf8_cut(msg, LS_FLOW_LOG_LINEMAX);
    return log_line(msg, keep, len - keep, out, cap);
}

/* ---- secrets out of texts kept in clear ---- */

static void mask_note(void *ud, const char *msg)
{
    flow_log(ud, LS_FLOW_LOG_WARN, NULL, "%s", msg);
}

ls_rc flow_mask(ls_flow_t *f, const char *text, size_t len, size_t limit, ls_buf *out, size_t *used)
{
    return ls_vault_mask_text(f->mask, text, len, limit, out, used, NULL);
}

size_t flow_log_text(ls_flow_t *f, const char *msg, size_t len, ls_buf *scratch, char *out,
                     size_t cap)
{
    size_t used = 0;
    ls_buf_clear(scratch);
    if (flow_mask(f, msg, len, LS_FLOW_LOG_LINEMAX, scratch, &used) != LS_OK)
        return (size_t)snprintf(out, cap, "[a line of %zu bytes, not logged: out of memory]", len);
    return log_line((const char *)scratch->ptr, scratch->len, len - used, out, cap);
}

void flow_deadline_in(struct timespec *ts, int64_t in_ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += (time_t)(in_ms / 1000);
    ts->tv_nsec += (long)(in_ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Wakes worker w, waiting on its cv or in its runner's poll; it then
 * counts as busy, so that the next wake goes to another. Caller holds mu. */
static void worker_wake(ls_flow_t *f, flow_worker *w)
{
    if (w->idle) {
        w->idle = 0;
        pthread_cond_signal(&w->cv);
    } else if (w->polling) {
        w->polling = 0;
        f->o.runner->wake(f->o.runner_ud, w->rw);
    }
}

/* Caller holds mu. */
static void enqueue(ls_flow_t *f, flow_run *r)
{
    r->state = R_QUEUED;
    r->qnext = NULL;
    if (f->q_tail)
        f->q_tail->qnext = r;
    else
        f->q_head = r;
    f->q_tail = r;
    f->queued++;
    for (unsigned i = 0; f->workers && i < f->workers_started; i++) {
        flow_worker *w = &f->workers[i];
        if ((w->idle || w->polling) && w->inflight < f->inflight_cap) {
            worker_wake(f, w);
            break;
        }
    }
}

/* Caller holds mu. */
static flow_run *dequeue(ls_flow_t *f)
{
    flow_run *r = f->q_head;
    if (r == NULL) return NULL;
    f->q_head = r->qnext;
    if (f->q_head == NULL) f->q_tail = NULL;
    r->qnext = NULL;
    f->queued--;
    return r;
}

/* Caller holds mu: wake a run (a timer fired, or it was started). */
static void wake(ls_flow_t *f, flow_run *r)
{
    if (r->held && !atomic_load(&r->terminating)) return; /* it waits for a slot */
    if (r->state == R_IDLE)
        enqueue(f, r);
    else if (r->state == R_BUSY)
        r->again = 1;
}

/* ---- statistics ---- */

const double LS_FLOW_STEP_BUCKETS[LS_FLOW_STEP_NBUCKETS] = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};

/* The counters of type, created when absent (NULL: out of memory). Caller
 * holds mu. */
static flow_tstat *type_stat(ls_flow_t *f, const char *type)
{
    flow_tstat *t = f->tstats;
    while (t && strcmp(t->type, type) != 0) t = t->next;
    if (t == NULL) {
        t = ls_calloc(1, sizeof *t);
        if (t == NULL || (t->type = ls_strdup(type)) == NULL) {
            ls_free(t);
            return NULL;
        }
        t->next = f->tstats;
        f->tstats = t;
    }
    return t;
}

void flow_count_type(ls_flow_t *f, const char *type, ls_run_status status)
{
    flow_tstat *t = type_stat(f, type); /* made at start or recovery: no allocation here */
    if (t && status >= 1 && status <= LS_RUN_STATUS_LAST) t->n[status]++;
}

void flow_count_step(ls_flow_t *f, int64_t ns)
{
    if (ns < 0) ns = 0;
    double s = (double)ns / 1e9;
    for (int i = 0; i < LS_FLOW_STEP_NBUCKETS; i++)
        if (s <= LS_FLOW_STEP_BUCKETS[i]) f->st.step_hist[i]++;
    f->st.step_count++;
    f->st.step_sum_us += (uint64_t)(ns / 1000);
}

ls_rc ls_flow_type_stats(ls_flow_t *f, ls_buf *out, ls_err *err)
{
    json_t *o = json_object();
    if (o == NULL) return ls_err_set(err, LS_ENOMEM, "out of memory");
    pthread_mutex_lock(&f->mu);
    for (flow_tstat *t = f->tstats; t; t = t->next) {
        json_t *c = json_object();
        json_object_set_new(c, "started", json_integer((json_int_t)t->n[LS_RUN_RUNNING]));
        for (int s = LS_RUN_COMPLETED; s <= LS_RUN_STATUS_LAST; s++)
            json_object_set_new(c, ls_run_status_name((ls_run_status)s),
                                json_integer((json_int_t)t->n[s]));
        json_object_set_new(o, t->type, c);
    }
    pthread_mutex_unlock(&f->mu);
    ls_buf_clear(out);
    ls_rc rc = ls_json_dump(o, out, err);
    json_decref(o);
    return rc;
}

/* ---- concurrency limits ----
 * A type with limits admits at most `limit` runs per key value (and
 * `total` of the type) at once; a run started beyond them is held: stored
 * and listed, never activated, until an admitted run of its bucket ends;
 * then the oldest held run that fits is admitted. All under mu. */

#define TOTAL_KEY "\x01"

typedef struct {
    unsigned limit, total;         /* 0: no limit */
    char key[LS_FLOW_NAMEMAX + 1]; /* input field path; "" for one bucket */
} flow_limits;

/* The type's limits from the runner; 0 when none (or unreadable). */
static int limits_of(ls_flow_t *f, const char *type, size_t tlen, flow_limits *l)
{
    memset(l, 0, sizeof *l);
    if (f->o.runner->type_limits == NULL) return 0;
    ls_buf text = LS_BUF_INIT;
    int has = f->o.runner->type_limits(f->o.runner_ud, type, tlen, &text);
    json_t *j = NULL;
    if (has && ls_json_parse((const char *)text.ptr, text.len, &j, NULL) == LS_OK) {
        json_t *v = json_object_get(j, "limit");
        l->limit =
            json_is_integer(v) && json_integer_value(v) > 0 ? (unsigned)json_integer_value(v) : 0;
        v = json_object_get(j, "total");
        l->total =
            json_is_integer(v) && json_integer_value(v) > 0 ? (unsigned)json_integer_value(v) : 0;
        v = json_object_get(j, "key");
        if (json_is_string(v)) snprintf(l->key, sizeof l->key, "%s", json_string_value(v));
    }
    json_decref(j);
    ls_buf_free(&text);
    return has && (l->limit || l->total);
}

/* The key value of an input (compact JSON): the field's text (a string as
 * it is, anything else as JSON), "" when there is no key or no field. */
static char *limits_key(const flow_limits *l, const char *input, size_t ilen)
{
    if (l->key[0] == '\0') return ls_strdup("");
    json_t *j = NULL, *v = NULL;
    char *out = NULL;
    if (ls_json_parse(input, ilen, &j, NULL) == LS_OK) v = ls_json_path(j, l->key);
    if (json_is_string(v)) {
        out = ls_strndup(json_string_value(v), json_string_length(v));
    } else if (v && !json_is_null(v)) {
        char *d = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        out = ls_strdup(d ? d : "");
        free(d);
    } else {
        out = ls_strdup("");
    }
    json_decref(j);
    return out;
}

static flow_bucket *bucket(ls_flow_t *f, const char *type, const char *key, int create)
{
    for (flow_bucket *b = f->buckets; b; b = b->next)
        if (strcmp(b->type, type) == 0 && strcmp(b->key, key) == 0) return b;
    if (!create) return NULL;
    flow_bucket *b = ls_calloc(1, sizeof *b);
    if (b == NULL) return NULL;
    b->type = ls_strdup(type);
    b->key = ls_strdup(key);
    if (b->type == NULL || b->key == NULL) {
        ls_free(b->type);
        ls_free(b->key);
        ls_free(b);
        return NULL;
    }
    b->next = f->buckets;
    f->buckets = b;
    return b;
}

static int fits(ls_flow_t *f, const flow_limits *l, const char *type, const char *key)
{
    flow_bucket *k = bucket(f, type, key, 0), *t = bucket(f, type, TOTAL_KEY, 0);
    return (!l->limit || !k || k->admitted < l->limit) &&
           (!l->total || !t || t->admitted < l->total);
}

/* Counts r (of a type with limits) as admitted. */
static void take_slot(ls_flow_t *f, flow_run *r)
{
    flow_bucket *k = bucket(f, r->type, r->ckey, 1), *t = bucket(f, r->type, TOTAL_KEY, 1);
    if (k) k->admitted++;
    if (t) t->admitted++;
}

static void hold(ls_flow_t *f, flow_run *r)
{
    flow_bucket *k = bucket(f, r->type, r->ckey, 1);
    r->held = 1;
    r->qnext = NULL;
    if (k == NULL) return; /* out of memory: it waits for a restart */
    if (k->held_tail)
        k->held_tail->qnext = r;
    else
        k->held_head = r;
    k->held_tail = r;
}

/* Admits the held runs of type that fit now, oldest first. */
static void admit_waiting(ls_flow_t *f, const char *type)
{
    flow_limits l;
    int limited = limits_of(f, type, strlen(type), &l);
    for (;;) {
        flow_bucket *best = NULL;
        for (flow_bucket *b = f->buckets; b; b = b->next) {
            if (b->held_head == NULL || strcmp(b->type, type) != 0) continue;
            if (limited && !fits(f, &l, type, b->key)) continue;
            if (best == NULL || memcmp(b->held_head->id.b, best->held_head->id.b, LS_ID_BYTES) < 0)
                best = b;
        }
        if (best == NULL) return;
        flow_run *r = best->held_head;
        best->held_head = r->qnext;
        if (best->held_head == NULL) best->held_tail = NULL;
        r->qnext = NULL;
        r->held = 0;
        r->unhold = 1; /* its next write clears the durable mark */
        take_slot(f, r);
        if (r->state == R_IDLE) enqueue(f, r);
    }
}

/* r (of a type with limits) ended or stopped counting: free its slot. */
static void release_slot(ls_flow_t *f, flow_run *r)
{
    if (r->ckey == NULL) return;
    if (r->held) { /* ended while held (terminated): drop it from its queue */
        flow_bucket *k = bucket(f, r->type, r->ckey, 0);
        flow_run **p = k ? &k->held_head : &(flow_run *){NULL};
        flow_run *prev = NULL;
        for (; *p; prev = *p, p = &(*p)->qnext)
            if (*p == r) {
                *p = r->qnext;
                if (k->held_tail == r) k->held_tail = prev;
                break;
            }
        return;
    }
    flow_bucket *k = bucket(f, r->type, r->ckey, 0), *t = bucket(f, r->type, TOTAL_KEY, 0);
    if (k && k->admitted) k->admitted--;
    if (t && t->admitted) t->admitted--;
    admit_waiting(f, r->type);
}

static void buckets_free(ls_flow_t *f)
{
    while (f->buckets) {
        flow_bucket *b = f->buckets;
        f->buckets = b->next;
        ls_free(b->type);
        ls_free(b->key);
        ls_free(b);
    }
}

/* ---- recovery ---- */

static ls_rc read_link(ls_flow_t *f, const ls_id *id, flow_link *l, char pname[LS_FLOW_NAMEMAX + 1],
                       ls_err *err);
static ls_rc read_parent(ls_flow_t *f, const ls_id *id, ls_id *parent, ls_err *err);

/* A branch run's scope and fork (r->branch stays NULL for other runs). */
static ls_rc read_branch(ls_flow_t *f, flow_run *r, ls_buf *val, ls_err *err)
{
    ls_buf k = LS_BUF_INIT;
    ls_rc rc = flow_key_branch(&k, &r->id, err);
    if (rc == LS_OK) rc = ls_store_get(f->o.store, k.ptr, k.len, val, err);
    ls_buf_free(&k);
    if (rc == LS_ENOTFOUND) return LS_OK;
    if (rc == LS_OK && val->len <= 8)
        rc = ls_err_set(err, LS_ECORRUPT, "branch mark of %zu bytes", val->len);
    if (rc != LS_OK) return rc;
    for (int i = 0; i < 8; i++) r->fork = r->fork << 8 | val->ptr[i];
    r->branch = ls_strndup((const char *)val->ptr + 8, val->len - 8);
    return r->branch ? LS_OK : ls_err_set(err, LS_ENOMEM, "recovery: out of memory");
}

static ls_rc load_run(ls_flow_t *f, const ls_id *id, ls_buf *val, ls_err *err)
{
    ls_buf k = LS_BUF_INIT;
    ls_rc rc = ls_run_key(&k, id, err);
    if (rc == LS_OK) rc = ls_store_get(f->o.store, k.ptr, k.len, val, err);
    ls_buf_free(&k);
    if (rc == LS_ENOTFOUND)
        return ls_err_set(err, LS_ECORRUPT, "status index names a run without a record");
    if (rc != LS_OK) return rc;
    ls_run_record rec;
    if ((rc = ls_run_decode(val->ptr, val->len, &rec, err)) != LS_OK) return rc;
    if (rec.status != LS_RUN_RUNNING) return LS_OK; /* index lags? never: same batch */
    flow_run *r = flow_run_new(id, rec.name, rec.name_len, rec.type, rec.type_len);
    if (r == NULL) return ls_err_set(err, LS_ENOMEM, "recovery: out of memory");
    r->created_ms = rec.created_ms;
    r->updated_ms = rec.updated_ms;
    r->last_seq = rec.last_seq;
    r->steps_completed = rec.steps_completed;
    r->attempts_failed = rec.attempts_failed;
    r->version = ls_strndup(rec.version ? rec.version : "", rec.version_len);
    if (r->version == NULL) {
        flow_run_free(r);
        return ls_err_set(err, LS_ENOMEM, "recovery: out of memory");
    }
    ls_buf ck = LS_BUF_INIT;
    rc = flow_key_ckey(&ck, id, err);
    if (rc == LS_OK) rc = ls_store_get(f->o.store, ck.ptr, ck.len, val, err);
    ls_buf_free(&ck);
    if (rc == LS_OK && val->len >= 1) {
        r->held = val->ptr[0] == 1;
        r->ckey = ls_strndup((const char *)val->ptr + 1, val->len - 1);
        if (r->ckey == NULL) rc = ls_err_set(err, LS_ENOMEM, "recovery: out of memory");
    } else if (rc == LS_ENOTFOUND) {
        rc = LS_OK;
    }
    if (rc != LS_OK) {
        flow_run_free(r);
        return rc;
    }
    flow_link l;
    rc = read_link(f, id, &l, NULL, err);
    if (rc == LS_OK) {
        r->has_parent = 1;
        r->parent = l.parent;
        r->depth = l.depth;
        r->depth_known = l.has_depth;
        rc = read_branch(f, r, val, err);
    }
    if (rc != LS_OK && rc != LS_ENOTFOUND) {
        flow_run_free(r);
        return rc;
    }
    return flow_runtab_add(&f->runs, r, err);
}

/* Whether a terminate request found in run id's inbox at start-up (under
 * arrival) is one lodestoned wrote: of version 3, its seal opened. Only
 * then does it interrupt the run's code at once (r->terminating, never
 * cleared); any other is left to the drain, which checks every entry and
 * applies it, or refuses the activation. A forged one must not interrupt
 * every activation of the run. */
static int terminate_sealed(ls_flow_t *f, const ls_id *id, const unsigned char *arrival,
                            const ls_event *ev, ls_buf *pt)
{
    ls_id at;
    ls_err why;
    unsigned started = 0;
    memcpy(at.b, arrival, LS_ID_BYTES);
    return ev->version >= 3 && flow_first_version(f->o.store, id, &started, &why) == LS_OK &&
           flow_open_event(f, id, &at, started, ev, pt, &why) == LS_OK;
}

static ls_rc recover_inbox(ls_flow_t *f, ls_err *err)
{
    ls_buf k = LS_BUF_INIT, pt = LS_BUF_INIT;
    ls_store_iter_t *it = NULL;
    ls_store_batch_t *stale = NULL;
    const void *key, *v;
    size_t klen, vlen, nstale = 0;
    ls_rc rc = ls_key_ns(&k, LS_NS_SIGNAL, err);
    if (rc == LS_OK) rc = ls_store_batch_new(&stale, err);
    if (rc == LS_OK) rc = ls_store_iter_prefix(&it, f->o.store, k.ptr, k.len, 0, err);
    while (rc == LS_OK && (rc = ls_store_iter_next(it, &key, &klen, &v, &vlen, err)) == LS_OK) {
        ls_id id;
        ls_event ev;
        if (klen != 1 + 2 * LS_ID_BYTES) {
            rc = ls_err_set(err, LS_ECORRUPT, "inbox key of %zu bytes", klen);
            break;
        }
        memcpy(id.b, (const unsigned char *)key + 1, LS_ID_BYTES);
        flow_run *r = flow_runtab_find(&f->runs, &id);
        if (r == NULL) {
            ls_store_batch_delete(stale, key, klen);
            nstale++;
            continue;
        }
        r->inbox++;
        if (ls_event_decode(v, vlen, &ev, NULL) == LS_OK && ev.type == LS_EV_WORKFLOW_TERMINATED &&
            terminate_sealed(f, &id, (const unsigned char *)key + 1 + LS_ID_BYTES, &ev, &pt))
            atomic_store(&r->terminating, 1);
    }
    if (rc == LS_ENOTFOUND) rc = LS_OK;
    if (rc == LS_OK && nstale) rc = ls_store_write(f->o.store, stale, LS_STORE_SYNC, err);
    ls_store_iter_free(it);
    ls_store_batch_free(stale);
    ls_buf_free(&k);
    ls_buf_free(&pt);
    return rc;
}

static int cmp_run_id(const void *a, const void *b)
{
    return memcmp((*(flow_run *const *)a)->id.b, (*(flow_run *const *)b)->id.b, LS_ID_BYTES);
}

/* Counts the admitted runs of limited types and queues the held ones,
 * oldest first; then admits what fits (limits may have changed). */
static ls_rc recover_slots(ls_flow_t *f, ls_err *err)
{
    size_t nheld = 0, k = 0;
    for (size_t i = 0; i < f->runs.nb; i++)
        for (flow_run *r = f->runs.b[i]; r; r = r->hnext) {
            if (type_stat(f, r->type) == NULL) /* so that its end is counted */
                return ls_err_set(err, LS_ENOMEM, "recovery: out of memory");
            if (r->ckey && !r->held) take_slot(f, r);
            nheld += r->ckey && r->held;
        }
    if (nheld == 0) return LS_OK;
    flow_run **held = ls_malloc(nheld * sizeof(flow_run *));
    if (held == NULL) return ls_err_set(err, LS_ENOMEM, "recovery: out of memory");
    for (size_t i = 0; i < f->runs.nb; i++)
        for (flow_run *r = f->runs.b[i]; r; r = r->hnext)
            if (r->ckey && r->held) held[k++] = r;
    qsort(held, nheld, sizeof(flow_run *), cmp_run_id);
    for (size_t i = 0; i < nheld; i++) hold(f, held[i]);
    for (size_t i = 0; i < nheld; i++)
        if (held[i]->held) admit_waiting(f, held[i]->type);
    ls_free(held);
    return LS_OK;
}

static ls_rc recover(ls_flow_t *f, ls_err *err)
{
    ls_buf k = LS_BUF_INIT, val = LS_BUF_INIT;
    ls_store_iter_t *it = NULL;
    const void *key, *v;
    size_t klen, vlen;
    ls_rc rc;

    /* Unfinished runs, from the status index. */
    if ((rc = ls_key_ns(&k, LS_NS_INDEX, err)) != LS_OK ||
        (rc = ls_buf_putc(&k, 's', err)) != LS_OK ||
        (rc = ls_buf_putc(&k, (unsigned char)LS_RUN_RUNNING, err)) != LS_OK)
        goto out;
    if ((rc = ls_store_iter_prefix(&it, f->o.store, k.ptr, k.len, 0, err)) != LS_OK) goto out;
    while ((rc = ls_store_iter_next(it, &key, &klen, NULL, NULL, err)) == LS_OK) {
        if (klen != k.len + LS_ID_BYTES) {
            rc = ls_err_set(err, LS_ECORRUPT, "status index key of %zu bytes", klen);
            goto out;
        }
        ls_id id;
        memcpy(id.b, (const unsigned char *)key + k.len, LS_ID_BYTES);
        if ((rc = load_run(f, &id, &val, err)) != LS_OK) goto out;
    }
    if (rc != LS_ENOTFOUND) goto out;
    ls_store_iter_free(it);
    it = NULL;

    /* Durable timers. */
    ls_buf_clear(&k);
    if ((rc = ls_key_ns(&k, LS_NS_TIMER, err)) != LS_OK) goto out;
    if ((rc = ls_store_iter_prefix(&it, f->o.store, k.ptr, k.len, 0, err)) != LS_OK) goto out;
    while ((rc = ls_store_iter_next(it, &key, &klen, &v, &vlen, err)) == LS_OK) {
        ls_key_reader kr;
        ls_store_ns ns;
        int64_t due;
        uint64_t seq;
        ls_id id;
        ls_key_reader_init(&kr, key, klen);
        if (ls_key_read_ns(&kr, &ns, err) != LS_OK || ls_key_read_i64(&kr, &due, err) != LS_OK ||
            ls_key_read_bytes(&kr, id.b, LS_ID_BYTES, err) != LS_OK ||
            ls_key_read_u64(&kr, &seq, err) != LS_OK) {
            rc = ls_err_prefix(err, "timer key");
            goto out;
        }
        flow_run *r = flow_runtab_find(&f->runs, &id);
        if (r == NULL) continue; /* the run ended; a stale timer is harmless */
        rc = ls_flow_timerq_add(f->tq, id.b, seq, due, err);
        if (rc != LS_OK && rc != LS_EEXIST) goto out;
        r->has_timer = 1;
        r->timer_seq = seq;
        r->wait_due = due;
        /* What it waits for: the key's value (empty before signals: a sleep
         * or a retry, shown as a sleep). */
        const char *kv = v;
        r->waiting = 1;
        r->wait_kind = (char)(vlen && (kv[0] == 's' || kv[0] == 'r' || kv[0] == 'g') ? kv[0] : 's');
        ls_free(r->wait_name);
        r->wait_name = vlen > 1 ? ls_strndup(kv + 1, vlen - 1) : ls_strdup("");
        f->st.timers++;
        if (r->wait_name == NULL) {
            rc = ls_err_set(err, LS_ENOMEM, "recovery: out of memory");
            goto out;
        }
    }
    if (rc != LS_ENOTFOUND) goto out;

    /* Inbox entries: runs with some go again; entries of ended runs are
     * stale (they arrived as the run ended) and go. */
    ls_store_iter_free(it);
    it = NULL;
    if ((rc = recover_inbox(f, err)) != LS_OK) goto out;

    /* Runs not waiting on a timer go to the ready queue, oldest first
     * (the table is unordered; ids sort by creation, so queue order only
     * matters for fairness, not correctness). */
    if ((rc = recover_slots(f, err)) != LS_OK) goto out;
    for (size_t i = 0; i < f->runs.nb; i++)
        for (flow_run *r = f->runs.b[i]; r; r = r->hnext)
            if ((!r->has_timer || r->inbox) && (!r->held || atomic_load(&r->terminating)))
                enqueue(f, r);
    f->st.runs_active = f->runs.n;
out:
    ls_store_iter_free(it);
    ls_buf_free(&k);
    ls_buf_free(&val);
    return rc;
}

/* ---- open / close ---- */

ls_rc ls_flow_open(ls_flow_t **out, const ls_flow_opts *opts, ls_err *err)
{
    *out = NULL;
    if (opts == NULL || opts->store == NULL || opts->vault == NULL || opts->runner == NULL)
        return ls_err_set(err, LS_EINVAL, "flow: store, vault and runner are required");
    const ls_flow_runner *rn = opts->runner;
    if ((rn->poll || rn->wake) && (rn->poll == NULL || rn->wake == NULL || rn->resume == NULL))
        return ls_err_set(err, LS_EINVAL, "flow: a runner's poll needs its wake and resume");
    ls_flow_t *f = ls_calloc(1, sizeof *f);
    if (f == NULL) return ls_err_set(err, LS_ENOMEM, "flow: out of memory");
    f->o = *opts;
    f->clock = opts->clock ? opts->clock : ls_clock_system();
    f->nworkers = opts->workers ? opts->workers : 8;
    if (f->o.max_payload == 0) f->o.max_payload = LS_FLOW_MAX_PAYLOAD;
    if (f->o.max_events == 0) f->o.max_events = LS_FLOW_MAX_EVENTS;
    if (f->o.max_steps == 0) f->o.max_steps = LS_FLOW_MAX_STEPS;
    if (f->o.max_depth == 0) f->o.max_depth = LS_FLOW_MAX_DEPTH;
    if (f->o.max_depth > LS_FLOW_MAX_DEPTH_LIMIT) f->o.max_depth = LS_FLOW_MAX_DEPTH_LIMIT;
    flow_retention_init(f);
    f->st.workers = f->nworkers;
    f->inflight_cap = opts->runner->resume ? LS_FLOW_INFLIGHT : 1;
    pthread_mutex_init(&f->mu, NULL);
    pthread_mutex_init(&f->wmu, NULL);
    pthread_mutex_init(&f->cmu, NULL);
    pthread_cond_init(&f->ccv, NULL);
    pthread_cond_init(&f->timer_cv, NULL);
    pthread_cond_init(&f->idle_cv, NULL);
    for (int i = 0; i < LS_FLOW_STRIPES; i++) pthread_mutex_init(&f->stripe[i], NULL);
    pthread_mutex_init(&f->pmu, NULL);
    pthread_cond_init(&f->pcv, NULL);
    atomic_init(&f->interrupt, 0);
    f->next_watch = 1;
    ls_vault_mask_opts mo = {.note = mask_note, .note_ud = f};
    ls_rc rc = ls_vault_mask_new(&f->mask, opts->vault, opts->store, &mo, err);
    if (rc == LS_OK) rc = flow_runtab_init(&f->runs, err);
    if (rc == LS_OK)
        rc = flow_results_new(&f->results, FLOW_RESULTS_ENTRIES, FLOW_RESULTS_BYTES, err);
    if (rc == LS_OK) rc = ls_flow_timerq_new(&f->tq, 0, err);
    if (rc == LS_OK) rc = recover(f, err);
    if (rc == LS_OK) rc = flow_sched_open(f, err); /* schedules */
    if (rc != LS_OK) {
        ls_err_prefix(err, "flow: recovery");
        f->stopped = 1;
        ls_flow_close(f);
        return rc;
    }
    if (f->runs.n)
        flow_log(f, LS_FLOW_LOG_INFO, NULL, "recovered %zu unfinished runs (%zu waiting on timers)",
                 f->runs.n, ls_flow_timerq_count(f->tq));
    *out = f;
    return LS_OK;
}

void ls_flow_close(ls_flow_t *f)
{
    if (f == NULL) return;
    if (!f->stopped && ls_flow_stop(f, 0, NULL) == LS_EBUSY) {
        /* A worker is stuck in runner code: leak rather than free what it
         * still uses. The caller exits soon. */
        return;
    }
    flow_sched_free(f); /* schedules */
    buckets_free(f);
    while (f->tstats) {
        flow_tstat *t = f->tstats;
        f->tstats = t->next;
        ls_free(t->type);
        ls_free(t);
    }
    flow_runtab_free(&f->runs);
    flow_results_free(f->results);
    ls_vault_mask_free(f->mask);
    for (size_t i = 0; i < f->nsources; i++) ls_free(f->sources[i]);
    ls_free(f->sources);
    ls_flow_timerq_free(f->tq);
    while (f->watches) {
        flow_watch *w = f->watches;
        f->watches = w->next;
        ls_free(w);
    }
    for (unsigned i = 0; f->workers && i < f->nworkers; i++)
        pthread_cond_destroy(&f->workers[i].cv);
    ls_free(f->workers);
    pthread_mutex_destroy(&f->mu);
    pthread_mutex_destroy(&f->wmu);
    pthread_mutex_destroy(&f->cmu);
    pthread_cond_destroy(&f->ccv);
    pthread_cond_destroy(&f->timer_cv);
    pthread_cond_destroy(&f->idle_cv);
    for (int i = 0; i < LS_FLOW_STRIPES; i++) pthread_mutex_destroy(&f->stripe[i]);
    pthread_mutex_destroy(&f->pmu);
    pthread_cond_destroy(&f->pcv);
    flow_retention_free(f);
    ls_free(f);
}

/* Appends the string literal s to b. */
#define LIT(b, s, err) ls_buf_append((b), (s), sizeof(s) - 1, (err))

/* ---- the committer: group commit ----
 *
 * Writes reach the store one group at a time: whoever finds the committer
 * idle and nothing queued writes its own transition at once (no thread
 * hand-off: the latency of a lone run is one fsync); otherwise the
 * transition is queued, and the committer thread merges everything queued
 * into one write with one fsync while the writers' workers go on with
 * other activations. c_busy says a group is being written. */

/* Writes a list of commits as one store write. */
static ls_rc write_group(ls_flow_t *f, flow_commit *list, ls_store_batch_t *merged, ls_err *err)
{
    int sync = 0;
    size_t n = 0;
    for (flow_commit *c = list; c; c = c->next) {
        sync |= c->sync;
        n++;
    }
    unsigned flags = sync && !f->o.nosync ? LS_STORE_SYNC : 0;
    ls_rc rc = LS_OK;
    if (n == 1 || merged == NULL) {
        for (flow_commit *c = list; c && rc == LS_OK; c = c->next)
            rc = ls_store_write(f->o.store, c->b, flags, err);
    } else {
        /* LevelDB applies a batch atomically, so merging keeps each
         * transition whole; one fsync makes them all durable. */
        ls_store_batch_clear(merged);
        for (flow_commit *c = list; c; c = c->next) ls_store_batch_append(merged, c->b);
        rc = ls_store_write(f->o.store, merged, flags, err);
    }
    pthread_mutex_lock(&f->mu);
    f->st.commits++;
    f->st.transitions += n;
    pthread_mutex_unlock(&f->mu);
    return rc;
}

/* Hands a written group back: activations to their workers' queues,
 * waiting threads woken. Caller holds cmu (taken and released inside). */
static void complete_group(ls_flow_t *f, flow_commit *list, ls_rc rc, const ls_err *err)
{
    flow_commit *c = list, *waiters = NULL, *landed = NULL;
    pthread_mutex_lock(&f->mu);
    while (c) {
        flow_commit *next = c->next; /* c may be freed once handed back */
        c->rc = rc;
        if (rc != LS_OK) c->err = *err;
        if (c->act) {
            ls_flow_act *a = c->act;
            flow_worker *w = a->w;
            a->qnext = NULL;
            if (w->rq_tail)
                w->rq_tail->qnext = a;
            else
                w->rq_head = a;
            w->rq_tail = a;
            worker_wake(f, w);
        } else if (c->written) {
            c->next = landed;
            landed = c;
        } else {
            c->next = waiters;
            waiters = c;
        }
        c = next;
    }
    pthread_mutex_unlock(&f->mu);
    while (waiters) {
        flow_commit *next = waiters->next;
        waiters->done = 1;
        if (waiters->cv) pthread_cond_signal(waiters->cv);
        waiters = next;
    }
    while (landed) {
        flow_commit *next = landed->next; /* freed by its callback */
        landed->written(landed);
        landed = next;
    }
}

static void *committer_main(void *p)
{
    ls_flow_t *f = p;
    ls_store_batch_t *merged = NULL;
    ls_err err;
    if (ls_store_batch_new(&merged, &err) != LS_OK) merged = NULL;
    pthread_mutex_lock(&f->cmu);
    for (;;) {
        while ((f->c_head == NULL || f->c_busy) && !(f->c_stop && f->c_head == NULL && !f->c_busy))
            pthread_cond_wait(&f->ccv, &f->cmu);
        if (f->c_head == NULL) break;
        flow_commit *list = f->c_head;
        f->c_head = f->c_tail = NULL;
        f->c_busy = 1;
        pthread_mutex_unlock(&f->cmu);
        ls_rc rc = write_group(f, list, merged, &err);
        pthread_mutex_lock(&f->cmu);
        complete_group(f, list, rc, &err);
        f->c_busy = 0;
    }
    pthread_mutex_unlock(&f->cmu);
    ls_store_batch_free(merged);
    return NULL;
}

/* With cmu held: writes c at once when nothing else is being written or
 * waits to be (returns 1), else queues it for the committer (returns 0). */
static int commit_or_queue(ls_flow_t *f, flow_commit *c)
{
    c->next = NULL;
    c->done = 0;
    c->rc = LS_OK;
    if (!f->c_running) { /* no committer (before ls_flow_run, after a stop): write here */
        pthread_mutex_unlock(&f->cmu);
        ls_err err;
        ls_rc rc = write_group(f, c, NULL, &err);
        pthread_mutex_lock(&f->cmu);
        complete_group(f, c, rc, &err);
        return 1;
    }
    if (!f->c_busy && f->c_head == NULL) {
        f->c_busy = 1;
        pthread_mutex_unlock(&f->cmu);
        ls_err err;
        ls_rc rc = write_group(f, c, NULL, &err);
        pthread_mutex_lock(&f->cmu);
        complete_group(f, c, rc, &err);
        f->c_busy = 0;
        if (f->c_head || f->c_stop) pthread_cond_signal(&f->ccv);
        return 1;
    }
    if (f->c_tail)
        f->c_tail->next = c;
    else
        f->c_head = c;
    f->c_tail = c;
    /* While a group is being written, its writer looks at the queue when
     * done (the committer loops; a direct writer signals): waking the
     * committer now would only put it back to sleep. */
    if (!f->c_busy) pthread_cond_signal(&f->ccv);
    return 0;
}

void flow_commit_submit(ls_flow_t *f, flow_commit *c)
{
    pthread_mutex_lock(&f->cmu);
    commit_or_queue(f, c);
    pthread_mutex_unlock(&f->cmu);
}

ls_rc flow_commit_wait(ls_flow_t *f, flow_commit *c, ls_err *err)
{
    pthread_mutex_lock(&f->cmu);
    pthread_cond_t cv;
    pthread_cond_init(&cv, NULL);
    c->cv = &cv;
    c->act = NULL;
    if (!commit_or_queue(f, c))
        while (!c->done) pthread_cond_wait(&cv, &f->cmu);
    c->cv = NULL;
    pthread_mutex_unlock(&f->cmu);
    pthread_cond_destroy(&cv);
    if (c->rc != LS_OK && err) *err = c->err;
    return c->rc;
}

/* ---- workers ---- */

void flow_worker_done(flow_worker *w)
{
    ls_flow_t *f = w->f;
    pthread_mutex_lock(&f->mu);
    w->inflight--;
    f->busy--;
    pthread_cond_broadcast(&f->idle_cv);
    pthread_mutex_unlock(&f->mu);
}

/* A worker with activations parked on the runner's I/O looks at it after
 * this many other items, and, with nothing else to do, waits in the
 * runner's poll for at most IO_POLL_MS (so that it sees a terminate or an
 * interrupt of a parked run within that). */
#define IO_LOOK_EVERY 8
#define IO_POLL_MS    200
#define IO_BATCH      16 /* activations resumed per poll */

/* Asks the runner which parked activations can go on (waiting up to ms)
 * and resumes them. Called and returns with mu held. */
static void poll_io(flow_worker *w, int ms)
{
    ls_flow_t *f = w->f;
    ls_flow_act *ready[IO_BATCH];
    w->io_skips = 0;
    w->polling = ms > 0;
    pthread_mutex_unlock(&f->mu);
    size_t n = f->o.runner->poll(f->o.runner_ud, w->rw, ms, ready, IO_BATCH);
    pthread_mutex_lock(&f->mu);
    w->polling = 0;
    pthread_mutex_unlock(&f->mu);
    for (size_t i = 0; i < n; i++) {
        w->io_parked--;
        int64_t t0 = ls_clock_mono_ns(NULL);
        flow_act_io_item(w, ready[i]);
        pthread_mutex_lock(&f->mu);
        f->st.busy_ns += (uint64_t)(ls_clock_mono_ns(NULL) - t0);
        pthread_mutex_unlock(&f->mu);
    }
    pthread_mutex_lock(&f->mu);
}

static void *worker_main(void *p)
{
    flow_worker *w = p;
    ls_flow_t *f = w->f;
    ls_err err;
    if (f->o.runner->worker_open(f->o.runner_ud, w->index, &w->rw, &err) != LS_OK) {
        flow_log(f, LS_FLOW_LOG_ERROR, NULL, "worker %u cannot start: %s", w->index,
                 ls_err_text(&err));
        pthread_mutex_lock(&f->mu);
        f->workers_exited++;
        pthread_cond_broadcast(&f->idle_cv);
        pthread_mutex_unlock(&f->mu);
        return NULL;
    }
    pthread_mutex_lock(&f->mu);
    for (;;) {
        /* Activations parked on the runner's I/O: looked at between items,
         * so that a busy worker does not starve them. */
        if (w->io_parked && ++w->io_skips >= IO_LOOK_EVERY) {
            poll_io(w, 0);
            continue;
        }
        /* Activations whose write is done come first: they finish runs. */
        if (w->rq_head) {
            ls_flow_act *a = w->rq_head;
            w->rq_head = a->qnext;
            if (w->rq_head == NULL) w->rq_tail = NULL;
            pthread_mutex_unlock(&f->mu);
            int64_t t0 = ls_clock_mono_ns(NULL);
            flow_act_item(w, a); /* may end the run */
            pthread_mutex_lock(&f->mu);
            f->st.busy_ns += (uint64_t)(ls_clock_mono_ns(NULL) - t0);
            continue;
        }
        if (!f->stopping && f->q_head && w->inflight < f->inflight_cap) {
            flow_run *r = dequeue(f);
            r->state = R_BUSY;
            r->again = 0;
            w->inflight++;
            f->busy++;
            f->st.activations++;
            pthread_mutex_unlock(&f->mu);
            int64_t t0 = ls_clock_mono_ns(NULL);
            flow_act_start(w, r);
            pthread_mutex_lock(&f->mu);
            f->st.busy_ns += (uint64_t)(ls_clock_mono_ns(NULL) - t0);
            continue;
        }
        if (f->stopping && w->inflight == 0) break;
        if (w->io_parked) { /* nothing else to do: wait for that I/O, or a wake */
            poll_io(w, IO_POLL_MS);
            continue;
        }
        w->idle = 1;
        pthread_cond_wait(&w->cv, &f->mu);
        w->idle = 0;
    }
    pthread_mutex_unlock(&f->mu);
    f->o.runner->worker_close(f->o.runner_ud, w->rw);
    pthread_mutex_lock(&f->mu);
    f->workers_exited++;
    pthread_cond_broadcast(&f->idle_cv);
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

/* Called by act.c when an activation returns without ending the run. */
void flow_activation_done(ls_flow_t *f, flow_run *r, const ls_flow_act *a);
void flow_activation_done(ls_flow_t *f, flow_run *r, const ls_flow_act *a)
{
    pthread_mutex_lock(&f->mu);
    r->wait_due = 0;
    r->waiting = a->waiting;
    /* Inbox entries taken by a write that never landed: look again. */
    r->inbox += a->drained;
    /* A resume it took and wrote: the next pause may be resumed. And an
     * activation that gave up schedules nothing, so a resume waiting in
     * the inbox may be sent again (else the run would refuse every resume
     * until something else woke it). */
    if ((a->resume_taken && a->drained == 0) || a->abandoned) r->resuming = 0;
    if (a->waiting) {
        r->wait_due = a->wait_due;
        r->wait_kind = a->wait_kind;
        ls_free(r->wait_name);
        r->wait_name = a->wait_name ? ls_strdup(a->wait_name) : NULL;
    }
    if (a->waiting && a->wait_due) {
        ls_err err;
        ls_rc rc = ls_flow_timerq_add(f->tq, r->id.b, a->wait_seq, a->wait_due, &err);
        if (rc == LS_OK) {
            f->st.timers++;
            pthread_cond_signal(&f->timer_cv);
        } else if (rc != LS_EEXIST) {
            /* Out of memory: the durable timer key still wakes it on the
             * next start. */
            flow_log(f, LS_FLOW_LOG_ERROR, r->name, "timer not queued: %s", ls_err_text(&err));
        }
        r->has_timer = 1;
        r->timer_seq = a->wait_seq;
    }
    r->state = R_IDLE;
    /* Woken meanwhile: go again, unless the activation gave up (the type is
     * not loaded, or the daemon stops), but a terminate always goes on. */
    if (r->again && (!a->abandoned || (atomic_load(&r->terminating) && !f->stopping)))
        enqueue(f, r);
    r->again = 0;
    pthread_mutex_unlock(&f->mu);
}

static void *timer_main(void *p)
{
    ls_flow_t *f = p;
    ls_flow_timer due[64];
    pthread_mutex_lock(&f->mu);
    while (!f->stopping) {
        int64_t now = flow_now(f);
        size_t n = ls_flow_timerq_pop_due(f->tq, now, due, 64);
        for (size_t i = 0; i < n; i++) {
            ls_id id;
            memcpy(id.b, due[i].run_id, LS_ID_BYTES);
            f->st.timers--;
            flow_run *r = flow_runtab_find(&f->runs, &id);
            if (r == NULL) continue;
            r->has_timer = 0;
            wake(f, r);
        }
        if (n == 64) continue;
        int64_t in_ms;
        struct timespec ts;
        if (ls_flow_timerq_next_due_in(f->tq, flow_now(f), &in_ms) == LS_OK) {
            if (in_ms <= 0) continue;
            flow_deadline_in(&ts, in_ms > 60000 ? 60000 : in_ms);
        } else {
            flow_deadline_in(&ts, 60000);
        }
        pthread_cond_timedwait(&f->timer_cv, &f->mu, &ts);
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

ls_rc ls_flow_run(ls_flow_t *f, ls_err *err)
{
    pthread_mutex_lock(&f->mu);
    if (f->running || f->stopping) {
        pthread_mutex_unlock(&f->mu);
        return ls_err_set(err, LS_EINVAL, "flow: already running or stopped");
    }
    f->running = 1;
    pthread_mutex_unlock(&f->mu);
    f->workers = ls_calloc(f->nworkers, sizeof *f->workers);
    if (f->workers == NULL) return ls_err_set(err, LS_ENOMEM, "flow: out of memory");
    for (unsigned i = 0; i < f->nworkers; i++) {
        f->workers[i].f = f;
        f->workers[i].index = i;
        pthread_cond_init(&f->workers[i].cv, NULL);
    }
    pthread_mutex_lock(&f->cmu);
    int ce = pthread_create(&f->committer, NULL, committer_main, f);
    f->c_running = ce == 0;
    if (ce == 0) pthread_setname_np(f->committer, "ls-commit");
    pthread_mutex_unlock(&f->cmu);
    if (ce != 0)
        return ls_err_set(err, LS_EIO, "flow: cannot start the committer: %s", strerror(ce));
    for (unsigned i = 0; i < f->nworkers; i++) {
        pthread_mutex_lock(&f->mu);
        int e = pthread_create(&f->workers[i].th, NULL, worker_main, &f->workers[i]);
        if (e == 0) {
            char name[16];
            snprintf(name, sizeof name, "ls-worker-%u", i % 10000);
            pthread_setname_np(f->workers[i].th, name);
            f->workers_started++;
        }
        pthread_mutex_unlock(&f->mu);
        if (e != 0)
            return ls_err_set(err, LS_EIO, "flow: cannot start worker thread: %s", strerror(e));
    }
    int e = pthread_create(&f->timer_thread, NULL, timer_main, f);
    if (e != 0) return ls_err_set(err, LS_EIO, "flow: cannot start timer thread: %s", strerror(e));
    pthread_setname_np(f->timer_thread, "ls-timer");
    f->timer_started = 1;
    ls_rc rc = flow_sched_start(f, err); /* schedules */
    if (rc != LS_OK) return rc;

    return flow_retention_start(f, err);
}

ls_rc ls_flow_stop(ls_flow_t *f, int64_t grace_ms, ls_err *err)
{
    flow_sched_stop(f); /* schedules: no fire starts while stopping */
    pthread_mutex_lock(&f->mu);
    if (f->stopped) {
        pthread_mutex_unlock(&f->mu);
        return LS_OK;
    }
    f->stopping = 1;
    for (unsigned i = 0; i < f->workers_started; i++) {
        pthread_cond_signal(&f->workers[i].cv);
        worker_wake(f, &f->workers[i]);
    }
    pthread_cond_broadcast(&f->timer_cv);
    struct timespec ts;
    flow_deadline_in(&ts, grace_ms > 0 ? grace_ms : 0);
    while (f->workers_exited < f->workers_started) {
        if (pthread_cond_timedwait(&f->idle_cv, &f->mu, &ts) == ETIMEDOUT) break;
    }
    if (f->workers_exited < f->workers_started) {
        atomic_store(&f->interrupt, 1);
        flow_log(f, LS_FLOW_LOG_WARN, NULL,
                 "%u activations still running after the grace period: interrupting", f->busy);
        flow_deadline_in(&ts, 1000);
        while (f->workers_exited < f->workers_started) {
            if (pthread_cond_timedwait(&f->idle_cv, &f->mu, &ts) == ETIMEDOUT) break;
        }
    }
    int stuck = f->workers_exited < f->workers_started;
    pthread_mutex_unlock(&f->mu);
    if (stuck)
        return ls_err_set(err, LS_EBUSY, "flow: %u workers did not stop",
                          f->workers_started - f->workers_exited);
    for (unsigned i = 0; i < f->workers_started; i++) pthread_join(f->workers[i].th, NULL);
    if (f->timer_started) pthread_join(f->timer_thread, NULL);
    flow_retention_join(f);
    /* Every activation is over: no more writes come. */
    pthread_mutex_lock(&f->cmu);
    int committer = f->c_running;
    f->c_stop = 1;
    pthread_cond_signal(&f->ccv);
    pthread_mutex_unlock(&f->cmu);
    if (committer) pthread_join(f->committer, NULL);
    pthread_mutex_lock(&f->cmu);
    f->c_running = 0;
    pthread_mutex_unlock(&f->cmu);
    f->timer_started = 0;
    f->workers_started = 0;
    f->stopped = 1;
    return LS_OK;
}

/* ---- ends and watches ---- */

/* Takes w off the engine's list. Caller holds mu. */
static void watch_unlink(ls_flow_t *f, flow_watch *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        f->watches = w->next;
    if (w->next) w->next->prev = w->prev;
    w->next = w->prev = NULL;
}

/* A completed run's answer to ls_flow_result, into the results cache, for
 * the long polls about to be woken (they find it there). Nothing when the
 * output does not parse: they read the store, which says why. */
static void keep_result(ls_flow_t *f, flow_run *r)
{
    json_t *output = NULL;
    ls_buf text = LS_BUF_INIT;
    if (ls_json_parse(r->output, r->output_len, &output, NULL) == LS_OK &&
        flow_result_text(&text, r->name, strlen(r->name), output, LS_RUN_COMPLETED, NULL) ==
            LS_OK) {
        size_t len;
        char *t = (char *)ls_buf_steal(&text, &len);
        flow_results_put(f->results, &r->id, t, len);
    }
    json_decref(output);
    if (text.ptr) sodium_memzero(text.ptr, text.len);
    ls_buf_free(&text);
}

void flow_run_ended(ls_flow_t *f, flow_run *r)
{
    flow_watch *fire = NULL;
    pthread_mutex_lock(&f->mu);
    flow_count_type(f, r->type, r->status);
    switch (r->status) {
    case LS_RUN_COMPLETED: f->st.completed++; break;
    case LS_RUN_CANCELLED: f->st.cancelled++; break;
    case LS_RUN_TERMINATED: f->st.terminated++; break;
    default: f->st.failed++; break;
    }
    if (r->has_timer) {
        if (ls_flow_timerq_remove(f->tq, r->id.b, r->timer_seq, NULL) == LS_OK) f->st.timers--;
    }
    flow_runtab_remove(&f->runs, r);
    f->st.runs_active = f->runs.n;
    release_slot(f, r);
    if (r->has_parent) {
        /* Its end is in the parent's inbox (same batch as the end). */
        flow_run *p = flow_runtab_find(&f->runs, &r->parent);
        if (p) {
            p->inbox++;
            wake(f, p);
        }
    }
    fire = r->watches;
    r->watches = NULL;
    for (flow_watch *w = fire; w; w = w->rnext) watch_unlink(f, w);
    if (fire) pthread_mutex_lock(&f->wmu);
    pthread_mutex_unlock(&f->mu);
    if (fire) {
        if (r->status == LS_RUN_COMPLETED && r->output) keep_result(f, r);
        while (fire) {
            flow_watch *w = fire;
            fire = w->rnext;
            w->fn(w->ud);
            ls_free(w);
        }
        pthread_mutex_unlock(&f->wmu);
    }
    flow_run_free(r);
}

ls_rc ls_flow_watch(ls_flow_t *f, const char *name, size_t nlen, void (*fn)(void *ud), void *ud,
                    uint64_t *watch, ls_err *err)
{
    ls_id id;
    flow_watch *w = ls_malloc(sizeof *w);
    if (w == NULL) return ls_err_set(err, LS_ENOMEM, "watch: out of memory");
    /* A run started without a name is named by its id: while it runs, the
     * run table finds it without reading the store. Names are unique, so a
     * run found so, with that name, is the one flow_lookup would give. */
    flow_run *r = NULL;
    if (nlen == LS_ID_TEXTLEN && ls_id_parse(&id, name, nlen, NULL) == LS_OK) {
        pthread_mutex_lock(&f->mu);
        r = flow_runtab_find(&f->runs, &id);
        if (r && !(strlen(r->name) == nlen && memcmp(r->name, name, nlen) == 0)) r = NULL;
        if (r == NULL) pthread_mutex_unlock(&f->mu);
    }
    if (r == NULL) {
        ls_rc rc = flow_lookup(f, name, nlen, &id, err);
        if (rc != LS_OK) {
            ls_free(w);
            return rc;
        }
        pthread_mutex_lock(&f->mu);
        r = flow_runtab_find(&f->runs, &id);
    }
    if (r == NULL) {
        pthread_mutex_unlock(&f->mu);
        ls_free(w);
        return LS_EEXIST; /* not in memory: it has ended */
    }
    w->id = f->next_watch++;
    w->run = id;
    w->fn = fn;
    w->ud = ud;
    w->prev = NULL;
    w->next = f->watches;
    if (w->next) w->next->prev = w;
    f->watches = w;
    w->rnext = r->watches;
    r->watches = w;
    *watch = w->id;
    pthread_mutex_unlock(&f->mu);
    return LS_OK;
}

int ls_flow_unwatch(ls_flow_t *f, uint64_t watch)
{
    pthread_mutex_lock(&f->mu);
    for (flow_watch *w = f->watches; w; w = w->next) {
        if (w->id == watch) {
            watch_unlink(f, w);
            flow_run *r = flow_runtab_find(&f->runs, &w->run);
            for (flow_watch **p = r ? &r->watches : &(flow_watch *){NULL}; *p; p = &(*p)->rnext)
                if (*p == w) {
                    *p = w->rnext;
                    break;
                }
            pthread_mutex_unlock(&f->mu);
            ls_free(w);
            return 1;
        }
    }
    pthread_mutex_unlock(&f->mu);
    /* Being fired: wait until the callbacks have returned. */
    pthread_mutex_lock(&f->wmu);
    pthread_mutex_unlock(&f->wmu);
    return 0;
}

size_t ls_flow_retry_idle(ls_flow_t *f)
{
    size_t n = 0;
    pthread_mutex_lock(&f->mu);
    if (!f->stopping) {
        for (size_t i = 0; i < f->runs.nb; i++)
            for (flow_run *r = f->runs.b[i]; r; r = r->hnext)
                if (r->state == R_IDLE && !r->has_timer && !r->waiting && !r->held) {
                    enqueue(f, r);
                    n++;
                }
        /* Limits may have changed with the files: admit what fits now. */
        for (flow_bucket *b = f->buckets; b; b = b->next)
            if (b->held_head) admit_waiting(f, b->type);
    }
    pthread_mutex_unlock(&f->mu);
    return n;
}

ls_rc ls_flow_versions(ls_flow_t *f, ls_buf *out, ls_err *err)
{
    json_t *o = json_object();
    if (o == NULL) return ls_err_set(err, LS_ENOMEM, "out of memory");
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < f->runs.nb; i++)
        for (flow_run *r = f->runs.b[i]; r; r = r->hnext) {
            json_t *t = json_object_get(o, r->type);
            if (t == NULL) {
                t = json_object();
                json_object_set_new(o, r->type, t);
            }
            const char *v = r->version && *r->version ? r->version : "unversioned";
            json_t *n = json_object_get(t, v);
            json_object_set_new(t, v, json_integer(n ? json_integer_value(n) + 1 : 1));
        }
    pthread_mutex_unlock(&f->mu);
    ls_buf_clear(out);
    ls_rc rc = ls_json_dump(o, out, err);
    json_decref(o);
    return rc;
}

void ls_flow_get_stats(ls_flow_t *f, ls_flow_stats *s)
{
    pthread_mutex_lock(&f->mu);
    *s = f->st;
    s->runs_active = f->runs.n;
    s->runs_queued = f->queued;
    s->timers = ls_flow_timerq_count(f->tq);
    s->workers = f->nworkers;
    s->workers_alive = f->workers_started - f->workers_exited;
    s->workers_busy = f->busy;
    s->paused = 0;
    for (size_t i = 0; i < f->runs.nb; i++)
        for (flow_run *r = f->runs.b[i]; r; r = r->hnext)
            s->paused += r->waiting && r->wait_kind == 'p' && r->state == R_IDLE;
    pthread_mutex_unlock(&f->mu);
}

/* ---- start ---- */

/* A payload as stored: valid JSON, compact; none (NULL/0) is null. Errors
 * are prefixed with what. */
/* The JSON text as the engine stores it (compact, keys sorted) into out,
 * within the payload limit. dumped: text is what ls_json_dump wrote, taken
 * as it is. */
static ls_rc compact_json(ls_flow_t *f, const char *what, const char *text, size_t len, int dumped,
                          ls_buf *out, ls_err *err)
{
    if (text == NULL || len == 0) return ls_buf_set(out, "null", 4, err);
    if (len > f->o.max_payload)
        return ls_err_set(err, LS_EINVAL,
                          "%s: %zu bytes, over the payload limit of %zu bytes (lodestoned "
                          "--max-payload)",
                          what, len, f->o.max_payload);
    if (dumped) return ls_buf_set(out, text, len, err);
    json_t *j = NULL;
    ls_rc rc = ls_json_parse(text, len, &j, err);
    if (rc == LS_OK) rc = ls_json_dump(j, out, err);
    json_decref(j);
    return rc == LS_OK ? LS_OK : LS_ERR_PREFIXED(rc, err, "%s", what);
}

static size_t stripe_of(const char *name, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)name[i]) * 16777619u;
    return h % LS_FLOW_STRIPES;
}

/* index_name: 0 for a run named by its own id (flow_lookup finds it
 * through its record). */
/* Whether version's source is in the store; 0 when unknown yet (the caller
 * writes it with the start). */
static int source_stored(ls_flow_t *f, const char *version, ls_err *err)
{
    int known = 0;
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < f->nsources && !known; i++) known = strcmp(f->sources[i], version) == 0;
    pthread_mutex_unlock(&f->mu);
    if (known) return 1;
    ls_buf k = LS_BUF_INIT, v = LS_BUF_INIT;
    ls_rc rc = ls_key_ns(&k, LS_NS_SOURCE, err);
    if (rc == LS_OK) rc = ls_buf_append(&k, version, strlen(version), err);
    if (rc == LS_OK) rc = ls_store_get(f->o.store, k.ptr, k.len, &v, err);
    ls_buf_free(&k);
    ls_buf_free(&v);
    return rc == LS_OK;
}

/* Remembers that version's source is stored. */
static void source_known(ls_flow_t *f, const char *version)
{
    char *copy = ls_strdup(version);
    pthread_mutex_lock(&f->mu);
    char **n = copy ? ls_realloc(f->sources, (f->nsources + 1) * sizeof *n) : NULL;
    if (n) {
        f->sources = n;
        f->sources[f->nsources++] = copy;
        copy = NULL;
    }
    pthread_mutex_unlock(&f->mu);
    ls_free(copy);
}

/* Puts into b the first fork events of run `from` as run to's, each
 * sealed again for to as a version 3 event (whatever the parent's was:
 * its fields are known), those that hold no payload too: a branch run
 * replays its parent's code up to the ctx:all it runs a branch of. The
 * parent's events are checked as an activation checks them (act.c): none
 * missing, of its run's version, each version 3 seal opened. */
static ls_rc copy_history(ls_flow_t *f, ls_store_batch_t *b, const ls_id *from, const ls_id *to,
                          uint64_t fork, ls_err *err)
{
    ls_buf prefix = LS_BUF_INIT, k = LS_BUF_INIT, v = LS_BUF_INIT, pt = LS_BUF_INIT,
           sealed = LS_BUF_INIT;
    ls_store_iter_t *it = NULL;
    const void *key, *val;
    size_t klen, vlen;
    uint64_t n = 0;
    ls_rc rc = ls_history_prefix(&prefix, from, err);
    if (rc == LS_OK) rc = ls_store_iter_prefix(&it, f->o.store, prefix.ptr, prefix.len, 0, err);
    flow_hist h = FLOW_HIST_INIT;
    while (rc == LS_OK && n < fork &&
           (rc = ls_store_iter_next(it, &key, &klen, &val, &vlen, err)) == LS_OK) {
        ls_event ev;
        uint64_t seq;
        if ((rc = ls_history_key_parse(key, klen, NULL, &seq, err)) != LS_OK ||
            (rc = ls_event_decode(val, vlen, &ev, err)) != LS_OK ||
            (rc = flow_hist_check(&h, seq, &ev, err)) != LS_OK)
            break;
        if ((rc = flow_open_event_raw_with(f->o.vault, from, NULL, h.started, &ev, &pt, err)) !=
                LS_OK ||
            (rc = flow_seal_event(f, to, NULL, LS_EVENT_VERSION, &ev, pt.ptr, pt.len, &sealed,
                                  err)) != LS_OK)
            break;
        if ((rc = ls_history_key(&k, to, ev.seq, err)) != LS_OK ||
            (rc = ls_event_encode(&ev, &v, err)) != LS_OK)
            break;
        ls_store_batch_put(b, k.ptr, k.len, v.ptr, v.len);
        n++;
    }
    if (rc == LS_ENOTFOUND) rc = LS_OK;
    if (rc == LS_OK && n != fork)
        rc = ls_err_set(err, LS_ECORRUPT, "branch: the parent's history holds %llu of %llu events",
                        (unsigned long long)n, (unsigned long long)fork);
    ls_store_iter_free(it);
    ls_buf_free(&prefix);
    ls_buf_free(&k);
    ls_buf_free(&v);
    ls_buf_free(&pt);
    ls_buf_free(&sealed);
    return rc;
}

/* Puts a new run's keys into b: its history (WorkflowStarted, or a branch
 * run's copy of its parent's), record, indexes, links. *unopened (may be
 * NULL) is set when the copy failed, but for want of memory: the parent's
 * history did not read or open. */
static ls_rc put_start(ls_flow_t *f, ls_store_batch_t *b, const ls_id *id, const char *name,
                       size_t nlen, int index_name, const char *type, size_t tlen,
                       const char *input, size_t ilen, const flow_parent *parent,
                       const ls_buf *version, const ls_buf *source, const char *ckey, int held,
                       int64_t now, ls_buf *event, int *unopened, ls_err *err)
{
    ls_buf k = LS_BUF_INIT, v = LS_BUF_INIT, sealed = LS_BUF_INIT;
    ls_rc rc = LS_OK;
    uint64_t last_seq = 1;
    if (parent && parent->branch) {
        last_seq = parent->fork;
        ls_buf_clear(&v);
        if ((rc = copy_history(f, b, parent->id, id, parent->fork, err)) != LS_OK) {
            if (unopened && rc != LS_ENOMEM) *unopened = 1;
            goto out;
        }
        if ((rc = flow_key_branch(&k, id, err)) != LS_OK ||
            (rc = ls_key_u64(&v, parent->fork, err)) != LS_OK ||
            (rc = ls_buf_append(&v, parent->branch, parent->blen, err)) != LS_OK)
            goto out;
        ls_store_batch_put(b, k.ptr, k.len, v.ptr, v.len);
    } else {
        ls_event ev = {.type = LS_EV_WORKFLOW_STARTED, .seq = 1, .time_ms = now};
        if ((rc = flow_seal_event(f, id, NULL, LS_EVENT_VERSION, &ev, input, ilen, &sealed, err)) !=
            LS_OK)
            goto out;
        if ((rc = ls_history_key(&k, id, 1, err)) != LS_OK ||
            (rc = ls_event_encode(&ev, &v, err)) != LS_OK ||
            (rc = ls_buf_set(event, v.ptr, v.len, err)) != LS_OK)
            goto out;
        ls_store_batch_put(b, k.ptr, k.len, v.ptr, v.len);
    }
    ls_run_record rec = {.status = LS_RUN_RUNNING,
                         .created_ms = now,
                         .updated_ms = now,
                         .last_seq = last_seq,
                         .type = type,
                         .type_len = tlen,
                         .name = name,
                         .name_len = nlen,
                         .version = (const char *)version->ptr,
                         .version_len = version->len};
    if ((rc = ls_run_key(&k, id, err)) != LS_OK || (rc = ls_run_encode(&rec, &v, err)) != LS_OK)
        goto out;
    ls_store_batch_put(b, k.ptr, k.len, v.ptr, v.len);
    if (ckey) { /* a type with concurrency limits: its key, and whether it waits */
        if ((rc = flow_key_ckey(&k, id, err)) != LS_OK ||
            (rc = ls_buf_set(&v, held ? "\x01" : "\x00", 1, err)) != LS_OK ||
            (rc = ls_buf_append(&v, ckey, strlen(ckey), err)) != LS_OK)
            goto out;
        ls_store_batch_put(b, k.ptr, k.len, v.ptr, v.len);
    }
    if (source) { /* the first run of this version: keep its source */
        ls_buf_clear(&k);
        if ((rc = ls_key_ns(&k, LS_NS_SOURCE, err)) != LS_OK ||
            (rc = ls_buf_append(&k, version->ptr, version->len, err)) != LS_OK)
            goto out;
        ls_store_batch_put(b, k.ptr, k.len, source->ptr, source->len);
    }
    if (index_name) {
        if ((rc = flow_key_name(&k, name, nlen, err)) != LS_OK) goto out;
        ls_store_batch_put(b, k.ptr, k.len, id->b, LS_ID_BYTES);
    }
    if ((rc = flow_key_status(&k, LS_RUN_RUNNING, id, err)) != LS_OK) goto out;
    ls_store_batch_put(b, k.ptr, k.len, "", 0);
    if ((rc = flow_key_type(&k, type, tlen, id, err)) != LS_OK) goto out;
    ls_store_batch_put(b, k.ptr, k.len, "", 0);
    if (parent) {
        /* With the child's depth, so that a restart knows it without its
         * ancestors (which retention may have deleted). */
        if ((rc = flow_key_parent(&k, id, err)) != LS_OK ||
            (rc = flow_link_encode(&v, parent->id, parent->detached ? FLOW_LINK_DETACHED : 0,
                                   (int64_t)parent->depth + 1, parent->name, strlen(parent->name),
                                   err)) != LS_OK)
            goto out;
        ls_store_batch_put(b, k.ptr, k.len, v.ptr, v.len);
    }
out:
    ls_buf_free(&k);
    ls_buf_free(&v);
    ls_buf_free(&sealed);
    return rc;
}

/* LS_OK when run `existing` (named name) is a child of parent, else
 * LS_ESTATE saying so. */
static ls_rc child_of(ls_flow_t *f, const ls_id *existing, const flow_parent *parent,
                      const char *name, size_t nlen, ls_err *err)
{
    ls_id p;
    ls_rc rc = read_parent(f, existing, &p, err);
    if (rc == LS_ENOTFOUND || (rc == LS_OK && memcmp(p.b, parent->id->b, LS_ID_BYTES) != 0))
        rc = ls_err_set(err, LS_ESTATE,
                        "a run with id \"%.*s\" exists and is not a child of this run", (int)nlen,
                        name);
    return rc;
}

ls_rc flow_branch_put(ls_flow_t *f, ls_store_batch_t *b, const flow_parent *parent,
                      const char *type, const char *name, size_t nlen, flow_run **out,
                      int *unopened, ls_err *err)
{
    *out = NULL;
    *unopened = 0;
    ls_rc rc = flow_check_name(name, nlen, err);
    if (rc != LS_OK) return rc;
    ls_id id, existing;
    pthread_mutex_t *stripe = &f->stripe[stripe_of(name, nlen)];
    pthread_mutex_lock(stripe);
    rc = flow_lookup(f, name, nlen, &existing, err);
    pthread_mutex_unlock(stripe);
    if (rc == LS_OK) return child_of(f, &existing, parent, name, nlen, err); /* started before */
    if (rc != LS_ENOTFOUND) return rc;
    if ((rc = ls_id_new(&id, f->clock, err)) != LS_OK) return rc;
    size_t tlen = strlen(type);
    flow_run *r = flow_run_new(&id, name, nlen, type, tlen);
    const char *pv = parent->version ? parent->version : "";
    if (r == NULL || (r->branch = ls_strndup(parent->branch, parent->blen)) == NULL ||
        (r->version = ls_strdup(pv)) == NULL) {
        flow_run_free(r);
        return ls_err_set(err, LS_ENOMEM, "start: out of memory");
    }
    r->created_ms = r->updated_ms = flow_now(f);
    r->last_seq = r->fork = parent->fork;
    r->has_parent = 1;
    r->parent = *parent->id;
    r->depth = parent->depth + 1;
    r->depth_known = 1;
    ls_buf version = {(unsigned char *)r->version, strlen(r->version), 0};
    pthread_mutex_lock(&f->mu);
    if (type_stat(f, r->type) == NULL) rc = ls_err_set(err, LS_ENOMEM, "start: out of memory");
    pthread_mutex_unlock(&f->mu);
    if (rc == LS_OK)
        rc = put_start(f, b, &id, name, nlen, 1, type, tlen, NULL, 0, parent, &version, NULL, NULL,
                       0, r->created_ms, NULL, unopened, err);
    if (rc != LS_OK) {
        flow_run_free(r);
        return rc;
    }
    *out = r;
    return LS_OK;
}

void flow_branch_register(ls_flow_t *f, flow_run *r)
{
    pthread_mutex_lock(&f->mu);
    flow_runtab_add(&f->runs, r, NULL);
    f->st.started++;
    flow_count_type(f, r->type, LS_RUN_RUNNING);
    f->st.runs_active = f->runs.n;
    enqueue(f, r);
    pthread_mutex_unlock(&f->mu);
}

ls_rc ls_flow_start(ls_flow_t *f, const char *type, size_t tlen, const char *name, size_t nlen,
                    const char *input, size_t ilen, ls_buf *run, int *created, ls_err *err)
{
    return flow_start(f, type, tlen, name, nlen, input, ilen, NULL, run, created, err);
}

/* The parent link of run id into *l, its parent's name (cut to fit) into
 * pname when not NULL: LS_ENOTFOUND when it has none. */
static ls_rc read_link(ls_flow_t *f, const ls_id *id, flow_link *l, char pname[LS_FLOW_NAMEMAX + 1],
                       ls_err *err)
{
    ls_buf k = LS_BUF_INIT, v = LS_BUF_INIT;
    memset(l, 0, sizeof *l);
    ls_rc rc = flow_key_parent(&k, id, err);
    if (rc == LS_OK) rc = ls_store_get(f->o.store, k.ptr, k.len, &v, err);
    if (rc == LS_OK) rc = flow_link_decode(v.ptr, v.len, l, err);
    if (rc == LS_OK && pname) {
        size_t n = l->nlen > LS_FLOW_NAMEMAX ? LS_FLOW_NAMEMAX : l->nlen;
        memcpy(pname, l->name, n);
        pname[n] = '\0';
    }
    l->name = NULL; /* (it pointed into v) */
    ls_buf_free(&k);
    ls_buf_free(&v);
    return rc;
}

/* The parent of run id: LS_ENOTFOUND when it has none. */
static ls_rc read_parent(ls_flow_t *f, const ls_id *id, ls_id *parent, ls_err *err)
{
    flow_link l;
    ls_rc rc = read_link(f, id, &l, NULL, err);
    if (rc == LS_OK) *parent = l.parent;
    return rc;
}

/* LS_OK when run id has a record, LS_ENOTFOUND when it has none (it was
 * deleted), else the store's error. */
static ls_rc run_exists(ls_flow_t *f, const ls_id *id, ls_err *err)
{
    ls_buf k = LS_BUF_INIT, v = LS_BUF_INIT;
    ls_rc rc = ls_run_key(&k, id, err);
    if (rc == LS_OK) rc = ls_store_get(f->o.store, k.ptr, k.len, &v, err);
    ls_buf_free(&k);
    ls_buf_free(&v);
    return rc;
}

/* A run whose parent link was written before links held depths: its
 * depth from the links above it, up to one that holds its own depth, a
 * run that no run started, or past cap. An ancestor that is gone
 * (retention deletes a finished run with its link), or whose link is
 * corrupt, ends the walk: what is above it cannot be known, and the runs
 * counted so far are the answer (a least depth), said in the log. A store
 * that cannot be read now (LS_EIO, LS_ENOMEM) is an error naming the run
 * and the link, and nothing is kept: a later call reads again. */
static ls_rc walk_depth(ls_flow_t *f, flow_run *r, unsigned cap, unsigned *out, ls_err *err)
{
    char name[LS_FLOW_NAMEMAX + 1]; /* the run whose link is read: d above r */
    snprintf(name, sizeof name, "%s", r->name);
    ls_id cur = r->id;
    unsigned d = 0;
    for (;;) {
        flow_link l;
        char pname[LS_FLOW_NAMEMAX + 1];
        ls_err why;
        const char *what = "the parent link";
        ls_rc rc = read_link(f, &cur, &l, pname, &why);
        if (rc == LS_OK && l.has_depth) {
            d += l.depth;
            break;
        }
        if (rc == LS_OK) {
            cur = l.parent;
            snprintf(name, sizeof name, "%s", pname);
            if (++d > cap) break;
            continue;
        }
        if (rc == LS_ENOTFOUND && d == 0) break; /* r was started by no run */
        if (rc == LS_ENOTFOUND) {
            what = "the record";
            rc = run_exists(f, &cur, &why);
            if (rc == LS_OK) break; /* cur was started by no run */
            if (rc == LS_ENOTFOUND) {
                flow_log(f, LS_FLOW_LOG_WARN, r->name,
                         "run %s, %u above this run, is deleted: the runs above it are not "
                         "known, and this run is taken to be nested %u deep (lodestoned "
                         "--max-depth)",
                         name, d, d);
                break;
            }
        }
        if (rc == LS_ECORRUPT) {
            flow_log(f, LS_FLOW_LOG_ERROR, r->name,
                     "%s of run %s, %u above this run, is corrupt (%s): the runs above it are "
                     "not known, and this run is taken to be nested %u deep (lodestoned "
                     "--max-depth)",
                     what, name, d, ls_err_text(&why), d);
            break;
        }
        return ls_err_set(err, rc,
                          "run %s: cannot tell how deep it is nested (lodestoned --max-depth): "
                          "reading %s of run %s, %u above it: %s",
                          r->name, what, name, d, ls_err_text(&why));
    }
    *out = d;
    return LS_OK;
}

ls_rc flow_run_depth(ls_flow_t *f, flow_run *r, unsigned cap, unsigned *depth, ls_err *err)
{
    if (!r->depth_known) {
        /* Known at its start, or read from its own parent link when it was
         * recovered; a link written before links held depths is walked. */
        unsigned d = 0;
        ls_rc rc = r->has_parent ? walk_depth(f, r, cap, &d, err) : LS_OK;
        if (rc != LS_OK) return rc;
        r->depth = d;
        r->depth_known = 1;
    }
    *depth = r->depth > cap ? cap + 1 : r->depth;
    return LS_OK;
}

/* LS_ENOTFOUND naming the known types. */
static ls_rc unknown_type(ls_flow_t *f, const char *type, size_t tlen, ls_err *err)
{
    ls_buf known = LS_BUF_INIT;
    f->o.runner->list_types(f->o.runner_ud, &known);
    ls_rc rc = ls_err_set(err, LS_ENOTFOUND, "unknown workflow type \"%.*s\"; known types: %.*s",
                          (int)(tlen > 100 ? 100 : tlen), type, (int)known.len,
                          known.len ? (const char *)known.ptr : "(none)");
    ls_buf_free(&known);
    return rc;
}

/* A start between its preparation and its write's landing. */
typedef struct start_op {
    flow_commit c; /* first: complete_group hands back &op->c */
    ls_flow_t *f;
    flow_run *r;
    ls_store_batch_t *b;
    ls_buf event;
    char *new_source; /* the version whose source this start stores */
    int held;
    void (*done)(void *ud, ls_rc rc, const ls_err *err);
    void *ud;
    char *pname; /* a start with a name: on f->pending until it lands */
    size_t pnlen;
    struct start_op *pnext;
} start_op;

/* Whether a start of name is being written. Caller holds pmu. */
static int pending_has(ls_flow_t *f, const char *name, size_t nlen)
{
    for (start_op *op = f->pending; op; op = op->pnext)
        if (op->pnlen == nlen && memcmp(op->pname, name, nlen) == 0) return 1;
    return 0;
}

/* Takes name's stripe once no start of name is being written:
 * then the store tells whether a run has that name, and nobody else can
 * start one until the stripe is released. (A name goes on the pending
 * list under its stripe, so the look under the stripe is the one that
 * counts.) */
static void lock_name(ls_flow_t *f, pthread_mutex_t *stripe, const char *name, size_t nlen)
{
    for (;;) {
        pthread_mutex_lock(stripe);
        pthread_mutex_lock(&f->pmu);
        if (!pending_has(f, name, nlen)) {
            pthread_mutex_unlock(&f->pmu);
            return;
        }
        pthread_mutex_unlock(stripe);
        while (pending_has(f, name, nlen)) pthread_cond_wait(&f->pcv, &f->pmu);
        pthread_mutex_unlock(&f->pmu);
    }
}

/* A start of a name has landed (or failed): off the pending
 * list; the starts of that name waiting for it look again. */
static void pending_done(start_op *op)
{
    ls_flow_t *f = op->f;
    pthread_mutex_lock(&f->pmu);
    for (start_op **p = &f->pending; *p; p = &(*p)->pnext)
        if (*p == op) {
            *p = op->pnext;
            break;
        }
    pthread_cond_broadcast(&f->pcv);
    pthread_mutex_unlock(&f->pmu);
    ls_free(op->pname);
    op->pname = NULL;
}

static void start_op_free(start_op *op)
{
    if (op == NULL) return;
    ls_store_batch_free(op->b);
    ls_buf_free(&op->event);
    ls_free(op->new_source);
    ls_free(op->pname);
    flow_run_free(op->r);
    ls_free(op);
}

/* The start's write has landed (rc): the run exists from now on and is
 * queued (or waits for a slot); or nothing was stored, and its slot goes
 * back. Frees op. */
static ls_rc start_landed(start_op *op, ls_rc rc, const ls_err *err)
{
    ls_flow_t *f = op->f;
    flow_run *r = op->r;
    if (rc != LS_OK) {
        if (r->ckey && !op->held) {
            pthread_mutex_lock(&f->mu);
            release_slot(f, r); /* give the reserved slot back */
            pthread_mutex_unlock(&f->mu);
        }
        if (op->pname) pending_done(op);
        if (op->done) op->done(op->ud, rc, err);
        start_op_free(op);
        return rc;
    }
    if (op->new_source) source_known(f, op->new_source);
    r->fresh = ls_buf_steal(&op->event, &r->fresh_len);
    op->r = NULL; /* the engine's from here */
    pthread_mutex_lock(&f->mu);
    flow_runtab_add(&f->runs, r, NULL);
    f->st.started++;
    flow_count_type(f, r->type, LS_RUN_RUNNING);
    f->st.runs_active = f->runs.n;
    if (op->held) {
        hold(f, r);
        /* A slot freed while the start was being written found nobody
         * waiting for it: look again, now that this run waits. */
        admit_waiting(f, r->type);
    } else {
        enqueue(f, r);
    }
    pthread_mutex_unlock(&f->mu);
    if (op->pname) pending_done(op); /* (in the store: a start of it finds the run) */
    if (op->done) op->done(op->ud, LS_OK, NULL);
    start_op_free(op);
    return LS_OK;
}

/* complete_group's call for a start written in a group. */
static void start_written(flow_commit *c)
{
    start_landed((start_op *)c, c->rc, c->rc == LS_OK ? NULL : &c->err);
}

/* Prepares the start of a new run named name (an id, or a name nobody has):
 * renders *run, reserves its slot and builds its batch. */
static ls_rc start_prepare(ls_flow_t *f, const ls_id *id, const char *type, size_t tlen,
                           const char *name, size_t nlen, int named, const ls_buf *in,
                           const flow_parent *parent, ls_buf *run, start_op **out, ls_err *err)
{
    *out = NULL;
    ls_rc rc;
    pthread_mutex_lock(&f->mu);
    int stopping = f->stopping;
    pthread_mutex_unlock(&f->mu);
    start_op *op = stopping ? NULL : ls_calloc(1, sizeof *op);
    flow_run *r = op ? flow_run_new(id, name, nlen, type, tlen) : NULL;
    if (r == NULL) {
        ls_free(op);
        if (stopping)
            return ls_err_set(err, LS_EBUSY, "the daemon is shutting down; start refused");
        return ls_err_set(err, LS_ENOMEM, "start: out of memory");
    }
    op->f = f;
    op->r = r;
    int64_t now = flow_now(f);
    r->created_ms = r->updated_ms = now;
    r->last_seq = 1;
    /* Render before the write: a start that returns an error has stored
     * nothing (and before the run is visible to workers, which may end
     * it). */
    ls_buf version = LS_BUF_INIT, source = LS_BUF_INIT;
    int new_source = 0;
    if (f->o.runner->type_version &&
        f->o.runner->type_version(f->o.runner_ud, type, tlen, &version, NULL) &&
        ls_buf_putc(&version, '\0', NULL) == LS_OK) {
        version.len--; /* NUL-terminated for the checks below */
        /* The source is fetched only for the first run of a version. */
        ls_buf again = LS_BUF_INIT;
        if (!source_stored(f, (const char *)version.ptr, NULL) &&
            f->o.runner->type_version(f->o.runner_ud, type, tlen, &again, &source)) {
            /* (a reload in between: pin the run to the version whose source
             * this is) */
            new_source = ls_buf_set(&version, again.ptr, again.len, NULL) == LS_OK &&
                         ls_buf_putc(&version, '\0', NULL) == LS_OK;
            if (new_source) version.len--;
        }
        ls_buf_free(&again);
    }
    char ts[LS_TIME_TEXTLEN + 1];
    ls_time_format(now, ts);
    /* The run's object as ls_flow_describe writes it (names, types and
     * versions need no escapes; the input is compact JSON). */
    ls_buf_clear(run);
    rc = LIT(run, "{\"attempts_failed\":0,\"created_at\":\"", err);
    if (rc == LS_OK) rc = ls_buf_append(run, ts, strlen(ts), err);
    if (rc == LS_OK) rc = LIT(run, "\",\"id\":\"", err);
    if (rc == LS_OK) rc = ls_buf_append(run, name, nlen, err);
    if (rc == LS_OK) rc = LIT(run, "\",\"input\":", err);
    if (rc == LS_OK) rc = ls_buf_append(run, in->ptr, in->len, err);
    if (rc == LS_OK)
        rc = LIT(run, ",\"status\":\"running\",\"steps_completed\":0,\"type\":\"", err);
    if (rc == LS_OK) rc = ls_buf_append(run, type, tlen, err);
    if (rc == LS_OK) rc = LIT(run, "\",\"updated_at\":\"", err);
    if (rc == LS_OK) rc = ls_buf_append(run, ts, strlen(ts), err);
    if (rc == LS_OK && version.len) rc = LIT(run, "\",\"version\":\"", err);
    if (rc == LS_OK && version.len) rc = ls_buf_append(run, version.ptr, version.len, err);
    if (rc == LS_OK) rc = LIT(run, "\"}", err);
    r->version = ls_strndup(version.len ? (const char *)version.ptr : "", version.len);
    if (rc == LS_OK && r->version == NULL) rc = ls_err_set(err, LS_ENOMEM, "start: out of memory");
    if (rc == LS_OK && new_source && (op->new_source = ls_strdup(r->version)) == NULL)
        rc = ls_err_set(err, LS_ENOMEM, "start: out of memory");
    if (rc == LS_OK) { /* its type's counters exist before anything is stored */
        pthread_mutex_lock(&f->mu);
        if (type_stat(f, r->type) == NULL) rc = ls_err_set(err, LS_ENOMEM, "start: out of memory");
        pthread_mutex_unlock(&f->mu);
    }
    /* Concurrency: a slot now (reserved before the write), or it waits. */
    flow_limits lim;
    int reserved = 0;
    if (rc == LS_OK && limits_of(f, type, tlen, &lim)) {
        r->ckey = limits_key(&lim, (const char *)in->ptr, in->len);
        if (r->ckey == NULL) rc = ls_err_set(err, LS_ENOMEM, "start: out of memory");
        if (rc == LS_OK) {
            pthread_mutex_lock(&f->mu);
            op->held = !fits(f, &lim, r->type, r->ckey);
            if (!op->held) take_slot(f, r);
            reserved = !op->held;
            pthread_mutex_unlock(&f->mu);
        }
    }
    if (rc == LS_OK) rc = ls_store_batch_new(&op->b, err);
    if (rc == LS_OK)
        rc = put_start(f, op->b, id, name, nlen, named, type, tlen, (const char *)in->ptr, in->len,
                       parent, &version, new_source ? &source : NULL, r->ckey, op->held, now,
                       &op->event, NULL, err);
    ls_buf_free(&version);
    ls_buf_free(&source);
    if (rc != LS_OK) {
        if (reserved) {
            pthread_mutex_lock(&f->mu);
            release_slot(f, r);
            pthread_mutex_unlock(&f->mu);
        }
        start_op_free(op);
        return rc;
    }
    op->c.b = op->b;
    op->c.sync = 1;
    *out = op;
    return LS_OK;
}

/* What both starts share: the checks, the input, a fresh id; for a name,
 * its lookup (of a child: the existing run must be parent's) under its
 * stripe. LS_OK with *out NULL: the name's run exists, *run is its object.
 * LS_OK with *out: a new run, prepared (a name is on the pending list,
 * until the start lands); the caller writes out->c. */
static ls_rc start_begin(ls_flow_t *f, const char *type, size_t tlen, const char *name, size_t nlen,
                         const char *input, size_t ilen, int dumped, const flow_parent *parent,
                         ls_buf *run, start_op **out, ls_err *err)
{
    *out = NULL;
    /* A name no type can have is a bad request rather than an unknown
     * type (and its message is not the whole name). */
    ls_rc rc = ls_flow_check_type_name(type, tlen, NULL, err);
    if (rc != LS_OK) return rc;
    if (!f->o.runner->has_type(f->o.runner_ud, type, tlen)) return unknown_type(f, type, tlen, err);
    ls_buf in = LS_BUF_INIT;
    rc = compact_json(f, "input", input, ilen, dumped, &in, err);
    ls_id id;
    char idtext[LS_ID_TEXTLEN + 1];
    int named = name != NULL && nlen != 0;
    if (rc == LS_OK) rc = ls_id_new(&id, f->clock, err);
    if (rc == LS_OK && named) rc = flow_check_name(name, nlen, err);
    if (rc == LS_OK && !named) {
        /* A fresh id names no run yet: no lookup, no stripe to hold. */
        ls_id_format(&id, idtext);
        rc =
            start_prepare(f, &id, type, tlen, idtext, LS_ID_TEXTLEN, 0, &in, parent, run, out, err);
    } else if (rc == LS_OK) {
        /* The name is looked up and marked pending under its stripe; the
         * stripe is not held during the write: a start of the name waits
         * in lock_name until this one has landed. */
        pthread_mutex_t *stripe = &f->stripe[stripe_of(name, nlen)];
        lock_name(f, stripe, name, nlen);
        ls_id existing;
        rc = flow_lookup(f, name, nlen, &existing, err);
        char *pname = NULL;
        if (rc == LS_ENOTFOUND) {
            rc = (pname = ls_strndup(name, nlen)) == NULL
                     ? ls_err_set(err, LS_ENOMEM, "start: out of memory")
                     : start_prepare(f, &id, type, tlen, name, nlen, 1, &in, parent, run, out, err);
            if (rc == LS_OK) {
                (*out)->pname = pname;
                (*out)->pnlen = nlen;
                pthread_mutex_lock(&f->pmu);
                (*out)->pnext = f->pending;
                f->pending = *out;
                pthread_mutex_unlock(&f->pmu);
            } else {
                ls_free(pname);
            }
            pthread_mutex_unlock(stripe);
        } else {
            pthread_mutex_unlock(stripe);
            if (rc == LS_OK && parent) rc = child_of(f, &existing, parent, name, nlen, err);
            if (rc == LS_OK) rc = flow_render_run(f, &existing, type, tlen, 1, run, err);
        }
    }
    if (rc == LS_OK && *out && parent) {
        (*out)->r->has_parent = 1;
        (*out)->r->parent = *parent->id;
        (*out)->r->depth = parent->depth + 1;
        (*out)->r->depth_known = 1;
    }
    ls_buf_free(&in);
    return rc;
}

ls_rc flow_start(ls_flow_t *f, const char *type, size_t tlen, const char *name, size_t nlen,
                 const char *input, size_t ilen, const flow_parent *parent, ls_buf *run,
                 int *created, ls_err *err)
{
    *created = 0;
    start_op *op;
    ls_rc rc = start_begin(f, type, tlen, name, nlen, input, ilen, 0, parent, run, &op, err);
    if (rc != LS_OK || op == NULL) return rc;
    ls_err werr;
    rc = flow_commit_wait(f, &op->c, &werr);
    if (start_landed(op, rc, &werr) == LS_OK)
        *created = 1;
    else if (err)
        *err = werr;
    return rc;
}

ls_rc ls_flow_start_async(ls_flow_t *f, const char *type, size_t tlen, const char *name,
                          size_t nlen, const char *input, size_t ilen, unsigned flags, ls_buf *run,
                          int *created, void (*done)(void *ud, ls_rc rc, const ls_err *err),
                          void *ud, ls_err *err)
{
    *created = 0;
    start_op *op;
    ls_rc rc = start_begin(f, type, tlen, name, nlen, input, ilen,
                           (flags & LS_FLOW_INPUT_DUMPED) != 0, NULL, run, &op, err);
    if (rc != LS_OK || op == NULL) return rc;
    *created = 1;
    op->done = done;
    op->ud = ud;
    op->c.written = start_written;
    flow_commit_submit(f, &op->c);
    return LS_OK;
}

/* ---- signals, cancel, terminate: the inbox ---- */

void flow_inbox_bump(ls_flow_t *f, const ls_id *id)
{
    pthread_mutex_lock(&f->mu);
    flow_run *r = flow_runtab_find(&f->runs, id);
    if (r) {
        r->inbox++;
        wake(f, r);
    }
    pthread_mutex_unlock(&f->mu);
}

/* Writes one inbox entry for the running run `name` (durably), then wakes
 * the run, whose next activation moves it into history. */
static ls_rc inbox_put(ls_flow_t *f, const char *name, size_t nlen, ls_event *ev,
                       const char *payload, size_t plen, ls_id *idout, ls_err *err)
{
    ls_id id, arrival;
    ls_rc rc = flow_lookup(f, name, nlen, &id, err);
    if (rc != LS_OK) return rc;
    if (idout) *idout = id;
    pthread_mutex_lock(&f->mu);
    int running = flow_runtab_find(&f->runs, &id) != NULL, stopping = f->stopping;
    pthread_mutex_unlock(&f->mu);
    if (stopping) return ls_err_set(err, LS_EBUSY, "the daemon is shutting down");
    if (!running) {
        ls_buf k = LS_BUF_INIT, v = LS_BUF_INIT;
        ls_run_record rec;
        rc = ls_run_key(&k, &id, err);
        if (rc == LS_OK) rc = ls_store_get(f->o.store, k.ptr, k.len, &v, err);
        if (rc == LS_OK) rc = ls_run_decode(v.ptr, v.len, &rec, err);
        if (rc == LS_OK)
            rc = ls_err_set(err, LS_ESTATE, "run %.*s has finished (%s)", (int)nlen, name,
                            ls_run_status_name(rec.status));
        ls_buf_free(&k);
        ls_buf_free(&v);
        return rc;
    }
    ls_store_batch_t *b = NULL;
    ls_buf k = LS_BUF_INIT, v = LS_BUF_INIT, sealed = LS_BUF_INIT;
    unsigned started = 0; /* the run's first event's version (0: damaged, it cannot load) */
    if ((rc = flow_first_version(f->o.store, &id, &started, err)) == LS_ECORRUPT) rc = LS_OK;
    if (rc != LS_OK || (rc = ls_id_new(&arrival, f->clock, err)) != LS_OK ||
        (rc = ls_store_batch_new(&b, err)) != LS_OK)
        goto out;
    ev->seq = 1;
    ev->time_ms = flow_now(f);
    /* Sealed once every field is set: the payload is bound to them. A
     * request without one (cancel, resume, terminate) is sealed empty. */
    if ((rc = flow_seal_event(f, &id, &arrival, started, ev, payload, payload ? plen : 0, &sealed,
                              err)) != LS_OK)
        goto out;
    if ((rc = flow_key_inbox(&k, &id, &arrival, err)) != LS_OK ||
        (rc = ls_event_encode(ev, &v, err)) != LS_OK)
        goto out;
    ls_store_batch_put(b, k.ptr, k.len, v.ptr, v.len);
    flow_commit c = {.b = b, .sync = 1};
    if ((rc = flow_commit_wait(f, &c, err)) != LS_OK) goto out;
    pthread_mutex_lock(&f->mu);
    flow_run *r = flow_runtab_find(&f->runs, &id);
    if (r) { /* else it ended meanwhile: the entry is stale */
        r->inbox++;
        if (ev->type == LS_EV_WORKFLOW_TERMINATED) atomic_store(&r->terminating, 1);
        wake(f, r);
    }
    pthread_mutex_unlock(&f->mu);
out:
    ls_store_batch_free(b);
    ls_buf_free(&k);
    ls_buf_free(&v);
    ls_buf_free(&sealed);
    return rc;
}

/* A name or a note kept in a run's history: its events are JSON, so
 * text that is not UTF-8 would make the run (and any list holding it)
 * unreadable; and it is shown in the UI and in logs, where a control
 * character (C0, DEL or C1: U+0000 to U+001F, U+007F to U+009F) would
 * break or hide what follows. */
ls_rc flow_check_text(const char *what, const char *s, size_t n, size_t max, ls_err *err)
{
    if (n > max) return ls_err_set(err, LS_EINVAL, "%s: at most %zu bytes, got %zu", what, max, n);
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t len = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
        if (c < 0x20 || c == 0x7F)
            return ls_err_set(err, LS_EINVAL, "%s: control character at byte %zu", what, i + 1);
        if (len > 1 && (i + len > n || !ls_json_utf8_valid(s + i, len)))
            return ls_err_set(err, LS_EINVAL, "%s: byte %zu (0x%02x) is not valid UTF-8", what,
                              i + 1, c);
        if (c == 0xC2 && (unsigned char)s[i + 1] < 0xA0) /* U+0080 to U+009F */
            return ls_err_set(err, LS_EINVAL, "%s: control character at byte %zu", what, i + 1);
        i += len;
    }
    return LS_OK;
}

ls_rc flow_check_signal_name(const char *s, size_t n, ls_err *err)
{
    if (n == 0 || n > LS_FLOW_NAMEMAX)
        return ls_err_set(err, LS_EINVAL, "signal name: must be 1 to %d bytes, got %zu",
                          LS_FLOW_NAMEMAX, n);
    ls_rc rc = flow_check_text("signal name", s, n, LS_FLOW_NAMEMAX, err);
    if (rc != LS_OK) return rc;
    /* The name is one segment of the API's path: a "/" ends it (clients
     * send %2F, which the path's decoding turns back into "/"), and HTTP
     * clients (curl, browsers) remove "." and ".." segments, even
     * escaped, before they send. */
    const char *slash = memchr(s, '/', n);
    if (slash)
        return ls_err_set(err, LS_EINVAL,
                          "signal name: \"/\" at byte %zu: a name is one segment of the API's "
                          "path (/v1/workflows/ID/signals/NAME)",
                          (size_t)(slash - s) + 1);
    if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
        return ls_err_set(err, LS_EINVAL,
                          "signal name: \"%.*s\" is not a name: HTTP clients remove such "
                          "segments from the API's path",
                          (int)n, s);
    return LS_OK;
}

ls_rc ls_flow_signal(ls_flow_t *f, const char *name, size_t nlen, const char *signal, size_t slen,
                     const char *payload, size_t plen, ls_err *err)
{
    ls_rc rc = flow_check_signal_name(signal, slen, err);
    if (rc != LS_OK) return rc;
    ls_buf in = LS_BUF_INIT;
    rc = compact_json(f, "payload", payload, plen, 0, &in, err);
    ls_event ev = {.type = LS_EV_SIGNAL_RECEIVED, .name = signal, .name_len = slen};
    if (rc == LS_OK) rc = inbox_put(f, name, nlen, &ev, (const char *)in.ptr, in.len, NULL, err);
    ls_buf_free(&in);
    return rc;
}

ls_rc ls_flow_cancel(ls_flow_t *f, const char *name, size_t nlen, const char *by,
                     const char *reason, ls_err *err)
{
    size_t blen = by ? strlen(by) : 0, rlen = reason ? strlen(reason) : 0;
    ls_rc rc = flow_check_text("by", by, blen, LS_FLOW_BYMAX, err);
    if (rc == LS_OK) rc = flow_check_text("reason", reason, rlen, 1000, err);
    if (rc != LS_OK) return rc;
    ls_event ev = {.type = LS_EV_CANCEL_REQUESTED,
                   .name = by,
                   .name_len = blen,
                   .error = reason,
                   .error_len = rlen};
    return inbox_put(f, name, nlen, &ev, NULL, 0, NULL, err);
}

ls_rc ls_flow_resume(ls_flow_t *f, const char *name, size_t nlen, const char *by, ls_err *err)
{
    size_t blen = by ? strlen(by) : 0;
    ls_rc rc = flow_check_text("by", by, blen, LS_FLOW_BYMAX, err);
    if (rc != LS_OK) return rc;
    ls_id id;
    if ((rc = flow_lookup(f, name, nlen, &id, err)) != LS_OK) return rc;
    /* One resume per pause: a second one, before the run has taken the
     * first, would be written to its history too. */
    pthread_mutex_lock(&f->mu);
    flow_run *r = flow_runtab_find(&f->runs, &id);
    int paused = r && r->waiting && r->wait_kind == 'p', resuming = paused && r->resuming;
    if (paused && !resuming) r->resuming = 1;
    pthread_mutex_unlock(&f->mu);
    if (resuming)
        return ls_err_set(err, LS_ESTATE, "run %.*s is already resuming", (int)nlen, name);
    if (r && !paused) return ls_err_set(err, LS_ESTATE, "run %.*s is not paused", (int)nlen, name);
    ls_event ev = {.type = LS_EV_RESUMED, .name = by, .name_len = blen};
    rc = inbox_put(f, name, nlen, &ev, NULL, 0, NULL, err); /* a finished run: LS_ESTATE */
    if (rc != LS_OK && paused) {
        pthread_mutex_lock(&f->mu);
        if ((r = flow_runtab_find(&f->runs, &id)) != NULL) r->resuming = 0;
        pthread_mutex_unlock(&f->mu);
    }
    return rc;
}

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
} end_wait;

static void end_wait_fire(void *ud)
{
    end_wait *w = ud;
    pthread_mutex_lock(&w->mu);
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

ls_rc ls_flow_terminate(ls_flow_t *f, const char *name, size_t nlen, const char *by,
                        const char *reason, int64_t wait_ms, int *ended, ls_err *err)
{
    *ended = 0;
    size_t blen = by ? strlen(by) : 0, rlen = reason ? strlen(reason) : 0;
    ls_rc rc = flow_check_text("by", by, blen, LS_FLOW_BYMAX, err);
    if (rc == LS_OK) rc = flow_check_text("reason", reason, rlen, 1000, err);
    if (rc != LS_OK) return rc;
    end_wait w = {.done = 0};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    uint64_t watch = 0;
    int watching = 0;
    /* Watch first, so that the end cannot slip between write and watch. */
    rc = wait_ms > 0 ? ls_flow_watch(f, name, nlen, end_wait_fire, &w, &watch, err) : LS_OK;
    if (rc == LS_OK) watching = wait_ms > 0;
    if (rc == LS_OK || rc == LS_EEXIST) {
        ls_event ev = {.type = LS_EV_WORKFLOW_TERMINATED,
                       .name = by,
                       .name_len = blen,
                       .error = reason,
                       .error_len = rlen};
        rc = inbox_put(f, name, nlen, &ev, NULL, 0, NULL, err);
    }
    if (rc == LS_OK && watching) {
        struct timespec ts;
        flow_deadline_in(&ts, wait_ms);
        pthread_mutex_lock(&w.mu);
        while (!w.done && pthread_cond_timedwait(&w.cv, &w.mu, &ts) == 0) {}
        *ended = w.done;
        pthread_mutex_unlock(&w.mu);
    }
    if (watching && ls_flow_unwatch(f, watch) == 0) *ended = 1;
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    return rc;
}
