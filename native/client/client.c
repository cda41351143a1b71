/* SPDX-License-Identifier: MIT
 * The daemon client (ls_client.h) over libcurl: one easy handle per client,
 * whose connection cache keeps one connection to lodestoned's unix socket
 * alive between requests. libcurl bounds each request by one total timeout
 * and, when a kept connection turns out closed (before sending, or with no
 * byte of answer after it), sends the request once more on a fresh one.
 * This file checks arguments, keeps the counters and turns libcurl's
 * outcomes into the project's errors, naming the socket.
 */
#include "ls_config.h"

#include <curl/curl.h>
#include <errno.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "lodestone/ls_alloc.h"
#include "lodestone/ls_client.h"
#include "policy/curl_init.h"

#define URL_PREFIX "http://lodestoned" /* the Host header; the socket decides where */

struct ls_client {
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    ls_client_opts o;
    CURL *h;        /* NULL until the first request, or after a disconnect */
    pid_t pid;      /* process that made h */
    ls_buf url;     /* URL_PREFIX and the request's path */
    ls_buf *resp;   /* the current answer's body (the caller's buffer) */
    int too_large;  /* the answer outgrew o.max_response */
    ls_rc write_rc; /* LS_ENOMEM when the body could not be kept */
    struct curl_slist *hdr_body, *hdr_plain;
    char curl_msg[CURL_ERROR_SIZE];
    ls_client_stats st;
};

/* ---- opening and closing ---- */

ls_rc ls_client_open(ls_client_t **out, const char *socket_path, const ls_client_opts *opts,
                     ls_err *err)
{
    *out = NULL;
    if (socket_path == NULL || socket_path[0] == '\0')
        return ls_err_set(err, LS_EINVAL, "socket: a path is required");
    size_t plen = strlen(socket_path);
    if (plen >= sizeof(((struct sockaddr_un *)0)->sun_path))
        return ls_err_set(err, LS_EINVAL, "socket: path longer than %zu bytes: %s",
                          sizeof(((struct sockaddr_un *)0)->sun_path) - 1, socket_path);
    if (opts && (opts->timeout_ms < 0))
        return ls_err_set(err, LS_EINVAL, "timeout_ms: must be positive, got %d", opts->timeout_ms);
    const char *why = ls_curl_init();
    if (why) return ls_err_set(err, LS_EIO, "client: libcurl: %s", why);
    ls_client_t *c = ls_calloc(1, sizeof *c);
    if (c == NULL) return ls_err_set(err, LS_ENOMEM, "client: out of memory");
    memcpy(c->path, socket_path, plen + 1);
    if (opts) c->o = *opts;
    if (c->o.timeout_ms == 0) c->o.timeout_ms = LS_CLIENT_TIMEOUT_DEFAULT;
    if (c->o.max_response == 0) c->o.max_response = LS_CLIENT_MAX_RESPONSE_DEFAULT;
    c->url = (ls_buf)LS_BUF_INIT;
    *out = c;
    return LS_OK;
}

/* Drops the handle and with it the kept connection. */
static void drop(ls_client_t *c)
{
    if (c->h) curl_easy_cleanup(c->h);
    c->h = NULL;
    c->st.connected = 0;
}

void ls_client_close(ls_client_t *c)
{
    if (c == NULL) return;
    drop(c);
    curl_slist_free_all(c->hdr_body);
    curl_slist_free_all(c->hdr_plain);
    ls_buf_free(&c->url);
    ls_free(c);
}

void ls_client_set_timeout(ls_client_t *c, int timeout_ms)
{
    if (timeout_ms > 0) c->o.timeout_ms = timeout_ms;
}

void ls_client_disconnect(ls_client_t *c)
{
    drop(c);
}

void ls_client_stats_get(const ls_client_t *c, ls_client_stats *out)
{
    *out = c->st;
}

/* ---- the handle ---- */

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    ls_client_t *c = ud;
    size_t len = size * n;
    if (c->resp->len + len > c->o.max_response) {
        c->too_large = 1;
        return 0; /* libcurl stops the transfer: CURLE_WRITE_ERROR */
    }
    ls_err e;
    if (ls_buf_append(c->resp, p, len, &e) != LS_OK) {
        c->write_rc = LS_ENOMEM;
        return 0;
    }
    return len;
}

/* The request headers, with or without a body; NULL when out of memory.
 * No "Expect: 100-continue": the daemon reads bodies without it. */
static struct curl_slist *header_list(int with_body)
{
    static const char *const lines[] = {"Accept: application/json",
                                        "Content-Type: application/json", "Expect:"};
    struct curl_slist *l = NULL;
    for (size_t i = 0; i < (with_body ? 3u : 1u); i++) {
        struct curl_slist *n = curl_slist_append(l, lines[i]);
        if (n == NULL) {
            curl_slist_free_all(l);
            return NULL;
        }
        l = n;
    }
    return l;
}

/* The handle, made on first use (and anew in a forked child, which must
 * never talk on its parent's connection). LS_ENOMEM when libcurl cannot
 * make one. */
static ls_rc handle(ls_client_t *c, ls_err *err)
{
    if (c->h && c->pid != getpid()) {
        /* The copy of the parent's connection is closed in this process only. */
        drop(c);
    }
    if (c->h) return LS_OK;
    if (c->hdr_plain == NULL) {
        c->hdr_plain = header_list(0);
        c->hdr_body = header_list(1);
        if (c->hdr_plain == NULL || c->hdr_body == NULL) {
            curl_slist_free_all(c->hdr_plain);
            curl_slist_free_all(c->hdr_body);
            c->hdr_plain = c->hdr_body = NULL;
            return ls_err_set(err, LS_ENOMEM, "client: out of memory");
        }
    }
    CURL *h = curl_easy_init();
    if (h == NULL) return ls_err_set(err, LS_ENOMEM, "client: out of memory (libcurl handle)");
    curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, c->path);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http");
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_MAXCONNECTS, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->curl_msg);
    c->h = h;
    c->pid = getpid();
    return LS_OK;
}

/* ---- requests ---- */

static ls_rc check_request_line(const char *method, const char *path, ls_err *err)
{
    size_t ml = method ? strlen(method) : 0;
    if (ml == 0 || ml > 16) return ls_err_set(err, LS_EINVAL, "method: 1 to 16 letters");
    for (size_t i = 0; i < ml; i++)
        if (method[i] < 'A' || method[i] > 'Z')
            return ls_err_set(err, LS_EINVAL, "method: upper-case letters only");
    if (path == NULL || path[0] != '/')
        return ls_err_set(err, LS_EINVAL, "path: must start with '/'");
    size_t pl = strlen(path);
    if (pl > 8192) return ls_err_set(err, LS_EINVAL, "path: longer than 8192 bytes");
    for (size_t i = 0; i < pl; i++) {
        unsigned char ch = (unsigned char)path[i];
        if (ch <= 0x20 || ch == 0x7f)
            return ls_err_set(err, LS_EINVAL, "path: byte %zu (0x%02x) must be percent-encoded",
                              i + 1, ch);
    }
    return LS_OK;
}

/* Sets the per-request options: method, URL, headers, body, limits. */
static ls_rc prepare(ls_client_t *c, const char *method, const char *path, const void *body,
                     size_t len, ls_err *err)
{
    ls_buf_clear(&c->url);
    ls_rc rc = ls_buf_printf(&c->url, err, URL_PREFIX "%s", path);
    if (rc != LS_OK) return rc;
    CURL *h = c->h;
    curl_easy_setopt(h, CURLOPT_URL, (const char *)c->url.ptr);
    int with_body = body != NULL || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0;
    if (with_body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? (const char *)body : "");
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, c->hdr_body);
    } else {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, c->hdr_plain);
    }
    curl_easy_setopt(h, CURLOPT_NOBODY, strcmp(method, "HEAD") == 0 ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST,
                     strcmp(method, with_body ? "POST" : "GET") == 0 ? NULL : method);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)c->o.timeout_ms);
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->o.max_response);
    return LS_OK;
}

/* What the request was doing when the timeout struck. */
static const char *phase(CURL *h, size_t len)
{
    curl_off_t connected = 0, sent = 0;
    curl_easy_getinfo(h, CURLINFO_CONNECT_TIME_T, &connected);
    curl_easy_getinfo(h, CURLINFO_SIZE_UPLOAD_T, &sent);
    if (connected == 0) return "connecting";
    if ((size_t)sent < len) return "sending the request";
    return "waiting for the answer";
}

/* The project's error for libcurl's outcome rc. */
static ls_rc failure(ls_client_t *c, CURLcode rc, size_t len, ls_err *err)
{
    const char *msg = c->curl_msg[0] ? c->curl_msg : curl_easy_strerror(rc);
    long os_errno = 0;
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        return ls_err_set(err, LS_EIO,
                          "lodestoned at %s: no answer within the timeout of %d ms (%s)", c->path,
                          c->o.timeout_ms, phase(c->h, len));
    case CURLE_COULDNT_CONNECT:
        curl_easy_getinfo(c->h, CURLINFO_OS_ERRNO, &os_errno);
        if (os_errno == EAGAIN)
            return ls_err_set(err, LS_EBUSY, "lodestoned at %s: connect: its listen queue is full",
                              c->path);
        return ls_err_set(err, LS_EIO, "lodestoned at %s: connect: %s", c->path,
                          os_errno ? strerror((int)os_errno) : msg);
    case CURLE_GOT_NOTHING:
        return ls_err_set(err, LS_EIO, "lodestoned at %s closed the connection without answering",
                          c->path);
    case CURLE_FILESIZE_EXCEEDED:
        return ls_err_set(err, LS_EFORMAT, "answer body larger than %zu bytes", c->o.max_response);
    case CURLE_WRITE_ERROR:
        if (c->write_rc == LS_ENOMEM) return ls_err_set(err, LS_ENOMEM, "client: out of memory");
        if (c->too_large)
            return ls_err_set(err, LS_EFORMAT, "answer body larger than %zu bytes",
                              c->o.max_response);
        break;
    case CURLE_OUT_OF_MEMORY: return ls_err_set(err, LS_ENOMEM, "client: out of memory (libcurl)");
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_WEIRD_SERVER_REPLY:
        return ls_err_set(err, LS_EFORMAT, "not an HTTP/1.x answer: %s", msg);
    default: break;
    }
    return ls_err_set(err, LS_EIO, "lodestoned at %s: %s", c->path, msg);
}

ls_rc ls_client_request(ls_client_t *c, const char *method, const char *path, const void *body,
                        size_t len, int *status, ls_buf *resp, ls_err *err)
{
    ls_err e = {LS_OK, ""};
    ls_rc rc = check_request_line(method, path, &e);
    if (rc == LS_OK && body == NULL && len != 0)
        rc = ls_err_set(&e, LS_EINVAL, "body: NULL with a length of %zu", len);
    if (rc == LS_OK) rc = handle(c, &e);
    if (rc == LS_OK) rc = prepare(c, method, path, body, len, &e);
    if (rc != LS_OK) {
        if (err) *err = e;
        return rc;
    }
    c->st.requests++;
    int had_connection = c->st.connected;
    ls_buf_clear(resp);
    c->resp = resp;
    c->too_large = 0;
    c->write_rc = LS_OK;
    c->curl_msg[0] = '\0';
    CURLcode cr = curl_easy_perform(c->h);
    c->resp = NULL;

    long connects = 0, code = 0;
    curl_socket_t kept = CURL_SOCKET_BAD;
    curl_easy_getinfo(c->h, CURLINFO_NUM_CONNECTS, &connects);
    curl_easy_getinfo(c->h, CURLINFO_ACTIVESOCKET, &kept);
    c->st.connects += (uint64_t)connects;
    if (had_connection && connects > 0) c->st.reconnects++; /* the daemon had closed ours */
    c->st.connected = kept != CURL_SOCKET_BAD;
    if (cr != CURLE_OK) {
        failure(c, cr, len, &e);
        if (err) *err = e;
        return e.code;
    }
    curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &code);
    *status = (int)code;
    return LS_OK;
}
