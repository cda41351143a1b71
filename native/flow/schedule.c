/* SPDX-License-Identifier: MIT
 * Schedules (see schedule.h and ls_flow.h): the table of schedules, their
 * sealed records in the store, the API calls, and the scheduler thread
 * that starts each due fire as an ordinary run named
 * <schedule>@<fire time>. A fire's start is durable before its record
 * says so, and a start under an existing name returns that run: a fire is
 * never started twice, even when a crash falls between the two writes.
 */
#include "ls_config.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "flow_int.h"
#include "lodestone/ls_alloc.h"
#include "ls_json.h"
#include "schedule.h"

/* The scheduler wakes at least this often (ms), whatever the clock says. */
#define SCHED_MAX_NAP 60000

typedef struct {
    flow_sched_def d;
    int source; /* LS_FLOW_SCHEDULE_API or _FILE */
    int64_t created_ms, updated_ms;
    int64_t anchor_ms;    /* the last fire time dealt with */
    int64_t last_fire_ms; /* the last fire that started, was skipped or buffered; 0: none */
    int64_t buffered_ms;  /* a fire waiting for the previous run to end; 0: none */
    char *last_run;       /* the run of the last started fire, or NULL */
    char last_outcome[16];
    uint64_t started, skipped, missed, failed;
    int after_downtime; /* loaded at open: the first look applies catchup */
    int watching;       /* a watch on last_run wakes the scheduler */
    uint64_t watch;
    int seen; /* ls_flow_schedule_sync_files: still declared */
} sched;

struct flow_scheds {
    pthread_mutex_t mu; /* the table, every entry and the counters */
    sched **v;          /* sorted by name */
    size_t n, cap;
    ls_flow_schedule_stats st;
    /* the thread; kmu is a leaf lock (taken by watch callbacks) */
    pthread_mutex_t kmu;
    pthread_cond_t kcv;
    int kicked;
    int stop;
    pthread_t th;
    int started;
    /* names of stored records that did not open at load (sealed under a
     * key the keyring lacks, or not authenticating): kept on disk, and
     * no declaration or put replaces them */
    char **unopened;
    size_t nunopened;
};

static const char *const STATE_FIELDS[] = {
    "source",   "created_ms",   "updated_ms", "anchor_ms", "last_fire_ms", "buffered_ms",
    "last_run", "last_outcome", "started",    "skipped",   "missed",       "failed",
    NULL};

static void sched_free(sched *s)
{
    if (s == NULL) return;
    flow_sched_def_free(&s->d);
    ls_free(s->last_run);
    ls_free(s);
}

/* ---- the table (caller holds S->mu) ---- */

static size_t find_pos(const struct flow_scheds *S, const char *name, size_t nlen, int *found)
{
    size_t lo = 0, hi = S->n;
    *found = 0;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const char *m = S->v[mid]->d.name;
        size_t mlen = strlen(m);
        int c = memcmp(m, name, mlen < nlen ? mlen : nlen);
        if (c == 0) c = mlen < nlen ? -1 : mlen > nlen ? 1 : 0;
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static sched *find(const struct flow_scheds *S, const char *name, size_t nlen)
{
    int found;
    size_t i = find_pos(S, name, nlen, &found);
    return found ? S->v[i] : NULL;
}

/* Room for one more entry, so that the insert after a durable write
 * cannot fail. */
static ls_rc reserve(struct flow_scheds *S, ls_err *err)
{
    if (S->n < S->cap) return LS_OK;
    size_t cap = S->cap ? S->cap * 2 : 16;
    sched **nv = ls_realloc(S->v, cap * sizeof(sched *));
    if (nv == NULL) return ls_err_set(err, LS_ENOMEM, "schedule: out of memory");
    S->v = nv;
    S->cap = cap;
    return LS_OK;
}

static ls_rc insert(struct flow_scheds *S, sched *s, ls_err *err)
{
    ls_rc rc = reserve(S, err);
    if (rc != LS_OK) return rc;
    int found;
    size_t i = find_pos(S, s->d.name, strlen(s->d.name), &found);
    memmove(S->v + i + 1, S->v + i, (S->n - i) * sizeof(sched *));
    S->v[i] = s;
    S->n++;
    S->st.schedules = S->n;
    return LS_OK;
}

static void remove_at(struct flow_scheds *S, sched *s)
{
    int found;
    size_t i = find_pos(S, s->d.name, strlen(s->d.name), &found);
    if (!found) return;
    memmove(S->v + i, S->v + i + 1, (S->n - i - 1) * sizeof(sched *));
    S->n--;
    S->st.schedules = S->n;
}

/* ---- records ---- */

static ls_rc sched_key(ls_buf *k, const char *name, ls_err *err)
{
    ls_buf_clear(k);
    ls_rc rc = ls_key_ns(k, LS_NS_SCHEDULE, err);
    if (rc == LS_OK) rc = ls_key_str(k, name, strlen(name), err);
    return rc;
}

static int set_int(json_t *o, const char *k, int64_t v)
{
    return json_object_set_new(o, k, json_integer((json_int_t)v));
}

static ls_rc encode_record(const sched *s, ls_buf *out, ls_err *err)
{
    json_t *o = json_object();
    if (o == NULL) return ls_err_set(err, LS_ENOMEM, "schedule: out of memory");
    ls_rc rc = flow_sched_def_to_json(&s->d, o, err);
    if (rc == LS_OK) {
        int bad =
            json_object_set_new(o, "source",
                                json_string(s->source == LS_FLOW_SCHEDULE_FILE ? "file" : "api")) ||
            set_int(o, "created_ms", s->created_ms) || set_int(o, "updated_ms", s->updated_ms) ||
            set_int(o, "anchor_ms", s->anchor_ms) || set_int(o, "last_fire_ms", s->last_fire_ms) ||
            set_int(o, "buffered_ms", s->buffered_ms) ||
            json_object_set_new(o, "last_outcome", json_string(s->last_outcome)) ||
            set_int(o, "started", (int64_t)s->started) ||
            set_int(o, "skipped", (int64_t)s->skipped) ||
            set_int(o, "missed", (int64_t)s->missed) || set_int(o, "failed", (int64_t)s->failed) ||
            (s->last_run && json_object_set_new(o, "last_run", json_string(s->last_run)));
        if (bad) rc = ls_err_set(err, LS_ENOMEM, "schedule: out of memory");
    }
    ls_buf_clear(out);
    if (rc == LS_OK) rc = ls_json_dump(o, out, err);
    json_decref(o);
    return rc;
}

static int64_t get_i64(const json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

static ls_rc decode_record(const char *text, size_t len, sched **out, ls_err *err)
{
    json_t *o = NULL;
    ls_rc rc = ls_json_parse(text, len, &o, err);
    if (rc != LS_OK) return rc;
    sched *s = ls_calloc(1, sizeof *s);
    if (s == NULL) {
        json_decref(o);
        return ls_err_set(err, LS_ENOMEM, "schedule: out of memory");
    }
    rc = flow_sched_def_parse(o, STATE_FIELDS, &s->d, err);
    if (rc == LS_OK) {
        const char *src = json_string_value(json_object_get(o, "source"));
        s->source = src && strcmp(src, "file") == 0 ? LS_FLOW_SCHEDULE_FILE : LS_FLOW_SCHEDULE_API;
        s->created_ms = get_i64(o, "created_ms");
        s->updated_ms = get_i64(o, "updated_ms");
        s->anchor_ms = get_i64(o, "anchor_ms");
        s->last_fire_ms = get_i64(o, "last_fire_ms");
        s->buffered_ms = get_i64(o, "buffered_ms");
        s->started = (uint64_t)get_i64(o, "started");
        s->skipped = (uint64_t)get_i64(o, "skipped");
        s->missed = (uint64_t)get_i64(o, "missed");
        s->failed = (uint64_t)get_i64(o, "failed");
        const char *oc = json_string_value(json_object_get(o, "last_outcome"));
        snprintf(s->last_outcome, sizeof s->last_outcome, "%s", oc ? oc : "");
        const char *lr = json_string_value(json_object_get(o, "last_run"));
        if (lr && (s->last_run = ls_strdup(lr)) == NULL)
            rc = ls_err_set(err, LS_ENOMEM, "schedule: out of memory");
    }
    json_decref(o);
    if (rc != LS_OK) {
        sched_free(s);
        return rc;
    }
    *out = s;
    return LS_OK;
}

/* Writes s's record, synced (through the committer when it runs). */
static ls_rc persist(ls_flow_t *f, const sched *s, ls_err *err)
{
    ls_buf k = LS_BUF_INIT, v = LS_BUF_INIT, sealed = LS_BUF_INIT;
    ls_store_batch_t *b = NULL;
    ls_rc rc = sched_key(&k, s->d.name, err);
    if (rc == LS_OK) rc = encode_record(s, &v, err);
    if (rc == LS_OK) rc = ls_vault_seal(f->o.vault, k.ptr, k.len, v.ptr, v.len, &sealed, err);
    if (rc == LS_OK) rc = ls_store_batch_new(&b, err);
    if (rc == LS_OK) {
        ls_store_batch_put(b, k.ptr, k.len, sealed.ptr, sealed.len);
        flow_commit c = {.b = b, .sync = 1};
        rc = flow_commit_wait(f, &c, err);
    }
    ls_store_batch_free(b);
    ls_buf_free(&k);
    ls_buf_free(&v);
    ls_buf_free(&sealed);
    return rc == LS_OK ? LS_OK : LS_ERR_PREFIXED(rc, err, "schedule %s", s->d.name);
}

static ls_rc unpersist(ls_flow_t *f, const char *name, ls_err *err)
{
    ls_buf k = LS_BUF_INIT;
    ls_store_batch_t *b = NULL;
    ls_rc rc = sched_key(&k, name, err);
    if (rc == LS_OK) rc = ls_store_batch_new(&b, err);
    if (rc == LS_OK) {
        ls_store_batch_delete(b, k.ptr, k.len);
        flow_commit c = {.b = b, .sync = 1};
        rc = flow_commit_wait(f, &c, err);
    }
    ls_store_batch_free(b);
    ls_buf_free(&k);
    return rc;
}

/* Index of name in S->unopened, or S->nunopened. */
static size_t find_unopened(const struct flow_scheds *S, const char *name, size_t nlen)
{
    size_t i = 0;
    while (i < S->nunopened &&
           !(strlen(S->unopened[i]) == nlen && memcmp(S->unopened[i], name, nlen) == 0))
        i++;
    return i;
}

/* A stored record that does not open (why): logged naming the schedule,
 * left on disk, and kept apart so that nothing replaces it. A key with no
 * readable name is skipped the same way. */
static ls_rc skip_unopened(ls_flow_t *f, struct flow_scheds *S, const void *key, size_t klen,
                           const ls_err *why, ls_err *err)
{
    ls_buf name = LS_BUF_INIT;
    ls_key_reader r;
    ls_store_ns ns;
    ls_key_reader_init(&r, key, klen);
    ls_rc rc = ls_key_read_ns(&r, &ns, NULL);
    if (rc == LS_OK) rc = ls_key_read_str(&r, &name, NULL);
    if (rc == LS_OK) rc = ls_buf_putc(&name, '\0', NULL);
    const char *nm = rc == LS_OK ? (const char *)name.ptr : "(unreadable name)";
    flow_log(f, LS_FLOW_LOG_ERROR, NULL,
             "schedule %s: its stored record does not open: %s; the schedule is not loaded, "
             "nor replaced (restart with the key file it was written under, or delete it)",
             nm, ls_err_text(why));
    rc = LS_OK;
    if (name.ptr != NULL && nm == (const char *)name.ptr) {
        char **v = ls_realloc(S->unopened, (S->nunopened + 1) * sizeof *v);
        char *dup = v ? ls_strdup(nm) : NULL;
        if (v) S->unopened = v;
        if (dup == NULL)
            rc = ls_err_set(err, LS_ENOMEM, "schedule: out of memory");
        else
            S->unopened[S->nunopened++] = dup;
    }
    ls_buf_free(&name);
    return rc;
}

static void free_unopened(struct flow_scheds *S)
{
    for (size_t i = 0; i < S->nunopened; i++) ls_free(S->unopened[i]);
    ls_free(S->unopened);
    S->unopened = NULL;
    S->nunopened = 0;
}

static ls_rc load_all(ls_flow_t *f, struct flow_scheds *S, ls_err *err)
{
    ls_buf k = LS_BUF_INIT, pt = LS_BUF_INIT;
    ls_store_iter_t *it = NULL;
    const void *key, *val;
    size_t klen, vlen;
    ls_rc rc = ls_key_ns(&k, LS_NS_SCHEDULE, err);
    if (rc == LS_OK) rc = ls_store_iter_prefix(&it, f->o.store, k.ptr, k.len, 0, err);
    while (rc == LS_OK && (rc = ls_store_iter_next(it, &key, &klen, &val, &vlen, err)) == LS_OK) {
        sched *s = NULL;
        ls_err why = {0};
        /* One schedule that does not open (a key the keyring lacks:
         * LS_ENOTFOUND; tampered: LS_EAUTH; LS_EFORMAT) is skipped alone,
         * and is no end of the walk. */
        rc = ls_vault_open(f->o.vault, key, klen, val, vlen, &pt, &why);
        if (rc == LS_ENOTFOUND || rc == LS_EAUTH || rc == LS_EFORMAT) {
            if ((rc = skip_unopened(f, S, key, klen, &why, err)) == LS_OK) continue;
        } else if (rc != LS_OK && err) {
            *err = why;
        }
        if (rc == LS_OK) rc = decode_record((const char *)pt.ptr, pt.len, &s, err);
        if (rc == LS_OK) {
            s->after_downtime = 1;
            rc = insert(S, s, err);
            if (rc != LS_OK) sched_free(s);
        }
        if (rc != LS_OK) ls_err_prefix(err, "schedule record");
    }
    if (rc == LS_ENOTFOUND) rc = LS_OK;
    ls_store_iter_free(it);
    ls_buf_free(&k);
    ls_buf_free(&pt);
    return rc;
}

/* ---- views ---- */

static int set_time(json_t *o, const char *k, int64_t ms)
{
    char ts[LS_TIME_TEXTLEN + 1];
    return json_object_set_new(o, k, json_string(ls_time_format(ms, ts)));
}

static json_t *render(const sched *s, ls_err *err)
{
    json_t *o = json_object();
    if (o == NULL || flow_sched_def_to_json(&s->d, o, err) != LS_OK) {
        json_decref(o);
        if (o == NULL) ls_err_set(err, LS_ENOMEM, "schedule: out of memory");
        return NULL;
    }
    int64_t next;
    int bad =
        json_object_set_new(o, "source",
                            json_string(s->source == LS_FLOW_SCHEDULE_FILE ? "file" : "api")) ||
        set_time(o, "created_at", s->created_ms) || set_time(o, "updated_at", s->updated_ms) ||
        set_int(o, "fires_started", (int64_t)s->started) ||
        set_int(o, "fires_skipped", (int64_t)s->skipped) ||
        set_int(o, "fires_missed", (int64_t)s->missed) ||
        set_int(o, "fires_failed", (int64_t)s->failed);
    if (!bad && ls_cron_next_in(&s->d.cron, s->d.timezone, s->anchor_ms, &next) == LS_OK)
        bad = set_time(o, "next_fire", next);
    if (!bad && s->last_fire_ms)
        bad = set_time(o, "last_fire", s->last_fire_ms) ||
              json_object_set_new(o, "last_outcome", json_string(s->last_outcome));
    if (!bad && s->last_run) bad = json_object_set_new(o, "last_run", json_string(s->last_run));
    if (!bad && s->buffered_ms) bad = set_time(o, "buffered_fire", s->buffered_ms);
    if (bad) {
        json_decref(o);
        ls_err_set(err, LS_ENOMEM, "schedule: out of memory");
        return NULL;
    }
    return o;
}

static ls_rc dump_into(json_t *o, ls_buf *out, ls_err *err)
{
    if (o == NULL) return err ? err->code : LS_ENOMEM;
    ls_buf_clear(out);
    ls_rc rc = ls_json_dump(o, out, err);
    json_decref(o);
    return rc;
}

/* ---- the scheduler thread's wake-ups ---- */

static void kick(struct flow_scheds *S)
{
    pthread_mutex_lock(&S->kmu);
    S->kicked = 1;
    pthread_cond_signal(&S->kcv);
    pthread_mutex_unlock(&S->kmu);
}

/* A watched run ended (an engine thread, under wmu): look again. */
static void on_run_end(void *ud)
{
    kick(ud);
}

static void unwatch(ls_flow_t *f, sched *s)
{
    if (s->watching) ls_flow_unwatch(f, s->watch);
    s->watching = 0;
}

/* ---- API ---- */

static ls_rc put_locked(ls_flow_t *f, struct flow_scheds *S, flow_sched_def *d, int source,
                        ls_buf *out, int *created, ls_err *err)
{
    /* Every fire starts a run with this input: one over the payload limit
     * would be accepted here and then fail at each fire. */
    if (d->input_len > f->o.max_payload)
        return ls_err_set(err, LS_EINVAL,
                          "input: %zu bytes, over the payload limit of %zu bytes (lodestoned "
                          "--max-payload)",
                          d->input_len, f->o.max_payload);
    if (find_unopened(S, d->name, strlen(d->name)) < S->nunopened)
        return ls_err_set(err, LS_ESTATE,
                          "schedule %s: its stored record did not open at start (see the log); "
                          "restart with the key file it was written under, or delete it",
                          d->name);
    sched *s = find(S, d->name, strlen(d->name));
    int64_t now = flow_now(f);
    if (s && s->source == LS_FLOW_SCHEDULE_FILE && source == LS_FLOW_SCHEDULE_API)
        return ls_err_set(err, LS_ESTATE,
                          "schedule %s is declared by the workflow file of type %s "
                          "(workflow.define{schedule=...}); edit that file to change it",
                          d->name, s->d.workflow);
    if (s && s->source == LS_FLOW_SCHEDULE_API && source == LS_FLOW_SCHEDULE_FILE)
        flow_log(f, LS_FLOW_LOG_WARN, NULL,
                 "schedule %s: the workflow file of type %s declares it; it replaces the one "
                 "created through the API",
                 d->name, d->workflow);
    if (s && flow_sched_def_equal(&s->d, d) && s->source == source) {
        flow_sched_def_free(d);
        return out ? dump_into(render(s, err), out, err) : LS_OK;
    }
    sched *n = ls_calloc(1, sizeof *n);
    if (n == NULL) return ls_err_set(err, LS_ENOMEM, "schedule: out of memory");
    if (s) {
        /* Keep the history and the counters; a new definition starts from
         * now (no catch-up of times the old one did not have). */
        *n = *s;
        n->last_run = s->last_run ? ls_strdup(s->last_run) : NULL;
        if (s->last_run && n->last_run == NULL) {
            ls_free(n);
            return ls_err_set(err, LS_ENOMEM, "schedule: out of memory");
        }
        n->watching = 0;
        if (!flow_sched_def_equal(&s->d, d)) n->anchor_ms = now;
    } else {
        n->created_ms = now;
        n->anchor_ms = now;
    }
    n->d = *d;
    n->source = source;
    n->updated_ms = now;
    n->after_downtime = s ? s->after_downtime && flow_sched_def_equal(&s->d, d) : 0;
    /* Everything that can fail comes before the write: a put that returns
     * an error has changed nothing. */
    ls_rc rc = out ? dump_into(render(n, err), out, err) : LS_OK;
    if (rc == LS_OK) rc = reserve(S, err);
    if (rc == LS_OK) rc = persist(f, n, err);
    if (rc != LS_OK) {
        n->d = (flow_sched_def){0};
        sched_free(n);
        return rc;
    }
    memset(d, 0, sizeof *d); /* n owns it now */
    *created = s == NULL;
    flow_log(f, LS_FLOW_LOG_INFO, NULL, "schedule %s %s: %s runs %s (overlap %s, catchup %s)",
             n->d.name, s ? "updated" : "created", n->d.cron_text, n->d.workflow,
             flow_overlap_name(n->d.overlap), flow_catchup_name(n->d.catchup));
    if (s) {
        int found;
        size_t i = find_pos(S, s->d.name, strlen(s->d.name), &found);
        unwatch(f, s);
        S->v[i] = n;
        sched_free(s);
    } else {
        insert(S, n, NULL); /* reserved: cannot fail */
    }
    kick(S);
    return LS_OK;
}

static ls_rc parse_def(const char *json, size_t len, flow_sched_def *d, ls_err *err)
{
    json_t *o = NULL;
    ls_rc rc = ls_json_parse(json, len, &o, err);
    if (rc != LS_OK) return LS_ERR_PREFIXED(rc, err, "schedule");
    rc = flow_sched_def_parse(o, NULL, d, err);
    json_decref(o);
    return rc;
}

ls_rc ls_flow_schedule_put(ls_flow_t *f, const char *def, size_t len, int source, ls_buf *out,
                           int *created, ls_err *err)
{
    int c = 0;
    if (created == NULL) created = &c;
    *created = 0;
    flow_sched_def d;
    ls_rc rc = parse_def(def, len, &d, err);
    if (rc != LS_OK) return rc;
    if (!f->o.runner->has_type(f->o.runner_ud, d.workflow, strlen(d.workflow))) {
        rc = ls_err_set(err, LS_ENOTFOUND, "workflow: no workflow type \"%s\" is loaded",
                        d.workflow);
        flow_sched_def_free(&d);
        return rc;
    }
    struct flow_scheds *S = f->sched;
    pthread_mutex_lock(&S->mu);
    rc = put_locked(f, S, &d, source, out, created, err);
    pthread_mutex_unlock(&S->mu);
    flow_sched_def_free(&d);
    return rc;
}

ls_rc ls_flow_schedule_get(ls_flow_t *f, const char *name, size_t nlen, ls_buf *out, ls_err *err)
{
    struct flow_scheds *S = f->sched;
    pthread_mutex_lock(&S->mu);
    sched *s = find(S, name, nlen);
    ls_rc rc = s ? dump_into(render(s, err), out, err)
                 : ls_err_set(err, LS_ENOTFOUND, "no schedule named \"%.*s\"",
                              (int)(nlen > 100 ? 100 : nlen), name);
    pthread_mutex_unlock(&S->mu);
    return rc;
}

ls_rc ls_flow_schedule_list(ls_flow_t *f, ls_buf *out, ls_err *err)
{
    struct flow_scheds *S = f->sched;
    json_t *arr = json_array();
    ls_rc rc = arr ? LS_OK : ls_err_set(err, LS_ENOMEM, "schedule: out of memory");
    pthread_mutex_lock(&S->mu);
    for (size_t i = 0; rc == LS_OK && i < S->n; i++) {
        json_t *o = render(S->v[i], err);
        if (o == NULL || json_array_append_new(arr, o))
            rc = err && err->code ? err->code : LS_ENOMEM;
    }
    pthread_mutex_unlock(&S->mu);
    if (rc != LS_OK) {
        json_decref(arr);
        return rc;
    }
    return dump_into(json_pack("{s:o}", "schedules", arr), out, err);
}

static ls_rc delete_locked(ls_flow_t *f, struct flow_scheds *S, sched *s, ls_err *err)
{
    ls_rc rc = unpersist(f, s->d.name, err);
    if (rc != LS_OK) return rc;
    flow_log(f, LS_FLOW_LOG_INFO, NULL, "schedule %s deleted", s->d.name);
    unwatch(f, s);
    remove_at(S, s);
    sched_free(s);
    return LS_OK;
}

ls_rc ls_flow_schedule_delete(ls_flow_t *f, const char *name, size_t nlen, int source, ls_err *err)
{
    struct flow_scheds *S = f->sched;
    pthread_mutex_lock(&S->mu);
    sched *s = find(S, name, nlen);
    size_t u = find_unopened(S, name, nlen);
    ls_rc rc;
    if (s == NULL && u < S->nunopened && source == LS_FLOW_SCHEDULE_API) {
        /* a record that did not open: deleted unread */
        rc = unpersist(f, S->unopened[u], err);
        if (rc == LS_OK) {
            flow_log(f, LS_FLOW_LOG_INFO, NULL, "schedule %s deleted (unread)", S->unopened[u]);
            ls_free(S->unopened[u]);
            S->unopened[u] = S->unopened[--S->nunopened];
        }
    } else if (s == NULL)
        rc = ls_err_set(err, LS_ENOTFOUND, "no schedule named \"%.*s\"",
                        (int)(nlen > 100 ? 100 : nlen), name);
    else if (s->source == LS_FLOW_SCHEDULE_FILE && source == LS_FLOW_SCHEDULE_API)
        rc = ls_err_set(err, LS_ESTATE,
                        "schedule %s is declared by the workflow file of type %s; remove "
                        "`schedule` from its workflow.define{} (and reload) to delete it",
                        s->d.name, s->d.workflow);
    else
        rc = delete_locked(f, S, s, err);
    pthread_mutex_unlock(&S->mu);
    return rc;
}

ls_rc ls_flow_schedule_sync_files(ls_flow_t *f, const char *defs, size_t len, ls_err *err)
{
    json_t *arr = NULL;
    ls_rc rc = ls_json_parse(defs, len, &arr, err), first = LS_OK;
    if (rc != LS_OK) return LS_ERR_PREFIXED(rc, err, "file schedules");
    if (!json_is_array(arr)) {
        json_decref(arr);
        return ls_err_set(err, LS_EINVAL, "file schedules: must be an array");
    }
    struct flow_scheds *S = f->sched;
    pthread_mutex_lock(&S->mu);
    for (size_t i = 0; i < S->n; i++) S->v[i]->seen = 0;
    size_t i;
    json_t *o;
    json_array_foreach(arr, i, o)
    {
        flow_sched_def d;
        ls_err e;
        int created;
        rc = flow_sched_def_parse(o, NULL, &d, &e);
        if (rc == LS_OK) rc = put_locked(f, S, &d, LS_FLOW_SCHEDULE_FILE, NULL, &created, &e);
        const char *nm = json_string_value(json_object_get(o, "name"));
        sched *s = nm ? find(S, nm, strlen(nm)) : NULL;
        if (s && rc == LS_OK) s->seen = 1;
        if (s && rc != LS_OK && s->source == LS_FLOW_SCHEDULE_FILE) s->seen = 1; /* keep it */
        if (rc != LS_OK) {
            flow_log(f, LS_FLOW_LOG_ERROR, NULL, "schedule of workflow %s: %s", nm ? nm : "?",
                     ls_err_text(&e));
            if (first == LS_OK) {
                first = rc;
                if (err) *err = e;
            }
        }
        flow_sched_def_free(&d);
    }
    for (size_t k = S->n; k-- > 0;) {
        sched *s = S->v[k];
        if (s->source != LS_FLOW_SCHEDULE_FILE || s->seen) continue;
        ls_err e;
        if (delete_locked(f, S, s, &e) != LS_OK)
            flow_log(f, LS_FLOW_LOG_ERROR, NULL, "%s", ls_err_text(&e));
    }
    pthread_mutex_unlock(&S->mu);
    json_decref(arr);
    return first;
}

ls_rc ls_flow_schedule_check(const char *def, size_t len, ls_err *err)
{
    json_t *o = NULL;
    ls_rc rc = ls_json_parse(def, len, &o, err);
    if (rc != LS_OK) return rc;
    flow_sched_def d;
    rc = flow_sched_def_parse(o, NULL, &d, err);
    if (rc == LS_OK) flow_sched_def_free(&d);
    json_decref(o);
    return rc;
}

void ls_flow_schedule_get_stats(ls_flow_t *f, ls_flow_schedule_stats *out)
{
    struct flow_scheds *S = f->sched;
    pthread_mutex_lock(&S->mu);
    *out = S->st;
    pthread_mutex_unlock(&S->mu);
}

/* ---- firing ---- */

/* Whether the named run exists and has not ended. */
static int run_running(ls_flow_t *f, const char *name)
{
    if (name == NULL) return 0;
    ls_id id;
    if (flow_lookup(f, name, strlen(name), &id, NULL) != LS_OK) return 0;
    pthread_mutex_lock(&f->mu);
    int running = flow_runtab_find(&f->runs, &id) != NULL;
    pthread_mutex_unlock(&f->mu);
    return running;
}

static void set_outcome(sched *s, const char *what)
{
    snprintf(s->last_outcome, sizeof s->last_outcome, "%s", what);
}

/* Starts the run of fire time t. LS_EBUSY: the engine stops (nothing
 * recorded: the fire is dealt with after the restart). */
static ls_rc fire(ls_flow_t *f, struct flow_scheds *S, sched *s, int64_t t)
{
    char id[FLOW_SCHED_NAMEMAX + FLOW_SCHED_IDSUFFIX + 1];
    size_t idlen = flow_sched_fire_id(s->d.name, t, id, sizeof id);
    ls_buf run = LS_BUF_INIT;
    ls_err err = {0};
    int created = 0;
    ls_rc rc = ls_flow_start(f, s->d.workflow, strlen(s->d.workflow), id, idlen, s->d.input,
                             s->d.input_len, &run, &created, &err);
    ls_buf_free(&run);
    if (rc == LS_EBUSY) return rc;
    s->last_fire_ms = t;
    if (rc != LS_OK) {
        s->failed++;
        S->st.fires_failed++;
        set_outcome(s, "failed");
        flow_log(f, LS_FLOW_LOG_ERROR, id, "schedule %s: fire not started: %s", s->d.name,
                 ls_err_text(&err));
        return LS_OK;
    }
    char *lr = ls_strdup(id);
    if (lr) {
        ls_free(s->last_run);
        s->last_run = lr;
    }
    set_outcome(s, "started");
    if (created) {
        s->started++;
        S->st.fires_started++;
        flow_log(f, LS_FLOW_LOG_INFO, id, "schedule %s: started %s", s->d.name, s->d.workflow);
    } else {
        flow_log(f, LS_FLOW_LOG_INFO, id, "schedule %s: fire already started (run exists)",
                 s->d.name);
    }
    return LS_OK;
}

static void watch_last(ls_flow_t *f, struct flow_scheds *S, sched *s)
{
    if (s->watching || s->last_run == NULL) return;
    ls_rc rc = ls_flow_watch(f, s->last_run, strlen(s->last_run), on_run_end, S, &s->watch, NULL);
    if (rc == LS_OK)
        s->watching = 1;
    else
        kick(S); /* it has ended already: look again at once */
}

/* One schedule at now. Returns LS_EBUSY when the engine stops. */
static ls_rc tick_one(ls_flow_t *f, struct flow_scheds *S, sched *s, int64_t now)
{
    int dirty = 0;
    ls_rc rc = LS_OK;
    if (s->buffered_ms) {
        if (!run_running(f, s->last_run)) {
            unwatch(f, s);
            if ((rc = fire(f, S, s, s->buffered_ms)) == LS_EBUSY) return rc;
            s->buffered_ms = 0;
            dirty = 1;
        } else {
            watch_last(f, S, s);
        }
    }
    flow_sched_plan p;
    flow_sched_plan_at(&s->d.cron, s->d.timezone, s->anchor_ms, now, s->after_downtime,
                       s->d.catchup, &p);
    if (p.missed) {
        s->missed += p.missed;
        S->st.fires_missed += p.missed;
        flow_log(f, LS_FLOW_LOG_WARN, NULL, "schedule %s: %llu fire%s passed over (%s)", s->d.name,
                 (unsigned long long)p.missed, p.missed == 1 ? "" : "s",
                 s->after_downtime ? (s->d.catchup == FLOW_CATCHUP_NONE
                                          ? "missed while the daemon was down; catchup none"
                                          : "missed while the daemon was down; catchup one "
                                            "starts the latest")
                                   : "the scheduler woke late; the latest fires");
        dirty = 1;
    }
    if (p.anchor != s->anchor_ms) dirty = 1;
    s->anchor_ms = p.anchor;
    s->after_downtime = 0; /* only the first look after a restart catches up */
    if (p.fire) {
        int running = s->d.overlap != FLOW_OVERLAP_ALLOW && run_running(f, s->last_run);
        switch (flow_sched_decide(s->d.overlap, running, s->buffered_ms != 0)) {
        case FLOW_SCHED_START:
            if ((rc = fire(f, S, s, p.fire)) == LS_EBUSY) return rc;
            break;
        case FLOW_SCHED_BUFFER:
            s->buffered_ms = p.fire;
            s->last_fire_ms = p.fire;
            set_outcome(s, "buffered");
            flow_log(f, LS_FLOW_LOG_INFO, NULL,
                     "schedule %s: fire buffered until run %s ends (overlap buffer_one)", s->d.name,
                     s->last_run);
            watch_last(f, S, s);
            break;
        case FLOW_SCHED_SKIP: {
            char id[FLOW_SCHED_NAMEMAX + FLOW_SCHED_IDSUFFIX + 1];
            flow_sched_fire_id(s->d.name, p.fire, id, sizeof id);
            s->skipped++;
            S->st.fires_skipped++;
            s->last_fire_ms = p.fire;
            set_outcome(s, "skipped");
            flow_log(f, LS_FLOW_LOG_WARN, id,
                     "schedule %s: fire skipped: run %s is still running (overlap %s)", s->d.name,
                     s->last_run, flow_overlap_name(s->d.overlap));
            break;
        }
        }
        dirty = 1;
    }
    if (dirty) {
        ls_err err;
        s->updated_ms = now;
        if (persist(f, s, &err) != LS_OK)
            flow_log(f, LS_FLOW_LOG_ERROR, NULL, "%s", ls_err_text(&err));
    }
    return LS_OK;
}

int64_t flow_sched_tick(ls_flow_t *f)
{
    struct flow_scheds *S = f->sched;
    int64_t earliest = INT64_MAX;
    pthread_mutex_lock(&S->mu);
    int64_t now = flow_now(f);
    for (size_t i = 0; i < S->n; i++) {
        sched *s = S->v[i];
        if (tick_one(f, S, s, now) == LS_EBUSY) break;
        int64_t next;
        if (ls_cron_next_in(&s->d.cron, s->d.timezone, s->anchor_ms, &next) == LS_OK &&
            next < earliest)
            earliest = next;
    }
    pthread_mutex_unlock(&S->mu);
    return earliest;
}

/* ---- the thread ---- */

static void *sched_main(void *p)
{
    ls_flow_t *f = p;
    struct flow_scheds *S = f->sched;
    pthread_mutex_lock(&S->kmu);
    while (!S->stop) {
        S->kicked = 0;
        pthread_mutex_unlock(&S->kmu);
        int64_t due = flow_sched_tick(f);
        pthread_mutex_lock(&S->kmu);
        /* Until the next fire time (a look finds nothing due before it:
         * waking early only costs a look), a kick, or the stop. Something
         * still due (a fire the engine refused) is looked at again soon,
         * not in a loop. */
        int64_t in = due == INT64_MAX ? SCHED_MAX_NAP : due - flow_now(f);
        if (in < 10) in = 10;
        if (in > SCHED_MAX_NAP) in = SCHED_MAX_NAP;
        if (!S->stop && !S->kicked) {
            struct timespec ts;
            flow_deadline_in(&ts, in);
            pthread_cond_timedwait(&S->kcv, &S->kmu, &ts);
        }
    }
    pthread_mutex_unlock(&S->kmu);
    return NULL;
}

/* ---- hooks ---- */

ls_rc flow_sched_open(ls_flow_t *f, ls_err *err)
{
    struct flow_scheds *S = ls_calloc(1, sizeof *S);
    if (S == NULL) return ls_err_set(err, LS_ENOMEM, "schedules: out of memory");
    pthread_mutex_init(&S->mu, NULL);
    pthread_mutex_init(&S->kmu, NULL);
    pthread_cond_init(&S->kcv, NULL);
    f->sched = S;
    ls_rc rc = load_all(f, S, err);
    if (rc == LS_OK && S->n) flow_log(f, LS_FLOW_LOG_INFO, NULL, "%zu schedules loaded", S->n);
    return rc;
}

ls_rc flow_sched_start(ls_flow_t *f, ls_err *err)
{
    struct flow_scheds *S = f->sched;
    int e = pthread_create(&S->th, NULL, sched_main, f);
    if (e != 0)
        return ls_err_set(err, LS_EIO, "flow: cannot start the scheduler thread: %s", strerror(e));
    pthread_setname_np(S->th, "ls-schedule");
    S->started = 1;
    return LS_OK;
}

void flow_sched_stop(ls_flow_t *f)
{
    struct flow_scheds *S = f->sched;
    if (S == NULL || !S->started) return;
    pthread_mutex_lock(&S->kmu);
    S->stop = 1;
    pthread_cond_signal(&S->kcv);
    pthread_mutex_unlock(&S->kmu);
    pthread_join(S->th, NULL);
    S->started = 0;
}

void flow_sched_free(ls_flow_t *f)
{
    struct flow_scheds *S = f->sched;
    if (S == NULL) return;
    flow_sched_stop(f);
    for (size_t i = 0; i < S->n; i++) sched_free(S->v[i]);
    ls_free(S->v);
    free_unopened(S);
    pthread_mutex_destroy(&S->mu);
    pthread_mutex_destroy(&S->kmu);
    pthread_cond_destroy(&S->kcv);
    ls_free(S);
    f->sched = NULL;
}
