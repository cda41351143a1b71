/* SPDX-License-Identifier: MIT
 * flowload: a closed-loop load generator for lodestoned's HTTP API on a
 * unix socket. N keep-alive connections, driven by one thread's epoll
 * loop, each start a run (POST /v1/workflows/TYPE) and wait for its
 * result (GET .../result?wait=60), again and again, until RUNS runs have
 * completed. Prints runs per second and start-to-result latency
 * percentiles. Used by bench/workflows.sh.
 *
 *   flowload SOCKET TYPE CONCURRENCY RUNS [start-only|one-request|named]
 *     one-request: POST .../TYPE?wait=60 starts a run and answers its result
 *     named: the same, each start with an id (idempotent starts)
 *   flowload --fsync-ref DIR     small appends with fdatasync: the disk's rate
 *   flowload --burst SOCKET N PID
 *     N connections, each answered once, then the daemon PID is stopped
 *     (SIGSTOP) while every connection sends a request, and continued: it
 *     finds N requests ready at once. Exits 0 when all N are answered
 *     within 30 s (used by tests/e2e/workflow_starts.sh)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/resource.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static const char *sock_path, *wf_type;
static long total_runs;
static int start_only;
static int one_request; /* POST ...?wait=60: start and result in one request */
static int named;       /* ... each start with an "id" */
static long next_run, done_runs, failures;
static double *lat_ms;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int connect_unix(void)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock_path);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        if (fd >= 0) close(fd);
        return -1;
    }
    return fd;
}

/* One keep-alive connection of the event loop: a request on its way out,
 * then its response coming in. */
typedef struct {
    int fd;
    long run;       /* the run it is driving (index into lat_ms) */
    double t0;      /* when that run's start was sent */
    int getting;    /* the request out is the result's GET (not the start) */
    char out[1024]; /* the request */
    size_t out_len, out_off;
    char in[65536]; /* the response so far */
    size_t in_len;
} conn;

static int epfd;
static long active; /* connections still driving runs */

static void fail(conn *c, const char *what, int st, const char *body)
{
    fprintf(stderr, "%s: status %d: %.200s\n", what, st, st > 0 && body ? body : "");
    failures++;
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    active--;
}

/* Writes what is left of c's request; waits for the socket otherwise. */
static void flush_out(conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (n < 0 && errno == EAGAIN) {
            struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
            epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
            return;
        }
        if (n <= 0) {
            fail(c, "write", -1, NULL);
            return;
        }
        c->out_off += (size_t)n;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Starts the next run on c, or retires c when every run is taken. */
static void next(conn *c)
{
    if (next_run >= total_runs) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
        active--;
        return;
    }
    c->run = next_run++;
    c->t0 = now_s();
    c->getting = 0;
    c->in_len = 0;
    char payload[128];
    if (named)
        snprintf(payload, sizeof payload, "{\"id\":\"fl-%ld-%ld\",\"input\":{\"n\":1}}",
                 (long)getpid(), c->run);
    else
        snprintf(payload, sizeof payload, "{\"input\":{\"n\":1}}");
    c->out_len = (size_t)snprintf(c->out, sizeof c->out,
                                  "POST /v1/workflows/%s%s HTTP/1.1\r\nHost: d\r\nContent-Type: "
                                  "application/json\r\nContent-Length: %zu\r\n\r\n%s",
                                  wf_type, one_request ? "?wait=60" : "", strlen(payload), payload);
    c->out_off = 0;
    flush_out(c);
}

/* A whole response is in: status st, body. */
static void answered(conn *c, int st, const char *body)
{
    if (one_request || c->getting) {
        if (st != 200 || strstr(body, "\"completed\"") == NULL) {
            fail(c, one_request ? "start?wait" : "result", st, body);
            return;
        }
    } else {
        if (st != 201) {
            fail(c, "start", st, body);
            return;
        }
        if (!start_only) {
            const char *p = strstr(body, "\"id\":\"");
            size_t n = p ? strcspn(p + 6, "\"") : 0;
            if (p == NULL || n == 0 || n > 200) {
                fail(c, "start (no id)", st, body);
                return;
            }
            c->getting = 1;
            c->in_len = 0;
            c->out_len = (size_t)snprintf(
                c->out, sizeof c->out,
                "GET /v1/workflows/%.*s/result?wait=60 HTTP/1.1\r\nHost: d\r\n\r\n", (int)n, p + 6);
            c->out_off = 0;
            flush_out(c);
            return;
        }
    }
    lat_ms[c->run] = (now_s() - c->t0) * 1000.0;
    done_runs++;
    next(c);
}

/* The body of the whole HTTP response in in (NUL-terminated, len bytes),
 * or NULL while it is not all there. */
static const char *whole_response(const char *in, size_t len)
{
    const char *hend = strstr(in, "\r\n\r\n");
    if (hend == NULL) return NULL;
    const char *cl = strcasestr(in, "Content-Length:");
    long clen = cl && cl < hend ? strtol(cl + 15, NULL, 10) : 0;
    return (long)(len - (size_t)(hend + 4 - in)) >= clen ? hend + 4 : NULL;
}

/* Reads what c's socket has; answers a response once it is whole. */
static void readable(conn *c)
{
    for (;;) {
        if (c->in_len + 1 >= sizeof c->in) {
            fail(c, "response too large", -1, NULL);
            return;
        }
        ssize_t n = read(c->fd, c->in + c->in_len, sizeof c->in - 1 - c->in_len);
        if (n < 0 && errno == EAGAIN) return;
        if (n <= 0) {
            fail(c, "read (connection closed)", -1, NULL);
            return;
        }
        c->in_len += (size_t)n;
        c->in[c->in_len] = '\0';
        const char *body = whole_response(c->in, c->in_len);
        if (body == NULL) continue;
        answered(c, atoi(c->in + 9), body);
        return;
    }
}

/* The closed loop: conc connections, each driving one run at a time, in
 * one thread (a thread per connection would load the scheduler of a small
 * machine as much as the daemon it measures). */
static int drive(int conc)
{
    epfd = epoll_create1(0);
    conn *cs = calloc((size_t)conc, sizeof *cs);
    if (epfd < 0 || cs == NULL) {
        perror("epoll/calloc");
        free(cs);
        return -1;
    }
    for (int i = 0; i < conc; i++) {
        cs[i].fd = connect_unix();
        if (cs[i].fd < 0) {
            perror("connect");
            failures++;
            continue;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &cs[i]};
        epoll_ctl(epfd, EPOLL_CTL_ADD, cs[i].fd, &ev);
        active++;
    }
    for (int i = 0; i < conc; i++)
        if (cs[i].fd >= 0) next(&cs[i]);
    struct epoll_event evs[256];
    while (active > 0) {
        int n = epoll_wait(epfd, evs, 256, 1000);
        if (n < 0 && errno != EINTR) {
            perror("epoll_wait");
            break;
        }
        for (int i = 0; i < n; i++) {
            conn *c = evs[i].data.ptr;
            if (c->fd < 0) continue;
            if (evs[i].events & EPOLLOUT) flush_out(c);
            if (c->fd >= 0 && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) readable(c);
        }
    }
    free(cs);
    close(epfd);
    return 0;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int fsync_ref(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/fsync-ref", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
    if (fd < 0) {
        perror(path);
        return 1;
    }
    char rec[128];
    memset(rec, 'x', sizeof rec);
    int n = 0;
    double t0 = now_s();
    while (now_s() - t0 < 2.0) {
        if (write(fd, rec, sizeof rec) != (ssize_t)sizeof rec || fdatasync(fd) != 0) {
            perror("write/fdatasync");
            return 1;
        }
        n++;
    }
    double el = now_s() - t0;
    close(fd);
    unlink(path);
    printf("fsync_ref: %d appends of 128 B with fdatasync in %.2f s: %.0f syncs/s (%.0f us each)\n",
           n, el, n / el, el / n * 1e6);
    return 0;
}

/* Reads one HTTP response from blocking fd until now_s() reaches deadline;
 * returns its status, or -1 (closed, malformed, too late). */
static int read_response(int fd, double deadline)
{
    char in[16384];
    size_t len = 0;
    for (;;) {
        int left = (int)((deadline - now_s()) * 1000);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        /* (past the deadline, what has arrived still counts) */
        if (poll(&p, 1, left > 0 ? left : 0) != 1) return -1;
        ssize_t n = read(fd, in + len, sizeof in - 1 - len);
        if (n <= 0) return -1;
        len += (size_t)n;
        in[len] = '\0';
        if (whole_response(in, len)) return atoi(in + 9);
        if (len + 1 >= sizeof in) return -1;
    }
}

/* Whether every thread of process pid is stopped. */
static int all_stopped(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (d == NULL) return 0;
    int stopped = 1;
    struct dirent *e;
    while (stopped && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char sp[300], buf[512];
        snprintf(sp, sizeof sp, "/proc/%d/task/%s/stat", (int)pid, e->d_name);
        FILE *f = fopen(sp, "r");
        size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
        if (f) fclose(f);
        buf[n] = '\0';
        const char *st = strrchr(buf, ')');
        if (st == NULL || st[1] != ' ' || (st[2] != 'T' && st[2] != 't')) stopped = 0;
    }
    closedir(d);
    return stopped;
}

static int burst(int n, pid_t pid)
{
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: d\r\n\r\n";
    struct rlimit rl; /* n sockets: past the soft limit of 1,024 files if need be */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)n + 64 &&
        rl.rlim_max >= (rlim_t)n + 64) {
        rl.rlim_cur = (rlim_t)n + 64;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    int *fds = calloc((size_t)n, sizeof *fds);
    int answered = 0, rc = 1;
    if (fds == NULL) return 1;
    for (int i = 0; i < n; i++) fds[i] = -1;
    for (int i = 0; i < n; i++) { /* each accepted and answered once */
        int fd = connect_unix();
        if (fd < 0 || fcntl(fd, F_SETFL, 0) != 0) {
            perror("flowload --burst: connect");
            if (fd >= 0) close(fd);
            goto out;
        }
        fds[i] = fd;
        if (write(fd, req, sizeof req - 1) != (ssize_t)(sizeof req - 1) ||
            read_response(fd, now_s() + 30) != 200) {
            fprintf(stderr, "flowload --burst: connection %d: no answer to its first request\n", i);
            goto out;
        }
    }
    if (kill(pid, SIGSTOP) != 0) {
        perror("flowload --burst: SIGSTOP");
        goto out;
    }
    for (int t = 0; t < 500 && !all_stopped(pid); t++) usleep(10000);
    if (!all_stopped(pid)) fprintf(stderr, "flowload --burst: the daemon did not stop\n");
    int sent = 1;
    for (int i = 0; i < n; i++)
        if (write(fds[i], req, sizeof req - 1) != (ssize_t)(sizeof req - 1)) sent = 0;
    kill(pid, SIGCONT);
    if (!sent) {
        perror("flowload --burst: write");
        goto out;
    }
    double deadline = now_s() + 30;
    for (int i = 0; i < n; i++)
        if (read_response(fds[i], deadline) == 200) answered++;
    printf("burst: %d of %d requests sent at once answered\n", answered, n);
    rc = answered == n ? 0 : 1;
out:
    for (int i = 0; i < n; i++)
        if (fds[i] >= 0) close(fds[i]);
    free(fds);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--burst") == 0) {
        sock_path = argv[2];
        int n = atoi(argv[3]);
        pid_t pid = (pid_t)atoi(argv[4]);
        if (n < 1 || pid < 1) return 2;
        return burst(n, pid);
    }
    if (argc == 3 && strcmp(argv[1], "--fsync-ref") == 0) return fsync_ref(argv[2]);
    if (argc < 5) {
        fprintf(stderr,
                "usage: flowload SOCKET TYPE CONCURRENCY RUNS [start-only|one-request|named]\n"
                "       flowload --fsync-ref DIR\n"
                "       flowload --burst SOCKET N DAEMON_PID\n");
        return 2;
    }
    sock_path = argv[1];
    wf_type = argv[2];
    int conc = atoi(argv[3]);
    total_runs = atol(argv[4]);
    start_only = argc > 5 && strcmp(argv[5], "start-only") == 0;
    named = argc > 5 && strcmp(argv[5], "named") == 0;
    one_request = named || (argc > 5 && strcmp(argv[5], "one-request") == 0);
    if (conc < 1 || total_runs < 1) return 2;
    lat_ms = calloc((size_t)total_runs, sizeof *lat_ms);
    if (lat_ms == NULL) return 1;
    double t0 = now_s();
    if (drive(conc) != 0) return 1;
    double el = now_s() - t0;
    long done = done_runs;
    if (failures || done == 0) {
        fprintf(stderr, "flowload: %ld failures\n", failures);
        return 1;
    }
    qsort(lat_ms, (size_t)done, sizeof *lat_ms, cmp_d);
    printf("%s: concurrency %d: %ld runs in %.2f s: %.0f runs/s; start-to-result p50 %.2f ms, "
           "p99 %.2f ms\n",
           start_only    ? "starts"
           : named       ? "runs (start with id?wait)"
           : one_request ? "runs (start?wait)"
                         : "runs",
           conc, done, el, (double)done / el, lat_ms[done / 2], lat_ms[done * 99 / 100]);
    free(lat_ms);
    return 0;
}
