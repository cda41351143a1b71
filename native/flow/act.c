/* SPDX-License-Identifier: MIT
 * One activation of a run: load its history, let the runner replay the
 * workflow code against it through the ls_flow_act_* calls, and append
 * what the code does next. Every call that changes the run appends its
 * events, the run record (and indexes, timers) to one batch and writes it;
 * a step's result is synced before the code sees it.
 */
#include "ls_config.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "flow_int.h"
#include "lodestone/ls_alloc.h"
#include "ls_json.h"
#include "retry.h"

void flow_activation_done(ls_flow_t *f, flow_run *r, const ls_flow_act *a);

/* ---- history loading ---- */

/* Appends one encoded event to the loaded history. */
static ls_rc push_value(ls_flow_act *a, size_t *cap, const void *val, size_t vlen, ls_err *err)
{
    if (a->nev == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        size_t *no = ls_realloc(a->voff, nc * sizeof *no);
        if (no) a->voff = no;
        size_t *nl = ls_realloc(a->vlen, nc * sizeof *nl);
        if (nl) a->vlen = nl;
        if (no == NULL || nl == NULL) return ls_err_set(err, LS_ENOMEM, "history: out of memory");
        *cap = nc;
    }
    a->voff[a->nev] = a->arena.len;
    a->vlen[a->nev] = vlen;
    ls_rc rc = ls_buf_append(&a->arena, val, vlen, err);
    if (rc == LS_OK) a->nev++;
    return rc;
}

static ls_rc put_event(ls_flow_act *a, ls_event *ev, const void *pt, size_t ptlen, ls_err *err);
static ls_rc drain_inbox(ls_flow_act *a, size_t *cap, const flow_hist *h, ls_err *err);

/* Checks one event of the run's history as the store holds it under key:
 * in its place, none missing before it, of the run's version
 * (flow_hist_check), and a version 3 event's seal opened (into scratch),
 * whatever its kind, so that a record forged or changed without the key
 * (a timer that fired, a step's fatal failure, a cancel) is refused
 * before the replay reads any of it. */
static ls_rc check_loaded(ls_flow_act *a, flow_hist *h, const void *key, size_t klen,
                          const void *val, size_t vlen, ls_buf *scratch, ls_err *err)
{
    ls_event ev;
    uint64_t seq = 0;
    ls_rc rc = ls_history_key_parse(key, klen, NULL, &seq, err);
    if (rc == LS_OK && (rc = ls_event_decode(val, vlen, &ev, err)) != LS_OK)
        return ls_err_prefix(err, "event %llu", (unsigned long long)seq);
    if (rc == LS_OK) rc = flow_hist_check(h, seq, &ev, err);
    if (rc == LS_OK && ev.version >= 3)
        rc = flow_open_event(a->f, &a->r->id, NULL, h->started, &ev, scratch, err);
    return rc;
}

/* Reads the run's history from the store, each event checked
 * (check_loaded), into the arena. *refused is set when an event was (a
 * record in the store, not the reading, is at fault). */
static ls_rc read_history(ls_flow_act *a, size_t *cap, flow_hist *h, int *refused, ls_err *err)
{
    ls_buf prefix = LS_BUF_INIT, scratch = LS_BUF_INIT;
    ls_store_iter_t *it = NULL;
    const void *key, *val;
    size_t klen, vlen;
    ls_rc rc = ls_history_prefix(&prefix, &a->r->id, err);
    if (rc == LS_OK) rc = ls_store_iter_prefix(&it, a->f->o.store, prefix.ptr, prefix.len, 0, err);
    while (rc == LS_OK && (rc = ls_store_iter_next(it, &key, &klen, &val, &vlen, err)) == LS_OK) {
        rc = check_loaded(a, h, key, klen, val, vlen, &scratch, err);
        *refused = rc != LS_OK && rc != LS_ENOMEM;
        if (rc == LS_OK) rc = push_value(a, cap, val, vlen, err);
    }
    if (rc == LS_ENOTFOUND) rc = LS_OK;
    ls_store_iter_free(it);
    ls_buf_free(&prefix);
    ls_buf_free(&scratch);
    if (rc == LS_OK && a->nev == 0) return ls_err_set(err, LS_ECORRUPT, "the run has no history");
    return rc;
}

static ls_rc load_history(ls_flow_act *a, int *refused, ls_err *err)
{
    size_t cap = 0;
    ls_rc rc = LS_OK;
    flow_run *r = a->r;
    flow_hist h = FLOW_HIST_INIT;
    if (r->fresh) {
        /* A new run's first activation: its history is the WorkflowStarted
         * just written, kept by ls_flow_start. */
        ls_event ev;
        rc = ls_event_decode(r->fresh, r->fresh_len, &ev, err);
        if (rc == LS_OK) rc = flow_hist_check(&h, 1, &ev, err);
        if (rc == LS_OK) rc = push_value(a, &cap, r->fresh, r->fresh_len, err);
        ls_free(r->fresh);
        r->fresh = NULL;
    } else {
        rc = read_history(a, &cap, &h, refused, err);
        /* The newest events deleted (or one added): caught here, not when
         * the next write finds its seq taken or missing. */
        if (rc == LS_OK && a->nev != r->last_seq) {
            *refused = 1;
            rc = ls_err_set(err, LS_ECORRUPT,
                            "history: its last event is event %zu, the run's record says %llu",
                            a->nev, (unsigned long long)r->last_seq);
        }
    }
    if (rc != LS_OK) return rc;
    a->started = h.started; /* what the run's later events are sealed with */
    if ((rc = drain_inbox(a, &cap, &h, err)) != LS_OK) return rc;
    a->ev = ls_calloc(a->nev, sizeof *a->ev);
    if (a->ev == NULL) return ls_err_set(err, LS_ENOMEM, "history: out of memory");
    for (size_t i = 0; i < a->nev; i++) {
        rc = ls_event_decode(a->arena.ptr + a->voff[i], a->vlen[i], &a->ev[i], err);
        if (rc != LS_OK) return ls_err_prefix(err, "event %zu", i + 1);
    }
    if ((rc = ls_replay_init(&a->rp, a->ev, a->nev, err)) != LS_OK) return rc;
    a->rp_ready = 1;
    return LS_OK;
}

/* ---- writing ---- */

static ls_rc fail_sticky(ls_flow_act *a, ls_rc rc, const ls_err *err)
{
    if (a->sticky == LS_OK) {
        a->sticky = rc;
        a->sticky_err = *err;
    }
    return rc;
}

static ls_rc check_sticky(ls_flow_act *a, ls_err *err)
{
    if (a->sticky == LS_OK) {
        if (a->commit_pending || a->io_wait)
            return ls_err_set(
                err, LS_EINVAL,
                "the activation is parked; return to the engine before calling again");
        if (a->ended || a->ending) return ls_err_set(err, LS_EINVAL, "the run has ended");
        if (a->waiting && a->cur == 0)
            return ls_err_set(err, LS_EINVAL, "the run is suspended; unwind the workflow code");
        return LS_OK;
    }
    if (err) *err = a->sticky_err;
    return a->sticky;
}

/* Gives the activation up for a cause outside the run's code (why): the
 * run stays unfinished, as after a failed write, every later call fails
 * with why, and the run goes on when it is next activated (a signal, a
 * reload, a restart). Logged, naming the run. */
static ls_rc give_up(ls_flow_act *a, ls_rc rc, ls_err *why, ls_err *err)
{
    ls_err_prefix(why, "run %s", a->r->name);
    a->broken = 1;
    flow_log(a->f, LS_FLOW_LOG_ERROR, a->r->name,
             "%s; the run waits, unfinished (it goes on when next activated: a signal, a reload, "
             "a restart with the right key file)",
             ls_err_text(why));
    if (err) *err = *why;
    return fail_sticky(a, rc, why);
}

/* The error of an activation given up (broken): every later call's. */
static ls_rc given_up(const ls_flow_act *a, ls_err *err)
{
    if (a->sticky == LS_OK) return ls_err_set(err, LS_EIO, "the activation was given up");
    if (err) *err = a->sticky_err;
    return a->sticky;
}

/* Opens the payload of the run's event ev into out. One that does not
 * open (the wrong key file, a record changed on disk) is no fault of the
 * run's code, which must not fail for it: the activation is given up. */
static ls_rc open_payload(ls_flow_act *a, const ls_event *ev, ls_buf *out, ls_err *err)
{
    ls_err why;
    ls_rc rc = flow_open_event(a->f, &a->r->id, NULL, a->started, ev, out, &why);
    return rc == LS_OK ? LS_OK : give_up(a, rc, &why, err);
}

/* Queues event ev (its seq is assigned here) with payload plaintext
 * (sealed here; NULL/0 for none). */
static ls_rc put_event(ls_flow_act *a, ls_event *ev, const void *pt, size_t ptlen, ls_err *err)
{
    ls_rc rc;
    ev->seq = a->r->last_seq + a->new_events + 1;
    const ls_flow_opts *o = &a->f->o;
    int ends = ev->type == LS_EV_WORKFLOW_COMPLETED || ev->type == LS_EV_WORKFLOW_FAILED ||
               ev->type == LS_EV_WORKFLOW_CANCELLED || ev->type == LS_EV_WORKFLOW_TERMINATED;
    if (!ends && ev->seq > o->max_events)
        return ls_err_set(err, LS_EINVAL,
                          "run %s: history reached the limit of %llu events (lodestoned "
                          "--max-events); split the work into child workflows",
                          a->r->name, (unsigned long long)o->max_events);
    if (pt && ptlen > o->max_payload) {
        const char *what = ev->type == LS_EV_STEP_COMPLETED       ? "the result of step"
                           : ev->type == LS_EV_WORKFLOW_COMPLETED ? "the workflow's output"
                           : ev->type == LS_EV_SIDE_EFFECT        ? "the value of ctx:"
                           : ev->type == LS_EV_CHILD_COMPLETED    ? "the output of child"
                                                                  : "the payload of";
        int quoted = ev->name_len && ev->type != LS_EV_SIDE_EFFECT;
        return ls_err_set(err, LS_EINVAL,
                          "%s%s%.*s%s is %zu bytes, over the payload limit of %zu bytes "
                          "(lodestoned --max-payload)",
                          what, quoted ? " \"" : "", (int)(ev->name_len > 60 ? 60 : ev->name_len),
                          ev->name ? ev->name : "", quoted ? "\"" : "", ptlen, o->max_payload);
    }
    if (ev->time_ms == 0) ev->time_ms = flow_now(a->f);
    if (pt == NULL && flow_event_holds_payload(ev->type)) { /* sealed all the same */
        pt = "null";
        ptlen = 4;
    }
    /* Every event is sealed, one that holds no payload as an empty one
     * (a MAC over its fields): a writer without the key forges none. */
    if ((rc = flow_seal_event(a->f, &a->r->id, NULL, a->started, ev, pt, pt ? ptlen : 0, &a->sealed,
                              err)) != LS_OK)
        return rc;
    if ((rc = ls_history_key(&a->k, &a->r->id, ev->seq, err)) != LS_OK ||
        (rc = ls_event_encode(ev, &a->v, err)) != LS_OK)
        return rc;
    ls_store_batch_put(a->b, a->k.ptr, a->k.len, a->v.ptr, a->v.len);
    a->new_events++;
    return LS_OK;
}

/* A durable timer key; its value says what the run waits for (kind 's',
 * 'r' or 'g', then the name), so that a restart can show it without
 * replaying the run. */
static ls_rc add_timer(ls_flow_act *a, int64_t due, uint64_t seq, char kind, const char *name,
                       size_t nlen, ls_err *err)
{
    ls_rc rc = flow_key_timer(&a->k, due, &a->r->id, seq, err);
    if (rc == LS_OK) rc = ls_buf_set(&a->tmp, &kind, 1, err);
    if (rc == LS_OK && nlen) rc = ls_buf_append(&a->tmp, name, nlen, err);
    if (rc != LS_OK) return rc;
    ls_store_batch_put(a->b, a->k.ptr, a->k.len, a->tmp.ptr, a->tmp.len);
    return LS_OK;
}

static ls_rc put_timer(ls_flow_act *a, int64_t due, uint64_t seq, int del, ls_err *err)
{
    ls_rc rc = flow_key_timer(&a->k, due, &a->r->id, seq, err);
    if (rc != LS_OK) return rc;
    if (del)
        ls_store_batch_delete(a->b, a->k.ptr, a->k.len);
    else
        ls_store_batch_put(a->b, a->k.ptr, a->k.len, "", 0);
    return LS_OK;
}

/* Moves the run's inbox (signals, cancel and terminate requests that
 * arrived since its last activation, in arrival order) into the write in
 * progress: history events appended to the loaded history (so the replay
 * sees them), their inbox keys deleted in the same batch. A terminate
 * request is kept aside: the activation ends the run without its code. */
static ls_rc drain_inbox(ls_flow_act *a, size_t *cap, const flow_hist *h, ls_err *err)
{
    ls_flow_t *f = a->f;
    flow_run *r = a->r;
    pthread_mutex_lock(&f->mu);
    unsigned pending = r->inbox;
    r->inbox = 0;
    pthread_mutex_unlock(&f->mu);
    if (pending == 0) return LS_OK;
    a->drained = pending; /* owed back to r->inbox unless a write carries them */
    ls_buf prefix = LS_BUF_INIT, pt = LS_BUF_INIT;
    ls_store_iter_t *it = NULL;
    const void *key, *val;
    size_t klen, vlen;
    ls_rc rc = flow_key_inbox(&prefix, &r->id, NULL, err);
    if (rc == LS_OK) rc = ls_store_iter_prefix(&it, f->o.store, prefix.ptr, prefix.len, 0, err);
    while (rc == LS_OK && (rc = ls_store_iter_next(it, &key, &klen, &val, &vlen, err)) == LS_OK) {
        ls_event in, ev;
        ls_id arrival;
        char at[LS_ID_TEXTLEN + 1];
        if (klen != prefix.len + LS_ID_BYTES) {
            rc = ls_err_set(err, LS_ECORRUPT, "inbox entry: a key of %zu bytes", klen);
            break;
        }
        memcpy(arrival.b, (const unsigned char *)key + prefix.len, LS_ID_BYTES);
        ls_id_format(&arrival, at);
        if ((rc = ls_event_decode(val, vlen, &in, err)) != LS_OK) {
            ls_err_prefix(err, "inbox entry %s", at);
            break;
        }
        /* Of the run's version, and opened whatever it holds: a version 3
         * entry's seal is checked even when it carries no payload (a
         * cancel, a child's failure, a resume, a terminate). */
        if ((rc = flow_hist_check_entry(h, &arrival, &in, err)) != LS_OK ||
            (rc = flow_open_event(f, &r->id, &arrival, h->started, &in, &pt, err)) != LS_OK)
            break;
        ls_store_batch_delete(a->b, key, klen);
        memset(&ev, 0, sizeof ev);
        ev.type = in.type;
        ev.time_ms = in.time_ms ? in.time_ms : 1;
        ev.name = in.name;
        ev.name_len = in.name_len;
        ev.error = in.error;
        ev.error_len = in.error_len;
        if (in.type == LS_EV_SIGNAL_RECEIVED || in.type == LS_EV_CHILD_COMPLETED) {
            rc = put_event(a, &ev, pt.ptr, pt.len, err);
        } else if (in.type == LS_EV_CANCEL_REQUESTED || in.type == LS_EV_CHILD_FAILED ||
                   in.type == LS_EV_RESUMED) {
            if (in.type == LS_EV_RESUMED) a->resume_taken = 1;
            rc = put_event(a, &ev, NULL, 0, err);
        } else if (in.type == LS_EV_WORKFLOW_TERMINATED) {
            if (!a->terminate) {
                a->terminate = 1;
                rc = ls_buf_set(&a->term_by, in.name, in.name_len, err);
                if (rc == LS_OK) rc = ls_buf_set(&a->term_reason, in.error, in.error_len, err);
            }
            continue;
        } else {
            rc = ls_err_set(err, LS_ECORRUPT, "inbox entry %s of type %s", at,
                            ls_event_type_name(in.type));
        }
        if (rc == LS_OK) rc = push_value(a, cap, a->v.ptr, a->v.len, err);
    }
    if (rc == LS_ENOTFOUND) rc = LS_OK;
    ls_store_iter_free(it);
    ls_buf_free(&prefix);
    ls_buf_free(&pt);
    return rc;
}

/* A write came back from the committer (or was waited for): the run's
 * record in memory follows, or the activation is broken. */
static void apply_commit(ls_flow_act *a)
{
    flow_run *r = a->r;
    if (a->c.rc == LS_OK) {
        ls_store_batch_clear(a->b);
        for (size_t i = 0; i < a->nborn; i++) flow_branch_register(a->f, a->born[i]);
        a->nborn = 0;
        r->last_seq = a->pend_last_seq;
        r->updated_ms = a->pend_now;
        r->status = a->pend_status;
        a->new_events = 0;
        a->drained = 0;
        r->unhold = 0;
        if (a->custom_queued) {
            a->custom_queued = 0;
            ls_free(r->custom);
            r->custom = (char *)ls_buf_steal(&a->custom_new, &r->custom_len);
        }
        if (a->c.sync) a->unsynced = 0;
        if (a->ending) a->ended = 1;
        return;
    }
    ls_err err = a->c.err;
    ls_err_prefix(&err, "run %s: cannot write", r->name);
    a->broken = 1;
    flow_log(a->f, LS_FLOW_LOG_ERROR, r->name, "%s", ls_err_text(&err));
    fail_sticky(a, a->c.rc, &err);
}

/* Writes the queued events with the run record, as one transition.
 * new_status other than RUNNING also moves the status index. With a runner
 * that parks, the write is handed to the committer and the activation
 * parks (unless it is ending or suspending); otherwise this waits. */
static ls_rc commit(ls_flow_act *a, int sync, ls_run_status new_status, ls_err *err)
{
    flow_run *r = a->r;
    ls_flow_t *f = a->f;
    ls_rc rc;
    int64_t now = flow_now(f);
    ls_run_record rec = {.status = new_status,
                         .created_ms = r->created_ms,
                         .updated_ms = now,
                         .last_seq = r->last_seq + a->new_events,
                         .steps_completed = r->steps_completed,
                         .attempts_failed = r->attempts_failed,
                         .type = r->type,
                         .type_len = strlen(r->type),
                         .name = r->name,
                         .name_len = strlen(r->name),
                         .version = r->version,
                         .version_len = r->version ? strlen(r->version) : 0};
    if ((rc = ls_run_key(&a->k, &r->id, err)) != LS_OK ||
        (rc = ls_run_encode(&rec, &a->v, err)) != LS_OK)
        goto fail;
    ls_store_batch_put(a->b, a->k.ptr, a->k.len, a->v.ptr, a->v.len);
    if (r->unhold && r->ckey) { /* admitted since it was held: clear the mark */
        if ((rc = flow_key_ckey(&a->k, &r->id, err)) != LS_OK ||
            (rc = ls_buf_set(&a->tmp, "\x00", 1, err)) != LS_OK ||
            (rc = ls_buf_append(&a->tmp, r->ckey, strlen(r->ckey), err)) != LS_OK)
            goto fail;
        ls_store_batch_put(a->b, a->k.ptr, a->k.len, a->tmp.ptr, a->tmp.len);
    }
    if (new_status != LS_RUN_RUNNING) {
        if ((rc = flow_key_status(&a->k, LS_RUN_RUNNING, &r->id, err)) != LS_OK) goto fail;
        ls_store_batch_delete(a->b, a->k.ptr, a->k.len);
        if ((rc = flow_key_status(&a->k, new_status, &r->id, err)) != LS_OK) goto fail;
        ls_store_batch_put(a->b, a->k.ptr, a->k.len, "", 0);
        if ((rc = flow_key_ended(&a->k, now, &r->id, err)) != LS_OK) goto fail;
        ls_store_batch_put(a->b, a->k.ptr, a->k.len, "", 0);
    }
    a->pend_status = new_status;
    a->pend_last_seq = rec.last_seq;
    a->pend_now = now;
    memset(&a->c, 0, sizeof a->c);
    a->c.b = a->b;
    a->c.sync = sync;
    if (f->o.runner->resume == NULL) {
        a->c.rc = flow_commit_wait(f, &a->c, &a->c.err);
        apply_commit(a);
        if (a->broken) return check_sticky(a, err);
        return LS_OK;
    }
    a->c.act = a;
    a->commit_pending = 1;
    /* A suspending write ends the activation, so it need not park; in a
     * branch the other branches go on, so it does. */
    if (!a->ending && (!a->waiting || a->cur != 0)) a->parked = 1;
    flow_commit_submit(f, &a->c);
    return LS_OK;
fail:
    ls_err_prefix(err, "run %s: cannot write", r->name);
    a->broken = 1;
    flow_log(f, LS_FLOW_LOG_ERROR, r->name, "%s", ls_err_text(err));
    return fail_sticky(a, rc, err);
}

/* ---- termination ---- */

static ls_rc end_run(ls_flow_act *a, ls_event *ev, const void *pt, size_t ptlen,
                     ls_run_status status, ls_err *err);

/* Ends the run as terminated (the inbox held a terminate request), with
 * the events drained before it, and drops its durable timer. */
static ls_rc terminate_now(ls_flow_act *a, ls_err *err)
{
    ls_flow_t *f = a->f;
    flow_run *r = a->r;
    pthread_mutex_lock(&f->mu);
    int has_timer = r->has_timer;
    int64_t due = r->wait_due;
    uint64_t seq = r->timer_seq;
    pthread_mutex_unlock(&f->mu);
    ls_rc rc;
    if (has_timer && (rc = put_timer(a, due, seq, 1, err)) != LS_OK) return rc;
    a->replaying = 0;
    ls_event ev = {.type = LS_EV_WORKFLOW_TERMINATED,
                   .name = (const char *)a->term_by.ptr,
                   .name_len = a->term_by.len,
                   .error = (const char *)a->term_reason.ptr,
                   .error_len = a->term_reason.len};
    flow_log(f, LS_FLOW_LOG_WARN, r->name, "terminated%s%.*s", a->term_reason.len ? ": " : "",
             (int)(a->term_reason.len > 300 ? 300 : a->term_reason.len),
             a->term_reason.len ? (const char *)a->term_reason.ptr : "");
    return end_run(a, &ev, NULL, 0, LS_RUN_TERMINATED, err);
}

/* ---- cancellation ----
 * A cancel request is a CancelRequested event in history (moved there from
 * the inbox). It is delivered, once, at the first wait point (step, sleep,
 * signal wait) that history does not show as decided before it: the next
 * record begins after the request, or there is none, or the record was
 * still open (then it is closed here: TimerCancelled, or a final
 * StepFailed "cancelled") or was closed after it (by that same delivery,
 * in an earlier activation). Every replay so decides alike. */

/* The seq of the cancel request still to deliver, or 0. */
static uint64_t cancel_due(const ls_flow_act *a)
{
    const ls_event *c = a->cancel_delivered ? NULL : ls_replay_cancel(&a->rp);
    return c ? c->seq : 0;
}

/* Whether the next record begins after the request (or there is none). */
static int cancel_before_record(const ls_flow_act *a, uint64_t cs)
{
    uint64_t p = ls_replay_peek(&a->rp);
    return p == 0 || p > cs;
}

/* Hands the cancellation to the code: out receives the reason. */
static ls_rc deliver_cancel(ls_flow_act *a, ls_flow_outcome *outcome, ls_buf *out, ls_err *err)
{
    const ls_event *c = ls_replay_cancel(&a->rp);
    a->cancel_delivered = 1;
    a->cancel_seen = 1;
    /* Delivered in a branch: the code around the branch (which sees the
     * error come out of ctx:all) has had it too, so its cleanup runs. */
    for (size_t i = 0; a->scopes && a->cur != 0 && i < a->nscopes; i++) {
        flow_scope *s = &a->scopes[i];
        const flow_scope *cur = &a->scopes[a->cur];
        if (i != a->cur && s->len < cur->len && memcmp(s->scope, cur->scope, s->len) == 0)
            s->cancel_delivered = 1;
    }
    *outcome = LS_FLOW_CANCELLED;
    flow_log(a->f, LS_FLOW_LOG_INFO, a->r->name, "cancellation delivered");
    if (out == NULL) return LS_OK;
    return ls_buf_set(out, c->error_len ? c->error : "cancelled", c->error_len ? c->error_len : 9,
                      err);
}

/* ---- custom status ---- */

ls_rc ls_flow_act_set_status(ls_flow_act *a, const char *json, size_t len, ls_err *err)
{
    ls_rc rc = check_sticky(a, err);
    if (rc != LS_OK) return rc;
    if (len > a->f->o.max_payload)
        return ls_err_set(err, LS_EINVAL,
                          "the custom status is %zu bytes, over the payload limit of %zu bytes "
                          "(lodestoned --max-payload)",
                          len, a->f->o.max_payload);
    flow_run *r = a->r;
    const char *cur = a->custom_queued ? (const char *)a->custom_new.ptr : r->custom;
    size_t curlen = a->custom_queued ? a->custom_new.len : r->custom_len;
    if (cur && curlen == len && memcmp(cur, json, len) == 0) return LS_OK;
    if ((rc = flow_seal_status_with(a->f->o.vault, &r->id, json, len, &a->sealed, err)) != LS_OK ||
        (rc = flow_key_custom(&a->k, &r->id, err)) != LS_OK ||
        (rc = ls_buf_set(&a->custom_new, json, len, err)) != LS_OK)
        return rc;
    ls_store_batch_put(a->b, a->k.ptr, a->k.len, a->sealed.ptr, a->sealed.len);
    a->custom_queued = 1; /* written with the next write */
    return LS_OK;
}

/* ---- the activation ---- */

static void switch_scope(ls_flow_act *a, size_t to);

static void act_free(ls_flow_act *a)
{
    if (a->scopes) {
        switch_scope(a, 0); /* the root's cursor owns what the others share */
        for (size_t i = 0; i < a->nscopes; i++) ls_free(a->scopes[i].scope);
        ls_free(a->scopes);
    }
    ls_buf_free(&a->scname);
    if (a->rp_ready) ls_replay_free(&a->rp);
    ls_free(a->ev);
    ls_free(a->voff);
    ls_free(a->vlen);
    ls_buf_free(&a->arena);
    ls_store_batch_free(a->b);
    ls_buf_free(&a->k);
    ls_buf_free(&a->v);
    ls_buf_free(&a->sealed);
    ls_buf_free(&a->tmp);
    ls_buf_free(&a->cut);
    ls_buf_free(&a->masked);
    ls_buf_free(&a->custom_new);
    ls_buf_free(&a->term_by);
    ls_buf_free(&a->term_reason);
    ls_buf_free(&a->newkids);
    ls_buf_free(&a->kill);
    ls_free(a->wait_name);
    for (size_t i = 0; i < a->nborn; i++) flow_run_free(a->born[i]); /* never written */
    ls_free(a->born);
}

/* The activation is over: the run is suspended, idle or ended. */
static void finalize(flow_worker *w, ls_flow_act *a)
{
    ls_flow_t *f = a->f;
    flow_run *r = a->r;
    int ended = a->ended;
    if (!ended) flow_activation_done(f, r, a);
    for (size_t off = 0; ended && off + LS_ID_BYTES <= a->kill.len; off += LS_ID_BYTES) {
        ls_id kid;
        memcpy(kid.b, a->kill.ptr + off, LS_ID_BYTES);
        flow_inbox_bump(f, &kid);
    }
    act_free(a);
    ls_free(a);
    flow_worker_done(w);
    if (ended) flow_run_ended(f, r);
}

/* The runner returned (from activate or resume). */
static void after_runner(flow_worker *w, ls_flow_act *a)
{
    ls_err err;
    if (a->commit_pending) return; /* back through the worker's queue */
    if (a->io_wait) {
        w->io_parked++; /* back through the runner's poll */
        return;
    }
    if (!a->ended && !a->ending && !a->waiting && !a->abandoned) {
        if (a->broken || atomic_load(&a->f->interrupt)) {
            a->abandoned = 1;
        } else {
            static const char msg[] = "the runner returned without an outcome";
            if (ls_flow_act_fail(a, msg, sizeof msg - 1, NULL, 0, &err) != LS_OK) a->abandoned = 1;
            if (a->commit_pending) return;
        }
    }
    if (!a->ended && !a->ending && !a->broken && (a->new_events || a->custom_queued)) {
        /* Events still queued (a fired timer, a side effect, a step's
         * result) when the code suspended or was given up: keep them. The
         * activation is over, so the write need not park it. */
        if (commit(a, 1, LS_RUN_RUNNING, &err) != LS_OK) a->abandoned = 1;
        a->parked = 0;
        if (a->commit_pending) return;
    }
    finalize(w, a);
}

void flow_act_start(flow_worker *w, flow_run *r)
{
    ls_flow_t *f = w->f;
    ls_err err;
    ls_flow_act *a = ls_calloc(1, sizeof *a);
    if (a == NULL) {
        ls_flow_act dummy;
        memset(&dummy, 0, sizeof dummy);
        dummy.abandoned = 1;
        flow_log(f, LS_FLOW_LOG_ERROR, r->name, "out of memory; the run waits for a restart");
        flow_activation_done(f, r, &dummy);
        flow_worker_done(w);
        return;
    }
    a->f = f;
    a->r = r;
    a->w = w;
    int refused = 0;
    ls_rc rc = ls_store_batch_new(&a->b, &err);
    if (rc == LS_OK) rc = load_history(a, &refused, &err);
    if (rc != LS_OK) {
        /* An event refused (forged, changed, missing, a seal that does not
         * open): as a payload that does not open in the replay. */
        if (refused)
            give_up(a, rc, &err, NULL);
        else
            flow_log(f, LS_FLOW_LOG_ERROR, r->name, "cannot load history: %s", ls_err_text(&err));
        a->abandoned = 1;
        finalize(w, a);
        return;
    }
    a->replaying = a->nev > 1;
    if (a->terminate && !ls_replay_closed(&a->rp)) {
        /* Terminated: end it here, without running any more of its code. */
        if (terminate_now(a, &err) != LS_OK) {
            flow_log(f, LS_FLOW_LOG_ERROR, r->name, "cannot terminate: %s", ls_err_text(&err));
            a->abandoned = 1;
        }
        after_runner(w, a);
        return;
    }
    if (ls_replay_closed(&a->rp)) {
        /* Ended in the store but still listed as running: the end's batch
         * moved both, so this cannot happen; do not run it again. */
        flow_log(f, LS_FLOW_LOG_ERROR, r->name, "history is closed but the run is not");
        a->abandoned = 1;
        finalize(w, a);
        return;
    }
    f->o.runner->activate(f->o.runner_ud, w->rw, a);
    after_runner(w, a);
}

void flow_act_item(flow_worker *w, ls_flow_act *a)
{
    a->commit_pending = 0;
    apply_commit(a);
    if (a->parked) {
        a->parked = 0;
        a->w->f->o.runner->resume(a->f->o.runner_ud, w->rw, a);
    }
    after_runner(w, a);
}

void flow_act_io_item(flow_worker *w, ls_flow_act *a)
{
    a->io_wait = 0;
    a->parked = 0;
    a->f->o.runner->resume(a->f->o.runner_ud, w->rw, a);
    after_runner(w, a);
}

int ls_flow_act_park_io(ls_flow_act *a)
{
    if (a->f->o.runner->poll == NULL || a->commit_pending || a->parked || a->io_wait) return 0;
    a->parked = 1;
    a->io_wait = 1;
    return 1;
}

/* ---- accessors ---- */

const char *ls_flow_act_name(const ls_flow_act *a)
{
    return a->r->name;
}

const char *ls_flow_act_type(const ls_flow_act *a)
{
    return a->r->type;
}

const char *ls_flow_act_version(const ls_flow_act *a)
{
    return a->r->version ? a->r->version : "";
}

ls_rc ls_flow_act_source(ls_flow_act *a, ls_buf *out, ls_err *err)
{
    const char *v = ls_flow_act_version(a);
    ls_buf_clear(&a->k);
    ls_rc rc = ls_key_ns(&a->k, LS_NS_SOURCE, err);
    if (rc == LS_OK) rc = ls_buf_append(&a->k, v, strlen(v), err);
    if (rc == LS_OK) rc = ls_store_get(a->f->o.store, a->k.ptr, a->k.len, out, err);
    if (rc == LS_ENOTFOUND)
        return ls_err_set(err, LS_ECORRUPT, "the source of version %s of workflow %s is missing", v,
                          a->r->type);
    return rc;
}

int ls_flow_act_replaying(const ls_flow_act *a)
{
    return a->replaying;
}

int ls_flow_act_interrupted(const ls_flow_act *a)
{
    return atomic_load(&a->f->interrupt) || atomic_load(&a->r->terminating);
}

ls_rc ls_flow_act_input(ls_flow_act *a, ls_buf *out, ls_err *err)
{
    const ls_event *ev = ls_replay_started(&a->rp);
    return open_payload(a, ev, out, err);
}

void ls_flow_act_log(ls_flow_act *a, int level, const char *msg, size_t len)
{
    /* A replay repeats the code's own lines; a warning or an error is
     * about this activation, and nobody would see it otherwise. */
    if (a->replaying && level < LS_FLOW_LOG_WARN) return;
    if (a->f->o.log == NULL) return;
    /* One place for every line of the run's code (ctx:log, s:log): the
     * secrets' values masked, and a line of 100 MB not copied, nor
     * written, whole. (flow_log cut it at 1023 bytes, in the middle of a
     * character if it fell there, and without a word.) */
    char line[FLOW_LOG_LINECAP];
    flow_log_text(a->f, msg, len, &a->masked, line, sizeof line);
    a->f->o.log(a->f->o.log_ud, level, a->r->name, line);
}

ls_rc ls_flow_act_secret(ls_flow_act *a, const char *name, ls_secret_t **out, ls_err *err)
{
    /* A secret that does not authenticate is the step's error to handle
     * (its code may catch it; its retry policy applies; the operator can
     * set the secret again). One sealed under a key the keyring lacks (a
     * stale key file) is no fault of the run, which must not fail for it:
     * as a payload that does not open, the activation is given up. */
    ls_rc rc = ls_vault_secret_get(a->f->o.vault, a->f->o.store, name, out, err);
    if (rc == LS_ENOTFOUND)
        return ls_err_set(err, LS_ENOTFOUND, "secret \"%s\" is not set (lodestone secret set %s)",
                          name, name);
    if (rc == LS_EAUTH && ls_vault_secret_missing_key(a->f->o.vault, a->f->o.store, name) != 0) {
        ls_err why = {0};
        if (err)
            why = *err;
        else
            ls_err_set(&why, rc, "secret \"%s\" names a key this keyring does not hold", name);
        return give_up(a, rc, &why, err);
    }
    return rc;
}

int ls_flow_act_parked(const ls_flow_act *a)
{
    return a->parked;
}

ls_rc ls_flow_act_check(ls_flow_act *a, ls_err *err)
{
    if (a->broken) {
        if (err) *err = a->sticky_err;
        return a->sticky;
    }
    return LS_OK;
}

void ls_flow_act_abandon(ls_flow_act *a)
{
    a->abandoned = 1;
}

/* ---- parallel branches (ctx:all) ---- */

static void switch_scope(ls_flow_act *a, size_t to)
{
    if (a->scopes == NULL || to == a->cur) return;
    flow_scope *s = &a->scopes[a->cur];
    s->rp = a->rp;
    s->cancel_delivered = a->cancel_delivered;
    s->new_commands = a->new_commands;
    s = &a->scopes[to];
    a->rp = s->rp;
    a->cancel_delivered = s->cancel_delivered;
    a->new_commands = s->new_commands;
    a->cur = to;
}

/* The scope named by scope (created on first use), or (size_t)-1. */
static size_t find_scope(ls_flow_act *a, const char *scope, size_t len, ls_err *err)
{
    if (a->scopes == NULL) {
        a->scopes = ls_calloc(8, sizeof *a->scopes);
        if (a->scopes == NULL) return ls_err_set(err, LS_ENOMEM, "out of memory"), (size_t)-1;
        a->scopes[0].scope = ls_strdup("");
        if (a->scopes[0].scope == NULL) {
            ls_free(a->scopes);
            a->scopes = NULL;
            return ls_err_set(err, LS_ENOMEM, "out of memory"), (size_t)-1;
        }
        a->nscopes = 1;
        a->cur = 0;
    }
    for (size_t i = 0; i < a->nscopes; i++)
        if (a->scopes[i].len == len && memcmp(a->scopes[i].scope, scope, len) == 0) return i;
    if (a->nscopes % 8 == 0) {
        flow_scope *n = ls_realloc(a->scopes, (a->nscopes + 8) * sizeof *n);
        if (n == NULL) return ls_err_set(err, LS_ENOMEM, "out of memory"), (size_t)-1;
        a->scopes = n;
    }
    flow_scope *s = &a->scopes[a->nscopes];
    memset(s, 0, sizeof *s);
    s->scope = ls_strndup(scope, len);
    if (s->scope == NULL) return ls_err_set(err, LS_ENOMEM, "out of memory"), (size_t)-1;
    s->len = len;
    /* The root's cursor: in the table, or current. */
    const ls_replay *root = a->cur == 0 ? &a->rp : &a->scopes[0].rp;
    ls_replay_init_scope(&s->rp, root, s->scope, len);
    return a->nscopes++;
}

ls_rc ls_flow_act_branch(ls_flow_act *a, const char *scope, size_t len, ls_err *err)
{
    if (a->sticky != LS_OK) return check_sticky(a, err);
    if (ls_replay_scope_len(scope, len) != len)
        return ls_err_set(err, LS_EINVAL, "branch scope \"%.*s\": expected [N.N] tokens",
                          (int)(len > 60 ? 60 : len), scope);
    if (len == 0 && a->scopes == NULL) return LS_OK;
    size_t i = find_scope(a, scope, len, err);
    if (i == (size_t)-1) return fail_sticky(a, LS_ENOMEM, err);
    switch_scope(a, i);
    return LS_OK;
}

/* name with the current scope's prefix (name itself at the root). */
static ls_rc scoped(ls_flow_act *a, const char **name, size_t *nlen, ls_err *err)
{
    if (a->cur == 0) return LS_OK;
    const flow_scope *s = &a->scopes[a->cur];
    ls_rc rc = ls_buf_set(&a->scname, s->scope, s->len, err);
    if (rc == LS_OK && *nlen) rc = ls_buf_append(&a->scname, *name, *nlen, err);
    if (rc != LS_OK) return rc;
    *name = (const char *)a->scname.ptr;
    *nlen = a->scname.len;
    return LS_OK;
}

/* The current scope as a key part: "[1.2][3.1]" -> "1.2_3.1" ("" at the
 * root). */
static void scope_flat(const ls_flow_act *a, char *out, size_t cap)
{
    size_t o = 0;
    if (a->cur != 0) {
        const flow_scope *s = &a->scopes[a->cur];
        for (size_t i = 0; i < s->len && o + 2 < cap; i++) {
            char ch = s->scope[i];
            if (ch == '[') continue;
            if (ch == ']') {
                if (i + 1 < s->len) out[o++] = '_';
                continue;
            }
            out[o++] = ch;
        }
    }
    out[o] = '\0';
}

/* ---- replay plumbing ---- */

static ls_rc next(ls_flow_act *a, ls_cmd_kind kind, const char *name, size_t nlen,
                  ls_replay_match *m, ls_err *err)
{
    ls_rc rc = check_sticky(a, err);
    if (rc != LS_OK) return rc;
    rc = ls_replay_next(&a->rp, kind, name, nlen, m, err);
    if (rc == LS_ENOTFOUND) {
        a->replaying = 0;
        return rc;
    }
    if (rc != LS_OK) {
        ls_err_prefix(err, "run %s", a->r->name);
        return fail_sticky(a, rc, err);
    }
    return LS_OK;
}

static void suspend(ls_flow_act *a, char kind, const char *name, size_t nlen, int64_t due,
                    uint64_t seq)
{
    /* Branches may each wait: the run wakes at the earliest timer (and for
     * signals and children by its inbox). */
    if (a->waiting && a->wait_due && (due == 0 || due >= a->wait_due)) return;
    a->waiting = 1;
    a->wait_kind = kind;
    a->wait_due = due;
    a->wait_seq = seq;
    ls_free(a->wait_name);
    a->wait_name = ls_strndup(name ? name : "", nlen);
}

/* Where to cut a masked text s (len bytes) to at most max bytes: where a
 * character starts (ls_utf8_cut), and never inside a "[secret NAME]" mark
 * that masking put there (a secret's name has no brackets): a mark the
 * cut would split is left out whole, not shown as "[secret st". For the
 * texts bound_text made: a parent's child_failed, lodestoned's quotes. */
static size_t masked_cut(const char *s, size_t len, size_t max)
{
    static const char mark[] = "[secret ";
    if (len <= max) return len;
    size_t cut = ls_utf8_cut(s, max);
    for (size_t i = cut; i-- > 0;) {
        if (s[i] == ']') break; /* the last mark before the cut is whole */
        if (s[i] == '[' && len - i >= sizeof mark - 1 &&
            memcmp(s + i, mark, sizeof mark - 1) == 0) {
            cut = i;
            break;
        }
    }
    return cut;
}

/* s[0..*len), a text of the code that history keeps in clear, with the
 * secrets' values masked (flow_mask), in out (then *len is the new
 * length): whole when that is at most max bytes; else its first bytes,
 * cut where a character starts and never inside a mark, and how many
 * bytes of s were cut. Masked before it is cut, so that a cut never
 * leaves the first part of a value unmasked. NULL when out cannot grow
 * (or s is NULL). */
static const char *bound_text(ls_flow_act *a, const char *s, size_t *len, size_t max, ls_buf *out)
{
    size_t used = 0;
    if (s == NULL) return NULL;
    ls_buf_clear(out);
    if (flow_mask(a->f, s, *len, max, out, &used) != LS_OK) return NULL;
    if (used < *len) {
        ls_buf_clear(out);
        if (flow_mask(a->f, s, *len, max - 40, out, &used) != LS_OK ||
            ls_buf_printf(out, NULL, " ... (%zu bytes cut)", *len - used) != LS_OK)
            return NULL;
    }
    *len = out->len;
    return out->ptr ? (const char *)out->ptr : "";
}

static void step_key(const ls_flow_act *a, uint64_t command, char *key)
{
    char id[LS_ID_TEXTLEN + 1], sc[32];
    ls_id_format(&a->r->id, id);
    scope_flat(a, sc, sizeof sc);
    snprintf(key, 64, "%s-%s%s%llu", id, sc, *sc ? "-" : "", (unsigned long long)command);
}

static ls_rc final_message(ls_buf *out, const char *name, size_t nlen, uint32_t attempt,
                           const char *error, size_t elen, ls_err *err)
{
    ls_buf_clear(out);
    return ls_buf_printf(out, err, "step \"%.*s\" failed on attempt %u: %.*s", (int)nlen, name,
                         attempt, (int)elen, error ? error : "");
}

/* Starts attempt `attempt` of a step: StepStarted (and the removal of
 * the retry timer that led here), synced when side effects are pending. */
static ls_rc begin_attempt(ls_flow_act *a, const char *name, size_t nlen, uint32_t attempt,
                           int64_t timer_due, uint64_t timer_seq, ls_err *err)
{
    ls_event ev = {.type = LS_EV_STEP_STARTED, .attempt = attempt, .name = name, .name_len = nlen};
    ls_rc rc = put_event(a, &ev, NULL, 0, err);
    if (rc == LS_OK && timer_seq) rc = put_timer(a, timer_due, timer_seq, 1, err);
    if (rc != LS_OK) return fail_sticky(a, rc, err);
    /* StepStarted is written with the attempt's outcome, in one batch: a
     * crash in between re-runs the attempt either way (a history without
     * it reads as a new step, with it as one in flight). Recorded side
     * effects must be durable before the step can send them out. */
    if (a->unsynced) return commit(a, 1, LS_RUN_RUNNING, err);
    return LS_OK;
}

/* Whether a Resumed event follows seq. */
static int resumed_after(const ls_flow_act *a, uint64_t seq)
{
    for (size_t i = a->nev; i-- > 0 && a->ev[i].seq > seq;)
        if (a->ev[i].type == LS_EV_RESUMED) return 1;
    return 0;
}

/* The attempt at which step `name` was last paused (0: never): after a
 * resume its attempts count again from there. */
static uint32_t paused_at(const ls_flow_act *a, const char *name, size_t nlen)
{
    for (size_t i = a->nev; i-- > 0;) {
        const ls_event *e = &a->ev[i];
        if (e->type == LS_EV_STEP_FAILED && (e->flags & LS_EVF_PAUSED) && e->name_len == nlen &&
            memcmp(e->name, name, nlen) == 0)
            return e->attempt;
    }
    return 0;
}

/* Whether the next command record that history holds (the one
 * ls_replay_next would match) is a step named name in the current scope
 * (compared without making the scoped name): then a name longer than the
 * limit was recorded before the limit existed, and replays. */
static int recorded_step(const ls_flow_act *a, const char *name, size_t nlen)
{
    uint64_t seq = ls_replay_peek(&a->rp);
    const char *sc = a->cur ? a->scopes[a->cur].scope : "";
    size_t sl = a->cur ? a->scopes[a->cur].len : 0;
    for (size_t i = a->nev; seq && i-- > 0;) {
        const ls_event *e = &a->ev[i];
        if (e->seq != seq) continue;
        return (e->type == LS_EV_STEP_STARTED || e->type == LS_EV_STEP_COMPLETED ||
                e->type == LS_EV_STEP_FAILED) &&
               e->name_len == sl + nlen && memcmp(e->name, sc, sl) == 0 &&
               memcmp(e->name + sl, name, nlen) == 0;
    }
    return 0;
}

/* A step's name, as the code gives it: 1 to LS_FLOW_NAMEMAX bytes of
 * UTF-8 without control characters. It is in every event of the step, in
 * the key of its retry timer, in the run object while it waits, and shown
 * by the API as JSON, where other bytes could only be shown replaced. */
static ls_rc check_step_name(const char *name, size_t nlen, ls_err *err)
{
    ls_rc rc = nlen == 0 || nlen > LS_FLOW_NAMEMAX
                   ? ls_err_set(err, LS_EINVAL, "step name: must be 1 to %d bytes, got %zu",
                                LS_FLOW_NAMEMAX, nlen)
                   : flow_check_text("step name", name, nlen, LS_FLOW_NAMEMAX, err);
    return rc == LS_OK ? rc : LS_ERR_PREFIXED(rc, err, "ctx:step");
}

ls_rc ls_flow_act_step(ls_flow_act *a, const char *name, size_t nlen, ls_flow_step_info *info,
                       ls_buf *out, ls_err *err)
{
    ls_replay_match m;
    memset(info, 0, sizeof *info);
    ls_rc rc = check_sticky(a, err);
    if (rc != LS_OK) return rc;
    if (ls_replay_scope_len(name, nlen) != 0)
        return ls_err_set(err, LS_EINVAL,
                          "ctx:step: step name \"%.*s\": names starting with [N.N] are "
                          "reserved for parallel branches",
                          (int)(nlen > 60 ? 60 : nlen), name);
    const char *own = name; /* the name the code gave, without the scope */
    size_t olen = nlen;
    uint64_t cs = cancel_due(a);
    if (cs && cancel_before_record(a, cs)) return deliver_cancel(a, &info->outcome, out, err);
    /* A new step's name is checked where it is about to be recorded (a
     * step that history holds, written before names had a limit, replays;
     * one that differs from history is non-determinism). The length comes
     * first, before a branch's scoped copy of the name is made. Decided
     * from history alone, so that every replay decides alike. */
    if (olen > LS_FLOW_NAMEMAX && !recorded_step(a, own, olen))
        return check_step_name(own, olen, err);
    if ((rc = scoped(a, &name, &nlen, err)) != LS_OK) return rc;
    rc = next(a, LS_CMD_STEP, name, nlen, &m, err);
    if (rc == LS_ENOTFOUND) {
        ls_rc bad = check_step_name(own, olen, err);
        if (bad != LS_OK) return bad;
    }
    if (rc == LS_ENOTFOUND && a->r->steps_completed >= a->f->o.max_steps)
        return ls_err_set(err, LS_EINVAL,
                          "run %s: %u steps completed, the limit of steps per run (lodestoned "
                          "--max-steps); split the work into child workflows",
                          a->r->name, a->r->steps_completed);
    if (rc == LS_ENOTFOUND) {
        /* Its position among the run's commands, as a replay will count
         * it: the key must not change between attempts. */
        uint64_t command = ls_replay_commands(&a->rp) + a->new_commands + 1;
        if ((rc = begin_attempt(a, name, nlen, 1, 0, 0, err)) != LS_OK) return rc;
        a->new_commands++;
        info->outcome = LS_FLOW_RUN;
        a->step_t0 = ls_clock_mono_ns(NULL);
        info->attempt = 1;
        step_key(a, command, info->key);
        return LS_OK;
    }
    if (rc != LS_OK) return rc;
    if (cs) {
        int closed = m.state == LS_REPLAY_DONE || m.state == LS_REPLAY_FAILED;
        if (closed && m.last->seq > cs) return deliver_cancel(a, &info->outcome, out, err);
        if (!closed) {
            /* An attempt in flight at a crash, or a retry waiting: the
             * step ends here, failed for good. */
            static const char why[] = "cancelled";
            a->replaying = 0;
            ls_event ev = {.type = LS_EV_STEP_FAILED,
                           .flags = LS_EVF_FATAL,
                           .attempt = m.attempt,
                           .name = name,
                           .name_len = nlen,
                           .error = why,
                           .error_len = sizeof why - 1};
            if ((rc = put_event(a, &ev, NULL, 0, err)) != LS_OK ||
                (m.state == LS_REPLAY_BACKOFF &&
                 (rc = put_timer(a, m.due_ms, m.last->seq, 1, err)) != LS_OK))
                return fail_sticky(a, rc, err);
            return deliver_cancel(a, &info->outcome, out, err);
        }
    }
    switch (m.state) {
    case LS_REPLAY_DONE: info->outcome = LS_FLOW_DONE; return open_payload(a, m.last, out, err);
    case LS_REPLAY_FAILED:
        info->outcome = LS_FLOW_FAILED;
        return final_message(out, name, nlen, m.attempt, m.last->error, m.last->error_len, err);
    case LS_REPLAY_INFLIGHT:
        /* The attempt was running at a crash: run it again. */
        a->replaying = 0;
        info->outcome = LS_FLOW_RUN;
        a->step_t0 = ls_clock_mono_ns(NULL);
        info->attempt = m.attempt;
        step_key(a, m.command, info->key);
        return LS_OK;
    case LS_REPLAY_PAUSED:
        if (!resumed_after(a, m.last->seq)) {
            info->outcome = LS_FLOW_WAIT;
            suspend(a, 'p', name, nlen, 0, 0);
            return LS_OK;
        }
        a->replaying = 0;
        if ((rc = begin_attempt(a, name, nlen, m.attempt + 1, 0, 0, err)) != LS_OK) return rc;
        info->outcome = LS_FLOW_RUN;
        a->step_t0 = ls_clock_mono_ns(NULL);
        info->attempt = m.attempt + 1;
        step_key(a, m.command, info->key);
        return LS_OK;
    case LS_REPLAY_BACKOFF:
        if (m.due_ms > flow_now(a->f)) {
            info->outcome = LS_FLOW_WAIT;
            suspend(a, 'r', name, nlen, m.due_ms, m.last->seq);
            return LS_OK;
        }
        a->replaying = 0;
        if ((rc = begin_attempt(a, name, nlen, m.attempt + 1, m.due_ms, m.last->seq, err)) != LS_OK)
            return rc;
        info->outcome = LS_FLOW_RUN;
        a->step_t0 = ls_clock_mono_ns(NULL);
        info->attempt = m.attempt + 1;
        step_key(a, m.command, info->key);
        return LS_OK;
    default:
        return fail_sticky(
            a, ls_err_set(err, LS_ECORRUPT, "step replay: unexpected state %d", (int)m.state), err);
    }
}

ls_rc ls_flow_act_step_done(ls_flow_act *a, const char *name, size_t nlen, uint32_t attempt,
                            const char *result, size_t rlen, ls_err *err)
{
    ls_rc rc = check_sticky(a, err);
    if (rc != LS_OK) return rc;
    if ((rc = scoped(a, &name, &nlen, err)) != LS_OK) return rc;
    ls_event ev = {
        .type = LS_EV_STEP_COMPLETED, .attempt = attempt, .name = name, .name_len = nlen};
    if ((rc = put_event(a, &ev, result, rlen, err)) != LS_OK) return fail_sticky(a, rc, err);
    a->r->steps_completed++;
    /* Written with the run's next write, synced like a side effect: the
     * next step's code, a timer, a child, the run's end or its suspension
     * all write first (begin_attempt, after_runner), so nothing outside
     * sees what follows this step before its result is durable. What runs
     * in between is the workflow's own deterministic code: a crash there
     * re-runs this step, as a crash during it would. The last step's
     * result thus shares the end's fsync. */
    a->unsynced = 1;
    pthread_mutex_lock(&a->f->mu);
    a->f->st.steps_completed++;
    flow_count_step(a->f, ls_clock_mono_ns(NULL) - a->step_t0);
    pthread_mutex_unlock(&a->f->mu);
    return LS_OK;
}

static ls_rc parse_retry(const char *text, size_t len, const ls_flow_retry *base, const char *what,
                         ls_flow_retry *out, ls_err *err)
{
    if (text == NULL || len == 0) return ls_flow_retry_copy(out, base, err);
    json_t *j = NULL;
    ls_rc rc = ls_json_parse(text, len, &j, err);
    if (rc != LS_OK) return ls_err_prefix(err, "%s", what);
    rc = ls_flow_retry_parse(j, base, what, out, err);
    json_decref(j);
    return rc;
}

ls_rc ls_flow_act_step_failed(ls_flow_act *a, const char *name, size_t nlen,
                              const ls_flow_failure *fl, ls_flow_outcome *outcome, ls_buf *out,
                              ls_err *err)
{
    ls_rc rc = check_sticky(a, err);
    if (rc != LS_OK) return rc;
    if ((rc = scoped(a, &name, &nlen, err)) != LS_OK) return rc;
    ls_flow_retry wf, step;
    ls_flow_retry_init(&wf);
    ls_flow_retry_init(&step);
    ls_flow_retry defaults;
    ls_flow_retry_init(&defaults);
    rc = parse_retry(fl->retry_workflow, fl->retry_workflow_len, &defaults, "retry", &wf, err);
    if (rc == LS_OK)
        rc = parse_retry(fl->retry_step, fl->retry_step_len, &wf, "step retry", &step, err);
    if (rc != LS_OK) {
        ls_flow_retry_free(&wf);
        ls_flow_retry_free(&step);
        return rc; /* a bad policy is the code's error: the runner raises it */
    }
    int64_t delay = 0;
    /* After a resume the policy's attempts count again. */
    uint32_t base = paused_at(a, name, nlen);
    ls_flow_retry_verdict v = ls_flow_retry_next(&step, fl->attempt > base ? fl->attempt - base : 1,
                                                 fl->code, fl->fatal, NULL, &delay);
    int pause = v == LS_FLOW_RETRY_EXHAUSTED && fl->pause;
    ls_flow_retry_free(&wf);
    ls_flow_retry_free(&step);

    int64_t now = flow_now(a->f);
    size_t elen = fl->error_len;
    const char *error = bound_text(a, fl->error, &elen, FLOW_ERROR_MAX, &a->cut);
    if (error == NULL && fl->error) return ls_err_set(err, LS_ENOMEM, "out of memory");
    ls_event ev = {.type = LS_EV_STEP_FAILED,
                   .attempt = fl->attempt,
                   .name = name,
                   .name_len = nlen,
                   .error = error,
                   .error_len = elen};
    if (v == LS_FLOW_RETRY_AGAIN)
        ev.due_ms = now + delay;
    else
        ev.flags = pause ? LS_EVF_PAUSED : LS_EVF_FATAL;
    if ((rc = put_event(a, &ev, NULL, 0, err)) != LS_OK) return fail_sticky(a, rc, err);
    if (v == LS_FLOW_RETRY_AGAIN &&
        (rc = add_timer(a, ev.due_ms, ev.seq, 'r', name, nlen, err)) != LS_OK)
        return fail_sticky(a, rc, err);
    a->r->attempts_failed++;
    /* Suspended before the write, so that the write does not park it. */
    if (v == LS_FLOW_RETRY_AGAIN) suspend(a, 'r', name, nlen, ev.due_ms, ev.seq);
    if (pause) suspend(a, 'p', name, nlen, 0, 0);
    if ((rc = commit(a, 1, LS_RUN_RUNNING, err)) != LS_OK) {
        a->waiting = 0;
        return rc;
    }
    pthread_mutex_lock(&a->f->mu);
    a->f->st.steps_failed++;
    flow_count_step(a->f, ls_clock_mono_ns(NULL) - a->step_t0);
    pthread_mutex_unlock(&a->f->mu);
    /* lodestoned's line quotes the start of the masked text history keeps */
    int qlen = error ? (int)masked_cut(error, elen, 300) : 0;
    const char *q = error ? error : "";
    if (pause) {
        flow_log(a->f, LS_FLOW_LOG_WARN, a->r->name,
                 "step \"%.*s\" used up its attempts (%.*s); the run is paused until resumed "
                 "(lodestone resume %s)",
                 (int)nlen, name, qlen, q, a->r->name);
        *outcome = LS_FLOW_WAIT;
        return LS_OK;
    }
    if (v == LS_FLOW_RETRY_AGAIN) {
        flow_log(a->f, LS_FLOW_LOG_INFO, a->r->name,
                 "step \"%.*s\" attempt %u failed (%.*s); retrying in %lld ms", (int)nlen, name,
                 fl->attempt, qlen, q, (long long)delay);
        *outcome = LS_FLOW_WAIT;
        return LS_OK;
    }
    *outcome = LS_FLOW_FAILED;
    return final_message(out, name, nlen, fl->attempt, error, elen, err);
}

/* Closes a pending timer record unfired: TimerCancelled, and its durable
 * key goes (written with the next write). */
static ls_rc cancel_timer(ls_flow_act *a, const ls_replay_match *m, ls_err *err)
{
    ls_event ev = {
        .type = LS_EV_TIMER_CANCELLED, .name = m->first->name, .name_len = m->first->name_len};
    ls_rc rc = put_event(a, &ev, NULL, 0, err);
    if (rc == LS_OK) rc = put_timer(a, m->due_ms, m->first->seq, 1, err);
    if (rc != LS_OK) return fail_sticky(a, rc, err);
    a->replaying = 0;
    return LS_OK;
}

/* A pending timer m (of a sleep, kind 's', or a signal wait, 'g', on
 * name): suspends until it is due, or fires it (timer_fired, the timer key
 * deleted) and answers fired. */
static ls_rc wait_or_fire(ls_flow_act *a, const ls_replay_match *m, int64_t now, char kind,
                          const char *name, size_t nlen, const char *tname, size_t tlen,
                          ls_flow_outcome fired, ls_flow_outcome *outcome, ls_err *err)
{
    if (m->due_ms > now) {
        suspend(a, kind, name, nlen, m->due_ms, m->first->seq);
        *outcome = LS_FLOW_WAIT;
        return LS_OK;
    }
    a->replaying = 0;
    ls_event ev = {.type = LS_EV_TIMER_FIRED, .name = tname, .name_len = tlen};
    ls_rc rc;
    if ((rc = put_event(a, &ev, NULL, 0, err)) != LS_OK ||
        (rc = put_timer(a, m->due_ms, m->first->seq, 1, err)) != LS_OK)
        return fail_sticky(a, rc, err);
    /* Written with the next write: losing it in a crash only means firing
     * the timer again. */
    *outcome = fired;
    return LS_OK;
}

ls_rc ls_flow_act_sleep(ls_flow_act *a, int64_t ms, ls_flow_outcome *outcome, ls_err *err)
{
    ls_replay_match m;
    ls_rc rc = check_sticky(a, err);
    if (rc != LS_OK) return rc;
    const char *tname = "";
    size_t tlen = 0;
    if ((rc = scoped(a, &tname, &tlen, err)) != LS_OK) return rc;
    uint64_t cs = cancel_due(a);
    if (cs && cancel_before_record(a, cs)) return deliver_cancel(a, outcome, NULL, err);
    rc = next(a, LS_CMD_TIMER, tname, tlen, &m, err);
    int64_t now = flow_now(a->f);
    if (rc == LS_ENOTFOUND) {
        if (ms < 0) ms = 0;
        ls_event ev = {
            .type = LS_EV_TIMER_STARTED, .name = tname, .name_len = tlen, .due_ms = now + ms};
        if ((rc = put_event(a, &ev, NULL, 0, err)) != LS_OK ||
            (rc = add_timer(a, ev.due_ms, ev.seq, 's', NULL, 0, err)) != LS_OK)
            return fail_sticky(a, rc, err);
        suspend(a, 's', "", 0, ev.due_ms, ev.seq);
        if ((rc = commit(a, 1, LS_RUN_RUNNING, err)) != LS_OK) {
            a->waiting = 0;
            return rc;
        }
        a->new_commands++;
        *outcome = LS_FLOW_WAIT;
        return LS_OK;
    }
    if (rc != LS_OK) return rc;
    if (cs && m.state != LS_REPLAY_PENDING && m.last->seq > cs)
        return deliver_cancel(a, outcome, NULL, err);
    if (cs && m.state == LS_REPLAY_PENDING) {
        if ((rc = cancel_timer(a, &m, err)) != LS_OK) return rc;
        return deliver_cancel(a, outcome, NULL, err);
    }
    if (m.state == LS_REPLAY_DONE || m.state == LS_REPLAY_CANCELLED) {
        *outcome = LS_FLOW_DONE;
        return LS_OK;
    }
    /* PENDING */
    return wait_or_fire(a, &m, now, 's', "", 0, tname, tlen, LS_FLOW_DONE, outcome, err);
}

/* The payload of a consumed signal into out. */
static ls_rc signal_value(ls_flow_act *a, const ls_replay_match *m, ls_buf *out, ls_err *err)
{
    return open_payload(a, m->last, out, err);
}

/* A new wait's signal name: one that a signal can have (ls_flow_signal
 * refuses the rest, so such a wait would never end; and "signal:NAME",
 * the record of a wait with a timeout, would be cut at a NUL). */
static ls_rc check_signal_name(const char *name, size_t nlen, ls_err *err)
{
    ls_rc rc = flow_check_signal_name(name, nlen, err);
    return rc == LS_OK ? rc : LS_ERR_PREFIXED(rc, err, "ctx:wait_signal");
}

ls_rc ls_flow_act_wait_signal(ls_flow_act *a, const char *name, size_t nlen, int64_t timeout_ms,
                              ls_flow_outcome *outcome, ls_buf *out, ls_err *err)
{
    ls_replay_match m;
    ls_rc rc = check_sticky(a, err);
    if (rc != LS_OK) return rc;
    if (nlen == 0 || nlen > LS_FLOW_NAMEMAX)
        return ls_err_set(err, LS_EINVAL,
                          "ctx:wait_signal: signal name: must be 1 to %d bytes, got %zu",
                          LS_FLOW_NAMEMAX, nlen);
    if (a->cur != 0)
        return ls_err_set(err, LS_EINVAL,
                          "ctx:wait_signal cannot be used in a ctx:all branch (which branch "
                          "takes a signal would depend on timing): wait before or after it");
    uint64_t cs = cancel_due(a);
    if (timeout_ms < 0) {
        /* No timeout: no record of its own; it takes the next signal. */
        if (cs) {
            if (ls_replay_take_signal(&a->rp, name, nlen, cs, &m) == LS_OK) {
                *outcome = LS_FLOW_DONE;
                return signal_value(a, &m, out, err);
            }
            return deliver_cancel(a, outcome, out, err);
        }
        /* A signal that history holds ends it, whatever its name (one
         * sent before the API checked names). */
        rc = next(a, LS_CMD_SIGNAL, name, nlen, &m, err);
        if (rc == LS_OK) {
            *outcome = LS_FLOW_DONE;
            return signal_value(a, &m, out, err);
        }
        if (rc != LS_ENOTFOUND) return rc;
        /* Else it would wait: for ever, on a name no signal can have. */
        if ((rc = check_signal_name(name, nlen, err)) != LS_OK) return rc;
        suspend(a, 'g', name, nlen, 0, 0);
        *outcome = LS_FLOW_WAIT;
        return LS_OK;
    }
    /* With a timeout: a timer command named "signal:NAME", whose record
     * says which came first. */
    char tname[LS_FLOW_NAMEMAX + 8];
    int tlen = snprintf(tname, sizeof tname, "signal:%.*s", (int)nlen, name);
    if (cs && cancel_before_record(a, cs)) return deliver_cancel(a, outcome, out, err);
    rc = next(a, LS_CMD_TIMER, tname, (size_t)tlen, &m, err);
    int64_t now = flow_now(a->f);
    if (rc == LS_ENOTFOUND) {
        /* A wait that history holds replays whatever its name; a new one
         * is checked before it is recorded. */
        ls_rc bad = check_signal_name(name, nlen, err);
        if (bad != LS_OK) return bad;
        ls_replay_match s;
        int have = ls_replay_take_signal(&a->rp, name, nlen, UINT64_MAX, &s) == LS_OK;
        ls_event ev = {.type = LS_EV_TIMER_STARTED,
                       .name = tname,
                       .name_len = (size_t)tlen,
                       .due_ms = now + timeout_ms};
        if ((rc = put_event(a, &ev, NULL, 0, err)) != LS_OK) return fail_sticky(a, rc, err);
        a->new_commands++;
        if (have) {
            /* Already here: the record opens and closes at once, written
             * with the next write (a crash only repeats the wait). */
            ls_event done = {
                .type = LS_EV_TIMER_CANCELLED, .name = tname, .name_len = (size_t)tlen};
            if ((rc = put_event(a, &done, NULL, 0, err)) != LS_OK) return fail_sticky(a, rc, err);
            *outcome = LS_FLOW_DONE;
            return signal_value(a, &s, out, err);
        }
        if ((rc = add_timer(a, ev.due_ms, ev.seq, 'g', name, nlen, err)) != LS_OK)
            return fail_sticky(a, rc, err);
        suspend(a, 'g', name, nlen, ev.due_ms, ev.seq);
        if ((rc = commit(a, 1, LS_RUN_RUNNING, err)) != LS_OK) {
            a->waiting = 0;
            return rc;
        }
        *outcome = LS_FLOW_WAIT;
        return LS_OK;
    }
    if (rc != LS_OK) return rc;
    if (cs && m.state != LS_REPLAY_PENDING && m.last->seq > cs)
        return deliver_cancel(a, outcome, out, err);
    if (m.state == LS_REPLAY_DONE) { /* TimerFired: the timeout won */
        *outcome = LS_FLOW_TIMEOUT;
        return LS_OK;
    }
    if (m.state == LS_REPLAY_CANCELLED) { /* a signal won, before the record closed */
        if (ls_replay_take_signal(&a->rp, name, nlen, m.last->seq, &m) != LS_OK)
            return fail_sticky(a,
                               ls_err_set(err, LS_ECORRUPT,
                                          "run %s: history shows signal \"%.*s\" won its wait, "
                                          "but holds no such signal",
                                          a->r->name, (int)nlen, name),
                               err);
        *outcome = LS_FLOW_DONE;
        return signal_value(a, &m, out, err);
    }
    /* PENDING: decide now. A cancellation comes first, then a signal. */
    if (cs) {
        if ((rc = cancel_timer(a, &m, err)) != LS_OK) return rc;
        return deliver_cancel(a, outcome, out, err);
    }
    ls_replay_match s;
    if (ls_replay_take_signal(&a->rp, name, nlen, UINT64_MAX, &s) == LS_OK) {
        if ((rc = cancel_timer(a, &m, err)) != LS_OK) return rc;
        *outcome = LS_FLOW_DONE;
        return signal_value(a, &s, out, err);
    }
    return wait_or_fire(a, &m, now, 'g', name, nlen, tname, (size_t)tlen, LS_FLOW_TIMEOUT, outcome,
                        err);
}

ls_rc ls_flow_act_side_effect(ls_flow_act *a, const char *kind, const char *value, size_t vlen,
                              ls_buf *out, ls_err *err)
{
    ls_replay_match m;
    size_t klen = strlen(kind);
    ls_rc rc = check_sticky(a, err);
    if (rc == LS_OK) rc = scoped(a, &kind, &klen, err);
    if (rc != LS_OK) return rc;
    rc = next(a, LS_CMD_SIDE_EFFECT, kind, klen, &m, err);
    if (rc == LS_ENOTFOUND) {
        ls_event ev = {.type = LS_EV_SIDE_EFFECT, .name = kind, .name_len = klen};
        if ((rc = put_event(a, &ev, value, vlen, err)) != LS_OK) return fail_sticky(a, rc, err);
        /* Written with the next write, synced before the next step's code
         * runs: before anything outside can have seen the value. */
        a->new_commands++;
        a->unsynced = 1;
        return ls_buf_set(out, value, vlen, err);
    }
    if (rc != LS_OK) return rc;
    return open_payload(a, m.last, out, err);
}

/* ---- child workflows ---- */

static ls_rc start_child(ls_flow_act *a, const char *type, size_t tlen, const char *id,
                         size_t idlen, const char *input, size_t ilen, int detached,
                         const char *branch, size_t blen, ls_buf *child, ls_err *err);

ls_rc ls_flow_act_child_start(ls_flow_act *a, const char *type, size_t tlen, const char *id,
                              size_t idlen, const char *input, size_t ilen, int detached,
                              ls_buf *child, ls_err *err)
{
    ls_rc rc = check_sticky(a, err);
    if (rc != LS_OK) return rc;
    char derived[LS_ID_TEXTLEN + 64];
    if (id == NULL || idlen == 0) {
        /* Its position among the run's commands, as a replay counts it. */
        uint64_t command = ls_replay_commands(&a->rp) + a->new_commands + 1;
        char pid[LS_ID_TEXTLEN + 1], sc[32];
        ls_id_format(&a->r->id, pid);
        scope_flat(a, sc, sizeof sc);
        idlen = (size_t)snprintf(derived, sizeof derived, "%s-%s%sc%llu", pid, sc, *sc ? "-" : "",
                                 (unsigned long long)command);
        id = derived;
    }
    return start_child(a, type, tlen, id, idlen, input, ilen, detached, NULL, 0, child, err);
}

ls_rc ls_flow_act_flush(ls_flow_act *a, ls_err *err)
{
    ls_rc rc = check_sticky(a, err);
    a->forks = 0;
    if (rc != LS_OK || (a->new_events == 0 && !a->custom_queued)) return rc;
    return commit(a, 1, LS_RUN_RUNNING, err);
}

ls_rc ls_flow_act_branch_start(ls_flow_act *a, const char *scope, size_t len, ls_buf *child,
                               ls_err *err)
{
    ls_rc rc = check_sticky(a, err);
    if (rc != LS_OK) return rc;
    if (len == 0 || ls_replay_scope_len(scope, len) != len)
        return ls_err_set(err, LS_EINVAL, "branch scope \"%.*s\": expected [N.N] tokens",
                          (int)(len > 60 ? 60 : len), scope);
    /* Named after this run and the branch: "ID-b1.2" for "[1.2]",
     * "ID-b1.2_3.1" for "[1.2][3.1]". */
    ls_buf id = LS_BUF_INIT;
    char pid[LS_ID_TEXTLEN + 1];
    ls_id_format(&a->r->id, pid);
    rc = ls_buf_printf(&id, err, "%s-b", pid);
    for (size_t i = 0; rc == LS_OK && i < len; i++) {
        char c = scope[i];
        if (c == '[') continue;
        rc = ls_buf_putc(&id, c == ']' ? '_' : c, err);
    }
    if (rc == LS_OK) id.len--; /* the last ']' */
    if (rc == LS_OK)
        rc = start_child(a, a->r->type, strlen(a->r->type), (const char *)id.ptr, id.len, NULL, 0,
                         0, scope, len, child, err);
    ls_buf_free(&id);
    return rc;
}

const char *ls_flow_act_branch_of(const ls_flow_act *a)
{
    return a->r->branch;
}

/* A run at the depth limit starts a child: a limit crossed, as past
 * --max-events, so the run fails (a workflow that starts itself without
 * end would otherwise fill the store, faster than a cancel of its first
 * run can follow it down the chain). */
static ls_rc too_deep(ls_flow_act *a, const char *type, size_t tlen, int branch, unsigned depth,
                      ls_err *err)
{
    char what[160];
    if (branch)
        snprintf(what, sizeof what, "a ctx:all branch run");
    else
        snprintf(what, sizeof what, "child workflow \"%.*s\"", (int)(tlen > 100 ? 100 : tlen),
                 type);
    return ls_err_set(err, LS_EINVAL,
                      "run %s cannot start %s: it is nested %s%u deep, the limit of nested "
                      "runs (lodestoned --max-depth); does a workflow start itself without end?",
                      a->r->name, what, depth > a->f->o.max_depth ? "over " : "",
                      a->f->o.max_depth);
}

static ls_rc start_child(ls_flow_act *a, const char *type, size_t tlen, const char *id,
                         size_t idlen, const char *input, size_t ilen, int detached,
                         const char *branch, size_t blen, ls_buf *child, ls_err *err)
{
    ls_rc rc;
    /* The command is named by the child's id, with the branch's prefix. */
    const char *cname = id;
    size_t clen = idlen;
    if ((rc = scoped(a, &cname, &clen, err)) != LS_OK) return rc;
    ls_replay_match m;
    rc = next(a, LS_CMD_CHILD, cname, clen, &m, err);
    if (rc == LS_OK) return ls_buf_set(child, id, idlen, err); /* started before */
    if (rc != LS_ENOTFOUND) return rc;
    unsigned depth;
    ls_err why;
    if ((rc = flow_run_depth(a->f, a->r, a->f->o.max_depth, &depth, &why)) != LS_OK) {
        /* The store could not be read now: the activation is given up, as
         * after a failed write, rather than the run failed for good; it
         * goes on when it is next activated (a restart, a signal). */
        a->broken = 1;
        flow_log(a->f, LS_FLOW_LOG_ERROR, a->r->name, "%s; the run waits for a restart",
                 ls_err_text(&why));
        if (err) *err = why;
        return fail_sticky(a, rc, &why);
    }
    if (depth >= a->f->o.max_depth)
        return fail_sticky(a, too_deep(a, type, tlen, branch != NULL, depth, err), err);
    flow_parent parent = {.id = &a->r->id,
                          .name = a->r->name,
                          .detached = detached,
                          .branch = branch,
                          .blen = blen,
                          .fork = a->r->last_seq,
                          .version = a->r->version,
                          .depth = depth};
    /* Its history is this run's written part: nothing may be queued but
     * the starts of the section's other branches. */
    if (branch && (a->new_events != a->forks || a->custom_queued))
        return ls_err_set(err, LS_ESTATE,
                          "a branch run starts from durable history: flush the activation first");
    int created = 0, unopened = 0;
    ls_store_batch_t *bb = NULL; /* a branch run's keys, joined to the write if all goes well */
    flow_run *born = NULL;
    if (branch) {
        if (a->nborn == a->born_cap) {
            size_t cap = a->born_cap ? a->born_cap * 2 : 8;
            flow_run **nb = ls_realloc(a->born, cap * sizeof(flow_run *));
            if (nb == NULL) return ls_err_set(err, LS_ENOMEM, "out of memory");
            a->born = nb;
            a->born_cap = cap;
        }
        rc = ls_store_batch_new(&bb, err);
        if (rc == LS_OK)
            rc = flow_branch_put(a->f, bb, &parent, type, id, idlen, &born, &unopened, err);
    } else {
        rc = flow_start(a->f, type, tlen, id, idlen, input, ilen, &parent, &a->tmp, &created, err);
    }
    json_t *j = rc == LS_OK ? json_pack("{s:s%}", "type", type, tlen) : NULL;
    if (rc == LS_OK) {
        ls_buf_clear(&a->tmp);
        rc = j ? ls_json_dump(j, &a->tmp, err) : ls_err_set(err, LS_ENOMEM, "out of memory");
    }
    json_decref(j);
    if (rc != LS_OK) {
        ls_store_batch_free(bb);
        flow_run_free(born);
        /* A branch run's copy of this run's history did not read or open
         * (whatever the code: not only a wrong key). */
        if (unopened) {
            ls_err cause = {0};
            if (err) cause = *err;
            return give_up(a, rc, &cause, err);
        }
        return LS_ERR_PREFIXED(rc, err, "child workflow");
    }
    cname = id; /* again: scname may have been reused */
    clen = idlen;
    if ((rc = scoped(a, &cname, &clen, err)) != LS_OK) return rc;
    ls_event ev = {.type = LS_EV_CHILD_STARTED,
                   .flags = detached ? LS_EVF_DETACHED : 0,
                   .name = cname,
                   .name_len = clen};
    rc = put_event(a, &ev, a->tmp.ptr, a->tmp.len, err);
    if (rc == LS_OK && bb) ls_store_batch_append(a->b, bb);
    ls_store_batch_free(bb);
    if (rc != LS_OK) {
        flow_run_free(born);
        return fail_sticky(a, rc, err);
    }
    if (born) a->born[a->nborn++] = born; /* known once the write lands */
    if (branch) a->forks++;
    /* Remembered for the end of this run (its unfinished children go). */
    if ((rc = ls_buf_putc(&a->newkids, detached ? 'd' : 'a', err)) != LS_OK ||
        (rc = ls_buf_append(&a->newkids, id, idlen, err)) != LS_OK ||
        (rc = ls_buf_putc(&a->newkids, '\0', err)) != LS_OK)
        return fail_sticky(a, rc, err);
    a->new_commands++;
    return ls_buf_set(child, id, idlen, err);
}

ls_rc ls_flow_act_child_wait(ls_flow_act *a, const char *id, size_t idlen, ls_flow_outcome *outcome,
                             ls_buf *out, ls_err *err)
{
    ls_rc rc = check_sticky(a, err);
    if (rc != LS_OK) return rc;
    uint64_t cs = cancel_due(a);
    ls_replay_match m;
    rc = ls_replay_find_child(&a->rp, id, idlen, cs ? cs : UINT64_MAX, &m);
    if (rc == LS_ENOTFOUND && cs) return deliver_cancel(a, outcome, out, err);
    if (rc == LS_ENOTFOUND) {
        suspend(a, 'c', id, idlen, 0, 0);
        *outcome = LS_FLOW_WAIT;
        return LS_OK;
    }
    if (m.state == LS_REPLAY_DONE) {
        *outcome = LS_FLOW_DONE;
        return open_payload(a, m.last, out, err);
    }
    *outcome = LS_FLOW_FAILED;
    ls_buf_clear(out);
    return ls_buf_printf(out, err, "child workflow %.*s %.*s", (int)idlen, id,
                         (int)m.last->error_len, m.last->error ? m.last->error : "");
}

/* The end of a child run goes to its parent's inbox, in the batch that
 * ends it. */
#define CHILD_ERROR_MAX 150 /* bytes of a child's error its parent is told */

static ls_rc notify_parent(ls_flow_act *a, ls_run_status status, const ls_event *end,
                           const void *pt, size_t ptlen, ls_err *err)
{
    ls_flow_t *f = a->f;
    flow_run *r = a->r;
    ls_id arrival;
    char why[LS_ERR_MSGMAX];
    ls_event ev = {.seq = 1, .time_ms = flow_now(f), .name = r->name, .name_len = strlen(r->name)};
    ls_rc rc = ls_id_new(&arrival, f->clock, err);
    if (rc != LS_OK) return rc;
    if (status == LS_RUN_COMPLETED) {
        ev.type = LS_EV_CHILD_COMPLETED;
    } else {
        ev.type = LS_EV_CHILD_FAILED;
        size_t keep = end->error ? masked_cut(end->error, end->error_len, CHILD_ERROR_MAX) : 0;
        int n = snprintf(why, sizeof why, "%s%s%.*s", ls_run_status_name(status),
                         end->error_len ? ": " : "", (int)keep, end->error ? end->error : "");
        ev.error = why;
        ev.error_len = n > 0 ? (size_t)n : 0;
        pt = NULL; /* a failure holds no payload: sealed empty */
        ptlen = 0;
    }
    unsigned started = 0; /* the parent's first event's version (0: damaged, it cannot load) */
    if ((rc = flow_first_version(f->o.store, &r->parent, &started, err)) == LS_ECORRUPT) rc = LS_OK;
    if (rc != LS_OK ||
        (rc = flow_seal_event(f, &r->parent, &arrival, started, &ev, pt, ptlen, &a->sealed, err)) !=
            LS_OK ||
        (rc = flow_key_inbox(&a->k, &r->parent, &arrival, err)) != LS_OK ||
        (rc = ls_event_encode(&ev, &a->v, err)) != LS_OK)
        return rc;
    ls_store_batch_put(a->b, a->k.ptr, a->k.len, a->v.ptr, a->v.len);
    return LS_OK;
}

/* Asks one unfinished child to cancel (in the batch that ends the run). */
static ls_rc cancel_child(ls_flow_act *a, const char *name, size_t nlen, ls_err *err)
{
    ls_id id, arrival;
    static const char why[] = "its parent run ended";
    ls_rc rc = LS_ENOTFOUND;
    unsigned started = LS_EVENT_VERSION; /* the child's first event's version */
    for (size_t i = 0; i < a->nborn && rc == LS_ENOTFOUND; i++) {
        if (strlen(a->born[i]->name) == nlen && memcmp(a->born[i]->name, name, nlen) == 0) {
            id = a->born[i]->id; /* born in this very write: not in the store yet */
            rc = LS_OK;
        }
    }
    if (rc == LS_ENOTFOUND && (rc = flow_lookup(a->f, name, nlen, &id, err)) == LS_OK &&
        (rc = flow_first_version(a->f->o.store, &id, &started, err)) == LS_ECORRUPT)
        rc = LS_OK; /* it cannot load: how its entry is sealed does not matter */
    if (rc == LS_ENOTFOUND) return LS_OK;
    if (rc == LS_OK) rc = ls_id_new(&arrival, a->f->clock, err);
    if (rc != LS_OK) return rc;
    ls_event ev = {.type = LS_EV_CANCEL_REQUESTED,
                   .seq = 1,
                   .time_ms = flow_now(a->f),
                   .name = a->r->name,
                   .name_len = strlen(a->r->name),
                   .error = why,
                   .error_len = sizeof why - 1};
    if ((rc = flow_seal_event(a->f, &id, &arrival, started, &ev, NULL, 0, &a->sealed, err)) !=
            LS_OK ||
        (rc = flow_key_inbox(&a->k, &id, &arrival, err)) != LS_OK ||
        (rc = ls_event_encode(&ev, &a->v, err)) != LS_OK ||
        (rc = ls_buf_append(&a->kill, id.b, LS_ID_BYTES, err)) != LS_OK)
        return rc;
    ls_store_batch_put(a->b, a->k.ptr, a->k.len, a->v.ptr, a->v.len);
    return LS_OK;
}

/* The run ends: children it started that have not ended, and are not
 * detached, are asked to cancel. */
static ls_rc cancel_children(ls_flow_act *a, ls_err *err)
{
    ls_replay_match m;
    ls_rc rc = LS_OK;
    for (size_t i = 0; rc == LS_OK && i < a->nev; i++) {
        const ls_event *e = &a->ev[i];
        if (e->type != LS_EV_CHILD_STARTED || (e->flags & LS_EVF_DETACHED)) continue;
        if (a->r->branch && e->seq <= a->r->fork) continue;    /* the parent's, copied */
        size_t pl = ls_replay_scope_len(e->name, e->name_len); /* a branch's */
        if (ls_replay_find_child(&a->rp, e->name + pl, e->name_len - pl, UINT64_MAX, &m) == LS_OK)
            continue;
        rc = cancel_child(a, e->name + pl, e->name_len - pl, err);
    }
    for (size_t off = 0; rc == LS_OK && off < a->newkids.len;) {
        const char *name = (const char *)a->newkids.ptr + off + 1;
        size_t nlen = strlen(name);
        if (a->newkids.ptr[off] == 'a' &&
            ls_replay_find_child(&a->rp, name, nlen, UINT64_MAX, &m) != LS_OK)
            rc = cancel_child(a, name, nlen, err);
        off += nlen + 2;
    }
    return rc;
}

static ls_rc end_run(ls_flow_act *a, ls_event *ev, const void *pt, size_t ptlen,
                     ls_run_status status, ls_err *err)
{
    ls_rc rc = put_event(a, ev, pt, ptlen, err);
    if (rc != LS_OK) return fail_sticky(a, rc, err);
    /* The end is queued now: should what goes with it fail (a store read,
     * memory), nothing of this activation may be written (the runner's
     * failure would queue a second end, and the write would keep the run
     * running). The activation is given up; the next one ends it. */
    ls_err why;
    if (a->r->has_parent) rc = notify_parent(a, status, ev, pt, ptlen, &why);
    if (rc == LS_OK) rc = cancel_children(a, &why);
    if (rc != LS_OK) return give_up(a, rc, &why, err);
    a->ending = 1;
    if ((rc = commit(a, 1, status, err)) != LS_OK) {
        a->ending = 0;
        return rc;
    }
    return LS_OK;
}

ls_rc ls_flow_act_complete(ls_flow_act *a, const char *output, size_t olen, ls_err *err)
{
    ls_rc rc = check_sticky(a, err);
    if (rc == LS_OK) {
        rc = ls_replay_finish(&a->rp, err);
        if (rc != LS_OK) {
            ls_err_prefix(err, "run %s", a->r->name);
            fail_sticky(a, rc, err);
        }
    }
    if (rc == LS_ENONDET) {
        /* Non-determinism ends the run as failed, naming both sides. */
        return ls_flow_act_fail(a, NULL, 0, NULL, 0, err);
    }
    if (rc != LS_OK) return rc;
    a->replaying = 0;
    if (a->cancel_seen) return ls_flow_act_cancelled(a, err);
    ls_event ev = {.type = LS_EV_WORKFLOW_COMPLETED};
    if (output == NULL || olen == 0) output = "null", olen = 4;
    flow_run *r = a->r;
    if (r->output == NULL && olen <= FLOW_RESULT_TEXT_MAX &&
        (r->output = ls_malloc(olen)) != NULL) {
        /* For the results cache, once the end is written (flow_run_ended). */
        memcpy(r->output, output, olen);
        r->output_len = olen;
    }
    return end_run(a, &ev, output, olen, LS_RUN_COMPLETED, err);
}

ls_rc ls_flow_act_cancelled(ls_flow_act *a, ls_err *err)
{
    if (!a->cancel_seen)
        return ls_err_set(err, LS_EINVAL, "no cancellation was delivered to this run");
    if (a->ended || a->ending) return ls_err_set(err, LS_EINVAL, "the run has ended");
    if (a->broken) return given_up(a, err);
    if (a->commit_pending || a->io_wait)
        return ls_err_set(err, LS_EINVAL,
                          "the activation is parked; return to the engine before calling again");
    const ls_event *c = ls_replay_cancel(&a->rp);
    a->waiting = 0;
    a->replaying = 0;
    ls_event ev = {.type = LS_EV_WORKFLOW_CANCELLED,
                   .name = c->name,
                   .name_len = c->name_len,
                   .error = c->error,
                   .error_len = c->error_len};
    flow_log(a->f, LS_FLOW_LOG_INFO, a->r->name, "cancelled");
    return end_run(a, &ev, NULL, 0, LS_RUN_CANCELLED, err);
}

ls_rc ls_flow_act_fail(ls_flow_act *a, const char *error, size_t elen, const char *trace,
                       size_t tlen, ls_err *err)
{
    if (a->ended) return ls_err_set(err, LS_EINVAL, "the run has ended");
    if (a->broken) return given_up(a, err);
    /* A write in flight owns the batch: ending the run now would hand the
     * committer a second one in its place (a runner whose code went on
     * after a wait). */
    if (a->commit_pending || a->io_wait)
        return ls_err_set(err, LS_EINVAL,
                          "the activation is parked; return to the engine before calling again");
    char msg[LS_ERR_MSGMAX];
    if (a->sticky == LS_ENONDET) {
        /* Whatever the code raised, the cause is the divergence. */
        snprintf(msg, sizeof msg, "%s", ls_err_text(&a->sticky_err));
        error = msg;
        elen = strlen(msg);
    }
    /* Huge texts (a step that raised a megabyte) are cut: the failure
     * must be recordable, whatever the code raised. Both are masked. */
    if (error && (error = bound_text(a, error, &elen, FLOW_ERROR_MAX, &a->cut)) == NULL)
        return ls_err_set(err, LS_ENOMEM, "out of memory");
    ls_buf tb = LS_BUF_INIT;
    if (trace && (trace = bound_text(a, trace, &tlen, FLOW_TRACE_MAX, &tb)) == NULL) {
        ls_buf_free(&tb);
        return ls_err_set(err, LS_ENOMEM, "out of memory");
    }
    a->waiting = 0;
    a->replaying = 0;
    a->sticky = LS_OK;
    ls_event ev = {.type = LS_EV_WORKFLOW_FAILED, .error = error, .error_len = elen};
    ls_buf_clear(&a->tmp);
    ls_rc rc = LS_OK;
    if (trace && tlen) {
        json_t *j = json_object();
        if (j == NULL ||
            json_object_set_new(j, "traceback", ls_json_string_lossy(trace, tlen)) != 0)
            rc = ls_err_set(err, LS_ENOMEM, "out of memory");
        else
            rc = ls_json_dump(j, &a->tmp, err);
        json_decref(j);
        /* (over the payload limit, for all the cut: kept without it) */
        if (rc == LS_OK && a->tmp.len > a->f->o.max_payload) ls_buf_clear(&a->tmp);
    }
    ls_buf_free(&tb);
    if (rc != LS_OK) return rc;
    int qlen = error ? (int)masked_cut(error, elen, 500) : 0;
    flow_log(a->f, LS_FLOW_LOG_WARN, a->r->name, "failed: %.*s", qlen, error ? error : "");
    return end_run(a, &ev, a->tmp.len ? a->tmp.ptr : NULL, a->tmp.len, LS_RUN_FAILED, err);
}
