/* SPDX-License-Identifier: MIT
 * The daemon client (ls_client.h): one kept-alive connection to lodestoned's
 * unix socket per handle, requests bounded by one total deadline (a
 * non-blocking socket and poll()), and one transparent reconnect when the
 * daemon closed the kept connection. The response parser is parse.c's.
 */
#include "ls_config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "client_int.h"
#include "lodestone/ls_alloc.h"
#include "lodestone/ls_client.h"

struct ls_client {
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    ls_client_opts o;
    int fd;    /* the kept connection, -1: none */
    pid_t pid; /* process that opened fd */
    ls_buf in; /* bytes read for the current answer */
    ls_client_stats st;
};

/* How one exchange ended, for the reconnect decision. */
typedef enum {
    XR_OK,
    XR_FAILED,    /* err set; do not retry */
    XR_PEER_GONE, /* the daemon closed or reset before any byte of answer: retry once */
} xresult;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds left until deadline, never negative. */
static int left_ms(int64_t deadline)
{
    int64_t d = deadline - mono_ms();
    return d < 0 ? 0 : (int)d;
}

static void drop(ls_client_t *c)
{
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    c->st.connected = 0;
}

static ls_rc timed_out(ls_client_t *c, const char *doing, ls_err *err)
{
    return ls_err_set(err, LS_EIO, "lodestoned at %s: no answer within the timeout of %d ms (%s)",
                      c->path, c->o.timeout_ms, doing);
}

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
    ls_client_t *c = ls_calloc(1, sizeof *c);
    if (c == NULL) return ls_err_set(err, LS_ENOMEM, "client: out of memory");
    memcpy(c->path, socket_path, plen + 1);
    if (opts) c->o = *opts;
    if (c->o.timeout_ms == 0) c->o.timeout_ms = LS_CLIENT_TIMEOUT_DEFAULT;
    if (c->o.max_response == 0) c->o.max_response = LS_CLIENT_MAX_RESPONSE_DEFAULT;
    c->fd = -1;
    *out = c;
    return LS_OK;
}

void ls_client_close(ls_client_t *c)
{
    if (c == NULL) return;
    drop(c);
    ls_buf_free(&c->in);
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

/* ---- the connection ---- */

static ls_rc connect_socket(ls_client_t *c, int64_t deadline, ls_err *err)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return ls_err_set(err, LS_EIO, "socket: %s", strerror(errno));
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, c->path, strlen(c->path) + 1);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        int e = errno;
        if (e == EINPROGRESS) {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            int n = poll(&pfd, 1, left_ms(deadline));
            int soerr = 0;
            socklen_t sl = sizeof soerr;
            if (n == 0) {
                close(fd);
                return timed_out(c, "connecting", err);
            }
            if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr != 0) {
                close(fd);
                return ls_err_set(err, LS_EIO, "lodestoned at %s: connect: %s", c->path,
                                  strerror(soerr ? soerr : errno));
            }
        } else {
            close(fd);
            if (e == EAGAIN)
                return ls_err_set(err, LS_EBUSY,
                                  "lodestoned at %s: connect: its listen queue is full", c->path);
            return ls_err_set(err, LS_EIO, "lodestoned at %s: connect: %s", c->path, strerror(e));
        }
    }
    c->fd = fd;
    c->pid = getpid();
    c->st.connects++;
    c->st.connected = 1;
    return LS_OK;
}

/* Whether a kept connection is still usable: nothing to read on an idle
 * connection (an EOF, a reset or stray bytes all mean it is not). */
static int idle_ok(ls_client_t *c)
{
    if (c->pid != getpid()) return 0; /* inherited across fork: the parent's */
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    return poll(&pfd, 1, 0) == 0;
}

/* ---- one exchange on the current connection ---- */

static xresult send_all(ls_client_t *c, const ls_buf *req, int64_t deadline, ls_err *err)
{
    size_t off = 0;
    while (off < req->len) {
        if (mono_ms() >= deadline) { /* a daemon that reads slowly */
            timed_out(c, "sending the request", err);
            return XR_FAILED;
        }
        ssize_t n = send(c->fd, req->ptr + off, req->len - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pfd = {.fd = c->fd, .events = POLLOUT};
            int r = poll(&pfd, 1, left_ms(deadline));
            if (r == 0) {
                timed_out(c, "sending the request", err);
                return XR_FAILED;
            }
            if (r < 0 && errno != EINTR) {
                ls_err_set(err, LS_EIO, "poll: %s", strerror(errno));
                return XR_FAILED;
            }
            continue;
        }
        if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
            ls_err_set(err, LS_EIO, "lodestoned at %s closed the connection", c->path);
            return XR_PEER_GONE;
        }
        ls_err_set(err, LS_EIO, "lodestoned at %s: send: %s", c->path, strerror(errno));
        return XR_FAILED;
    }
    return XR_OK;
}

/* Reads more bytes into c->in. 1: read some, 0: EOF, -1: error or timeout
 * (err set; *reset when the peer reset the connection). */
static int read_more(ls_client_t *c, int64_t deadline, int *reset, ls_err *err)
{
    *reset = 0;
    for (;;) {
        if (mono_ms() >= deadline) { /* a daemon that answers a byte at a time */
            timed_out(c, "waiting for the answer", err);
            return -1;
        }
        if (ls_buf_reserve(&c->in, 4096, err) != LS_OK) return -1;
        ssize_t n = recv(c->fd, c->in.ptr + c->in.len, c->in.cap - c->in.len, 0);
        if (n > 0) {
            c->in.len += (size_t)n;
            return 1;
        }
        if (n == 0) return 0;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
            int r = poll(&pfd, 1, left_ms(deadline));
            if (r == 0) {
                timed_out(c, "waiting for the answer", err);
                return -1;
            }
            if (r < 0 && errno != EINTR) {
                ls_err_set(err, LS_EIO, "poll: %s", strerror(errno));
                return -1;
            }
            continue;
        }
        *reset = errno == ECONNRESET;
        ls_err_set(err, LS_EIO, "lodestoned at %s: recv: %s", c->path, strerror(errno));
        return -1;
    }
}

/* Whether the body of the answer with head h is complete in c->in; moves
 * it into resp when so. 1 done, 0 more, -1 error. */
static int too_large(const ls_client_t *c, ls_err *err)
{
    ls_err_set(err, LS_EFORMAT, "answer body larger than %zu bytes", c->o.max_response);
    return -1;
}

static int body_done(ls_client_t *c, const ls_client_head *h, int eof, ls_buf *resp, ls_err *err)
{
    const char *b = (const char *)c->in.ptr + h->head_len;
    size_t have = c->in.len - h->head_len, used = 0;
    switch (h->framing) {
    case LS_CLIENT_BODY_NONE: used = 0; break;
    case LS_CLIENT_BODY_LENGTH:
        if (h->content_length > c->o.max_response) return too_large(c, err);
        if (have < h->content_length) return 0;
        used = (size_t)h->content_length;
        break;
    case LS_CLIENT_BODY_CHUNKED: {
        int rc = ls_client_chunked_decode(b, have, c->o.max_response, resp, &used, err);
        if (rc <= 0) return rc;
        if (have != used) return -2; /* stray bytes after the answer */
        return 1;
    }
    case LS_CLIENT_BODY_CLOSE:
        if (have > c->o.max_response) return too_large(c, err);
        if (!eof) return 0;
        used = have;
        break;
    }
    if (ls_buf_set(resp, b, used, err) != LS_OK) return -1;
    return have == used ? 1 : -2;
}

static xresult receive(ls_client_t *c, int64_t deadline, int *status, int *keep, ls_buf *resp,
                       ls_err *err)
{
    ls_client_head h;
    int have_head = 0;
    ls_buf_clear(&c->in);
    for (;;) {
        int reset = 0;
        int r = read_more(c, deadline, &reset, err);
        int eof = r == 0;
        if (r < 0) return reset && c->in.len == 0 ? XR_PEER_GONE : XR_FAILED;
        if (!have_head) {
            if (c->in.len == 0) { /* eof before any byte */
                ls_err_set(err, LS_EIO, "lodestoned at %s closed the connection without answering",
                           c->path);
                return XR_PEER_GONE;
            }
            int hr = ls_client_head_parse((const char *)c->in.ptr, c->in.len, &h, err);
            if (hr < 0) return XR_FAILED;
            if (hr == 0) {
                if (!eof) continue;
                ls_err_set(err, LS_EIO, "lodestoned at %s closed the connection mid-answer (head)",
                           c->path);
                return XR_FAILED;
            }
            if (h.status < 200) {
                ls_err_set(err, LS_EFORMAT, "unexpected interim answer %d", h.status);
                return XR_FAILED;
            }
            have_head = 1;
        }
        int br = body_done(c, &h, eof, resp, err);
        if (br == 1 || br == -2) { /* -2: stray bytes after it; never reuse */
            *status = h.status;
            *keep = br == 1 && h.keep_alive && !eof;
            return XR_OK;
        }
        if (br < 0) return XR_FAILED;
        if (eof) {
            ls_err_set(err, LS_EIO, "lodestoned at %s closed the connection mid-answer (body)",
                       c->path);
            return XR_FAILED;
        }
    }
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

static ls_rc build_request(ls_buf *req, const char *method, const char *path, const void *body,
                           size_t len, ls_err *err)
{
    ls_buf_clear(req);
    ls_rc rc = ls_buf_printf(req, err,
                             "%s %s HTTP/1.1\r\nHost: lodestoned\r\n"
                             "Accept: application/json\r\n",
                             method, path);
    if (rc == LS_OK && (body != NULL || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0))
        rc = ls_buf_printf(req, err, "Content-Type: application/json\r\nContent-Length: %zu\r\n",
                           len);
    if (rc == LS_OK) rc = ls_buf_append(req, "\r\n", 2, err);
    if (rc == LS_OK && len > 0) rc = ls_buf_append(req, body, len, err);
    return rc;
}

static ls_rc exchange(ls_client_t *c, const ls_buf *req, int *status, ls_buf *resp, ls_err *e)
{
    int64_t deadline = mono_ms() + c->o.timeout_ms;
    for (int attempt = 0;; attempt++) {
        int replacing = attempt > 0;
        if (c->fd >= 0 && !idle_ok(c)) {
            drop(c);
            replacing = 1;
        }
        int reused = c->fd >= 0;
        if (!reused) {
            ls_rc rc = connect_socket(c, deadline, e);
            if (rc != LS_OK) return rc;
            if (replacing) c->st.reconnects++;
        }
        int keep = 0;
        xresult x = send_all(c, req, deadline, e);
        if (x == XR_OK) x = receive(c, deadline, status, &keep, resp, e);
        if (x == XR_OK) {
            if (!keep) drop(c);
            return LS_OK;
        }
        drop(c);
        if (x == XR_PEER_GONE && reused && attempt == 0) continue;
        return e->code;
    }
}

ls_rc ls_client_request(ls_client_t *c, const char *method, const char *path, const void *body,
                        size_t len, int *status, ls_buf *resp, ls_err *err)
{
    ls_err e = {LS_OK, ""};
    ls_buf req = LS_BUF_INIT;
    ls_rc rc = check_request_line(method, path, &e);
    if (rc == LS_OK && body == NULL && len != 0)
        rc = ls_err_set(&e, LS_EINVAL, "body: NULL with a length of %zu", len);
    if (rc == LS_OK) rc = build_request(&req, method, path, body, len, &e);
    if (rc == LS_OK) {
        c->st.requests++;
        rc = exchange(c, &req, status, resp, &e);
    }
    ls_buf_free(&req);
    if (rc != LS_OK && err) *err = e;
    return rc;
}
