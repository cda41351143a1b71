/* SPDX-License-Identifier: MIT
 * Tests of native/flow/history.c: event and run-record values round trip
 * with edge values, every truncation and garbling is rejected (never read
 * past the end), keys sort by run then seq and prefix scans over a real
 * store list one run in order, and allocation failures come back as
 * LS_ENOMEM with the output untouched.
 */
#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow/history.h"

#define NELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* ---- helpers ---- */

static void assert_events_equal(const ls_event *a, const ls_event *b)
{
    assert_int_equal(a->type, b->type);
    assert_int_equal(a->flags, b->flags);
    assert_true(a->seq == b->seq);
    assert_true(a->time_ms == b->time_ms);
    assert_true(a->due_ms == b->due_ms);
    assert_int_equal(a->attempt, b->attempt);
    assert_int_equal(a->name_len, b->name_len);
    if (a->name_len) assert_memory_equal(a->name, b->name, a->name_len);
    assert_int_equal(a->payload_len, b->payload_len);
    if (a->payload_len) assert_memory_equal(a->payload, b->payload, a->payload_len);
    assert_int_equal(a->error_len, b->error_len);
    if (a->error_len) assert_memory_equal(a->error, b->error, a->error_len);
}

static void roundtrip(const ls_event *ev)
{
    ls_buf v = LS_BUF_INIT;
    ls_err err;
    ls_event back;
    th_ok(ls_event_encode(ev, &v, &err), &err);
    th_ok(ls_event_decode(v.ptr, v.len, &back, &err), &err);
    assert_events_equal(ev, &back);
    /* borrowed: strings point into the value */
    if (back.name_len) assert_true((const unsigned char *)back.name >= v.ptr);
    if (back.payload_len) assert_true(back.payload < v.ptr + v.len);
    ls_buf_free(&v);
}

static ls_event sample(void)
{
    static const unsigned char payload[] = {0, 1, 2, 0, 0xFF, 0};
    ls_event ev = {.type = LS_EV_STEP_FAILED,
                   .flags = LS_EVF_FATAL,
                   .seq = 300,
                   .time_ms = 1700000000123,
                   .due_ms = -5,
                   .attempt = 3,
                   .name = "charge",
                   .name_len = 6,
                   .payload = payload,
                   .payload_len = sizeof payload,
                   .error = "card declined",
                   .error_len = 13};
    return ev;
}

static ls_rc decode_rc(const void *p, size_t n, ls_err *err)
{
    ls_event ev;
    return ls_event_decode(p, n, &ev, err);
}

/* ---- events ---- */

static void test_history_roundtrip_every_type(void **state)
{
    (void)state;
    for (int t = 1; t <= LS_EV_LAST; t++) {
        ls_event ev = sample();
        ev.type = (ls_event_type)t;
        ev.flags = t == LS_EV_STEP_FAILED ? LS_EVF_FATAL : 0;
        ev.seq = (uint64_t)t;
        roundtrip(&ev);
        ev.name = NULL, ev.name_len = 0, ev.payload = NULL, ev.payload_len = 0;
        ev.error = NULL, ev.error_len = 0, ev.attempt = 0, ev.time_ms = 0, ev.due_ms = 0;
        roundtrip(&ev);
    }
}

static void test_history_roundtrip_edge_values(void **state)
{
    (void)state;
    const size_t big = 70000;
    char *name = malloc(big);
    unsigned char *payload = malloc(big);
    assert_non_null(name);
    assert_non_null(payload);
    for (size_t i = 0; i < big; i++) {
        name[i] = (char)('a' + i % 26);
        payload[i] = (unsigned char)(i * 7); /* includes NULs */
    }
    const uint64_t seqs[] = {1, 127, 128, 16383, 16384, UINT32_MAX, (uint64_t)1 << 63, UINT64_MAX};
    const int64_t times[] = {0, -1, 1, INT64_MIN, INT64_MAX, 1700000000000};
    const uint32_t attempts[] = {0, 1, 127, 128, UINT32_MAX};
    for (size_t i = 0; i < NELEMS(seqs); i++) {
        ls_event ev = sample();
        ev.seq = seqs[i];
        ev.time_ms = times[i % NELEMS(times)];
        ev.due_ms = times[(i + 3) % NELEMS(times)];
        ev.attempt = attempts[i % NELEMS(attempts)];
        roundtrip(&ev);
    }
    ls_event ev = sample();
    ev.name = name, ev.name_len = big;
    ev.payload = payload, ev.payload_len = big;
    ev.error = "\0a\0", ev.error_len = 3;
    roundtrip(&ev);
    free(name);
    free(payload);
}

static void test_history_encode_is_compact_and_replaces(void **state)
{
    (void)state;
    ls_event ev = {.type = LS_EV_STEP_STARTED,
                   .seq = 2,
                   .time_ms = 1700000000000,
                   .attempt = 1,
                   .name = "ship",
                   .name_len = 4};
    ls_buf v = LS_BUF_INIT;
    ls_err err;
    th_ok(ls_buf_set(&v, "old contents", 12, &err), &err);
    th_ok(ls_event_encode(&ev, &v, &err), &err);
    /* 3 header bytes, seq 1, time 6, due 1, attempt 1, 3 lengths and "ship" */
    assert_int_equal(v.len, 3 + 1 + 6 + 1 + 1 + 3 + 4);
    assert_int_equal(v.ptr[0], LS_EVENT_VERSION);
    assert_int_equal(v.ptr[1], LS_EV_STEP_STARTED);
    assert_int_equal(v.ptr[v.len], 0);
    ls_buf_free(&v);
}

static void test_history_encode_rejects_bad_events(void **state)
{
    (void)state;
    ls_buf v = LS_BUF_INIT;
    ls_err err;
    th_ok(ls_buf_set(&v, "keep", 4, &err), &err);
    ls_event ev = sample();
    ev.type = (ls_event_type)0;
    assert_int_equal(ls_event_encode(&ev, &v, &err), LS_EINVAL);
    ev.type = (ls_event_type)(LS_EV_LAST + 1);
    assert_int_equal(ls_event_encode(&ev, &v, &err), LS_EINVAL);
    ev = sample();
    ev.seq = 0;
    assert_int_equal(ls_event_encode(&ev, &v, &err), LS_EINVAL);
    assert_non_null(strstr(err.msg, "seq 0"));
    ev = sample();
    ev.flags = 0x80;
    assert_int_equal(ls_event_encode(&ev, &v, &err), LS_EINVAL);
    ev = sample();
    ev.name = NULL;
    assert_int_equal(ls_event_encode(&ev, &v, &err), LS_EINVAL);
    assert_int_equal(v.len, 4);
    assert_memory_equal(v.ptr, "keep", 4);
    ls_buf_free(&v);
}

static void test_history_decode_every_truncation(void **state)
{
    (void)state;
    ls_event ev = sample();
    ls_buf v = LS_BUF_INIT;
    ls_err err;
    th_ok(ls_event_encode(&ev, &v, &err), &err);
    for (size_t n = 0; n < v.len; n++) {
        /* a fresh copy of exactly n bytes, so ASan sees any over-read */
        unsigned char *p = malloc(n ? n : 1);
        assert_non_null(p);
        memcpy(p, v.ptr, n);
        memset(&err, 0, sizeof err);
        assert_int_equal(decode_rc(n ? p : NULL, n, &err), LS_ECORRUPT);
        assert_int_equal(err.code, LS_ECORRUPT);
        assert_true(strstr(err.msg, "truncated") || strstr(err.msg, "overflows") ||
                    strstr(err.msg, "empty"));
        free(p);
    }
    ls_buf_free(&v);
}

static void test_history_decode_rejects_trailing_bytes(void **state)
{
    (void)state;
    ls_event ev = sample();
    ls_buf v = LS_BUF_INIT;
    ls_err err;
    th_ok(ls_event_encode(&ev, &v, &err), &err);
    th_ok(ls_buf_putc(&v, 0, &err), &err);
    assert_int_equal(decode_rc(v.ptr, v.len, &err), LS_ECORRUPT);
    assert_non_null(strstr(err.msg, "1 trailing bytes"));
    ls_buf_free(&v);
}

static void test_history_decode_names_what_is_wrong(void **state)
{
    (void)state;
    static const struct {
        const char *bytes;
        size_t len;
        ls_rc rc;
        const char *msg;
    } cases[] = {
        {"\x04\x03\x00\x01\x00\x00\x00\x00\x00\x00", 10, LS_EFORMAT, "unknown version 4"},
        {"\x00", 1, LS_EFORMAT, "unknown version 0"},
        {"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00", 10, LS_ECORRUPT, "unknown type 0"},
        {"\x01\x13\x00\x01\x00\x00\x00\x00\x00\x00", 10, LS_ECORRUPT, "unknown type 19"},
        {"\x01\x03\x08\x01\x00\x00\x00\x00\x00\x00", 10, LS_ECORRUPT, "unknown flags 0x8"},
        {"\x01\x03\x00\x00\x00\x00\x00\x00\x00\x00", 10, LS_ECORRUPT, "seq 0"},
        /* seq 1 written in two bytes */
        {"\x01\x03\x00\x81\x00\x00\x00\x00\x00\x00\x00", 11, LS_ECORRUPT, "overlong"},
        /* seq of 11 continuation bytes */
        {"\x01\x03\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 14, LS_ECORRUPT,
         "overflows 64 bits"},
        /* 10th byte carries bits past 64 */
        {"\x01\x03\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02", 13, LS_ECORRUPT,
         "overflows 64 bits"},
        /* attempt 2^32 */
        {"\x01\x03\x00\x01\x00\x00\x80\x80\x80\x80\x10\x00\x00\x00", 14, LS_ECORRUPT,
         "attempt 4294967296 is out of range"},
        /* name length 5 with 2 bytes left */
        {"\x01\x03\x00\x01\x00\x00\x01\x05"
         "ab",
         10, LS_ECORRUPT, "name length 5"},
        /* payload length 2^63 */
        {"\x01\x03\x00\x01\x00\x00\x01\x00\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01\x00", 19,
         LS_ECORRUPT, "payload length 9223372036854775808"},
    };
    for (size_t i = 0; i < NELEMS(cases); i++) {
        ls_err err = {0};
        ls_rc rc = decode_rc(cases[i].bytes, cases[i].len, &err);
        if (rc != cases[i].rc || strstr(err.msg, cases[i].msg) == NULL)
            fail_msg("case %zu: %s \"%s\", expected %s \"%s\"", i, ls_rc_name(rc), err.msg,
                     ls_rc_name(cases[i].rc), cases[i].msg);
    }
    /* the smallest valid value */
    ls_event ev;
    ls_err err;
    th_ok(ls_event_decode("\x01\x01\x00\x01\x00\x00\x00\x00\x00\x00", 10, &ev, &err), &err);
    assert_int_equal(ev.type, LS_EV_WORKFLOW_STARTED);
    assert_null(ev.name);
}

static void test_history_decode_survives_garbling(void **state)
{
    (void)state;
    ls_event ev = sample();
    ls_buf v = LS_BUF_INIT;
    ls_err err;
    th_ok(ls_event_encode(&ev, &v, &err), &err);
    unsigned char *p = malloc(v.len);
    assert_non_null(p);
    /* every byte set to every value: decodes cleanly or fails with a code */
    for (size_t i = 0; i < v.len; i++) {
        for (unsigned b = 0; b < 256; b++) {
            memcpy(p, v.ptr, v.len);
            p[i] = (unsigned char)b;
            ls_event out;
            ls_rc rc = ls_event_decode(p, v.len, &out, &err);
            assert_true(rc == LS_OK || rc == LS_ECORRUPT || rc == LS_EFORMAT);
            if (rc == LS_OK) {
                assert_true(out.name_len + out.payload_len + out.error_len <= v.len);
                assert_true(out.seq > 0);
            }
        }
    }
    free(p);
    ls_buf_free(&v);
}

static void test_history_type_names(void **state)
{
    (void)state;
    assert_string_equal(ls_event_type_name(LS_EV_STEP_COMPLETED), "step_completed");
    assert_string_equal(ls_event_type_name(LS_EV_SIDE_EFFECT), "side_effect_recorded");
    assert_string_equal(ls_event_type_name((ls_event_type)0), "unknown");
    assert_string_equal(ls_event_type_name((ls_event_type)99), "unknown");
    for (int t = 1; t <= LS_EV_LAST; t++) {
        const char *name = ls_event_type_name((ls_event_type)t);
        ls_event_type back;
        assert_int_equal(ls_event_type_parse(name, strlen(name), &back), LS_OK);
        assert_int_equal(back, t);
    }
    ls_event_type out;
    assert_int_equal(ls_event_type_parse("step", 4, &out), LS_ENOTFOUND);
    assert_int_equal(ls_event_type_parse("step_completedx", 15, &out), LS_ENOTFOUND);
    assert_int_equal(ls_event_type_parse(NULL, 0, &out), LS_ENOTFOUND);
}

/* ---- keys ---- */

static ls_id make_id(unsigned char fill, unsigned char last)
{
    ls_id id;
    memset(id.b, fill, sizeof id.b);
    id.b[LS_ID_BYTES - 1] = last;
    return id;
}

static int cmp_bufs(const ls_buf *a, const ls_buf *b)
{
    size_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->ptr, b->ptr, n);
    return c ? c : (a->len > b->len) - (a->len < b->len);
}

static void test_history_keys_sort_by_run_then_seq(void **state)
{
    (void)state;
    const uint64_t seqs[] = {1,         2, 255, 256, 65536, UINT32_MAX, (uint64_t)UINT32_MAX + 1,
                             UINT64_MAX};
    const ls_id runs[] = {make_id(0x00, 0x00), make_id(0x10, 0x00), make_id(0x10, 0x01),
                          make_id(0xFF, 0xFF)};
    ls_buf prev = LS_BUF_INIT, k = LS_BUF_INIT, prefix = LS_BUF_INIT, end = LS_BUF_INIT;
    ls_err err;
    for (size_t r = 0; r < NELEMS(runs); r++) {
        th_ok(ls_history_prefix(&prefix, &runs[r], &err), &err);
        assert_int_equal(prefix.len, LS_HISTORY_PREFIX_LEN);
        th_ok(ls_key_prefix_end(prefix.ptr, prefix.len, &end, &err), &err);
        for (size_t s = 0; s < NELEMS(seqs); s++) {
            th_ok(ls_history_key(&k, &runs[r], seqs[s], &err), &err);
            assert_int_equal(k.len, LS_HISTORY_KEY_LEN);
            if (prev.len) assert_true(cmp_bufs(&prev, &k) < 0);
            /* inside [prefix, prefix end) */
            assert_memory_equal(k.ptr, prefix.ptr, prefix.len);
            assert_true(cmp_bufs(&k, &end) < 0);
            /* and outside the bounds of every other run */
            for (size_t o = 0; o < NELEMS(runs); o++) {
                if (o == r) continue;
                ls_buf op = LS_BUF_INIT;
                th_ok(ls_history_prefix(&op, &runs[o], &err), &err);
                assert_memory_not_equal(k.ptr, op.ptr, op.len);
                ls_buf_free(&op);
            }
            ls_id run;
            uint64_t seq;
            th_ok(ls_history_key_parse(k.ptr, k.len, &run, &seq, &err), &err);
            assert_memory_equal(run.b, runs[r].b, LS_ID_BYTES);
            assert_true(seq == seqs[s]);
            th_ok(ls_buf_set(&prev, k.ptr, k.len, &err), &err);
        }
    }
    ls_buf_free(&prev);
    ls_buf_free(&k);
    ls_buf_free(&prefix);
    ls_buf_free(&end);
}

static void test_history_key_parse_rejects_other_keys(void **state)
{
    (void)state;
    ls_id id = make_id(7, 7);
    ls_buf k = LS_BUF_INIT;
    ls_err err;
    th_ok(ls_history_key(&k, &id, 42, &err), &err);
    assert_int_equal(ls_history_key_parse(k.ptr, k.len - 1, NULL, NULL, &err), LS_ECORRUPT);
    assert_non_null(strstr(err.msg, "24 bytes"));
    assert_int_equal(ls_history_key_parse(k.ptr, 0, NULL, NULL, &err), LS_ECORRUPT);
    th_ok(ls_buf_putc(&k, 0, &err), &err);
    assert_int_equal(ls_history_key_parse(k.ptr, k.len, NULL, NULL, &err), LS_ECORRUPT);
    th_ok(ls_run_key(&k, &id, &err), &err);
    assert_int_equal(k.len, 1 + LS_ID_BYTES);
    assert_int_equal(k.ptr[0], LS_NS_RUN);
    th_ok(ls_key_u64(&k, 42, &err), &err); /* right length, wrong namespace */
    assert_int_equal(ls_history_key_parse(k.ptr, k.len, NULL, NULL, &err), LS_ECORRUPT);
    assert_non_null(strstr(err.msg, "namespace 0x10"));
    uint64_t seq = 0;
    th_ok(ls_history_key(&k, &id, 42, &err), &err);
    th_ok(ls_history_key_parse(k.ptr, k.len, NULL, &seq, &err), &err);
    assert_true(seq == 42);
    ls_buf_free(&k);
}

static void test_history_prefix_scan_lists_one_run_in_order(void **state)
{
    (void)state;
    char *dir = th_mkdtemp("flow_history");
    ls_store_opts opts = {.create_if_missing = 1};
    ls_store_t *st = NULL;
    ls_err err;
    th_ok(ls_store_open(&st, dir, &opts, &err), &err);
    ls_store_batch_t *b = NULL;
    th_ok(ls_store_batch_new(&b, &err), &err);
    const ls_id runs[3] = {make_id(1, 0xFF), make_id(2, 0), make_id(2, 1)};
    ls_buf k = LS_BUF_INIT, v = LS_BUF_INIT;
    /* written out of order, three runs interleaved */
    const uint64_t order[] = {3, 1, 300, 2, 256, 255};
    for (size_t i = 0; i < NELEMS(order); i++) {
        for (size_t r = 0; r < 3; r++) {
            ls_event ev = {.type = LS_EV_STEP_STARTED,
                           .seq = order[i],
                           .attempt = 1,
                           .name = "x",
                           .name_len = 1,
                           .time_ms = (int64_t)r};
            th_ok(ls_history_key(&k, &runs[r], ev.seq, &err), &err);
            th_ok(ls_event_encode(&ev, &v, &err), &err);
            ls_store_batch_put(b, k.ptr, k.len, v.ptr, v.len);
        }
    }
    th_ok(ls_store_write(st, b, 0, &err), &err);
    th_ok(ls_history_prefix(&k, &runs[1], &err), &err);
    ls_store_iter_t *it = NULL;
    th_ok(ls_store_iter_prefix(&it, st, k.ptr, k.len, 0, &err), &err);
    const uint64_t want[] = {1, 2, 3, 255, 256, 300};
    size_t n = 0;
    const void *key, *val;
    size_t klen, vlen;
    ls_rc rc;
    while ((rc = ls_store_iter_next(it, &key, &klen, &val, &vlen, &err)) == LS_OK) {
        ls_id run;
        uint64_t seq;
        ls_event ev;
        th_ok(ls_history_key_parse(key, klen, &run, &seq, &err), &err);
        th_ok(ls_event_decode(val, vlen, &ev, &err), &err);
        assert_true(n < NELEMS(want));
        assert_true(seq == want[n] && ev.seq == want[n]);
        assert_memory_equal(run.b, runs[1].b, LS_ID_BYTES);
        assert_true(ev.time_ms == 1);
        n++;
    }
    assert_int_equal(rc, LS_ENOTFOUND);
    assert_int_equal(n, NELEMS(want));
    ls_store_iter_free(it);
    ls_store_batch_free(b);
    ls_store_close(st);
    ls_buf_free(&k);
    ls_buf_free(&v);
    th_rmtree(dir);
    free(dir);
}

/* ---- run records ---- */

static void test_history_run_record_roundtrip(void **state)
{
    (void)state;
    ls_buf v = LS_BUF_INIT;
    ls_err err;
    for (int s = 1; s <= LS_RUN_STATUS_LAST; s++) {
        ls_run_record r = {.status = (ls_run_status)s,
                           .created_ms = s == 2 ? INT64_MIN : 1700000000000,
                           .updated_ms = INT64_MAX,
                           .last_seq = s == 3 ? UINT64_MAX : 7,
                           .steps_completed = UINT32_MAX,
                           .attempts_failed = 0,
                           .type = s == 4 ? NULL : "or\0der",
                           .type_len = s == 4 ? 0 : 6,
                           .name = s == 5 ? NULL : "order-42",
                           .name_len = s == 5 ? 0 : 8,
                           .version = s == 1 ? NULL : "4f1c09aa12be77d0",
                           .version_len = s == 1 ? 0 : 16};
        th_ok(ls_run_encode(&r, &v, &err), &err);
        ls_run_record back;
        th_ok(ls_run_decode(v.ptr, v.len, &back, &err), &err);
        assert_int_equal(back.status, r.status);
        assert_true(back.created_ms == r.created_ms && back.updated_ms == r.updated_ms);
        assert_true(back.last_seq == r.last_seq);
        assert_int_equal(back.steps_completed, r.steps_completed);
        assert_int_equal(back.attempts_failed, r.attempts_failed);
        assert_int_equal(back.type_len, r.type_len);
        if (r.type_len) assert_memory_equal(back.type, r.type, r.type_len);
        assert_int_equal(back.name_len, r.name_len);
        if (r.name_len) assert_memory_equal(back.name, r.name, r.name_len);
        assert_int_equal(back.version_len, r.version_len);
        if (r.version_len) assert_memory_equal(back.version, r.version, r.version_len);
        /* every truncation and one extra byte */
        for (size_t n = 0; n < v.len; n++)
            assert_int_equal(ls_run_decode(v.ptr, n, &back, &err), LS_ECORRUPT);
        th_ok(ls_buf_putc(&v, 1, &err), &err);
        assert_int_equal(ls_run_decode(v.ptr, v.len, &back, &err), LS_ECORRUPT);
        const char *name = ls_run_status_name((ls_run_status)s);
        ls_run_status ps;
        assert_int_equal(ls_run_status_parse(name, strlen(name), &ps), LS_OK);
        assert_int_equal(ps, s);
    }
    assert_string_equal(ls_run_status_name(LS_RUN_CANCELLED), "cancelled");
    assert_string_equal(ls_run_status_name((ls_run_status)0), "unknown");
    ls_run_record bad = {.status = (ls_run_status)9};
    assert_int_equal(ls_run_encode(&bad, &v, &err), LS_EINVAL);
    ls_run_record r;
    assert_int_equal(ls_run_decode("\x01\x06\x00\x00\x00\x00\x00\x00", 8, &r, &err), LS_ECORRUPT);
    assert_non_null(strstr(err.msg, "unknown status 6"));
    assert_int_equal(ls_run_decode("\x03", 1, &r, &err), LS_EFORMAT);
    /* A version 1 record (before versions) reads with no version. */
    th_ok(ls_run_decode("\x01\x01\x02\x02\x01\x00\x00\x01t\x01n", 11, &r, &err), &err);
    assert_int_equal(r.status, LS_RUN_RUNNING);
    assert_int_equal(r.version_len, 0);
    assert_memory_equal(r.type, "t", 1);
    assert_memory_equal(r.name, "n", 1);
    ls_buf_free(&v);
}

/* ---- allocation failures ---- */

typedef struct {
    ls_event ev;
    ls_id run;
} alloc_case;

static ls_rc encode_everything(void *ud)
{
    alloc_case *c = ud;
    ls_buf v = LS_BUF_INIT, k = LS_BUF_INIT, p = LS_BUF_INIT, rk = LS_BUF_INIT, rv = LS_BUF_INIT;
    ls_err err;
    ls_run_record r = {.status = LS_RUN_RUNNING, .type = "order", .type_len = 5};
    ls_rc rc = ls_event_encode(&c->ev, &v, &err);
    if (rc == LS_OK) rc = ls_history_key(&k, &c->run, c->ev.seq, &err);
    if (rc == LS_OK) rc = ls_history_prefix(&p, &c->run, &err);
    if (rc == LS_OK) rc = ls_run_key(&rk, &c->run, &err);
    if (rc == LS_OK) rc = ls_run_encode(&r, &rv, &err);
    if (rc != LS_OK) {
        assert_int_equal(err.code, rc);
        /* a failed call leaves its output untouched: empty here */
        assert_true(v.len == 0 || k.len == 0 || p.len == 0 || rk.len == 0 || rv.len == 0);
    }
    ls_buf_free(&v);
    ls_buf_free(&k);
    ls_buf_free(&p);
    ls_buf_free(&rk);
    ls_buf_free(&rv);
    return rc;
}

static void test_history_alloc_failures(void **state)
{
    (void)state;
    alloc_case c = {.ev = sample(), .run = make_id(3, 3)};
    long points = th_each_alloc_failure(encode_everything, &c);
    assert_int_equal(points, 5);

    /* a buffer that is already big enough is reused without allocating */
    ls_buf v = LS_BUF_INIT;
    ls_err err;
    th_ok(ls_event_encode(&c.ev, &v, &err), &err);
    th_fail_install();
    th_fail_after(0);
    th_ok(ls_event_encode(&c.ev, &v, &err), &err);
    th_ok(ls_history_key(&v, &c.run, 1, &err), &err);
    th_fail_uninstall();
    ls_buf_free(&v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_history_roundtrip_every_type),
        cmocka_unit_test(test_history_roundtrip_edge_values),
        cmocka_unit_test(test_history_encode_is_compact_and_replaces),
        cmocka_unit_test(test_history_encode_rejects_bad_events),
        cmocka_unit_test(test_history_decode_every_truncation),
        cmocka_unit_test(test_history_decode_rejects_trailing_bytes),
        cmocka_unit_test(test_history_decode_names_what_is_wrong),
        cmocka_unit_test(test_history_decode_survives_garbling),
        cmocka_unit_test(test_history_type_names),
        cmocka_unit_test(test_history_keys_sort_by_run_then_seq),
        cmocka_unit_test(test_history_key_parse_rejects_other_keys),
        cmocka_unit_test(test_history_prefix_scan_lists_one_run_in_order),
        cmocka_unit_test(test_history_run_record_roundtrip),
        cmocka_unit_test(test_history_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
