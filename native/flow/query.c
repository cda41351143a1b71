/* SPDX-License-Identifier: MIT
 * The engine's keys beyond history.h, payload sealing, and the JSON views
 * the API serves: a run, its result, its history, lists of runs. Reads go
 * to the store (one consistent view per call); only "waiting" comes from
 * memory, since it describes what the engine is doing now.
 */
#include "ls_config.h"

#include <string.h>

#include "flow_int.h"
#include "lodestone/ls_alloc.h"
#include "ls_json.h"

/* ---- keys ---- */

ls_rc flow_key_name(ls_buf *k, const char *name, size_t nlen, ls_err *err)
{
    ls_buf_clear(k);
    ls_rc rc = ls_key_ns(k, LS_NS_INDEX, err);
    if (rc == LS_OK) rc = ls_buf_putc(k, 'n', err);
    if (rc == LS_OK) rc = ls_buf_append(k, name, nlen, err);
    return rc;
}

ls_rc flow_key_status(ls_buf *k, ls_run_status s, const ls_id *id, ls_err *err)
{
    ls_buf_clear(k);
    ls_rc rc = ls_key_ns(k, LS_NS_INDEX, err);
    if (rc == LS_OK) rc = ls_buf_putc(k, 's', err);
    if (rc == LS_OK) rc = ls_buf_putc(k, (unsigned char)s, err);
    if (rc == LS_OK && id) rc = ls_buf_append(k, id->b, LS_ID_BYTES, err);
    return rc;
}

ls_rc flow_key_ended(ls_buf *k, int64_t ended_ms, const ls_id *id, ls_err *err)
{
    ls_buf_clear(k);
    ls_rc rc = ls_key_ns(k, LS_NS_INDEX, err);
    if (rc == LS_OK) rc = ls_buf_putc(k, 'e', err);
    if (rc == LS_OK) rc = ls_key_i64(k, ended_ms, err);
    if (rc == LS_OK && id) rc = ls_buf_append(k, id->b, LS_ID_BYTES, err);
    return rc;
}

ls_rc flow_key_type(ls_buf *k, const char *type, size_t tlen, const ls_id *id, ls_err *err)
{
    ls_buf_clear(k);
    ls_rc rc = ls_key_ns(k, LS_NS_INDEX, err);
    if (rc == LS_OK) rc = ls_buf_putc(k, 't', err);
    if (rc == LS_OK) rc = ls_key_str(k, type, tlen, err);
    if (rc == LS_OK && id) rc = ls_buf_append(k, id->b, LS_ID_BYTES, err);
    return rc;
}

ls_rc flow_key_timer(ls_buf *k, int64_t due, const ls_id *id, uint64_t seq, ls_err *err)
{
    ls_buf_clear(k);
    ls_rc rc = ls_key_ns(k, LS_NS_TIMER, err);
    if (rc == LS_OK) rc = ls_key_i64(k, due, err);
    if (rc == LS_OK) rc = ls_buf_append(k, id->b, LS_ID_BYTES, err);
    if (rc == LS_OK) rc = ls_key_u64(k, seq, err);
    return rc;
}

ls_rc flow_key_inbox(ls_buf *k, const ls_id *id, const ls_id *arrival, ls_err *err)
{
    ls_buf_clear(k);
    ls_rc rc = ls_key_ns(k, LS_NS_SIGNAL, err);
    if (rc == LS_OK) rc = ls_buf_append(k, id->b, LS_ID_BYTES, err);
    if (rc == LS_OK && arrival) rc = ls_buf_append(k, arrival->b, LS_ID_BYTES, err);
    return rc;
}

ls_rc flow_key_custom(ls_buf *k, const ls_id *id, ls_err *err)
{
    ls_buf_clear(k);
    ls_rc rc = ls_key_ns(k, LS_NS_RUNINFO, err);
    if (rc == LS_OK) rc = ls_buf_append(k, id->b, LS_ID_BYTES, err);
    if (rc == LS_OK) rc = ls_buf_putc(k, 'c', err);
    return rc;
}

ls_rc flow_key_parent(ls_buf *k, const ls_id *id, ls_err *err)
{
    ls_buf_clear(k);
    ls_rc rc = ls_key_ns(k, LS_NS_RUNINFO, err);
    if (rc == LS_OK) rc = ls_buf_append(k, id->b, LS_ID_BYTES, err);
    if (rc == LS_OK) rc = ls_buf_putc(k, 'p', err);
    return rc;
}

ls_rc flow_link_encode(ls_buf *v, const ls_id *parent, unsigned flags, int64_t depth,
                       const char *name, size_t nlen, ls_err *err)
{
    flags &= ~FLOW_LINK_DEPTH;
    if (depth >= 0) flags |= FLOW_LINK_DEPTH;
    ls_rc rc = ls_buf_set(v, parent->b, LS_ID_BYTES, err);
    if (rc == LS_OK) rc = ls_buf_putc(v, (unsigned char)flags, err);
    for (int i = 24; rc == LS_OK && depth >= 0 && i >= 0; i -= 8)
        rc = ls_buf_putc(v, (unsigned char)((uint64_t)depth >> i), err);
    if (rc == LS_OK) rc = ls_buf_append(v, name, nlen, err);
    return rc;
}

ls_rc flow_link_decode(const void *val, size_t len, flow_link *l, ls_err *err)
{
    const unsigned char *p = val;
    memset(l, 0, sizeof *l);
    if (len < LS_ID_BYTES + 1) return ls_err_set(err, LS_ECORRUPT, "parent link of %zu bytes", len);
    memcpy(l->parent.b, p, LS_ID_BYTES);
    l->flags = p[LS_ID_BYTES];
    size_t off = LS_ID_BYTES + 1;
    if (l->flags & FLOW_LINK_DEPTH) {
        if (len < off + 4)
            return ls_err_set(err, LS_ECORRUPT, "parent link of %zu bytes, with a depth", len);
        for (int i = 0; i < 4; i++) l->depth = l->depth << 8 | p[off + i];
        l->has_depth = 1;
        off += 4;
    }
    l->name = (const char *)p + off;
    l->nlen = len - off;
    return LS_OK;
}

ls_rc flow_key_ckey(ls_buf *k, const ls_id *id, ls_err *err)
{
    ls_buf_clear(k);
    ls_rc rc = ls_key_ns(k, LS_NS_RUNINFO, err);
    if (rc == LS_OK) rc = ls_buf_append(k, id->b, LS_ID_BYTES, err);
    if (rc == LS_OK) rc = ls_buf_putc(k, 'k', err);
    return rc;
}

ls_rc flow_key_branch(ls_buf *k, const ls_id *id, ls_err *err)
{
    ls_buf_clear(k);
    ls_rc rc = ls_key_ns(k, LS_NS_RUNINFO, err);
    if (rc == LS_OK) rc = ls_buf_append(k, id->b, LS_ID_BYTES, err);
    if (rc == LS_OK) rc = ls_buf_putc(k, 'b', err);
    return rc;
}

ls_rc flow_check_name(const char *name, size_t nlen, ls_err *err)
{
    if (nlen == 0 || nlen > LS_FLOW_NAMEMAX)
        return ls_err_set(err, LS_EINVAL, "id: must be 1 to %d characters, got %zu",
                          LS_FLOW_NAMEMAX, nlen);
    if (name[0] == '.' && (nlen == 1 || (nlen == 2 && name[1] == '.')))
        return ls_err_set(err, LS_EINVAL,
                          "id: \"%.*s\" is not allowed: a URL reads it as a path step "
                          "(/v1/workflows/%.*s is not that run)",
                          (int)nlen, name, (int)nlen, name);
    for (size_t i = 0; i < nlen; i++) {
        unsigned char c = (unsigned char)name[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == ':' || c == '@')
            continue;
        return ls_err_set(err, LS_EINVAL,
                          "id: character %zu (0x%02x) is not allowed; use letters, digits and "
                          "- _ . : @",
                          i + 1, c);
    }
    return LS_OK;
}

ls_rc flow_check_word(const char *what, const char *s, size_t n, size_t max, int dots_ok,
                      ls_err *err)
{
    if (n == 0 || n > max)
        return ls_err_set(err, LS_EINVAL, "%s: must be 1 to %zu characters, got %zu", what, max, n);
    if (!dots_ok && s[0] == '.' && (n == 1 || (n == 2 && s[1] == '.')))
        return ls_err_set(err, LS_EINVAL,
                          "%s: \"%.*s\" is not allowed: a URL reads it as a path step", what,
                          (int)n, s);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == ':')
            continue;
        return ls_err_set(err, LS_EINVAL,
                          "%s: character %zu (0x%02x) is not allowed; use letters, digits and "
                          "- _ . :",
                          what, i + 1, c);
    }
    return LS_OK;
}

ls_rc ls_flow_check_type_name(const char *name, size_t len, const char *what, ls_err *err)
{
    return flow_check_word(what ? what : "workflow type", name, len, LS_FLOW_NAMEMAX, 0, err);
}

/* ---- payloads ----
 *
 * A payload is sealed with associated data that binds it to where it
 * belongs. Two forms:
 *
 *   record form: the payload of an event of version 3 (every event this
 *   build seals) or 2, in a run's history or its inbox
 *     u8    'E' (a history event) or 'I' (an inbox entry)
 *     16    the run's id
 *     16    the entry's arrival id (its key's last part): inbox entries only
 *     u8    version 3 only, the start byte: 1 when the run's first event
 *           is of version 3 (a run this build started, or a branch run's
 *           copy), 0 when it is of version 1 or 2 (a run started before)
 *     ...   the event's value (ls_event_encode) with an empty payload:
 *           version, type, flags, seq, time, due time, attempt, name and
 *           error, each as the codec writes it
 *   slot form: the payload of an event of version 1 (what lodestoned
 *   wrote before records were bound), and the custom status
 *     16    the run's id
 *     8     big-endian: the event's seq; FLOW_SEQ_INBOX for an inbox
 *           entry, FLOW_SEQ_CUSTOM for the custom status
 *
 * Every field of a record is bound, not only its type and name: each is
 * read by the replay or shown by the API as the run's own (a ChildStarted's
 * detached flag, a step's attempt, a failure's error next to its sealed
 * traceback), and no code changes a sealed event's fields without sealing
 * it again. The record form is unambiguous: the first byte says whether an
 * arrival id follows, ids are of fixed size, and the event's value is the
 * codec's canonical, length-prefixed encoding (which starts with its own
 * version), so two different sets of fields never give the same bytes.
 * The start byte (0 or 1) is where a version 2 record's value begins, with
 * its version byte 2: a version 3 record's bytes are never a version 2
 * one's. It is at least 27 bytes long and the slot form exactly 24, so
 * neither is ever taken for the other (nor for a secret's
 * "lodestone.secret:" + name, nor a schedule's key, which start with other
 * bytes).
 *
 * The start byte binds every version 3 event and inbox entry to the
 * version of its run's first event, as its reader finds it (the writers
 * know it: a run they start, their activation's loaded history, or the
 * first event read from the store, flow_first_version). A run started at
 * version 3 whose first event is rewritten as version 1 without a payload
 * (which a version 1 WorkflowStarted may lack, its input then null) would
 * otherwise read as a run started before, whose older events are not
 * authenticated: now every later version 3 event of it fails to open
 * (LS_EAUTH), and the run waits, unfinished. What this cannot catch is a
 * run's whole history rewritten as version 1 events without payloads: a
 * run fabricated in the old format (docs/workflows.md says what it can
 * and cannot hold); that needs an anchor outside the store.
 *
 * Which form opens a payload is said by its event's version byte: an
 * explicit marker, not trial decryption (an open costs one AEAD, and its
 * error is about the one form that applies). The marker cannot downgrade a
 * record: it is part of the record form itself, so a version 3 event
 * rewritten as version 2 fails under the record form, rewritten as 1 it is
 * opened with the slot form, under which its payload does not
 * authenticate, and a version 1 event rewritten as 2 or 3 fails under the
 * record form. What stays unbound is what version 1 events never bound:
 * their fields outside the payload, until they are sealed again (a key
 * retirement, a branch run's copy) in the record form.
 * The slot form has no domain byte: it tells an event from the custom
 * status by the seq alone, so a version 1 event with FLOW_SEQ_CUSTOM as
 * its seq (no event has it) is refused, never opened.
 *
 * Since version 3 every event carries a sealed payload, whatever its
 * kind: one of a kind that holds none (a step started or failed, a
 * timer's start, firing or cancellation, a cancel request, a run
 * cancelled or terminated, a child failed, a resume) seals an empty
 * plaintext, the sealed value a MAC over the record alone; a run's failure
 * seals its traceback, or nothing. So a version 3 event without a sealed
 * payload is refused, whatever its kind, and so is one of a kind that
 * holds none whose sealed plaintext is not empty. Versions 2 and 1 left
 * the payload out of those kinds, so such events of theirs are not
 * authenticated at all; their runs read them as before, but once a run
 * has an event of version 3 (from its first, or appended by this build to
 * a run started before), a later event or an inbox entry of an older
 * version is refused (flow_hist_check): no lodestoned wrote it there. Of the kinds
 * that always carry a payload, a signal and a child's result are refused
 * without one in every version (a forged signal would otherwise reach the
 * run as null), and the others (flow_event_holds_payload) since version
 * 2. */

#define AD_HISTORY       'E'
#define AD_INBOX         'I'
#define AD_STARTED_OLDER 0 /* start byte: the run's first event is of version 1 or 2 */
#define AD_STARTED_V3    1 /* ... of version 3 */

static void slot_ad(unsigned char ad[LS_ID_BYTES + 8], const ls_id *id, uint64_t seq)
{
    memcpy(ad, id->b, LS_ID_BYTES);
    for (int i = 0; i < 8; i++) ad[LS_ID_BYTES + i] = (unsigned char)(seq >> (56 - 8 * i));
}

/* The record form for ev (its payload left out) into ad (replacing it):
 * of a version 3 event, with the start byte for started (the version of
 * the run's first event). */
static ls_rc record_ad(ls_buf *ad, const ls_id *id, const ls_id *arrival, unsigned started,
                       const ls_event *ev, ls_err *err)
{
    size_t ids = 1 + LS_ID_BYTES + (arrival ? LS_ID_BYTES : 0);
    size_t pre = ids + (ev->version >= 3);
    ls_event e = *ev;
    e.payload = NULL;
    e.payload_len = 0;
    /* Room for the prefix and the value (3 bytes, at most 7 varints of 10
     * bytes, name and error) at once: one allocation. */
    ls_buf_clear(ad);
    ls_rc rc = ls_buf_reserve(ad, pre + 3 + 70 + e.name_len + e.error_len, err);
    if (rc == LS_OK) rc = ls_event_encode(&e, ad, err);
    if (rc == LS_OK) rc = ls_buf_reserve(ad, pre, err);
    if (rc != LS_OK) return rc;
    memmove(ad->ptr + pre, ad->ptr, ad->len + 1);
    ad->ptr[0] = arrival ? AD_INBOX : AD_HISTORY;
    memcpy(ad->ptr + 1, id->b, LS_ID_BYTES);
    if (arrival) memcpy(ad->ptr + 1 + LS_ID_BYTES, arrival->b, LS_ID_BYTES);
    if (pre > ids) ad->ptr[ids] = started >= 3 ? AD_STARTED_V3 : AD_STARTED_OLDER;
    ad->len += pre;
    return LS_OK;
}

ls_rc flow_seal_event_as(ls_vault_t *v, unsigned version, const ls_id *id, const ls_id *arrival,
                         unsigned started, ls_event *ev, const void *pt, size_t len, ls_buf *out,
                         ls_err *err)
{
    if (version != 2 && version != 3)
        return ls_err_set(err, LS_EINVAL, "an event is sealed as version 2 or 3, not %u", version);
    if (pt == NULL && len == 0) pt = ""; /* a kind that holds no payload: a MAC alone */
    ls_buf ad = LS_BUF_INIT;
    ev->version = version;
    ls_rc rc = record_ad(&ad, id, arrival, started, ev, err);
    if (rc == LS_OK) rc = ls_vault_seal(v, ad.ptr, ad.len, pt, len, out, err);
    ls_buf_free(&ad);
    if (rc != LS_OK) return rc;
    ev->payload = out->ptr;
    ev->payload_len = out->len;
    return LS_OK;
}

ls_rc flow_seal_event_with(ls_vault_t *v, const ls_id *id, const ls_id *arrival, unsigned started,
                           ls_event *ev, const void *pt, size_t len, ls_buf *out, ls_err *err)
{
    return flow_seal_event_as(v, LS_EVENT_VERSION, id, arrival, started, ev, pt, len, out, err);
}

ls_rc flow_seal_event(ls_flow_t *f, const ls_id *id, const ls_id *arrival, unsigned started,
                      ls_event *ev, const void *pt, size_t len, ls_buf *out, ls_err *err)
{
    return flow_seal_event_with(f->o.vault, id, arrival, started, ev, pt, len, out, err);
}

/* A key the keyring lacks is LS_EAUTH here: the value is there. */
static ls_rc missing_key(ls_rc rc, const void *sealed, size_t len, ls_err *err)
{
    if (rc != LS_ENOTFOUND) return rc;
    return ls_err_set(err, LS_EAUTH, "sealed value names key %u, which this keyring does not hold",
                      (unsigned)ls_vault_sealed_key(sealed, len));
}

int flow_event_holds_payload(ls_event_type t)
{
    return t == LS_EV_WORKFLOW_STARTED || t == LS_EV_STEP_COMPLETED || t == LS_EV_SIDE_EFFECT ||
           t == LS_EV_SIGNAL_RECEIVED || t == LS_EV_WORKFLOW_COMPLETED ||
           t == LS_EV_CHILD_STARTED || t == LS_EV_CHILD_COMPLETED;
}

int flow_event_holds_none(ls_event_type t)
{
    return !flow_event_holds_payload(t) && t != LS_EV_WORKFLOW_FAILED;
}

/* ---- naming an inbox entry in an error ---- */

#define ENTRY_NAME_MAX 100 /* bytes of the name shown, before escaping */

/* The n bytes at s, quoted for a log line: cut to ENTRY_NAME_MAX at a
 * character's start ("..." after), '"' and '\\' escaped, and a control
 * character (C0, DEL, C1) or a byte that starts no valid UTF-8 written as
 * \xNN, so that a name forged in the store neither breaks nor hides what
 * follows. out holds at least ENTRY_QUOTED bytes. */
#define ENTRY_QUOTED (2 + 4 * ENTRY_NAME_MAX + 3 + 1)
static const char *quote_name(char out[ENTRY_QUOTED], const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    int cut = n > ENTRY_NAME_MAX;
    if (cut) n = ls_utf8_cut(s, ENTRY_NAME_MAX);
    size_t o = 0;
    out[o++] = '"';
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t len = ls_json_utf8_seq(s + i, n - i);
        int ctl = len == 0 || c < 0x20 || c == 0x7F ||
                  (c == 0xC2 && len == 2 && (unsigned char)s[i + 1] < 0xA0);
        if (ctl) {
            /* a C1 character is two bytes: both are written as \xNN */
            size_t k = len == 2 && c == 0xC2 ? 2 : 1;
            for (size_t j = 0; j < k; j++) {
                unsigned char b = (unsigned char)s[i + j];
                out[o++] = '\\';
                out[o++] = 'x';
                out[o++] = hex[b >> 4];
                out[o++] = hex[b & 15];
            }
            i += k;
        } else if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
            i++;
        } else {
            memcpy(out + o, s + i, len);
            o += len;
            i += len;
        }
    }
    out[o++] = '"';
    if (cut) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return out;
}

/* Says which inbox entry ev (stored under arrival) is, in front of err:
 * its arrival id, type and name (the signal's, or the child run's; who
 * asked, for a request), so that an operator can find it. */
static void prefix_entry(ls_err *err, const ls_id *arrival, const ls_event *ev)
{
    char at[LS_ID_TEXTLEN + 1], name[ENTRY_QUOTED];
    int request = ev->type == LS_EV_CANCEL_REQUESTED || ev->type == LS_EV_RESUMED ||
                  ev->type == LS_EV_WORKFLOW_TERMINATED;
    ls_id_format(arrival, at);
    ls_err_prefix(err, "%s (inbox entry %s, %s %s)",
                  request ? "seal of a pending request"
                          : "payload of a pending signal or child result",
                  at, ls_event_type_name(ev->type), quote_name(name, ev->name, ev->name_len));
}

/* Names ev (of a run's history, or its inbox entry arrival) in front of
 * err. */
static ls_rc prefix_event(ls_rc rc, ls_err *err, const ls_id *arrival, const ls_event *ev)
{
    if (arrival)
        prefix_entry(err, arrival, ev);
    else
        ls_err_prefix(err, "payload of event %llu", (unsigned long long)ev->seq);
    return rc;
}

/* Opens ev's sealed payload into out as it was sealed: empty when ev has
 * none, which only events of version 2 or 1 of the kinds that may lack
 * one do (and a version 1 step's result, a run's input or output, a side
 * effect's value, a child's start). */
static ls_rc open_sealed(ls_vault_t *v, const ls_id *id, const ls_id *arrival, unsigned started,
                         const ls_event *ev, ls_buf *out, ls_err *err)
{
    ls_rc rc;
    /* Signals and children's results are sealed whatever they hold, "null"
     * too, in every version (ls_flow_signal, notify_parent, drain_inbox);
     * every event that holds a payload is since version 2 (put_event), and
     * every event at all since version 3. One without is forged (a step
     * "completed" that never ran, an approval, a timer that fired), and
     * must not reach the run. */
    int always = ev->version >= 3 || ev->type == LS_EV_SIGNAL_RECEIVED ||
                 ev->type == LS_EV_CHILD_COMPLETED ||
                 (ev->version >= 2 && flow_event_holds_payload(ev->type));
    if ((ev->payload == NULL || ev->payload_len == 0) && !always) {
        ls_buf_clear(out);
        return LS_OK;
    }
    if (ev->payload == NULL || ev->payload_len == 0) {
        rc = ls_err_set(err, LS_EAUTH, "a %s without its sealed payload",
                        ls_event_type_name(ev->type));
    } else if (ev->version == 1 && !arrival && ev->seq == FLOW_SEQ_CUSTOM) {
        /* The custom status's slot, which no event ever had: it would
         * open the status as this event's payload. */
        rc = ls_err_set(err, LS_EAUTH, "a version 1 event cannot have this seq");
    } else if (ev->version == 1) {
        unsigned char ad[LS_ID_BYTES + 8];
        slot_ad(ad, id, arrival ? FLOW_SEQ_INBOX : ev->seq);
        rc = ls_vault_open(v, ad, sizeof ad, ev->payload, ev->payload_len, out, err);
    } else {
        ls_buf ad = LS_BUF_INIT;
        rc = record_ad(&ad, id, arrival, started, ev, err);
        if (rc == LS_OK)
            rc = ls_vault_open(v, ad.ptr, ad.len, ev->payload, ev->payload_len, out, err);
        ls_buf_free(&ad);
    }
    if (rc == LS_OK && ev->version >= 3 && out->len && flow_event_holds_none(ev->type)) {
        /* sealed by the key's holder, but not by lodestoned */
        ls_buf_clear(out);
        rc = ls_err_set(err, LS_EAUTH, "a %s whose sealed payload is not empty",
                        ls_event_type_name(ev->type));
    }
    rc = missing_key(rc, ev->payload, ev->payload_len, err);
    return rc == LS_OK ? LS_OK : prefix_event(rc, err, arrival, ev);
}

ls_rc flow_open_event_with(ls_vault_t *v, const ls_id *id, const ls_id *arrival, unsigned started,
                           const ls_event *ev, ls_buf *out, ls_err *err)
{
    ls_rc rc = open_sealed(v, id, arrival, started, ev, out, err);
    /* None, or the empty one of a kind that holds none: null. */
    if (rc == LS_OK && out->len == 0 &&
        (ev->payload_len == 0 || !flow_event_holds_payload(ev->type)))
        rc = ls_buf_set(out, "null", 4, err);
    return rc;
}

ls_rc flow_open_event_raw_with(ls_vault_t *v, const ls_id *id, const ls_id *arrival,
                               unsigned started, const ls_event *ev, ls_buf *out, ls_err *err)
{
    ls_rc rc = open_sealed(v, id, arrival, started, ev, out, err);
    /* A payload a version 1 writer left out was a null. */
    if (rc == LS_OK && ev->payload_len == 0 && flow_event_holds_payload(ev->type))
        rc = ls_buf_set(out, "null", 4, err);
    return rc;
}

ls_rc flow_open_event(ls_flow_t *f, const ls_id *id, const ls_id *arrival, unsigned started,
                      const ls_event *ev, ls_buf *out, ls_err *err)
{
    return flow_open_event_with(f->o.vault, id, arrival, started, ev, out, err);
}

ls_rc flow_seal_status_with(ls_vault_t *v, const ls_id *id, const void *pt, size_t len, ls_buf *out,
                            ls_err *err)
{
    unsigned char ad[LS_ID_BYTES + 8];
    slot_ad(ad, id, FLOW_SEQ_CUSTOM);
    return ls_vault_seal(v, ad, sizeof ad, pt, len, out, err);
}

ls_rc flow_open_status_with(ls_vault_t *v, const ls_id *id, const void *sealed, size_t len,
                            ls_buf *out, ls_err *err)
{
    unsigned char ad[LS_ID_BYTES + 8];
    slot_ad(ad, id, FLOW_SEQ_CUSTOM);
    return missing_key(ls_vault_open(v, ad, sizeof ad, sealed, len, out, err), sealed, len, err);
}

/* ---- reading a run's history ---- */

/* LS_EAUTH for an event of version v read when h holds a version 3 one. */
static ls_rc older_after_v3(const flow_hist *h, unsigned v, ls_err *err)
{
    if (h->started >= 3)
        return ls_err_set(err, LS_EAUTH, "a version %u event in a run started at version 3", v);
    return ls_err_set(err, LS_EAUTH, "a version %u event after event %llu of version 3", v,
                      (unsigned long long)h->v3);
}

ls_rc flow_hist_check(flow_hist *h, uint64_t seq, const ls_event *ev, ls_err *err)
{
    unsigned long long want = (unsigned long long)h->next, at = (unsigned long long)seq;
    if (seq != h->next && h->next == 1)
        return ls_err_set(err, LS_ECORRUPT, "history: its first event is event %llu, not 1", at);
    if (seq != h->next)
        return ls_err_set(err, LS_ECORRUPT,
                          "history: event %llu is missing (event %llu follows %llu)", want, at,
                          want - 1);
    if (ev->seq != seq)
        return ls_err_set(err, LS_ECORRUPT, "event %llu: the record holds seq %llu", at,
                          (unsigned long long)ev->seq);
    if (seq == 1) h->started = ev->version;
    if (h->v3 && ev->version < 3) {
        ls_rc rc = older_after_v3(h, ev->version, err);
        return LS_ERR_PREFIXED(rc, err, "event %llu", at);
    }
    if (h->v3 == 0 && ev->version >= 3) h->v3 = seq;
    h->next++;
    return LS_OK;
}

ls_rc flow_hist_check_entry(const flow_hist *h, const ls_id *arrival, const ls_event *ev,
                            ls_err *err)
{
    if (h->v3 == 0 || ev->version >= 3) return LS_OK;
    older_after_v3(h, ev->version, err);
    prefix_entry(err, arrival, ev);
    return LS_EAUTH;
}

/* ---- lookups ---- */

/* flow_lookup, and when the run is named by its id, its record too (in
 * *rec, borrowed from val; *got 1). */
static ls_rc lookup(ls_flow_t *f, const char *name, size_t nlen, ls_id *id, ls_buf *val,
                    ls_run_record *rec, int *got, ls_err *err)
{
    ls_buf k = LS_BUF_INIT, v = LS_BUF_INIT;
    ls_rc rc = LS_ENOTFOUND;
    *got = 0;
    if (nlen == LS_ID_TEXTLEN && ls_id_parse(id, name, nlen, NULL) == LS_OK) {
        /* A run started without a name is named by its id and has no name
         * index entry: its record names it. Names are unique (a start
         * under a taken name finds that run), so a record of this id with
         * this name is the run, and the index need not be read. */
        rc = ls_run_key(&k, id, err);
        if (rc == LS_OK) rc = ls_store_get(f->o.store, k.ptr, k.len, val, err);
        if (rc == LS_OK && (ls_run_decode(val->ptr, val->len, rec, NULL) != LS_OK ||
                            rec->name_len != nlen || memcmp(rec->name, name, nlen) != 0))
            rc = LS_ENOTFOUND;
        *got = rc == LS_OK;
    }
    if (rc == LS_ENOTFOUND) {
        rc = flow_key_name(&k, name, nlen, err);
        if (rc == LS_OK) rc = ls_store_get(f->o.store, k.ptr, k.len, &v, err);
        if (rc == LS_OK && v.len != LS_ID_BYTES)
            rc = ls_err_set(err, LS_ECORRUPT, "name index entry of %zu bytes", v.len);
        if (rc == LS_OK) memcpy(id->b, v.ptr, LS_ID_BYTES);
    }
    if (rc == LS_ENOTFOUND)
        ls_err_set(err, LS_ENOTFOUND, "no workflow run with id \"%.*s\"",
                   (int)(nlen > 200 ? 200 : nlen), name);
    ls_buf_free(&k);
    ls_buf_free(&v);
    return rc;
}

ls_rc flow_lookup(ls_flow_t *f, const char *name, size_t nlen, ls_id *id, ls_err *err)
{
    ls_buf val = LS_BUF_INIT;
    ls_run_record rec;
    int got;
    ls_rc rc = lookup(f, name, nlen, id, &val, &rec, &got, err);
    ls_buf_free(&val);
    return rc;
}

/* An event is shown as what its key says it is: one whose stored seq
 * differs (a record copied from elsewhere in the run, whose payload opens
 * under the seq it holds) is damaged, never shown in another's place. */
static ls_rc event_in_place(uint64_t seq, const ls_event *ev, ls_err *err)
{
    if (ev->seq == seq) return LS_OK;
    return ls_err_set(err, LS_ECORRUPT, "event %llu: the record holds seq %llu",
                      (unsigned long long)seq, (unsigned long long)ev->seq);
}

static ls_rc get_event(ls_flow_t *f, const ls_id *id, uint64_t seq, ls_buf *val, ls_event *ev,
                       ls_err *err)
{
    ls_buf k = LS_BUF_INIT;
    ls_rc rc = ls_history_key(&k, id, seq, err);
    if (rc == LS_OK) rc = ls_store_get(f->o.store, k.ptr, k.len, val, err);
    ls_buf_free(&k);
    if (rc == LS_ENOTFOUND)
        return ls_err_set(err, LS_ECORRUPT, "event %llu is missing", (unsigned long long)seq);
    if (rc == LS_OK) rc = ls_event_decode(val->ptr, val->len, ev, err);
    if (rc == LS_OK) rc = event_in_place(seq, ev, err);
    return rc;
}

ls_rc flow_first_version(ls_store_t *st, const ls_id *id, unsigned *version, ls_err *err)
{
    ls_buf k = LS_BUF_INIT, val = LS_BUF_INIT;
    ls_event ev;
    ls_rc rc = ls_history_key(&k, id, 1, err);
    if (rc == LS_OK) rc = ls_store_get(st, k.ptr, k.len, &val, err);
    if (rc == LS_ENOTFOUND) rc = ls_err_set(err, LS_ECORRUPT, "event 1 is missing");
    if (rc == LS_OK && (rc = ls_event_decode(val.ptr, val.len, &ev, err)) != LS_OK) {
        /* an unknown version (LS_EFORMAT) is as damaged as a bad byte */
        ls_err_prefix(err, "event 1");
        rc = LS_ECORRUPT;
        if (err) err->code = LS_ECORRUPT;
    }
    if (rc == LS_OK) *version = ev.version;
    ls_buf_free(&k);
    ls_buf_free(&val);
    return rc;
}

/* ---- JSON building ---- */

static int set_time(json_t *o, const char *key, int64_t ms)
{
    char ts[LS_TIME_TEXTLEN + 1];
    return json_object_set_new(o, key, json_string(ls_time_format(ms, ts)));
}

/* Parses a decrypted payload into o[key]. */
static ls_rc set_payload(ls_flow_t *f, json_t *o, const char *key, const ls_id *id,
                         unsigned started, const ls_event *ev, ls_buf *tmp, ls_err *err)
{
    ls_rc rc = flow_open_event(f, id, NULL, started, ev, tmp, err);
    if (rc != LS_OK) return rc;
    json_t *v = NULL;
    if (ls_json_parse((const char *)tmp->ptr, tmp->len, &v, err) != LS_OK)
        return ls_err_prefix(err, "payload of event %llu", (unsigned long long)ev->seq);
    json_object_set_new(o, key, v);
    return LS_OK;
}

/* Stored text as a JSON string. Text written before the engine checked it
 * for UTF-8 shows with U+FFFD where it was not, rather than making the
 * whole answer unencodable. */
static json_t *strn(const char *s, size_t n)
{
    return ls_json_string_lossy(s ? s : "", s ? n : 0);
}

static ls_rc dump_free(json_t *o, ls_buf *out, ls_err *err)
{
    if (o == NULL) return ls_err_set(err, LS_ENOMEM, "out of memory");
    ls_buf_clear(out);
    ls_rc rc = ls_json_dump(o, out, err);
    json_decref(o);
    return rc;
}

static void add_waiting(ls_flow_t *f, json_t *o, const ls_id *id)
{
    pthread_mutex_lock(&f->mu);
    flow_run *r = flow_runtab_find(&f->runs, id);
    if (r && r->held) {
        json_t *w = json_object();
        json_object_set_new(w, "kind", json_string("concurrency"));
        json_object_set_new(w, "name", strn(r->ckey, r->ckey ? strlen(r->ckey) : 0));
        json_object_set_new(o, "waiting", w);
    } else if (r && r->waiting && r->state == R_IDLE) {
        json_t *w = json_object();
        json_object_set_new(w, "kind",
                            json_string(r->wait_kind == 'r'   ? "retry"
                                        : r->wait_kind == 'g' ? "signal"
                                        : r->wait_kind == 'c' ? "child"
                                        : r->wait_kind == 'p' ? "paused"
                                                              : "sleep"));
        json_object_set_new(w, "name", strn(r->wait_name, r->wait_name ? strlen(r->wait_name) : 0));
        if (r->wait_due) set_time(w, "due_at", r->wait_due);
        json_object_set_new(o, "waiting", w);
    }
    pthread_mutex_unlock(&f->mu);
}

/* The custom status (ctx:set_status), when the run has one. */
static ls_rc add_custom(ls_flow_t *f, json_t *o, const ls_id *id, ls_buf *val, ls_buf *tmp,
                        ls_err *err)
{
    ls_buf k = LS_BUF_INIT;
    ls_rc rc = flow_key_custom(&k, id, err);
    if (rc == LS_OK) rc = ls_store_get(f->o.store, k.ptr, k.len, val, err);
    ls_buf_free(&k);
    if (rc == LS_ENOTFOUND) return LS_OK;
    if (rc == LS_OK) rc = flow_open_status_with(f->o.vault, id, val->ptr, val->len, tmp, err);
    json_t *v = NULL;
    if (rc == LS_OK) rc = ls_json_parse((const char *)tmp->ptr, tmp->len, &v, err);
    if (rc != LS_OK) return LS_ERR_PREFIXED(rc, err, "custom status");
    json_object_set_new(o, "custom_status", v);
    return LS_OK;
}

/* A child run's parent, by name. */
static ls_rc add_parent(ls_flow_t *f, json_t *o, const ls_id *id, ls_buf *val, ls_err *err)
{
    ls_buf k = LS_BUF_INIT;
    ls_rc rc = flow_key_parent(&k, id, err);
    if (rc == LS_OK) rc = ls_store_get(f->o.store, k.ptr, k.len, val, err);
    ls_buf_free(&k);
    if (rc == LS_ENOTFOUND) return LS_OK;
    if (rc != LS_OK) return rc;
    flow_link l;
    if (flow_link_decode(val->ptr, val->len, &l, NULL) == LS_OK && l.nlen) {
        json_object_set_new(o, "parent", strn(l.name, l.nlen));
        if (l.flags & FLOW_LINK_DETACHED) json_object_set_new(o, "detached", json_true());
    }
    /* A branch run: which branch of its parent's ctx:all. */
    if ((rc = flow_key_branch(&k, id, err)) == LS_OK)
        rc = ls_store_get(f->o.store, k.ptr, k.len, val, err);
    ls_buf_free(&k);
    if (rc == LS_OK && val->len > 8)
        json_object_set_new(o, "branch", strn((const char *)val->ptr + 8, val->len - 8));
    return rc == LS_ENOTFOUND ? LS_OK : rc;
}

/* A run's last event, read for its error, reason or output: in a run
 * started at version 3 (started: the first event's version) of version 3
 * too, and then its seal checked as event_json checks it (the output is
 * opened where it is shown). The events between are not read: a version
 * 3 event among them in a run started before is not known here. */
static ls_rc check_last(ls_flow_t *f, const ls_id *id, const ls_event *ev, unsigned started,
                        ls_buf *tmp, ls_err *err)
{
    flow_hist h = {.next = ev->seq, .started = started, .v3 = started >= 3};
    ls_rc rc = flow_hist_check(&h, ev->seq, ev, err);
    if (rc == LS_OK && ev->version >= 3 && ev->type != LS_EV_WORKFLOW_COMPLETED)
        rc = flow_open_event(f, id, NULL, started, ev, tmp, err);
    return rc;
}

/* What run_json adds from history besides a failed run's error. */
enum { VIEW_LIST = 0, VIEW_FULL = 1 /* input and output */, VIEW_RESULT = 2 /* output */ };

/* The run object of a view. */
static ls_rc run_json(ls_flow_t *f, const ls_id *id, const ls_run_record *rec, int view,
                      json_t **out, ls_err *err)
{
    int full = view == VIEW_FULL, with_output = view != VIEW_LIST;
    json_t *o = json_object();
    if (o == NULL) return ls_err_set(err, LS_ENOMEM, "out of memory");
    json_object_set_new(o, "id", strn(rec->name, rec->name_len));
    json_object_set_new(o, "type", strn(rec->type, rec->type_len));
    json_object_set_new(o, "status", json_string(ls_run_status_name(rec->status)));
    set_time(o, "created_at", rec->created_ms);
    set_time(o, "updated_at", rec->updated_ms);
    json_object_set_new(o, "steps_completed", json_integer(rec->steps_completed));
    json_object_set_new(o, "attempts_failed", json_integer(rec->attempts_failed));
    if (rec->version_len) json_object_set_new(o, "version", strn(rec->version, rec->version_len));
    ls_rc rc = LS_OK;
    if (rec->status == LS_RUN_RUNNING) add_waiting(f, o, id);
    if (full || rec->status != LS_RUN_RUNNING) {
        ls_buf val = LS_BUF_INIT, tmp = LS_BUF_INIT;
        /* A completed run's last event holds its output: read it only when
         * the view shows the output. */
        ls_event ev;
        unsigned started = 0; /* the first event's version: how the others open */
        int last =
            rec->status != LS_RUN_RUNNING && (with_output || rec->status != LS_RUN_COMPLETED);
        /* (read only for what the view shows: a list's completed run needs
         * neither) */
        if ((full || last) && (rc = get_event(f, id, 1, &val, &ev, err)) == LS_OK) {
            started = ev.version;
            if (full) rc = set_payload(f, o, "input", id, started, &ev, &tmp, err);
        }
        if (rc == LS_OK && last &&
            (rc = get_event(f, id, rec->last_seq, &val, &ev, err)) == LS_OK &&
            (rc = check_last(f, id, &ev, started, &tmp, err)) == LS_OK) {
            if (ev.type == LS_EV_WORKFLOW_COMPLETED) {
                if (with_output) rc = set_payload(f, o, "output", id, started, &ev, &tmp, err);
            } else if (ev.type == LS_EV_WORKFLOW_FAILED) {
                json_object_set_new(o, "error", strn(ev.error, ev.error_len));
            } else {
                json_object_set_new(o, "reason", strn(ev.error, ev.error_len));
                if (ev.name_len) json_object_set_new(o, "by", strn(ev.name, ev.name_len));
            }
        }
        if (rc == LS_OK && full) rc = add_custom(f, o, id, &val, &tmp, err);
        if (rc == LS_OK && full) rc = add_parent(f, o, id, &val, err);
        ls_buf_free(&val);
        ls_buf_free(&tmp);
    }
    /* In a list, a run whose events are damaged or do not open is shown
     * as such, not the end of the list: an operator lists runs to find
     * it. (Memory and store failures still end it.) */
    if (view == VIEW_LIST && (rc == LS_ECORRUPT || rc == LS_EAUTH || rc == LS_EFORMAT)) {
        json_t *why = json_string(err && err->msg[0] ? err->msg : "");
        json_object_set_new(o, "unreadable", why ? why : json_string("damaged"));
        rc = LS_OK;
    }
    if (rc != LS_OK) {
        json_decref(o);
        return rc;
    }
    *out = o;
    return LS_OK;
}

static ls_rc read_record(ls_flow_t *f, const ls_id *id, ls_buf *val, ls_run_record *rec,
                         ls_err *err)
{
    ls_buf k = LS_BUF_INIT;
    ls_rc rc = ls_run_key(&k, id, err);
    if (rc == LS_OK) rc = ls_store_get(f->o.store, k.ptr, k.len, val, err);
    ls_buf_free(&k);
    /* Found by an index or a name a moment ago: retention deleted it since. */
    if (rc == LS_ENOTFOUND) return ls_err_set(err, LS_ENOTFOUND, "the run was just deleted");
    if (rc == LS_OK) rc = ls_run_decode(val->ptr, val->len, rec, err);
    return rc;
}

ls_rc flow_render_run(ls_flow_t *f, const ls_id *id, const char *type, size_t tlen, int full,
                      ls_buf *out, ls_err *err)
{
    ls_buf val = LS_BUF_INIT;
    ls_run_record rec;
    json_t *o = NULL;
    ls_rc rc = read_record(f, id, &val, &rec, err);
    if (rc == LS_OK && type && (rec.type_len != tlen || memcmp(rec.type, type, tlen) != 0))
        rc = ls_err_set(err, LS_ESTATE,
                        "a run with id \"%.*s\" exists and is of type \"%.*s\", not \"%.*s\"",
                        (int)rec.name_len, rec.name, (int)rec.type_len, rec.type, (int)tlen, type);
    if (rc == LS_OK) rc = run_json(f, id, &rec, full, &o, err);
    ls_buf_free(&val);
    if (rc != LS_OK) return rc;
    return dump_free(o, out, err);
}

ls_rc ls_flow_describe(ls_flow_t *f, const char *name, size_t nlen, ls_buf *out, ls_err *err)
{
    ls_id id;
    ls_rc rc = flow_lookup(f, name, nlen, &id, err);
    if (rc != LS_OK) return rc;
    return flow_render_run(f, &id, NULL, 0, 1, out, err);
}

ls_rc flow_result_text(ls_buf *out, const char *name, size_t nlen, const json_t *output,
                       ls_run_status st, ls_err *err)
{
    ls_buf_clear(out);
    ls_rc rc = ls_buf_append(out, "{\"id\":", 6, err);
    if (rc == LS_OK) rc = ls_json_put_string(out, name, nlen, err);
    if (rc == LS_OK && output) rc = ls_buf_append(out, ",\"output\":", 10, err);
    if (rc == LS_OK && output) rc = ls_json_dump(output, out, err);
    if (rc == LS_OK) rc = ls_buf_append(out, ",\"status\":\"", 11, err);
    if (rc == LS_OK)
        rc = ls_buf_append(out, ls_run_status_name(st), strlen(ls_run_status_name(st)), err);
    if (rc == LS_OK) rc = ls_buf_append(out, "\"}", 2, err);
    return rc;
}

/* {"id":..,"output":..,"status":..} of a running or completed run (its
 * last event checked as check_last does: event 1 read for its version). */
static ls_rc result_text(ls_flow_t *f, const ls_id *id, const ls_run_record *rec, ls_buf *out,
                         ls_err *err)
{
    ls_rc rc = LS_OK;
    json_t *output = NULL;
    if (rec->status == LS_RUN_COMPLETED) {
        ls_buf val = LS_BUF_INIT, tmp = LS_BUF_INIT;
        ls_event ev = {0};
        unsigned started = 0;
        rc = flow_first_version(f->o.store, id, &started, err);
        if (rc == LS_OK) rc = get_event(f, id, rec->last_seq, &val, &ev, err);
        if (rc == LS_OK && ev.type != LS_EV_WORKFLOW_COMPLETED)
            rc = ls_err_set(err, LS_ECORRUPT, "the last event of a completed run is a %s",
                            ls_event_type_name(ev.type));
        if (rc == LS_OK) rc = check_last(f, id, &ev, started, &tmp, err);
        if (rc == LS_OK) rc = flow_open_event(f, id, NULL, started, &ev, &tmp, err);
        if (rc == LS_OK && ls_json_parse((const char *)tmp.ptr, tmp.len, &output, err) != LS_OK)
            rc = ls_err_prefix(err, "payload of event %llu", (unsigned long long)ev.seq);
        ls_buf_free(&val);
        ls_buf_free(&tmp);
    }
    if (rc == LS_OK) rc = flow_result_text(out, rec->name, rec->name_len, output, rec->status, err);
    json_decref(output);
    return rc;
}

ls_rc ls_flow_result(ls_flow_t *f, const char *name, size_t nlen, ls_buf *out, int *done,
                     ls_err *err)
{
    ls_id id;
    ls_buf val = LS_BUF_INIT;
    ls_run_record rec = {0};
    json_t *full = NULL;
    *done = 0;
    int got;
    /* A run (looked up by its id) that completed while watched: its answer
     * is in memory, and a completed run's answer never changes. */
    if (nlen == LS_ID_TEXTLEN && ls_id_parse(&id, name, nlen, NULL) == LS_OK &&
        (got = flow_results_get(f->results, &id, out, err)) != 0) {
        *done = got > 0;
        return got > 0 ? LS_OK : LS_ENOMEM;
    }
    ls_rc rc = lookup(f, name, nlen, &id, &val, &rec, &got, err);
    if (rc == LS_OK && !got) rc = read_record(f, &id, &val, &rec, err);
    if (rc == LS_OK && (rec.status == LS_RUN_RUNNING || rec.status == LS_RUN_COMPLETED)) {
        /* Running or completed, the common answers: written directly, in
         * the order ls_json_dump gives the same object. */
        rc = result_text(f, &id, &rec, out, err);
        *done = rc == LS_OK && rec.status != LS_RUN_RUNNING;
        ls_buf_free(&val);
        return rc;
    }
    if (rc == LS_OK) rc = run_json(f, &id, &rec, VIEW_RESULT, &full, err);
    ls_buf_free(&val);
    if (rc != LS_OK) return rc;
    json_t *o = json_object();
    json_object_set(o, "id", json_object_get(full, "id"));
    json_object_set(o, "status", json_object_get(full, "status"));
    if (rec.status != LS_RUN_RUNNING) {
        *done = 1;
        json_t *v = json_object_get(full, "output");
        if (v) json_object_set(o, "output", v);
        v = json_object_get(full, "error");
        if (v) json_object_set(o, "error", v);
    }
    json_decref(full);
    return dump_free(o, out, err);
}

static ls_rc event_json(ls_flow_t *f, const ls_id *id, unsigned started, const ls_event *ev,
                        ls_buf *tmp, json_t **out, ls_err *err)
{
    json_t *o = json_object();
    if (o == NULL) return ls_err_set(err, LS_ENOMEM, "out of memory");
    /* A kind shown without a payload: its seal (version 3) is checked as
     * a payload that is shown would be. */
    ls_rc rc = LS_OK;
    if (ev->version >= 3 && flow_event_holds_none(ev->type) &&
        (rc = flow_open_event(f, id, NULL, started, ev, tmp, err)) != LS_OK) {
        json_decref(o);
        return rc;
    }
    json_object_set_new(o, "seq", json_integer((json_int_t)ev->seq));
    json_object_set_new(o, "type", json_string(ls_event_type_name(ev->type)));
    set_time(o, "time", ev->time_ms);
    switch (ev->type) {
    case LS_EV_WORKFLOW_STARTED: rc = set_payload(f, o, "input", id, started, ev, tmp, err); break;
    case LS_EV_STEP_STARTED:
        json_object_set_new(o, "name", strn(ev->name, ev->name_len));
        json_object_set_new(o, "attempt", json_integer(ev->attempt));
        break;
    case LS_EV_STEP_COMPLETED:
        json_object_set_new(o, "name", strn(ev->name, ev->name_len));
        json_object_set_new(o, "attempt", json_integer(ev->attempt));
        rc = set_payload(f, o, "result", id, started, ev, tmp, err);
        break;
    case LS_EV_STEP_FAILED:
        json_object_set_new(o, "name", strn(ev->name, ev->name_len));
        json_object_set_new(o, "attempt", json_integer(ev->attempt));
        json_object_set_new(o, "error", strn(ev->error, ev->error_len));
        if (ev->flags & LS_EVF_FATAL)
            json_object_set_new(o, "final", json_true());
        else if (ev->flags & LS_EVF_PAUSED)
            json_object_set_new(o, "paused", json_true());
        else
            set_time(o, "retry_at", ev->due_ms);
        break;
    case LS_EV_TIMER_STARTED:
        json_object_set_new(o, "name", strn(ev->name, ev->name_len));
        set_time(o, "due_at", ev->due_ms);
        break;
    case LS_EV_TIMER_FIRED: json_object_set_new(o, "name", strn(ev->name, ev->name_len)); break;
    case LS_EV_SIDE_EFFECT:
        json_object_set_new(o, "name", strn(ev->name, ev->name_len));
        rc = set_payload(f, o, "value", id, started, ev, tmp, err);
        break;
    case LS_EV_SIGNAL_RECEIVED:
        json_object_set_new(o, "name", strn(ev->name, ev->name_len));
        rc = set_payload(f, o, "payload", id, started, ev, tmp, err);
        break;
    case LS_EV_WORKFLOW_COMPLETED:
        rc = set_payload(f, o, "output", id, started, ev, tmp, err);
        break;
    case LS_EV_WORKFLOW_FAILED:
        json_object_set_new(o, "error", strn(ev->error, ev->error_len));
        if (ev->payload_len || ev->version >= 3) { /* version 3: sealed, traceback or not */
            json_t *extra = NULL;
            rc = flow_open_event(f, id, NULL, started, ev, tmp, err);
            if (rc == LS_OK) rc = ls_json_parse((const char *)tmp->ptr, tmp->len, &extra, err);
            if (rc == LS_OK) {
                json_t *tb = json_object_get(extra, "traceback");
                if (tb) json_object_set(o, "traceback", tb);
                json_decref(extra);
            }
        }
        break;
    case LS_EV_TIMER_CANCELLED: json_object_set_new(o, "name", strn(ev->name, ev->name_len)); break;
    case LS_EV_CHILD_STARTED: {
        json_object_set_new(o, "name", strn(ev->name, ev->name_len));
        if (ev->flags & LS_EVF_DETACHED) json_object_set_new(o, "detached", json_true());
        json_t *extra = NULL;
        rc = flow_open_event(f, id, NULL, started, ev, tmp, err);
        if (rc == LS_OK) rc = ls_json_parse((const char *)tmp->ptr, tmp->len, &extra, err);
        if (rc == LS_OK) {
            json_t *t = json_object_get(extra, "type");
            if (t) json_object_set(o, "workflow", t);
            json_decref(extra);
        }
        break;
    }
    case LS_EV_CHILD_COMPLETED:
        json_object_set_new(o, "name", strn(ev->name, ev->name_len));
        rc = set_payload(f, o, "output", id, started, ev, tmp, err);
        break;
    case LS_EV_RESUMED:
        if (ev->name_len) json_object_set_new(o, "by", strn(ev->name, ev->name_len));
        break;
    case LS_EV_CHILD_FAILED:
        json_object_set_new(o, "name", strn(ev->name, ev->name_len));
        json_object_set_new(o, "error", strn(ev->error, ev->error_len));
        break;
    case LS_EV_WORKFLOW_CANCELLED:
    case LS_EV_WORKFLOW_TERMINATED:
    case LS_EV_CANCEL_REQUESTED:
        json_object_set_new(o, "reason", strn(ev->error, ev->error_len));
        if (ev->name_len) json_object_set_new(o, "by", strn(ev->name, ev->name_len));
        break;
    }
    if (rc != LS_OK) {
        json_decref(o);
        return rc;
    }
    *out = o;
    return LS_OK;
}

ls_rc ls_flow_history(ls_flow_t *f, const char *name, size_t nlen, ls_buf *out, ls_err *err)
{
    ls_id id;
    ls_rc rc = flow_lookup(f, name, nlen, &id, err);
    if (rc != LS_OK) return rc;
    ls_buf prefix = LS_BUF_INIT, tmp = LS_BUF_INIT;
    ls_store_iter_t *it = NULL;
    json_t *events = json_array(), *o = json_object();
    const void *key, *val;
    size_t klen, vlen;
    /* A branch run's history begins with a copy of its parent's, which it
     * replays: listed are its own events, after those. */
    uint64_t fork = 0;
    rc = flow_key_branch(&prefix, &id, err);
    if (rc == LS_OK) rc = ls_store_get(f->o.store, prefix.ptr, prefix.len, &tmp, err);
    if (rc == LS_OK && tmp.len > 8) {
        for (int i = 0; i < 8; i++) fork = fork << 8 | tmp.ptr[i];
        json_object_set_new(o, "branch", strn((const char *)tmp.ptr + 8, tmp.len - 8));
        json_object_set_new(o, "parent_events", json_integer((json_int_t)fork));
    }
    if (rc == LS_ENOTFOUND || rc == LS_OK) rc = ls_history_prefix(&prefix, &id, err);
    if (rc == LS_OK) rc = ls_store_iter_prefix(&it, f->o.store, prefix.ptr, prefix.len, 0, err);
    flow_hist h = FLOW_HIST_INIT;
    while (rc == LS_OK && (rc = ls_store_iter_next(it, &key, &klen, &val, &vlen, err)) == LS_OK) {
        ls_event ev;
        uint64_t seq;
        json_t *e = NULL;
        if ((rc = ls_history_key_parse(key, klen, NULL, &seq, err)) != LS_OK ||
            (rc = ls_event_decode(val, vlen, &ev, err)) != LS_OK ||
            (rc = flow_hist_check(&h, seq, &ev, err)) != LS_OK)
            break;
        if (ev.seq <= fork) continue;
        if ((rc = event_json(f, &id, h.started, &ev, &tmp, &e, err)) != LS_OK) break;
        json_array_append_new(events, e);
    }
    if (rc == LS_ENOTFOUND) rc = LS_OK;
    ls_store_iter_free(it);
    ls_buf_free(&prefix);
    ls_buf_free(&tmp);
    if (rc != LS_OK) {
        json_decref(events);
        json_decref(o);
        return rc;
    }
    json_object_set_new(o, "id", strn(name, nlen));
    json_object_set_new(o, "events", events);
    return dump_free(o, out, err);
}

static int is_paused(ls_flow_t *f, const ls_id *id)
{
    pthread_mutex_lock(&f->mu);
    flow_run *r = flow_runtab_find(&f->runs, id);
    int p = r && r->waiting && r->wait_kind == 'p' && r->state == R_IDLE;
    pthread_mutex_unlock(&f->mu);
    return p;
}

ls_rc ls_flow_list(ls_flow_t *f, const char *status, const char *type, unsigned limit,
                   const char *cursor, ls_buf *out, ls_err *err)
{
    ls_run_status st = 0;
    ls_id after;
    ls_rc rc;
    /* "paused": running runs whose step used up its attempts (on_exhausted
     * = "pause"), which wait for a resume. */
    int paused = status && strcmp(status, "paused") == 0;
    if (paused)
        st = LS_RUN_RUNNING;
    else if (status && *status && ls_run_status_parse(status, strlen(status), &st) != LS_OK)
        return ls_err_set(err, LS_EINVAL,
                          "status: unknown value \"%.40s\"; use running, completed, failed, "
                          "cancelled, terminated or paused",
                          status);
    if (type && *type == '\0') type = NULL;
    if (limit == 0) limit = 50;
    if (limit > 1000) return ls_err_set(err, LS_EINVAL, "limit: at most 1000, got %u", limit);
    if (cursor && *cursor) {
        if (ls_id_parse(&after, cursor, strlen(cursor), err) != LS_OK)
            return ls_err_set(err, LS_EINVAL, "cursor: not a cursor this API returned");
    } else {
        cursor = NULL;
    }

    /* Which keyspace to walk, newest first: the status index, the type
     * index, or the run records themselves. */
    ls_buf lower = LS_BUF_INIT, upper = LS_BUF_INIT, val = LS_BUF_INIT;
    if (st)
        rc = flow_key_status(&lower, st, NULL, err);
    else if (type)
        rc = flow_key_type(&lower, type, strlen(type), NULL, err);
    else {
        ls_buf_clear(&lower);
        rc = ls_key_ns(&lower, LS_NS_RUN, err);
    }
    size_t plen = lower.len;
    if (rc == LS_OK) {
        if (cursor) {
            rc = ls_buf_set(&upper, lower.ptr, lower.len, err);
            if (rc == LS_OK) rc = ls_buf_append(&upper, after.b, LS_ID_BYTES, err);
        } else {
            rc = ls_key_prefix_end(lower.ptr, lower.len, &upper, err);
        }
    }
    ls_store_iter_t *it = NULL;
    ls_store_range range = {lower.ptr, lower.len, upper.ptr, upper.len, 1};
    if (rc == LS_OK) rc = ls_store_iter_new(&it, f->o.store, &range, err);
    json_t *runs = json_array();
    const void *key, *v;
    size_t klen, vlen;
    unsigned n = 0;
    ls_id last;
    int more = 0;
    while (rc == LS_OK && (rc = ls_store_iter_next(it, &key, &klen, &v, &vlen, err)) == LS_OK) {
        if (klen != plen + LS_ID_BYTES) continue;
        ls_id id;
        memcpy(id.b, (const unsigned char *)key + plen, LS_ID_BYTES);
        ls_run_record rec;
        if (st || type) {
            if ((rc = read_record(f, &id, &val, &rec, err)) == LS_ENOTFOUND) {
                rc = LS_OK; /* deleted by retention after the index was read */
                continue;
            }
            if (rc != LS_OK) break;
        } else if ((rc = ls_run_decode(v, vlen, &rec, err)) != LS_OK) {
            break;
        }
        if (type && (rec.type_len != strlen(type) || memcmp(rec.type, type, rec.type_len) != 0))
            continue;
        if (paused && !is_paused(f, &id)) continue;
        if (n == limit) {
            more = 1;
            break;
        }
        json_t *o = NULL;
        if ((rc = run_json(f, &id, &rec, VIEW_LIST, &o, err)) != LS_OK) break;
        json_array_append_new(runs, o);
        last = id;
        n++;
    }
    if (rc == LS_ENOTFOUND) rc = LS_OK;
    ls_store_iter_free(it);
    ls_buf_free(&lower);
    ls_buf_free(&upper);
    ls_buf_free(&val);
    if (rc != LS_OK) {
        json_decref(runs);
        return rc;
    }
    json_t *o = json_object();
    json_object_set_new(o, "runs", runs);
    if (more) {
        char text[LS_ID_TEXTLEN + 1];
        ls_id_format(&last, text);
        json_object_set_new(o, "next_cursor", json_string(text));
    }
    return dump_free(o, out, err);
}
