/* SPDX-License-Identifier: MIT
 * Audit log writer: records are formatted into a scratch buffer by our own
 * JSON escaper, gathered in a fixed-size buffer and appended with one
 * writev() per flush (O_APPEND), so lines from several processes never
 * interleave. The path is checked for a move or deletion at most once a
 * second when flushing, and reopened. See audit.h. */
#include "ls_config.h"

#include <pthread.h>
#include <time.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "audit.h"
#include "lodestone/ls_alloc.h"

#define BUFFER_MAX     ((size_t)1 << 30)
#define CHECK_EVERY_NS INT64_C(1000000000)
#define RECORD_RESERVE 4096

struct ls_audit {
    char *path;
    int fd;
    dev_t dev;
    ino_t ino;
    unsigned mode;
    const ls_clock *clock;
    size_t limit;
    int64_t interval_ns;
    int64_t last_flush_ns;
    int64_t last_check_ns;
    ls_buf buf;     /* pending records; capacity limit, never grows */
    size_t pending; /* records in buf */
    ls_buf rec;     /* scratch for one record */
    int torn;       /* a short write left a partial line: start with '\n' */
    volatile sig_atomic_t reopen_wanted;
    ls_audit_stats st;
    /* The buffer is shared with the background flusher, when there is one. */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t flusher;
    int has_flusher;
    int stopping;
};

/* ---- JSON formatting ---- */

/* 1: ASCII byte that needs an escape; 2: start of a multi-byte sequence. */
static const unsigned char esc_class[256] = {
    [0x00 ... 0x1f] = 1, ['"'] = 1, ['\\'] = 1, [0x7f] = 1, [0x80 ... 0xff] = 2,
};

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0. Rejects
 * overlong forms, surrogates and code points above U+10FFFF. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xbf;
    size_t len;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4;
    else
        return 0;
    if (n < len) return 0;
    if (c == 0xe0) lo = 0xa0;
    if (c == 0xed) hi = 0x9f;
    if (c == 0xf0) lo = 0x90;
    if (c == 0xf4) hi = 0x8f;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xc0) != 0x80) return 0;
    return len;
}

/* Whether any of 8 bytes needs a look: < 0x20, '"', '\\', 0x7f or >= 0x80
 * (bit tricks from "Bit Twiddling Hacks"; a false alarm only costs the
 * byte loop). */
static int any_special8(const unsigned char *p)
{
    const uint64_t ones = UINT64_C(0x0101010101010101), high = UINT64_C(0x8080808080808080);
    uint64_t x;
    memcpy(&x, p, 8);
    uint64_t q = x ^ (ones * '"'), b = x ^ (ones * '\\'), d = x ^ (ones * 0x7f);
    uint64_t hit =
        ((x - ones * 0x20) & ~x) | ((q - ones) & ~q) | ((b - ones) & ~b) | ((d - ones) & ~d) | x;
    return (hit & high) != 0;
}

static char *put_u(char *o, const char *hex4)
{
    o[0] = '\\';
    o[1] = 'u';
    memcpy(o + 2, hex4, 4);
    return o + 6;
}

/* Writes the escaped form of s (n bytes) at o: at most 6 bytes per input
 * byte. Returns the end. */
static char *escape(char *o, const unsigned char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i = 0;
    while (i < n) {
        size_t run = i;
        while (n - run >= 8 && !any_special8(s + run)) run += 8;
        while (run < n && esc_class[s[run]] == 0) run++;
        memcpy(o, s + i, run - i);
        o += run - i;
        i = run;
        if (i == n) break;
        unsigned char c = s[i];
        if (esc_class[c] == 1) {
            *o++ = '\\';
            switch (c) {
            case '"': *o++ = '"'; break;
            case '\\': *o++ = '\\'; break;
            case '\n': *o++ = 'n'; break;
            case '\r': *o++ = 'r'; break;
            case '\t': *o++ = 't'; break;
            case '\b': *o++ = 'b'; break;
            case '\f': *o++ = 'f'; break;
            default:
                o[0] = 'u';
                o[1] = '0';
                o[2] = '0';
                o[3] = hex[c >> 4];
                o[4] = hex[c & 15];
                o += 5;
            }
            i++;
            continue;
        }
        size_t len = utf8_seq(s + i, n - i);
        if (len == 0) {
            o = put_u(o, "fffd");
            i++;
        } else if (len == 3 && c == 0xe2 && s[i + 1] == 0x80 && (s[i + 2] | 1) == 0xa9) {
            o = put_u(o, s[i + 2] == 0xa8 ? "2028" : "2029"); /* JS line breaks */
            i += 3;
        } else {
            memcpy(o, s + i, len);
            o += len;
            i += len;
        }
    }
    return o;
}

/* Writes v in decimal at o; returns the end. */
static char *put_u64(char *o, uint64_t v)
{
    char tmp[24];
    size_t n = 0;
    do tmp[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    while (n) *o++ = tmp[--n];
    return o;
}

/* decision_us with up to 3 decimals, trailing zeros trimmed. */
static char *put_us(char *o, double us)
{
    if (us >= 9e12) return o + sprintf(o, "%.17g", us);
    int64_t t = llround(us * 1000.0);
    o = put_u64(o, (uint64_t)(t / 1000));
    unsigned frac = (unsigned)(t % 1000);
    if (frac) {
        *o++ = '.';
        *o++ = (char)('0' + frac / 100);
        if (frac % 100) {
            *o++ = (char)('0' + frac / 10 % 10);
            if (frac % 10) *o++ = (char)('0' + frac % 10);
        }
    }
    return o;
}

/* Keys with their punctuation, padded to 16 bytes so that each is copied
 * with one fixed-size move (the buffer always has the room). */
#define KEYW 16
static const struct {
    char text[KEYW];
    unsigned char len;
} keys[] = {
    {",\"request_id\":\"", 15}, {",\"method\":\"", 11}, {",\"path\":\"", 9}, {",\"client\":\"", 11},
    {",\"subject\":\"", 12},    {",\"policy\":\"", 11}, {",\"rule\":\"", 9}, {",\"reason\":\"", 11},
};
enum { K_REQUEST_ID, K_METHOD, K_PATH, K_CLIENT, K_SUBJECT, K_POLICY, K_RULE, K_REASON, K_COUNT };

struct field {
    const char *s; /* NULL: left out */
    size_t n;
    int cut;
};

/* Measures s, cutting it at LS_AUDIT_FIELD_MAX on a character boundary.
 * Returns the worst-case output size of the field. */
static size_t measure(struct field *f, const char *s)
{
    f->s = s;
    f->cut = 0;
    if (s == NULL) return 0;
    size_t n = strnlen(s, LS_AUDIT_FIELD_MAX + 1);
    if (n > LS_AUDIT_FIELD_MAX) {
        n = LS_AUDIT_FIELD_MAX;
        for (int k = 0; k < 3 && n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80; k++) n--;
        f->cut = 1;
    }
    f->n = n;
    return KEYW + n * 6 + 8;
}

static char *put_field(char *o, int k, const struct field *f)
{
    if (f->s == NULL) return o;
    memcpy(o, keys[k].text, KEYW);
    o = escape(o + keys[k].len, (const unsigned char *)f->s, f->n);
    if (f->cut) o = put_u(o, "2026");
    *o++ = '"';
    return o;
}

static ls_rc format_record(const ls_audit_record *r, int64_t ms, ls_buf *b, ls_err *err)
{
    struct field f[K_COUNT];
    size_t need = 160; /* time, decision, status, decision_us, braces */
    need += measure(&f[K_REQUEST_ID], r->request_id);
    need += measure(&f[K_METHOD], r->method);
    need += measure(&f[K_PATH], r->path);
    need += measure(&f[K_CLIENT], r->client);
    need += measure(&f[K_SUBJECT], r->subject);
    need += measure(&f[K_POLICY], r->policy);
    need += measure(&f[K_RULE], r->rule);
    need += measure(&f[K_REASON], r->reason);
    ls_rc rc = ls_buf_reserve(b, need, err);
    if (rc != LS_OK) return rc;

    char *o = (char *)b->ptr + b->len;
    memcpy(o, "{\"time\":\"", 9);
    o = ls_time_format(ms, o + 9) + LS_TIME_TEXTLEN;
    *o++ = '"';
    for (int k = K_REQUEST_ID; k <= K_RULE; k++) o = put_field(o, k, &f[k]);
    if (r->decision == LS_AUDIT_ALLOW) {
        memcpy(o, ",\"decision\":\"allow\"", 19);
        o += 19;
    } else {
        memcpy(o, ",\"decision\":\"deny\"", 18);
        o += 18;
    }
    if (r->status > 0) {
        memcpy(o, ",\"status\":", 10);
        o = put_u64(o + 10, (uint64_t)r->status);
    }
    o = put_field(o, K_REASON, &f[K_REASON]);
    if (r->decision_us >= 0 && isfinite(r->decision_us)) {
        memcpy(o, ",\"decision_us\":", 15);
        o = put_us(o + 15, r->decision_us);
    }
    *o++ = '}';
    *o++ = '\n';
    b->len = (size_t)(o - (char *)b->ptr);
    b->ptr[b->len] = '\0';
    return LS_OK;
}

ls_rc ls_audit_format(const ls_audit_record *r, int64_t time_ms, ls_buf *out, ls_err *err)
{
    return format_record(r, r->time_ms ? r->time_ms : time_ms, out, err);
}

/* ---- the file ---- */

static ls_rc open_file(ls_audit_t *a, int *fd, dev_t *dev, ino_t *ino, ls_err *err)
{
    int f = open(a->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
                 (mode_t)a->mode);
    if (f < 0) {
        int e = errno;
        a->st.last_errno = e;
        ls_rc code = e == EACCES || e == EPERM || e == EROFS ? LS_EPERM : LS_EIO;
        return ls_err_set(err, code, "audit log %s: %s", a->path, strerror(e));
    }
    struct stat st;
    if (fstat(f, &st) != 0) {
        int e = errno;
        a->st.last_errno = e;
        close(f);
        return ls_err_set(err, LS_EIO, "audit log %s: %s", a->path, strerror(e));
    }
    *fd = f;
    *dev = st.st_dev;
    *ino = st.st_ino;
    return LS_OK;
}

static ls_rc reopen_file(ls_audit_t *a, ls_err *err)
{
    int fd = -1;
    dev_t dev = 0;
    ino_t ino = 0;
    ls_rc rc = open_file(a, &fd, &dev, &ino, err);
    if (rc != LS_OK) {
        a->st.write_errors++;
        return rc;
    }
    close(a->fd);
    a->fd = fd;
    a->dev = dev;
    a->ino = ino;
    a->st.reopens++;
    return LS_OK;
}

/* Reopens when asked to, or when the path no longer names our file
 * (checked at most once a second). */
static void check_path(ls_audit_t *a, int64_t now)
{
    if (a->reopen_wanted) {
        a->reopen_wanted = 0;
        a->last_check_ns = now;
        reopen_file(a, NULL);
        return;
    }
    if (now - a->last_check_ns < CHECK_EVERY_NS) return;
    a->last_check_ns = now;
    struct stat st;
    if (stat(a->path, &st) == 0 && st.st_dev == a->dev && st.st_ino == a->ino) return;
    reopen_file(a, NULL);
}

/* One writev() of p (n bytes holding nrec whole records). Returns 0 or the
 * errno of the failure (-1 for a short write). */
static int write_out(ls_audit_t *a, const unsigned char *p, size_t n, size_t nrec)
{
    struct iovec iov[2];
    int cnt = 0;
    if (a->torn) iov[cnt++] = (struct iovec){"\n", 1};
    iov[cnt++] = (struct iovec){(void *)p, n};
    size_t want = n + (size_t)a->torn;
    ssize_t w;
    do w = writev(a->fd, iov, cnt);
    while (w < 0 && errno == EINTR);
    if (w >= 0 && (size_t)w == want) {
        a->st.bytes += (uint64_t)w;
        a->st.flushes++;
        a->torn = 0;
        return 0;
    }
    int e = w < 0 ? errno : -1;
    a->st.write_errors++;
    a->st.last_errno = e;
    if (w > 0) {
        /* Records that reached the file whole are not lost. */
        size_t done = (size_t)w - (size_t)a->torn, whole = 0;
        for (size_t i = 0; i < done && i < n; i++) whole += p[i] == '\n';
        a->st.bytes += (uint64_t)w;
        a->st.dropped += nrec - whole;
        a->torn = 1;
    } else {
        a->st.dropped += nrec;
    }
    return e;
}

static int flush_now(ls_audit_t *a, int64_t now)
{
    a->last_flush_ns = now;
    if (a->buf.len == 0) {
        if (a->reopen_wanted) check_path(a, now);
        return 0;
    }
    check_path(a, now);
    int e = write_out(a, a->buf.ptr, a->buf.len, a->pending);
    ls_buf_clear(&a->buf);
    a->pending = 0;
    return e;
}

/* ---- API ---- */

static void *flusher_main(void *ud);
static ls_rc reopen_locked(ls_audit_t *a, ls_err *err);

ls_rc ls_audit_open(ls_audit_t **out, const char *path, const ls_audit_opts *opts, ls_err *err)
{
    *out = NULL;
    ls_audit_opts o = opts ? *opts : (ls_audit_opts){0};
    if (path == NULL || path[0] == '\0')
        return ls_err_set(err, LS_EINVAL, "audit log: no path given");
    if (o.buffer_size > BUFFER_MAX)
        return ls_err_set(err, LS_EINVAL, "audit log: buffer_size over %zu bytes", BUFFER_MAX);
    if (o.flush_interval_ms < 0)
        return ls_err_set(err, LS_EINVAL, "audit log: negative flush interval");
    if (o.mode > 07777) return ls_err_set(err, LS_EINVAL, "audit log: bad file mode %o", o.mode);

    ls_rc rc = LS_ENOMEM;
    ls_audit_t *a = ls_calloc(1, sizeof *a);
    if (a == NULL) return ls_err_set(err, LS_ENOMEM, "audit log: out of memory");
    pthread_mutex_init(&a->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&a->wake, &ca);
    pthread_condattr_destroy(&ca);
    a->clock = o.clock;
    a->limit = o.buffer_size ? o.buffer_size : LS_AUDIT_BUFFER_DEFAULT;
    a->interval_ns =
        (o.flush_interval_ms ? o.flush_interval_ms : LS_AUDIT_INTERVAL_DEFAULT) * INT64_C(1000000);
    a->mode = o.mode ? o.mode : 0640;
    a->fd = -1; /* no file yet, so ls_audit_close on the paths below has nothing to flush */
    a->path = ls_strdup(path);
    if (a->path == NULL) goto nomem;
    if (ls_buf_reserve(&a->buf, a->limit, err) != LS_OK) goto nomem;
    if (ls_buf_reserve(&a->rec, RECORD_RESERVE, err) != LS_OK) goto nomem;
    rc = open_file(a, &a->fd, &a->dev, &a->ino, err);
    if (rc != LS_OK) goto fail;
    a->last_flush_ns = a->last_check_ns = ls_clock_mono_ns(a->clock);
    if (o.background) {
        if (pthread_create(&a->flusher, NULL, flusher_main, a) != 0) {
            rc = ls_err_set(err, LS_EIO, "audit log: cannot start the flusher thread");
            goto fail;
        }
        a->has_flusher = 1;
    }
    *out = a;
    return LS_OK;

nomem:
    rc = ls_err_set(err, LS_ENOMEM, "audit log: out of memory");
fail:
    ls_audit_close(a);
    return rc;
}

void ls_audit_close(ls_audit_t *a)
{
    if (a == NULL) return;
    if (a->has_flusher) {
        pthread_mutex_lock(&a->lock);
        a->stopping = 1;
        pthread_cond_signal(&a->wake);
        pthread_mutex_unlock(&a->lock);
        pthread_join(a->flusher, NULL);
    }
    if (a->fd >= 0) {
        flush_now(a, ls_clock_mono_ns(a->clock));
        close(a->fd);
    }
    ls_buf_free(&a->buf);
    ls_buf_free(&a->rec);
    ls_free(a->path);
    pthread_cond_destroy(&a->wake);
    pthread_mutex_destroy(&a->lock);
    ls_free(a);
}

static ls_rc write_locked(ls_audit_t *a, const ls_audit_record *r, ls_err *err)
{
    int64_t now = ls_clock_mono_ns(a->clock);
    int64_t ms = r->time_ms ? r->time_ms : ls_clock_wall_ms(a->clock);
    ls_buf_clear(&a->rec);
    ls_rc rc = format_record(r, ms, &a->rec, err);
    if (rc != LS_OK) {
        a->st.dropped++;
        return rc;
    }
    a->st.records++;
    if (a->buf.len + a->rec.len > a->limit) flush_now(a, now);
    if (a->rec.len > a->limit) {
        /* Larger than the whole buffer (now empty): on its own. */
        check_path(a, now);
        write_out(a, a->rec.ptr, a->rec.len, 1);
        a->last_flush_ns = now;
        return LS_OK;
    }
    memcpy(a->buf.ptr + a->buf.len, a->rec.ptr, a->rec.len);
    a->buf.len += a->rec.len;
    a->pending++;
    if (a->buf.len >= a->limit || now - a->last_flush_ns >= a->interval_ns) flush_now(a, now);
    return LS_OK;
}

ls_rc ls_audit_write(ls_audit_t *a, const ls_audit_record *r, ls_err *err)
{
    pthread_mutex_lock(&a->lock);
    ls_rc rc = write_locked(a, r, err);
    pthread_mutex_unlock(&a->lock);
    return rc;
}

static void tick_locked(ls_audit_t *a)
{
    if (a->buf.len == 0 && !a->reopen_wanted) return;
    int64_t now = ls_clock_mono_ns(a->clock);
    if (a->reopen_wanted) check_path(a, now);
    if (a->buf.len && now - a->last_flush_ns >= a->interval_ns) flush_now(a, now);
}

void ls_audit_tick(ls_audit_t *a)
{
    pthread_mutex_lock(&a->lock);
    tick_locked(a);
    pthread_mutex_unlock(&a->lock);
}

/* The background flusher: wakes every interval and flushes what is due, so
 * records reach the file within about one interval even when no more
 * requests come. */
static void *flusher_main(void *ud)
{
    ls_audit_t *a = ud;
    pthread_mutex_lock(&a->lock);
    while (!a->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t ns = ts.tv_nsec + a->interval_ns;
        ts.tv_sec += (time_t)(ns / 1000000000);
        ts.tv_nsec = (long)(ns % 1000000000);
        pthread_cond_timedwait(&a->wake, &a->lock, &ts);
        if (!a->stopping) tick_locked(a);
    }
    pthread_mutex_unlock(&a->lock);
    return NULL;
}

ls_rc ls_audit_flush(ls_audit_t *a, ls_err *err)
{
    pthread_mutex_lock(&a->lock);
    int e = flush_now(a, ls_clock_mono_ns(a->clock));
    pthread_mutex_unlock(&a->lock);
    if (e == 0) return LS_OK;
    return ls_err_set(err, LS_EIO, "audit log %s: write failed: %s", a->path,
                      e > 0 ? strerror(e) : "short write");
}

ls_rc ls_audit_reopen(ls_audit_t *a, ls_err *err)
{
    pthread_mutex_lock(&a->lock);
    ls_rc rc = reopen_locked(a, err);
    pthread_mutex_unlock(&a->lock);
    return rc;
}

static ls_rc reopen_locked(ls_audit_t *a, ls_err *err)
{
    int64_t now = ls_clock_mono_ns(a->clock);
    if (a->buf.len) {
        a->last_flush_ns = now;
        write_out(a, a->buf.ptr, a->buf.len, a->pending);
        ls_buf_clear(&a->buf);
        a->pending = 0;
    }
    a->reopen_wanted = 0;
    a->last_check_ns = now;
    return reopen_file(a, err);
}

void ls_audit_request_reopen(ls_audit_t *a)
{
    a->reopen_wanted = 1;
}

const char *ls_audit_path(const ls_audit_t *a)
{
    return a->path;
}

void ls_audit_get_stats(const ls_audit_t *a, ls_audit_stats *st)
{
    pthread_mutex_lock((pthread_mutex_t *)&a->lock);
    *st = a->st;
    pthread_mutex_unlock((pthread_mutex_t *)&a->lock);
}
