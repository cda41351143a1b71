/* SPDX-License-Identifier: MIT
 * Retiring old keys, offline: every sealed value of a store that names a
 * key other than the current one is opened with the associated data it was
 * sealed with and sealed again under the current key, in bounded synced
 * batches; once a check finds none left, the key file is rewritten to hold
 * the current key alone. Values that do not open are left as they were.
 * Events (history, inbox) are sealed again as version 3, bound to all
 * their fields (query.c), whichever version they were (but for a run's
 * first event of version 1 or 2: event_value says why); a version 3
 * event's MAC alone (a kind that holds no payload) is sealed again too.
 */
#include "ls_config.h"

#include <stdio.h>
#include <string.h>

#include "flow_int.h"
#include "history.h"

/* A synced write every this many values, or this many bytes of them. */
#define RETIRE_BATCH_VALUES 512u
#define RETIRE_BATCH_BYTES  (4u << 20)

static const char *const kind_names[LS_FLOW_SEALED_KINDS] = {
    [LS_FLOW_SEALED_SECRETS] = "secrets",     [LS_FLOW_SEALED_HISTORY] = "history",
    [LS_FLOW_SEALED_INBOX] = "inbox",         [LS_FLOW_SEALED_STATUS] = "custom statuses",
    [LS_FLOW_SEALED_SCHEDULES] = "schedules", [LS_FLOW_SEALED_KEYCHECK] = "key check",
};

const char *ls_flow_sealed_kind_name(ls_flow_sealed_kind k)
{
    return (unsigned)k < LS_FLOW_SEALED_KINDS ? kind_names[k] : "unknown";
}

/* ---- the pass ---- */

typedef struct {
    ls_vault_t *v;
    ls_store_t *st;
    uint32_t key; /* current */
    ls_flow_retire_report *rep;
    ls_store_batch_t *b;
    size_t bbytes;
    size_t pending[LS_FLOW_SEALED_KINDS]; /* in b, not yet written */
    int verify;                           /* the check: count, change nothing */
    ls_buf pt, sealed, val, what;
} retire_state;

static ls_rc flush(retire_state *rs, ls_err *err)
{
    if (ls_store_batch_count(rs->b) == 0) return LS_OK;
    ls_rc rc = ls_store_write(rs->st, rs->b, LS_STORE_SYNC, err);
    if (rc != LS_OK) return LS_ERR_PREFIXED(rc, err, "writing resealed values");
    for (int k = 0; k < LS_FLOW_SEALED_KINDS; k++) {
        rs->rep->resealed[k] += rs->pending[k];
        rs->pending[k] = 0;
    }
    ls_store_batch_clear(rs->b);
    rs->bbytes = 0;
    return LS_OK;
}

static ls_rc put(retire_state *rs, ls_flow_sealed_kind kind, const void *key, size_t klen,
                 const void *val, size_t vlen, ls_err *err)
{
    ls_store_batch_put(rs->b, key, klen, val, vlen);
    rs->pending[kind]++;
    rs->bbytes += klen + vlen;
    if (ls_store_batch_count(rs->b) >= RETIRE_BATCH_VALUES || rs->bbytes >= RETIRE_BATCH_BYTES)
        return flush(rs, err);
    return LS_OK;
}

/* A value under another key that did not open (rc, why): counted, the
 * first remembered as "what: why". Failures that are no fault of the
 * value (memory) stop the pass. */
static ls_rc failed(retire_state *rs, ls_rc rc, const char *what, const ls_err *why, ls_err *err)
{
    if (rc != LS_EAUTH && rc != LS_EFORMAT && rc != LS_ECORRUPT && rc != LS_ENOTFOUND) {
        if (err && why != err) *err = *why;
        return rc;
    }
    if (rs->rep->failed++ == 0)
        snprintf(rs->rep->first_failed, sizeof rs->rep->first_failed, "%s: %s", what,
                 ls_err_text(why));
    return LS_OK;
}

/* Whether sealed (len bytes) is to be resealed: it names another key. In
 * the check, counted instead. */
static int other_key(retire_state *rs, const void *sealed, size_t len)
{
    if (ls_vault_sealed_key(sealed, len) == rs->key) return 0;
    if (rs->verify) {
        rs->rep->remaining++;
        return 0;
    }
    return 1;
}

/* "run NAME" for run id: its record's name when it can be read, else the
 * id's text. Only for messages. */
static const char *run_label(retire_state *rs, const ls_id *id)
{
    char text[LS_ID_TEXTLEN + 1];
    ls_id_format(id, text);
    ls_buf k = LS_BUF_INIT, v = LS_BUF_INIT;
    ls_run_record rec;
    ls_buf_clear(&rs->what);
    if (ls_run_key(&k, id, NULL) == LS_OK &&
        ls_store_get(rs->st, k.ptr, k.len, &v, NULL) == LS_OK &&
        ls_run_decode(v.ptr, v.len, &rec, NULL) == LS_OK &&
        !(rec.name_len == strlen(text) && memcmp(rec.name, text, rec.name_len) == 0))
        ls_buf_printf(&rs->what, NULL, "run %.*s (id %s)", (int)rec.name_len, rec.name, text);
    else
        ls_buf_printf(&rs->what, NULL, "run %s", text);
    ls_buf_free(&k);
    ls_buf_free(&v);
    return rs->what.len ? (const char *)rs->what.ptr : "a run";
}

/* One event value of run id, stored under key: a history event (seq: its
 * key's, arrival NULL) or an inbox entry (arrival: its key's).
 *
 * An event it reseals becomes version 3: its payload (or, for a kind that
 * holds none, the empty one) bound to the fields it holds. For a version
 * 1 event that is safe, and worth it: the fields are those the engine
 * reads and trusts today, taken from the record itself, with the place
 * (run, seq or arrival) from its key; a history event whose seq is not
 * its key's is refused rather than bound. What retirement cannot tell is
 * whether a version 1 record was changed on disk before it ran: such a
 * change, undetectable then, is bound as it was found. One exception: an
 * event or entry of version 1 or 2 is sealed again as version 2 (the
 * record form all the same). Versions never go down in a run: once an
 * event is of version 3, every later one and every inbox entry must be
 * too (flow_hist_check); the run's older events that hold no payload have
 * nothing sealed to reseal and stay as they are, so raising an older
 * event to 3 would have the run refuse those after it. The start byte of
 * a version 3 event is sealed again as found (query.c). */
static ls_rc event_value(retire_state *rs, ls_flow_sealed_kind kind, const ls_id *id, uint64_t seq,
                         const ls_id *arrival, const void *key, size_t klen, const void *val,
                         size_t vlen, ls_err *err)
{
    ls_event ev;
    ls_err why = {0};
    ls_rc rc = ls_event_decode(val, vlen, &ev, &why);
    if (rc != LS_OK) { /* what it holds is unknown: it may be sealed under an old key */
        if (rs->verify) {
            rs->rep->remaining++;
            return LS_OK;
        }
        char what[64];
        snprintf(what, sizeof what, kind == LS_FLOW_SEALED_INBOX ? "an inbox entry" : "event %llu",
                 (unsigned long long)seq);
        ls_buf w = LS_BUF_INIT;
        ls_buf_printf(&w, NULL, "%s, %s", run_label(rs, id), what);
        rc = failed(rs, rc, w.len ? (const char *)w.ptr : what, &why, err);
        ls_buf_free(&w);
        return rc;
    }
    if (ev.payload_len == 0 || !other_key(rs, ev.payload, ev.payload_len)) return LS_OK;
    /* The run's first event's version, as found, is sealed again as it
     * was bound (the first event itself: its own). */
    unsigned started = ev.version;
    int orphan = 0;
    if (!arrival && ev.seq != seq) {
        rc = ls_err_set(&why, LS_ECORRUPT, "payload of event %llu: the event holds seq %llu",
                        (unsigned long long)seq, (unsigned long long)ev.seq);
    } else if (ev.version >= 3 && (arrival || seq != 1)) {
        /* (only a version 3 seal binds it) */
        rc = flow_first_version(rs->st, id, &started, &why);
        /* An inbox entry whose run is gone (a detached child's result for
         * a parent retention deleted; start-up removes it): sealed with
         * the start its writer found, when the run was there or not. */
        if (rc == LS_ECORRUPT && arrival) {
            orphan = 1;
            started = 3;
            rc = LS_OK;
        }
    }
    if (rc == LS_OK) rc = flow_open_event_raw_with(rs->v, id, arrival, started, &ev, &rs->pt, &why);
    if (rc == LS_EAUTH && orphan) {
        started = 0;
        rc = flow_open_event_raw_with(rs->v, id, arrival, started, &ev, &rs->pt, &why);
    }
    if (rc != LS_OK) {
        ls_buf w = LS_BUF_INIT;
        ls_buf_printf(&w, NULL, "%s", run_label(rs, id));
        rc = failed(rs, rc, w.len ? (const char *)w.ptr : "a run", &why, err);
        ls_buf_free(&w);
        return rc;
    }
    unsigned version = ev.version < 3 ? 2 : LS_EVENT_VERSION; /* its class kept */
    rc = flow_seal_event_as(rs->v, version, id, arrival, started, &ev, rs->pt.ptr, rs->pt.len,
                            &rs->sealed, err);
    if (rc != LS_OK) return rc;
    rc = ls_event_encode(&ev, &rs->val, err);
    if (rc != LS_OK) return rc;
    return put(rs, kind, key, klen, rs->val.ptr, rs->val.len, err);
}

static ls_rc history_value(retire_state *rs, const void *key, size_t klen, const void *val,
                           size_t vlen, ls_err *err)
{
    ls_id id;
    uint64_t seq;
    ls_err why = {0};
    ls_rc rc = ls_history_key_parse(key, klen, &id, &seq, &why);
    if (rc != LS_OK) {
        if (rs->verify) {
            rs->rep->remaining++;
            return LS_OK;
        }
        return failed(rs, rc, "a history record", &why, err);
    }
    return event_value(rs, LS_FLOW_SEALED_HISTORY, &id, seq, NULL, key, klen, val, vlen, err);
}

/* LS_NS_SIGNAL, run id, arrival id (flow_key_inbox). */
static ls_rc inbox_value(retire_state *rs, const void *key, size_t klen, const void *val,
                         size_t vlen, ls_err *err)
{
    ls_id id, arrival;
    if (klen != 1 + 2 * LS_ID_BYTES) {
        if (rs->verify) {
            rs->rep->remaining++;
            return LS_OK;
        }
        ls_err why;
        ls_err_set(&why, LS_ECORRUPT, "a key of %zu bytes, not %u", klen, 1 + 2 * LS_ID_BYTES);
        return failed(rs, LS_ECORRUPT, "an inbox entry", &why, err);
    }
    memcpy(id.b, (const unsigned char *)key + 1, LS_ID_BYTES);
    memcpy(arrival.b, (const unsigned char *)key + 1 + LS_ID_BYTES, LS_ID_BYTES);
    return event_value(rs, LS_FLOW_SEALED_INBOX, &id, 0, &arrival, key, klen, val, vlen, err);
}

/* LS_NS_RUNINFO, run id, 'c' (flow_key_custom): the sealed JSON. The
 * namespace's other records are not sealed. */
static ls_rc status_value(retire_state *rs, const void *key, size_t klen, const void *val,
                          size_t vlen, ls_err *err)
{
    const unsigned char *k = key;
    if (klen != 2 + LS_ID_BYTES || k[1 + LS_ID_BYTES] != 'c') return LS_OK;
    if (!other_key(rs, val, vlen)) return LS_OK;
    ls_id id;
    memcpy(id.b, k + 1, LS_ID_BYTES);
    ls_err why = {0};
    ls_rc rc = flow_open_status_with(rs->v, &id, val, vlen, &rs->pt, &why);
    if (rc != LS_OK) {
        ls_buf w = LS_BUF_INIT;
        ls_buf_printf(&w, NULL, "%s, custom status", run_label(rs, &id));
        rc = failed(rs, rc, w.len ? (const char *)w.ptr : "a custom status", &why, err);
        ls_buf_free(&w);
        return rc;
    }
    rc = flow_seal_status_with(rs->v, &id, rs->pt.ptr, rs->pt.len, &rs->sealed, err);
    if (rc != LS_OK) return rc;
    return put(rs, LS_FLOW_SEALED_STATUS, key, klen, rs->sealed.ptr, rs->sealed.len, err);
}

/* LS_NS_SCHEDULE, str(name): sealed with its own key as associated data. */
static ls_rc schedule_value(retire_state *rs, const void *key, size_t klen, const void *val,
                            size_t vlen, ls_err *err)
{
    if (!other_key(rs, val, vlen)) return LS_OK;
    ls_err why = {0};
    ls_rc rc = ls_vault_open(rs->v, key, klen, val, vlen, &rs->pt, &why);
    if (rc == LS_ENOTFOUND)
        ls_err_set(&why, LS_EAUTH, "sealed value names key %u, which this keyring does not hold",
                   (unsigned)ls_vault_sealed_key(val, vlen));
    if (rc != LS_OK) {
        ls_buf name = LS_BUF_INIT, w = LS_BUF_INIT;
        ls_key_reader r;
        ls_key_reader_init(&r, key, klen);
        if (ls_key_read_ns(&r, NULL, NULL) == LS_OK && ls_key_read_str(&r, &name, NULL) == LS_OK)
            ls_buf_printf(&w, NULL, "schedule \"%.*s\"", (int)name.len, (const char *)name.ptr);
        rc = failed(rs, rc, w.len ? (const char *)w.ptr : "a schedule", &why, err);
        ls_buf_free(&name);
        ls_buf_free(&w);
        return rc;
    }
    rc = ls_vault_seal(rs->v, key, klen, rs->pt.ptr, rs->pt.len, &rs->sealed, err);
    if (rc != LS_OK) return rc;
    return put(rs, LS_FLOW_SEALED_SCHEDULES, key, klen, rs->sealed.ptr, rs->sealed.len, err);
}

typedef ls_rc (*value_fn)(retire_state *rs, const void *key, size_t klen, const void *val,
                          size_t vlen, ls_err *err);

/* Calls fn for every record of namespace ns. The iterator reads a
 * snapshot, so the batches written meanwhile do not disturb it. */
static ls_rc walk(retire_state *rs, ls_store_ns ns, value_fn fn, ls_err *err)
{
    const unsigned char prefix[1] = {(unsigned char)ns};
    ls_store_iter_t *it = NULL;
    const void *key, *val;
    size_t klen, vlen;
    ls_rc rc = ls_store_iter_prefix(&it, rs->st, prefix, sizeof prefix, 0, err);
    while (rc == LS_OK && (rc = ls_store_iter_next(it, &key, &klen, &val, &vlen, err)) == LS_OK)
        rc = fn(rs, key, klen, val, vlen, err);
    if (rc == LS_ENOTFOUND) rc = LS_OK;
    ls_store_iter_free(it);
    return rc;
}

static ls_rc walk_flow(retire_state *rs, ls_err *err)
{
    ls_rc rc = walk(rs, LS_NS_SCHEDULE, schedule_value, err);
    if (rc == LS_OK) rc = walk(rs, LS_NS_RUNINFO, status_value, err);
    if (rc == LS_OK) rc = walk(rs, LS_NS_SIGNAL, inbox_value, err);
    if (rc == LS_OK) rc = walk(rs, LS_NS_HISTORY, history_value, err);
    if (rc == LS_OK && !rs->verify) rc = flush(rs, err);
    return rc;
}

static ls_rc reseal_secrets(retire_state *rs, ls_err *err)
{
    ls_secret_reseal_report sr;
    memset(&sr, 0, sizeof sr);
    ls_rc rc = ls_vault_secret_reseal_all_detailed(rs->v, rs->st, &sr, err);
    rs->rep->resealed[LS_FLOW_SEALED_SECRETS] += sr.resealed;
    if (sr.skipped > 0) {
        if (rs->rep->failed == 0)
            snprintf(rs->rep->first_failed, sizeof rs->rep->first_failed, "%s",
                     ls_err_text(&sr.first_reason)); /* it names the secret */
        rs->rep->failed += sr.skipped;
    }
    return rc == LS_OK ? LS_OK : LS_ERR_PREFIXED(rc, err, "resealing the secrets");
}

/* The key check: resealed when it names another key; written when there
 * is none and every other value is under the current key. */
static ls_rc reseal_check(retire_state *rs, ls_err *err)
{
    uint32_t id = 0;
    ls_rc rc = ls_vault_check_key(rs->st, &id, err);
    if (rc == LS_ENOTFOUND && rs->rep->failed > 0) return LS_OK;
    if (rc != LS_OK && rc != LS_ENOTFOUND) return rc;
    if (rc == LS_OK && id == rs->key) return LS_OK;
    rc = ls_vault_check_write(rs->v, rs->st, err);
    if (rc == LS_OK) rs->rep->resealed[LS_FLOW_SEALED_KEYCHECK]++;
    return rc;
}

/* The check after the pass: how many values still name another key. */
static ls_rc count_remaining(retire_state *rs, ls_err *err)
{
    size_t n = 0;
    uint32_t id = 0;
    rs->verify = 1;
    rs->rep->remaining = 0;
    ls_rc rc = ls_vault_secret_count_other_keys(rs->st, rs->key, &n, err);
    if (rc == LS_OK) {
        rs->rep->remaining += n;
        rc = ls_vault_check_key(rs->st, &id, err);
        if (rc == LS_OK && id != rs->key) rs->rep->remaining++;
        if (rc == LS_ENOTFOUND) rc = LS_OK; /* a store without one: nothing under a key */
    }
    if (rc == LS_OK) rc = walk_flow(rs, err);
    rs->verify = 0;
    return rc;
}

ls_rc ls_flow_key_retire(ls_vault_t *v, ls_store_t *st, ls_flow_retire_report *rep, ls_err *err)
{
    if (rep == NULL) return ls_err_set(err, LS_EINVAL, "ls_flow_key_retire needs a report");
    memset(rep, 0, sizeof *rep);
    if (v == NULL || st == NULL)
        return ls_err_set(err, LS_EINVAL, "ls_flow_key_retire needs a vault and a store");
    rep->key = ls_vault_current_key(v);
    rep->keys_before = ls_vault_key_count(v);
    if (rep->keys_before <= 1) return LS_OK; /* nothing to retire */

    retire_state rs = {.v = v,
                       .st = st,
                       .key = rep->key,
                       .rep = rep,
                       .pt = LS_BUF_INIT,
                       .sealed = LS_BUF_INIT,
                       .val = LS_BUF_INIT,
                       .what = LS_BUF_INIT};
    ls_rc rc = ls_store_batch_new(&rs.b, err);
    if (rc == LS_OK) rc = reseal_secrets(&rs, err);
    if (rc == LS_OK) rc = walk_flow(&rs, err);
    if (rc == LS_OK) rc = reseal_check(&rs, err);
    if (rc == LS_OK) rc = count_remaining(&rs, err);
    if (rc == LS_OK && rep->failed == 0 && rep->remaining == 0) {
        rc = ls_vault_retire_old_keys(v, err);
        /* Also when only the key file directory's sync failed (rc says so) */
        if (ls_vault_key_count(v) == 1) rep->retired = 1;
    }
    ls_store_batch_free(rs.b);
    ls_buf_free(&rs.pt);
    ls_buf_free(&rs.sealed);
    ls_buf_free(&rs.val);
    ls_buf_free(&rs.what);
    return rc;
}
