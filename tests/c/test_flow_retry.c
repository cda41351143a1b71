/* SPDX-License-Identifier: MIT
 * Tests of retry policies (native/flow/retry.c): exact delay tables with
 * and without jitter, caps for huge attempt numbers, give-up verdicts,
 * parse errors for every field, merge precedence and allocation failures.
 */
#include "helpers.h"

#include <stdio.h>
#include <string.h>

#include "ls_json.h"
#include "flow/retry.h"

/* ---- helpers ---- */

static json_t *js(const char *text)
{
    json_t *v = NULL;
    ls_err err = {0};
    th_ok(ls_json_parse(text, strlen(text), &v, &err), &err);
    return v;
}

static void parse_ok(const char *text, const ls_flow_retry *base, ls_flow_retry *out)
{
    json_t *v = js(text);
    ls_err err = {0};
    th_ok(ls_flow_retry_parse(v, base, NULL, out, &err), &err);
    json_decref(v);
}

static void parse_fails(const char *text, const char *want)
{
    json_t *v = js(text);
    ls_err err = {0};
    ls_flow_retry p;
    ls_rc rc = ls_flow_retry_parse(v, NULL, NULL, &p, &err);
    json_decref(v);
    if (rc != LS_EINVAL) fail_msg("%s: got %s, want EINVAL", text, ls_rc_name(rc));
    if (strcmp(err.msg, want) != 0)
        fail_msg("%s:\n  got  \"%s\"\n  want \"%s\"", text, err.msg, want);
    assert_null(p.non_retryable);
}

static int64_t delay_of(const ls_flow_retry *p, uint64_t attempt, const ls_flow_rand *rnd)
{
    int64_t d = 0;
    assert_int_equal(ls_flow_retry_next(p, attempt, NULL, 0, rnd, &d), LS_FLOW_RETRY_AGAIN);
    return d;
}

static uint64_t fixed_bits(void *ud)
{
    return *(uint64_t *)ud;
}

/* xorshift64*, for many draws from a seeded source */
static uint64_t xorshift(void *ud)
{
    uint64_t *s = ud;
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * UINT64_C(2685821657736338717);
}

/* ---- defaults and schedule ---- */

static void test_retry_defaults(void **state)
{
    (void)state;
    ls_flow_retry p;
    ls_flow_retry_init(&p);
    assert_int_equal(p.initial_ms, 1000);
    assert_true(p.backoff == 2.0);
    assert_int_equal(p.max_ms, 100000);
    assert_int_equal(p.max_attempts, 0);
    assert_true(p.jitter == 0.2);
    assert_null(p.non_retryable);
    assert_int_equal(p.set, 0);
    /* an empty table gives the same */
    ls_flow_retry q;
    parse_ok("{}", NULL, &q);
    assert_int_equal(q.initial_ms, 1000);
    assert_int_equal(q.max_ms, 100000);
    ls_flow_retry_free(&q);
    ls_flow_retry_free(&p);
    ls_flow_retry_free(NULL);
}

static void test_retry_table_no_jitter(void **state)
{
    (void)state;
    ls_flow_retry p;
    parse_ok("{\"initial_interval\":\"1s\",\"backoff\":2,\"max_interval\":\"1m\",\"jitter\":0}",
             NULL, &p);
    static const int64_t want[] = {1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        assert_int_equal(delay_of(&p, i + 1, NULL), want[i]);
    ls_flow_retry_free(&p);
}

static void test_retry_table_fractional_backoff(void **state)
{
    (void)state;
    ls_flow_retry p;
    parse_ok("{\"initial_interval\":0.1,\"backoff\":1.5,\"max_interval\":1,\"jitter\":0}", NULL,
             &p);
    /* 100 * 1.5^(n-1), rounded to the ms, capped at 1000 */
    static const int64_t want[] = {100, 150, 225, 338, 506, 759, 1000, 1000};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        assert_int_equal(delay_of(&p, i + 1, NULL), want[i]);
    ls_flow_retry_free(&p);
}

static void test_retry_table_constant_backoff(void **state)
{
    (void)state;
    ls_flow_retry p;
    parse_ok("{\"initial_interval\":\"250ms\",\"backoff\":1,\"jitter\":0}", NULL, &p);
    assert_int_equal(p.max_ms, 25000);
    for (uint64_t a = 1; a <= 50; a++) assert_int_equal(delay_of(&p, a, NULL), 250);
    assert_int_equal(delay_of(&p, UINT64_MAX, NULL), 250);
    ls_flow_retry_free(&p);
}

static void test_retry_table_fixed_random(void **state)
{
    (void)state;
    ls_flow_retry p;
    parse_ok("{\"initial_interval\":\"1s\",\"max_interval\":\"10s\",\"jitter\":0.2}", NULL, &p);
    uint64_t bits;
    ls_flow_rand rnd = {fixed_bits, &bits};
    /* base 1000, 2000, 4000, 8000, 10000: spread 200, 400, 800, 1600, 2000 */
    static const int64_t base[] = {1000, 2000, 4000, 8000, 10000, 10000};
    static const int64_t spread[] = {200, 400, 800, 1600, 2000, 2000};
    for (size_t i = 0; i < 6; i++) {
        bits = 0; /* lowest */
        assert_int_equal(delay_of(&p, i + 1, &rnd), base[i] - spread[i]);
        bits = (uint64_t)(2 * spread[i]); /* highest */
        assert_int_equal(delay_of(&p, i + 1, &rnd), base[i] + spread[i]);
        bits = (uint64_t)spread[i]; /* middle: no change */
        assert_int_equal(delay_of(&p, i + 1, &rnd), base[i]);
        bits = (uint64_t)(2 * spread[i] + 1) * 1000 + 7; /* wraps around the span */
        assert_int_equal(delay_of(&p, i + 1, &rnd), base[i] - spread[i] + 7);
    }
    ls_flow_retry_free(&p);
}

static void test_retry_jitter_stays_in_bounds(void **state)
{
    (void)state;
    ls_flow_retry p;
    parse_ok("{\"initial_interval\":\"3s\",\"backoff\":3,\"max_interval\":\"2m\",\"jitter\":1}",
             NULL, &p);
    uint64_t s = UINT64_C(0x1234567890abcdef);
    ls_flow_rand rnd = {xorshift, &s};
    int64_t lo = INT64_MAX, hi = 0;
    for (uint64_t a = 1; a <= 2000; a++) {
        int64_t base = ls_flow_retry_base_delay(&p, a);
        int64_t d = delay_of(&p, a, &rnd);
        assert_true(d >= 0 && d <= 2 * base && d <= 240000);
        if (base == 120000) {
            if (d < lo) lo = d;
            if (d > hi) hi = d;
        }
    }
    assert_true(lo < 10000 && hi > 230000); /* the whole range is used */
    /* libsodium as the source */
    for (uint64_t a = 1; a <= 200; a++) {
        int64_t d = delay_of(&p, a, NULL);
        assert_true(d >= 0 && d <= 2 * ls_flow_retry_base_delay(&p, a));
    }
    ls_flow_retry_free(&p);
}

static void test_retry_cap_huge_attempts(void **state)
{
    (void)state;
    ls_flow_retry p;
    parse_ok("{\"initial_interval\":\"36500d\",\"backoff\":1000,\"max_interval\":\"36500d\","
             "\"jitter\":1}",
             NULL, &p);
    uint64_t bits = UINT64_MAX;
    ls_flow_rand rnd = {fixed_bits, &bits};
    static const uint64_t attempts[] = {1, 2, 63, 64, 1000, UINT32_MAX, UINT64_MAX / 2, UINT64_MAX};
    for (size_t i = 0; i < sizeof attempts / sizeof attempts[0]; i++) {
        assert_int_equal(ls_flow_retry_base_delay(&p, attempts[i]), LS_FLOW_RETRY_MAX_MS);
        int64_t d = delay_of(&p, attempts[i], &rnd);
        assert_true(d >= 0 && d <= 2 * LS_FLOW_RETRY_MAX_MS);
    }
    ls_flow_retry_free(&p);

    parse_ok("{\"initial_interval\":0.001,\"backoff\":10,\"jitter\":0}", NULL, &p);
    assert_int_equal(p.max_ms, 100);
    assert_int_equal(delay_of(&p, 1, NULL), 1);
    assert_int_equal(delay_of(&p, 3, NULL), 100);
    assert_int_equal(delay_of(&p, 400, NULL), 100); /* 10^399 is inf in double */
    ls_flow_retry_free(&p);
}

/* ---- giving up ---- */

static void test_retry_max_attempts_exhausted(void **state)
{
    (void)state;
    ls_flow_retry p;
    parse_ok("{\"max_attempts\":3,\"jitter\":0}", NULL, &p);
    int64_t d;
    assert_int_equal(ls_flow_retry_next(&p, 1, NULL, 0, NULL, &d), LS_FLOW_RETRY_AGAIN);
    assert_int_equal(d, 1000);
    assert_int_equal(ls_flow_retry_next(&p, 2, NULL, 0, NULL, &d), LS_FLOW_RETRY_AGAIN);
    assert_int_equal(d, 2000);
    assert_int_equal(ls_flow_retry_next(&p, 3, NULL, 0, NULL, &d), LS_FLOW_RETRY_EXHAUSTED);
    assert_int_equal(d, -1);
    assert_int_equal(ls_flow_retry_next(&p, 4, NULL, 0, NULL, &d), LS_FLOW_RETRY_EXHAUSTED);
    ls_flow_retry_free(&p);

    parse_ok("{\"max_attempts\":1}", NULL, &p); /* no retries at all */
    assert_int_equal(ls_flow_retry_next(&p, 1, NULL, 0, NULL, &d), LS_FLOW_RETRY_EXHAUSTED);
    ls_flow_retry_free(&p);

    parse_ok("{\"max_attempts\":0,\"jitter\":0}", NULL, &p); /* unlimited */
    assert_int_equal(ls_flow_retry_next(&p, UINT64_MAX, NULL, 0, NULL, &d), LS_FLOW_RETRY_AGAIN);
    assert_int_equal(d, 100000);
    ls_flow_retry_free(&p);
    assert_string_equal(ls_flow_retry_verdict_name(LS_FLOW_RETRY_EXHAUSTED), "exhausted");
    assert_string_equal(ls_flow_retry_verdict_name(LS_FLOW_RETRY_AGAIN), "again");
}

static void test_retry_non_retryable_codes(void **state)
{
    (void)state;
    ls_flow_retry p;
    parse_ok("{\"non_retryable\":[\"card_declined\",\"EDENIED\",\"x\"],\"max_attempts\":5}", NULL,
             &p);
    int64_t d;
    assert_int_equal(ls_flow_retry_next(&p, 1, "card_declined", 0, NULL, &d),
                     LS_FLOW_RETRY_NON_RETRYABLE);
    assert_int_equal(d, -1);
    assert_int_equal(ls_flow_retry_next(&p, 1, "EDENIED", 0, NULL, &d),
                     LS_FLOW_RETRY_NON_RETRYABLE);
    assert_int_equal(ls_flow_retry_next(&p, 1, "x", 0, NULL, &d), LS_FLOW_RETRY_NON_RETRYABLE);
    /* exact and case-sensitive: these are retried */
    assert_int_equal(ls_flow_retry_next(&p, 1, "edenied", 0, NULL, &d), LS_FLOW_RETRY_AGAIN);
    assert_int_equal(ls_flow_retry_next(&p, 1, "card", 0, NULL, &d), LS_FLOW_RETRY_AGAIN);
    assert_int_equal(ls_flow_retry_next(&p, 1, "", 0, NULL, &d), LS_FLOW_RETRY_AGAIN);
    assert_int_equal(ls_flow_retry_next(&p, 1, NULL, 0, NULL, &d), LS_FLOW_RETRY_AGAIN);
    /* non-retryable beats exhausted */
    assert_int_equal(ls_flow_retry_next(&p, 5, "x", 0, NULL, &d), LS_FLOW_RETRY_NON_RETRYABLE);
    assert_string_equal(ls_flow_retry_verdict_name(LS_FLOW_RETRY_NON_RETRYABLE), "non_retryable");
    ls_flow_retry_free(&p);

    parse_ok("{\"non_retryable\":{}}", NULL, &p); /* an empty Lua table */
    assert_null(p.non_retryable);
    assert_false(ls_flow_retry_is_non_retryable(&p, "x"));
    ls_flow_retry_free(&p);
}

static void test_retry_fatal_gives_up(void **state)
{
    (void)state;
    ls_flow_retry p;
    ls_flow_retry_init(&p);
    int64_t d = 5;
    assert_int_equal(ls_flow_retry_next(&p, 1, NULL, 1, NULL, &d), LS_FLOW_RETRY_FATAL);
    assert_int_equal(d, -1);
    assert_int_equal(ls_flow_retry_next(&p, 1, "anything", 1, NULL, &d), LS_FLOW_RETRY_FATAL);
    assert_string_equal(ls_flow_retry_verdict_name(LS_FLOW_RETRY_FATAL), "fatal");
    ls_flow_retry_free(&p);
}

/* ---- parsing ---- */

static void test_retry_parse_all_fields(void **state)
{
    (void)state;
    ls_flow_retry p;
    parse_ok("{\"initial_interval\":\"1m30s\",\"backoff\":1.25,\"max_interval\":3600,"
             "\"max_attempts\":5.0,\"jitter\":0.5,\"non_retryable\":[\"a\",\"bc\"]}",
             NULL, &p);
    assert_int_equal(p.initial_ms, 90000);
    assert_true(p.backoff == 1.25);
    assert_int_equal(p.max_ms, 3600000);
    assert_int_equal(p.max_attempts, 5);
    assert_true(p.jitter == 0.5);
    assert_int_equal(p.non_retryable_len, 5);
    assert_memory_equal(p.non_retryable, "a\0bc\0", 5);
    assert_int_equal(p.set, 0x3f);
    ls_flow_retry_free(&p);

    parse_ok("{\"initial_interval\":2.5}", NULL, &p); /* seconds, derived max */
    assert_int_equal(p.initial_ms, 2500);
    assert_int_equal(p.max_ms, 250000);
    assert_int_equal(p.set, LS_FLOW_RETRY_SET_INITIAL);
    ls_flow_retry_free(&p);
}

static void test_retry_parse_errors(void **state)
{
    (void)state;
    parse_fails("{\"backoff\":0.5}", "retry.backoff: must be at least 1, got 0.5");
    parse_fails("{\"backoff\":\"2\"}", "retry.backoff: expected a number, got string");
    parse_fails("{\"initial_interval\":\"soon\"}",
                "retry.initial_interval: duration \"soon\": expected a number");
    parse_fails("{\"initial_interval\":0}",
                "retry.initial_interval: must be positive (at least 1ms)");
    parse_fails("{\"initial_interval\":-1}",
                "retry.initial_interval: must not be negative, got -1");
    parse_fails("{\"initial_interval\":true}",
                "retry.initial_interval: expected seconds or a duration string such as \"10s\", "
                "got boolean");
    parse_fails("{\"max_interval\":1e12}", "retry.max_interval: over 100 years, got 1e+12 s");
    parse_fails("{\"max_interval\":\"500ms\"}",
                "retry.max_interval: must be at least initial_interval (1000 ms), got 500 ms");
    parse_fails("{\"max_attempts\":-1}",
                "retry.max_attempts: must be between 0 (no limit) and 4294967295, got -1");
    parse_fails("{\"max_attempts\":2.5}", "retry.max_attempts: expected an integer, got 2.5");
    parse_fails("{\"max_attempts\":\"5\"}", "retry.max_attempts: expected an integer, got string");
    parse_fails("{\"jitter\":1.5}", "retry.jitter: must be between 0 and 1, got 1.5");
    parse_fails("{\"jitter\":-0.1}", "retry.jitter: must be between 0 and 1, got -0.1");
    parse_fails("{\"non_retryable\":\"x\"}",
                "retry.non_retryable: expected a list of strings, got string");
    parse_fails("{\"non_retryable\":[\"a\",3]}",
                "retry.non_retryable[2]: expected a string, got integer");
    parse_fails("{\"non_retryable\":[\"\"]}",
                "retry.non_retryable[1]: must be 1 to 64 characters without NUL");
    parse_fails("{\"max_attemps\":5}",
                "retry.max_attemps: unknown field (known: initial_interval, backoff, "
                "max_interval, max_attempts, jitter, non_retryable)");
    parse_fails("[1]", "retry: expected a table (object), got array");

    /* a custom name prefixes the message; err may be NULL */
    json_t *v = js("{\"backoff\":0}");
    ls_err err = {0};
    ls_flow_retry p;
    assert_int_equal(ls_flow_retry_parse(v, NULL, "steps.ship.retry", &p, &err), LS_EINVAL);
    assert_string_equal(err.msg, "steps.ship.retry.backoff: must be at least 1, got 0");
    assert_int_equal(ls_flow_retry_parse(v, NULL, NULL, &p, NULL), LS_EINVAL);
    json_decref(v);
}

/* ---- merging ---- */

static void test_retry_merge_precedence(void **state)
{
    (void)state;
    ls_flow_retry wf, step, eff;
    ls_err err = {0};
    parse_ok("{\"initial_interval\":\"1s\",\"backoff\":2,\"max_interval\":\"1m\","
             "\"max_attempts\":5,\"non_retryable\":[\"a\"]}",
             NULL, &wf);
    parse_ok("{\"max_attempts\":10,\"jitter\":0}", NULL, &step);
    th_ok(ls_flow_retry_merge(&wf, &step, NULL, &eff, &err), &err);
    assert_int_equal(eff.initial_ms, 1000);
    assert_true(eff.backoff == 2.0);
    assert_int_equal(eff.max_ms, 60000);
    assert_int_equal(eff.max_attempts, 10);
    assert_true(eff.jitter == 0.0);
    assert_true(ls_flow_retry_is_non_retryable(&eff, "a"));
    ls_flow_retry_free(&eff);
    ls_flow_retry_free(&step);

    /* the step replaces the list as a whole, and a step's initial interval
     * re-derives max_interval only when nobody set it */
    parse_ok("{\"non_retryable\":[\"b\"],\"initial_interval\":\"2s\"}", NULL, &step);
    th_ok(ls_flow_retry_merge(&wf, &step, NULL, &eff, &err), &err);
    assert_false(ls_flow_retry_is_non_retryable(&eff, "a"));
    assert_true(ls_flow_retry_is_non_retryable(&eff, "b"));
    assert_int_equal(eff.initial_ms, 2000);
    assert_int_equal(eff.max_ms, 60000); /* the workflow set it */
    ls_flow_retry_free(&eff);
    ls_flow_retry defaults;
    ls_flow_retry_init(&defaults);
    th_ok(ls_flow_retry_merge(&defaults, &step, NULL, &eff, &err), &err);
    assert_int_equal(eff.max_ms, 200000); /* derived: 100 x 2s */
    ls_flow_retry_free(&eff);

    /* parsing on a base is the same as merging */
    json_t *v = js("{\"non_retryable\":[\"b\"],\"initial_interval\":\"2s\"}");
    th_ok(ls_flow_retry_parse(v, &wf, NULL, &eff, &err), &err);
    json_decref(v);
    assert_int_equal(eff.initial_ms, 2000);
    assert_int_equal(eff.max_ms, 60000);
    assert_int_equal(eff.max_attempts, 5);
    assert_true(ls_flow_retry_is_non_retryable(&eff, "b"));
    ls_flow_retry_free(&eff);
    ls_flow_retry_free(&step);

    /* a step's max_interval under the workflow's initial_interval is fine
     * on a base with a small initial_interval, refused on the workflow's */
    parse_ok("{\"initial_interval\":\"100ms\"}", NULL, &defaults);
    v = js("{\"max_interval\":\"500ms\"}");
    th_ok(ls_flow_retry_parse(v, &defaults, NULL, &step, &err), &err);
    assert_int_equal(step.max_ms, 500);
    ls_flow_retry_free(&step);
    assert_int_equal(ls_flow_retry_parse(v, &wf, "steps.ship.retry", &step, &err), LS_EINVAL);
    assert_string_equal(err.msg, "steps.ship.retry.max_interval: must be at least "
                                 "initial_interval (1000 ms), got 500 ms");
    json_decref(v);
    ls_flow_retry_free(&defaults);

    /* merge validates the combination: a step's 2m initial_interval (valid
     * alone) over the workflow's explicit 1m max_interval */
    parse_ok("{\"initial_interval\":\"2m\"}", NULL, &step);
    assert_int_equal(ls_flow_retry_merge(&wf, &step, "steps.ship.retry", &eff, &err), LS_EINVAL);
    assert_string_equal(err.msg, "steps.ship.retry.max_interval: must be at least "
                                 "initial_interval (120000 ms), got 60000 ms");
    assert_null(eff.non_retryable);
    ls_flow_retry_free(&step);
    ls_flow_retry_free(&wf);
}

static void test_retry_copy_is_independent(void **state)
{
    (void)state;
    ls_flow_retry a, b;
    ls_err err = {0};
    parse_ok("{\"non_retryable\":[\"a\"]}", NULL, &a);
    th_ok(ls_flow_retry_copy(&b, &a, &err), &err);
    assert_ptr_not_equal(a.non_retryable, b.non_retryable);
    ls_flow_retry_free(&a);
    assert_true(ls_flow_retry_is_non_retryable(&b, "a"));
    ls_flow_retry_free(&b);
}

/* ---- allocation failures ---- */

struct alloc_case {
    json_t *wf, *step;
};

static ls_rc parse_and_merge(void *ud)
{
    struct alloc_case *c = ud;
    ls_flow_retry wf, step, eff;
    ls_err err = {0};
    ls_rc rc = ls_flow_retry_parse(c->wf, NULL, NULL, &wf, &err);
    if (rc != LS_OK) return rc;
    rc = ls_flow_retry_parse(c->step, &wf, NULL, &step, &err);
    if (rc != LS_OK) goto out_wf;
    rc = ls_flow_retry_merge(&wf, &step, NULL, &eff, &err);
    if (rc == LS_OK) {
        assert_true(ls_flow_retry_is_non_retryable(&eff, "c"));
        ls_flow_retry_free(&eff);
    } else {
        assert_null(eff.non_retryable);
    }
    ls_flow_retry_free(&step);
out_wf:
    ls_flow_retry_free(&wf);
    return rc;
}

static void test_retry_alloc_failure(void **state)
{
    (void)state;
    struct alloc_case c = {js("{\"non_retryable\":[\"a\",\"b\"]}"),
                           js("{\"non_retryable\":[\"c\"],\"max_attempts\":2}")};
    long points = th_each_alloc_failure(parse_and_merge, &c);
    assert_true(points >= 4);
    json_decref(c.wf);
    json_decref(c.step);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retry_defaults),
        cmocka_unit_test(test_retry_table_no_jitter),
        cmocka_unit_test(test_retry_table_fractional_backoff),
        cmocka_unit_test(test_retry_table_constant_backoff),
        cmocka_unit_test(test_retry_table_fixed_random),
        cmocka_unit_test(test_retry_jitter_stays_in_bounds),
        cmocka_unit_test(test_retry_cap_huge_attempts),
        cmocka_unit_test(test_retry_max_attempts_exhausted),
        cmocka_unit_test(test_retry_non_retryable_codes),
        cmocka_unit_test(test_retry_fatal_gives_up),
        cmocka_unit_test(test_retry_parse_all_fields),
        cmocka_unit_test(test_retry_parse_errors),
        cmocka_unit_test(test_retry_merge_precedence),
        cmocka_unit_test(test_retry_copy_is_independent),
        cmocka_unit_test(test_retry_alloc_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
