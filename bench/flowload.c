/* SPDX-License-Identifier: MIT
 * flowload: a closed-loop load generator for lodestoned's HTTP API on a
 * unix socket. N client threads, each on its own keep-alive connection,
 * start a run (POST /v1/workflows/TYPE) and wait for its result
 * (GET .../result?wait=60), again and again, until RUNS runs have
 * completed. Prints runs per second and start-to-result latency
 * percentiles. Used by bench/workflows.sh.
 *
 *   flowload SOCKET TYPE CONCURRENCY RUNS [start-only|one-request]
 *     one-request: POST .../TYPE?wait=60 starts a run and answers its result
 *   flowload --fsync-ref DIR     small appends with fdatasync: the disk's rate
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static const char *sock_path, *wf_type;
static long total_runs;
static int start_only;
static int one_request; /* POST ...?wait=60: start and result in one request */
static atomic_long next_run, failures;
static double *lat_ms;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int connect_unix(void)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock_path);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Sends req, reads one response into buf (headers + Content-Length body).
 * Returns the status, or -1. */
static int roundtrip(int fd, const char *req, size_t rlen, char *buf, size_t cap, char **body)
{
    size_t off = 0;
    while (off < rlen) {
        ssize_t n = write(fd, req + off, rlen - off);
        if (n <= 0) return -1;
        off += (size_t)n;
    }
    size_t len = 0;
    char *hend = NULL;
    long clen = -1;
    for (;;) {
        if (len + 1 >= cap) return -1;
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n <= 0) return -1;
        len += (size_t)n;
        buf[len] = '\0';
        if (hend == NULL && (hend = strstr(buf, "\r\n\r\n")) != NULL) {
            char *cl = strcasestr(buf, "Content-Length:");
            clen = cl && cl < hend ? strtol(cl + 15, NULL, 10) : 0;
        }
        if (hend && (long)(len - (size_t)(hend + 4 - buf)) >= clen) break;
    }
    *body = hend + 4;
    return atoi(buf + 9);
}

static void *client(void *arg)
{
    (void)arg;
    char buf[65536], req[1024], id[256];
    int fd = connect_unix();
    if (fd < 0) {
        perror("connect");
        atomic_fetch_add(&failures, 1);
        return NULL;
    }
    for (;;) {
        long i = atomic_fetch_add(&next_run, 1);
        if (i >= total_runs) break;
        double t0 = now_s();
        const char *payload = "{\"input\":{\"n\":1}}";
        int rl = snprintf(req, sizeof req,
                          "POST /v1/workflows/%s%s HTTP/1.1\r\nHost: d\r\nContent-Type: "
                          "application/json\r\nContent-Length: %zu\r\n\r\n%s",
                          wf_type, one_request ? "?wait=60" : "", strlen(payload), payload);
        char *body;
        int st = roundtrip(fd, req, (size_t)rl, buf, sizeof buf, &body);
        if (one_request) {
            if (st != 200 || strstr(body, "\"completed\"") == NULL) {
                fprintf(stderr, "start?wait: status %d: %.200s\n", st, st > 0 ? body : "");
                atomic_fetch_add(&failures, 1);
                break;
            }
            lat_ms[i] = (now_s() - t0) * 1000.0;
            continue;
        }
        if (st != 201) {
            fprintf(stderr, "start: status %d: %.200s\n", st, st > 0 ? body : "");
            atomic_fetch_add(&failures, 1);
            break;
        }
        char *p = strstr(body, "\"id\":\"");
        if (p == NULL) break;
        p += 6;
        size_t n = strcspn(p, "\"");
        if (n >= sizeof id) break;
        memcpy(id, p, n);
        id[n] = '\0';
        if (!start_only) {
            rl = snprintf(req, sizeof req,
                          "GET /v1/workflows/%s/result?wait=60 HTTP/1.1\r\nHost: d\r\n\r\n", id);
            st = roundtrip(fd, req, (size_t)rl, buf, sizeof buf, &body);
            if (st != 200 || strstr(body, "\"completed\"") == NULL) {
                fprintf(stderr, "result: status %d: %.200s\n", st, st > 0 ? body : "");
                atomic_fetch_add(&failures, 1);
                break;
            }
        }
        lat_ms[i] = (now_s() - t0) * 1000.0;
    }
    close(fd);
    return NULL;
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

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--fsync-ref") == 0) return fsync_ref(argv[2]);
    if (argc < 5) {
        fprintf(stderr, "usage: flowload SOCKET TYPE CONCURRENCY RUNS [start-only|one-request]\n"
                        "       flowload --fsync-ref DIR\n");
        return 2;
    }
    sock_path = argv[1];
    wf_type = argv[2];
    int conc = atoi(argv[3]);
    total_runs = atol(argv[4]);
    start_only = argc > 5 && strcmp(argv[5], "start-only") == 0;
    one_request = argc > 5 && strcmp(argv[5], "one-request") == 0;
    if (conc < 1 || total_runs < 1) return 2;
    lat_ms = calloc((size_t)total_runs, sizeof *lat_ms);
    pthread_t *th = calloc((size_t)conc, sizeof *th);
    double t0 = now_s();
    for (int i = 0; i < conc; i++) pthread_create(&th[i], NULL, client, NULL);
    for (int i = 0; i < conc; i++) pthread_join(th[i], NULL);
    double el = now_s() - t0;
    long done = atomic_load(&next_run) < total_runs ? atomic_load(&next_run) : total_runs;
    if (atomic_load(&failures)) {
        fprintf(stderr, "flowload: %ld failures\n", atomic_load(&failures));
        return 1;
    }
    qsort(lat_ms, (size_t)done, sizeof *lat_ms, cmp_d);
    printf("%s: concurrency %d: %ld runs in %.2f s: %.0f runs/s; start-to-result p50 %.2f ms, "
           "p99 %.2f ms\n",
           start_only    ? "starts"
           : one_request ? "runs (start?wait)"
                         : "runs",
           conc, done, el, (double)done / el, lat_ms[done / 2], lat_ms[done * 99 / 100]);
    free(lat_ms);
    free(th);
    return 0;
}
