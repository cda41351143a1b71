/* SPDX-License-Identifier: MIT
 * Tests of the recent-results cache (native/flow/results.c): put and get,
 * replacing an entry, the oldest going first by entries and by bytes, a
 * text over the byte limit, clear, a randomized test against a simple
 * model (seed printed; LS_TEST_SEED repeats a run), and allocation
 * failures.
 */
#include "helpers.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "flow/results.h"
#include "lodestone/ls_alloc.h"

/* ---- helpers ---- */

/* Run id i: big-endian i in the last 8 bytes, a marker in the first. */
static ls_id run_id(uint64_t i)
{
    ls_id id;
    memset(id.b, 0x5A, 8);
    for (int b = 0; b < 8; b++) id.b[15 - b] = (uint8_t)(i >> (8 * b));
    return id;
}

static flow_results *new_cache(size_t entries, size_t bytes)
{
    flow_results *c = NULL;
    ls_err err = {0};
    th_ok(flow_results_new(&c, entries, bytes, &err), &err);
    return c;
}

/* Puts a copy of text as run i's result. */
static void put(flow_results *c, uint64_t i, const char *text)
{
    size_t n = strlen(text);
    char *t = ls_malloc(n ? n : 1);
    assert_non_null(t);
    memcpy(t, text, n);
    ls_id id = run_id(i);
    flow_results_put(c, &id, t, n);
}

static void expect(flow_results *c, uint64_t i, const char *text)
{
    ls_buf out = LS_BUF_INIT;
    ls_err err = {0};
    ls_id id = run_id(i);
    int got = flow_results_get(c, &id, &out, &err);
    if (text == NULL) {
        assert_int_equal(got, 0);
    } else {
        assert_int_equal(got, 1);
        assert_int_equal(out.len, strlen(text));
        assert_memory_equal(out.ptr, text, out.len);
    }
    ls_buf_free(&out);
}

/* ---- cases ---- */

static void test_results_put_get(void **state)
{
    (void)state;
    flow_results *c = new_cache(8, 1024);
    expect(c, 1, NULL);
    put(c, 1, "{\"id\":\"a\",\"output\":1,\"status\":\"completed\"}");
    put(c, 2, "{\"id\":\"b\",\"status\":\"completed\"}");
    expect(c, 1, "{\"id\":\"a\",\"output\":1,\"status\":\"completed\"}");
    expect(c, 2, "{\"id\":\"b\",\"status\":\"completed\"}");
    expect(c, 3, NULL);
    assert_int_equal(flow_results_count(c), 2);
    assert_int_equal(flow_results_bytes(c),
                     strlen("{\"id\":\"a\",\"output\":1,\"status\":\"completed\"}") +
                         strlen("{\"id\":\"b\",\"status\":\"completed\"}"));
    /* A get replaces what out held. */
    ls_buf out = LS_BUF_INIT;
    ls_err err = {0};
    th_ok(ls_buf_set(&out, "old text that is longer", 23, &err), &err);
    ls_id id = run_id(2);
    assert_int_equal(flow_results_get(c, &id, &out, &err), 1);
    assert_string_equal((const char *)out.ptr, "{\"id\":\"b\",\"status\":\"completed\"}");
    ls_buf_free(&out);
    flow_results_free(c);
}

static void test_results_replace(void **state)
{
    (void)state;
    flow_results *c = new_cache(3, 1024);
    put(c, 1, "one");
    put(c, 2, "two");
    put(c, 1, "uno!");
    expect(c, 1, "uno!");
    assert_int_equal(flow_results_count(c), 2);
    assert_int_equal(flow_results_bytes(c), 7);
    /* The replaced entry's slot is a hole: the ring holds 1(hole), 2, 1.
     * The next put drops the hole, the one after drops run 2. */
    put(c, 3, "three");
    expect(c, 1, "uno!");
    expect(c, 2, "two");
    expect(c, 3, "three");
    put(c, 4, "four");
    expect(c, 2, NULL);
    expect(c, 1, "uno!");
    expect(c, 4, "four");
    flow_results_free(c);
}

static void test_results_oldest_go_first_by_entries(void **state)
{
    (void)state;
    flow_results *c = new_cache(4, 1 << 20);
    for (uint64_t i = 1; i <= 10; i++) put(c, i, "x");
    assert_int_equal(flow_results_count(c), 4);
    for (uint64_t i = 1; i <= 6; i++) expect(c, i, NULL);
    for (uint64_t i = 7; i <= 10; i++) expect(c, i, "x");
    flow_results_free(c);
}

static void test_results_oldest_go_first_by_bytes(void **state)
{
    (void)state;
    flow_results *c = new_cache(100, 10);
    put(c, 1, "aaaa");
    put(c, 2, "bbbb");
    assert_int_equal(flow_results_bytes(c), 8);
    put(c, 3, "cccc"); /* 12 > 10: run 1 goes */
    expect(c, 1, NULL);
    expect(c, 2, "bbbb");
    expect(c, 3, "cccc");
    put(c, 4, "dddddddddd"); /* exactly the limit: everything else goes */
    expect(c, 2, NULL);
    expect(c, 3, NULL);
    expect(c, 4, "dddddddddd");
    assert_int_equal(flow_results_bytes(c), 10);
    /* Over the limit: not kept, and nothing else is dropped for it... */
    put(c, 5, "eeeeeeeeeee");
    expect(c, 5, NULL);
    expect(c, 4, "dddddddddd");
    assert_int_equal(flow_results_count(c), 1);
    /* ... but an older entry of that same run is. */
    put(c, 4, "ffffffffffff");
    expect(c, 4, NULL);
    assert_int_equal(flow_results_count(c), 0);
    flow_results_free(c);
}

static void test_results_clear(void **state)
{
    (void)state;
    flow_results *c = new_cache(4, 1024);
    for (uint64_t i = 1; i <= 6; i++) put(c, i, "r");
    flow_results_clear(c);
    assert_int_equal(flow_results_count(c), 0);
    assert_int_equal(flow_results_bytes(c), 0);
    for (uint64_t i = 1; i <= 6; i++) expect(c, i, NULL);
    put(c, 9, "again");
    expect(c, 9, "again");
    flow_results_free(c);
}

static void test_results_bad_size(void **state)
{
    (void)state;
    flow_results *c = NULL;
    ls_err err = {0};
    assert_int_equal(flow_results_new(&c, 0, 100, &err), LS_EINVAL);
    assert_null(c);
}

/* The model: the live entries in the order they were put (a replaced one
 * moves to the end), with the ring's holes counted as the cache does. */
#define MODEL_MAX 64
typedef struct {
    uint64_t run[MODEL_MAX * 4];
    size_t len[MODEL_MAX * 4];
    int live[MODEL_MAX * 4];
    size_t n; /* ring slots in use, holes included */
    size_t cap, max_bytes, bytes;
} model;

static void model_drop_oldest(model *m)
{
    if (m->live[0]) m->bytes -= m->len[0];
    memmove(m->run, m->run + 1, (m->n - 1) * sizeof m->run[0]);
    memmove(m->len, m->len + 1, (m->n - 1) * sizeof m->len[0]);
    memmove(m->live, m->live + 1, (m->n - 1) * sizeof m->live[0]);
    m->n--;
}

static void model_put(model *m, uint64_t run, size_t len)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->live[i] && m->run[i] == run) {
            m->live[i] = 0;
            m->bytes -= m->len[i];
        }
    if (len > m->max_bytes) return;
    while (m->n > 0 && (m->n == m->cap || m->bytes + len > m->max_bytes)) model_drop_oldest(m);
    m->run[m->n] = run;
    m->len[m->n] = len;
    m->live[m->n] = 1;
    m->n++;
    m->bytes += len;
}

static long model_get(const model *m, uint64_t run)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->live[i] && m->run[i] == run) return (long)m->len[i];
    return -1;
}

static void test_results_random_against_model(void **state)
{
    (void)state;
    const char *s = getenv("LS_TEST_SEED");
    unsigned seed = s ? (unsigned)strtoul(s, NULL, 10) : (unsigned)time(NULL);
    printf("seed %u (LS_TEST_SEED repeats it)\n", seed);
    srand(seed);
    for (int round = 0; round < 20; round++) {
        model m = {.cap = 1 + (size_t)rand() % MODEL_MAX, .max_bytes = 1 + (size_t)rand() % 400};
        flow_results *c = new_cache(m.cap, m.max_bytes);
        char text[512];
        for (int op = 0; op < 3000; op++) {
            uint64_t run = (uint64_t)(rand() % 100);
            int what = rand() % 10;
            if (what < 5) {
                size_t len = (size_t)rand() % 60;
                if (rand() % 50 == 0) len = 300 + (size_t)rand() % 200; /* often over the limit */
                /* The text tells its run and length: a get checks both. */
                memset(text, 'a' + (int)(run % 26), len);
                text[len] = '\0';
                put(c, run, text);
                model_put(&m, run, len);
            } else if (what < 9) {
                long want = model_get(&m, run);
                ls_buf out = LS_BUF_INIT;
                ls_err err = {0};
                ls_id id = run_id(run);
                int got = flow_results_get(c, &id, &out, &err);
                assert_int_equal(got, want >= 0 ? 1 : 0);
                if (want >= 0) {
                    assert_int_equal(out.len, (size_t)want);
                    for (size_t i = 0; i < out.len; i++)
                        assert_int_equal(out.ptr[i], 'a' + (int)(run % 26));
                }
                ls_buf_free(&out);
            } else if (rand() % 20 == 0) {
                flow_results_clear(c);
                m.n = 0;
                m.bytes = 0;
            }
            assert_int_equal(flow_results_bytes(c), m.bytes);
        }
        flow_results_free(c);
    }
}

static ls_rc alloc_case(void *ud)
{
    (void)ud;
    flow_results *c = NULL;
    ls_err err = {0};
    ls_rc rc = flow_results_new(&c, 16, 1024, &err);
    if (rc != LS_OK) return rc;
    char *t = ls_malloc(5);
    if (t == NULL) {
        flow_results_free(c);
        return LS_ENOMEM;
    }
    memcpy(t, "hello", 5);
    ls_id id = run_id(7);
    flow_results_put(c, &id, t, 5);
    ls_buf out = LS_BUF_INIT;
    int got = flow_results_get(c, &id, &out, &err);
    flow_results_free(c);
    if (got < 0) return LS_ENOMEM;
    assert_int_equal(got, 1);
    assert_memory_equal(out.ptr, "hello", 5);
    ls_buf_free(&out);
    return LS_OK;
}

static void test_results_alloc_failure(void **state)
{
    (void)state;
    assert_true(th_each_alloc_failure(alloc_case, NULL) >= 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_results_put_get),
        cmocka_unit_test(test_results_replace),
        cmocka_unit_test(test_results_oldest_go_first_by_entries),
        cmocka_unit_test(test_results_oldest_go_first_by_bytes),
        cmocka_unit_test(test_results_clear),
        cmocka_unit_test(test_results_bad_size),
        cmocka_unit_test(test_results_random_against_model),
        cmocka_unit_test(test_results_alloc_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
