/* SPDX-License-Identifier: MIT
 * Policy rules and audit log: ns per path normalisation, per rule match +
 * check on a 10-rule list (hit at rule 1, hit at rule 10, no match), and
 * per audit record (format + buffer, writes amortised), against strcmp of
 * the path with 10 literal strings in the same run. Prints medians and
 * ratios; never passes or fails on time. Usage: bench_rules [DIR]. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "ls_json.h"
#include "policy/audit.h"
#include "policy/path.h"
#include "policy/rules.h"

#define ROUNDS 9
#define ITERS  1000000L

static volatile size_t sink;

typedef void (*op_fn)(void *ud);

/* Median ns per call of fn over ROUNDS rounds of iters calls. */
static double ns_per_op(op_fn fn, void *ud, long iters)
{
    double v[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        int64_t t0 = bench_now_ns();
        for (long i = 0; i < iters; i++) fn(ud);
        v[r] = (double)(bench_now_ns() - t0) / (double)iters;
    }
    return bench_median_d(v, ROUNDS);
}

/* ---- baseline ---- */

static const char *const literals[10] = {
    "/healthz",  "/me",       "/admin",  "/orders",       "/orders/new",
    "/internal", "/v2/users", "/static", "/api/v1/users", "/api/v1/orders/12345/items",
};

struct req {
    const char *method, *host, *path;
    size_t len;
    const ls_rules_t *rules;
    const ls_identity *id;
};

static void op_strcmp10(void *ud)
{
    const struct req *q = ud;
    size_t hit = 10;
    for (size_t i = 0; i < 10; i++)
        if (strcmp(q->path, literals[i]) == 0) {
            hit = i;
            break;
        }
    sink += hit;
}

/* ---- normalisation ---- */

struct norm {
    const char *raw;
    size_t len;
    ls_buf out;
};

static void op_normalize(void *ud)
{
    struct norm *n = ud;
    if (ls_path_normalize(n->raw, n->len, &n->out, NULL) != LS_OK) bench_die("normalize", n->raw);
    sink += n->out.len;
}

/* ---- rules ---- */

static const char rules_json[] =
    "[{\"path\":\"/healthz\",\"allow\":\"anyone\"},"
    " {\"path\":\"/me\"},"
    " {\"path\":\"/admin/**\",\"roles\":[\"admin\"]},"
    " {\"path\":\"/orders/**\",\"methods\":[\"GET\"],\"scopes\":[\"orders:read\"]},"
    " {\"path\":\"/orders/**\",\"methods\":[\"POST\"],\"scopes\":[\"orders:write\"],"
    "  \"claims\":{\"tenant\":\"acme\"}},"
    " {\"path\":\"/internal/**\",\"deny\":true},"
    " {\"host\":\"api.example.com\",\"path\":\"/v2/*\"},"
    " {\"path\":\"/static/*/img/**\",\"allow\":\"anyone\"},"
    " {\"path\":\"/api/v1/users/*\",\"roles\":[\"ops\",\"admin\"]},"
    " {\"path\":\"/api/v1/orders/*/items\",\"methods\":[\"GET\",\"HEAD\"],"
    "  \"scopes\":[\"orders:read\"],\"claims\":{\"tenant\":\"acme\"}}]";

static void op_rules(void *ud)
{
    const struct req *q = ud;
    const ls_rule *rule;
    ls_rule_reason why = LS_REASON_NO_MATCH;
    if (ls_rules_match(q->rules, q->method, q->host, q->path, q->len, &rule) == LS_OK)
        ls_rule_check(rule, q->id, &why, NULL);
    sink += why;
}

/* ---- audit ---- */

struct aud {
    ls_audit_t *a;
    ls_audit_record r;
    ls_buf buf;
};

static void op_audit_write(void *ud)
{
    struct aud *x = ud;
    if (ls_audit_write(x->a, &x->r, NULL) != LS_OK) bench_die("audit", "write");
}

static void op_audit_format(void *ud)
{
    struct aud *x = ud;
    ls_buf_clear(&x->buf);
    if (ls_audit_format(&x->r, 1795685401123, &x->buf, NULL) != LS_OK) bench_die("audit", "format");
    sink += x->buf.len;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "/tmp";
    json_t *decl;
    ls_err err;
    if (ls_json_parse(rules_json, strlen(rules_json), &decl, &err) != LS_OK)
        bench_die("rules JSON", err.msg);
    ls_rules_t *rules;
    if (ls_rules_compile(&rules, decl, &err) != LS_OK) bench_die("compile", err.msg);
    json_decref(decl);

    json_t *claims = json_pack("{s:s, s:s}", "tenant", "acme", "sub", "alice");
    const char *const roles[] = {"user"};
    const char *const scopes[] = {"profile", "orders:read"};
    ls_identity id = {1, "alice", roles, 1, scopes, 2, claims};

    printf("policy rules and audit log, medians of %d rounds of %ld calls\n", ROUNDS, ITERS);

    struct req base = {"GET", "api.example.com", "/api/v1/orders/12345/items", 26, rules, &id};
    double b = ns_per_op(op_strcmp10, &base, ITERS);
    printf("  %-44s %7.1f ns   (baseline)\n", "strcmp against 10 literals (hit at 10)", b);

    struct norm n1 = {"/api/v1/orders/12345/items", 26, LS_BUF_INIT};
    struct norm n2 = {"/api/v1/./orders/%31%32/..//12345/items/", 40, LS_BUF_INIT};
    double t = ns_per_op(op_normalize, &n1, ITERS);
    printf("  %-44s %7.1f ns   ratio %5.2f\n", "normalise /api/v1/orders/12345/items", t, t / b);
    t = ns_per_op(op_normalize, &n2, ITERS);
    printf("  %-44s %7.1f ns   ratio %5.2f\n", "normalise with escapes, dots, slashes", t, t / b);

    struct req hit1 = {"GET", "api.example.com", "/healthz", 8, rules, &id};
    struct req hit10 = base;
    struct req miss = {"GET", "api.example.com", "/nowhere/at/all", 15, rules, &id};
    t = ns_per_op(op_rules, &hit1, ITERS);
    printf("  %-44s %7.1f ns   ratio %5.2f\n", "rules match+check, hit at rule 1", t, t / b);
    t = ns_per_op(op_rules, &hit10, ITERS);
    printf("  %-44s %7.1f ns   ratio %5.2f\n", "rules match+check, hit at rule 10 (+claims)", t,
           t / b);
    t = ns_per_op(op_rules, &miss, ITERS);
    printf("  %-44s %7.1f ns   ratio %5.2f\n", "rules match, no match (10 rules)", t, t / b);

    char path[4096];
    snprintf(path, sizeof path, "%s/bench-audit-%d.log", dir, (int)getpid());
    struct aud x = {0};
    x.r = (ls_audit_record){.request_id = "7f3a9c2e-1b4d-4e8f-9a6b-2c5d8e1f0a3b",
                            .method = "GET",
                            .path = "/api/v1/orders/12345/items",
                            .client = "203.0.113.7",
                            .subject = "alice@example.com",
                            .policy = "orders-api",
                            .rule = "rules[10]",
                            .decision = LS_AUDIT_ALLOW,
                            .status = 200,
                            .reason = "allowed",
                            .decision_us = 0.42};
    t = ns_per_op(op_audit_format, &x, ITERS);
    printf("  %-44s %7.1f ns   ratio %5.2f\n", "audit record format only", t, t / b);

    /* /dev/null: format, buffer and the write() calls without the kernel
     * copying into the page cache; then a real file in DIR. */
    const char *targets[2] = {"/dev/null", path};
    const char *labels[2] = {"audit format+buffer+write, /dev/null",
                             "audit format+buffer+write, file in DIR"};
    for (int k = 0; k < 2; k++) {
        if (ls_audit_open(&x.a, targets[k], NULL, &err) != LS_OK) bench_die("audit open", err.msg);
        t = ns_per_op(op_audit_write, &x, ITERS / 10);
        ls_audit_stats st;
        ls_audit_get_stats(x.a, &st);
        printf("  %-44s %7.1f ns   ratio %5.2f   (%.0f records per write)\n", labels[k], t, t / b,
               (double)st.records / (double)(st.flushes ? st.flushes : 1));
        ls_audit_close(x.a);
    }
    unlink(path);

    ls_buf_free(&x.buf);
    ls_buf_free(&n1.out);
    ls_buf_free(&n2.out);
    json_decref(claims);
    ls_rules_free(rules);
    return 0;
}
