/* SPDX-License-Identifier: MIT
 * lodestone.httpc: one blocking HTTP request per call, over libcurl's easy
 * interface. request{...} returns status, headers, body; a transport failure
 * raises "http METHOD URL: reason". No redirects, http and https only, no
 * signals: safe in several threads at once, each with its own lua_State.
 * Compiled for LuaJIT only, and never into lodestone.core (see lls_http.h).
 */
#include "ls_config.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "lls_http.h"
#include "policy/curl_init.h"
#include "lodestone/ls_buf.h"
#include "lodestone/ls_clock.h"

#define BOX_MT "lodestone.httpc.box"

#define DEFAULT_MAX_BODY ((double)(16u << 20)) /* 16 MiB */
#define MAX_TIMEOUT_MS   2147483647.0          /* about 24 days */
#define MAX_BODY_LIMIT   ((double)(1ull << 40))
#define UNIX_PATH_MAX    107 /* sizeof(sun_path) - 1 on Linux */

static const char fields_known[] = "method, url, headers, body, timeout_ms, unix_socket, max_body";

/* Raises the formatted message as is: luaL_error would prefix a position,
 * which LuaJIT takes from the Lua caller. */
static int raise(lua_State *L, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    return lua_error(L);
}

/* ---- per-call state, freed by __gc if a Lua error cuts the call short ---- */

typedef struct {
    CURL *h;
    struct curl_slist *headers;
    ls_buf body;     /* response body */
    ls_buf head;     /* raw header lines of the last response */
    ls_buf line;     /* scratch for one request header line */
    size_t max_body; /* larger response bodies abort the transfer */
    int too_big, nomem;
    /* started with httpc.start: in this thread's multi handle */
    int in_multi, done;
    void *owner; /* lls_httpc_watch: told to lodestoned's runner when done */
    CURLcode result;
    long timeout_ms;
    char errbuf[CURL_ERROR_SIZE];
    char what[512]; /* "METHOD URL" for messages */
} box;

/* This thread's multi handle for httpc.start/wait (a worker's Lua state
 * lives on one thread). */
static _Thread_local CURLM *tl_multi;

static void box_clear(box *b)
{
    if (b->in_multi && tl_multi) curl_multi_remove_handle(tl_multi, b->h);
    b->in_multi = 0;
    if (b->h != NULL) curl_easy_cleanup(b->h);
    b->h = NULL;
    curl_slist_free_all(b->headers);
    b->headers = NULL;
    ls_buf_free(&b->body);
    ls_buf_free(&b->head);
    ls_buf_free(&b->line);
}

static int l_box_gc(lua_State *L)
{
    box_clear(lua_touserdata(L, 1));
    return 0;
}

static box *new_box(lua_State *L)
{
    box *b = lls_newuserdata(L, sizeof *b);
    memset(b, 0, sizeof *b);
    luaL_getmetatable(L, BOX_MT);
    lua_setmetatable(L, -2);
    return b;
}

/* ---- arguments ---- */

typedef struct {
    const char *method, *url, *body, *unix_socket;
    size_t body_len;
    long timeout_ms;
    size_t max_body;
    int has_ctype, has_expect; /* the caller set these headers */
} request;

static int is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int is_token(const char *s, size_t n)
{
    if (n == 0) return 0;
    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)s[i])) return 0;
    return 1;
}

/* t.field as a string, or NULL when absent and optional. The string stays
 * alive while t is on the stack. */
static const char *opt_string(lua_State *L, int t, const char *field, int required, size_t *len)
{
    lua_getfield(L, t, field);
    int ty = lua_type(L, -1);
    if (ty == LUA_TNIL && !required) {
        lua_pop(L, 1);
        return NULL;
    }
    if (ty != LUA_TSTRING) raise(L, "http.request: %s must be a string", field);
    const char *s = lua_tolstring(L, -1, len);
    lua_pop(L, 1);
    return s;
}

/* t.field as a whole number in [lo, hi], or dflt when absent (dflt < 0:
 * required). */
static double opt_whole(lua_State *L, int t, const char *field, double lo, double hi, double dflt)
{
    lua_getfield(L, t, field);
    int ty = lua_type(L, -1);
    if (ty == LUA_TNIL && dflt >= 0) {
        lua_pop(L, 1);
        return dflt;
    }
    double v = ty == LUA_TNUMBER ? (double)lua_tonumber(L, -1) : NAN;
    lua_pop(L, 1);
    if (!(v >= lo && v <= hi) || floor(v) != v) {
        char range[64]; /* lua_pushfstring has no %.0f */
        snprintf(range, sizeof range, "from %.0f to %.0f", lo, hi);
        raise(L, "http.request: %s must be a whole number %s", field, range);
    }
    return v;
}

/* Every key of t is a known field. */
static void check_fields(lua_State *L, int t)
{
    static const char *const known[] = {"method",     "url",         "headers",  "body",
                                        "timeout_ms", "unix_socket", "max_body", NULL};
    lua_pushnil(L);
    while (lua_next(L, t) != 0) {
        lua_pop(L, 1);
        int ok = 0;
        if (lua_type(L, -1) == LUA_TSTRING) {
            const char *k = lua_tostring(L, -1);
            for (size_t i = 0; known[i] && !ok; i++) ok = strcmp(k, known[i]) == 0;
        }
        if (!ok) {
            const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "(not a string)";
            raise(L, "http.request: unknown field '%s' (%s)", k, fields_known);
        }
    }
}

/* Checks t.headers (a table of name = value strings, no line breaks) and
 * notes whether Content-Type and Expect are among them. Allocates nothing. */
static void check_headers(lua_State *L, int t, request *r)
{
    lua_getfield(L, t, "headers");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return;
    }
    if (!lua_istable(L, -1)) raise(L, "http.request: headers must be a table");
    int h = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, h) != 0) {
        if (lua_type(L, -2) != LUA_TSTRING)
            raise(L, "http.request: headers must be a table of name = value strings");
        size_t nlen, vlen;
        const char *name = lua_tolstring(L, -2, &nlen);
        if (!is_token(name, nlen))
            raise(L, "http.request: header name '%s' is not a valid HTTP token", name);
        if (lua_type(L, -1) != LUA_TSTRING)
            raise(L, "http.request: header %s: value must be a string", name);
        const char *val = lua_tolstring(L, -1, &vlen);
        for (size_t i = 0; i < vlen; i++) {
            if (val[i] == '\r' || val[i] == '\n' || val[i] == '\0')
                raise(L, "http.request: header %s: value contains a line break or NUL", name);
        }
        if (strcasecmp(name, "content-type") == 0) r->has_ctype = 1;
        if (strcasecmp(name, "expect") == 0) r->has_expect = 1;
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

/* The URL as messages show it: scheme, host, port and path, without the
 * user information and with "?..." for a query or a fragment, which may
 * hold credentials (https://user:pass@host/x?api_key=...): a transport
 * error reaches the run's history, lodestoned's log and the API. */
static void shown_url(const char *url, char *out, size_t cap)
{
    const char *sep = strstr(url, "://");
    const char *host = sep ? sep + 3 : url;
    size_t alen = strcspn(host, "/?#");
    const char *start = host; /* past the authority's last '@' */
    for (size_t i = 0; i < alen; i++)
        if (host[i] == '@') start = host + i + 1;
    size_t plen = strcspn(start, "?#");
    snprintf(out, cap, "%.*s%.*s%s", (int)(host - url), url, (int)plen, start,
             start[plen] ? "?..." : "");
}

static void check_request(lua_State *L, int t, request *r)
{
    size_t len;
    memset(r, 0, sizeof *r);
    check_fields(L, t);
    r->url = opt_string(L, t, "url", 1, &len);
    if (strncasecmp(r->url, "http://", 7) != 0 && strncasecmp(r->url, "https://", 8) != 0) {
        char scheme[24]; /* what comes before ':' (the rest may hold credentials) */
        snprintf(scheme, sizeof scheme, "%.*s", (int)strcspn(r->url, ":/?#@"), r->url);
        raise(L, "http.request: url must start with http:// or https:// (got \"%s...\")", scheme);
    }
    if (strlen(r->url) != len) raise(L, "http.request: url contains a NUL byte");
    r->method = opt_string(L, t, "method", 0, &len);
    if (r->method == NULL)
        r->method = "GET";
    else if (!is_token(r->method, len))
        raise(L, "http.request: method must be an HTTP method such as \"POST\" (got \"%s\")",
              r->method);
    r->body = opt_string(L, t, "body", 0, &r->body_len);
    r->timeout_ms = (long)opt_whole(L, t, "timeout_ms", 1, MAX_TIMEOUT_MS, -1);
    r->max_body = (size_t)opt_whole(L, t, "max_body", 0, MAX_BODY_LIMIT, DEFAULT_MAX_BODY);
    r->unix_socket = opt_string(L, t, "unix_socket", 0, &len);
    if (r->unix_socket != NULL &&
        (len == 0 || len > UNIX_PATH_MAX || strlen(r->unix_socket) != len))
        raise(L, "http.request: unix_socket must be a path of 1 to %d bytes", UNIX_PATH_MAX);
    check_headers(L, t, r);
}

/* ---- libcurl callbacks ---- */

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    box *b = ud;
    size_t len = size * n;
    if (len > b->max_body - b->body.len) {
        b->too_big = 1;
        return 0; /* aborts the transfer */
    }
    if (ls_buf_append(&b->body, data, len, NULL) != LS_OK) {
        b->nomem = 1;
        return 0;
    }
    return len;
}

static size_t on_header(char *data, size_t size, size_t n, void *ud)
{
    box *b = ud;
    size_t len = size * n;
    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) ls_buf_clear(&b->head); /* e.g. after a 100 */
    if (ls_buf_append(&b->head, data, len, NULL) != LS_OK) {
        b->nomem = 1;
        return 0;
    }
    return len;
}

/* ---- building the transfer ---- */

/* Adds "Name: value" (or "Name;" to send an empty value) to the list. */
static int add_header(box *b, const char *name, const char *val, size_t vlen)
{
    ls_buf_clear(&b->line);
    ls_rc rc = vlen == 0 ? ls_buf_printf(&b->line, NULL, "%s;", name)
                         : ls_buf_printf(&b->line, NULL, "%s: %.*s", name, (int)vlen, val);
    if (rc != LS_OK) return -1;
    struct curl_slist *l = curl_slist_append(b->headers, (const char *)b->line.ptr);
    if (l == NULL) return -1;
    b->headers = l;
    return 0;
}

/* The caller's headers, then "Expect:" (no 100-continue round trip) and,
 * with a body, "Content-Type:" (not libcurl's form type) unless given.
 * Raises nothing: t.headers was checked. Returns -1 when out of memory. */
static int build_headers(lua_State *L, int t, box *b, const request *r)
{
    lua_getfield(L, t, "headers");
    if (lua_istable(L, -1)) {
        int h = lua_gettop(L);
        lua_pushnil(L);
        while (lua_next(L, h) != 0) {
            size_t vlen;
            const char *val = lua_tolstring(L, -1, &vlen);
            if (add_header(b, lua_tostring(L, -2), val, vlen) != 0) {
                lua_pop(L, 3);
                return -1;
            }
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    if (!r->has_expect && (b->headers = curl_slist_append(b->headers, "Expect:")) == NULL)
        return -1;
    if (r->body != NULL && !r->has_ctype &&
        (b->headers = curl_slist_append(b->headers, "Content-Type:")) == NULL)
        return -1;
    return 0;
}

static CURLcode set_method(CURL *h, const request *r)
{
    CURLcode rc = CURLE_OK;
    int is_post = strcmp(r->method, "POST") == 0;
    int wants_body = is_post || strcmp(r->method, "PUT") == 0 || strcmp(r->method, "PATCH") == 0;
    if (r->body != NULL || wants_body) {
        /* Content-Length: 0 for a POST, PUT or PATCH without a body. */
        rc = curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
        /* copied: an asynchronous transfer outlives the caller's string */
        if (rc == CURLE_OK)
            rc = curl_easy_setopt(h, CURLOPT_COPYPOSTFIELDS, r->body ? r->body : "");
        if (rc == CURLE_OK && !is_post) rc = curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
    } else if (strcmp(r->method, "HEAD") == 0) {
        rc = curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (strcmp(r->method, "GET") != 0) {
        rc = curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
    }
    return rc;
}

static CURLcode configure(box *b, const request *r, char *errbuf)
{
    CURL *h = b->h;
    CURLcode rc = set_method(h, r);
#define SET(opt, val) \
    if (rc == CURLE_OK) rc = curl_easy_setopt(h, opt, val)
    SET(CURLOPT_URL, r->url);
#if LIBCURL_VERSION_NUM >= 0x075500
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
#else
    SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_TIMEOUT_MS, r->timeout_ms);
    SET(CURLOPT_CONNECTTIMEOUT_MS, r->timeout_ms);
    SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)r->max_body);
    SET(CURLOPT_HTTPHEADER, b->headers);
    SET(CURLOPT_USERAGENT, "lodestone/" LS_VERSION);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, b);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, b);
    SET(CURLOPT_ERRORBUFFER, errbuf);
    if (r->unix_socket != NULL) SET(CURLOPT_UNIX_SOCKET_PATH, r->unix_socket);
#undef SET
    return rc;
}

/* ---- the response ---- */

/* Pushes the header table: lowercased names, values trimmed, repeated
 * headers joined with ", ". Lowercases the names inside b->head. */
static void push_headers(lua_State *L, box *b)
{
    lua_newtable(L);
    int t = lua_gettop(L);
    char *p = (char *)b->head.ptr, *end = p ? p + b->head.len : NULL;
    while (p != NULL && p < end) {
        char *eol = memchr(p, '\n', (size_t)(end - p));
        char *next = eol ? eol + 1 : end;
        char *colon = memchr(p, ':', (size_t)((eol ? eol : end) - p));
        if (colon != NULL && colon > p && memcmp(p, "HTTP/", 5) != 0) {
            char *v = colon + 1, *ve = eol ? eol : end;
            while (v < ve && (*v == ' ' || *v == '\t')) v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t')) ve--;
            for (char *c = p; c < colon; c++)
                if (*c >= 'A' && *c <= 'Z') *c = (char)(*c - 'A' + 'a');
            lua_pushlstring(L, p, (size_t)(colon - p));
            lua_pushvalue(L, -1);
            lua_rawget(L, t);
            if (lua_type(L, -1) == LUA_TSTRING) {
                lua_pushliteral(L, ", ");
                lua_pushlstring(L, v, (size_t)(ve - v));
                lua_concat(L, 3);
            } else {
                lua_pop(L, 1);
                lua_pushlstring(L, v, (size_t)(ve - v));
            }
            lua_rawset(L, t);
        }
        p = next;
    }
}

/* request{method=, url=, headers=, body=, timeout_ms=, unix_socket=,
 * max_body=} -> status, headers, body. Raises on bad arguments
 * ("http.request: <field> ...") and on transport failures
 * ("http METHOD URL: reason"); any HTTP status is a response, not an error. */
/* Checks the request at index 1 and makes its transfer in a new box (on
 * the stack). */
static box *prepare(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    request r;
    check_request(L, 1, &r);
    char url[400];
    shown_url(r.url, url, sizeof url);
    const char *why = ls_curl_init();
    if (why != NULL) raise(L, "http %s %s: libcurl did not initialise: %s", r.method, url, why);
    box *b = new_box(L);
    b->max_body = r.max_body;
    b->timeout_ms = r.timeout_ms;
    snprintf(b->what, sizeof b->what, "%.32s %s", r.method, url);
    b->h = curl_easy_init();
    if (b->h == NULL || build_headers(L, 1, b, &r) != 0) {
        box_clear(b);
        raise(L, "http %s: out of memory", b->what);
    }
    CURLcode rc = configure(b, &r, b->errbuf);
    if (rc != CURLE_OK) {
        box_clear(b);
        raise(L, "http %s: %s", b->what, curl_easy_strerror(rc));
    }
    return b;
}

/* The outcome of a finished transfer: status, headers, body; or raises. */
static int respond(lua_State *L, box *b, CURLcode rc)
{
    long status = 0;
    curl_easy_getinfo(b->h, CURLINFO_RESPONSE_CODE, &status);
    if (b->too_big || rc == CURLE_FILESIZE_EXCEEDED) {
        box_clear(b);
        char limit[32]; /* lua_pushfstring has no %zu */
        snprintf(limit, sizeof limit, "%zu", b->max_body);
        return raise(L, "http %s: response body larger than max_body (%s bytes)", b->what, limit);
    }
    if (b->nomem) {
        box_clear(b);
        return raise(L, "http %s: out of memory", b->what);
    }
    if (rc == CURLE_OPERATION_TIMEDOUT) {
        /* Said apart: a connect that timed out sent nothing. */
        curl_off_t connected = 0;
        curl_easy_getinfo(b->h, CURLINFO_CONNECT_TIME_T, &connected);
        box_clear(b);
        return raise(L, "http %s: timed out after %d ms%s", b->what, (int)b->timeout_ms,
                     connected == 0 ? " while connecting" : "");
    }
    if (rc != CURLE_OK) {
        box_clear(b);
        return raise(L, "http %s: %s", b->what, b->errbuf[0] ? b->errbuf : curl_easy_strerror(rc));
    }
    lua_pushinteger(L, (lua_Integer)status);
    push_headers(L, b);
    lua_pushlstring(L, b->body.ptr ? (const char *)b->body.ptr : "", b->body.len);
    box_clear(b);
    return 3;
}

static int l_request(lua_State *L)
{
    box *b = prepare(L);
    return respond(L, b, curl_easy_perform(b->h));
}

/* httpc.start(req) -> handle: the transfer runs while httpc.wait is
 * called (parallel workflow branches overlap their steps' requests). */
static int l_start(lua_State *L)
{
    box *b = prepare(L);
    if (tl_multi == NULL && (tl_multi = curl_multi_init()) == NULL) {
        box_clear(b);
        return raise(L, "http %s: cannot create a libcurl multi handle", b->what);
    }
    curl_easy_setopt(b->h, CURLOPT_PRIVATE, (void *)b);
    CURLMcode mc = curl_multi_add_handle(tl_multi, b->h);
    if (mc != CURLM_OK) {
        box_clear(b);
        return raise(L, "http %s: %s", b->what, curl_multi_strerror(mc));
    }
    b->in_multi = 1;
    return 1;
}

static int64_t mono_ms(void)
{
    return ls_clock_mono_ns(NULL) / 1000000;
}

/* The owners of watched transfers that have finished, not yet told
 * (lls_httpc_poll tells them). */
static _Thread_local void **tl_ready;
static _Thread_local size_t tl_nready, tl_ready_cap;

static void owner_ready(void *owner)
{
    for (size_t i = 0; i < tl_nready; i++)
        if (tl_ready[i] == owner) return;
    if (tl_nready == tl_ready_cap) {
        size_t cap = tl_ready_cap ? tl_ready_cap * 2 : 16;
        void **n = realloc(tl_ready, cap * sizeof *n);
        if (n == NULL) return; /* its poll's timeout looks again */
        tl_ready = n;
        tl_ready_cap = cap;
    }
    tl_ready[tl_nready++] = owner;
}

/* Moves the transfers curl has finished to done. */
static void collect(void)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(tl_multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE) continue;
        box *b = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&b);
        if (b) {
            b->done = 1;
            b->result = m->data.result;
            if (b->owner) owner_ready(b->owner);
            b->owner = NULL;
        }
    }
}

void *lls_httpc_multi(void)
{
    if (tl_multi == NULL) tl_multi = curl_multi_init();
    return tl_multi;
}

int lls_httpc_watch(lua_State *L, int idx, void *owner)
{
    box *b = luaL_checkudata(L, idx, BOX_MT);
    if (b->done || !b->in_multi) return 0;
    b->owner = owner;
    return 1;
}

void lls_httpc_poll(int ms, void (*ready)(void *ud, void *owner), void *ud)
{
    int running = 0;
    if (tl_multi) {
        curl_multi_perform(tl_multi, &running);
        collect();
        if (tl_nready == 0 && ms > 0) {
            curl_multi_poll(tl_multi, NULL, 0, ms, NULL);
            curl_multi_perform(tl_multi, &running);
            collect();
        }
    }
    for (size_t i = 0; i < tl_nready; i++) ready(ud, tl_ready[i]);
    tl_nready = 0;
}

void lls_httpc_wakeup(void *multi)
{
    if (multi) curl_multi_wakeup(multi);
}

void lls_httpc_thread_end(void)
{
    free(tl_ready);
    tl_ready = NULL;
    tl_nready = tl_ready_cap = 0;
    if (tl_multi) curl_multi_cleanup(tl_multi);
    tl_multi = NULL;
}

/* httpc.wait({handles...}, timeout_ms) -> {indices of the finished ones}:
 * drives the transfers until one of them has finished (or the time). */
static int l_wait(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    int64_t until = mono_ms() + (int64_t)luaL_optinteger(L, 2, 1000);
    int n = (int)lua_rawlen(L, 1);
    lua_newtable(L);
    for (;;) {
        int running = 0, found = 0;
        if (tl_multi) {
            curl_multi_perform(tl_multi, &running);
            collect();
        }
        for (int i = 1; i <= n; i++) {
            lua_rawgeti(L, 1, i);
            box *b = luaL_checkudata(L, -1, BOX_MT);
            lua_pop(L, 1);
            if (b->done || !b->in_multi) {
                lua_pushinteger(L, i);
                lua_rawseti(L, -2, ++found);
            }
        }
        int64_t now = mono_ms();
        if (found || now >= until || tl_multi == NULL) return 1;
        int64_t left = until - now;
        curl_multi_poll(tl_multi, NULL, 0, (int)(left > 1000 ? 1000 : left), NULL);
    }
}

/* httpc.done(handle) -> whether the transfer has finished. */
static int l_done(lua_State *L)
{
    box *b = luaL_checkudata(L, 1, BOX_MT);
    if (b->in_multi && !b->done && tl_multi) {
        int running = 0;
        curl_multi_perform(tl_multi, &running);
        collect();
    }
    lua_pushboolean(L, b->done || !b->in_multi);
    return 1;
}

/* httpc.finish(handle) -> status, headers, body (or raises, as request). */
static int l_finish(lua_State *L)
{
    box *b = luaL_checkudata(L, 1, BOX_MT);
    if (!b->in_multi) return raise(L, "httpc.finish: not a transfer in progress");
    if (!b->done) return raise(L, "http %s: not finished yet", b->what);
    curl_multi_remove_handle(tl_multi, b->h);
    b->in_multi = 0;
    return respond(L, b, b->result);
}

int luaopen_lodestone_httpc(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"request", l_request}, {"start", l_start}, {"wait", l_wait},
        {"finish", l_finish},   {"done", l_done},   {NULL, NULL},
    };
    luaL_checkversion(L);
    if (luaL_newmetatable(L, BOX_MT)) {
        lua_pushcfunction(L, l_box_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "__metatable");
    }
    lua_pop(L, 1);
    lua_newtable(L);
    luaL_setfuncs(L, funcs, 0);
    return 1;
}
