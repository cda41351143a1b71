/* SPDX-License-Identifier: MIT
 * Tests of jwks_url (native/policy/jwks_fetch.c and its use in authn.c):
 * a small HTTP server on 127.0.0.1 in a thread serves responses each test
 * controls (a JWK Set, 500, garbage, slow, changed keys) and counts
 * requests; the policy engine and the fetcher are checked against it.
 * Timings use short intervals through the fetcher's options; the policy's
 * once-a-minute rule is checked with its real default. */
#define _GNU_SOURCE 1
#include "helpers.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <glob.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "policy/jwks_fetch.h"

#define NOW_S INT64_C(1767225600) /* the policy's (manual) clock */

static const char SECRET1[] = "0123456789abcdef0123456789abcdef";
static const char SECRET2[] = "fedcba9876543210fedcba9876543210";
static const char JWKS1[] = "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"k1\","
                            "\"k\":\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\"}]}";
static const char JWKS2[] = "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"k2\","
                            "\"k\":\"ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA\"}]}";

static char *dir;
static ls_manual_clock mc;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* ---- a tiny HTTP server ---- */

typedef struct {
    int fd, port;
    pthread_t th;
    pthread_mutex_t mu;
    atomic_int stop, requests;
    atomic_int responded; /* responses sent in full */
    int status;           /* the response, under mu */
    char headers[256];
    char *body;
    size_t body_len;
    int delay_ms;
} srv_t;

static void send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) return;
        p += w;
        n -= (size_t)w;
    }
}

static void serve(srv_t *s, int c)
{
    char req[4096];
    size_t n = 0;
    int64_t deadline = now_ms() + 2000;
    req[0] = '\0';
    while (strstr(req, "\r\n\r\n") == NULL) {
        struct pollfd pfd = {c, POLLIN, 0};
        if (now_ms() > deadline || n == sizeof req - 1) return;
        if (poll(&pfd, 1, 50) <= 0) continue;
        ssize_t r = recv(c, req + n, sizeof req - 1 - n, 0);
        if (r <= 0) return;
        n += (size_t)r;
        req[n] = '\0';
    }
    atomic_fetch_add(&s->requests, 1);
    pthread_mutex_lock(&s->mu);
    int status = s->status, delay = s->delay_ms;
    char headers[256];
    memcpy(headers, s->headers, sizeof headers);
    size_t len = s->body_len;
    char *body = malloc(len + 1);
    memcpy(body, s->body, len);
    pthread_mutex_unlock(&s->mu);
    for (int waited = 0; waited < delay && !atomic_load(&s->stop); waited += 10) sleep_ms(10);
    if (!atomic_load(&s->stop)) {
        char head[512];
        int hl = snprintf(head, sizeof head,
                          "HTTP/1.1 %d Canned\r\nContent-Length: %zu\r\nConnection: close\r\n"
                          "%s\r\n",
                          status, len, headers);
        send_all(c, head, (size_t)hl);
        send_all(c, body, len);
        atomic_fetch_add(&s->responded, 1);
    }
    free(body);
}

static void *srv_main(void *ud)
{
    srv_t *s = ud;
    while (!atomic_load(&s->stop)) {
        struct pollfd pfd = {s->fd, POLLIN, 0};
        if (poll(&pfd, 1, 20) <= 0) continue;
        int c = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0) continue;
        serve(s, c);
        close(c);
    }
    return NULL;
}

/* Sets what the next requests get. */
static void srv_respond_n(srv_t *s, int status, const char *headers, const char *body, size_t len,
                          int delay_ms)
{
    pthread_mutex_lock(&s->mu);
    s->status = status;
    snprintf(s->headers, sizeof s->headers, "%s", headers ? headers : "");
    free(s->body);
    s->body = malloc(len + 1);
    memcpy(s->body, body, len);
    s->body_len = len;
    s->delay_ms = delay_ms;
    pthread_mutex_unlock(&s->mu);
}

static void srv_respond(srv_t *s, int status, const char *headers, const char *body, int delay_ms)
{
    srv_respond_n(s, status, headers, body, strlen(body), delay_ms);
}

static srv_t *srv_start(void)
{
    srv_t *s = calloc(1, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(s->fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(s->fd, 16), 0);
    socklen_t al = sizeof a;
    getsockname(s->fd, (struct sockaddr *)&a, &al);
    s->port = ntohs(a.sin_port);
    srv_respond(s, 200, "", JWKS1, 0);
    assert_int_equal(pthread_create(&s->th, NULL, srv_main, s), 0);
    return s;
}

/* Stops the server and closes its port (connections are then refused). */
static void srv_stop(srv_t *s)
{
    atomic_store(&s->stop, 1);
    pthread_join(s->th, NULL);
    close(s->fd);
    free(s->body);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static char *srv_url(const srv_t *s, const char *path)
{
    char *u;
    if (asprintf(&u, "http://127.0.0.1:%d%s", s->port, path) < 0) abort();
    return u;
}

/* How long to wait for something the fetch thread does. Only a bound:
 * every wait returns as soon as the event happens; it is generous because
 * CI runs this under ASan beside other suites on two cores. */
#define WAIT_MS 30000

/* ---- tokens, files, policies ---- */

static char *mint(const char *kid, const char *key)
{
    char hdr[128], payload[128];
    snprintf(hdr, sizeof hdr, "{\"alg\":\"HS256\",\"kid\":\"%s\",\"typ\":\"JWT\"}", kid);
    snprintf(payload, sizeof payload, "{\"sub\":\"alice\",\"exp\":%lld}",
             (long long)(NOW_S + 86400));
    char *tok = th_mint_hs256(hdr, payload, key), *out;
    if (asprintf(&out, "Bearer %s", tok) < 0) abort();
    free(tok);
    return out;
}

/* A fresh directory (0700) under the suite's. */
static char *subdir(const char *name)
{
    char *d = th_path(dir, name);
    assert_int_equal(mkdir(d, 0700), 0);
    return d;
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) return NULL;
    char *buf = calloc(1, 1 << 16);
    size_t n = fread(buf, 1, (1 << 16) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* The one cache file a policy named name made in d (asserted), or NULL
 * when there is none yet. Caller frees. */
static char *find_cache(const char *d, const char *name)
{
    char *pat;
    if (asprintf(&pat, "%s/jwks-%s-*.json", d, name) < 0) abort();
    glob_t g;
    char *out = NULL;
    if (glob(pat, 0, NULL, &g) == 0) {
        assert_int_equal(g.gl_pathc, 1);
        out = strdup(g.gl_pathv[0]);
        globfree(&g);
    }
    free(pat);
    return out;
}

/* 1 when policy name has made its cache file in d. */
static int has_cache(const char *d, const char *name)
{
    char *path = find_cache(d, name);
    int found = path != NULL;
    free(path);
    return found;
}

static char *policy_json(const char *name, const char *url, const char *extra)
{
    char *j;
    if (asprintf(&j,
                 "{\"name\":\"%s\",\"authenticate\":[{\"type\":\"jwt\",\"jwks_url\":\"%s\","
                 "\"algorithms\":[\"HS256\"]%s}],\"rules\":[{\"path\":\"/me\"}]}",
                 name, url, extra ? extra : "") < 0)
        abort();
    return j;
}

static ls_rc load_in(const char *cache_dir, const char *name, const char *url, const char *extra,
                     ls_policy_t **p, ls_err *err)
{
    char *json = policy_json(name, url, extra);
    ls_policy_opts opts = {.base_dir = cache_dir,
                           .rl_dir = dir,
                           .clock = &mc.clock,
                           .flags = LS_POLICY_NO_AUDIT,
                           .cache_dir = cache_dir};
    ls_rc rc = ls_policy_load(p, json, strlen(json), &opts, err);
    free(json);
    return rc;
}

static ls_policy_t *load(const char *cache_dir, const char *name, const char *url)
{
    ls_policy_t *p = NULL;
    ls_err err;
    ls_rc rc = load_in(cache_dir, name, url, NULL, &p, &err);
    if (rc != LS_OK) fail_msg("load: %s (%s)", err.msg, ls_rc_name(rc));
    return p;
}

/* Decides GET /me with an Authorization header (NULL: none). */
static void decide(ls_policy_t *p, const char *authz, ls_policy_decision *d)
{
    ls_str headers[4] = {{NULL, 0}};
    size_t n = ls_policy_header_count(p);
    assert_true(n <= 4);
    for (size_t i = 0; i < n; i++)
        if (authz && strcasecmp(ls_policy_header_name(p, i), "Authorization") == 0)
            headers[i] = (ls_str){authz, strlen(authz)};
    ls_policy_request req = {.method = {"GET", 3},
                             .path = {"/me", 3},
                             .host = {"api.example.com", 15},
                             .remote_addr = {"192.0.2.10", 10},
                             .headers = headers};
    ls_err err;
    th_ok(ls_policy_eval(p, &req, d, &err), &err);
}

/* Decides until a request with authz is allowed; fails after ms. */
static void wait_allowed(ls_policy_t *p, const char *authz, int ms)
{
    ls_policy_decision d;
    int64_t end = now_ms() + ms;
    for (;;) {
        decide(p, authz, &d);
        if (d.allow) return;
        if (now_ms() > end) fail_msg("not allowed after %d ms: %s", ms, d.reason);
        sleep_ms(5);
    }
}

/* Decides, moving the policy's clock a second each time (so files are
 * looked at again), until a notice containing text comes. */
static void wait_notice(ls_policy_t *p, const char *authz, const char *text, int ms)
{
    ls_policy_decision d;
    int64_t end = now_ms() + ms;
    for (;;) {
        ls_manual_clock_advance(&mc, 1000);
        decide(p, authz, &d);
        if (d.notice && strstr(d.notice, text)) return;
        if (now_ms() > end) fail_msg("no notice with \"%s\" after %d ms", text, ms);
        sleep_ms(10);
    }
}

static void wait_requests(srv_t *s, int n, int ms)
{
    int64_t end = now_ms() + ms;
    while (atomic_load(&s->requests) < n) {
        if (now_ms() > end)
            fail_msg("server saw %d requests, want %d", atomic_load(&s->requests), n);
        sleep_ms(2);
    }
}

/* Makes a file look written an hour ago. */
static void age_file(const char *path)
{
    struct timespec ts[2];
    clock_gettime(CLOCK_REALTIME, &ts[0]);
    ts[0].tv_sec -= 3600;
    ts[1] = ts[0];
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

/* ---- the engine ---- */

static void test_jwks_fetch_url_check(void **state)
{
    (void)state;
    static const char *const good[] = {"https://id.example.com/.well-known/jwks.json",
                                       "HTTPS://id.example.com:8443/keys",
                                       "http://127.0.0.1:8080/jwks",
                                       "http://127.9.0.1/jwks",
                                       "http://localhost/jwks",
                                       "http://[::1]:9000/jwks"};
    static const struct {
        const char *url, *msg;
    } bad[] = {
        {"ftp://id.example.com/jwks", "use https"},
        {"file:///etc/jwks.json", "use https"},
        {"http://id.example.com/jwks", "plain http only to a loopback"},
        {"http://128.0.0.1/jwks", "plain http only to a loopback"},
        {"https://user:pw@id.example.com/jwks", "user name or password"},
        {"id.example.com/jwks", "not an absolute"},
        {"", "empty URL"},
    };
    ls_err err;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (ls_jwks_fetch_check_url(good[i], &err) != LS_OK) fail_msg("%s: %s", good[i], err.msg);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err.msg[0] = '\0';
        ls_rc rc = ls_jwks_fetch_check_url(bad[i].url, &err);
        if (rc != LS_EINVAL || strstr(err.msg, bad[i].msg) == NULL)
            fail_msg("%s: got %s \"%s\"", bad[i].url, ls_rc_name(rc), err.msg);
    }
}

static void test_jwks_fetch_policy_options_checked(void **state)
{
    (void)state;
    ls_manual_clock_init(&mc, NOW_S * 1000);
    char *d = subdir("options");
    static const struct {
        const char *url, *extra, *msg;
        ls_rc rc;
    } cases[] = {
        {"https://id.example.com/jwks", ",\"jwks\":\"x.json\"",
         "needs exactly one key source: jwks, jwks_url, pem or secret_file", LS_EINVAL},
        {"https://id.example.com/jwks", ",\"secret_file\":\"x.key\"", "exactly one key source",
         LS_EINVAL},
        {"https://id.example.com/jwks", ",\"jwks_refresh\":\"10s\"",
         "authenticate[1].jwks_refresh: between 1m and 24h", LS_EINVAL},
        {"https://id.example.com/jwks", ",\"jwks_refresh\":\"2d\"", "between 1m and 24h",
         LS_EINVAL},
        {"https://id.example.com/jwks", ",\"jwks_cache\":7", "authenticate[1]", LS_EINVAL},
        {"ftp://id.example.com/jwks", "", "authenticate[1].jwks_url: scheme \"ftp\"", LS_EINVAL},
        {"http://id.example.com/jwks", "", "authenticate[1].jwks_url: use https", LS_EINVAL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ls_policy_t *p = NULL;
        ls_err err = {0};
        ls_rc rc = load_in(d, "opts", cases[i].url, cases[i].extra, &p, &err);
        ls_policy_free(p);
        if (rc != cases[i].rc || strstr(err.msg, cases[i].msg) == NULL)
            fail_msg("case %zu: got %s \"%s\", want %s with \"%s\"", i, ls_rc_name(rc), err.msg,
                     ls_rc_name(cases[i].rc), cases[i].msg);
    }

    /* jwks_cache and jwks_refresh belong to jwks_url. */
    char *jfile = th_path(d, "j.json");
    write_text(jfile, JWKS1);
    free(jfile);
    const char *json = "{\"name\":\"x\",\"authenticate\":[{\"type\":\"jwt\",\"jwks\":\"j.json\","
                       "\"jwks_refresh\":\"5m\",\"algorithms\":[\"HS256\"]}]}";
    ls_policy_opts opts = {.base_dir = d, .clock = &mc.clock, .flags = LS_POLICY_NO_AUDIT};
    ls_policy_t *p = NULL;
    ls_err err = {0};
    assert_int_equal(ls_policy_load(&p, json, strlen(json), &opts, &err), LS_EINVAL);
    assert_non_null(strstr(err.msg, "jwks_cache and jwks_refresh go with jwks_url"));

    /* A cache directory others can write is refused: they could plant keys. */
    char *open_dir = subdir("open");
    chmod(open_dir, 0777);
    assert_int_equal(load_in(open_dir, "o", "https://id.example.com/jwks", NULL, &p, &err),
                     LS_EPERM);
    assert_non_null(strstr(err.msg, "writable by group or others"));

    /* jwks_cache names the file (relative to base_dir); a missing directory
     * is made; a good declaration loads without any network. */
    assert_int_equal(load_in(d, "named", "https://id.example.com/jwks",
                             ",\"jwks_cache\":\"keys/idp.json\",\"jwks_refresh\":\"1h\"", &p, &err),
                     LS_OK);
    ls_policy_free(p);
    char *made = th_path(d, "keys");
    struct stat st;
    assert_int_equal(stat(made, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    free(made);
    free(open_dir);
    free(d);
}

static void test_jwks_fetch_policy_first_fetch_then_accepts(void **state)
{
    (void)state;
    ls_manual_clock_init(&mc, NOW_S * 1000);
    srv_t *s = srv_start();
    srv_respond(s, 200, "", JWKS1, 300); /* slow enough to see the empty start */
    char *d = subdir("first"), *url = srv_url(s, "/jwks");
    char *t1 = mint("k1", SECRET1);
    ls_policy_t *p = load(d, "first", url);
    assert_false(has_cache(d, "first"));

    /* No keys yet: fail closed, and the fetch has started. */
    ls_policy_decision dec;
    decide(p, t1, &dec);
    assert_int_equal(dec.status, 401);
    assert_string_equal(dec.reason, "unknown_kid");
    wait_allowed(p, t1, WAIT_MS);
    assert_int_equal(atomic_load(&s->requests), 1); /* the unknown kid asked for no second one */

    /* The cache file: default name, the served bytes, mode 0644. */
    char *cache = find_cache(d, "first");
    assert_non_null(cache);
    const char *base = strrchr(cache, '/') + 1;
    assert_int_equal(strlen(base), strlen("jwks-first-") + 16 + strlen(".json"));
    char *text = read_text(cache);
    assert_string_equal(text, JWKS1);
    struct stat st;
    assert_int_equal(stat(cache, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    /* A token signed with another key is still refused. */
    char *t2 = mint("k1", SECRET2);
    decide(p, t2, &dec);
    assert_string_equal(dec.reason, "bad_signature");

    ls_policy_free(p);
    srv_stop(s);
    free(text);
    free(cache);
    free(t1);
    free(t2);
    free(url);
    free(d);
}

static void test_jwks_fetch_policy_restart_uses_cache_while_down(void **state)
{
    (void)state;
    ls_manual_clock_init(&mc, NOW_S * 1000);
    srv_t *s = srv_start();
    char *d = subdir("restart"), *url = srv_url(s, "/jwks");
    char *t1 = mint("k1", SECRET1);
    ls_policy_t *p = load(d, "restart", url);
    wait_allowed(p, t1, WAIT_MS);
    ls_policy_free(p);
    srv_stop(s); /* the provider is down: its port refuses connections */

    /* A fresh cache: keys at once, nothing fetched, nothing to report. */
    p = load(d, "restart", url);
    ls_policy_decision dec;
    decide(p, t1, &dec);
    assert_int_equal(dec.allow, 1);
    assert_null(dec.notice);
    ls_policy_free(p);

    /* A stale cache: keys at once; the failed refresh keeps them and says so. */
    char *cache = find_cache(d, "restart");
    age_file(cache);
    p = load(d, "restart", url);
    decide(p, t1, &dec);
    assert_int_equal(dec.allow, 1);
    wait_notice(p, t1, "keeping the cached keys", WAIT_MS);
    decide(p, t1, &dec);
    assert_int_equal(dec.allow, 1);
    char *text = read_text(cache);
    assert_string_equal(text, JWKS1);
    ls_policy_free(p);
    free(text);
    free(cache);
    free(t1);
    free(url);
    free(d);
}

static void test_jwks_fetch_policy_bad_responses_keep_cache(void **state)
{
    (void)state;
    ls_manual_clock_init(&mc, NOW_S * 1000);
    srv_t *s = srv_start();
    char *d = subdir("bad"), *url = srv_url(s, "/jwks");
    char *t1 = mint("k1", SECRET1);
    ls_policy_t *p = load(d, "bad", url);
    wait_allowed(p, t1, WAIT_MS);
    ls_policy_free(p);
    char *cache = find_cache(d, "bad");

    static const struct {
        int status;
        const char *body, *notice;
    } cases[] = {
        {500, "{\"keys\":[]}", "HTTP status 500"},
        {200, "<html>maintenance</html>", "not a usable JWK Set"},
        {200, "{\"keys\":[]}", "no key this server can use"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        srv_respond(s, cases[i].status, "", cases[i].body, 0);
        age_file(cache); /* so that a load refreshes at once */
        int before = atomic_load(&s->requests);
        p = load(d, "bad", url);
        wait_notice(p, t1, cases[i].notice, WAIT_MS);
        assert_int_equal(atomic_load(&s->requests), before + 1);
        ls_policy_decision dec;
        decide(p, t1, &dec);
        assert_int_equal(dec.allow, 1);
        char *text = read_text(cache);
        assert_string_equal(text, JWKS1);
        free(text);
        ls_policy_free(p);
    }
    srv_stop(s);
    free(cache);
    free(t1);
    free(url);
    free(d);
}

static void test_jwks_fetch_policy_damaged_cache_refetched(void **state)
{
    (void)state;
    ls_manual_clock_init(&mc, NOW_S * 1000);
    srv_t *s = srv_start();
    char *d = subdir("damaged"), *url = srv_url(s, "/jwks");
    char *t1 = mint("k1", SECRET1);
    ls_policy_t *p = load(d, "damaged", url);
    wait_allowed(p, t1, WAIT_MS);
    ls_policy_free(p);
    char *cache = find_cache(d, "damaged");
    write_text(cache, "{\"keys\": [");

    p = load(d, "damaged", url); /* loads with no keys and says why */
    ls_policy_decision dec;
    decide(p, t1, &dec);
    assert_non_null(dec.notice);
    assert_non_null(strstr(dec.notice, "ignoring the cached keys"));
    wait_allowed(p, t1, WAIT_MS);
    assert_int_equal(atomic_load(&s->requests), 2);
    ls_policy_free(p);
    srv_stop(s);
    free(cache);
    free(t1);
    free(url);
    free(d);
}

static void test_jwks_fetch_policy_unknown_kid_refetches_once_a_minute(void **state)
{
    (void)state;
    ls_manual_clock_init(&mc, NOW_S * 1000);
    srv_t *s = srv_start();
    char *d = subdir("rotate"), *url = srv_url(s, "/jwks");
    char *t1 = mint("k1", SECRET1), *t2 = mint("k2", SECRET2), *t3 = mint("k3", SECRET2);
    ls_policy_t *p = load(d, "rotate", url);
    ls_policy_decision dec;
    decide(p, NULL, &dec); /* starts the fetcher */
    wait_allowed(p, t1, WAIT_MS);
    assert_int_equal(atomic_load(&s->requests), 1);

    /* The provider rotates; the first token with the new kid brings it. */
    srv_respond(s, 200, "", JWKS2, 0);
    decide(p, t2, &dec);
    assert_string_equal(dec.reason, "unknown_kid");
    wait_allowed(p, t2, WAIT_MS);
    assert_int_equal(atomic_load(&s->requests), 2);
    decide(p, t1, &dec); /* the old key is gone */
    assert_string_equal(dec.reason, "unknown_kid");

    /* More unknown kids within the minute fetch nothing more. */
    int64_t end = now_ms() + 600;
    while (now_ms() < end) {
        decide(p, t3, &dec);
        assert_int_equal(dec.status, 401);
        assert_string_equal(dec.reason, "unknown_kid");
        sleep_ms(5);
    }
    assert_int_equal(atomic_load(&s->requests), 2);
    ls_policy_free(p);
    srv_stop(s);
    free(t1);
    free(t2);
    free(t3);
    free(url);
    free(d);
}

static void test_jwks_fetch_policy_free_during_slow_fetch(void **state)
{
    (void)state;
    ls_manual_clock_init(&mc, NOW_S * 1000);
    srv_t *s = srv_start();
    srv_respond(s, 200, "", JWKS1, 8000);
    char *d = subdir("slow"), *url = srv_url(s, "/jwks");
    ls_policy_t *p = load(d, "slow", url);
    ls_policy_decision dec;
    decide(p, NULL, &dec);
    wait_requests(s, 1, WAIT_MS); /* the server holds the response */
    sleep_ms(50);
    ls_policy_free(p);
    /* It returned while the server still held its 8 s response: free does
     * not wait for a transfer, it stops it. */
    assert_int_equal(atomic_load(&s->responded), 0);
    assert_false(has_cache(d, "slow"));
    srv_stop(s);
    free(url);
    free(d);
}

static ls_rc load_for_enomem(void *ud)
{
    ls_policy_t *p = NULL;
    ls_rc rc = load_in(ud, "nomem", "https://id.example.com/jwks", NULL, &p, NULL);
    ls_policy_free(p);
    return rc;
}

static void test_jwks_fetch_policy_load_reports_enomem(void **state)
{
    (void)state;
    ls_manual_clock_init(&mc, NOW_S * 1000);
    char *d = subdir("nomem");
    assert_true(th_each_alloc_failure(load_for_enomem, d) > 10);
    free(d);
}

/* ---- the fetcher on its own, with short intervals ---- */

static ls_jwks_fetch_t *fetcher(const char *url, const char *path, const ls_jwks_fetch_opts *o)
{
    ls_jwks_fetch_t *f = NULL;
    ls_err err;
    th_ok(ls_jwks_fetch_new(&f, url, path, o, &err), &err);
    uint64_t seen = 0;
    th_ok(ls_jwks_fetch_poll(f, &seen, &err), &err); /* starts the thread */
    return f;
}

static ls_jwks_fetch_stats stats(ls_jwks_fetch_t *f)
{
    ls_jwks_fetch_stats st;
    ls_jwks_fetch_get_stats(f, &st);
    return st;
}

#define WAIT_STAT(f, field, n, ms)                                                        \
    do {                                                                                  \
        int64_t end_ = now_ms() + (ms);                                                   \
        while (stats(f).field < (uint64_t)(n)) {                                          \
            if (now_ms() > end_)                                                          \
                fail_msg("%s: %llu, want %d", #field, (unsigned long long)stats(f).field, \
                         (int)(n));                                                       \
            sleep_ms(2);                                                                  \
        }                                                                                 \
    } while (0)

/* The failure poll reports now (it must mention text). */
static void expect_failure(ls_jwks_fetch_t *f, uint64_t *seen, const char *text)
{
    ls_err err = {0};
    ls_rc rc = ls_jwks_fetch_poll(f, seen, &err);
    if (rc == LS_OK || strstr(err.msg, text) == NULL || strstr(err.msg, "next try in") == NULL)
        fail_msg("want a failure with \"%s\", got %s \"%s\"", text, ls_rc_name(rc), err.msg);
}

static void test_jwks_fetch_refresh_failures_and_backoff(void **state)
{
    (void)state;
    srv_t *s = srv_start();
    char *d = subdir("refresh"), *url = srv_url(s, "/jwks"), *path = th_path(d, "k.json");
    ls_jwks_fetch_opts o = {
        .refresh_ms = 100, .retry_min_ms = 20, .retry_max_ms = 80, .max_body = 4096};
    ls_jwks_fetch_t *f = fetcher(url, path, &o);
    uint64_t seen = 0;
    WAIT_STAT(f, installs, 1, WAIT_MS);
    char *text = read_text(path);
    assert_string_equal(text, JWKS1);
    free(text);

    static const struct {
        int status;
        const char *headers, *body, *msg;
    } bad[] = {
        {500, "", "oops", "HTTP status 500"},
        {200, "", "garbage", "not a usable JWK Set"},
        {200, "", "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"!\",\"e\":\"AQAB\"}]}",
         "not a usable JWK Set"},
        {200, "",
         "{\"keys\":[{\"kty\":\"oct\",\"use\":\"enc\","
         "\"k\":\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\"}]}",
         "not a usable JWK Set: keys[1].use: \"enc\", not for signatures"},
        {302, "Location: http://127.0.0.1:1/elsewhere\r\n", "", "redirect"}, /* never to http */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        srv_respond(s, bad[i].status, bad[i].headers, bad[i].body, 0);
        uint64_t failures = stats(f).failures;
        WAIT_STAT(f, failures, failures + 2, WAIT_MS);
        expect_failure(f, &seen, bad[i].msg);
        text = read_text(path);
        assert_string_equal(text, JWKS1);
        free(text);
    }
    /* Too large: refused by Content-Length (and by counting, without it). */
    char big[8192];
    memset(big, ' ', sizeof big);
    srv_respond_n(s, 200, "", big, sizeof big, 0);
    uint64_t failures = stats(f).failures;
    WAIT_STAT(f, failures, failures + 2, WAIT_MS);
    expect_failure(f, &seen, "larger than 4096 bytes");

    /* Backoff: failures come at 20, 40, 80, 80 ms..., not every few ms. */
    srv_respond(s, 500, "", "oops", 0);
    sleep_ms(100);
    uint64_t a0 = stats(f).attempts;
    sleep_ms(400);
    uint64_t a1 = stats(f).attempts;
    if (a1 - a0 < 2 || a1 - a0 > 8)
        fail_msg("%llu attempts in 400 ms at an 80 ms backoff", (unsigned long long)(a1 - a0));

    /* Recovered: the new keys replace the old, and nothing more to report. */
    srv_respond(s, 200, "", JWKS2, 0);
    WAIT_STAT(f, installs, 2, WAIT_MS);
    text = read_text(path);
    assert_string_equal(text, JWKS2);
    free(text);
    ls_err err;
    (void)ls_jwks_fetch_poll(f, &seen, &err); /* failures from before the recovery */
    WAIT_STAT(f, installs, 3, WAIT_MS);
    th_ok(ls_jwks_fetch_poll(f, &seen, &err), &err);
    ls_jwks_fetch_free(f);
    srv_stop(s);
    free(path);
    free(url);
    free(d);
}

static void test_jwks_fetch_honours_clamped_max_age(void **state)
{
    (void)state;
    srv_t *s = srv_start();
    char *d = subdir("maxage"), *url = srv_url(s, "/jwks"), *path = th_path(d, "k.json");

    /* max-age=0 (and no-cache): as often as the floor allows, no more. */
    srv_respond(s, 200, "Cache-Control: no-cache, max-age=0\r\n", JWKS1, 0);
    ls_jwks_fetch_opts o = {.refresh_ms = 600000, .min_refresh_ms = 150, .max_refresh_ms = 600000};
    ls_jwks_fetch_t *f = fetcher(url, path, &o);
    sleep_ms(700);
    uint64_t n = stats(f).installs;
    ls_jwks_fetch_free(f);
    if (n < 2 || n > 6)
        fail_msg("%llu fetches in 700 ms with a 150 ms floor", (unsigned long long)n);

    /* A long max-age is cut to the ceiling. */
    unlink(path);
    srv_respond(s, 200, "Cache-Control: public, max-age=86400\r\n", JWKS1, 0);
    o = (ls_jwks_fetch_opts){.refresh_ms = 600000, .min_refresh_ms = 50, .max_refresh_ms = 150};
    f = fetcher(url, path, &o);
    sleep_ms(700);
    n = stats(f).installs;
    ls_jwks_fetch_free(f);
    if (n < 2 || n > 6)
        fail_msg("%llu fetches in 700 ms with a 150 ms ceiling", (unsigned long long)n);

    /* Without max-age: refresh_ms; and a fresh cache file postpones the first fetch. */
    srv_respond(s, 200, "", JWKS1, 0);
    int before = atomic_load(&s->requests);
    f = fetcher(url, path, &o);
    sleep_ms(300);
    assert_int_equal(atomic_load(&s->requests), before);
    ls_jwks_fetch_free(f);
    srv_stop(s);
    free(path);
    free(url);
    free(d);
}

static void test_jwks_fetch_processes_share_one_cache(void **state)
{
    (void)state;
    srv_t *s = srv_start();
    char *d = subdir("shared"), *url = srv_url(s, "/jwks"), *path = th_path(d, "k.json");
    ls_jwks_fetch_opts o = {.refresh_ms = 200};
    ls_jwks_fetch_t *f1 = fetcher(url, path, &o);
    WAIT_STAT(f1, installs, 1, WAIT_MS);
    ls_jwks_fetch_t *f2 = fetcher(url, path, &o); /* as another worker would */
    sleep_ms(1200);
    /* About one fetch per 200 ms between them (7), not one each (13). */
    int n = atomic_load(&s->requests);
    if (getenv("LS_TEST_VERBOSE")) fprintf(stderr, "shared: %d fetches\n", n);
    if (n < 4 || n > 10) fail_msg("%d fetches in 1.2 s by two fetchers at 200 ms", n);
    /* Every attempt is one request. A fetch may be under way while the
     * counters are read (the attempt counted, the request not yet, or the
     * other way round): compare them at a quiet moment, which comes within
     * a refresh interval. */
    ls_jwks_fetch_stats st1, st2;
    for (int i = 0; i < 200; i++) {
        st1 = stats(f1);
        st2 = stats(f2);
        n = atomic_load(&s->requests);
        if (st1.attempts + st2.attempts == (uint64_t)n) break;
        sleep_ms(5);
    }
    assert_true(st1.attempts + st2.attempts == (uint64_t)n);
    assert_true(st2.attempts >= 1); /* both take part */
    ls_jwks_fetch_free(f1);
    ls_jwks_fetch_free(f2);
    srv_stop(s);
    free(path);
    free(url);
    free(d);
}

/* An ask made with keys older than the newest install (a decision that
 * raced the install of a fetch) fetches nothing: its keys are about to be
 * replaced. An ask with the newest keys is served, also when it replaces a
 * pending older one. */
static void test_jwks_fetch_request_with_old_keys_fetches_nothing(void **state)
{
    (void)state;
    srv_t *s = srv_start();
    char *d = subdir("stale"), *url = srv_url(s, "/jwks"), *path = th_path(d, "k.json");
    ls_jwks_fetch_opts o = {.refresh_ms = 600000, .kid_refetch_ms = 100};
    ls_jwks_fetch_t *f = fetcher(url, path, &o);
    WAIT_STAT(f, installs, 1, WAIT_MS);

    ls_jwks_fetch_request(f, 0); /* made with the keys before the first install */
    sleep_ms(300);               /* time for a wrong fetch to happen */
    ls_jwks_fetch_stats st = stats(f);
    assert_int_equal(st.attempts, 1);
    assert_int_equal(st.requests, 0);
    assert_int_equal(atomic_load(&s->requests), 1);

    ls_jwks_fetch_request(f, 0);
    ls_jwks_fetch_request(f, 1); /* the newest keys: replaces the pending old ask */
    WAIT_STAT(f, installs, 2, WAIT_MS);
    assert_int_equal(stats(f).requests, 1);
    assert_int_equal(atomic_load(&s->requests), 2);
    ls_jwks_fetch_free(f);
    srv_stop(s);
    free(path);
    free(url);
    free(d);
}

static void test_jwks_fetch_requests_at_most_once_per_interval(void **state)
{
    (void)state;
    srv_t *s = srv_start();
    char *d = subdir("asks"), *url = srv_url(s, "/jwks"), *path = th_path(d, "k.json");
    ls_jwks_fetch_opts o = {.refresh_ms = 600000, .kid_refetch_ms = 500};
    ls_jwks_fetch_t *f = fetcher(url, path, &o);
    WAIT_STAT(f, installs, 1, WAIT_MS);
    assert_int_equal(stats(f).attempts, 1);

    ls_jwks_fetch_request(f, ls_jwks_fetch_installs(f)); /* served at once */
    WAIT_STAT(f, installs, 2, WAIT_MS);
    for (int i = 0; i < 40; i++) { /* within the interval: one more, at its end */
        ls_jwks_fetch_request(f, ls_jwks_fetch_installs(f));
        sleep_ms(5);
    }
    assert_int_equal(stats(f).attempts, 2);
    WAIT_STAT(f, installs, 3, WAIT_MS);
    sleep_ms(300); /* nothing asked since: nothing fetched */
    ls_jwks_fetch_stats st = stats(f);
    assert_int_equal(st.attempts, 3);
    assert_int_equal(st.requests, 2);
    assert_int_equal(atomic_load(&s->requests), 3);
    ls_jwks_fetch_free(f);
    srv_stop(s);
    free(path);
    free(url);
    free(d);
}

static void test_jwks_fetch_timeout_keeps_nothing(void **state)
{
    (void)state;
    srv_t *s = srv_start();
    srv_respond(s, 200, "", JWKS1, 3000);
    char *d = subdir("timeout"), *url = srv_url(s, "/jwks"), *path = th_path(d, "k.json");
    ls_jwks_fetch_opts o = {.timeout_ms = 200, .retry_min_ms = 60000};
    ls_jwks_fetch_t *f = fetcher(url, path, &o);
    WAIT_STAT(f, failures, 1, 3000);
    uint64_t seen = 0;
    expect_failure(f, &seen, "imed out");
    assert_int_equal(access(path, F_OK), -1);
    ls_jwks_fetch_free(f);
    srv_stop(s);
    free(path);
    free(url);
    free(d);
}

/* A JWK Set of n distinct usable keys (oct, kids k0..). Caller frees. */
static char *many_keys(int n)
{
    size_t cap = (size_t)n * 96 + 16, len = 0;
    char *j = malloc(cap);
    len += (size_t)snprintf(j + len, cap - len, "{\"keys\":[");
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(j + len, cap - len,
                                "%s{\"kty\":\"oct\",\"kid\":\"k%d\","
                                "\"k\":\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\"}",
                                i ? "," : "", i);
    snprintf(j + len, cap - len, "]}");
    return j;
}

/* Every worker parses an installed set on its request path: a set of more
 * keys than LS_JWKS_FETCH_MAX_KEYS is refused and the cached keys stay. */
static void test_jwks_fetch_refuses_too_many_keys(void **state)
{
    (void)state;
    srv_t *s = srv_start();
    char *d = subdir("many"), *url = srv_url(s, "/jwks"), *path = th_path(d, "k.json");
    char *most = many_keys(LS_JWKS_FETCH_MAX_KEYS), *over = many_keys(LS_JWKS_FETCH_MAX_KEYS + 1);
    srv_respond(s, 200, "", most, 0);
    ls_jwks_fetch_opts o = {.refresh_ms = 100, .retry_min_ms = 20, .retry_max_ms = 40};
    ls_jwks_fetch_t *f = fetcher(url, path, &o);
    WAIT_STAT(f, installs, 1, WAIT_MS);
    char *text = read_text(path);
    assert_string_equal(text, most);
    free(text);

    srv_respond(s, 200, "", over, 0);
    WAIT_STAT(f, failures, 1, WAIT_MS);
    uint64_t seen = 0;
    expect_failure(f, &seen, "has 65 usable keys, more than the 64");
    text = read_text(path);
    assert_string_equal(text, most);
    free(text);

    /* Keys skipped as unusable cost a worker as much to look at (a point
     * off its curve is found by checking it): they count too. */
    char *junk = many_keys(1);
    size_t jl = strlen(junk), cap = jl + (size_t)LS_JWKS_FETCH_MAX_KEYS * 40;
    junk = realloc(junk, cap);
    jl -= 2; /* reopen the array */
    for (int i = 0; i < LS_JWKS_FETCH_MAX_KEYS; i++)
        jl += (size_t)snprintf(junk + jl, cap - jl, ",{\"kty\":\"PQ\",\"kid\":\"pq%d\"}", i);
    snprintf(junk + jl, cap - jl, "]}");
    srv_respond(s, 200, "", junk, 0);
    uint64_t failures = stats(f).failures;
    WAIT_STAT(f, failures, failures + 1, WAIT_MS);
    expect_failure(f, &seen, "has 65 keys (64 of them skipped as unusable), more than the 64");
    text = read_text(path);
    assert_string_equal(text, most);
    free(text);
    free(junk);

    ls_jwks_fetch_free(f);
    srv_stop(s);
    free(over);
    free(most);
    free(path);
    free(url);
    free(d);
}

/* One key the server cannot use no longer costs the identity provider's
 * whole set: the others are installed and used, the skipped one is said
 * once (index, kid, why), and a token naming it finds no key. */
static void test_jwks_fetch_policy_bad_key_skipped(void **state)
{
    (void)state;
    ls_manual_clock_init(&mc, NOW_S * 1000);
    srv_t *s = srv_start();
    srv_respond(s, 200, "",
                "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"k1\","
                "\"k\":\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\"},"
                "{\"kty\":\"oct\",\"kid\":\"old\",\"k\":\"c2hvcnQ\"}]}",
                0);
    char *d = subdir("skipped"), *url = srv_url(s, "/jwks");
    char *t1 = mint("k1", SECRET1), *old = mint("old", SECRET1);
    ls_policy_t *p = load(d, "skipped", url);
    ls_policy_decision dec;
    int notices = 0;
    int64_t end = now_ms() + WAIT_MS;
    for (decide(p, t1, &dec); !dec.allow; decide(p, t1, &dec)) {
        if (dec.notice && strstr(dec.notice, "kid \"old\"")) notices++;
        if (now_ms() > end) fail_msg("not allowed: %s", dec.reason);
        sleep_ms(5);
    }
    if (dec.notice && strstr(dec.notice, "kid \"old\"")) notices++;
    for (int i = 0; i < 5; i++) { /* the file is looked at again: no news */
        ls_manual_clock_advance(&mc, 1000);
        decide(p, t1, &dec);
        assert_int_equal(dec.allow, 1);
        if (dec.notice && strstr(dec.notice, "kid \"old\"")) notices++;
    }
    assert_int_equal(notices, 1);
    char *cache = find_cache(d, "skipped");
    struct stat st0, st1;
    assert_int_equal(stat(cache, &st0), 0);
    decide(p, old, &dec);
    assert_int_equal(dec.status, 401);
    assert_string_equal(dec.reason, "unknown_kid");
    /* That refetches the same set: installed again, and no news. */
    end = now_ms() + WAIT_MS;
    while (stat(cache, &st1) != 0 || st1.st_ino == st0.st_ino) {
        if (now_ms() > end) fail_msg("the set was not fetched again");
        sleep_ms(2);
    }
    free(cache);
    for (int i = 0; i < 5; i++) {
        ls_manual_clock_advance(&mc, 1000);
        decide(p, old, &dec);
        assert_string_equal(dec.reason, "unknown_kid");
        if (dec.notice && strstr(dec.notice, "kid \"old\"")) notices++;
        sleep_ms(5);
    }
    assert_int_equal(notices, 1);
    ls_policy_free(p);
    srv_stop(s);
    free(t1);
    free(old);
    free(url);
    free(d);
}

/* Workers share one cache: a worker asked for an unknown kid while another
 * fetches, or just after another fetched, takes that copy instead of
 * fetching again in turn (N workers, one fetch). */
static void test_jwks_fetch_ask_answered_by_shared_copy(void **state)
{
    (void)state;
    srv_t *s = srv_start();
    char *d = subdir("turns"), *url = srv_url(s, "/jwks"), *path = th_path(d, "k.json");
    write_text(path, JWKS1); /* fresh: nobody fetches unasked */
    ls_jwks_fetch_opts o = {.refresh_ms = 600000, .kid_refetch_ms = 100};
    ls_jwks_fetch_t *f1 = fetcher(url, path, &o), *f2 = fetcher(url, path, &o);

    /* f2 is asked while f1's fetch holds the lock. */
    srv_respond(s, 200, "", JWKS2, 500);
    ls_jwks_fetch_request(f1, ls_jwks_fetch_installs(f1));
    wait_requests(s, 1, WAIT_MS);
    ls_jwks_fetch_request(f2, ls_jwks_fetch_installs(f2));
    WAIT_STAT(f1, installs, 1, WAIT_MS);
    WAIT_STAT(f2, requests, 1, WAIT_MS);
    ls_jwks_fetch_stats st = stats(f2);
    assert_int_equal(st.attempts, 0);
    assert_int_equal(st.shared, 1);
    assert_int_equal(ls_jwks_fetch_installs(f2), 1); /* its engine looks at the file now */
    assert_int_equal(atomic_load(&s->requests), 1);

    /* f2 is asked just after f1 fetched again (its keys may predate that). */
    srv_respond(s, 200, "", JWKS1, 0);
    ls_jwks_fetch_request(f1, ls_jwks_fetch_installs(f1));
    WAIT_STAT(f1, installs, 2, WAIT_MS);
    ls_jwks_fetch_request(f2, ls_jwks_fetch_installs(f2));
    WAIT_STAT(f2, requests, 2, WAIT_MS);
    st = stats(f2);
    assert_int_equal(st.attempts, 0);
    assert_int_equal(st.shared, 2);
    assert_int_equal(atomic_load(&s->requests), 2);

    /* Asked again with the keys of that copy: now f2 fetches itself. */
    ls_jwks_fetch_request(f2, ls_jwks_fetch_installs(f2));
    WAIT_STAT(f2, installs, 1, WAIT_MS);
    assert_int_equal(stats(f2).attempts, 1);
    assert_int_equal(atomic_load(&s->requests), 3);

    ls_jwks_fetch_free(f1);
    ls_jwks_fetch_free(f2);
    srv_stop(s);
    free(path);
    free(url);
    free(d);
}

static void test_jwks_fetch_forked_child_runs_its_own_thread(void **state)
{
    (void)state;
    srv_t *s = srv_start();
    char *d = subdir("fork"), *url = srv_url(s, "/jwks"), *path = th_path(d, "k.json");
    ls_jwks_fetch_opts o = {.refresh_ms = 600000};
    ls_jwks_fetch_t *f = fetcher(url, path, &o);
    WAIT_STAT(f, installs, 1, WAIT_MS);

    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* The parent's thread is not here: asking does nothing until a poll
         * starts the child's own, which then serves the ask. */
        ls_jwks_fetch_request(f, ls_jwks_fetch_installs(f));
        uint64_t seen = 0;
        unsigned char ok = ls_jwks_fetch_poll(f, &seen, NULL) == LS_OK;
        int64_t end = now_ms() + 5000;
        while (ok && ls_jwks_fetch_installs(f) < 2 && now_ms() < end) sleep_ms(2);
        ok = ok && ls_jwks_fetch_installs(f) == 2;
        ls_jwks_fetch_free(f); /* joins the child's thread, leaves the parent's alone */
        ok = ok && write(fds[1], &ok, 1) == 1;
        /* The answer went through the pipe. End without exit handlers or a
         * leak check (valgrind checks at exit, not at exec): a forked child
         * holds the parent threads' memory (their libcurl and OpenSSL
         * state) with nothing left pointing at it. */
        execl("/bin/true", "true", (char *)NULL);
        _exit(0);
    }
    close(fds[1]);
    char ok = 0;
    assert_int_equal(read(fds[0], &ok, 1), 1);
    close(fds[0]);
    assert_int_equal(ok, 1);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(atomic_load(&s->requests), 2);

    /* The parent's fetcher is untouched and still answers (with the copy
     * the child has just written, as another worker's, or a fetch). */
    ls_jwks_fetch_request(f, ls_jwks_fetch_installs(f));
    WAIT_STAT(f, requests, 1, WAIT_MS);
    assert_int_equal(ls_jwks_fetch_installs(f), 2);
    ls_jwks_fetch_free(f);
    srv_stop(s);
    free(path);
    free(url);
    free(d);
}

static int setup(void **state)
{
    (void)state;
    /* Only 127.0.0.1, never through a proxy from the environment. */
    static const char *const proxies[] = {"http_proxy",  "HTTP_PROXY", "https_proxy",
                                          "HTTPS_PROXY", "all_proxy",  "ALL_PROXY"};
    for (size_t i = 0; i < sizeof proxies / sizeof proxies[0]; i++) unsetenv(proxies[i]);
    dir = th_mkdtemp("jwks-fetch");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    th_rmtree(dir);
    free(dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jwks_fetch_url_check),
        cmocka_unit_test(test_jwks_fetch_policy_options_checked),
        cmocka_unit_test(test_jwks_fetch_policy_first_fetch_then_accepts),
        cmocka_unit_test(test_jwks_fetch_policy_restart_uses_cache_while_down),
        cmocka_unit_test(test_jwks_fetch_policy_bad_responses_keep_cache),
        cmocka_unit_test(test_jwks_fetch_policy_damaged_cache_refetched),
        cmocka_unit_test(test_jwks_fetch_policy_unknown_kid_refetches_once_a_minute),
        cmocka_unit_test(test_jwks_fetch_policy_free_during_slow_fetch),
        cmocka_unit_test(test_jwks_fetch_policy_load_reports_enomem),
        cmocka_unit_test(test_jwks_fetch_refresh_failures_and_backoff),
        cmocka_unit_test(test_jwks_fetch_honours_clamped_max_age),
        cmocka_unit_test(test_jwks_fetch_processes_share_one_cache),
        cmocka_unit_test(test_jwks_fetch_request_with_old_keys_fetches_nothing),
        cmocka_unit_test(test_jwks_fetch_requests_at_most_once_per_interval),
        cmocka_unit_test(test_jwks_fetch_timeout_keeps_nothing),
        cmocka_unit_test(test_jwks_fetch_refuses_too_many_keys),
        cmocka_unit_test(test_jwks_fetch_policy_bad_key_skipped),
        cmocka_unit_test(test_jwks_fetch_ask_answered_by_shared_copy),
        cmocka_unit_test(test_jwks_fetch_forked_child_runs_its_own_thread),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
