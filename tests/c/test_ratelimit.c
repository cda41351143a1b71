/* SPDX-License-Identifier: MIT
 * Tests of the GCRA rate limiter (native/policy/ratelimit.c): exact
 * decisions under a manual clock, shared budgets across handles, threads
 * and forked processes, recovery from a process killed inside a lock,
 * eviction in a tiny table, refused files, bad limits and allocation
 * failures.
 */
#define _GNU_SOURCE 1
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <dirent.h>
#include <unistd.h>

#include "lodestone/ls_ratelimit.h"

/* Test hook in ratelimit.c: takes key's stripe lock and keeps it. */
#include "policy/ratelimit_int.h"
#include "policy/shm_guard.h"

#define MS      INT64_C(1000000)
#define HOUR_MS INT64_C(3600000)
#define DAY_MS  (24 * HOUR_MS)

/* ---- helpers ---- */

static char *tmpdir;

static char *table_path(const char *name)
{
    return th_path(tmpdir, name);
}

static ls_rl_t *open_table(const char *path, size_t capacity)
{
    ls_rl_opts opts = {capacity, 0};
    ls_rl_t *rl = NULL;
    ls_err err = {0};
    th_ok(ls_rl_open(&rl, path, &opts, &err), &err);
    return rl;
}

static ls_rl_limit limit(int64_t rate, const char *per, int64_t burst)
{
    ls_rl_limit lim;
    ls_err err = {0};
    th_ok(ls_rl_limit_parse(&lim, rate, per, strlen(per), burst, &err), &err);
    return lim;
}

static ls_rl_result take(ls_rl_t *rl, const char *key, const ls_rl_limit *lim, int64_t cost,
                         ls_manual_clock *mc)
{
    ls_rl_result r;
    ls_err err = {0};
    memset(&r, 0x55, sizeof r);
    th_ok(ls_rl_take(rl, key, strlen(key), lim, cost, mc ? &mc->clock : NULL, &r, &err), &err);
    return r;
}

static void expect(ls_rl_result r, int allowed, int64_t remaining, int64_t retry_ms,
                   int64_t reset_ms)
{
    if (r.allowed != allowed || r.remaining != remaining || r.retry_after_ms != retry_ms ||
        r.reset_ms != reset_ms)
        fail_msg("got allowed %d remaining %lld retry %lld reset %lld; expected %d %lld %lld %lld",
                 r.allowed, (long long)r.remaining, (long long)r.retry_after_ms,
                 (long long)r.reset_ms, allowed, (long long)remaining, (long long)retry_ms,
                 (long long)reset_ms);
}

static void expect_err(ls_rc rc, const ls_err *err, ls_rc want, const char *needle)
{
    if (rc != want)
        fail_msg("got %s (%s), expected %s", ls_rc_name(rc), err->msg, ls_rc_name(want));
    if (strstr(err->msg, needle) == NULL)
        fail_msg("message \"%s\" does not mention \"%s\"", err->msg, needle);
}

static int leftover_temp_files(void)
{
    DIR *d = opendir(tmpdir);
    assert_non_null(d);
    int n = 0;
    const struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strchr(de->d_name, '.') != NULL && strcmp(de->d_name, ".") != 0 &&
            strcmp(de->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
    chmod(path, 0600);
}

/* ---- GCRA decisions ---- */

static void test_ratelimit_burst_then_one_per_interval(void **state)
{
    (void)state;
    char *path = table_path("burst");
    ls_rl_t *rl = open_table(path, 64);
    ls_manual_clock mc;
    ls_manual_clock_init(&mc, 1700000000000);
    ls_rl_limit lim = limit(10, "1s", 5); /* one per 100 ms, 5 at once */

    for (int i = 0; i < 5; i++)
        expect(take(rl, "k", &lim, 1, &mc), 1, 4 - i, 0, INT64_C(100) * (i + 1));
    ls_rl_result r = take(rl, "k", &lim, 1, &mc);
    expect(r, 0, 0, 100, 500);
    assert_int_equal(r.limit, 5);
    ls_manual_clock_advance(&mc, 50);
    expect(take(rl, "k", &lim, 1, &mc), 0, 0, 50, 450);
    ls_manual_clock_advance(&mc, 49);
    expect(take(rl, "k", &lim, 1, &mc), 0, 0, 1, 401);
    /* then exactly one per emission interval */
    for (int i = 0; i < 20; i++) {
        ls_manual_clock_advance(&mc, i == 0 ? 1 : 100);
        expect(take(rl, "k", &lim, 1, &mc), 1, 0, 0, 500);
        expect(take(rl, "k", &lim, 1, &mc), 0, 0, 100, 500);
    }
    /* a sub-millisecond wait is rounded up, never down to 0 */
    mc.mono_ns += 99 * MS + 1;
    expect(take(rl, "k", &lim, 1, &mc), 0, 0, 1, 401);
    ls_rl_close(rl);
    free(path);
}

static void test_ratelimit_remaining_and_reset(void **state)
{
    (void)state;
    char *path = table_path("remaining");
    ls_rl_t *rl = open_table(path, 64);
    ls_manual_clock mc;
    ls_manual_clock_init(&mc, 0);
    ls_rl_limit lim = limit(10, "1s", 5);

    expect(take(rl, "k", &lim, 0, &mc), 1, 5, 0, 0); /* an unknown key: full bucket */
    for (int i = 0; i < 3; i++) take(rl, "k", &lim, 1, &mc);
    expect(take(rl, "k", &lim, 0, &mc), 1, 2, 0, 300);
    ls_manual_clock_advance(&mc, 150); /* 1.5 tokens back: remaining rounds down */
    expect(take(rl, "k", &lim, 0, &mc), 1, 3, 0, 150);
    ls_manual_clock_advance(&mc, 150);
    expect(take(rl, "k", &lim, 0, &mc), 1, 5, 0, 0);
    ls_manual_clock_advance(&mc, 10000); /* idle: the bucket does not overfill */
    expect(take(rl, "k", &lim, 1, &mc), 1, 4, 0, 100);

    /* uneven rates round the interval up: 3 per second, never 4 */
    ls_rl_limit three = limit(3, "1s", 1);
    int allowed = 0;
    for (int ms = 0; ms < 1000; ms++) {
        allowed += take(rl, "three", &three, 1, &mc).allowed;
        ls_manual_clock_advance(&mc, 1);
    }
    assert_int_equal(allowed, 3);
    ls_rl_close(rl);
    free(path);
}

static void test_ratelimit_cost_above_one(void **state)
{
    (void)state;
    char *path = table_path("cost");
    ls_rl_t *rl = open_table(path, 64);
    ls_manual_clock mc;
    ls_manual_clock_init(&mc, 0);
    ls_rl_limit lim = limit(10, "1s", 10);

    expect(take(rl, "k", &lim, 4, &mc), 1, 6, 0, 400);
    expect(take(rl, "k", &lim, 4, &mc), 1, 2, 0, 800);
    expect(take(rl, "k", &lim, 4, &mc), 0, 2, 200, 800); /* needs 2 more tokens */
    expect(take(rl, "k", &lim, 2, &mc), 1, 0, 0, 1000);
    ls_manual_clock_advance(&mc, 400);
    expect(take(rl, "k", &lim, 4, &mc), 1, 0, 0, 1000);
    expect(take(rl, "k", &lim, 0, &mc), 1, 0, 0, 1000); /* cost 0 never denies */

    ls_rl_result r;
    ls_err err = {0};
    expect_err(ls_rl_take(rl, "k", 1, &lim, 11, &mc.clock, &r, &err), &err, LS_EINVAL, "cost 11");
    expect_err(ls_rl_take(rl, "k", 1, &lim, -1, &mc.clock, &r, &err), &err, LS_EINVAL, "cost -1");
    ls_rl_close(rl);
    free(path);
}

static void test_ratelimit_keys_independent(void **state)
{
    (void)state;
    char *path = table_path("keys");
    ls_rl_t *rl = open_table(path, 8192); /* no set overflows */
    ls_manual_clock mc;
    ls_manual_clock_init(&mc, 0);
    ls_rl_limit lim = limit(1, "1h", 3);
    ls_rl_result r;
    ls_err err = {0};

    for (int i = 0; i < 3; i++) assert_true(take(rl, "alice", &lim, 1, &mc).allowed);
    assert_false(take(rl, "alice", &lim, 1, &mc).allowed);
    expect(take(rl, "bob", &lim, 1, &mc), 1, 2, 0, HOUR_MS);
    expect(take(rl, "alic", &lim, 1, &mc), 1, 2, 0, HOUR_MS);
    /* keys are bytes: an embedded NUL and the empty key are keys too */
    th_ok(ls_rl_take(rl, "alice\0x", 7, &lim, 1, &mc.clock, &r, &err), &err);
    expect(r, 1, 2, 0, HOUR_MS);
    th_ok(ls_rl_take(rl, NULL, 0, &lim, 1, &mc.clock, &r, &err), &err);
    expect(r, 1, 2, 0, HOUR_MS);
    th_ok(ls_rl_take(rl, "", 0, &lim, 1, &mc.clock, &r, &err), &err);
    expect(r, 1, 1, 0, 2 * HOUR_MS);

    /* many keys at once: each has its own bucket */
    char key[32];
    for (int i = 0; i < 300; i++) {
        snprintf(key, sizeof key, "user-%d", i);
        expect(take(rl, key, &lim, 2, &mc), 1, 1, 0, 2 * HOUR_MS);
    }
    for (int i = 0; i < 300; i++) {
        snprintf(key, sizeof key, "user-%d", i);
        expect(take(rl, key, &lim, 1, &mc), 1, 0, 0, 3 * HOUR_MS);
    }
    ls_rl_stats st;
    ls_rl_stats_get(rl, &st);
    assert_int_equal(st.capacity, 8192);
    assert_int_equal(st.used, 305);
    assert_int_equal(st.evictions, 0);
    ls_rl_close(rl);
    free(path);
}

/* A key hashed once (ls_rl_hash) and taken by its hash is the same budget
 * as the key taken by its bytes; the hash belongs to the handle's table. */
static void test_ratelimit_take_by_hash_is_the_same_key(void **state)
{
    (void)state;
    char *path = table_path("hashed");
    ls_rl_t *rl = open_table(path, 1024);
    ls_manual_clock mc;
    ls_manual_clock_init(&mc, 0);
    ls_rl_limit lim = limit(1, "1h", 3);
    ls_rl_result r;
    ls_err err = {0};
    ls_rl_key alice, bob, empty;
    ls_rl_hash(rl, "alice", 5, &alice);
    ls_rl_hash(rl, "bob", 3, &bob);
    ls_rl_hash(rl, NULL, 0, &empty);
    assert_false(alice.h0 == bob.h0 && alice.h1 == bob.h1);

    th_ok(ls_rl_take_hash(rl, &alice, &lim, 2, &mc.clock, &r, &err), &err);
    expect(r, 1, 1, 0, 2 * HOUR_MS);
    expect(take(rl, "alice", &lim, 1, &mc), 1, 0, 0, 3 * HOUR_MS);
    th_ok(ls_rl_take_hash(rl, &alice, &lim, 1, &mc.clock, &r, &err), &err);
    assert_false(r.allowed);
    th_ok(ls_rl_take_hash(rl, &bob, &lim, 1, &mc.clock, &r, &err), &err);
    expect(r, 1, 2, 0, HOUR_MS);
    th_ok(ls_rl_take(rl, "", 0, &lim, 1, &mc.clock, &r, &err), &err);
    th_ok(ls_rl_take_hash(rl, &empty, &lim, 1, &mc.clock, &r, &err), &err);
    expect(r, 1, 1, 0, 2 * HOUR_MS);
    /* the checks of ls_rl_take apply */
    assert_int_equal(ls_rl_take_hash(rl, &alice, &lim, 4, &mc.clock, &r, &err), LS_EINVAL);
    assert_int_equal(ls_rl_take_hash(rl, NULL, &lim, 1, &mc.clock, &r, &err), LS_EINVAL);
    ls_rl_close(rl);
    free(path);
}

static void test_ratelimit_reopen_keeps_state(void **state)
{
    (void)state;
    char *path = table_path("reopen");
    ls_manual_clock mc;
    ls_manual_clock_init(&mc, 0);
    ls_rl_limit lim = limit(1, "1m", 4);

    ls_rl_t *rl = open_table(path, 100);
    ls_rl_t *second = open_table(path, 100); /* a second handle in the same process */
    for (int i = 0; i < 3; i++) take(rl, "k", &lim, 1, &mc);
    expect(take(second, "k", &lim, 0, &mc), 1, 1, 0, 180000);
    ls_rl_close(rl);
    ls_rl_close(second);

    rl = open_table(path, 128); /* 100 was rounded up to 128: the same table */
    expect(take(rl, "k", &lim, 1, &mc), 1, 0, 0, 240000);
    assert_false(take(rl, "k", &lim, 1, &mc).allowed);
    ls_rl_stats st;
    ls_rl_stats_get(rl, &st);
    assert_int_equal(st.capacity, 128);
    assert_int_equal(st.used, 1);
    ls_rl_close(rl);

    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(leftover_temp_files(), 0);
    free(path);
}

static void test_ratelimit_default_capacity_and_mode(void **state)
{
    (void)state;
    char *path = table_path("defaults");
    ls_rl_t *rl = NULL;
    ls_err err = {0};
    th_ok(ls_rl_open(&rl, path, NULL, &err), &err);
    ls_rl_stats st;
    ls_rl_stats_get(rl, &st);
    assert_int_equal(st.capacity, LS_RL_DEFAULT_CAPACITY);
    assert_int_equal(st.used, 0);
    ls_rl_close(rl);
    ls_rl_close(NULL);

    char *grp = table_path("mode0640");
    ls_rl_opts opts = {8, 0640};
    th_ok(ls_rl_open(&rl, grp, &opts, &err), &err);
    ls_rl_stats_get(rl, &st);
    assert_int_equal(st.capacity, 8);
    ls_rl_close(rl);
    struct stat sb;
    assert_int_equal(stat(grp, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0640);
    free(grp);
    free(path);
}

/* After the monotonic clock restarts (a reboot with the table on disk), a
 * key waits at most one bucket's worth, not until its old TAT. */
static void test_ratelimit_clock_restart_waits_at_most_one_bucket(void **state)
{
    (void)state;
    char *path = table_path("restart");
    ls_rl_t *rl = open_table(path, 64);
    ls_manual_clock before, after;
    ls_manual_clock_init(&before, 0);
    ls_manual_clock_advance(&before, 1000000000); /* about 11 days of uptime */
    ls_manual_clock_init(&after, 0);
    ls_rl_limit lim = limit(10, "1s", 5);
    for (int i = 0; i < 5; i++) take(rl, "k", &lim, 1, &before);
    expect(take(rl, "k", &lim, 1, &after), 0, 0, 100, 500);
    ls_manual_clock_advance(&after, 100);
    expect(take(rl, "k", &lim, 1, &after), 1, 0, 0, 500);
    ls_rl_close(rl);
    free(path);
}

/* ---- sharing across threads and processes ---- */

struct hammer {
    ls_rl_t *rl;
    const ls_rl_limit *lim;
    int tries;
    int allowed;
};

static void *hammer_thread(void *p)
{
    struct hammer *h = p;
    for (int i = 0; i < h->tries; i++) {
        ls_rl_result r;
        ls_err err = {0};
        if (ls_rl_take(h->rl, "hot", 3, h->lim, 1, NULL, &r, &err) != LS_OK) return NULL;
        h->allowed += r.allowed;
    }
    return NULL;
}

static void test_ratelimit_threads_share_budget(void **state)
{
    (void)state;
    char *path = table_path("threads");
    ls_rl_t *rl = open_table(path, 64);
    ls_rl_limit lim = limit(1, "1d", 500); /* refills nothing during the test */
    struct hammer h[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        h[i] = (struct hammer){rl, &lim, 1000, 0};
        assert_int_equal(pthread_create(&t[i], NULL, hammer_thread, &h[i]), 0);
    }
    int total = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        total += h[i].allowed;
    }
    assert_int_equal(total, 500);
    ls_rl_close(rl);
    free(path);
}

/* Forks n children that wait for "go", then (opening the table themselves
 * unless rl is given) take 100 times from one key; returns the total
 * allowed as reported over a pipe. */
static int run_children(const char *path, ls_rl_t *rl, int n, const char *key)
{
    int go[2], report[2];
    assert_int_equal(pipe(go), 0);
    assert_int_equal(pipe(report), 0);
    pid_t pids[8];
    for (int c = 0; c < n; c++) {
        pids[c] = fork();
        assert_true(pids[c] >= 0);
        if (pids[c] == 0) {
            close(go[1]);
            close(report[0]);
            char b;
            (void)!read(go[0], &b, 1); /* EOF when the parent closes: all start together */
            ls_err err = {0};
            ls_rl_t *mine = rl;
            ls_rl_opts opts = {64, 0};
            if (mine == NULL && ls_rl_open(&mine, path, &opts, &err) != LS_OK) _exit(2);
            ls_rl_limit lim = {1, DAY_MS, 50};
            int count = 0;
            for (int i = 0; i < 100; i++) {
                ls_rl_result r;
                if (ls_rl_take(mine, key, strlen(key), &lim, 1, NULL, &r, &err) != LS_OK) _exit(3);
                count += r.allowed;
            }
            if (write(report[1], &count, sizeof count) != (ssize_t)sizeof count) _exit(4);
            _exit(0);
        }
    }
    close(go[0]);
    close(report[1]);
    close(go[1]); /* go */
    int total = 0, count, reports = 0;
    while (read(report[0], &count, sizeof count) == (ssize_t)sizeof count) {
        total += count;
        reports++;
    }
    close(report[0]);
    for (int c = 0; c < n; c++) {
        int status;
        assert_int_equal(waitpid(pids[c], &status, 0), pids[c]);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            fail_msg("child %d ended with status 0x%x", c, status);
    }
    assert_int_equal(reports, n);
    return total;
}

static void test_ratelimit_processes_share_budget(void **state)
{
    (void)state;
    char *path = table_path("procs");
    /* the file does not exist yet: the children race to create it */
    for (int round = 0; round < 3; round++) {
        char key[16];
        snprintf(key, sizeof key, "shared-%d", round);
        assert_int_equal(run_children(path, NULL, 4, key), 50);
    }
    assert_int_equal(leftover_temp_files(), 0);
    ls_rl_t *rl = open_table(path, 64);
    ls_rl_stats st;
    ls_rl_stats_get(rl, &st);
    assert_int_equal(st.used, 3);
    ls_rl_close(rl);
    free(path);
}

static void test_ratelimit_forked_handle_shares_budget(void **state)
{
    (void)state;
    char *path = table_path("forked");
    ls_rl_t *rl = open_table(path, 64);
    ls_rl_limit lim = {1, DAY_MS, 50};
    ls_rl_result r;
    ls_err err = {0};
    th_ok(ls_rl_take(rl, "k", 1, &lim, 10, NULL, &r, &err), &err); /* the parent takes 10 */
    assert_int_equal(run_children(path, rl, 4, "k"), 40);
    th_ok(ls_rl_take(rl, "k", 1, &lim, 1, NULL, &r, &err), &err);
    assert_false(r.allowed);
    ls_rl_close(rl);
    free(path);
}

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "test_ratelimit: stuck on a lock held by a dead process\n";
    (void)!write(2, msg, sizeof msg - 1);
    _exit(99);
}

static void test_ratelimit_killed_lock_holder_does_not_block(void **state)
{
    (void)state;
    char *path = table_path("killed");
    ls_rl_t *rl = open_table(path, 64);
    ls_rl_limit lim = limit(10, "1s", 5);
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        ls_err err = {0};
        ls_rl_t *mine = NULL;
        ls_rl_opts opts = {64, 0};
        if (ls_rl_open(&mine, path, &opts, &err) != LS_OK) _exit(2);
        if (ls_rl_test_hold_lock(mine, "k", 1, &err) != LS_OK) _exit(3);
        (void)!write(ready[1], "x", 1);
        for (;;) pause();
    }
    close(ready[1]);
    char b;
    assert_int_equal(read(ready[0], &b, 1), 1);
    close(ready[0]);
    kill(pid, SIGKILL);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));

    signal(SIGALRM, on_alarm);
    alarm(20);
    ls_manual_clock mc;
    ls_manual_clock_init(&mc, 0);
    expect(take(rl, "k", &lim, 1, &mc), 1, 4, 0, 100);
    expect(take(rl, "k", &lim, 1, &mc), 1, 3, 0, 200);
    alarm(0);
    signal(SIGALRM, SIG_DFL);
    ls_rl_stats st;
    ls_rl_stats_get(rl, &st);
    assert_int_equal(st.recovered, 1);
    ls_rl_close(rl);
    free(path);
}

/* ---- a file cut short under the mapping ---- */

/* What a forked child exits with: 0 when every step went as it should,
 * else the number of the step that did not. */
static int cut_short_child(const char *path)
{
    ls_err err = {0};
    ls_rl_t *rl = NULL, *rl2 = NULL;
    ls_rl_limit lim = {100, 1000, 100};
    ls_rl_result res;
    signal(SIGBUS, SIG_DFL); /* (not cmocka's, which the child inherits) */
    if (ls_rl_open(&rl, path, NULL, &err) != LS_OK) return 1;
    if (ls_rl_take(rl, "a", 1, &lim, 1, NULL, &res, &err) != LS_OK || !res.allowed) return 2;
    struct stat sb;
    if (stat(path, &sb) != 0) return 3;
    /* Keep the header and every stripe lock, lose (nearly all) slots: the
     * access that faults holds its stripe lock. */
    off_t head = sb.st_size - (off_t)(LS_RL_DEFAULT_CAPACITY * 24);
    off_t cut = (head + 4095) / 4096 * 4096;
    if (truncate(path, cut) != 0) return 4;
    ls_rc rc = LS_OK;
    for (int i = 0; i < 64 && rc == LS_OK; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        rc = ls_rl_take(rl, key, strlen(key), &lim, 1, NULL, &res, &err);
    }
    if (rc != LS_EIO || strstr(err.msg, "cut short") == NULL) return 5;
    /* Damaged: closed from now on, without touching the file. */
    if (ls_rl_take(rl, "a", 1, &lim, 1, NULL, &res, &err) != LS_EIO) return 6;
    ls_rl_stats st;
    ls_rl_stats_get(rl, &st);
    if (st.capacity != LS_RL_DEFAULT_CAPACITY) return 7;
    /* The stripe lock was given back: a new handle on the file, made whole
     * again, takes it (a leaked robust lock would say EDEADLK here). */
    if (truncate(path, sb.st_size) != 0) return 8;
    if (ls_rl_open(&rl2, path, NULL, &err) != LS_OK) return 9;
    for (int i = 0; i < 64; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        if (ls_rl_take(rl2, key, strlen(key), &lim, 1, NULL, &res, &err) != LS_OK) return 10;
    }
    /* Cut to nothing: the lock itself faults. */
    if (truncate(path, 0) != 0) return 11;
    if (ls_rl_take(rl2, "a", 1, &lim, 1, NULL, &res, &err) != LS_EIO) return 12;
    ls_rl_stats_get(rl2, &st);
    if (st.capacity != LS_RL_DEFAULT_CAPACITY || st.used != 0) return 13;
    ls_rl_close(rl);
    ls_rl_close(rl2);
    return 0;
}

static void test_ratelimit_file_cut_short_fails_closed(void **state)
{
    (void)state;
    char *path = table_path("cut");
    int rc = th_run_child(cut_short_child, path);
    if (rc != 0) fail_msg("child: %s %d", rc < 0 ? "killed by signal" : "failed step", abs(rc));
    free(path);
}

/* A fault that takes a lock's unlock with it leaves the lock in glibc's
 * list of the robust mutexes the thread holds, a list that runs through
 * the dead mapping: the process takes no lock again, of any table, rather
 * than write through that list (a crash, or a lock left in the new table
 * that no one ever releases). */
static void cut_to_nothing(void *path)
{
    if (truncate(path, 0) != 0) abort();
}

static int lock_lost_child(const char *path)
{
    ls_err err = {0};
    ls_rl_t *rl = NULL, *fresh = NULL;
    ls_rl_limit lim = {100, 1000, 100};
    ls_rl_result res;
    signal(SIGBUS, SIG_DFL); /* (not cmocka's, which the child inherits) */
    /* Another worker, forked before any of this (as lighttpd's are, from
     * a master that takes no lock): it waits for the new table. */
    int go[2];
    if (pipe(go) != 0) return 1;
    pid_t other = fork();
    if (other < 0) return 1;
    if (other == 0) {
        char b;
        ls_rl_t *o = NULL;
        ls_err e2;
        close(go[1]);
        int ok = read(go[0], &b, 1) == 1 && ls_rl_open(&o, path, NULL, &e2) == LS_OK &&
                 ls_rl_take(o, "b", 1, &lim, 1, NULL, &res, &e2) == LS_OK && res.allowed;
        ls_rl_close(o);
        _exit(ok ? 0 : 1);
    }
    close(go[0]);
    if (ls_rl_open(&rl, path, NULL, &err) != LS_OK) return 2;
    /* Cut while a take holds its lock: its unlock faults. */
    ls_rl_test_inside_lock = cut_to_nothing;
    ls_rl_test_inside_arg = (void *)path;
    ls_rc rc = ls_rl_take(rl, "a", 1, &lim, 1, NULL, &res, &err);
    ls_rl_test_inside_lock = NULL;
    if (rc != LS_EIO || strstr(err.msg, "cut short") == NULL) return 4;
    /* The operator's recovery: a new file. This process stays out of it. */
    if (unlink(path) != 0 || ls_rl_open(&fresh, path, NULL, &err) != LS_OK) return 5;
    memset(&err, 0, sizeof err);
    if (ls_rl_take(fresh, "b", 1, &lim, 1, NULL, &res, &err) != LS_EIO) return 6;
    if (strstr(err.msg, "lost a lock") == NULL || strstr(err.msg, "until it restarts") == NULL)
        return 7;
    /* ... and the other worker takes the new table's locks as ever. */
    int status;
    if (write(go[1], "x", 1) != 1 || waitpid(other, &status, 0) != other || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0)
        return 8;
    ls_rl_close(fresh);
    ls_rl_close(rl);
    return 0;
}

static void test_ratelimit_lock_lost_to_a_cut_takes_no_lock_again(void **state)
{
    (void)state;
    char *path = table_path("lost");
    int rc = th_run_child(lock_lost_child, path);
    if (rc != 0) fail_msg("child: %s %d", rc < 0 ? "killed by signal" : "failed step", abs(rc));
    unlink(path);
    free(path);
}

/* A lock held far longer than a take holds one (a worker stopped inside
 * it) is waited for 250 ms, then the take fails closed: a request never
 * hangs on it. Once the holder is gone, its lock is recovered. */
static int held_lock_child(const char *path)
{
    ls_err err = {0};
    ls_rl_limit lim = {100, 1000, 100};
    ls_rl_result res;
    int ready[2];
    if (pipe(ready) != 0) return 1;
    pid_t holder = fork();
    if (holder < 0) return 2;
    if (holder == 0) {
        ls_rl_t *h = NULL;
        if (ls_rl_open(&h, path, NULL, &err) != LS_OK || ls_rl_test_hold_lock(h, "a", 1, &err))
            _exit(1);
        (void)!write(ready[1], "x", 1);
        for (;;) pause();
    }
    char b;
    if (read(ready[0], &b, 1) != 1) return 3;
    alarm(20); /* the old code waited for ever: end the child instead */
    ls_rl_t *rl = NULL;
    if (ls_rl_open(&rl, path, NULL, &err) != LS_OK) return 4;
    ls_rc rc = ls_rl_take(rl, "a", 1, &lim, 1, NULL, &res, &err);
    kill(holder, SIGKILL);
    int status;
    waitpid(holder, &status, 0);
    if (rc != LS_EIO || strstr(err.msg, "a lock was held over 250 ms") == NULL) return 5;
    if (ls_rl_take(rl, "a", 1, &lim, 1, NULL, &res, &err) != LS_OK || !res.allowed) return 6;
    ls_rl_close(rl);
    return 0;
}

static void test_ratelimit_lock_held_too_long_fails_closed(void **state)
{
    (void)state;
    char *path = table_path("held");
    int rc = th_run_child(held_lock_child, path);
    if (rc != 0) fail_msg("child: %s %d", rc < 0 ? "killed by signal" : "failed step", abs(rc));
    unlink(path);
    free(path);
}

static void exit_42(int sig)
{
    (void)sig;
    _exit(42);
}

/* Maps a file of its own, cuts it and touches it: a SIGBUS that is not the
 * table's, with a table open. */
static int foreign_sigbus_child(const char *path)
{
    char other[4096];
    snprintf(other, sizeof other, "%s-other", path);
    ls_rl_t *rl = NULL;
    ls_err err;
    if (ls_rl_open(&rl, path, NULL, &err) != LS_OK) return 1;
    int fd = open(other, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || ftruncate(fd, 8192) != 0) return 2;
    volatile char *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED || ftruncate(fd, 0) != 0) return 3;
    m[4096] = 1;
    return 4;
}

static int foreign_sigbus_default_child(const char *path)
{
    signal(SIGBUS, SIG_DFL); /* (not cmocka's, which the child inherits) */
    return foreign_sigbus_child(path);
}

static int foreign_sigbus_handled_child(const char *path)
{
    signal(SIGBUS, exit_42); /* as a host's own handler (lighttpd has one) */
    return foreign_sigbus_child(path);
}

/* A SIGBUS someone sends (kill -BUS) during a guarded access is not the
 * table's fault: it goes to the process's handler, and no table is taken
 * for cut short. */
static int sent_sigbus_child(const char *path)
{
    ls_rl_t *rl = NULL;
    ls_err err;
    if (ls_rl_open(&rl, path, NULL, &err) != LS_OK) return 1; /* puts the guard in place */
    signal(SIGBUS, exit_42);
    ls_shm_guard_install(); /* in front of exit_42, as in front of lighttpd's */
    sigjmp_buf jb;
    if (sigsetjmp(jb, 0) != 0) return 2; /* the guard took it */
    ls_shm_guard_begin(&jb);
    raise(SIGBUS);
    ls_shm_guard_end();
    return 3;
}

static void test_ratelimit_sent_sigbus_goes_to_the_process(void **state)
{
    (void)state;
    char *path = table_path("sent");
    assert_int_equal(th_run_child(sent_sigbus_child, path), 42);
    unlink(path);
    free(path);
}

/* The guard leaves other SIGBUS to the process: its handler, or death. */
static void test_ratelimit_foreign_sigbus_goes_to_the_process(void **state)
{
    (void)state;
    char *path = table_path("foreign");
    assert_int_equal(th_run_child(foreign_sigbus_handled_child, path), 42);
    assert_int_equal(th_run_child(foreign_sigbus_default_child, path), -SIGBUS);
    char *other = table_path("foreign-other");
    unlink(other);
    free(other);
    free(path);
}

/* ---- eviction ---- */

static ls_rl_result peek(ls_rl_t *rl, const char *key, const ls_rl_limit *lim, ls_manual_clock *mc)
{
    return take(rl, key, lim, 0, mc);
}

static void test_ratelimit_eviction_idle_first_then_oldest(void **state)
{
    (void)state;
    char *path = table_path("evict");
    ls_rl_t *rl = open_table(path, 8); /* one set of 8 slots: every key competes */
    ls_manual_clock mc;
    ls_manual_clock_init(&mc, 0);
    ls_rl_limit lim = limit(1, "1s", 10); /* TAT = now + cost seconds */
    ls_rl_stats st;

    const char *keys[] = {"k0", "k1", "k2", "k3", "k4", "k5", "k6"};
    const int costs[] = {6, 2, 7, 3, 8, 4, 9};
    for (int i = 0; i < 7; i++) take(rl, keys[i], &lim, costs[i], &mc);
    ls_rl_stats_get(rl, &st);
    assert_int_equal(st.used, 7);

    ls_manual_clock_advance(&mc, 2500); /* k1 (TAT 2 s) is idle now */
    peek(rl, "nobody", &lim, &mc);      /* a peek stores nothing */
    ls_rl_stats_get(rl, &st);
    assert_int_equal(st.used, 7);
    take(rl, "n1", &lim, 1, &mc); /* takes the empty slot */
    ls_rl_stats_get(rl, &st);
    assert_int_equal(st.used, 8);
    assert_int_equal(st.evictions, 0);
    take(rl, "n2", &lim, 1, &mc); /* reuses idle k1: no budget lost */
    ls_rl_stats_get(rl, &st);
    assert_int_equal(st.evictions, 0);
    take(rl, "n3", &lim, 1, &mc); /* nothing idle: evicts the oldest TAT, k3 (3 s) */
    ls_rl_stats_get(rl, &st);
    assert_int_equal(st.used, 8);
    assert_int_equal(st.evictions, 1);

    expect(peek(rl, "k3", &lim, &mc), 1, 10, 0, 0);   /* forgotten: a full bucket */
    expect(peek(rl, "k5", &lim, &mc), 1, 8, 0, 1500); /* TAT 4 s: remembered */
    expect(peek(rl, "k0", &lim, &mc), 1, 6, 0, 3500);
    expect(peek(rl, "k6", &lim, &mc), 1, 3, 0, 6500);
    expect(peek(rl, "n1", &lim, &mc), 1, 9, 0, 1000);
    expect(peek(rl, "n2", &lim, &mc), 1, 9, 0, 1000);
    expect(peek(rl, "n3", &lim, &mc), 1, 9, 0, 1000);
    ls_rl_close(rl);
    free(path);
}

/* ---- refused files and arguments ---- */

static void test_ratelimit_open_bad_magic_eformat(void **state)
{
    (void)state;
    char *path = table_path("notatable");
    char junk[4096];
    memset(junk, 'x', sizeof junk);
    write_file(path, junk, sizeof junk);
    ls_rl_t *rl = (ls_rl_t *)&rl;
    ls_err err = {0};
    expect_err(ls_rl_open(&rl, path, NULL, &err), &err, LS_EFORMAT, "bad magic");
    assert_null(rl);
    assert_non_null(strstr(err.msg, path));

    write_file(path, "", 0); /* empty */
    expect_err(ls_rl_open(&rl, path, NULL, &err), &err, LS_EFORMAT, path);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_size, 0); /* left as it was */
    free(path);
}

static void test_ratelimit_open_wrong_capacity_eformat(void **state)
{
    (void)state;
    char *path = table_path("capacity");
    ls_rl_close(open_table(path, 16));
    ls_rl_t *rl = NULL;
    ls_rl_opts opts = {64, 0};
    ls_err err = {0};
    expect_err(ls_rl_open(&rl, path, &opts, &err), &err, LS_EFORMAT, "holds 16 slots");
    assert_non_null(strstr(err.msg, path));
    expect_err(ls_rl_open(&rl, path, NULL, &err), &err, LS_EFORMAT, "not the 65536 asked for");
    ls_rl_close(open_table(path, 9)); /* 9 rounds to 16 */
    free(path);
}

static void test_ratelimit_open_truncated_eformat(void **state)
{
    (void)state;
    char *path = table_path("truncated");
    ls_rl_close(open_table(path, 64));
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    ls_rl_t *rl = NULL;
    ls_rl_opts opts = {64, 0};
    ls_err err = {0};

    assert_int_equal(truncate(path, sb.st_size - 1), 0);
    expect_err(ls_rl_open(&rl, path, &opts, &err), &err, LS_EFORMAT, "truncated");
    assert_int_equal(truncate(path, 40), 0); /* inside the header */
    expect_err(ls_rl_open(&rl, path, &opts, &err), &err, LS_EFORMAT, "truncated");
    assert_int_equal(truncate(path, sb.st_size + 4096), 0); /* grown */
    expect_err(ls_rl_open(&rl, path, &opts, &err), &err, LS_EFORMAT, path);
    free(path);
}

static void test_ratelimit_open_other_layout_eformat(void **state)
{
    (void)state;
    char *path = table_path("layout");
    ls_rl_close(open_table(path, 64));
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint32_t layout = 99;
    assert_int_equal(pwrite(fd, &layout, sizeof layout, 8), (ssize_t)sizeof layout);
    close(fd);
    ls_rl_t *rl = NULL;
    ls_rl_opts opts = {64, 0};
    ls_err err = {0};
    expect_err(ls_rl_open(&rl, path, &opts, &err), &err, LS_EFORMAT, "layout 99");
    free(path);
}

static void test_ratelimit_open_unsafe_files_refused(void **state)
{
    (void)state;
    char *path = table_path("unsafe");
    char *link = table_path("unsafe-link");
    ls_rl_close(open_table(path, 64));
    ls_rl_t *rl = NULL;
    ls_rl_opts opts = {64, 0};
    ls_err err = {0};

    assert_int_equal(symlink(path, link), 0);
    expect_err(ls_rl_open(&rl, link, &opts, &err), &err, LS_EPERM, "symbolic link");
    assert_int_equal(chmod(path, 0666), 0);
    expect_err(ls_rl_open(&rl, path, &opts, &err), &err, LS_EPERM, "writable by other users");
    assert_int_equal(chmod(path, 0600), 0);
    ls_rl_close(open_table(path, 64));

    expect_err(ls_rl_open(&rl, tmpdir, &opts, &err), &err, LS_EIO, tmpdir); /* a directory */
    char *missing = table_path("no/such/dir");
    expect_err(ls_rl_open(&rl, missing, &opts, &err), &err, LS_EIO, missing);
    free(missing);
    free(link);
    free(path);
}

static void test_ratelimit_open_bad_arguments(void **state)
{
    (void)state;
    char *path = table_path("args");
    ls_rl_t *rl = NULL;
    ls_err err = {0};
    ls_rl_opts big = {LS_RL_MAX_CAPACITY + 1, 0}, world = {64, 0666}, bits = {64, 01600};
    expect_err(ls_rl_open(&rl, path, &big, &err), &err, LS_EINVAL, "capacity");
    expect_err(ls_rl_open(&rl, path, &world, &err), &err, LS_EINVAL, "mode 666");
    expect_err(ls_rl_open(&rl, path, &bits, &err), &err, LS_EINVAL, "mode 1600");
    expect_err(ls_rl_open(&rl, "", NULL, &err), &err, LS_EINVAL, "path");
    expect_err(ls_rl_open(NULL, path, NULL, &err), &err, LS_EINVAL, "path");
    assert_int_equal(ls_rl_open(&rl, NULL, NULL, NULL), LS_EINVAL); /* err may be NULL */
    struct stat sb;
    assert_int_equal(stat(path, &sb), -1); /* nothing created */

    rl = open_table(path, 64);
    ls_rl_limit lim = {1, 1000, 1};
    ls_rl_result r;
    expect_err(ls_rl_take(rl, NULL, 3, &lim, 1, NULL, &r, &err), &err, LS_EINVAL, "key");
    expect_err(ls_rl_take(rl, "k", 1, NULL, 1, NULL, &r, &err), &err, LS_EINVAL, "limit");
    expect_err(ls_rl_take(rl, "k", 1, &lim, 1, NULL, NULL, &err), &err, LS_EINVAL, "out");
    ls_rl_close(rl);
    free(path);
}

static void test_ratelimit_bad_limits_einval(void **state)
{
    (void)state;
    ls_rl_limit lim;
    ls_err err = {0};
    th_ok(ls_rl_limit_parse(&lim, 100, "1m", 2, 0, &err), &err);
    assert_int_equal(lim.rate, 100);
    assert_int_equal(lim.per_ms, 60000);
    assert_int_equal(lim.burst, 100); /* burst defaults to rate */
    th_ok(ls_rl_limit_parse(&lim, 5, "250ms", 5, 20, &err), &err);
    assert_int_equal(lim.per_ms, 250);
    assert_int_equal(lim.burst, 20);

    expect_err(ls_rl_limit_parse(&lim, 0, "1s", 2, 1, &err), &err, LS_EINVAL, "rate must be > 0");
    expect_err(ls_rl_limit_parse(&lim, -5, "1s", 2, 1, &err), &err, LS_EINVAL, "rate");
    expect_err(ls_rl_limit_parse(&lim, 5, "1s", 2, -1, &err), &err, LS_EINVAL,
               "burst must be >= 1");
    expect_err(ls_rl_limit_parse(&lim, 5, "0s", 2, 1, &err), &err, LS_EINVAL, "per");
    expect_err(ls_rl_limit_parse(&lim, 5, "", 0, 1, &err), &err, LS_EINVAL, "per");
    expect_err(ls_rl_limit_parse(&lim, 5, "1 sec", 5, 1, &err), &err, LS_EINVAL, "per");
    expect_err(ls_rl_limit_parse(&lim, 5, "0.0001s", 7, 1, &err), &err, LS_EINVAL, "per");
    expect_err(ls_rl_limit_parse(&lim, 2000000, "1ms", 3, 1, &err), &err, LS_EINVAL,
               "more than one per nanosecond");
    expect_err(ls_rl_limit_parse(&lim, 1, "100d", 4, 1000, &err), &err, LS_EINVAL,
               "over 100 years");
    expect_err(ls_rl_limit_parse(NULL, 1, "1s", 2, 1, &err), &err, LS_EINVAL, "out");

    ls_rl_limit hand = {10, 1000, 0};
    expect_err(ls_rl_limit_check(&hand, &err), &err, LS_EINVAL, "burst");
    hand = (ls_rl_limit){10, 0, 5};
    expect_err(ls_rl_limit_check(&hand, &err), &err, LS_EINVAL, "per");
    hand = (ls_rl_limit){0, 1000, 5};
    expect_err(ls_rl_limit_check(&hand, &err), &err, LS_EINVAL, "rate");
    hand = (ls_rl_limit){1, INT64_MAX, 5};
    expect_err(ls_rl_limit_check(&hand, &err), &err, LS_EINVAL, "per");
    expect_err(ls_rl_limit_check(NULL, &err), &err, LS_EINVAL, "limit");
    hand = (ls_rl_limit){10, 1000, 5};
    th_ok(ls_rl_limit_check(&hand, &err), &err);

    /* ls_rl_take checks the limit it is given */
    char *path = table_path("badlimit");
    ls_rl_t *rl = open_table(path, 64);
    ls_rl_result r;
    hand = (ls_rl_limit){0, 1000, 5};
    expect_err(ls_rl_take(rl, "k", 1, &hand, 1, NULL, &r, &err), &err, LS_EINVAL, "rate");
    ls_rl_close(rl);
    free(path);
}

/* ---- allocation failures ---- */

static const char *alloc_path;

static ls_rc alloc_open(void *ud)
{
    (void)ud;
    ls_rl_t *rl = NULL;
    ls_rl_opts opts = {64, 0};
    ls_err err = {0};
    ls_rc rc = ls_rl_open(&rl, alloc_path, &opts, &err);
    if (rc == LS_ENOMEM) assert_non_null(strstr(err.msg, "out of memory"));
    if (rc == LS_OK) {
        ls_rl_limit lim = {1, 1000, 1};
        ls_rl_result r;
        rc = ls_rl_take(rl, "k", 1, &lim, 1, NULL, &r, &err); /* allocates nothing */
    }
    ls_rl_close(rl);
    return rc;
}

static void test_ratelimit_alloc_failure(void **state)
{
    (void)state;
    char *path = table_path("alloc");
    alloc_path = path;
    /* creating: handle, path copy, temporary name */
    assert_int_equal(th_each_alloc_failure(alloc_open, NULL), 3);
    assert_int_equal(leftover_temp_files(), 0);
    /* opening an existing table: handle, path copy */
    assert_int_equal(th_each_alloc_failure(alloc_open, NULL), 2);
    alloc_path = NULL;
    free(path);
}

/* ---- main ---- */

static int group_setup(void **state)
{
    (void)state;
    tmpdir = th_mkdtemp("ratelimit");
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    th_rmtree(tmpdir);
    free(tmpdir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ratelimit_burst_then_one_per_interval),
        cmocka_unit_test(test_ratelimit_remaining_and_reset),
        cmocka_unit_test(test_ratelimit_cost_above_one),
        cmocka_unit_test(test_ratelimit_keys_independent),
        cmocka_unit_test(test_ratelimit_take_by_hash_is_the_same_key),
        cmocka_unit_test(test_ratelimit_reopen_keeps_state),
        cmocka_unit_test(test_ratelimit_default_capacity_and_mode),
        cmocka_unit_test(test_ratelimit_clock_restart_waits_at_most_one_bucket),
        cmocka_unit_test(test_ratelimit_threads_share_budget),
        cmocka_unit_test(test_ratelimit_processes_share_budget),
        cmocka_unit_test(test_ratelimit_forked_handle_shares_budget),
        cmocka_unit_test(test_ratelimit_killed_lock_holder_does_not_block),
        cmocka_unit_test(test_ratelimit_file_cut_short_fails_closed),
        cmocka_unit_test(test_ratelimit_lock_lost_to_a_cut_takes_no_lock_again),
        cmocka_unit_test(test_ratelimit_lock_held_too_long_fails_closed),
        cmocka_unit_test(test_ratelimit_foreign_sigbus_goes_to_the_process),
        cmocka_unit_test(test_ratelimit_sent_sigbus_goes_to_the_process),
        cmocka_unit_test(test_ratelimit_eviction_idle_first_then_oldest),
        cmocka_unit_test(test_ratelimit_open_bad_magic_eformat),
        cmocka_unit_test(test_ratelimit_open_wrong_capacity_eformat),
        cmocka_unit_test(test_ratelimit_open_truncated_eformat),
        cmocka_unit_test(test_ratelimit_open_other_layout_eformat),
        cmocka_unit_test(test_ratelimit_open_unsafe_files_refused),
        cmocka_unit_test(test_ratelimit_open_bad_arguments),
        cmocka_unit_test(test_ratelimit_bad_limits_einval),
        cmocka_unit_test(test_ratelimit_alloc_failure),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
