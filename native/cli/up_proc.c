/* SPDX-License-Identifier: MIT
 * `lodestone up`: the two children (lodestoned, lighttpd). Each runs in its
 * own process group with its output in a pipe that is copied, line by
 * line and prefixed with its name, to stdout and to its log file; signals
 * arrive through a signalfd, so one poll loop sees everything (see up.h).
 */
#include "ls_config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "up.h"

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void restore_signals(void)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
}

int up_run_capture(char *const argv[], char *out, size_t n)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid == 0) {
        restore_signals();
        dup2(p[1], 1);
        dup2(p[1], 2);
        execv(argv[0], argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(p[1]);
    size_t len = 0;
    char chunk[512];
    for (;;) { /* to the end, keeping what fits in out */
        ssize_t got = read(p[0], chunk, sizeof chunk);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break;
        size_t keep = (size_t)got < n - 1 - len ? (size_t)got : n - 1 - len;
        memcpy(out + len, chunk, keep);
        len += keep;
    }
    close(p[0]);
    out[len] = '\0';
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int up_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGCHLD);
    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0) return -1;
    signal(SIGPIPE, SIG_IGN); /* stdout may be a closed pipe: keep supervising */
    return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

int up_start(up_child *c, const char *name, char *const argv[], const char *log_path)
{
    memset(c, 0, sizeof *c);
    c->name = name;
    c->out = c->log = -1;
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        fprintf(stderr, "lodestone up: pipe: %s\n", strerror(errno));
        return -1;
    }
    c->log = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (c->log < 0) {
        fprintf(stderr, "lodestone up: cannot open %s: %s\n", log_path, strerror(errno));
        close(p[0]);
        close(p[1]);
        return -1;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "lodestone up: fork: %s\n", strerror(errno));
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid == 0) {
        /* Its own process group: lighttpd signals its whole group when it
         * stops, and Ctrl-C reaches `up` alone, which stops the children
         * in order. If `up` dies anyhow, the child gets SIGTERM. */
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent) _exit(1);
        restore_signals();
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) dup2(devnull, 0);
        dup2(p[1], 1);
        dup2(p[1], 2);
        execv(argv[0], argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(p[1]);
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    c->pid = pid;
    c->out = p[0];
    return 0;
}

/* ---- output ---- */

static void write_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return; /* a closed stdout or a full disk: keep going */
        s += w;
        n -= (size_t)w;
    }
}

static void emit_line(up_child *c, const char *s, size_t n)
{
    char head[32];
    int hn = snprintf(head, sizeof head, "[%s] ", c->name);
    write_all(1, head, (size_t)hn);
    write_all(1, s, n);
    write_all(1, "\n", 1);
    write_all(c->log, s, n);
    write_all(c->log, "\n", 1);
    if (c->ntail == UP_TAIL) {
        memmove(c->tail[0], c->tail[1], sizeof c->tail[0] * (UP_TAIL - 1));
        c->ntail--;
    }
    size_t keep = n < sizeof c->tail[0] - 1 ? n : sizeof c->tail[0] - 1;
    memcpy(c->tail[c->ntail], s, keep);
    c->tail[c->ntail][keep] = '\0';
    c->ntail++;
}

/* Reads what c wrote; emits whole lines (and a partial one when the buffer
 * is full or the pipe is closed). */
static void pump(up_child *c)
{
    if (c->out < 0) return;
    for (;;) {
        ssize_t got = read(c->out, c->part + c->plen, sizeof c->part - c->plen);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) {
            if (got == 0 || errno != EAGAIN) { /* closed */
                if (c->plen > 0) emit_line(c, c->part, c->plen);
                c->plen = 0;
                close(c->out);
                c->out = -1;
            }
            return;
        }
        c->plen += (size_t)got;
        char *start = c->part, *nl;
        while ((nl = memchr(start, '\n', c->plen - (size_t)(start - c->part))) != NULL) {
            emit_line(c, start, (size_t)(nl - start));
            start = nl + 1;
        }
        c->plen -= (size_t)(start - c->part);
        memmove(c->part, start, c->plen);
        if (c->plen == sizeof c->part) {
            emit_line(c, c->part, c->plen);
            c->plen = 0;
        }
    }
}

/* ---- waiting ---- */

static void reap(up_child *kids, int nkids)
{
    for (int i = 0; i < nkids; i++) {
        up_child *c = &kids[i];
        if (c->pid <= 0 || c->reaped) continue;
        int status;
        if (waitpid(c->pid, &status, WNOHANG) == c->pid) {
            c->status = status;
            c->reaped = 1;
        }
    }
}

/* Reads pending signals: returns 1 when a stop signal was among them. */
static int read_signals(int sigfd)
{
    struct signalfd_siginfo si;
    int stop = 0;
    while (read(sigfd, &si, sizeof si) == (ssize_t)sizeof si)
        if (si.ssi_signo != SIGCHLD) stop = 1;
    return stop;
}

/* One round: polls the pipes and signals for up to ms; pumps output and
 * reaps children. Returns 1 when a stop signal arrived. */
static int round_trip(up_child *kids, int nkids, int sigfd, int ms)
{
    struct pollfd fds[8];
    int n = 0;
    fds[n++] = (struct pollfd){.fd = sigfd, .events = POLLIN};
    for (int i = 0; i < nkids && n < 8; i++)
        if (kids[i].out >= 0) fds[n++] = (struct pollfd){.fd = kids[i].out, .events = POLLIN};
    if (poll(fds, (nfds_t)n, ms) < 0 && errno != EINTR) return 0;
    int stop = read_signals(sigfd);
    for (int i = 0; i < nkids; i++) pump(&kids[i]);
    reap(kids, nkids);
    return stop;
}

int up_wait(up_child *kids, int nkids, int sigfd, int (*ready)(void *), void *arg, int timeout_ms,
            up_child **died)
{
    long long until = now_ms() + timeout_ms;
    for (;;) {
        if (round_trip(kids, nkids, sigfd, 100)) return UP_SIGNAL;
        for (int i = 0; i < nkids; i++) {
            if (kids[i].pid > 0 && kids[i].reaped) {
                pump(&kids[i]); /* its last words */
                *died = &kids[i];
                return UP_DIED;
            }
        }
        if (ready != NULL && ready(arg)) return UP_READY;
        if (timeout_ms >= 0 && now_ms() >= until) return UP_TIMEOUT;
    }
}

/* ---- reporting and stopping ---- */

static void describe(const up_child *c, char *buf, size_t n)
{
    if (WIFEXITED(c->status))
        snprintf(buf, n, "exited with status %d", WEXITSTATUS(c->status));
    else if (WIFSIGNALED(c->status))
        snprintf(buf, n, "was killed by signal %d (%s)", WTERMSIG(c->status),
                 strsignal(WTERMSIG(c->status)));
    else
        snprintf(buf, n, "ended");
}

void up_report_death(const up_child *c)
{
    char why[128];
    describe(c, why, sizeof why);
    fprintf(stderr, "lodestone up: %s (pid %d) %s", c->name, (int)c->pid, why);
    if (c->ntail == 0) {
        fprintf(stderr, " and wrote nothing\n");
        return;
    }
    fprintf(stderr, "; its last log lines:\n");
    for (int i = 0; i < c->ntail; i++) fprintf(stderr, "  %s\n", c->tail[i]);
}

static int stop_one(up_child *kids, int nkids, up_child *c, int sigfd, int grace_ms)
{
    if (c->pid <= 0) return 0;
    if (!c->reaped) {
        kill(c->pid, SIGTERM);
        c->stopping = 1;
        long long until = now_ms() + grace_ms;
        while (!c->reaped && now_ms() < until) round_trip(kids, nkids, sigfd, 100);
        if (!c->reaped) {
            fprintf(stderr, "lodestone up: %s (pid %d) did not stop within %d s: SIGKILL\n",
                    c->name, (int)c->pid, grace_ms / 1000);
            kill(c->pid, SIGKILL);
            while (!c->reaped) round_trip(kids, nkids, sigfd, 100);
            return 1;
        }
    }
    pump(c);
    int clean = (WIFEXITED(c->status) && WEXITSTATUS(c->status) == 0) ||
                (c->stopping && WIFSIGNALED(c->status) && WTERMSIG(c->status) == SIGTERM);
    char why[128];
    describe(c, why, sizeof why);
    fprintf(stderr, "lodestone up: %s (pid %d) %s%s\n", c->name, (int)c->pid,
            c->stopping ? "stopped: " : "", why);
    return clean ? 0 : 1;
}

int up_stop_all(up_child *kids, int nkids, int sigfd, int grace_ms)
{
    int rc = 0;
    for (int i = 0; i < nkids; i++) rc |= stop_one(kids, nkids, &kids[i], sigfd, grace_ms);
    for (int i = 0; i < nkids; i++) {
        if (kids[i].out >= 0) close(kids[i].out);
        if (kids[i].log >= 0) close(kids[i].log);
        kids[i].out = kids[i].log = -1;
    }
    return rc;
}
