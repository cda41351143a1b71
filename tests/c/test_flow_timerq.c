/* SPDX-License-Identifier: MIT
 * Tests of the timer queue (native/flow/timerq.c): order, deterministic
 * ties, remove by key, popping what is due, growth, a randomized test
 * against a simple model (seed printed; LS_TEST_SEED repeats a run), a
 * million timers, and allocation failures.
 */
#include "helpers.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "flow/timerq.h"

/* ---- helpers ---- */

/* Run id i: big-endian i in the last 8 bytes, a marker in the first. */
static void run_id(uint8_t out[16], uint64_t i)
{
    memset(out, 0xA5, 8);
    for (int b = 0; b < 8; b++) out[15 - b] = (uint8_t)(i >> (8 * b));
}

static uint64_t run_num(const uint8_t id[16])
{
    uint64_t v = 0;
    for (int b = 8; b < 16; b++) v = v << 8 | id[b];
    return v;
}

static ls_flow_timerq_t *new_q(size_t cap)
{
    ls_flow_timerq_t *q = NULL;
    ls_err err = {0};
    th_ok(ls_flow_timerq_new(&q, cap, &err), &err);
    return q;
}

static void add(ls_flow_timerq_t *q, uint64_t run, uint64_t seq, int64_t due)
{
    uint8_t id[16];
    ls_err err = {0};
    run_id(id, run);
    th_ok(ls_flow_timerq_add(q, id, seq, due, &err), &err);
}

static void check(const ls_flow_timerq_t *q)
{
    ls_err err = {0};
    th_ok(ls_flow_timerq_check(q, &err), &err);
}

static void expect_pop(ls_flow_timerq_t *q, int64_t now, int64_t due, uint64_t run, uint64_t seq)
{
    ls_flow_timer t;
    assert_int_equal(ls_flow_timerq_pop(q, now, &t), LS_OK);
    assert_int_equal(t.due_ms, due);
    assert_int_equal(run_num(t.run_id), run);
    assert_int_equal(t.seq, seq);
}

static uint64_t rng(uint64_t *s)
{
    /* splitmix64 */
    uint64_t z = (*s += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static uint64_t test_seed(void)
{
    const char *env = getenv("LS_TEST_SEED");
    uint64_t seed = env && *env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL);
    print_message("timerq seed: %" PRIu64 " (repeat with LS_TEST_SEED=%" PRIu64 ")\n", seed, seed);
    return seed;
}

/* ---- behaviour ---- */

static void test_timerq_empty(void **state)
{
    (void)state;
    ls_flow_timerq_t *q = new_q(0);
    ls_flow_timer t;
    int64_t in = 42;
    uint8_t id[16];
    run_id(id, 1);
    assert_int_equal(ls_flow_timerq_count(q), 0);
    assert_int_equal(ls_flow_timerq_peek(q, &t), LS_ENOTFOUND);
    assert_int_equal(ls_flow_timerq_pop(q, INT64_MAX, &t), LS_ENOTFOUND);
    assert_int_equal(ls_flow_timerq_next_due_in(q, 0, &in), LS_ENOTFOUND);
    assert_int_equal(in, 42);
    assert_int_equal(ls_flow_timerq_remove(q, id, 1, NULL), LS_ENOTFOUND);
    assert_int_equal(ls_flow_timerq_find(q, id, 1, NULL), LS_ENOTFOUND);
    assert_int_equal(ls_flow_timerq_pop_due(q, INT64_MAX, &t, 1), 0);
    check(q);
    ls_flow_timerq_free(q);
    ls_flow_timerq_free(NULL);
}

static void test_timerq_orders_by_due(void **state)
{
    (void)state;
    ls_flow_timerq_t *q = new_q(0);
    static const int64_t dues[] = {500, -20, 300, 100, INT64_MAX, 200, INT64_MIN, 400, 0};
    for (size_t i = 0; i < 9; i++) add(q, i, 0, dues[i]);
    assert_int_equal(ls_flow_timerq_count(q), 9);
    check(q);
    static const uint64_t runs[] = {6, 1, 8, 3, 5, 2, 7, 0, 4};
    for (size_t i = 0; i < 9; i++) expect_pop(q, INT64_MAX, dues[runs[i]], runs[i], 0);
    assert_int_equal(ls_flow_timerq_count(q), 0);
    ls_flow_timerq_free(q);
}

static void test_timerq_ties_by_run_then_seq(void **state)
{
    (void)state;
    ls_flow_timerq_t *q = new_q(0);
    /* all due at 1000, added in a scrambled order */
    add(q, 3, 2, 1000);
    add(q, 1, 9, 1000);
    add(q, 3, 1, 1000);
    add(q, 2, 0, 1000);
    add(q, 1, 1, 1000);
    add(q, 0x100, 0, 1000); /* bytewise: 0x...0100 sorts after 0x...0003 */
    add(q, 3, UINT64_MAX, 1000);
    add(q, 1, 0, 999);
    check(q);
    expect_pop(q, 1000, 999, 1, 0);
    expect_pop(q, 1000, 1000, 1, 1);
    expect_pop(q, 1000, 1000, 1, 9);
    expect_pop(q, 1000, 1000, 2, 0);
    expect_pop(q, 1000, 1000, 3, 1);
    expect_pop(q, 1000, 1000, 3, 2);
    expect_pop(q, 1000, 1000, 3, UINT64_MAX);
    expect_pop(q, 1000, 1000, 0x100, 0);
    ls_flow_timerq_free(q);
}

static void test_timerq_add_duplicate_eexist(void **state)
{
    (void)state;
    ls_flow_timerq_t *q = new_q(0);
    uint8_t id[16];
    ls_err err = {0};
    run_id(id, 7);
    add(q, 7, 3, 100);
    assert_int_equal(ls_flow_timerq_add(q, id, 3, 50, &err), LS_EEXIST);
    assert_string_equal(err.msg, "timer queue: timer 3 of this run is already queued");
    assert_int_equal(ls_flow_timerq_count(q), 1);
    int64_t due = 0;
    assert_int_equal(ls_flow_timerq_find(q, id, 3, &due), LS_OK);
    assert_int_equal(due, 100); /* unchanged */
    add(q, 7, 4, 50);           /* another seq of the same run is fine */
    add(q, 8, 3, 50);           /* and the same seq of another run */
    assert_int_equal(ls_flow_timerq_count(q), 3);
    check(q);
    ls_flow_timerq_free(q);
}

static void test_timerq_remove_by_key(void **state)
{
    (void)state;
    ls_flow_timerq_t *q = new_q(0);
    for (uint64_t i = 0; i < 100; i++) add(q, i % 10, i / 10, (int64_t)((i * 37) % 100));
    uint8_t id[16];
    int64_t due = -1;
    /* remove the first, one in the middle, the last and one absent */
    run_id(id, 0);
    assert_int_equal(ls_flow_timerq_remove(q, id, 0, &due), LS_OK); /* due 0 */
    assert_int_equal(due, 0);
    assert_int_equal(ls_flow_timerq_remove(q, id, 0, &due), LS_ENOTFOUND);
    run_id(id, 5);
    assert_int_equal(ls_flow_timerq_remove(q, id, 4, &due), LS_OK); /* i = 45 */
    assert_int_equal(due, (45 * 37) % 100);
    run_id(id, 9);
    assert_int_equal(ls_flow_timerq_remove(q, id, 9, NULL), LS_OK); /* i = 99 */
    assert_int_equal(ls_flow_timerq_remove(q, id, 10, NULL), LS_ENOTFOUND);
    assert_int_equal(ls_flow_timerq_count(q), 97);
    check(q);
    /* what is left comes out in order and without the removed ones */
    ls_flow_timer t, prev = {INT64_MIN, {0}, 0};
    size_t n = 0;
    while (ls_flow_timerq_pop(q, INT64_MAX, &t) == LS_OK) {
        uint64_t i = t.seq * 10 + run_num(t.run_id);
        assert_true(i != 0 && i != 45 && i != 99);
        assert_true(t.due_ms >= prev.due_ms);
        prev = t;
        n++;
    }
    assert_int_equal(n, 97);
    ls_flow_timerq_free(q);
}

static void test_timerq_pop_due_at_time(void **state)
{
    (void)state;
    ls_flow_timerq_t *q = new_q(0);
    for (uint64_t i = 0; i < 50; i++) add(q, i, 0, (int64_t)(1000 + 10 * (i % 25)));
    ls_flow_timer out[64];
    int64_t in;
    assert_int_equal(ls_flow_timerq_pop_due(q, 999, out, 64), 0);
    assert_int_equal(ls_flow_timerq_next_due_in(q, 999, &in), LS_OK);
    assert_int_equal(in, 1);
    /* due at or before 1040: 1000..1040 twice each = 10, in batches of 4 */
    assert_int_equal(ls_flow_timerq_pop_due(q, 1040, out, 4), 4);
    assert_int_equal(ls_flow_timerq_pop_due(q, 1040, out + 4, 4), 4);
    assert_int_equal(ls_flow_timerq_pop_due(q, 1040, out + 8, 4), 2);
    for (size_t k = 0; k < 10; k++) {
        assert_int_equal(out[k].due_ms, 1000 + 10 * (int64_t)(k / 2));
        assert_int_equal(run_num(out[k].run_id), k / 2 + (k % 2) * 25);
    }
    assert_int_equal(ls_flow_timerq_next_due_in(q, 1040, &in), LS_OK);
    assert_int_equal(in, 10);
    assert_int_equal(ls_flow_timerq_next_due_in(q, 5000, &in), LS_OK);
    assert_int_equal(in, 0);
    assert_int_equal(ls_flow_timerq_pop_due(q, 5000, out, 64), 40);
    assert_int_equal(ls_flow_timerq_count(q), 0);
    /* peek does not remove, and sees timers that are not due */
    add(q, 1, 1, INT64_MAX);
    ls_flow_timer t;
    assert_int_equal(ls_flow_timerq_peek(q, &t), LS_OK);
    assert_int_equal(t.due_ms, INT64_MAX);
    assert_int_equal(ls_flow_timerq_pop(q, 5000, &t), LS_ENOTFOUND);
    assert_int_equal(ls_flow_timerq_next_due_in(q, INT64_MIN, &in), LS_OK);
    assert_int_equal(in, INT64_MAX); /* the difference does not fit: saturates */
    assert_int_equal(ls_flow_timerq_count(q), 1);
    ls_flow_timerq_free(q);
}

static void test_timerq_growth(void **state)
{
    (void)state;
    ls_flow_timerq_t *q = new_q(1);
    const uint64_t n = 100000;
    for (uint64_t i = 0; i < n; i++) add(q, i, i, (int64_t)(n - i));
    assert_int_equal(ls_flow_timerq_count(q), n);
    check(q);
    for (uint64_t i = 0; i < n; i++)
        expect_pop(q, INT64_MAX, (int64_t)(i + 1), n - 1 - i, n - 1 - i);
    /* freed nodes are reused */
    for (uint64_t i = 0; i < 1000; i++) add(q, i, 0, 5);
    check(q);
    ls_flow_timerq_free(q);
}

/* ---- randomized against a model ---- */

#define MODEL_RUNS ((size_t)64)
#define MODEL_SEQS ((size_t)1024)
#define MODEL_KEYS (MODEL_RUNS * MODEL_SEQS)

struct model {
    unsigned char present[MODEL_KEYS];
    int64_t due[MODEL_KEYS];
    size_t count;
};

static int timer_before(const ls_flow_timer *a, const ls_flow_timer *b)
{
    if (a->due_ms != b->due_ms) return a->due_ms < b->due_ms;
    int c = memcmp(a->run_id, b->run_id, 16);
    if (c != 0) return c < 0;
    return a->seq < b->seq;
}

static void test_timerq_random_against_model(void **state)
{
    (void)state;
    uint64_t s = test_seed();
    struct model *m = calloc(1, sizeof *m);
    assert_non_null(m);
    ls_flow_timerq_t *q = new_q(0);
    ls_flow_timer out[32];
    int64_t now = 0;
    ls_err err = {0};
    const long ops = 300000;
    for (long op = 0; op < ops; op++) {
        uint64_t r = rng(&s);
        size_t key = (size_t)(rng(&s) % MODEL_KEYS);
        uint8_t id[16];
        run_id(id, key / MODEL_SEQS);
        uint64_t seq = key % MODEL_SEQS;
        unsigned kind = (unsigned)(r % 100);
        if (kind < 55) { /* add, near now, many ties */
            int64_t due = now + (int64_t)(rng(&s) % 2000) - 100;
            ls_rc rc = ls_flow_timerq_add(q, id, seq, due, &err);
            if (m->present[key]) {
                assert_int_equal(rc, LS_EEXIST);
            } else {
                th_ok(rc, &err);
                m->present[key] = 1;
                m->due[key] = due;
                m->count++;
            }
        } else if (kind < 80) { /* remove */
            int64_t due = 0;
            ls_rc rc = ls_flow_timerq_remove(q, id, seq, &due);
            if (m->present[key]) {
                assert_int_equal(rc, LS_OK);
                assert_int_equal(due, m->due[key]);
                m->present[key] = 0;
                m->count--;
            } else {
                assert_int_equal(rc, LS_ENOTFOUND);
            }
        } else if (kind < 85) { /* find */
            int64_t due = 0;
            ls_rc rc = ls_flow_timerq_find(q, id, seq, &due);
            assert_int_equal(rc, m->present[key] ? LS_OK : LS_ENOTFOUND);
            if (rc == LS_OK) assert_int_equal(due, m->due[key]);
        } else { /* time passes; pop what is due */
            now += (int64_t)(rng(&s) % 50);
            size_t n;
            ls_flow_timer prev = {INT64_MIN, {0}, 0};
            do {
                n = ls_flow_timerq_pop_due(q, now, out, 32);
                for (size_t k = 0; k < n; k++) {
                    size_t mk = (size_t)(run_num(out[k].run_id) * MODEL_SEQS + out[k].seq);
                    assert_true(out[k].seq < MODEL_SEQS && mk < MODEL_KEYS);
                    assert_true(m->present[mk]);
                    assert_int_equal(out[k].due_ms, m->due[mk]);
                    assert_true(out[k].due_ms <= now);
                    assert_true(timer_before(&prev, &out[k]));
                    prev = out[k];
                    m->present[mk] = 0;
                    m->count--;
                }
            } while (n == 32);
            int64_t in;
            if (ls_flow_timerq_next_due_in(q, now, &in) == LS_OK) assert_true(in > 0);
        }
        assert_int_equal(ls_flow_timerq_count(q), m->count);
        if (op % 50000 == 0) check(q);
    }
    check(q);
    /* drain: exactly the model's timers, in order */
    ls_flow_timer t, prev = {INT64_MIN, {0}, 0};
    size_t left = m->count;
    while (ls_flow_timerq_pop(q, INT64_MAX, &t) == LS_OK) {
        size_t mk = (size_t)(run_num(t.run_id) * MODEL_SEQS + t.seq);
        assert_true(m->present[mk]);
        assert_int_equal(t.due_ms, m->due[mk]);
        assert_true(timer_before(&prev, &t));
        prev = t;
        m->present[mk] = 0;
        left--;
    }
    assert_int_equal(left, 0);
    ls_flow_timerq_free(q);
    free(m);
}

static void test_timerq_million(void **state)
{
    (void)state;
    uint64_t s = 12345;
    const uint64_t n = 1000000;
    ls_flow_timerq_t *q = new_q(0);
    for (uint64_t i = 0; i < n; i++) add(q, i, 1, (int64_t)(rng(&s) % 86400000));
    assert_int_equal(ls_flow_timerq_count(q), n);
    check(q);
    /* remove every other one by key, then drain in order */
    uint8_t id[16];
    for (uint64_t i = 0; i < n; i += 2) {
        run_id(id, i);
        assert_int_equal(ls_flow_timerq_remove(q, id, 1, NULL), LS_OK);
    }
    ls_flow_timer t, prev = {INT64_MIN, {0}, 0};
    uint64_t popped = 0;
    while (ls_flow_timerq_pop(q, INT64_MAX, &t) == LS_OK) {
        assert_true(run_num(t.run_id) % 2 == 1);
        assert_true(timer_before(&prev, &t));
        prev = t;
        popped++;
    }
    assert_int_equal(popped, n / 2);
    ls_flow_timerq_free(q);
}

/* ---- allocation failures ---- */

static ls_rc new_and_fill(void *ud)
{
    (void)ud;
    ls_flow_timerq_t *q = NULL;
    ls_err err = {0};
    ls_rc rc = ls_flow_timerq_new(&q, 0, &err);
    if (rc != LS_OK) {
        assert_null(q);
        return rc;
    }
    /* enough to grow every array twice */
    uint64_t i;
    for (i = 0; i < 100; i++) {
        uint8_t id[16];
        run_id(id, i);
        rc = ls_flow_timerq_add(q, id, 0, (int64_t)(i % 7), &err);
        if (rc != LS_OK) break;
    }
    /* whatever happened, the queue is intact and holds what was added */
    assert_int_equal(ls_flow_timerq_count(q), i);
    ls_err cerr = {0};
    th_ok(ls_flow_timerq_check(q, &cerr), &cerr);
    if (rc == LS_OK || rc == LS_ENOMEM) {
        uint8_t id[16];
        run_id(id, i); /* the failed one is not there */
        assert_int_equal(ls_flow_timerq_find(q, id, 0, NULL), LS_ENOTFOUND);
    }
    ls_flow_timer t;
    size_t popped = 0;
    while (ls_flow_timerq_pop(q, INT64_MAX, &t) == LS_OK) popped++;
    assert_int_equal(popped, i);
    ls_flow_timerq_free(q);
    return rc;
}

static void test_timerq_alloc_failure(void **state)
{
    (void)state;
    long points = th_each_alloc_failure(new_and_fill, NULL);
    assert_true(points >= 4 + 3 * 2); /* new (4), then nodes, heap, index growing twice */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timerq_empty),
        cmocka_unit_test(test_timerq_orders_by_due),
        cmocka_unit_test(test_timerq_ties_by_run_then_seq),
        cmocka_unit_test(test_timerq_add_duplicate_eexist),
        cmocka_unit_test(test_timerq_remove_by_key),
        cmocka_unit_test(test_timerq_pop_due_at_time),
        cmocka_unit_test(test_timerq_growth),
        cmocka_unit_test(test_timerq_random_against_model),
        cmocka_unit_test(test_timerq_million),
        cmocka_unit_test(test_timerq_alloc_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
