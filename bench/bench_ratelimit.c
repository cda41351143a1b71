/* SPDX-License-Identifier: MIT
 * Rate-limit take and CIDR lookups. ls_rl_take on one hot key, on 10,000
 * rotating keys and on one key shared by two processes at once, against a
 * baseline measured in the same run: what any shared-memory limiter must
 * pay (a monotonic clock read, a 64-bit hash of the key, one uncontended
 * lock/unlock of a process-shared robust mutex). CIDR: contains on a
 * 10-entry and a 10,000-entry set, binary and from text. Medians over
 * rounds; figures only, never pass/fail. */
#define _GNU_SOURCE 1
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "lodestone/lodestone.h"
#include "lodestone/ls_cidr.h"
#include "lodestone/ls_ratelimit.h"

#define ROUNDS 9
#define ITERS  200000
#define NKEYS  10000
#define NPROBE 4096

static char keys[NKEYS][24];
static size_t key_len[NKEYS];
static volatile uint64_t sink;

/* ---- rate limiting ---- */

static double median_ns(double *v)
{
    return bench_median_d(v, ROUNDS);
}

static double take_round(ls_rl_t *rl, const ls_rl_limit *lim, int nkeys)
{
    ls_rl_result r;
    ls_err err;
    int64_t t0 = bench_now_ns();
    for (int i = 0; i < ITERS; i++) {
        int k = nkeys == 1 ? 0 : i % nkeys;
        if (ls_rl_take(rl, keys[k], key_len[k], lim, 1, NULL, &r, &err) != LS_OK)
            bench_die("take", err.msg);
        sink += (uint64_t)r.allowed;
    }
    return (double)(bench_now_ns() - t0) / ITERS;
}

static double take_median(ls_rl_t *rl, const ls_rl_limit *lim, int nkeys)
{
    double v[ROUNDS];
    take_round(rl, lim, nkeys); /* warm up: slots, page faults */
    for (int r = 0; r < ROUNDS; r++) v[r] = take_round(rl, lim, nkeys);
    return median_ns(v);
}

static uint64_t fnv1a(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

static double baseline_median(pthread_mutex_t *mu)
{
    double v[ROUNDS + 1];
    for (int r = 0; r <= ROUNDS; r++) {
        int64_t t0 = bench_now_ns();
        for (int i = 0; i < ITERS; i++) {
            int k = i % NKEYS;
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            uint64_t h = fnv1a(keys[k], key_len[k]);
            pthread_mutex_lock(mu);
            sink += h ^ (uint64_t)ts.tv_nsec;
            pthread_mutex_unlock(mu);
        }
        v[r] = (double)(bench_now_ns() - t0) / ITERS;
    }
    return median_ns(v + 1); /* round 0 warms up */
}

/* One hot key taken by this process and a forked child at the same time;
 * returns this process's median ns per take. */
static double take_two_processes(ls_rl_t *rl, const ls_rl_limit *lim)
{
    int go[2];
    if (pipe(go) != 0) bench_die("pipe", "failed");
    pid_t pid = fork();
    if (pid < 0) bench_die("fork", "failed");
    if (pid == 0) {
        char b;
        close(go[1]);
        (void)!read(go[0], &b, 1);
        for (int r = 0; r <= ROUNDS + 1; r++) take_round(rl, lim, 1);
        _exit(0);
    }
    close(go[0]);
    close(go[1]);
    double v[ROUNDS];
    take_round(rl, lim, 1);
    for (int r = 0; r < ROUNDS; r++) v[r] = take_round(rl, lim, 1);
    int status;
    waitpid(pid, &status, 0);
    return median_ns(v);
}

static void bench_ratelimit(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/bench-ratelimit-%d", dir, (int)getpid());
    ls_rl_t *rl;
    ls_err err;
    if (ls_rl_open(&rl, path, NULL, &err) != LS_OK) bench_die("open", err.msg);
    unlink(path); /* the mapping stays; nothing is left behind */
    ls_rl_limit lim;
    if (ls_rl_limit_parse(&lim, 1000000000, "1s", 2, 0, &err) != LS_OK) bench_die("limit", err.msg);

    /* the baseline's mutex lives in shared memory like the table's */
    pthread_mutex_t *mu =
        mmap(NULL, sizeof *mu, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mu == MAP_FAILED) bench_die("mmap", "failed");
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(mu, &attr);
    pthread_mutexattr_destroy(&attr);

    double base = baseline_median(mu);
    double hot = take_median(rl, &lim, 1);
    double many = take_median(rl, &lim, NKEYS);
    double two = take_two_processes(rl, &lim);
    ls_rl_stats st;
    ls_rl_stats_get(rl, &st);

    printf("rate limit take, %d rounds x %d takes, table of %zu slots (medians over rounds)\n",
           ROUNDS, ITERS, st.capacity);
    printf("  %-38s %8.1f ns\n", "baseline: clock + fnv1a64 + robust lock", base);
    printf("  %-38s %8.1f ns   x%.2f baseline\n", "take, one hot key", hot, hot / base);
    printf("  %-38s %8.1f ns   x%.2f baseline\n", "take, 10000 rotating keys", many, many / base);
    printf("  %-38s %8.1f ns   x%.2f baseline\n", "take, one key, 2 processes at once", two,
           two / base);
    printf("  slots used %zu, evictions %llu\n", st.used, (unsigned long long)st.evictions);

    pthread_mutex_destroy(mu);
    munmap(mu, sizeof *mu);
    ls_rl_close(rl);
}

/* ---- CIDR sets ---- */

static uint64_t rng_state = 0x5EED;

static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

static uint8_t probes[NPROBE][LS_CIDR_ADDRBYTES];
static char probe_text[NPROBE][LS_CIDR_TEXTMAX];
static size_t probe_len[NPROBE];

/* Entry i of a set: an IPv4 /24 (three of four) or an IPv6 /48 from x. */
static void entry_text(char *out, size_t cap, int i, uint64_t x, const char *host)
{
    if (i % 4 == 3)
        snprintf(out, cap, "2001:db8:%x::%s", (unsigned)(x & 0xffff), host);
    else
        snprintf(out, cap, "%u.%u.%u.%s", (unsigned)(x >> 8 & 0xff), (unsigned)(x >> 16 & 0xff),
                 (unsigned)(x >> 24 & 0xff), host);
}

/* A set of n entries, and probes of which half fall inside one of them. */
static ls_cidr_set_t *make_set(int n)
{
    static uint64_t seeds[NKEYS];
    static char text[NKEYS][64];
    static const char *entries[NKEYS];
    for (int i = 0; i < n; i++) {
        seeds[i] = rng();
        entry_text(text[i], sizeof text[i], i, seeds[i], i % 4 == 3 ? "/48" : "0/24");
        entries[i] = text[i];
    }
    ls_cidr_set_t *set;
    ls_err err;
    if (ls_cidr_set_new(&set, &err) != LS_OK) bench_die("cidr", err.msg);
    if (ls_cidr_set_add_list(set, entries, (size_t)n, &err) != LS_OK) bench_die("cidr", err.msg);

    for (int p = 0; p < NPROBE; p++) {
        char host[16];
        uint64_t y = rng();
        int i = (int)(y % (uint64_t)n);
        uint64_t x = p % 2 ? seeds[i] : rng(); /* odd probes: inside entry i */
        if (i % 4 == 3)
            snprintf(host, sizeof host, "%x", (unsigned)(y >> 32 & 0xffff));
        else
            snprintf(host, sizeof host, "%u", (unsigned)(y >> 32 & 0xff));
        entry_text(probe_text[p], sizeof probe_text[p], i, x, host);
        probe_len[p] = strlen(probe_text[p]);
        if (ls_cidr_parse_addr(probe_text[p], probe_len[p], probes[p], &err) != LS_OK)
            bench_die("probe", err.msg);
    }
    return set;
}

static double contains_median(const ls_cidr_set_t *set, int text, int *hits)
{
    double v[ROUNDS + 1];
    for (int r = 0; r <= ROUNDS; r++) {
        int h = 0;
        int64_t t0 = bench_now_ns();
        for (int i = 0; i < ITERS; i++) {
            int p = i % NPROBE;
            if (text) {
                int found;
                ls_err err;
                if (ls_cidr_set_contains(set, probe_text[p], probe_len[p], &found, &err) != LS_OK)
                    bench_die("contains", err.msg);
                h += found;
            } else {
                h += ls_cidr_set_contains_addr(set, probes[p]);
            }
        }
        v[r] = (double)(bench_now_ns() - t0) / ITERS;
        *hits = h;
    }
    return median_ns(v + 1);
}

static void bench_cidr(void)
{
    int hs, hl;
    ls_cidr_set_t *small = make_set(10);
    double s_bin = contains_median(small, 0, &hs), s_txt = contains_median(small, 1, &hs);
    ls_cidr_set_t *large = make_set(NKEYS);
    double l_bin = contains_median(large, 0, &hl), l_txt = contains_median(large, 1, &hl);
    printf("cidr contains, %d rounds x %d lookups over %d addresses (medians over rounds)\n",
           ROUNDS, ITERS, NPROBE);
    printf("  %-38s %8.1f ns   (%zu ranges, %d%% hits)\n", "10 entries, binary address", s_bin,
           ls_cidr_set_ranges(small), hs * 100 / ITERS);
    printf("  %-38s %8.1f ns   (%zu ranges, %d%% hits)   x%.2f the 10-entry set\n",
           "10000 entries, binary address", l_bin, ls_cidr_set_ranges(large), hl * 100 / ITERS,
           l_bin / s_bin);
    printf("  %-38s %8.1f ns\n", "10 entries, from text", s_txt);
    printf("  %-38s %8.1f ns   x%.2f the 10-entry set\n", "10000 entries, from text", l_txt,
           l_txt / s_txt);
    ls_cidr_set_free(small);
    ls_cidr_set_free(large);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "/dev/shm";
    if (access(dir, W_OK) != 0) dir = "/tmp";
    for (int i = 0; i < NKEYS; i++) {
        snprintf(keys[i], sizeof keys[i], "ip:10.%d.%d.%d", i >> 16 & 255, i >> 8 & 255, i & 255);
        key_len[i] = strlen(keys[i]);
    }
    bench_ratelimit(dir);
    bench_cidr();
    return 0;
}
