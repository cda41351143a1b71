/* SPDX-License-Identifier: MIT
 * Tests of native/core/base64.c: RFC 4648 vectors for base64 and base64url,
 * and the strictness JOSE needs (no padding, alphabet only, zero unused
 * bits, exact lengths). */
#include "helpers.h"

#include <stdlib.h>
#include <string.h>

#include "lodestone/ls_base64.h"

static const struct {
    const char *raw, *std, *url;
} rfc4648[] = {
    {"", "", ""},
    {"f", "Zg==", "Zg"},
    {"fo", "Zm8=", "Zm8"},
    {"foo", "Zm9v", "Zm9v"},
    {"foob", "Zm9vYg==", "Zm9vYg"},
    {"fooba", "Zm9vYmE=", "Zm9vYmE"},
    {"foobar", "Zm9vYmFy", "Zm9vYmFy"},
};

static void test_base64_rfc4648_vectors(void **state)
{
    (void)state;
    ls_err err;
    for (size_t i = 0; i < sizeof rfc4648 / sizeof rfc4648[0]; i++) {
        const char *raw = rfc4648[i].raw;
        ls_buf b = LS_BUF_INIT;
        th_ok(ls_base64_encode(raw, strlen(raw), &b, &err), &err);
        assert_int_equal(b.len, strlen(rfc4648[i].std));
        if (b.len) assert_string_equal((char *)b.ptr, rfc4648[i].std);
        assert_int_equal(ls_base64_encoded_len(strlen(raw)), strlen(rfc4648[i].std));
        ls_buf_clear(&b);
        th_ok(ls_base64url_encode(raw, strlen(raw), &b, &err), &err);
        assert_int_equal(b.len, strlen(rfc4648[i].url));
        if (b.len) assert_string_equal((char *)b.ptr, rfc4648[i].url);
        assert_int_equal(ls_base64url_encoded_len(strlen(raw)), strlen(rfc4648[i].url));

        ls_buf_clear(&b);
        th_ok(ls_base64_decode(rfc4648[i].std, strlen(rfc4648[i].std), &b, &err), &err);
        assert_int_equal(b.len, strlen(raw));
        if (b.len) assert_memory_equal(b.ptr, raw, b.len);
        ls_buf_clear(&b);
        th_ok(ls_base64url_decode(rfc4648[i].url, strlen(rfc4648[i].url), &b, &err), &err);
        assert_int_equal(b.len, strlen(raw));
        if (b.len) assert_memory_equal(b.ptr, raw, b.len);
        ls_buf_free(&b);
    }
}

static void test_base64_alphabets_differ_in_two_characters(void **state)
{
    (void)state;
    const unsigned char raw[] = {0xfb, 0xff, 0xbf};
    ls_buf b = LS_BUF_INIT;
    ls_err err;
    th_ok(ls_base64_encode(raw, 3, &b, &err), &err);
    assert_string_equal((char *)b.ptr, "+/+/");
    ls_buf_clear(&b);
    th_ok(ls_base64url_encode(raw, 3, &b, &err), &err);
    assert_string_equal((char *)b.ptr, "-_-_");
    ls_buf_clear(&b);
    th_ok(ls_base64url_decode("-_-_", 4, &b, &err), &err);
    assert_memory_equal(b.ptr, raw, 3);
    /* Each alphabet refuses the other's two characters. */
    assert_int_equal(ls_base64url_decode("+/+/", 4, &b, &err), LS_EINVAL);
    assert_string_equal(err.msg, "invalid base64url: character '+' at offset 0");
    assert_int_equal(ls_base64_decode("-_-_", 4, &b, &err), LS_EINVAL);
    assert_string_equal(err.msg, "invalid base64: character '-' at offset 0");
    ls_buf_free(&b);
}

static void test_base64url_rejects_padding(void **state)
{
    (void)state;
    ls_buf b = LS_BUF_INIT;
    ls_err err;
    assert_int_equal(ls_base64url_decode("Zg==", 4, &b, &err), LS_EINVAL);
    assert_string_equal(err.msg, "invalid base64url: padding '=' is not allowed (offset 2)");
    assert_int_equal(ls_base64url_decode("Zm8=", 4, &b, &err), LS_EINVAL);
    assert_int_equal(ls_base64url_decode("Zm9v=", 5, &b, &err), LS_EINVAL);
    assert_int_equal(b.len, 0);
    ls_buf_free(&b);
}

static void test_base64url_rejects_foreign_characters(void **state)
{
    (void)state;
    static const char *const bad[] = {"Zm9v Zm9v", "Zm9v\nZm9v", "Zm9v.Zm9v",  "Zm9v+m9v",
                                      "Zm9v/m9v",  "Zm9v\tYg",   "\xc3\xa9Zm9"};
    ls_buf b = LS_BUF_INIT;
    ls_err err;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(ls_base64url_decode(bad[i], strlen(bad[i]), &b, &err), LS_EINVAL);
        assert_non_null(strstr(err.msg, "invalid base64url"));
    }
    assert_int_equal(ls_base64url_decode("Zm9v\nZm9v", 9, &b, &err), LS_EINVAL);
    assert_string_equal(err.msg, "invalid base64url: byte 0x0a at offset 4");
    /* An embedded NUL is a foreign byte too, not the end of the text. */
    assert_int_equal(ls_base64url_decode("Zm9v\0Zm9", 8, &b, &err), LS_EINVAL);
    assert_string_equal(err.msg, "invalid base64url: byte 0x00 at offset 4");
    /* In the short final group as well. */
    assert_int_equal(ls_base64url_decode("Zm9vY*", 6, &b, &err), LS_EINVAL);
    assert_string_equal(err.msg, "invalid base64url: character '*' at offset 5");
    assert_int_equal(b.len, 0);
    ls_buf_free(&b);
}

static void test_base64url_rejects_impossible_lengths(void **state)
{
    (void)state;
    ls_buf b = LS_BUF_INIT;
    ls_err err;
    assert_int_equal(ls_base64url_decode("Z", 1, &b, &err), LS_EINVAL);
    assert_string_equal(err.msg, "invalid base64url: length 1 leaves a partial byte");
    assert_int_equal(ls_base64url_decode("Zm9vY", 5, &b, &err), LS_EINVAL);
    ls_buf_free(&b);
}

static void test_base64url_rejects_nonzero_unused_bits(void **state)
{
    (void)state;
    ls_buf b = LS_BUF_INIT;
    ls_err err;
    /* "Zg" is the one spelling of "f"; "Zh".."Zv" decode to it too with
     * non-zero spare bits. */
    assert_int_equal(ls_base64url_decode("Zh", 2, &b, &err), LS_EINVAL);
    assert_string_equal(err.msg,
                        "invalid base64url: non-zero unused bits in the last character (offset 1)");
    assert_int_equal(ls_base64url_decode("Zm9", 3, &b, &err), LS_EINVAL); /* "Zm8" is "fo" */
    assert_int_equal(ls_base64_decode("Zh==", 4, &b, &err), LS_EINVAL);
    assert_int_equal(ls_base64_decode("Zm9=", 4, &b, &err), LS_EINVAL);
    th_ok(ls_base64url_decode("Zm8", 3, &b, &err), &err);
    assert_memory_equal(b.ptr, "fo", 2);
    ls_buf_free(&b);
}

static void test_base64_requires_exact_padding(void **state)
{
    (void)state;
    ls_buf b = LS_BUF_INIT;
    ls_err err;
    assert_int_equal(ls_base64_decode("Zg", 2, &b, &err), LS_EINVAL);
    assert_string_equal(err.msg, "invalid base64: length 2 is not a multiple of 4");
    assert_int_equal(ls_base64_decode("Zg=", 3, &b, &err), LS_EINVAL);
    assert_int_equal(ls_base64_decode("Z===", 4, &b, &err), LS_EINVAL);
    assert_int_equal(ls_base64_decode("====", 4, &b, &err), LS_EINVAL);
    assert_int_equal(ls_base64_decode("Zg==Zg==", 8, &b, &err), LS_EINVAL);
    assert_string_equal(err.msg, "invalid base64: padding '=' before the end (offset 2)");
    assert_int_equal(ls_base64_decode("Zm9v\r\n", 6, &b, &err), LS_EINVAL);
    assert_int_equal(b.len, 0);
    ls_buf_free(&b);
}

static void test_base64_failure_leaves_buffer_unchanged(void **state)
{
    (void)state;
    ls_buf b = LS_BUF_INIT;
    ls_err err;
    th_ok(ls_buf_set(&b, "keep", 4, &err), &err);
    assert_int_equal(ls_base64url_decode("Zm9vYmFy!", 9, &b, &err), LS_EINVAL);
    assert_int_equal(b.len, 4);
    assert_string_equal((char *)b.ptr, "keep");
    /* Success appends. */
    th_ok(ls_base64url_decode("Zm9v", 4, &b, &err), &err);
    assert_string_equal((char *)b.ptr, "keepfoo");
    ls_buf_free(&b);
}

static void test_base64url_decode_into_checks_room(void **state)
{
    (void)state;
    unsigned char out[4];
    size_t n = 99;
    ls_err err;
    th_ok(ls_base64url_decode_into("Zm9vYg", 6, out, sizeof out, &n, &err), &err);
    assert_int_equal(n, 4);
    assert_memory_equal(out, "foob", 4);
    assert_int_equal(ls_base64url_decode_into("Zm9vYmE", 7, out, sizeof out, &n, &err), LS_EINVAL);
    assert_non_null(strstr(err.msg, "too long"));
    assert_int_equal(ls_base64_decoded_max(0), 0);
    assert_int_equal(ls_base64_decoded_max(2), 1);
    assert_int_equal(ls_base64_decoded_max(3), 2);
    assert_int_equal(ls_base64_decoded_max(4), 3);
    assert_int_equal(ls_base64_decoded_max(8), 6);
}

static void test_base64_round_trips_every_length(void **state)
{
    (void)state;
    unsigned char raw[300];
    for (size_t i = 0; i < sizeof raw; i++) raw[i] = (unsigned char)(i * 37 + 11);
    ls_buf enc = LS_BUF_INIT, dec = LS_BUF_INIT;
    ls_err err;
    for (size_t n = 0; n <= sizeof raw; n++) {
        ls_buf_clear(&enc);
        ls_buf_clear(&dec);
        th_ok(ls_base64url_encode(raw, n, &enc, &err), &err);
        th_ok(ls_base64url_decode((char *)enc.ptr, enc.len, &dec, &err), &err);
        assert_int_equal(dec.len, n);
        if (n) assert_memory_equal(dec.ptr, raw, n);
        ls_buf_clear(&enc);
        ls_buf_clear(&dec);
        th_ok(ls_base64_encode(raw, n, &enc, &err), &err);
        th_ok(ls_base64_decode((char *)enc.ptr, enc.len, &dec, &err), &err);
        assert_int_equal(dec.len, n);
        if (n) assert_memory_equal(dec.ptr, raw, n);
    }
    ls_buf_free(&enc);
    ls_buf_free(&dec);
}

static ls_rc codec_alloc_run(void *ud)
{
    (void)ud;
    ls_buf b = LS_BUF_INIT;
    ls_err err;
    ls_rc rc = ls_base64url_encode("foobar", 6, &b, &err);
    if (rc == LS_OK) rc = ls_base64_encode("foobar", 6, &b, &err);
    ls_buf d = LS_BUF_INIT;
    if (rc == LS_OK) rc = ls_base64url_decode("Zm9vYmFy", 8, &d, &err);
    ls_buf e = LS_BUF_INIT;
    if (rc == LS_OK) rc = ls_base64_decode("Zm9vYmE=", 8, &e, &err);
    ls_buf_free(&b);
    ls_buf_free(&d);
    ls_buf_free(&e);
    return rc;
}

static void test_base64_reports_enomem(void **state)
{
    (void)state;
    assert_int_equal(th_each_alloc_failure(codec_alloc_run, NULL), 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64_rfc4648_vectors),
        cmocka_unit_test(test_base64_alphabets_differ_in_two_characters),
        cmocka_unit_test(test_base64url_rejects_padding),
        cmocka_unit_test(test_base64url_rejects_foreign_characters),
        cmocka_unit_test(test_base64url_rejects_impossible_lengths),
        cmocka_unit_test(test_base64url_rejects_nonzero_unused_bits),
        cmocka_unit_test(test_base64_requires_exact_padding),
        cmocka_unit_test(test_base64_failure_leaves_buffer_unchanged),
        cmocka_unit_test(test_base64url_decode_into_checks_room),
        cmocka_unit_test(test_base64_round_trips_every_length),
        cmocka_unit_test(test_base64_reports_enomem),
    };
    return cmocka_run_group_tests_name("base64", tests, NULL, NULL);
}
