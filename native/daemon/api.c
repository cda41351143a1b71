/* SPDX-License-Identifier: MIT
 * lodestoned's HTTP API. Each request is read whole (up to the body limit)
 * and answered from the engine; a result long poll suspends its connection
 * until the run ends (an engine watch resumes it) or the wait runs out (a
 * reaper thread resumes it), so it never holds an HTTP thread.
 */
#include "ls_config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <dirent.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <microhttpd.h>
#include <sodium.h>

#include "api.h"
#include "lodestone/lodestone.h"
#include "log.h"
#include "ls_json.h"

#if MHD_VERSION < 0x00097002
typedef int MHD_RESULT;
#else
typedef enum MHD_Result MHD_RESULT;
#endif

#define MAX_WAIT_S      300
#define MAX_CONNECTIONS 4096u /* per listener (docs/workflows.md) */

typedef struct req req;

struct lsd_api {
    lsd_api_opts o;
    struct MHD_Daemon *unix_d;
    struct MHD_Daemon *tcp_d;
    int unix_fd;
    pthread_mutex_t mu; /* guards the waiter list, the starting counts */
    /* Secret writes hold it shared, a key rotation (rotate, then reseal
     * every secret) exclusive: a reseal writes back each secret's value as
     * it read it, so a put or delete in between would be undone. */
    pthread_rwlock_t keys_lock;
    req *waiters;
    int starting; /* starts being written (connections suspended for them) */
    pthread_t reaper;
    int reaper_on;
    int stopping;
};

struct req {
    lsd_api *api;
    struct MHD_Connection *conn;
    int tcp;
    int nul; /* its path or query had %00 */
    unsigned char *body;
    size_t len, cap;
    int too_large;
    /* long poll */
    int suspended;
    int resumed;
    int64_t deadline_ms;
    uint64_t watch;
    int watching;
    int fired; /* the watch has fired */
    char *name;
    req *next, *prev;
    /* a start: written while the connection is suspended */
    int starting; /* 1 while its write is on its way, 2 once it has landed */
    int start_suspended;
    double start_wait; /* its ?wait=, or -1 without */
    ls_rc start_rc;
    ls_err start_err;
    ls_buf start_out;
};

/* ---- responses ---- */

/* Sends body, with the header hname: hval too unless hname is NULL. */
static MHD_RESULT send_body_with(struct MHD_Connection *c, unsigned status, const char *ctype,
                                 const void *body, size_t len, const char *hname, const char *hval)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (r == NULL) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", ctype);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    if (hname) MHD_add_response_header(r, hname, hval);
    MHD_RESULT ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static MHD_RESULT send_body(struct MHD_Connection *c, unsigned status, const char *ctype,
                            const void *body, size_t len)
{
    return send_body_with(c, status, ctype, body, len, NULL, NULL);
}

static MHD_RESULT send_json(struct MHD_Connection *c, unsigned status, const ls_buf *b)
{
    return send_body(c, status, "application/json", b->ptr, b->len);
}

/* Sends o as the JSON body and releases it; o NULL (out of memory) or a
 * failed dump closes the connection. */
static MHD_RESULT send_obj(struct MHD_Connection *c, unsigned status, json_t *o)
{
    ls_buf b = LS_BUF_INIT;
    MHD_RESULT ret = MHD_NO;
    if (o && ls_json_dump(o, &b, NULL) == LS_OK) ret = send_json(c, status, &b);
    json_decref(o);
    ls_buf_free(&b);
    return ret;
}

static MHD_RESULT send_error(struct MHD_Connection *c, unsigned status, const char *code,
                             const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static MHD_RESULT send_error_with(struct MHD_Connection *c, unsigned status, const char *code,
                                  const char *hname, const char *hval, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* Copies s into out (cap bytes), each byte that is not part of a valid
 * UTF-8 sequence written as \xNN: a message that quotes a request's bytes
 * (a path's %FF, a cut multi-byte character) stays JSON text. */
static void utf8_escape(char *out, size_t cap, const char *s)
{
    size_t w = 0, n = strlen(s);
    for (size_t i = 0; i < n;) {
        unsigned char b = (unsigned char)s[i];
        size_t len = b < 0x80 ? 1 : b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2;
        if (len == 1 || (i + len <= n && ls_json_utf8_valid(s + i, len))) {
            if (w + len >= cap) break;
            memcpy(out + w, s + i, len);
            w += len;
            i += len;
        } else {
            if (w + 4 >= cap) break;
            snprintf(out + w, 5, "\\x%02x", b);
            w += 4;
            i++;
        }
    }
    out[w] = '\0';
}

static MHD_RESULT vsend_error(struct MHD_Connection *c, unsigned status, const char *code,
                              const char *hname, const char *hval, const char *fmt, va_list ap)
    __attribute__((format(printf, 6, 0)));

static MHD_RESULT vsend_error(struct MHD_Connection *c, unsigned status, const char *code,
                              const char *hname, const char *hval, const char *fmt, va_list ap)
{
    char msg[1024], text[4 * sizeof msg];
    vsnprintf(msg, sizeof msg, fmt, ap);
    utf8_escape(text, sizeof text, msg);
    json_t *o = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", text);
    ls_buf b = LS_BUF_INIT;
    MHD_RESULT ret = MHD_NO;
    if (o && ls_json_dump(o, &b, NULL) == LS_OK)
        ret = send_body_with(c, status, "application/json", b.ptr, b.len, hname, hval);
    json_decref(o);
    ls_buf_free(&b);
    return ret;
}

static MHD_RESULT send_error(struct MHD_Connection *c, unsigned status, const char *code,
                             const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    MHD_RESULT ret = vsend_error(c, status, code, NULL, NULL, fmt, ap);
    va_end(ap);
    return ret;
}

/* An error with a header: Allow on a 405, WWW-Authenticate on a 401. */
static MHD_RESULT send_error_with(struct MHD_Connection *c, unsigned status, const char *code,
                                  const char *hname, const char *hval, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    MHD_RESULT ret = vsend_error(c, status, code, hname, hval, fmt, ap);
    va_end(ap);
    return ret;
}

/* GET, or HEAD: a GET whose body MHD leaves out. */
static int is_get(const char *method)
{
    return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
}

/* 405 for a path that takes other methods, listed in Allow (RFC 9110). */
static MHD_RESULT not_allowed(struct MHD_Connection *c, const char *method, const char *url,
                              const char *allow)
{
    return send_error_with(c, 405, "method_not_allowed", "Allow", allow,
                           "%.20s is not allowed on %.200s; it takes %s", method, url, allow);
}

/* Maps an engine error to a status and code. */
static MHD_RESULT send_rc(struct MHD_Connection *c, ls_rc rc, const ls_err *err)
{
    const char *msg = ls_err_text(err);
    switch (rc) {
    case LS_ENOTFOUND: return send_error(c, 404, "not_found", "%s", msg);
    case LS_EINVAL: return send_error(c, 400, "bad_request", "%s", msg);
    case LS_EBUSY: return send_error(c, 503, "unavailable", "%s", msg);
    case LS_ESTATE: return send_error(c, 409, "conflict", "%s", msg);
    default:
        lsd_log(LS_FLOW_LOG_ERROR, NULL, "request failed: %s", msg);
        return send_error(c, 500, "internal", "%s", msg);
    }
}

/* ---- long polls ---- */

/* Makes r a long poll until wait seconds from now: the reaper resumes it
 * then, or when stopping. Caller holds a->mu and suspends r's connection. */
static void waiter_link(lsd_api *a, req *r, double wait)
{
    r->watching = 1;
    r->suspended = 1;
    r->deadline_ms = ls_clock_wall_ms(NULL) + (int64_t)(wait * 1000);
    r->next = a->waiters;
    r->prev = NULL;
    if (a->waiters) a->waiters->prev = r;
    a->waiters = r;
}

static void waiter_unlink(lsd_api *a, req *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else if (a->waiters == r)
        a->waiters = r->next;
    if (r->next) r->next->prev = r->prev;
    r->next = r->prev = NULL;
}

/* Engine watch callback: the run ended. Runs on an engine thread. */
static void on_run_end(void *ud)
{
    req *r = ud;
    lsd_api *a = r->api;
    pthread_mutex_lock(&a->mu);
    r->fired = 1;
    if (r->suspended && !r->resumed) {
        r->resumed = 1;
        r->watching = 0;
        waiter_unlink(a, r);
        MHD_resume_connection(r->conn);
    }
    pthread_mutex_unlock(&a->mu);
}

static void *reaper_main(void *p)
{
    lsd_api *a = p;
    for (;;) {
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
        int64_t now = ls_clock_wall_ms(NULL);
        pthread_mutex_lock(&a->mu);
        int stopping = a->stopping;
        req *r = a->waiters;
        while (r) {
            req *next = r->next;
            if (stopping || r->deadline_ms <= now) {
                r->resumed = 1;
                waiter_unlink(a, r);
                MHD_resume_connection(r->conn);
            }
            r = next;
        }
        pthread_mutex_unlock(&a->mu);
        if (stopping) break;
    }
    return NULL;
}

/* ---- URLs ---- */

/* Per connection (MHD's socket context): whether the request being read
 * had %00 in its path or query, which the unescaper below leaves as is. */
typedef struct {
    int nul;
} conn_state;

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    (void)cls;
    (void)c;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        *socket_context = calloc(1, sizeof(conn_state));
    } else {
        free(*socket_context);
        *socket_context = NULL;
    }
}

static int hex_digit(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* Decodes %HH in a path, a query name or value, as MHD does, except %00:
 * a NUL would end the text there (POST /v1/workflows/hello%00/cancel read
 * as a start of hello). That one is kept and its request refused. */
static size_t unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    char *w = s;
    const char *p = s;
    while (*p) {
        int hi = p[0] == '%' ? hex_digit(p[1]) : -1, lo = hi >= 0 ? hex_digit(p[2]) : -1;
        if (lo < 0) {
            *w++ = *p++;
        } else if (hi == 0 && lo == 0) {
            const union MHD_ConnectionInfo *ci =
                MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
            conn_state *cs = ci ? ci->socket_context : NULL;
            if (cs) cs->nul = 1;
            *w++ = *p++;
        } else {
            *w++ = (char)(hi * 16 + lo);
            p += 3;
        }
    }
    *w = '\0';
    return (size_t)(w - s);
}

/* Whether the request has %00 (a flag the unescaper set, cleared here);
 * -1 when the connection has no state to tell (it was out of memory). */
static int take_nul(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    conn_state *cs = ci ? ci->socket_context : NULL;
    if (cs == NULL) return -1;
    int nul = cs->nul;
    cs->nul = 0;
    return nul;
}

/* ---- handlers ---- */

/* The wait query parameter: 0 when absent; -1 when not 0..MAX_WAIT_S. */
static double parse_wait(struct MHD_Connection *c)
{
    const char *w = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "wait");
    if (w == NULL) return 0;
    /* Decimal seconds only: strtod also reads " 5", "0x10", "1e2" and "inf". */
    if (*w == '\0' || strspn(w, "0123456789.") != strlen(w)) return -1;
    char *end;
    double wait = strtod(w, &end);
    if (*end != '\0' || !(wait >= 0) || wait > MAX_WAIT_S) return -1;
    return wait;
}

/* The query parameters the API reads. */
static const char *const QUERY_ARGS[] = {"wait", "limit", "status", "type", "cursor"};
#define N_QUERY_ARGS (sizeof QUERY_ARGS / sizeof QUERY_ARGS[0])

static MHD_RESULT count_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    (void)value;
    unsigned *n = cls;
    /* MHD looks parameters up in any case: so does the count. */
    for (size_t i = 0; i < N_QUERY_ARGS; i++)
        if (strcasecmp(key, QUERY_ARGS[i]) == 0) n[i]++;
    return MHD_YES;
}

/* A query parameter the API reads that is given more than once (which one
 * was meant? MHD would answer the first), or NULL. */
static const char *repeated_arg(struct MHD_Connection *c)
{
    unsigned n[N_QUERY_ARGS] = {0};
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, count_arg, n);
    for (size_t i = 0; i < N_QUERY_ARGS; i++)
        if (n[i] > 1) return QUERY_ARGS[i];
    return NULL;
}

static MHD_RESULT bad_wait(struct MHD_Connection *c)
{
    const char *w = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "wait");
    return send_error(c, 400, "bad_request",
                      "wait: must be a number of seconds from 0 to %d, got \"%.40s\"", MAX_WAIT_S,
                      w ? w : "");
}

static MHD_RESULT h_result(lsd_api *a, req *r, struct MHD_Connection *c, const char *name)
{
    ls_buf out = LS_BUF_INIT;
    ls_err err;
    int done = 0;
    size_t nlen = strlen(name);
    double wait = parse_wait(c);
    if (wait < 0) return bad_wait(c);
    if (!r->suspended && wait > 0 && !a->stopping) {
        /* Watch first: an unfinished run suspends the connection without
         * reading anything; an ended one is answered below. */
        ls_rc rc = ls_flow_watch(a->o.flow, name, nlen, on_run_end, r, &r->watch, &err);
        if (rc == LS_OK) {
            pthread_mutex_lock(&a->mu);
            if (!r->fired && a->stopping) {
                /* Stopping since the check above: the reaper may have made
                 * its last pass, so answer now (and drop the watch below). */
                r->watching = 1;
            } else if (!r->fired) {
                r->conn = c;
                waiter_link(a, r, wait);
                MHD_suspend_connection(c);
                pthread_mutex_unlock(&a->mu);
                return MHD_YES;
            }
            pthread_mutex_unlock(&a->mu); /* it ended already */
        } else if (rc != LS_EEXIST) {
            return send_rc(c, rc, &err);
        }
    }
    if (r->watching) {
        /* Resumed by the wait running out: stop watching. */
        ls_flow_unwatch(a->o.flow, r->watch);
        r->watching = 0;
    }
    ls_rc rc = ls_flow_result(a->o.flow, name, nlen, &out, &done, &err);
    MHD_RESULT ret = rc == LS_OK ? send_json(c, done ? 200 : 202, &out) : send_rc(c, rc, &err);
    ls_buf_free(&out);
    return ret;
}

/* ls_flow_start_async's callback: the start is durable (or failed). Runs
 * on the engine's committer, or inside the call that started it. */
static void on_started(void *ud, ls_rc rc, const ls_err *err)
{
    req *r = ud;
    lsd_api *a = r->api;
    /* start_async may still suspend the connection after this look (until
     * it sees starting == 2, set below): whether to resume it is decided
     * again under the lock that sets it. */
    pthread_mutex_lock(&a->mu);
    int suspended = r->start_suspended; /* (only this call clears it) */
    pthread_mutex_unlock(&a->mu);
    /* A start that asks for its result is answered as a result request for
     * the new run (h_start sees r->name). On a suspended connection, watch
     * the run from here, so that the connection stays suspended until the
     * run ends (one resume instead of two). */
    int watched = 0;
    const char *id;
    size_t idlen;
    if (rc == LS_OK && r->start_wait >= 0 &&
        ls_json_peek_string((const char *)r->start_out.ptr, r->start_out.len, "id", &id, &idlen) ==
            LS_OK &&
        (r->name = strndup(id, idlen)) != NULL && suspended && r->start_wait > 0)
        watched = ls_flow_watch(a->o.flow, r->name, idlen, on_run_end, r, &r->watch, NULL) == LS_OK;
    pthread_mutex_lock(&a->mu);
    r->start_rc = rc;
    if (err) r->start_err = *err;
    r->starting = 2;
    a->starting--;
    if (watched) r->watching = 1;
    if (watched && !r->fired && !a->stopping) {
        r->start_suspended = 0; /* a long poll from here */
        waiter_link(a, r, r->start_wait);
    } else if (r->start_suspended) { /* (now: suspended since the look above, or before) */
        r->start_suspended = 0;
        MHD_resume_connection(r->conn);
    }
    pthread_mutex_unlock(&a->mu);
}

/* Answers a start done in this call (created 1) or that found the run of
 * its name (created 0): the run's object out, or with ?wait=, its result
 * (answered as GET .../result?wait=S). */
static MHD_RESULT answer_start(lsd_api *a, req *r, struct MHD_Connection *c, int created,
                               const ls_buf *out)
{
    if (MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "wait") == NULL)
        return send_json(c, created ? 201 : 200, out);
    const char *id;
    size_t idlen;
    ls_err err;
    json_t *run = NULL;
    if (ls_json_peek_string((const char *)out->ptr, out->len, "id", &id, &idlen) == LS_OK)
        r->name = strndup(id, idlen);
    else if (ls_json_parse((const char *)out->ptr, out->len, &run, &err) == LS_OK &&
             json_is_string(json_object_get(run, "id")))
        r->name = strdup(json_string_value(json_object_get(run, "id")));
    json_decref(run);
    return r->name ? h_result(a, r, c, r->name)
                   : send_error(c, 500, "internal", "start: no id in the run");
}

/* Answers a start whose write has landed, as h_start answers one (one that
 * asked for its result has r->name, and is answered by h_result). */
static MHD_RESULT started(lsd_api *a, req *r, struct MHD_Connection *c)
{
    if (r->name) return h_result(a, r, c, r->name);
    if (r->start_rc != LS_OK) return send_rc(c, r->start_rc, &r->start_err);
    if (r->start_wait < 0) return send_json(c, 201, &r->start_out);
    return send_error(c, 500, "internal", "start: no id in the run");
}

/* Starts a run without holding this thread for its write: the connection
 * is suspended until the start has landed (a name whose run exists is
 * answered at once). Returns 0 when it cannot go that way (the API is
 * stopping): start it the waiting way. */
static int start_async(lsd_api *a, req *r, struct MHD_Connection *c, const char *type,
                       const char *name, size_t nlen, const char *input, size_t ilen,
                       MHD_RESULT *ret)
{
    /* ?wait= (checked by the caller), or -1 without it */
    r->start_wait =
        MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "wait") ? parse_wait(c) : -1;
    pthread_mutex_lock(&a->mu);
    int stopping = a->stopping;
    if (!stopping) {
        a->starting++;
        r->starting = 1;
    }
    pthread_mutex_unlock(&a->mu);
    if (stopping) return 0;
    ls_err err;
    int created = 0;
    /* (the input is ls_json_dump's text: h_start wrote it) */
    ls_rc rc =
        ls_flow_start_async(a->o.flow, type, strlen(type), name, nlen, input, ilen,
                            LS_FLOW_INPUT_DUMPED, &r->start_out, &created, on_started, r, &err);
    pthread_mutex_lock(&a->mu);
    if (rc != LS_OK || !created) { /* refused, or the name's run exists: never called back */
        a->starting--;
        r->starting = 0;
    } else if (r->starting == 1) {
        r->start_suspended = 1;
        MHD_suspend_connection(c);
        pthread_mutex_unlock(&a->mu);
        *ret = MHD_YES;
        return 1;
    }
    pthread_mutex_unlock(&a->mu);
    if (rc == LS_ENOTFOUND)
        *ret = send_error(c, 404, "unknown_type", "%s", ls_err_text(&err));
    else if (rc != LS_OK)
        *ret = send_rc(c, rc, &err);
    else if (!created)
        *ret = answer_start(a, r, c, 0, &r->start_out); /* the run of that name */
    else
        *ret = started(a, r, c); /* landed already: written by this thread */
    return 1;
}

static MHD_RESULT h_start(lsd_api *a, req *r, struct MHD_Connection *c, const char *type)
{
    /* POST ...?wait=S came back after its long poll: answer the result. */
    if (r->name) return h_result(a, r, c, r->name);
    /* Resumed once its start landed. */
    if (r->starting == 2) return started(a, r, c);
    if (parse_wait(c) < 0) return bad_wait(c); /* before starting anything */
    const char *name = NULL, *input = NULL;
    size_t nlen = 0, ilen = 0;
    json_t *body = NULL;
    ls_buf in = LS_BUF_INIT, out = LS_BUF_INIT;
    ls_err err;
    if (r->len) {
        if (ls_json_parse((const char *)r->body, r->len, &body, &err) != LS_OK)
            return send_error(c, 400, "bad_request", "body: %s", ls_err_text(&err));
        if (!json_is_object(body)) {
            json_decref(body);
            return send_error(c, 400, "bad_request",
                              "body: must be an object {\"id\"?: string, \"input\"?: any}");
        }
        const char *k;
        json_t *v;
        json_object_foreach(body, k, v)
        {
            if (strcmp(k, "id") == 0) {
                if (!json_is_string(v)) {
                    json_decref(body);
                    return send_error(c, 400, "bad_request", "id: must be a string");
                }
                name = json_string_value(v);
                nlen = json_string_length(v);
                if (nlen == 0) {
                    /* Not "no id": a client that sends "" twice must not
                     * get two runs. */
                    json_decref(body);
                    return send_error(c, 400, "bad_request",
                                      "id: must not be empty (leave it out for a fresh id)");
                }
            } else if (strcmp(k, "input") == 0) {
                if (ls_json_dump(v, &in, &err) != LS_OK) {
                    json_decref(body);
                    return send_rc(c, err.code, &err);
                }
                input = (const char *)in.ptr;
                ilen = in.len;
            } else {
                MHD_RESULT ret = send_error(
                    c, 400, "bad_request", "body: unknown field \"%.60s\" (expected id, input)", k);
                json_decref(body);
                ls_buf_free(&in);
                return ret;
            }
        }
    }
    MHD_RESULT ret;
    if (start_async(a, r, c, type, name, nlen, input, ilen, &ret)) {
        json_decref(body);
        ls_buf_free(&in);
        return ret;
    }
    int created = 0;
    ls_rc rc =
        ls_flow_start(a->o.flow, type, strlen(type), name, nlen, input, ilen, &out, &created, &err);
    json_decref(body);
    ls_buf_free(&in);
    if (rc == LS_ENOTFOUND)
        ret = send_error(c, 404, "unknown_type", "%s", ls_err_text(&err));
    else if (rc != LS_OK)
        ret = send_rc(c, rc, &err);
    else
        ret = answer_start(a, r, c, created, &out);
    ls_buf_free(&out);
    return ret;
}

static MHD_RESULT h_list(lsd_api *a, struct MHD_Connection *c)
{
    const char *status = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "status");
    const char *type = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "type");
    const char *limit = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "limit");
    const char *cursor = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "cursor");
    unsigned lim = 0;
    if (limit) {
        char *end;
        unsigned long v = strtoul(limit, &end, 10); /* (digits only: it reads " +5") */
        if (*limit == '\0' || strspn(limit, "0123456789") != strlen(limit) || *end != '\0' ||
            v == 0 || v > 1000)
            return send_error(c, 400, "bad_request",
                              "limit: must be a whole number from 1 to 1000, got \"%.40s\"", limit);
        lim = (unsigned)v;
    }
    ls_buf out = LS_BUF_INIT;
    ls_err err;
    ls_rc rc = ls_flow_list(a->o.flow, status, type, lim, cursor, &out, &err);
    MHD_RESULT ret = rc == LS_OK ? send_json(c, 200, &out) : send_rc(c, rc, &err);
    ls_buf_free(&out);
    return ret;
}

typedef ls_rc (*view_fn)(ls_flow_t *, const char *, size_t, ls_buf *, ls_err *);

static MHD_RESULT h_view(lsd_api *a, struct MHD_Connection *c, const char *name, view_fn fn)
{
    ls_buf out = LS_BUF_INIT;
    ls_err err;
    ls_rc rc = fn(a->o.flow, name, strlen(name), &out, &err);
    MHD_RESULT ret = rc == LS_OK ? send_json(c, 200, &out) : send_rc(c, rc, &err);
    ls_buf_free(&out);
    return ret;
}

typedef struct {
    json_t *arr;
} secret_list;

static int on_secret(void *ud, const char *name, size_t len, int64_t updated_ms)
{
    secret_list *l = ud;
    char ts[LS_TIME_TEXTLEN + 1];
    json_array_append_new(l->arr, json_pack("{s:s%,s:s}", "name", name, len, "updated_at",
                                            ls_time_format(updated_ms, ts)));
    return 0;
}

static MHD_RESULT h_secrets(lsd_api *a, req *r, struct MHD_Connection *c, const char *url,
                            const char *method, const char *name)
{
    ls_err err;
    ls_rc rc;
    char ts[LS_TIME_TEXTLEN + 1];
    if (name == NULL) {
        if (!is_get(method)) return not_allowed(c, method, url, "GET, HEAD");
        secret_list l = {json_array()};
        rc = ls_vault_secret_list_info(a->o.store, on_secret, &l, &err);
        if (rc != LS_OK) {
            json_decref(l.arr);
            return send_rc(c, rc, &err);
        }
        return send_obj(c, 200, json_pack("{s:o}", "secrets", l.arr));
    }
    if (strcmp(method, "PUT") == 0) {
        if (r->len == 0)
            return send_error(c, 400, "bad_request", "body: the secret's value is empty");
        pthread_rwlock_rdlock(&a->keys_lock);
        rc = ls_vault_secret_put(a->o.vault, a->o.store, name, r->body, r->len, &err);
        pthread_rwlock_unlock(&a->keys_lock);
        sodium_memzero(r->body, r->len);
        if (rc != LS_OK) return send_rc(c, rc, &err);
        lsd_log(LS_FLOW_LOG_INFO, NULL, "secret \"%s\" set", name);
        return send_obj(c, 200,
                        json_pack("{s:s,s:s}", "name", name, "updated_at",
                                  ls_time_format(ls_clock_wall_ms(NULL), ts)));
    }
    if (strcmp(method, "DELETE") == 0) {
        pthread_rwlock_rdlock(&a->keys_lock);
        rc = ls_vault_secret_delete(a->o.store, name, &err);
        pthread_rwlock_unlock(&a->keys_lock);
        if (rc == LS_ENOTFOUND)
            return send_error(c, 404, "not_found", "no secret named \"%.200s\"", name);
        if (rc != LS_OK) return send_rc(c, rc, &err);
        lsd_log(LS_FLOW_LOG_INFO, NULL, "secret \"%s\" deleted", name);
        return send_obj(c, 200, json_pack("{s:s,s:b}", "name", name, "deleted", 1));
    }
    return not_allowed(c, method, url, "PUT, DELETE");
}

/* Bytes in the store's files (its size on disk), or -1. */
static long long dir_bytes(const char *dir)
{
    if (dir == NULL) return -1;
    DIR *d = opendir(dir);
    if (d == NULL) return -1;
    long long total = 0;
    char path[4096];
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) total += (long long)st.st_size;
    }
    closedir(d);
    return total;
}

/* The store answers a read (a key that does not exist is an answer). */
static const char *store_state(lsd_api *a, ls_err *err)
{
    ls_buf v = LS_BUF_INIT;
    static const char probe[] = {0x00, 'h', 'e', 'a', 'l', 't', 'h'};
    ls_rc rc = ls_store_get(a->o.store, probe, sizeof probe, &v, err);
    ls_buf_free(&v);
    return rc == LS_OK || rc == LS_ENOTFOUND ? "ok" : "error";
}

static MHD_RESULT h_health(lsd_api *a, struct MHD_Connection *c)
{
    ls_flow_stats s;
    ls_flow_get_stats(a->o.flow, &s);
    ls_err err = {0};
    const char *store = a->o.store ? store_state(a, &err) : "unknown";
    int healthy = !a->stopping && strcmp(store, "error") != 0 && s.workers_alive > 0;
    json_t *o = json_pack("{s:s,s:s,s:{s:s},s:{s:i,s:i,s:i},s:I,s:I,s:I,s:i}", "status",
                          a->stopping ? "stopping"
                          : healthy   ? "ok"
                                      : "degraded",
                          "version", ls_version(), "store", "state", store, "workers", "configured",
                          (int)s.workers, "alive", (int)s.workers_alive, "busy",
                          (int)s.workers_busy, "runs_active", (json_int_t)s.runs_active,
                          "runs_queued", (json_int_t)s.runs_queued, "timers", (json_int_t)s.timers,
                          "workflow_load_errors", (int)lls_runner_error_count(a->o.runner));
    if (o && strcmp(store, "error") == 0)
        json_object_set_new(json_object_get(o, "store"), "error", json_string(ls_err_text(&err)));
    return send_obj(c, healthy ? 200 : 503, o);
}

/* A Prometheus label value: \\ " and newlines escaped. */
static void put_label(ls_buf *out, const char *v)
{
    for (const char *p = v; *p; p++) {
        if (*p == '"' || *p == '\\') ls_buf_putc(out, '\\', NULL);
        if (*p == '\n') {
            ls_buf_append(out, "\\n", 2, NULL);
            continue;
        }
        ls_buf_putc(out, (unsigned char)*p, NULL);
    }
}

/* Runs by type and the step duration histogram, in Prometheus text. */
static void flow_metrics(lsd_api *a, const ls_flow_stats *s, ls_buf *out)
{
    ls_buf tj = LS_BUF_INIT;
    json_t *types = NULL;
    if (ls_flow_type_stats(a->o.flow, &tj, NULL) == LS_OK)
        ls_json_parse((const char *)tj.ptr, tj.len, &types, NULL);
    ls_buf_free(&tj);
    ls_buf_printf(out, NULL,
                  "# HELP lodestone_type_runs_total Runs by workflow type: started, and ended by "
                  "status.\n# TYPE lodestone_type_runs_total counter\n");
    const char *type;
    json_t *counts;
    json_object_foreach(types, type, counts)
    {
        const char *what;
        json_t *n;
        json_object_foreach(counts, what, n)
        {
            ls_buf_printf(out, NULL, "lodestone_type_runs_total{type=\"");
            put_label(out, type);
            ls_buf_printf(out, NULL, "\",event=\"%s\"} %lld\n", what,
                          (long long)json_integer_value(n));
        }
    }
    json_decref(types);
    ls_buf_printf(out, NULL,
                  "# HELP lodestone_step_duration_seconds How long step attempts' code ran.\n"
                  "# TYPE lodestone_step_duration_seconds histogram\n");
    for (int i = 0; i < LS_FLOW_STEP_NBUCKETS; i++)
        ls_buf_printf(out, NULL, "lodestone_step_duration_seconds_bucket{le=\"%g\"} %llu\n",
                      LS_FLOW_STEP_BUCKETS[i], (unsigned long long)s->step_hist[i]);
    ls_buf_printf(out, NULL,
                  "lodestone_step_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
                  "lodestone_step_duration_seconds_sum %.6f\n"
                  "lodestone_step_duration_seconds_count %llu\n",
                  (unsigned long long)s->step_count, (double)s->step_sum_us / 1e6,
                  (unsigned long long)s->step_count);
    long long bytes = dir_bytes(a->o.store_dir);
    ls_buf_printf(out, NULL,
                  "# HELP lodestone_workers Worker threads running workflow code.\n"
                  "# TYPE lodestone_workers gauge\nlodestone_workers %u\n"
                  "# HELP lodestone_workers_busy Workers running an activation now.\n"
                  "# TYPE lodestone_workers_busy gauge\nlodestone_workers_busy %u\n"
                  "# HELP lodestone_worker_busy_seconds_total Time workers spent running "
                  "activations (utilisation: its rate over lodestone_workers).\n"
                  "# TYPE lodestone_worker_busy_seconds_total counter\n"
                  "lodestone_worker_busy_seconds_total %.6f\n",
                  s->workers_alive, s->workers_busy, (double)s->busy_ns / 1e9);
    if (bytes >= 0)
        ls_buf_printf(out, NULL,
                      "# HELP lodestone_store_bytes Size of the store's files on disk.\n"
                      "# TYPE lodestone_store_bytes gauge\nlodestone_store_bytes %lld\n",
                      bytes);
}

/* ---- schedules ---- */

static void schedule_metrics(lsd_api *a, ls_buf *out)
{
    ls_flow_schedule_stats s;
    ls_flow_schedule_get_stats(a->o.flow, &s);
    ls_buf_printf(
        out, NULL,
        "# HELP lodestone_schedules Schedules defined (workflow files and API).\n"
        "# TYPE lodestone_schedules gauge\nlodestone_schedules %llu\n"
        "# HELP lodestone_schedule_fires_total Schedule fires since the daemon started, by "
        "outcome: started a run; skipped (overlap: the previous run still ran); missed (passed "
        "over: downtime with catchup, a late wake-up); failed (the engine refused the start).\n"
        "# TYPE lodestone_schedule_fires_total counter\n"
        "lodestone_schedule_fires_total{outcome=\"started\"} %llu\n"
        "lodestone_schedule_fires_total{outcome=\"skipped\"} %llu\n"
        "lodestone_schedule_fires_total{outcome=\"missed\"} %llu\n"
        "lodestone_schedule_fires_total{outcome=\"failed\"} %llu\n",
        (unsigned long long)s.schedules, (unsigned long long)s.fires_started,
        (unsigned long long)s.fires_skipped, (unsigned long long)s.fires_missed,
        (unsigned long long)s.fires_failed);
}

/* GET|POST /v1/schedules, GET|DELETE /v1/schedules/{name} (name NULL for
 * the collection). POST is an upsert: 201 when new, 200 otherwise. */
static MHD_RESULT h_schedules(lsd_api *a, req *r, struct MHD_Connection *c, const char *url,
                              const char *method, const char *name)
{
    ls_buf out = LS_BUF_INIT;
    ls_err err;
    ls_rc rc;
    int created = 0;
    unsigned status = 200;
    int get = is_get(method);
    if (name == NULL && get) {
        rc = ls_flow_schedule_list(a->o.flow, &out, &err);
    } else if (name == NULL && strcmp(method, "POST") == 0) {
        if (r->len == 0) return send_error(c, 400, "bad_request", "body: a schedule is required");
        rc = ls_flow_schedule_put(a->o.flow, (const char *)r->body, r->len, LS_FLOW_SCHEDULE_API,
                                  &out, &created, &err);
        if (rc == LS_ENOTFOUND) return send_error(c, 404, "unknown_type", "%s", ls_err_text(&err));
        status = created ? 201 : 200;
    } else if (name && get) {
        rc = ls_flow_schedule_get(a->o.flow, name, strlen(name), &out, &err);
    } else if (name && strcmp(method, "DELETE") == 0) {
        rc = ls_flow_schedule_delete(a->o.flow, name, strlen(name), LS_FLOW_SCHEDULE_API, &err);
        if (rc == LS_OK)
            return send_obj(c, 200, json_pack("{s:s,s:b}", "name", name, "deleted", 1));
    } else {
        return not_allowed(c, method, url, name ? "GET, HEAD, DELETE" : "GET, HEAD, POST");
    }
    MHD_RESULT ret = rc == LS_OK ? send_json(c, status, &out) : send_rc(c, rc, &err);
    ls_buf_free(&out);
    return ret;
}

static MHD_RESULT h_metrics(lsd_api *a, struct MHD_Connection *c)
{
    ls_flow_stats s;
    ls_flow_get_stats(a->o.flow, &s);
    ls_buf out = LS_BUF_INIT;
    ls_buf_printf(
        &out, NULL,
        "# HELP lodestone_runs_active Unfinished workflow runs.\n"
        "# TYPE lodestone_runs_active gauge\nlodestone_runs_active %llu\n"
        "# HELP lodestone_runs_queued Runs waiting for a worker.\n"
        "# TYPE lodestone_runs_queued gauge\nlodestone_runs_queued %llu\n"
        "# HELP lodestone_timers Durable timers pending.\n"
        "# TYPE lodestone_timers gauge\nlodestone_timers %llu\n"
        "# HELP lodestone_runs_started_total Runs started since the daemon started.\n"
        "# TYPE lodestone_runs_started_total counter\nlodestone_runs_started_total %llu\n"
        "# HELP lodestone_runs_ended_total Runs ended since the daemon started, by status.\n"
        "# TYPE lodestone_runs_ended_total counter\n"
        "lodestone_runs_ended_total{status=\"completed\"} %llu\n"
        "lodestone_runs_ended_total{status=\"failed\"} %llu\n"
        "lodestone_runs_ended_total{status=\"cancelled\"} %llu\n"
        "lodestone_runs_ended_total{status=\"terminated\"} %llu\n"
        "# HELP lodestone_runs_paused Runs paused by a step that used up its attempts.\n"
        "# TYPE lodestone_runs_paused gauge\nlodestone_runs_paused %llu\n"
        "# HELP lodestone_steps_total Step attempts recorded, by outcome.\n"
        "# TYPE lodestone_steps_total counter\n"
        "lodestone_steps_total{outcome=\"completed\"} %llu\n"
        "lodestone_steps_total{outcome=\"failed\"} %llu\n"
        "# HELP lodestone_store_writes_total Synced store writes of transitions (group commits).\n"
        "# TYPE lodestone_store_writes_total counter\nlodestone_store_writes_total %llu\n"
        "# HELP lodestone_transitions_total Run transitions written (events, record, indexes).\n"
        "# TYPE lodestone_transitions_total counter\nlodestone_transitions_total %llu\n"
        "# HELP lodestone_activations_total Activations run by workers.\n"
        "# TYPE lodestone_activations_total counter\nlodestone_activations_total %llu\n"
        "# HELP lodestone_workflow_load_errors Workflow files that failed to load.\n"
        "# TYPE lodestone_workflow_load_errors gauge\nlodestone_workflow_load_errors %zu\n",
        (unsigned long long)s.runs_active, (unsigned long long)s.runs_queued,
        (unsigned long long)s.timers, (unsigned long long)s.started,
        (unsigned long long)s.completed, (unsigned long long)s.failed,
        (unsigned long long)s.cancelled, (unsigned long long)s.terminated,
        (unsigned long long)s.paused, (unsigned long long)s.steps_completed,
        (unsigned long long)s.steps_failed, (unsigned long long)s.commits,
        (unsigned long long)s.transitions, (unsigned long long)s.activations,
        lls_runner_error_count(a->o.runner));
    schedule_metrics(a, &out);
    flow_metrics(a, &s, &out);
    ls_buf_printf(
        &out, NULL,
        "# HELP lodestone_runs_deleted_total Finished runs deleted by retention.\n"
        "# TYPE lodestone_runs_deleted_total counter\nlodestone_runs_deleted_total %llu\n",
        (unsigned long long)s.runs_deleted);
    MHD_RESULT ret = send_body(c, 200, "text/plain; version=0.0.4", out.ptr, out.len);
    ls_buf_free(&out);
    return ret;
}

/* Splits path after prefix into up to 3 segments (modified in place). */
static int split(char *p, char **seg, int max)
{
    int n = 0;
    while (*p && n < max) {
        seg[n++] = p;
        char *slash = strchr(p, '/');
        if (slash == NULL) return n;
        *slash = '\0';
        p = slash + 1;
        if (*p == '\0') return -1; /* trailing slash */
    }
    return *p ? -1 : n;
}

/* The loaded types (name, file, version) with the unfinished runs each
 * version still has ("runs": {version: n}), and the load errors. */
static MHD_RESULT h_types(lsd_api *a, struct MHD_Connection *c)
{
    ls_buf out = LS_BUF_INIT, vers = LS_BUF_INIT;
    json_t *o = NULL, *v = NULL;
    ls_err err;
    ls_rc rc = lls_runner_describe(a->o.runner, &out, &err);
    if (rc == LS_OK) rc = ls_flow_versions(a->o.flow, &vers, &err);
    if (rc == LS_OK) rc = ls_json_parse((const char *)out.ptr, out.len, &o, &err);
    if (rc == LS_OK) rc = ls_json_parse((const char *)vers.ptr, vers.len, &v, &err);
    ls_buf_free(&out);
    ls_buf_free(&vers);
    if (rc != LS_OK) {
        json_decref(o);
        json_decref(v);
        return send_rc(c, rc, &err);
    }
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(o, "types"), i, t)
    {
        json_t *runs = json_object_get(v, json_string_value(json_object_get(t, "name")));
        json_object_set_new(t, "runs", runs ? json_incref(runs) : json_object());
    }
    json_object_set_new(o, "running_versions", v);
    return send_obj(c, 200, o);
}

/* Who asks: the identity lighttpd's policy gate sets, else "api". NULL,
 * with err set, when X-User cannot be recorded as it is (it was taken for
 * "api" when too long). */
static const char *caller(struct MHD_Connection *c, ls_err *err)
{
    const char *u = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-User");
    if (u == NULL || *u == '\0') return "api";
    size_t n = strlen(u);
    if (n > LS_FLOW_BYMAX) {
        ls_err_set(err, LS_EINVAL, "X-User: at most %d bytes, got %zu", LS_FLOW_BYMAX, n);
        return NULL;
    }
    if (!ls_json_utf8_valid(u, n)) {
        ls_err_set(err, LS_EINVAL, "X-User: not valid UTF-8");
        return NULL;
    }
    /* (valid UTF-8: a 0xC2 is followed by a byte, U+0080 to U+009F are
     * 0xC2 0x80 to 0xC2 0x9F) */
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)u[i];
        if (ch < 0x20 || ch == 0x7F || (ch == 0xC2 && (unsigned char)u[i + 1] < 0xA0)) {
            ls_err_set(err, LS_EINVAL, "X-User: control character at byte %zu", i + 1);
            return NULL;
        }
    }
    return u;
}

static MHD_RESULT h_signal(lsd_api *a, req *r, struct MHD_Connection *c, const char *name,
                           const char *signal)
{
    ls_err err;
    ls_rc rc = ls_flow_signal(a->o.flow, name, strlen(name), signal, strlen(signal),
                              (const char *)r->body, r->len, &err);
    if (rc == LS_OK) return send_obj(c, 202, json_pack("{s:s,s:s}", "id", name, "signal", signal));
    return send_rc(c, rc, &err);
}

static MHD_RESULT h_resume(lsd_api *a, struct MHD_Connection *c, const char *name)
{
    ls_err err;
    const char *by = caller(c, &err);
    if (by == NULL) return send_rc(c, err.code, &err);
    ls_rc rc = ls_flow_resume(a->o.flow, name, strlen(name), by, &err);
    if (rc != LS_OK) return send_rc(c, rc, &err);
    return send_obj(c, 202, json_pack("{s:s,s:s}", "id", name, "status", "resuming"));
}

/* cancel or terminate, with an optional body {"reason": "..."} */
static MHD_RESULT h_stop(lsd_api *a, req *r, struct MHD_Connection *c, const char *name,
                         int terminate)
{
    ls_err err;
    json_t *body = NULL;
    const char *reason = "";
    if (r->len) {
        if (ls_json_parse((const char *)r->body, r->len, &body, &err) != LS_OK)
            return send_error(c, 400, "bad_request", "body: %s", ls_err_text(&err));
        const char *k;
        json_t *v;
        if (!json_is_object(body)) {
            json_decref(body);
            return send_error(c, 400, "bad_request",
                              "body: must be an object {\"reason\"?: string}");
        }
        json_object_foreach(body, k, v)
        {
            if (strcmp(k, "reason") != 0 || !json_is_string(v)) {
                MHD_RESULT ret = send_error(c, 400, "bad_request", "body: %s%.60s%s",
                                            strcmp(k, "reason") == 0 ? "" : "unknown field \"", k,
                                            strcmp(k, "reason") == 0 ? ": must be a string"
                                                                     : "\" (expected reason)");
                json_decref(body);
                return ret;
            }
            reason = json_string_value(v);
            if (strlen(reason) != json_string_length(v)) { /* "\u0000": it would end there */
                MHD_RESULT ret =
                    send_error(c, 400, "bad_request", "reason: control character at byte %zu",
                               strlen(reason) + 1);
                json_decref(body);
                return ret;
            }
        }
    }
    ls_rc rc;
    int ended = 0;
    const char *by = caller(c, &err);
    if (by == NULL)
        rc = err.code;
    else if (terminate)
        rc = ls_flow_terminate(a->o.flow, name, strlen(name), by, reason, 5000, &ended, &err);
    else
        rc = ls_flow_cancel(a->o.flow, name, strlen(name), by, reason, &err);
    json_decref(body);
    if (rc != LS_OK) return send_rc(c, rc, &err);
    if (ended) return h_view(a, c, name, ls_flow_describe);
    return send_obj(c, 202,
                    json_pack("{s:s,s:s}", "id", name, "status",
                              terminate ? "terminating" : "cancel_requested"));
}

/* ---- keys ---- */

/* GET /v1/keys: the id of the key new data is sealed with, how many keys
 * the key file holds, and how many secrets are sealed under another key
 * (read from the records' key ids, without opening them); never key
 * material. */
static MHD_RESULT h_keys(lsd_api *a, struct MHD_Connection *c)
{
    /* Without waiting for a rotation's reseal: a count read while the
     * current id stayed the same is that keyring's (a rotation changes
     * both at once, and always the id). The secrets are counted against
     * the id answered; during a reseal, as far as it got. */
    uint32_t current;
    size_t keys, older = 0;
    do {
        current = ls_vault_current_key(a->o.vault);
        keys = ls_vault_key_count(a->o.vault);
    } while (ls_vault_current_key(a->o.vault) != current);
    ls_err err;
    ls_rc rc = ls_vault_secret_count_other_keys(a->o.store, current, &older, &err);
    if (rc != LS_OK) return send_rc(c, rc, &err);
    return send_obj(c, 200,
                    json_pack("{s:I,s:I,s:I}", "current", (json_int_t)current, "keys",
                              (json_int_t)keys, "secrets_under_older_keys", (json_int_t)older));
}

/* The 500 reseal_incomplete of a rotation to key id whose reseal skipped
 * secrets that do not open (reseal LS_OK) or stopped (reseal, err). */
static MHD_RESULT send_reseal_incomplete(struct MHD_Connection *c, uint32_t id, json_int_t keys,
                                         ls_rc check, ls_rc reseal,
                                         const ls_secret_reseal_report *rep, const ls_err *err)
{
    char msg[1024], text[4 * sizeof msg];
    if (check != LS_OK)
        snprintf(msg, sizeof msg,
                 "key %u is current (the key file changed: back it up), but no secret was "
                 "resealed under it: %s. They stay sealed under older keys, which the key file "
                 "keeps. Fix the cause and rotate again: that reseals every secret not under "
                 "the newest key",
                 (unsigned)id, ls_err_text(err));
    else if (reseal != LS_OK)
        snprintf(msg, sizeof msg,
                 "key %u is current (the key file changed: back it up), but resealing the "
                 "secrets stopped with %zu resealed under it (%zu skipped): %s. The others stay "
                 "sealed under older keys, which the key file keeps. Fix the cause and rotate "
                 "again: that reseals every secret not under the newest key",
                 (unsigned)id, rep->resealed, rep->skipped, ls_err_text(err));
    else
        snprintf(msg, sizeof msg,
                 "key %u is current (the key file changed: back it up) and %zu %s resealed "
                 "under it, but %zu did not open and %s, under older keys, which the key file "
                 "keeps; the first: %s. Set %s again or remove %s and rotate again: that "
                 "reseals every secret not under the newest key",
                 (unsigned)id, rep->resealed, rep->resealed == 1 ? "secret was" : "secrets were",
                 rep->skipped, rep->skipped == 1 ? "stays as it was" : "stay as they were",
                 ls_err_text(&rep->first_reason), rep->skipped == 1 ? "it" : "them",
                 rep->skipped == 1 ? "it" : "them");
    utf8_escape(text, sizeof text, msg);
    lsd_log(LS_FLOW_LOG_ERROR, NULL, "%s", text);
    json_t *o = json_pack("{s:{s:s,s:s},s:I,s:I,s:I,s:I}", "error", "code", "reseal_incomplete",
                          "message", text, "key", (json_int_t)id, "keys", keys, "secrets_resealed",
                          (json_int_t)rep->resealed, "secrets_skipped", (json_int_t)rep->skipped);
    if (o != NULL && rep->skipped > 0) {
        utf8_escape(text, sizeof text, rep->first_skipped);
        json_object_set_new(o, "first_skipped", json_string(text));
    }
    return send_obj(c, 500, o);
}

/* POST /v1/keys/rotate: a new current key in the key file, then the
 * store's key check and every secret sealed again under it. Payloads stay
 * under the keys they were sealed with. Resealing writes batches of
 * secrets as it goes; a secret that does not open is skipped, left as it
 * was, and the others are resealed. When some were skipped, or a store
 * failure stopped the reseal, the answer says that the rotation happened,
 * how many were resealed and skipped, and the first skipped secret or why
 * it stopped (500 reseal_incomplete, with key, keys, secrets_resealed,
 * secrets_skipped and first_skipped beside the error). The secrets not
 * resealed stay under their keys, which stay in the key file, and a
 * rotation again reseals every secret not under the newest key. */
static MHD_RESULT h_rotate(lsd_api *a, req *r, struct MHD_Connection *c)
{
    ls_err err;
    if (r->len)
        return send_error(c, 400, "bad_request", "body: POST /v1/keys/rotate takes no body");
    const char *by = caller(c, &err);
    if (by == NULL) return send_rc(c, err.code, &err);

    pthread_rwlock_wrlock(&a->keys_lock);
    uint32_t was = ls_vault_current_key(a->o.vault), id = 0;
    ls_rc rc = ls_vault_rotate(a->o.vault, &id, &err);
    if (rc != LS_OK) {
        pthread_rwlock_unlock(&a->keys_lock);
        lsd_log(LS_FLOW_LOG_ERROR, NULL, "key rotation asked by %s failed: %s", by,
                ls_err_text(&err));
        return send_error(c, 500, "rotation_failed",
                          "key rotation failed: %s; new data is still sealed under key %u",
                          ls_err_text(&err), (unsigned)was);
    }
    json_int_t keys = (json_int_t)ls_vault_key_count(a->o.vault);
    lsd_log(LS_FLOW_LOG_INFO, NULL,
            "keys rotated by %s: key %u is current, the key file holds %lld keys (back it up)", by,
            (unsigned)id, (long long)keys);
    /* The store's key check under the new key: a start with a copy of the
     * key file from before (which lacks it) is refused, rather than run
     * with secrets and payloads it cannot open, and a rotation from there
     * give another key the same id. */
    ls_secret_reseal_report rep = {0};
    ls_rc check = ls_vault_check_write(a->o.vault, a->o.store, &err);
    rc = check;
    if (rc == LS_OK) rc = ls_vault_secret_reseal_all_detailed(a->o.vault, a->o.store, &rep, &err);
    pthread_rwlock_unlock(&a->keys_lock);
    if (rc == LS_OK && rep.skipped == 0) {
        lsd_log(LS_FLOW_LOG_INFO, NULL, "secrets resealed under key %u: %zu", (unsigned)id,
                rep.resealed);
        return send_obj(c, 200,
                        json_pack("{s:I,s:I,s:I,s:I}", "key", (json_int_t)id, "keys", keys,
                                  "secrets_resealed", (json_int_t)rep.resealed, "secrets_skipped",
                                  (json_int_t)0));
    }
    return send_reseal_incomplete(c, id, keys, check, rc, &rep, &err);
}

/* A path that matches no route is 404; one that does, with a method it
 * does not take, 405 and the methods it takes. */
static MHD_RESULT route(lsd_api *a, req *r, struct MHD_Connection *c, const char *url,
                        const char *method)
{
    int get = is_get(method), post = strcmp(method, "POST") == 0;
    const char *allow = NULL;
    if (strcmp(url, "/healthz") == 0)
        return get ? h_health(a, c) : not_allowed(c, method, url, "GET, HEAD");
    if (strcmp(url, "/metrics") == 0)
        return get ? h_metrics(a, c) : not_allowed(c, method, url, "GET, HEAD");
    if (strcmp(url, "/v1/workflow-types") == 0)
        return get ? h_types(a, c) : not_allowed(c, method, url, "GET, HEAD");
    if (strcmp(url, "/v1/workflows") == 0)
        return get ? h_list(a, c) : not_allowed(c, method, url, "GET, HEAD");
    if (strcmp(url, "/v1/secrets") == 0) return h_secrets(a, r, c, url, method, NULL);
    if (strcmp(url, "/v1/keys") == 0)
        return get ? h_keys(a, c) : not_allowed(c, method, url, "GET, HEAD");
    if (strcmp(url, "/v1/keys/rotate") == 0)
        return post ? h_rotate(a, r, c) : not_allowed(c, method, url, "POST");
    char path[1024];
    char *seg[4];
    if (strcmp(url, "/v1/schedules") == 0) return h_schedules(a, r, c, url, method, NULL);
    if (strncmp(url, "/v1/schedules/", 14) == 0) {
        snprintf(path, sizeof path, "%s", url + 14);
        if (split(path, seg, 1) != 1)
            return send_error(c, 404, "not_found", "no route for %.200s", url);
        return h_schedules(a, r, c, url, method, seg[0]);
    }
    if (strncmp(url, "/v1/secrets/", 12) == 0) {
        /* All the rest: a secret's name may hold '/' (sent as %2F). */
        if (url[12] == '\0') return send_error(c, 404, "not_found", "no route for %.200s", url);
        return h_secrets(a, r, c, url, method, url + 12);
    }
    if (strncmp(url, "/v1/workflows/", 14) == 0 && strlen(url) < sizeof path) {
        snprintf(path, sizeof path, "%s", url + 14);
        /* A signal's name is all the rest, as a secret's: a "/" in it (sent
         * as %2F) reaches ls_flow_signal, which says why it is refused. */
        char *slash = strchr(path, '/');
        if (slash && slash != path && strncmp(slash, "/signals/", 9) == 0 && slash[9] != '\0') {
            *slash = '\0';
            if (post) return h_signal(a, r, c, path, slash + 9);
            return not_allowed(c, method, url, "POST");
        }
        int n = split(path, seg, 3);
        if (n == 1) {
            if (post) return h_start(a, r, c, seg[0]);
            if (get) return h_view(a, c, seg[0], ls_flow_describe);
            allow = "GET, HEAD, POST";
        } else if (n == 2 && strcmp(seg[1], "history") == 0) {
            if (get) return h_view(a, c, seg[0], ls_flow_history);
            allow = "GET, HEAD";
        } else if (n == 2 && strcmp(seg[1], "result") == 0) {
            if (get) return h_result(a, r, c, seg[0]);
            allow = "GET, HEAD";
        } else if (n == 2 && strcmp(seg[1], "cancel") == 0) {
            if (post) return h_stop(a, r, c, seg[0], 0);
            allow = "POST";
        } else if (n == 2 && strcmp(seg[1], "terminate") == 0) {
            if (post) return h_stop(a, r, c, seg[0], 1);
            allow = "POST";
        } else if (n == 2 && strcmp(seg[1], "resume") == 0) {
            if (post) return h_resume(a, c, seg[0]);
            allow = "POST";
        }
    }
    if (allow) return not_allowed(c, method, url, allow);
    return send_error(c, 404, "not_found", "no route for %.20s %.200s", method, url);
}

static int token_ok(lsd_api *a, struct MHD_Connection *c)
{
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    /* The scheme is case-insensitive (RFC 9110 11.1), then 1*SP */
    if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0) return 0;
    h += 7;
    while (*h == ' ') h++;
    size_t n = strlen(h), m = strlen(a->o.token);
    return n == m && sodium_memcmp(h, a->o.token, n) == 0;
}

/* Whether the request's Content-Length is over the body limit. */
static int declared_too_large(lsd_api *a, struct MHD_Connection *c)
{
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    if (cl == NULL || *cl < '0' || *cl > '9') return 0; /* (MHD refuses a bad one) */
    char *end;
    errno = 0;
    unsigned long long n = strtoull(cl, &end, 10);
    return *end == '\0' && (errno == ERANGE || n > a->o.body_limit);
}

static MHD_RESULT on_request(lsd_api *a, int tcp, struct MHD_Connection *c, const char *url,
                             const char *method, const char *upload, size_t *upload_size,
                             void **con_cls)
{
    req *r = *con_cls;
    if (r == NULL) {
        r = calloc(1, sizeof *r);
        if (r == NULL) return MHD_NO;
        r->api = a;
        r->conn = c;
        r->tcp = tcp;
        r->nul = take_nul(c);
        *con_cls = r;
        if (declared_too_large(a, c)) {
            /* Answered before the body is read: it need not be sent (a
             * client that declared more than it sent waited for the
             * connection's timeout). */
            r->too_large = 1;
            return send_error(c, 413, "payload_too_large",
                              "the body exceeds the limit of %zu bytes (Content-Length: %.30s)",
                              a->o.body_limit,
                              MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length"));
        }
        return MHD_YES;
    }
    if (*upload_size) {
        size_t limit = a->o.body_limit;
        if (!r->too_large && r->len + *upload_size > limit) {
            r->too_large = 1;
        } else if (!r->too_large) {
            if (r->len + *upload_size > r->cap) {
                /* Bodies may hold secrets (PUT /v1/secrets): a grown buffer
                 * is copied and the old one wiped, never left to realloc. */
                size_t cap = r->cap ? r->cap : 4096;
                while (cap < r->len + *upload_size) cap *= 2;
                unsigned char *nb = malloc(cap);
                if (nb == NULL) return MHD_NO;
                if (r->body) {
                    memcpy(nb, r->body, r->len);
                    sodium_memzero(r->body, r->len);
                    free(r->body);
                }
                r->body = nb;
                r->cap = cap;
            }
            memcpy(r->body + r->len, upload, *upload_size);
            r->len += *upload_size;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (r->too_large)
        return send_error(c, 413, "payload_too_large", "the body exceeds the limit of %zu bytes",
                          a->o.body_limit);
    /* Which listener a request came in on is fixed by the callback MHD
     * was started with (its thread-pool workers are daemons of their own,
     * so comparing daemon handles would not tell). */
    if (r->tcp && !token_ok(a, c))
        return send_error_with(
            c, 401, "unauthorized", "WWW-Authenticate", "Bearer realm=\"lodestoned\"",
            "this listener needs Authorization: Bearer <token> (see --token-file)");
    const char *twice = repeated_arg(c);
    if (twice)
        return send_error(c, 400, "bad_request", "%s: given more than once; give it once", twice);
    if (r->nul < 0) return send_error(c, 503, "unavailable", "out of memory: try again");
    if (r->nul)
        return send_error(c, 400, "bad_request",
                          "path or query: %%00 (a NUL byte) is not allowed in an id, a name or a "
                          "parameter");
    return route(a, r, c, url, method);
}

static MHD_RESULT on_unix_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    (void)version;
    return on_request(cls, 0, c, url, method, upload, upload_size, con_cls);
}

static MHD_RESULT on_tcp_request(void *cls, struct MHD_Connection *c, const char *url,
                                 const char *method, const char *version, const char *upload,
                                 size_t *upload_size, void **con_cls)
{
    (void)version;
    return on_request(cls, 1, c, url, method, upload, upload_size, con_cls);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)c;
    (void)toe;
    lsd_api *a = cls;
    req *r = *con_cls;
    if (r == NULL) return;
    if (r->watching) ls_flow_unwatch(a->o.flow, r->watch);
    pthread_mutex_lock(&a->mu);
    if (r->suspended && !r->resumed) waiter_unlink(a, r);
    pthread_mutex_unlock(&a->mu);
    if (r->body) sodium_memzero(r->body, r->len); /* (nothing was written past len) */
    free(r->body);
    free(r->name);
    ls_buf_free(&r->start_out);
    free(r);
    *con_cls = NULL;
}

/* ---- sockets ---- */

/* --socket: a path that fits a unix socket's address. */
static ls_rc check_socket_path(const char *path, ls_err *err)
{
    struct sockaddr_un sa;
    size_t n = strlen(path);
    if (n == 0) return ls_err_set(err, LS_EINVAL, "--socket: the path is empty");
    if (n >= sizeof sa.sun_path)
        return ls_err_set(err, LS_EINVAL,
                          "--socket: the path is %zu bytes; a unix socket's may have at most %zu",
                          n, sizeof sa.sun_path - 1);
    return LS_OK;
}

/* --listen: "127.0.0.1:PORT", PORT in decimal digits from 1 to 65535 (0
 * would be any free port, which nobody would be told). */
static ls_rc parse_listen(const char *s, uint16_t *port, ls_err *err)
{
    static const char host[] = "127.0.0.1:";
    if (strncmp(s, host, sizeof host - 1) != 0)
        return ls_err_set(err, LS_EINVAL,
                          "--listen: expected 127.0.0.1:PORT (only loopback), got \"%s\"", s);
    const char *p = s + sizeof host - 1;
    size_t digits = strspn(p, "0123456789");
    if (digits == 0 || p[digits] != '\0')
        return ls_err_set(err, LS_EINVAL,
                          "--listen: the port \"%s\" is not a number (expected "
                          "127.0.0.1:PORT, PORT 1 to 65535)",
                          p);
    errno = 0;
    unsigned long v = strtoul(p, NULL, 10);
    if (errno == ERANGE || v == 0 || v > 65535)
        return ls_err_set(err, LS_EINVAL, "--listen: port %s is out of range (1 to 65535)", p);
    *port = (uint16_t)v;
    return LS_OK;
}

ls_rc lsd_api_check(const lsd_api_opts *o, ls_err *err)
{
    uint16_t port;
    ls_rc rc = LS_OK;
    if (o->socket_path) rc = check_socket_path(o->socket_path, err);
    if (rc == LS_OK && o->listen) rc = parse_listen(o->listen, &port, err);
    return rc;
}

static int unix_listen(const char *path, ls_err *err)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (check_socket_path(path, err) != LS_OK) return -1;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        ls_err_set(err, LS_EIO, "socket: %s", strerror(errno));
        return -1;
    }
    /* A stale socket file from a killed daemon: we hold the store's lock,
     * so no other daemon of this data directory is using it. */
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) unlink(path);
    /* Bound under lodestoned's umask (077: private until the chmod below).
     * Not a umask of its own: that is the whole process's, and a file
     * LevelDB's thread created meanwhile would take it. */
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    if (rc != 0 || listen(fd, 512) != 0) {
        ls_err_set(err, LS_EIO, "--socket %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (chmod(path, 0660) != 0) {
        ls_err_set(err, LS_EIO, "--socket %s: chmod 0660: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        return -1;
    }
    return fd;
}

ls_rc lsd_api_start(lsd_api **out, const lsd_api_opts *o, ls_err *err)
{
    *out = NULL;
    lsd_api *a = calloc(1, sizeof *a);
    if (a == NULL) return ls_err_set(err, LS_ENOMEM, "api: out of memory");
    a->o = *o;
    if (a->o.body_limit == 0) a->o.body_limit = 1 << 20;
    if (a->o.threads == 0) a->o.threads = 4;
    a->unix_fd = -1;
    pthread_mutex_init(&a->mu, NULL);
    pthread_rwlock_init(&a->keys_lock, NULL);
    /* poll(), not epoll: libmicrohttpd's epoll loop (0.9.75, and 1.0.1
     * still) calls epoll_wait again, with the full timeout, whenever one
     * call returns its maximum of 128 events; a thread that finds exactly
     * 128 (or 256...) requests ready at once then sleeps up to the
     * connection timeout with all of them unanswered (tests/e2e/
     * workflow_starts.sh, flowload --burst). poll() serves the same load
     * as fast here (bench/flowload at concurrency 1 and 256). */
    unsigned flags =
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC;
    if (o->socket_path) {
        a->unix_fd = unix_listen(o->socket_path, err);
        if (a->unix_fd < 0) goto fail;
        a->unix_d = MHD_start_daemon(
            flags, 0, NULL, NULL, on_unix_request, a, MHD_OPTION_LISTEN_SOCKET, a->unix_fd,
            MHD_OPTION_THREAD_POOL_SIZE, a->o.threads, MHD_OPTION_NOTIFY_COMPLETED, on_completed, a,
            MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL, MHD_OPTION_UNESCAPE_CALLBACK,
            unescape, NULL, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)(MAX_WAIT_S + 30),
            MHD_OPTION_CONNECTION_LIMIT, MAX_CONNECTIONS, MHD_OPTION_END);
        if (a->unix_d == NULL) {
            ls_err_set(err, LS_EIO, "cannot serve HTTP on %s", o->socket_path);
            goto fail;
        }
    }
    if (o->listen) {
        uint16_t port;
        if (parse_listen(o->listen, &port, err) != LS_OK) goto fail;
        struct sockaddr_in sin;
        memset(&sin, 0, sizeof sin);
        sin.sin_family = AF_INET;
        sin.sin_port = htons(port);
        sin.sin_addr.s_addr = htonl(0x7f000001);
        a->tcp_d = MHD_start_daemon(
            flags, port, NULL, NULL, on_tcp_request, a, MHD_OPTION_SOCK_ADDR,
            (struct sockaddr *)&sin, MHD_OPTION_THREAD_POOL_SIZE, a->o.threads,
            MHD_OPTION_NOTIFY_COMPLETED, on_completed, a, MHD_OPTION_NOTIFY_CONNECTION,
            on_connection, NULL, MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL,
            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)(MAX_WAIT_S + 30), MHD_OPTION_CONNECTION_LIMIT,
            MAX_CONNECTIONS, MHD_OPTION_END);
        if (a->tcp_d == NULL) {
            ls_err_set(err, LS_EIO, "--listen %s: cannot listen (port in use?)", o->listen);
            goto fail;
        }
    }
    if (pthread_create(&a->reaper, NULL, reaper_main, a) != 0) {
        ls_err_set(err, LS_EIO, "api: cannot start a thread");
        goto fail;
    }
    pthread_setname_np(a->reaper, "ls-api-reaper");
    a->reaper_on = 1;
    *out = a;
    return LS_OK;
fail:
    lsd_api_stop(a);
    return err ? err->code : LS_EIO;
}

void lsd_api_stop(lsd_api *a)
{
    if (a == NULL) return;
    pthread_mutex_lock(&a->mu);
    a->stopping = 1;
    pthread_mutex_unlock(&a->mu);
    if (a->reaper_on) pthread_join(a->reaper, NULL); /* resumes every long poll */
    /* Starts being written resume their connections as they land (no new
     * one is taken once stopping is set): MHD stops none suspended. */
    for (;;) {
        pthread_mutex_lock(&a->mu);
        int starting = a->starting;
        pthread_mutex_unlock(&a->mu);
        if (starting == 0) break;
        struct timespec ts = {0, 1000000L};
        nanosleep(&ts, NULL);
    }
    if (a->unix_d) MHD_stop_daemon(a->unix_d);
    if (a->tcp_d) MHD_stop_daemon(a->tcp_d);
    if (a->unix_fd >= 0) {
        close(a->unix_fd);
        if (a->o.socket_path) unlink(a->o.socket_path);
    }
    pthread_mutex_destroy(&a->mu);
    pthread_rwlock_destroy(&a->keys_lock);
    free(a);
}
