/* SPDX-License-Identifier: MIT
 * Tests of the policy decision metrics (native/policy/metrics.c) and of
 * their recording by the policy engine: exact Prometheus text, histogram
 * buckets, label escaping and truncation, forked processes counting into
 * one table (the same series and new series claimed at the same time), a
 * full table, refused files, decisions counted by ls_policy_eval, and
 * allocation failures.
 */
#define _GNU_SOURCE 1
#include "helpers.h"

#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lodestone/ls_pmetrics.h"

static char *tmpdir;
static int seq;

/* A fresh table path in the suite's directory. */
static char *fresh_path(void)
{
    char name[32];
    snprintf(name, sizeof name, "m%d.metrics", seq++);
    return th_path(tmpdir, name);
}

static ls_pmetrics_t *open_at(const char *path)
{
    ls_pmetrics_t *m = NULL;
    ls_err err = {0};
    th_ok(ls_pmetrics_open(&m, path, &err), &err);
    return m;
}

/* The rendered text (caller frees with free). */
static char *render(ls_pmetrics_t *m)
{
    ls_buf out = LS_BUF_INIT;
    ls_err err = {0};
    th_ok(ls_pmetrics_render(m, &out, &err), &err);
    ls_buf_putc(&out, 0, NULL);
    char *s = strdup((const char *)out.ptr);
    ls_buf_free(&out);
    return s;
}

/* The value on the line that starts with series (name and labels), or -1. */
static double value_of(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        if (strncmp(l, series, n) == 0 && l[n] == ' ') return strtod(l + n + 1, NULL);
    }
    return -1;
}

/* How many lines start with prefix. */
static int lines_with(const char *text, const char *prefix)
{
    int k = 0;
    size_t n = strlen(prefix);
    for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (strncmp(l, prefix, n) == 0) k++;
    return k;
}

/* ---- recording and rendering ---- */

static void test_pmetrics_counts_render_exactly(void **state)
{
    (void)state;
    char *path = fresh_path();
    ls_pmetrics_t *m = open_at(path);
    ls_pmetrics_record(m, "api", 1, "allowed", 800);
    ls_pmetrics_record(m, "api", 1, "allowed", 900);
    ls_pmetrics_record(m, "api", 0, "missing_role", 1200);
    ls_pmetrics_record(m, "admin", 0, "not_authenticated", 700);
    char *t = render(m);
    const char *want =
        "# HELP lodestone_policy_decisions_total Policy decisions by policy, decision and "
        "reason.\n"
        "# TYPE lodestone_policy_decisions_total counter\n"
        "lodestone_policy_decisions_total{policy=\"admin\",decision=\"deny\",reason=\"not_"
        "authenticated\"} 1\n"
        "lodestone_policy_decisions_total{policy=\"api\",decision=\"allow\",reason=\"allowed\"} "
        "2\n"
        "lodestone_policy_decisions_total{policy=\"api\",decision=\"deny\",reason=\"missing_"
        "role\"} 1\n"
        "# HELP lodestone_policy_decision_seconds Time to decide a request.\n"
        "# TYPE lodestone_policy_decision_seconds histogram\n"
        "lodestone_policy_decision_seconds_bucket{policy=\"admin\",le=\"1e-06\"} 1\n";
    assert_memory_equal(t, want, strlen(want));
    assert_true(value_of(t, "lodestone_policy_decision_seconds_count{policy=\"api\"}") == 3);
    assert_true(value_of(t, "lodestone_policy_decision_seconds_sum{policy=\"api\"}") == 2.9e-6);
    assert_true(
        value_of(t, "lodestone_policy_decision_seconds_bucket{policy=\"api\",le=\"1e-06\"}") == 2);
    assert_true(value_of(t, "lodestone_policy_metrics_dropped_total") == 0);
    /* Every line is a comment or "name{labels} value". */
    assert_int_equal(lines_with(t, "lodestone_policy_decision_seconds_bucket{policy=\"api\""),
                     LS_PMETRICS_BUCKETS + 1);
    free(t);
    ls_pmetrics_close(m);
    ls_pmetrics_close(NULL);
    free(path);
}

static void test_pmetrics_histogram_buckets_cumulative(void **state)
{
    (void)state;
    char *path = fresh_path();
    ls_pmetrics_t *m = open_at(path);
    ls_pmetrics_hist *h = ls_pmetrics_hist_get(m, "p");
    assert_non_null(h);
    assert_ptr_equal(h, ls_pmetrics_hist_get(m, "p"));
    ls_pmetrics_hist_observe(h, 1000);       /* on the first bound: le 1e-06 */
    ls_pmetrics_hist_observe(h, 3000);       /* le 5e-06 */
    ls_pmetrics_hist_observe(h, 2000000000); /* 2 s: only +Inf */
    ls_pmetrics_hist_observe(h, -5);         /* counts as 0 */
    ls_pmetrics_hist_observe(NULL, 1);       /* nothing */
    char *t = render(m);
    struct {
        const char *le;
        double n;
    } want[] = {{"1e-06", 2}, {"2.5e-06", 2}, {"5e-06", 3}, {"1e-05", 3}, {"0.0001", 3},
                {"0.001", 3}, {"0.01", 3},    {"0.1", 3},   {"+Inf", 4}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char series[128];
        snprintf(series, sizeof series,
                 "lodestone_policy_decision_seconds_bucket{policy=\"p\",le=\"%s\"}", want[i].le);
        if (value_of(t, series) != want[i].n)
            fail_msg("%s: got %g, want %g", series, value_of(t, series), want[i].n);
    }
    assert_true(value_of(t, "lodestone_policy_decision_seconds_count{policy=\"p\"}") == 4);
    assert_true(value_of(t, "lodestone_policy_decision_seconds_sum{policy=\"p\"}") == 2.000004);
    assert_int_equal(ls_pmetrics_bucket_ns(0), 1000);
    assert_int_equal(ls_pmetrics_bucket_ns(LS_PMETRICS_BUCKETS - 1), 100000000);
    assert_true(ls_pmetrics_bucket_ns(LS_PMETRICS_BUCKETS) == INT64_MAX);
    free(t);
    ls_pmetrics_close(m);
    free(path);
}

static void test_pmetrics_labels_escaped_and_truncated(void **state)
{
    (void)state;
    char *path = fresh_path();
    ls_pmetrics_t *m = open_at(path);
    ls_pmetrics_record(m, "a\"b\\c\nd", 0, "bad_path", 1);
    char longname[100];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    ls_pmetrics_record(m, longname, 1, "allowed", 1);
    ls_pmetrics_record(m, longname, 1, "allowed", 1); /* the same (truncated) series */
    char *t = render(m);
    assert_true(value_of(t, "lodestone_policy_decisions_total{policy=\"a\\\"b\\\\c\\nd\","
                            "decision=\"deny\",reason=\"bad_path\"}") == 1);
    char series[200];
    snprintf(series, sizeof series,
             "lodestone_policy_decisions_total{policy=\"%.*s\",decision=\"allow\","
             "reason=\"allowed\"}",
             LS_PMETRICS_POLICY_MAX, longname);
    assert_true(value_of(t, series) == 2);
    free(t);
    ls_pmetrics_close(m);
    free(path);
}

static void test_pmetrics_reopen_keeps_counts(void **state)
{
    (void)state;
    char *path = fresh_path();
    ls_pmetrics_t *a = open_at(path), *b = open_at(path);
    ls_pmetrics_counter *ca = ls_pmetrics_counter_get(a, "p", 0, "ip_denied");
    ls_pmetrics_counter_add(a, ca);
    ls_pmetrics_counter_add(b, ls_pmetrics_counter_get(b, "p", 0, "ip_denied"));
    ls_pmetrics_close(a);
    ls_pmetrics_close(b);
    ls_pmetrics_t *c = open_at(path);
    char *t = render(c);
    assert_true(value_of(t, "lodestone_policy_decisions_total{policy=\"p\",decision=\"deny\","
                            "reason=\"ip_denied\"}") == 2);
    assert_int_equal(lines_with(t, "lodestone_policy_decisions_total{"), 1);
    free(t);
    ls_pmetrics_close(c);
    free(path);
}

/* ---- processes ---- */

#define CHILDREN 2
#define PER_KID  20000
#define NEW_KEYS 200

static void test_pmetrics_processes_share_counters(void **state)
{
    (void)state;
    char *path = fresh_path();
    pid_t kids[CHILDREN];
    int go[2];
    assert_int_equal(pipe(go), 0);
    for (int k = 0; k < CHILDREN; k++) {
        kids[k] = fork();
        assert_true(kids[k] >= 0);
        if (kids[k] == 0) {
            close(go[1]);
            char c;
            if (read(go[0], &c, 1) != 0) _exit(3); /* start together */
            ls_pmetrics_t *m = NULL;
            if (ls_pmetrics_open(&m, path, NULL) != LS_OK) _exit(2);
            ls_pmetrics_counter *hot = ls_pmetrics_counter_get(m, "shared", 1, "allowed");
            ls_pmetrics_hist *h = ls_pmetrics_hist_get(m, "shared");
            if (hot == NULL || h == NULL) _exit(4);
            for (int i = 0; i < PER_KID; i++) {
                ls_pmetrics_counter_add(m, hot);
                ls_pmetrics_hist_observe(h, 1500);
                if (i < NEW_KEYS) { /* both processes claim the same new series */
                    char reason[32];
                    snprintf(reason, sizeof reason, "r%d", i);
                    ls_pmetrics_record(m, "race", 0, reason, 10);
                }
            }
            ls_pmetrics_close(m);
            _exit(0);
        }
    }
    close(go[0]);
    close(go[1]); /* EOF: go */
    for (int k = 0; k < CHILDREN; k++) {
        int st;
        assert_int_equal(waitpid(kids[k], &st, 0), kids[k]);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    ls_pmetrics_t *m = open_at(path);
    char *t = render(m);
    assert_true(value_of(t, "lodestone_policy_decisions_total{policy=\"shared\",decision=\"allow\","
                            "reason=\"allowed\"}") == CHILDREN * PER_KID);
    assert_true(value_of(t, "lodestone_policy_decision_seconds_count{policy=\"shared\"}") ==
                CHILDREN * PER_KID);
    assert_true(value_of(t, "lodestone_policy_decision_seconds_bucket{policy=\"shared\","
                            "le=\"2.5e-06\"}") == CHILDREN * PER_KID);
    double sum = value_of(t, "lodestone_policy_decision_seconds_sum{policy=\"shared\"}");
    assert_true(fabs(sum - CHILDREN * PER_KID * 1.5e-6) < 1e-12);
    /* Each new series once, with both processes' counts. */
    assert_int_equal(lines_with(t, "lodestone_policy_decisions_total{policy=\"race\""), NEW_KEYS);
    for (int i = 0; i < NEW_KEYS; i++) {
        char series[160];
        snprintf(series, sizeof series,
                 "lodestone_policy_decisions_total{policy=\"race\",decision=\"deny\","
                 "reason=\"r%d\"}",
                 i);
        if (value_of(t, series) != CHILDREN) fail_msg("%s: %g", series, value_of(t, series));
    }
    assert_true(value_of(t, "lodestone_policy_decision_seconds_count{policy=\"race\"}") ==
                CHILDREN * NEW_KEYS);
    free(t);
    ls_pmetrics_close(m);
    free(path);
}

static void test_pmetrics_full_table_counts_dropped(void **state)
{
    (void)state;
    char *path = fresh_path();
    ls_pmetrics_t *m = open_at(path);
    for (int i = 0; i < LS_PMETRICS_SERIES; i++) {
        char reason[32];
        snprintf(reason, sizeof reason, "r%d", i);
        assert_non_null(ls_pmetrics_counter_get(m, "full", 0, reason));
    }
    assert_null(ls_pmetrics_counter_get(m, "full", 0, "one_too_many"));
    assert_non_null(ls_pmetrics_counter_get(m, "full", 0, "r7")); /* existing ones still found */
    ls_pmetrics_record(m, "full", 0, "one_too_many", 5);
    ls_pmetrics_counter_add(m, NULL);
    for (int i = 1; i < LS_PMETRICS_POLICIES; i++) { /* "full" has one */
        char name[32];
        snprintf(name, sizeof name, "p%d", i);
        assert_non_null(ls_pmetrics_hist_get(m, name));
    }
    assert_null(ls_pmetrics_hist_get(m, "one_policy_too_many"));
    char *t = render(m);
    assert_true(value_of(t, "lodestone_policy_metrics_dropped_total") == 2);
    assert_int_equal(lines_with(t, "lodestone_policy_decisions_total{"), LS_PMETRICS_SERIES);
    free(t);
    ls_pmetrics_close(m);
    free(path);
}

/* ---- refused files ---- */

static void expect_open(const char *path, ls_rc want, const char *needle)
{
    ls_pmetrics_t *m = (ls_pmetrics_t *)1;
    ls_err err = {0};
    ls_rc rc = ls_pmetrics_open(&m, path, &err);
    if (rc != want || strstr(err.msg, needle) == NULL)
        fail_msg("open %s: got %s \"%s\", want %s with \"%s\"", path, ls_rc_name(rc), err.msg,
                 ls_rc_name(want), needle);
    assert_null(m);
}

static void test_pmetrics_open_refuses_bad_files(void **state)
{
    (void)state;
    char *bad = th_path(tmpdir, "bad.metrics");
    FILE *f = fopen(bad, "w");
    fputs("not a metrics table, not at all, no no no no no no no no no no no no no no no", f);
    fclose(f);
    expect_open(bad, LS_EFORMAT, "not a Lodestone metrics table");

    char *good = fresh_path();
    ls_pmetrics_close(open_at(good));
    char *link = th_path(tmpdir, "link.metrics");
    assert_int_equal(symlink(good, link), 0);
    expect_open(link, LS_EPERM, "symbolic link");
    assert_int_equal(chmod(good, 0666), 0);
    expect_open(good, LS_EPERM, "writable by other users");
    assert_int_equal(chmod(good, 0600), 0);
    assert_int_equal(truncate(good, 4096), 0);
    expect_open(good, LS_EFORMAT, "has 4096 bytes");

    char *nodir = th_path(tmpdir, "no/such/dir.metrics");
    expect_open(nodir, LS_EIO, "cannot create");
    expect_open("", LS_EINVAL, "path are required");
    assert_int_equal(ls_pmetrics_open(NULL, good, NULL), LS_EINVAL);
    free(bad);
    free(good);
    free(link);
    free(nodir);
}

/* ---- through the policy engine ---- */

static const char policy_json[] =
    "{\"name\":\"eval-metrics\","
    "\"authenticate\":[{\"type\":\"jwt\",\"secret_file\":\"hs.key\",\"algorithms\":[\"HS256\"]}],"
    "\"rules\":[{\"path\":\"/open\",\"allow\":\"anyone\"},{\"path\":\"/closed\"}]}";

/* Decides GET path from 127.0.0.1 into *d. */
static ls_rc eval_get(ls_policy_t *p, const char *path, ls_policy_decision *d, ls_err *err)
{
    ls_str headers[1] = {{NULL, 0}};
    ls_policy_request req = {
        .method = {"GET", 3},
        .path = {path, strlen(path)},
        .remote_addr = {"127.0.0.1", 9},
        .headers = headers,
    };
    return ls_policy_eval(p, &req, d, err);
}

static void decide(ls_policy_t *p, const char *path, int want_allow)
{
    ls_policy_decision d;
    ls_err err = {0};
    th_ok(eval_get(p, path, &d, &err), &err);
    assert_int_equal(d.allow, want_allow);
    assert_true(d.decision_us >= 0);
}

static void test_pmetrics_policy_eval_counts_decisions(void **state)
{
    (void)state;
    char *keys = th_path(tmpdir, "hs.key");
    FILE *f = fopen(keys, "w");
    fputs("0123456789abcdef0123456789abcdef", f);
    fclose(f);
    chmod(keys, 0600);
    char *path = fresh_path();
    ls_pmetrics_t *m = open_at(path);
    ls_policy_opts opts = {.base_dir = tmpdir, .flags = LS_POLICY_NO_AUDIT, .metrics = m};
    ls_policy_t *p = NULL;
    ls_err err = {0};
    th_ok(ls_policy_load(&p, policy_json, strlen(policy_json), &opts, &err), &err);
    for (int i = 0; i < 3; i++) decide(p, "/open", 1);
    for (int i = 0; i < 2; i++) decide(p, "/closed", 0);
    decide(p, "/nowhere", 0);
    char *t = render(m);
    assert_true(value_of(t, "lodestone_policy_decisions_total{policy=\"eval-metrics\","
                            "decision=\"allow\",reason=\"allowed\"}") == 3);
    assert_true(value_of(t, "lodestone_policy_decisions_total{policy=\"eval-metrics\","
                            "decision=\"deny\",reason=\"not_authenticated\"}") == 2);
    assert_true(value_of(t, "lodestone_policy_decisions_total{policy=\"eval-metrics\","
                            "decision=\"deny\",reason=\"no_matching_rule\"}") == 1);
    assert_true(value_of(t, "lodestone_policy_decision_seconds_count{policy=\"eval-metrics\"}") ==
                6);
    assert_true(value_of(t, "lodestone_policy_decision_seconds_bucket{policy=\"eval-metrics\","
                            "le=\"+Inf\"}") == 6);
    free(t);
    ls_policy_free(p);

    /* Without opts.metrics nothing is counted. */
    opts.metrics = NULL;
    th_ok(ls_policy_load(&p, policy_json, strlen(policy_json), &opts, &err), &err);
    decide(p, "/open", 1);
    ls_policy_free(p);
    t = render(m);
    assert_true(value_of(t, "lodestone_policy_decision_seconds_count{policy=\"eval-metrics\"}") ==
                6);
    free(t);
    ls_pmetrics_close(m);
    free(path);
    free(keys);
}

static void test_pmetrics_policy_eval_full_table_counts_dropped(void **state)
{
    (void)state;
    char *keys = th_path(tmpdir, "hs.key");
    char *path = fresh_path();
    ls_pmetrics_t *m = open_at(path);
    for (int i = 0; i < LS_PMETRICS_SERIES; i++) {
        char reason[32];
        snprintf(reason, sizeof reason, "r%d", i);
        ls_pmetrics_counter_add(m, ls_pmetrics_counter_get(m, "other", 1, reason));
    }
    ls_policy_opts opts = {.base_dir = tmpdir, .flags = LS_POLICY_NO_AUDIT, .metrics = m};
    ls_policy_t *p = NULL;
    ls_err err = {0};
    th_ok(ls_policy_load(&p, policy_json, strlen(policy_json), &opts, &err), &err);
    for (int i = 0; i < 3; i++) decide(p, "/open", 1);
    decide(p, "/nowhere", 0);
    ls_policy_free(p);
    char *t = render(m);
    assert_true(value_of(t, "lodestone_policy_metrics_dropped_total") == 4);
    /* The histogram had room: the times are there. */
    assert_true(value_of(t, "lodestone_policy_decision_seconds_count{policy=\"eval-metrics\"}") ==
                4);
    free(t);
    ls_pmetrics_close(m);
    free(path);
    free(keys);
}

/* ---- a table cut short under the mapping ---- */

/* Decides GET path in a forked child (no cmocka asserts there): 1 when the
 * decision was made and is want_allow with want_status. */
static int child_decides(ls_policy_t *p, const char *path, int want_allow, int want_status)
{
    ls_policy_decision d;
    ls_err err = {0};
    return eval_get(p, path, &d, &err) == LS_OK && d.allow == want_allow && d.status == want_status;
}

/* What a forked child exits with: 0 when every step went as it should,
 * else the number of the step that did not. */
static int cut_short_child(const char *path)
{
    ls_err err = {0};
    ls_pmetrics_t *m = NULL;
    ls_policy_t *p = NULL;
    signal(SIGBUS, SIG_DFL); /* (not cmocka's, which the child inherits) */
    if (ls_pmetrics_open(&m, path, &err) != LS_OK) return 1;
    ls_policy_opts opts = {.base_dir = tmpdir, .flags = LS_POLICY_NO_AUDIT, .metrics = m};
    if (ls_policy_load(&p, policy_json, strlen(policy_json), &opts, &err) != LS_OK) return 2;
    if (!child_decides(p, "/open", 1, 0) || !child_decides(p, "/closed", 0, 401)) return 3;
    if (ls_pmetrics_take_fault(m, &err) != LS_OK) return 4;
    /* Cut to nothing while lighttpd runs: decisions go on, uncounted, and
     * the first one says why (for lighttpd's error log), naming the file. */
    if (truncate(path, 0) != 0) return 5;
    ls_policy_decision d;
    if (eval_get(p, "/open", &d, &err) != LS_OK || d.allow != 1 || d.notice == NULL ||
        strstr(d.notice, "cut short") == NULL || strstr(d.notice, path) == NULL)
        return 7;
    for (int i = 0; i < 3; i++) {
        if (eval_get(p, "/closed", &d, &err) != LS_OK || d.status != 401 || d.notice != NULL)
            return 6;
        if (!child_decides(p, "/open", 1, 0) || !child_decides(p, "/nowhere", 0, 403)) return 6;
    }
    if (ls_pmetrics_take_fault(m, &err) != LS_OK) return 8; /* the engine took it */
    ls_buf out = LS_BUF_INIT;
    ls_rc rc = ls_pmetrics_render(m, &out, &err);
    ls_buf_free(&out);
    if (rc != LS_EIO || strstr(err.msg, "cut short") == NULL) return 9;
    if (ls_pmetrics_counter_get(m, "x", 1, "y") != NULL || ls_pmetrics_hist_get(m, "x") != NULL)
        return 10;
    ls_pmetrics_record(m, "x", 1, "y", 5);
    if (!child_decides(p, "/open", 1, 0)) return 11;
    ls_policy_free(p);
    ls_pmetrics_close(m);

    /* A slot got before the cut, used alone (the engine caches them): the
     * fault finds its table. */
    if (ls_pmetrics_open(&m, path, &err) != LS_EFORMAT) return 12; /* empty now: bad magic */
    if (unlink(path) != 0 || ls_pmetrics_open(&m, path, &err) != LS_OK) return 13;
    ls_pmetrics_hist *h = ls_pmetrics_hist_get(m, "pol");
    ls_pmetrics_counter *c = ls_pmetrics_counter_get(m, "pol", 1, "allowed");
    if (h == NULL || c == NULL) return 14;
    ls_pmetrics_hist_observe(h, 1000);
    ls_pmetrics_counter_add(m, c);
    if (truncate(path, 0) != 0) return 15;
    ls_pmetrics_hist_observe(h, 1000);
    if (ls_pmetrics_take_fault(m, &err) != LS_EIO) return 16;
    ls_pmetrics_hist_observe(h, 1000);
    ls_pmetrics_counter_add(m, c);
    ls_pmetrics_counter_add(NULL, c);
    ls_pmetrics_counter_add(m, NULL);
    ls_pmetrics_close(m);
    return 0;
}

/* truncate -s 0 of the shared table while lighttpd runs killed both workers
 * with SIGBUS. Now the table stops counting, says why once, and decisions
 * go on. */
static void test_pmetrics_file_cut_short_stops_counting(void **state)
{
    (void)state;
    char keys[4096], path[4096]; /* (not on the heap: the child ends without freeing) */
    snprintf(keys, sizeof keys, "%s/hs.key", tmpdir);
    snprintf(path, sizeof path, "%s/cut.metrics", tmpdir);
    FILE *f = fopen(keys, "w");
    fputs("0123456789abcdef0123456789abcdef", f);
    fclose(f);
    chmod(keys, 0600);
    int rc = th_run_child(cut_short_child, path);
    if (rc != 0) fail_msg("child: %s %d", rc < 0 ? "killed by signal" : "failed step", abs(rc));
}

/* ---- allocation failures ---- */

static const char *alloc_path;

static ls_rc alloc_open(void *ud)
{
    (void)ud;
    ls_pmetrics_t *m = NULL;
    ls_rc rc = ls_pmetrics_open(&m, alloc_path, NULL);
    ls_pmetrics_close(m);
    return rc;
}

static ls_pmetrics_t *alloc_table;

static ls_rc alloc_render(void *ud)
{
    (void)ud;
    ls_buf out = LS_BUF_INIT;
    ls_rc rc = ls_pmetrics_render(alloc_table, &out, NULL);
    ls_buf_free(&out);
    return rc;
}

static void test_pmetrics_alloc_failure(void **state)
{
    (void)state;
    char *path = fresh_path();
    alloc_path = path;
    /* creating: handle, path copy, temporary name */
    assert_int_equal(th_each_alloc_failure(alloc_open, NULL), 3);
    /* opening an existing table: handle, path copy */
    assert_int_equal(th_each_alloc_failure(alloc_open, NULL), 2);
    alloc_table = open_at(path);
    ls_pmetrics_record(alloc_table, "p", 1, "allowed", 1);
    /* the slot list, then the output buffer as it grows */
    assert_true(th_each_alloc_failure(alloc_render, NULL) >= 2);
    ls_pmetrics_close(alloc_table);
    alloc_table = NULL;
    alloc_path = NULL;
    free(path);
}

/* ---- main ---- */

static int group_setup(void **state)
{
    (void)state;
    tmpdir = th_mkdtemp("pmetrics");
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
        cmocka_unit_test(test_pmetrics_counts_render_exactly),
        cmocka_unit_test(test_pmetrics_histogram_buckets_cumulative),
        cmocka_unit_test(test_pmetrics_labels_escaped_and_truncated),
        cmocka_unit_test(test_pmetrics_reopen_keeps_counts),
        cmocka_unit_test(test_pmetrics_processes_share_counters),
        cmocka_unit_test(test_pmetrics_full_table_counts_dropped),
        cmocka_unit_test(test_pmetrics_open_refuses_bad_files),
        cmocka_unit_test(test_pmetrics_policy_eval_counts_decisions),
        cmocka_unit_test(test_pmetrics_policy_eval_full_table_counts_dropped),
        cmocka_unit_test(test_pmetrics_file_cut_short_stops_counting),
        cmocka_unit_test(test_pmetrics_alloc_failure),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
