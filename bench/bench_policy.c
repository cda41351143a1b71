/* SPDX-License-Identifier: MIT
 * Policy decisions through ls_policy_eval: ns per decision (medians over
 * rounds of this thread's CPU time and of wall time; cases alternated in
 * each round) for a cache-hit JWT decision with rules, a rate limit and
 * identity headers (also with the CPU caches swept before each decision,
 * as on a busy server); rules only; ls_rl_take alone; and cold decisions
 * (token cache missed every time) for HS256, RS256-2048, ES256 and EdDSA,
 * against a bare OpenSSL EVP_DigestVerify of the same RS256 signing input
 * measured in the same run. Keys are made here with OpenSSL.
 * LS_BENCH_ONLY=hit runs the cache-hit case alone (for perf or callgrind;
 * LS_BENCH_ITERS decisions, default 5000000). LS_BENCH_METRICS=1 counts
 * every decision in a shared metrics table (ls_pmetrics), as the gate does. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "bench.h"
#include "bench_jose.h"
#include "lodestone/lodestone.h"

#define ROUNDS      9
#define HOT_ITERS   200000
#define RS_ITERS    2000
#define HS_ITERS    20000
#define TARGET_HIT  500.0 /* ns: a cache-hit decision with rules and rate limit */
#define TARGET_COLD 1.3   /* cold RS256 decision / bare verify */
#define ISSUER      "https://id.example.com/"
#define SUBJECT     "8f2d1c9e-5b1a-4c53-9a65-0d6f3e2b7a10"

static const char *dir;
static ls_pmetrics_t *metrics; /* LS_BENCH_METRICS=1, else NULL */

/* ---- keys and tokens ---- */

/* "Bearer <token signed with alg>"; jti makes two otherwise equal tokens
 * differ. Caller frees. */
static char *bearer(const char *alg, const char *kid, EVP_PKEY *pk, const char *secret,
                    const char *jti)
{
    char payload[512];
    long long now = (long long)time(NULL);
    snprintf(payload, sizeof payload,
             "{\"iss\":\"" ISSUER "\",\"sub\":\"" SUBJECT "\",\"aud\":[\"orders\",\"account\"],"
             "\"exp\":%lld,\"iat\":%lld,\"nbf\":%lld,\"jti\":\"%s\","
             "\"scope\":\"openid profile orders:read orders:write\","
             "\"realm_access\":{\"roles\":[\"user\",\"admin\"]},\"tenant\":\"acme\"}",
             now + 86400, now - 10, now - 10, jti);
    char *tok = sign_token(alg, kid, pk, secret, secret ? strlen(secret) : 0, payload);
    size_t n = strlen(tok) + 8;
    char *h = malloc(n);
    if (h == NULL) bench_die("bearer", "out of memory");
    snprintf(h, n, "Bearer %s", tok);
    free(tok);
    return h;
}

static void write_file(const char *name, const char *text)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0) bench_die("write", path);
}

/* ---- policies ---- */

/* The orders-api example's shape: one JWT authenticator, five rules plus a
 * public route at the end (so a public request walks every rule), a rate
 * limit by subject too generous to deny, identity headers and an audit log
 * of denials. key_source is the authenticator's key field. */
static ls_policy_t *load_policy(const char *name, const char *key_source, const char *alg,
                                int cache_size, int with_limit)
{
    char json[4096], limit[128] = "";
    if (with_limit)
        snprintf(limit, sizeof limit,
                 "\"rate_limit\":{\"by\":\"subject\",\"rate\":100000000,\"per\":\"1s\","
                 "\"burst\":100000000},");
    snprintf(json, sizeof json,
             "{\"name\":\"%s\","
             "\"authenticate\":[{\"type\":\"jwt\",%s,\"algorithms\":[\"%s\"],"
             "\"issuer\":\"" ISSUER "\",\"audience\":\"orders\",\"leeway\":30,"
             "\"roles_claim\":\"realm_access.roles\",\"cache_size\":%d}],"
             "\"rules\":[{\"path\":\"/healthz\",\"allow\":\"anyone\"},{\"path\":\"/me\"},"
             "{\"path\":\"/admin/**\",\"roles\":[\"admin\"]},"
             "{\"path\":\"/orders/**\",\"methods\":[\"GET\"],\"scopes\":[\"orders:read\"]},"
             "{\"path\":\"/orders/**\",\"methods\":[\"POST\"],\"scopes\":[\"orders:write\"],"
             "\"claims\":{\"tenant\":\"acme\"}},"
             "{\"path\":\"/public/**\",\"allow\":\"anyone\"}],"
             "%s"
             "\"identity_headers\":{\"X-User\":\"sub\",\"X-Roles\":\"roles\",\"X-Tenant\":"
             "\"tenant\"},"
             "\"audit\":{\"path\":\"%s/audit-%s.log\",\"log\":\"deny\"}}",
             name, key_source, alg, cache_size, limit, dir, name);
    ls_policy_opts opts = {
        .base_dir = dir, .rl_dir = dir, .flags = LS_POLICY_PRIVATE_RL, .metrics = metrics};
    ls_policy_t *p;
    ls_err err;
    if (ls_policy_load(&p, json, strlen(json), &opts, &err) != LS_OK) bench_die(name, err.msg);
    return p;
}

/* ---- requests ---- */

typedef struct {
    ls_policy_t *p;
    ls_str headers[8];
    ls_policy_request req;
    ls_policy_decision d;
    int auth; /* index of Authorization in headers */
} request;

static void request_init(request *r, ls_policy_t *p, const char *method, const char *path)
{
    memset(r, 0, sizeof *r);
    r->p = p;
    r->auth = -1;
    size_t n = ls_policy_header_count(p);
    if (n > sizeof r->headers / sizeof r->headers[0]) bench_die("request", "too many headers");
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(ls_policy_header_name(p, i), "Authorization") == 0) r->auth = (int)i;
    r->req.method = (ls_str){method, strlen(method)};
    r->req.path = (ls_str){path, strlen(path)};
    r->req.host = (ls_str){"api.example.com", 15};
    r->req.remote_addr = (ls_str){"192.0.2.10", 10};
    r->req.headers = r->headers;
}

static void set_authz(request *r, const char *authz)
{
    if (r->auth < 0) bench_die("request", "the policy reads no Authorization header");
    r->headers[r->auth] = (ls_str){authz, strlen(authz)};
}

static void eval_allowed(request *r)
{
    ls_err err;
    if (ls_policy_eval(r->p, &r->req, &r->d, &err) != LS_OK) bench_die("eval", err.msg);
    if (!r->d.allow) bench_die("eval: denied", r->d.detail ? r->d.detail : r->d.reason);
}

/* One checked decision before timing: allowed, with the identity expected. */
static void check_decision(request *r, size_t want_headers)
{
    eval_allowed(r);
    if (r->d.n_set_headers != want_headers)
        bench_die("eval", "unexpected number of identity headers");
    if (want_headers && (r->d.subject == NULL || strcmp(r->d.subject, SUBJECT) != 0))
        bench_die("eval", "wrong subject");
}

/* ---- timed loops ----
 * Each fills one sample: ns per operation of this thread's CPU time (what
 * the code costs, unaffected by being descheduled on a busy machine) and
 * of wall time. */

typedef struct {
    double cpu, wall;
} sample;

typedef struct {
    int64_t cpu, wall;
} stamp;

static stamp stamp_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (stamp){(int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec, bench_now_ns()};
}

static void stamp_done(stamp t0, int n, sample *out)
{
    stamp t1 = stamp_now();
    out->cpu = (double)(t1.cpu - t0.cpu) / n;
    out->wall = (double)(t1.wall - t0.wall) / n;
}

static void time_eval(request *r, int n, sample *out)
{
    stamp t0 = stamp_now();
    for (int i = 0; i < n; i++) eval_allowed(r);
    stamp_done(t0, n, out);
}

/* Two tokens alternately through a cache of one: every decision misses. */
static void time_cold(request *r, const char *a, const char *b, int n, sample *out)
{
    size_t la = strlen(a), lb = strlen(b);
    stamp t0 = stamp_now();
    for (int i = 0; i < n; i++) {
        r->headers[r->auth] = i & 1 ? (ls_str){b, lb} : (ls_str){a, la};
        eval_allowed(r);
    }
    stamp_done(t0, n, out);
}

static void time_take(ls_rl_t *rl, const ls_rl_limit *lim, int n, sample *out)
{
    static const char key[] = "orders-api:s" SUBJECT;
    ls_rl_result res;
    ls_err err;
    stamp t0 = stamp_now();
    for (int i = 0; i < n; i++) {
        if (ls_rl_take(rl, key, sizeof key - 1, lim, 1, NULL, &res, &err) != LS_OK)
            bench_die("take", err.msg);
        if (!res.allowed) bench_die("take", "denied");
    }
    stamp_done(t0, n, out);
}

/* The baseline: what any RS256 verifier must do at least. */
static void time_bare(EVP_PKEY *pub, EVP_MD *md, const unsigned char *msg, size_t mlen,
                      const unsigned char *sig, size_t slen, int n, sample *out)
{
    stamp t0 = stamp_now();
    for (int i = 0; i < n; i++) {
        EVP_MD_CTX *m = EVP_MD_CTX_new();
        if (m == NULL || EVP_DigestVerifyInit(m, NULL, md, NULL, pub) != 1 ||
            EVP_DigestVerify(m, sig, slen, msg, mlen) != 1)
            bench_die("bare verify", "failed");
        EVP_MD_CTX_free(m);
    }
    stamp_done(t0, n, out);
}

static double median_cpu(const sample *v)
{
    double x[ROUNDS];
    for (int i = 0; i < ROUNDS; i++) x[i] = v[i].cpu;
    return bench_median_d(x, ROUNDS);
}

static double median_wall(const sample *v)
{
    double x[ROUNDS];
    for (int i = 0; i < ROUNDS; i++) x[i] = v[i].wall;
    return bench_median_d(x, ROUNDS);
}

static void row(const char *name, const sample *v, const char *unit)
{
    printf("  %-46s %8.0f %8.0f  ns/%s\n", name, median_cpu(v), median_wall(v), unit);
}

/* A decision as a server meets it: between two requests the kernel and
 * the server's own work push the engine's code and data out of the CPU
 * caches. Each decision follows a write sweep over `evict` bytes (4 MiB:
 * out of L1 and L2; 16 MiB: out of this machine's 8 MiB L3 too) and is
 * timed alone; returns the median wall time of n, in ns. */
static double time_eval_cold(request *r, size_t evict, int n)
{
    unsigned char *junk = calloc(1, evict);
    double *t = malloc((size_t)n * sizeof *t);
    if (junk == NULL || t == NULL) bench_die("cold caches", "out of memory");
    for (int i = 0; i < n; i++) {
        for (size_t j = 0; j < evict; j += 64) junk[j]++;
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        eval_allowed(r);
        clock_gettime(CLOCK_MONOTONIC, &b);
        t[i] = (double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec);
    }
    double m = bench_median_d(t, (size_t)n);
    free(t);
    free(junk);
    return m;
}

/* LS_BENCH_ONLY=hit: the cache-hit decision alone, for perf/callgrind. */
static void hot_only(request *hit)
{
    const char *s = getenv("LS_BENCH_ITERS");
    int n = s ? atoi(s) : 5000000;
    if (n < 1) n = 1;
    sample warm, t;
    time_eval(hit, 1000, &warm);
    time_eval(hit, n, &t);
    printf("policy cache-hit decision alone: %d decisions, %.0f ns CPU, %.0f ns wall each\n", n,
           t.cpu, t.wall);
    printf(
        "  with cold CPU caches (4 MiB, 16 MiB swept before each): %.0f, %.0f ns wall (medians of "
        "1000)\n",
        time_eval_cold(hit, (size_t)4 << 20, 1000), time_eval_cold(hit, (size_t)16 << 20, 1000));
}

int main(int argc, char **argv)
{
    dir = argc > 1 ? argv[1] : "/tmp";
    const char *only = getenv("LS_BENCH_ONLY");
    const char *with_metrics = getenv("LS_BENCH_METRICS");
    if (with_metrics && strcmp(with_metrics, "1") == 0) {
        char mpath[4096];
        ls_err err;
        snprintf(mpath, sizeof mpath, "%s/bench-policy.metrics", dir);
        if (ls_pmetrics_open(&metrics, mpath, &err) != LS_OK) bench_die("metrics", err.msg);
    }

    static const char secret[] = "bench-secret-0123456789abcdef-32";
    write_file("bench-hs.key", secret);
    const char *hs_src = "\"secret_file\":\"bench-hs.key\"";
    ls_policy_t *p_hit = load_policy("bench-hit", hs_src, "HS256", 10000, 1);
    char *hs[2] = {bearer("HS256", NULL, NULL, secret, "a"),
                   bearer("HS256", NULL, NULL, secret, "b")};
    static request hit;
    request_init(&hit, p_hit, "GET", "/orders/42");
    set_authz(&hit, hs[0]);
    check_decision(&hit, 3);
    if (only && strcmp(only, "hit") == 0) {
        hot_only(&hit);
        ls_policy_free(p_hit);
        free(hs[0]);
        free(hs[1]);
        return 0;
    }

    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (!rsa || !ec || !ed) bench_die("keygen", "failed");
    ls_buf jwks = LS_BUF_INIT;
    make_jwks(&jwks, rsa, ec, ed, NULL, 0);
    write_file("bench-jwks.json", (const char *)jwks.ptr);
    ls_buf_free(&jwks);

    const char *jwks_src = "\"jwks\":\"bench-jwks.json\"";
    ls_policy_t *p_rules = load_policy("bench-rules", hs_src, "HS256", 10000, 0);
    ls_policy_t *p_hs = load_policy("bench-hs", hs_src, "HS256", 1, 1);
    ls_policy_t *p_rs = load_policy("bench-rs", jwks_src, "RS256", 1, 1);
    ls_policy_t *p_es = load_policy("bench-es", jwks_src, "ES256", 1, 1);
    ls_policy_t *p_ed = load_policy("bench-ed", jwks_src, "EdDSA", 1, 1);
    ls_policy_t *p_rshit = load_policy("bench-rs-hit", jwks_src, "RS256", 10000, 1);

    char *rs[2] = {bearer("RS256", "rsa", rsa, NULL, "a"), bearer("RS256", "rsa", rsa, NULL, "b")};
    char *es[2] = {bearer("ES256", "ec", ec, NULL, "a"), bearer("ES256", "ec", ec, NULL, "b")};
    char *eds[2] = {bearer("EdDSA", "ed", ed, NULL, "a"), bearer("EdDSA", "ed", ed, NULL, "b")};

    static request rules, c_hs, c_rs, c_es, c_ed, rshit;
    request_init(&rules, p_rules, "GET", "/public/logo.png");
    request_init(&c_hs, p_hs, "GET", "/orders/42");
    set_authz(&c_hs, hs[0]);
    request_init(&c_rs, p_rs, "GET", "/orders/42");
    set_authz(&c_rs, rs[0]);
    request_init(&c_es, p_es, "GET", "/orders/42");
    set_authz(&c_es, es[0]);
    request_init(&c_ed, p_ed, "GET", "/orders/42");
    set_authz(&c_ed, eds[0]);
    request_init(&rshit, p_rshit, "GET", "/orders/42");
    set_authz(&rshit, rs[0]);
    check_decision(&rules, 0);
    check_decision(&c_hs, 3);
    check_decision(&c_rs, 3);
    check_decision(&c_es, 3);
    check_decision(&c_ed, 3);
    check_decision(&rshit, 3);

    /* Rate-limit take alone: a table like the policy's, the same limit. */
    char rl_path[4096];
    snprintf(rl_path, sizeof rl_path, "%s/bench-take.rl", dir);
    ls_rl_t *rl;
    ls_rl_limit lim = {.rate = 100000000, .per_ms = 1000, .burst = 100000000};
    ls_err err;
    if (ls_rl_open(&rl, rl_path, NULL, &err) != LS_OK) bench_die("rl open", err.msg);

    /* Baseline inputs: the RS256 token's signing input, signature, key. */
    const char *tok = rs[0] + 7, *dot = strrchr(tok, '.');
    ls_buf sig = LS_BUF_INIT;
    if (ls_base64url_decode(dot + 1, strlen(dot + 1), &sig, &err) != LS_OK)
        bench_die("sig", err.msg);
    unsigned char *der = NULL;
    int der_len = i2d_PUBKEY(rsa, &der);
    const unsigned char *dp = der;
    EVP_PKEY *pub = d2i_PUBKEY(NULL, &dp, der_len);
    EVP_MD *sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (pub == NULL || sha256 == NULL) bench_die("baseline", "key");
    const unsigned char *msg = (const unsigned char *)tok;
    size_t mlen = (size_t)(dot - tok);

    static sample hit_s[ROUNDS], rules_s[ROUNDS], take_s[ROUNDS], rshit_s[ROUNDS], hs_s[ROUNDS],
        rs_s[ROUNDS], es_s[ROUNDS], ed_s[ROUNDS], bare_s[ROUNDS];
    double ratio[ROUNDS], ratio_wall[ROUNDS];
    sample w;
    /* Warm up: caches, rate-limit slots, page faults. */
    time_eval(&hit, 20000, &w);
    time_eval(&rules, 20000, &w);
    time_take(rl, &lim, 20000, &w);
    time_bare(pub, sha256, msg, mlen, sig.ptr, sig.len, 200, &w);
    time_cold(&c_rs, rs[0], rs[1], 200, &w);
    for (int r = 0; r < ROUNDS; r++) {
        time_eval(&hit, HOT_ITERS, &hit_s[r]);
        time_eval(&rules, HOT_ITERS, &rules_s[r]);
        time_take(rl, &lim, HOT_ITERS, &take_s[r]);
        time_eval(&rshit, HOT_ITERS, &rshit_s[r]);
        time_bare(pub, sha256, msg, mlen, sig.ptr, sig.len, RS_ITERS, &bare_s[r]);
        time_cold(&c_rs, rs[0], rs[1], RS_ITERS, &rs_s[r]);
        ratio[r] = rs_s[r].cpu / bare_s[r].cpu;
        ratio_wall[r] = rs_s[r].wall / bare_s[r].wall;
        time_cold(&c_hs, hs[0], hs[1], HS_ITERS, &hs_s[r]);
        time_cold(&c_es, es[0], es[1], RS_ITERS, &es_s[r]);
        time_cold(&c_ed, eds[0], eds[1], RS_ITERS, &ed_s[r]);
    }

    double hit_ns = median_cpu(hit_s), rules_ns = median_cpu(rules_s), take_ns = median_cpu(take_s);
    printf("policy decisions through ls_policy_eval, %d rounds, cases alternated in each round;\n"
           "  policy: JWT (issuer, audience, leeway), 6 rules, rate limit by subject, 3 identity\n"
           "  headers, audit of denials; request GET /orders/42; token %zu bytes (HS256), "
           "%zu (RS256)\n",
           ROUNDS, strlen(hs[0]) - 7, strlen(rs[0]) - 7);
    printf("  %-46s %8s %8s  (medians; CPU = this thread's CPU time)\n", "", "CPU", "wall");
    row("cache hit, HS256 token (rules+limit+identity)", hit_s, "decision");
    row("cache hit, RS256 token (rules+limit+identity)", rshit_s, "decision");
    double cold4 = time_eval_cold(&rshit, (size_t)4 << 20, 1000);
    double cold16 = time_eval_cold(&rshit, (size_t)16 << 20, 1000);
    printf("  %-46s %8s %8.0f  ns/decision\n", "  the same, 4 MiB swept before each", "", cold4);
    printf("  %-46s %8s %8.0f  ns/decision (nothing cached: the worst case)\n",
           "  the same, 16 MiB swept (out of L3)", "", cold16);
    row("rules only (public route, last rule, no limit)", rules_s, "decision");
    row("rate-limit take alone (ls_rl_take)", take_s, "take");
    printf("  %-46s %8.0f %8s  ns/decision\n", "  rest of a hit: hit - rules only - take",
           hit_ns - rules_ns - take_ns, "");
    row("HS256 cold (token cache missed every time)", hs_s, "decision");
    row("RS256-2048 cold", rs_s, "decision");
    row("ES256 cold", es_s, "decision");
    row("EdDSA cold", ed_s, "decision");
    row("bare OpenSSL EVP_DigestVerify RS256 (baseline)", bare_s, "verify");
    printf("  ratio RS256 cold decision / bare verify: %.3f CPU, %.3f wall (medians of per-round "
           "ratios; target <= %.1f)\n",
           bench_median_d(ratio, ROUNDS), bench_median_d(ratio_wall, ROUNDS), TARGET_COLD);
    printf("  cache-hit decision: %.3f us CPU, %s the %.1f us target\n", hit_ns / 1000.0,
           hit_ns < TARGET_HIT ? "under" : "over", TARGET_HIT / 1000.0);

    ls_rl_close(rl);
    EVP_MD_free(sha256);
    EVP_PKEY_free(pub);
    OPENSSL_free(der);
    ls_buf_free(&sig);
    for (int i = 0; i < 2; i++) {
        free(hs[i]);
        free(rs[i]);
        free(es[i]);
        free(eds[i]);
    }
    ls_policy_free(p_hit);
    ls_policy_free(p_rules);
    ls_policy_free(p_hs);
    ls_policy_free(p_rs);
    ls_policy_free(p_es);
    ls_policy_free(p_ed);
    ls_policy_free(p_rshit);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(ed);
    return 0;
}
