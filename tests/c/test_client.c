/* SPDX-License-Identifier: MIT
 * The daemon client (native/client/) against a fake server thread on a unix
 * socket in a temporary directory: normal and chunked answers on one kept
 * connection, the daemon closing the kept connection (one transparent
 * reconnect, before or after the request was sent), no retry on a fresh
 * connection, a server that never answers (a timeout error naming the
 * timeout), garbage and oversized answers, no daemon at all, bad arguments,
 * allocation failures, a forked child. */
#include "helpers.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lodestone/ls_client.h"

/* ---- the fake server ---- */

typedef struct fake fake;
typedef void (*serve_fn)(fake *f);

struct fake {
    char *dir, *path;
    int lfd;
    pthread_t thread;
    serve_fn serve;
    int requests;     /* requests read, all connections */
    char first[8192]; /* the first request as read */
};

#define OK_ANSWER \
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}"

static void write_str(int fd, const char *s)
{
    size_t n = strlen(s), off = 0;
    while (off < n) {
        ssize_t w = send(fd, s + off, n - off, MSG_NOSIGNAL);
        if (w <= 0) return;
        off += (size_t)w;
    }
}

/* Reads one request (head and Content-Length body). 1: read, 0: EOF. */
static int read_request(fake *f, int fd)
{
    char buf[8192];
    size_t n = 0;
    for (;;) {
        ssize_t r = recv(fd, buf + n, sizeof buf - 1 - n, 0);
        if (r <= 0) return 0;
        n += (size_t)r;
        buf[n] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end == NULL) continue;
        size_t want = (size_t)(end + 4 - buf);
        const char *cl = strstr(buf, "Content-Length: ");
        if (cl && cl < end) want += (size_t)atoi(cl + 16);
        if (n < want) continue;
        if (f != NULL && f->requests++ == 0) snprintf(f->first, sizeof f->first, "%s", buf);
        return 1;
    }
}

static int accept_one(fake *f)
{
    return accept(f->lfd, NULL, NULL);
}

static void *server_main(void *ud)
{
    fake *f = ud;
    f->serve(f);
    return NULL;
}

static void fake_start(fake *f, serve_fn serve)
{
    memset(f, 0, sizeof *f);
    f->dir = th_mkdtemp("client");
    f->path = th_path(f->dir, "s.sock");
    f->serve = serve;
    f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(f->lfd >= 0);
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", f->path);
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(f->lfd, 8), 0);
    assert_int_equal(pthread_create(&f->thread, NULL, server_main, f), 0);
}

static void fake_stop(fake *f)
{
    shutdown(f->lfd, SHUT_RDWR); /* wakes a pending accept() */
    pthread_join(f->thread, NULL);
    close(f->lfd);
    th_rmtree(f->dir);
    free(f->path);
    free(f->dir);
}

static ls_client_t *client_for(fake *f, int timeout_ms, size_t max_response)
{
    ls_client_t *c = NULL;
    ls_err err;
    ls_client_opts o = {timeout_ms, max_response};
    th_ok(ls_client_open(&c, f->path, &o, &err), &err);
    return c;
}

/* ---- server behaviours ---- */

/* Two requests on one connection, answered with Content-Length. */
static void serve_two(fake *f)
{
    int fd = accept_one(f);
    for (int i = 0; i < 2 && read_request(f, fd); i++) write_str(fd, OK_ANSWER);
    read_request(f, fd); /* until the client goes */
    close(fd);
}

/* A chunked answer written in pieces, with an extension and a trailer. */
static void serve_chunked(fake *f)
{
    int fd = accept_one(f);
    if (read_request(f, fd)) {
        write_str(fd, "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWi");
        usleep(20000);
        write_str(fd, "ki\r\n5;ext=1\r\npedia\r\n");
        usleep(20000);
        write_str(fd, "0\r\nX-Trailer: t\r\n\r\n");
    }
    read_request(f, fd);
    close(fd);
}

/* Answers one request, closes; answers the next on a new connection. */
static void serve_close_idle(fake *f)
{
    int fd = accept_one(f);
    if (read_request(f, fd)) write_str(fd, OK_ANSWER);
    close(fd);
    fd = accept_one(f);
    if (read_request(f, fd)) write_str(fd, OK_ANSWER);
    read_request(f, fd);
    close(fd);
}

/* Answers one request, reads the next and closes without answering; then
 * answers it on a new connection. */
static void serve_close_after_send(fake *f)
{
    int fd = accept_one(f);
    if (read_request(f, fd)) write_str(fd, OK_ANSWER);
    read_request(f, fd);
    close(fd);
    fd = accept_one(f);
    if (read_request(f, fd)) write_str(fd, OK_ANSWER);
    read_request(f, fd);
    close(fd);
}

/* Reads a request and closes without a word. */
static void serve_hang_up(fake *f)
{
    int fd = accept_one(f);
    read_request(f, fd);
    close(fd);
}

/* Reads a request and never answers (until the client gives up). */
static void serve_silent(fake *f)
{
    int fd = accept_one(f);
    if (read_request(f, fd)) read_request(f, fd); /* EOF when the client drops it */
    close(fd);
}

/* Answers a byte every 30 ms: data keeps coming, never the whole answer in time. */
static void serve_drip(fake *f)
{
    int fd = accept_one(f);
    if (read_request(f, fd)) {
        const char *a = OK_ANSWER;
        for (size_t i = 0; a[i] != '\0'; i++) {
            char one[2] = {a[i], '\0'};
            if (send(fd, one, 1, MSG_NOSIGNAL) != 1) break;
            usleep(30000);
        }
    }
    close(fd);
}

static void serve_garbage(fake *f)
{
    int fd = accept_one(f);
    if (read_request(f, fd)) write_str(fd, "garbage, not HTTP\r\n\r\n");
    read_request(f, fd);
    close(fd);
}

static void serve_big(fake *f)
{
    int fd = accept_one(f);
    if (read_request(f, fd)) write_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
    read_request(f, fd);
    close(fd);
}

/* Reads a request of any size and answers it; f->requests becomes the
 * body's size in KiB. */
static void serve_large_request(fake *f)
{
    int fd = accept_one(f);
    char buf[65536];
    size_t n = 0, head = 0, want = 0;
    long long body = 0;
    for (;;) {
        ssize_t r = recv(fd, buf + (head ? 0 : n), head ? sizeof buf : sizeof buf - 1 - n, 0);
        if (r <= 0) break;
        if (head) {
            body += r;
        } else {
            n += (size_t)r;
            buf[n] = '\0';
            char *end = strstr(buf, "\r\n\r\n");
            if (end == NULL) continue;
            head = (size_t)(end + 4 - buf);
            const char *cl = strstr(buf, "Content-Length: ");
            want = cl ? (size_t)atol(cl + 16) : 0;
            body = (long long)(n - head);
        }
        if (body >= (long long)want) {
            f->requests = (int)(body / 1024); /* KiB received */
            write_str(fd, OK_ANSWER);
            break;
        }
    }
    read_request(NULL, fd);
    close(fd);
}

/* Every request on every connection, until accept fails. */
static void serve_forever(fake *f)
{
    for (;;) {
        int fd = accept_one(f);
        if (fd < 0) return;
        while (read_request(f, fd)) write_str(fd, OK_ANSWER);
        close(fd);
    }
}

/* Every connection in a thread of its own (detached: it touches no fake),
 * answering every request until the client closes it. */
static void *answer_all(void *ud)
{
    int fd = *(int *)ud;
    free(ud);
    while (read_request(NULL, fd)) write_str(fd, OK_ANSWER);
    close(fd);
    return NULL;
}

static void serve_concurrently(fake *f)
{
    for (;;) {
        int fd = accept_one(f);
        if (fd < 0) return;
        int *box = malloc(sizeof *box);
        pthread_t t;
        if (box == NULL) {
            close(fd);
            continue;
        }
        *box = fd;
        if (pthread_create(&t, NULL, answer_all, box) != 0) {
            free(box);
            close(fd);
            continue;
        }
        pthread_detach(t);
    }
}

/* ---- tests ---- */

static void test_client_keeps_one_connection(void **state)
{
    (void)state;
    fake f;
    fake_start(&f, serve_two);
    ls_client_t *c = client_for(&f, 2000, 0);
    ls_buf body = LS_BUF_INIT;
    ls_err err;
    int status = 0;
    th_ok(ls_client_request(c, "POST", "/v1/workflows/hello", "{}", 2, &status, &body, &err), &err);
    assert_int_equal(status, 200);
    assert_int_equal(body.len, 11);
    assert_memory_equal(body.ptr, "{\"ok\":true}", 11);
    th_ok(ls_client_request(c, "GET", "/v1/workflows/x", NULL, 0, &status, &body, &err), &err);
    assert_int_equal(status, 200);
    ls_client_stats st;
    ls_client_stats_get(c, &st);
    assert_int_equal(st.requests, 2);
    assert_int_equal(st.connects, 1);
    assert_int_equal(st.reconnects, 0);
    assert_int_equal(st.connected, 1);
    ls_client_close(c);
    fake_stop(&f);
    assert_non_null(strstr(f.first, "POST /v1/workflows/hello HTTP/1.1\r\n"));
    assert_non_null(strstr(f.first, "Content-Type: application/json\r\n"));
    assert_non_null(strstr(f.first, "Content-Length: 2\r\n\r\n{}"));
    ls_buf_free(&body);
}

static void test_client_sends_a_large_body(void **state)
{
    (void)state;
    fake f;
    fake_start(&f, serve_large_request);
    ls_client_t *c = client_for(&f, 5000, 0);
    size_t len = (size_t)4 << 20; /* far more than a socket buffer: send waits in poll */
    char *big = malloc(len);
    assert_non_null(big);
    memset(big, 'x', len);
    ls_buf body = LS_BUF_INIT;
    ls_err err;
    int status = 0;
    th_ok(ls_client_request(c, "POST", "/big", big, len, &status, &body, &err), &err);
    assert_int_equal(status, 200);
    ls_client_close(c);
    fake_stop(&f);
    assert_int_equal(f.requests, 4096); /* KiB, all of it */
    free(big);
    ls_buf_free(&body);
}

static void test_client_chunked_answer(void **state)
{
    (void)state;
    fake f;
    fake_start(&f, serve_chunked);
    ls_client_t *c = client_for(&f, 2000, 0);
    ls_buf body = LS_BUF_INIT;
    ls_err err;
    int status = 0;
    th_ok(ls_client_request(c, "GET", "/x", NULL, 0, &status, &body, &err), &err);
    assert_int_equal(status, 201);
    assert_int_equal(body.len, 9);
    assert_memory_equal(body.ptr, "Wikipedia", 9);
    ls_client_stats st;
    ls_client_stats_get(c, &st);
    assert_int_equal(st.connected, 1); /* chunked answers keep the connection */
    ls_client_close(c);
    fake_stop(&f);
    ls_buf_free(&body);
}

static void reconnect_case(serve_fn serve, int server_requests)
{
    fake f;
    fake_start(&f, serve);
    ls_client_t *c = client_for(&f, 2000, 0);
    ls_buf body = LS_BUF_INIT;
    ls_err err;
    int status = 0;
    th_ok(ls_client_request(c, "GET", "/a", NULL, 0, &status, &body, &err), &err);
    th_ok(ls_client_request(c, "GET", "/b", NULL, 0, &status, &body, &err), &err);
    assert_int_equal(status, 200);
    assert_memory_equal(body.ptr, "{\"ok\":true}", 11);
    ls_client_stats st;
    ls_client_stats_get(c, &st);
    assert_int_equal(st.requests, 2);
    assert_int_equal(st.connects, 2);
    assert_int_equal(st.reconnects, 1);
    ls_client_close(c);
    fake_stop(&f);
    assert_int_equal(f.requests, server_requests);
    ls_buf_free(&body);
}

static void test_client_reconnects_when_idle_connection_closed(void **state)
{
    (void)state;
    reconnect_case(serve_close_idle, 2);
}

static void test_client_resends_once_when_closed_after_send(void **state)
{
    (void)state;
    /* The second request reached the server twice: once on the dropped
     * connection, once on the new one. */
    reconnect_case(serve_close_after_send, 3);
}

static void test_client_no_retry_on_a_fresh_connection(void **state)
{
    (void)state;
    fake f;
    fake_start(&f, serve_hang_up);
    ls_client_t *c = client_for(&f, 2000, 0);
    ls_buf body = LS_BUF_INIT;
    ls_err err;
    int status = 0;
    assert_int_equal(ls_client_request(c, "GET", "/a", NULL, 0, &status, &body, &err), LS_EIO);
    assert_non_null(strstr(err.msg, "closed the connection without answering"));
    ls_client_stats st;
    ls_client_stats_get(c, &st);
    assert_int_equal(st.connects, 1);
    assert_int_equal(st.connected, 0);
    ls_client_close(c);
    fake_stop(&f);
    assert_int_equal(f.requests, 1);
    ls_buf_free(&body);
}

static void test_client_timeout_names_the_timeout(void **state)
{
    (void)state;
    fake f;
    fake_start(&f, serve_silent);
    ls_client_t *c = client_for(&f, 150, 0);
    ls_buf body = LS_BUF_INIT;
    ls_err err;
    int status = 0;
    assert_int_equal(ls_client_request(c, "GET", "/a", NULL, 0, &status, &body, &err), LS_EIO);
    assert_non_null(strstr(err.msg, "no answer within the timeout of 150 ms"));
    assert_non_null(strstr(err.msg, "waiting for the answer"));
    assert_non_null(strstr(err.msg, f.path));
    ls_client_stats st;
    ls_client_stats_get(c, &st);
    assert_int_equal(st.connected, 0); /* dropped: the server thread sees EOF and ends */
    ls_client_close(c);
    fake_stop(&f);
    ls_buf_free(&body);
}

static void test_client_timeout_bounds_a_slow_answer(void **state)
{
    (void)state;
    fake f;
    fake_start(&f, serve_drip);
    ls_client_t *c = client_for(&f, 150, 0);
    ls_buf body = LS_BUF_INIT;
    ls_err err;
    int status = 0;
    assert_int_equal(ls_client_request(c, "GET", "/a", NULL, 0, &status, &body, &err), LS_EIO);
    assert_non_null(strstr(err.msg, "no answer within the timeout of 150 ms"));
    ls_client_close(c);
    fake_stop(&f);
    ls_buf_free(&body);
}

static void test_client_garbage_answer(void **state)
{
    (void)state;
    fake f;
    fake_start(&f, serve_garbage);
    ls_client_t *c = client_for(&f, 2000, 0);
    ls_buf body = LS_BUF_INIT;
    ls_err err;
    int status = 0;
    assert_int_equal(ls_client_request(c, "GET", "/a", NULL, 0, &status, &body, &err), LS_EFORMAT);
    assert_non_null(strstr(err.msg, "not an HTTP/1.x answer: "));
    ls_client_stats st;
    ls_client_stats_get(c, &st);
    assert_int_equal(st.connected, 0);
    ls_client_close(c);
    fake_stop(&f);
    ls_buf_free(&body);
}

/* An answer larger than max is refused, and its connection never reused. */
static void too_large_case(serve_fn serve, size_t max)
{
    fake f;
    fake_start(&f, serve);
    ls_client_t *c = client_for(&f, 2000, max);
    ls_buf body = LS_BUF_INIT;
    ls_err err;
    int status = 0;
    char want[64];
    snprintf(want, sizeof want, "answer body larger than %zu bytes", max);
    assert_int_equal(ls_client_request(c, "GET", "/a", NULL, 0, &status, &body, &err), LS_EFORMAT);
    assert_string_equal(err.msg, want);
    ls_client_stats st;
    ls_client_stats_get(c, &st);
    assert_int_equal(st.connected, 0);
    ls_client_close(c);
    fake_stop(&f);
    ls_buf_free(&body);
}

static void test_client_answer_too_large(void **state)
{
    (void)state;
    too_large_case(serve_big, 10); /* Content-Length says so before the body */
}

static void test_client_chunked_answer_too_large(void **state)
{
    (void)state;
    too_large_case(serve_chunked, 5); /* no length up front: stopped as it grows */
}

static void test_client_no_daemon(void **state)
{
    (void)state;
    char *dir = th_mkdtemp("client");
    char *path = th_path(dir, "absent.sock");
    ls_client_t *c = NULL;
    ls_err err;
    th_ok(ls_client_open(&c, path, NULL, &err), &err);
    ls_buf body = LS_BUF_INIT;
    int status = 0;
    assert_int_equal(ls_client_request(c, "GET", "/healthz", NULL, 0, &status, &body, &err),
                     LS_EIO);
    char want[600];
    snprintf(want, sizeof want, "lodestoned at %s: connect: No such file or directory", path);
    assert_string_equal(err.msg, want);
    ls_client_close(c);
    th_rmtree(dir);
    free(path);
    free(dir);
}

static void test_client_bad_arguments(void **state)
{
    (void)state;
    ls_client_t *c = NULL;
    ls_err err;
    assert_int_equal(ls_client_open(&c, "", NULL, &err), LS_EINVAL);
    assert_string_equal(err.msg, "socket: a path is required");
    char longpath[200];
    memset(longpath, 'a', sizeof longpath - 1);
    longpath[sizeof longpath - 1] = '\0';
    assert_int_equal(ls_client_open(&c, longpath, NULL, &err), LS_EINVAL);
    assert_non_null(strstr(err.msg, "socket: path longer than 107 bytes"));
    ls_client_opts o = {-1, 0};
    assert_int_equal(ls_client_open(&c, "/x.sock", &o, &err), LS_EINVAL);
    assert_string_equal(err.msg, "timeout_ms: must be positive, got -1");
    assert_null(c);

    th_ok(ls_client_open(&c, "/nonexistent/x.sock", NULL, &err), &err);
    ls_buf body = LS_BUF_INIT;
    int status;
    assert_int_equal(ls_client_request(c, "get", "/a", NULL, 0, &status, &body, &err), LS_EINVAL);
    assert_string_equal(err.msg, "method: upper-case letters only");
    assert_int_equal(ls_client_request(c, "GET", "a", NULL, 0, &status, &body, &err), LS_EINVAL);
    assert_string_equal(err.msg, "path: must start with '/'");
    assert_int_equal(ls_client_request(c, "GET", "/a b", NULL, 0, &status, &body, &err), LS_EINVAL);
    assert_string_equal(err.msg, "path: byte 3 (0x20) must be percent-encoded");
    assert_int_equal(ls_client_request(c, "GET", "/a\r\nX: y", NULL, 0, &status, &body, &err),
                     LS_EINVAL);
    assert_int_equal(ls_client_request(c, "POST", "/a", NULL, 3, &status, &body, &err), LS_EINVAL);
    assert_string_equal(err.msg, "body: NULL with a length of 3");
    ls_client_stats st;
    ls_client_stats_get(c, &st);
    assert_int_equal(st.requests, 0); /* none of them was sent */
    ls_client_close(c);
    ls_client_close(NULL);
}

typedef struct {
    const char *path;
} alloc_case;

static ls_rc open_and_request(void *ud)
{
    alloc_case *a = ud;
    ls_client_t *c = NULL;
    ls_err err;
    ls_rc rc = ls_client_open(&c, a->path, NULL, &err);
    if (rc != LS_OK) return rc;
    ls_buf body = LS_BUF_INIT;
    int status = 0;
    rc =
        ls_client_request(c, "POST", "/v1/workflows/t", "{\"id\":\"a\"}", 10, &status, &body, &err);
    if (rc == LS_OK && (status != 200 || body.len != 11)) rc = LS_EFORMAT;
    ls_buf_free(&body);
    ls_client_close(c);
    return rc;
}

static void test_client_allocation_failures(void **state)
{
    (void)state;
    fake f;
    fake_start(&f, serve_forever);
    alloc_case a = {f.path};
    assert_true(th_each_alloc_failure(open_and_request, &a) >= 3);
    fake_stop(&f);
}

static void test_client_forked_child_opens_its_own_connection(void **state)
{
    (void)state;
    fake f;
    fake_start(&f, serve_concurrently);
    ls_client_t *c = client_for(&f, 2000, 0);
    ls_buf body = LS_BUF_INIT;
    ls_err err;
    int status = 0;
    th_ok(ls_client_request(c, "GET", "/parent", NULL, 0, &status, &body, &err), &err);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        ls_client_stats st;
        ls_rc rc = ls_client_request(c, "GET", "/child", NULL, 0, &status, &body, &err);
        ls_client_stats_get(c, &st);
        _exit(rc == LS_OK && status == 200 && st.connects == 2 ? 0 : 1);
    }
    int ws = 0;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    /* the parent's connection was left alone */
    th_ok(ls_client_request(c, "GET", "/parent", NULL, 0, &status, &body, &err), &err);
    ls_client_stats st;
    ls_client_stats_get(c, &st);
    assert_int_equal(st.connects, 1);
    ls_client_close(c);
    fake_stop(&f);
    ls_buf_free(&body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_keeps_one_connection),
        cmocka_unit_test(test_client_sends_a_large_body),
        cmocka_unit_test(test_client_chunked_answer),
        cmocka_unit_test(test_client_reconnects_when_idle_connection_closed),
        cmocka_unit_test(test_client_resends_once_when_closed_after_send),
        cmocka_unit_test(test_client_no_retry_on_a_fresh_connection),
        cmocka_unit_test(test_client_timeout_names_the_timeout),
        cmocka_unit_test(test_client_timeout_bounds_a_slow_answer),
        cmocka_unit_test(test_client_garbage_answer),
        cmocka_unit_test(test_client_answer_too_large),
        cmocka_unit_test(test_client_chunked_answer_too_large),
        cmocka_unit_test(test_client_no_daemon),
        cmocka_unit_test(test_client_bad_arguments),
        cmocka_unit_test(test_client_allocation_failures),
        cmocka_unit_test(test_client_forked_child_opens_its_own_connection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
