/* SPDX-License-Identifier: MIT
 * Workflow history codecs: events and run records to and from their
 * versioned binary values (layout in history.h), and their keys. Encoding
 * sizes the value first and allocates at most once; decoding never
 * allocates, borrows strings from the input and rejects anything that is
 * not exactly what the encoder writes. */
#include "ls_config.h"

#include <assert.h>
#include <string.h>

#include "history.h"
#include "lodestone/ls_store.h"

/* ---- names ---- */

static const char *const type_names[LS_EV_LAST + 1] = {
    [LS_EV_WORKFLOW_STARTED] = "workflow_started",
    [LS_EV_STEP_STARTED] = "step_started",
    [LS_EV_STEP_COMPLETED] = "step_completed",
    [LS_EV_STEP_FAILED] = "step_failed",
    [LS_EV_TIMER_STARTED] = "timer_started",
    [LS_EV_TIMER_FIRED] = "timer_fired",
    [LS_EV_SIDE_EFFECT] = "side_effect_recorded",
    [LS_EV_SIGNAL_RECEIVED] = "signal_received",
    [LS_EV_WORKFLOW_COMPLETED] = "workflow_completed",
    [LS_EV_WORKFLOW_FAILED] = "workflow_failed",
    [LS_EV_WORKFLOW_CANCELLED] = "workflow_cancelled",
    [LS_EV_WORKFLOW_TERMINATED] = "workflow_terminated",
    [LS_EV_TIMER_CANCELLED] = "timer_cancelled",
    [LS_EV_CANCEL_REQUESTED] = "cancel_requested",
    [LS_EV_CHILD_STARTED] = "child_started",
    [LS_EV_CHILD_COMPLETED] = "child_completed",
    [LS_EV_CHILD_FAILED] = "child_failed",
    [LS_EV_RESUMED] = "resumed",
};

static const char *const status_names[LS_RUN_STATUS_LAST + 1] = {
    [LS_RUN_RUNNING] = "running",       [LS_RUN_COMPLETED] = "completed",
    [LS_RUN_FAILED] = "failed",         [LS_RUN_CANCELLED] = "cancelled",
    [LS_RUN_TERMINATED] = "terminated",
};

static int lookup(const char *const *names, int last, const char *name, size_t len)
{
    if (name == NULL) return 0;
    for (int i = 1; i <= last; i++)
        if (strlen(names[i]) == len && memcmp(names[i], name, len) == 0) return i;
    return 0;
}

const char *ls_event_type_name(ls_event_type t)
{
    return t >= 1 && t <= LS_EV_LAST ? type_names[t] : "unknown";
}

ls_rc ls_event_type_parse(const char *name, size_t len, ls_event_type *out)
{
    int i = lookup(type_names, LS_EV_LAST, name, len);
    if (i == 0) return LS_ENOTFOUND;
    *out = (ls_event_type)i;
    return LS_OK;
}

const char *ls_run_status_name(ls_run_status s)
{
    return s >= 1 && s <= LS_RUN_STATUS_LAST ? status_names[s] : "unknown";
}

ls_rc ls_run_status_parse(const char *name, size_t len, ls_run_status *out)
{
    int i = lookup(status_names, LS_RUN_STATUS_LAST, name, len);
    if (i == 0) return LS_ENOTFOUND;
    *out = (ls_run_status)i;
    return LS_OK;
}

/* ---- varints ---- */

#define VARINT_MAX 10

static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static unsigned char *put_varint(unsigned char *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    *p++ = (unsigned char)v;
    return p;
}

static uint64_t zigzag(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v < 0 ? -1 : 0);
}

static int64_t unzigzag(uint64_t u)
{
    return (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
}

/* Bounded reader over a value; what names the value kind in messages. */
typedef struct {
    const unsigned char *p;
    size_t left;
    size_t off; /* bytes consumed, for messages */
    const char *what;
} reader;

static ls_rc truncated(reader *r, ls_err *err, const char *field)
{
    return ls_err_set(err, LS_ECORRUPT, "%s: truncated in %s at byte %zu", r->what, field, r->off);
}

static ls_rc get_u8(reader *r, unsigned *v, const char *field, ls_err *err)
{
    if (r->left < 1) return truncated(r, err, field);
    *v = *r->p++;
    r->left--;
    r->off++;
    return LS_OK;
}

static ls_rc get_varint(reader *r, uint64_t *v, const char *field, ls_err *err)
{
    uint64_t x = 0;
    for (size_t i = 0; i < VARINT_MAX; i++) {
        if (i >= r->left) return truncated(r, err, field);
        unsigned b = r->p[i];
        if (i == VARINT_MAX - 1 && b > 1)
            return ls_err_set(err, LS_ECORRUPT, "%s: %s at byte %zu overflows 64 bits", r->what,
                              field, r->off);
        x |= (uint64_t)(b & 0x7F) << (7 * i);
        if ((b & 0x80) == 0) {
            if (b == 0 && i > 0)
                return ls_err_set(err, LS_ECORRUPT, "%s: %s at byte %zu is an overlong varint",
                                  r->what, field, r->off);
            r->p += i + 1;
            r->left -= i + 1;
            r->off += i + 1;
            *v = x;
            return LS_OK;
        }
    }
    return ls_err_set(err, LS_ECORRUPT, "%s: %s at byte %zu overflows 64 bits", r->what, field,
                      r->off);
}

static ls_rc get_u32(reader *r, uint32_t *v, const char *field, ls_err *err)
{
    uint64_t x;
    ls_rc rc = get_varint(r, &x, field, err);
    if (rc != LS_OK) return rc;
    if (x > UINT32_MAX)
        return ls_err_set(err, LS_ECORRUPT, "%s: %s %llu is out of range", r->what, field,
                          (unsigned long long)x);
    *v = (uint32_t)x;
    return LS_OK;
}

/* A length and that many bytes, borrowed. */
static ls_rc get_bytes(reader *r, const void **p, size_t *len, const char *field, ls_err *err)
{
    uint64_t n;
    size_t at = r->off;
    ls_rc rc = get_varint(r, &n, field, err);
    if (rc != LS_OK) return rc;
    if (n > r->left)
        return ls_err_set(err, LS_ECORRUPT,
                          "%s: %s length %llu at byte %zu overflows the %zu bytes left", r->what,
                          field, (unsigned long long)n, at, r->left);
    *p = n ? r->p : NULL;
    *len = (size_t)n;
    r->p += n;
    r->left -= (size_t)n;
    r->off += (size_t)n;
    return LS_OK;
}

static ls_rc check_end(reader *r, ls_err *err)
{
    if (r->left == 0) return LS_OK;
    return ls_err_set(err, LS_ECORRUPT, "%s: %zu trailing bytes after byte %zu", r->what, r->left,
                      r->off);
}

/* Replaces out's contents with need bytes to be written by the caller at
 * the returned pointer; NULL (out untouched) on allocation failure. */
static unsigned char *begin_value(ls_buf *out, size_t need, ls_err *err)
{
    size_t keep = out->len;
    out->len = 0;
    if (ls_buf_reserve(out, need, err) != LS_OK) {
        out->len = keep;
        return NULL;
    }
    return out->ptr;
}

static void end_value(ls_buf *out, const unsigned char *end)
{
    out->len = (size_t)(end - out->ptr);
    out->ptr[out->len] = '\0';
}

static unsigned char *put_bytes(unsigned char *p, const void *s, size_t n)
{
    p = put_varint(p, n);
    if (n) memcpy(p, s, n);
    return p + n;
}

/* ---- events ---- */

ls_rc ls_event_encode(const ls_event *ev, ls_buf *out, ls_err *err)
{
    assert(ev != NULL && out != NULL);
    unsigned version = ev->version ? ev->version : LS_EVENT_VERSION;
    if (version < 1 || version > LS_EVENT_VERSION)
        return ls_err_set(err, LS_EINVAL, "event: unknown version %u", version);
    if (ev->type < 1 || ev->type > LS_EV_LAST)
        return ls_err_set(err, LS_EINVAL, "event: unknown type %d", (int)ev->type);
    if (ev->flags & ~LS_EVF_KNOWN)
        return ls_err_set(err, LS_EINVAL, "event: unknown flags 0x%x", (unsigned)ev->flags);
    if (ev->seq == 0) return ls_err_set(err, LS_EINVAL, "event: seq 0 (seqs start at 1)");
    if ((ev->name == NULL && ev->name_len) || (ev->payload == NULL && ev->payload_len) ||
        (ev->error == NULL && ev->error_len))
        return ls_err_set(err, LS_EINVAL, "event: NULL string with a non-zero length");

    size_t fixed = 3 + varint_len(ev->seq) + varint_len(zigzag(ev->time_ms)) +
                   varint_len(zigzag(ev->due_ms)) + varint_len(ev->attempt) +
                   varint_len(ev->name_len) + varint_len(ev->payload_len) +
                   varint_len(ev->error_len);
    size_t need = fixed;
    const size_t parts[3] = {ev->name_len, ev->payload_len, ev->error_len};
    for (int i = 0; i < 3; i++) {
        if (parts[i] > SIZE_MAX / 2 - need)
            return ls_err_set(err, LS_EINVAL, "event: %zu bytes is too long", parts[i]);
        need += parts[i];
    }

    unsigned char *p = begin_value(out, need, err);
    if (p == NULL) return LS_ENOMEM;
    *p++ = (unsigned char)version;
    *p++ = (unsigned char)ev->type;
    *p++ = (unsigned char)ev->flags;
    p = put_varint(p, ev->seq);
    p = put_varint(p, zigzag(ev->time_ms));
    p = put_varint(p, zigzag(ev->due_ms));
    p = put_varint(p, ev->attempt);
    p = put_bytes(p, ev->name, ev->name_len);
    p = put_bytes(p, ev->payload, ev->payload_len);
    p = put_bytes(p, ev->error, ev->error_len);
    end_value(out, p);
    return LS_OK;
}

ls_rc ls_event_decode(const void *value, size_t len, ls_event *ev, ls_err *err)
{
    assert(ev != NULL && (value != NULL || len == 0));
    reader r = {value, len, 0, "history event"};
    unsigned version = 0, type = 0, flags = 0;
    uint64_t u;
    const void *s;
    ls_rc rc;

    memset(ev, 0, sizeof *ev);
    if (r.left == 0) return ls_err_set(err, LS_ECORRUPT, "history event: empty value");
    if ((rc = get_u8(&r, &version, "version", err)) != LS_OK) return rc;
    if (version < 1 || version > LS_EVENT_VERSION)
        return ls_err_set(err, LS_EFORMAT,
                          "history event: unknown version %u (this build reads 1 to 3)", version);
    ev->version = version;
    if ((rc = get_u8(&r, &type, "type", err)) != LS_OK) return rc;
    if (type < 1 || type > LS_EV_LAST)
        return ls_err_set(err, LS_ECORRUPT, "history event: unknown type %u", type);
    ev->type = (ls_event_type)type;
    if ((rc = get_u8(&r, &flags, "flags", err)) != LS_OK) return rc;
    if (flags & ~LS_EVF_KNOWN)
        return ls_err_set(err, LS_ECORRUPT, "history event: unknown flags 0x%x", flags);
    ev->flags = flags;
    if ((rc = get_varint(&r, &ev->seq, "seq", err)) != LS_OK) return rc;
    if (ev->seq == 0) return ls_err_set(err, LS_ECORRUPT, "history event: seq 0");
    if ((rc = get_varint(&r, &u, "time", err)) != LS_OK) return rc;
    ev->time_ms = unzigzag(u);
    if ((rc = get_varint(&r, &u, "due time", err)) != LS_OK) return rc;
    ev->due_ms = unzigzag(u);
    if ((rc = get_u32(&r, &ev->attempt, "attempt", err)) != LS_OK) return rc;
    if ((rc = get_bytes(&r, &s, &ev->name_len, "name", err)) != LS_OK) return rc;
    ev->name = s;
    if ((rc = get_bytes(&r, &s, &ev->payload_len, "payload", err)) != LS_OK) return rc;
    ev->payload = s;
    if ((rc = get_bytes(&r, &s, &ev->error_len, "error", err)) != LS_OK) return rc;
    ev->error = s;
    return check_end(&r, err);
}

/* ---- keys ---- */

static ls_rc run_key(ls_buf *k, ls_store_ns ns, const ls_id *run, int with_seq, uint64_t seq,
                     ls_err *err)
{
    assert(k != NULL && run != NULL);
    /* Room first, so that the appends below cannot fail half-way. */
    if (begin_value(k, LS_HISTORY_KEY_LEN, err) == NULL) return LS_ENOMEM;
    ls_rc rc = ls_key_ns(k, ns, err);
    if (rc == LS_OK) rc = ls_key_bytes(k, run->b, LS_ID_BYTES, err);
    if (rc == LS_OK && with_seq) rc = ls_key_u64(k, seq, err);
    assert(rc == LS_OK);
    return rc;
}

ls_rc ls_history_key(ls_buf *k, const ls_id *run, uint64_t seq, ls_err *err)
{
    return run_key(k, LS_NS_HISTORY, run, 1, seq, err);
}

ls_rc ls_history_prefix(ls_buf *k, const ls_id *run, ls_err *err)
{
    return run_key(k, LS_NS_HISTORY, run, 0, 0, err);
}

ls_rc ls_run_key(ls_buf *k, const ls_id *run, ls_err *err)
{
    return run_key(k, LS_NS_RUN, run, 0, 0, err);
}

ls_rc ls_history_key_parse(const void *key, size_t klen, ls_id *run, uint64_t *seq, ls_err *err)
{
    if (key == NULL || klen != LS_HISTORY_KEY_LEN)
        return ls_err_set(err, LS_ECORRUPT, "history key: %zu bytes, expected %d", klen,
                          LS_HISTORY_KEY_LEN);
    ls_key_reader r;
    ls_store_ns ns;
    ls_id id;
    uint64_t s;
    ls_key_reader_init(&r, key, klen);
    if (ls_key_read_ns(&r, &ns, NULL) != LS_OK || ns != LS_NS_HISTORY)
        return ls_err_set(err, LS_ECORRUPT, "history key: namespace 0x%02x is not history",
                          ((const unsigned char *)key)[0]);
    if (ls_key_read_bytes(&r, id.b, LS_ID_BYTES, NULL) != LS_OK ||
        ls_key_read_u64(&r, &s, NULL) != LS_OK)
        return ls_err_set(err, LS_ECORRUPT, "history key: truncated");
    if (run) *run = id;
    if (seq) *seq = s;
    return LS_OK;
}

/* ---- run records ---- */

ls_rc ls_run_encode(const ls_run_record *r, ls_buf *out, ls_err *err)
{
    assert(r != NULL && out != NULL);
    if (r->status < 1 || r->status > LS_RUN_STATUS_LAST)
        return ls_err_set(err, LS_EINVAL, "run record: unknown status %d", (int)r->status);
    if (r->type == NULL && r->type_len)
        return ls_err_set(err, LS_EINVAL, "run record: NULL type with a non-zero length");
    if (r->name == NULL && r->name_len)
        return ls_err_set(err, LS_EINVAL, "run record: NULL name with a non-zero length");
    size_t fixed = 2 + varint_len(zigzag(r->created_ms)) + varint_len(zigzag(r->updated_ms)) +
                   varint_len(r->last_seq) + varint_len(r->steps_completed) +
                   varint_len(r->attempts_failed) + varint_len(r->type_len) +
                   varint_len(r->name_len) + varint_len(r->version_len);
    if (r->version == NULL && r->version_len)
        return ls_err_set(err, LS_EINVAL, "run record: NULL version with a non-zero length");
    if (r->type_len > SIZE_MAX / 4 - fixed || r->name_len > SIZE_MAX / 4 ||
        r->version_len > SIZE_MAX / 4)
        return ls_err_set(err, LS_EINVAL, "run record: type or name too long");

    unsigned char *p = begin_value(out, fixed + r->type_len + r->name_len + r->version_len, err);
    if (p == NULL) return LS_ENOMEM;
    *p++ = LS_RUN_VERSION;
    *p++ = (unsigned char)r->status;
    p = put_varint(p, zigzag(r->created_ms));
    p = put_varint(p, zigzag(r->updated_ms));
    p = put_varint(p, r->last_seq);
    p = put_varint(p, r->steps_completed);
    p = put_varint(p, r->attempts_failed);
    p = put_bytes(p, r->type, r->type_len);
    p = put_bytes(p, r->name, r->name_len);
    p = put_bytes(p, r->version, r->version_len);
    end_value(out, p);
    return LS_OK;
}

ls_rc ls_run_decode(const void *value, size_t len, ls_run_record *rec, ls_err *err)
{
    assert(rec != NULL && (value != NULL || len == 0));
    reader r = {value, len, 0, "run record"};
    unsigned status = 0;
    uint64_t u;
    const void *s;
    ls_rc rc;

    memset(rec, 0, sizeof *rec);
    unsigned ver = 0;
    if (r.left == 0) return ls_err_set(err, LS_ECORRUPT, "run record: empty value");
    if ((rc = get_u8(&r, &ver, "version", err)) != LS_OK) return rc;
    if (ver != 1 && ver != 2)
        return ls_err_set(err, LS_EFORMAT,
                          "run record: unknown version %u (this build reads 1 and 2)", ver);
    if ((rc = get_u8(&r, &status, "status", err)) != LS_OK) return rc;
    if (status < 1 || status > LS_RUN_STATUS_LAST)
        return ls_err_set(err, LS_ECORRUPT, "run record: unknown status %u", status);
    rec->status = (ls_run_status)status;
    if ((rc = get_varint(&r, &u, "created time", err)) != LS_OK) return rc;
    rec->created_ms = unzigzag(u);
    if ((rc = get_varint(&r, &u, "updated time", err)) != LS_OK) return rc;
    rec->updated_ms = unzigzag(u);
    if ((rc = get_varint(&r, &rec->last_seq, "last seq", err)) != LS_OK) return rc;
    if ((rc = get_u32(&r, &rec->steps_completed, "steps completed", err)) != LS_OK) return rc;
    if ((rc = get_u32(&r, &rec->attempts_failed, "attempts failed", err)) != LS_OK) return rc;
    if ((rc = get_bytes(&r, &s, &rec->type_len, "type", err)) != LS_OK) return rc;
    rec->type = s;
    if ((rc = get_bytes(&r, &s, &rec->name_len, "name", err)) != LS_OK) return rc;
    rec->name = s;
    if (ver == 2) {
        if ((rc = get_bytes(&r, &s, &rec->version_len, "version", err)) != LS_OK) return rc;
        rec->version = s;
    }
    return check_end(&r, err);
}
