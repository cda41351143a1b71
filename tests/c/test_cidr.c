/* SPDX-License-Identifier: MIT
 * Tests of CIDR sets and client address resolution (native/policy/cidr.c):
 * IPv4 and IPv6 entries, IPv4-mapped addresses, prefix boundaries, strict
 * parsing with named errors, merging, a large random set checked against a
 * linear scan, X-Forwarded-For spoofing cases and allocation failures.
 */
#define _GNU_SOURCE 1
#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lodestone/ls_cidr.h"

#define NELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* ---- helpers ---- */

static ls_cidr_set_t *set_of(const char *const *entries, size_t n)
{
    ls_cidr_set_t *set = NULL;
    ls_err err = {0};
    th_ok(ls_cidr_set_new(&set, &err), &err);
    th_ok(ls_cidr_set_add_list(set, entries, n, &err), &err);
    return set;
}

static int has(const ls_cidr_set_t *set, const char *addr)
{
    int found = -1;
    ls_err err = {0};
    th_ok(ls_cidr_set_contains(set, addr, strlen(addr), &found, &err), &err);
    return found;
}

static void expect_members(const ls_cidr_set_t *set, const char *const *in, size_t nin,
                           const char *const *out, size_t nout)
{
    for (size_t i = 0; i < nin; i++)
        if (has(set, in[i]) != 1) fail_msg("%s should be in the set", in[i]);
    for (size_t i = 0; i < nout; i++)
        if (has(set, out[i]) != 0) fail_msg("%s should not be in the set", out[i]);
}

static void expect_bad_entry(const char *entry, const char *needle)
{
    ls_cidr_set_t *set = NULL;
    ls_err err = {0};
    th_ok(ls_cidr_set_new(&set, &err), &err);
    th_ok(ls_cidr_set_add(set, "192.0.2.0/24", 12, &err), &err);
    ls_rc rc = ls_cidr_set_add(set, entry, strlen(entry), &err);
    if (rc != LS_EINVAL) fail_msg("\"%s\" gave %s, expected EINVAL", entry, ls_rc_name(rc));
    char quoted[128];
    snprintf(quoted, sizeof quoted, "\"%s\"", entry);
    if (strstr(err.msg, quoted) == NULL)
        fail_msg("message \"%s\" does not name the entry %s", err.msg, quoted);
    if (strstr(err.msg, needle) == NULL)
        fail_msg("message \"%s\" does not say \"%s\"", err.msg, needle);
    assert_int_equal(ls_cidr_set_ranges(set), 1); /* unchanged */
    ls_cidr_set_free(set);
}

static const char *client(const char *peer, const char *xff, const ls_cidr_set_t *trusted)
{
    static char out[LS_CIDR_TEXTMAX];
    ls_err err = {0};
    th_ok(ls_cidr_client_addr(peer, strlen(peer), xff, xff ? strlen(xff) : 0, trusted, out, NULL,
                              &err),
          &err);
    return out;
}

/* ---- membership ---- */

static void test_cidr_ipv4_entries(void **state)
{
    (void)state;
    const char *entries[] = {"10.0.0.0/8", "192.168.1.7", "172.16.0.0/12"};
    ls_cidr_set_t *set = set_of(entries, NELEMS(entries));
    const char *in[] = {"10.0.0.0",    "10.1.2.3",   "10.255.255.255",
                        "192.168.1.7", "172.16.0.0", "172.31.255.255"};
    const char *out[] = {
        "9.255.255.255", "11.0.0.0", "192.168.1.6",     "192.168.1.8", "172.15.255.255",
        "172.32.0.0",    "0.0.0.0",  "255.255.255.255", "::1",         "2001:db8::1"};
    expect_members(set, in, NELEMS(in), out, NELEMS(out));
    assert_int_equal(ls_cidr_set_ranges(set), 3);
    ls_cidr_set_free(set);
}

static void test_cidr_ipv6_entries(void **state)
{
    (void)state;
    const char *entries[] = {"2001:db8::/32", "::1/128", "fe80::/10"};
    ls_cidr_set_t *set = set_of(entries, NELEMS(entries));
    const char *in[] = {"2001:db8::",
                        "2001:db8::1",
                        "2001:DB8:0:0:0:0:0:5",
                        "2001:0db8:0000::1",
                        "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
                        "::1",
                        "0:0:0:0:0:0:0:1",
                        "fe80::1",
                        "febf:ffff::"};
    const char *out[] = {"2001:db7:ffff:ffff:ffff:ffff:ffff:ffff",
                         "2001:db9::",
                         "::",
                         "::2",
                         "fec0::",
                         "127.0.0.1",
                         "::ffff:127.0.0.1"};
    expect_members(set, in, NELEMS(in), out, NELEMS(out));
    ls_cidr_set_free(set);
}

static void test_cidr_mapped_addresses(void **state)
{
    (void)state;
    const char *v4[] = {"10.0.0.0/8"};
    ls_cidr_set_t *set = set_of(v4, 1);
    const char *in[] = {"10.1.2.3", "::ffff:10.1.2.3", "::FFFF:a01:203", "0:0:0:0:0:ffff:10.0.0.0"};
    const char *out[] = {"::10.1.2.3", "::ffff:11.0.0.0", "64:ff9b::10.1.2.3", "::a01:203"};
    expect_members(set, in, NELEMS(in), out, NELEMS(out));
    ls_cidr_set_free(set);

    /* an IPv6 entry in mapped form matches plain IPv4 addresses */
    const char *v6[] = {"::ffff:192.0.2.0/120"};
    set = set_of(v6, 1);
    const char *in6[] = {"192.0.2.0", "192.0.2.255", "::ffff:192.0.2.9"};
    const char *out6[] = {"192.0.3.0", "::192.0.2.1"};
    expect_members(set, in6, NELEMS(in6), out6, NELEMS(out6));
    ls_cidr_set_free(set);

    const char *all4[] = {"::ffff:0:0/96"};
    set = set_of(all4, 1);
    assert_int_equal(has(set, "0.0.0.0"), 1);
    assert_int_equal(has(set, "255.255.255.255"), 1);
    assert_int_equal(has(set, "::fffe:ffff:ffff"), 0);
    assert_int_equal(has(set, "::1:0:0:0"), 0);
    ls_cidr_set_free(set);
}

static void test_cidr_prefix_boundaries(void **state)
{
    (void)state;
    const char *any4[] = {"0.0.0.0/0"};
    ls_cidr_set_t *set = set_of(any4, 1);
    const char *in4[] = {"0.0.0.0", "128.0.0.1", "255.255.255.255", "::ffff:1.2.3.4"};
    const char *out4[] = {"::", "::1", "2001:db8::1", "ffff::"};
    expect_members(set, in4, NELEMS(in4), out4, NELEMS(out4));
    ls_cidr_set_free(set);

    const char *any6[] = {"::/0"};
    set = set_of(any6, 1);
    const char *in6[] = {"::", "1.2.3.4", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "8000::"};
    expect_members(set, in6, NELEMS(in6), NULL, 0);
    ls_cidr_set_free(set);

    const char *hosts[] = {"0.0.0.0/32", "255.255.255.255/32", "::/128",
                           "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"};
    set = set_of(hosts, NELEMS(hosts));
    const char *inh[] = {"0.0.0.0", "255.255.255.255",
                         "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"};
    const char *outh[] = {"0.0.0.1", "255.255.255.254", "::1",
                          "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"};
    expect_members(set, inh, NELEMS(inh), outh, NELEMS(outh));
    ls_cidr_set_free(set);

    /* around the 64-bit halves and odd lengths */
    const char *mid[] = {"2001:db8:0:1::/64", "2001:db8:0:2:8000::/65", "8000::/1",
                         "192.0.2.128/25",    "198.51.100.0/31",        "2001:db8:1::/127"};
    set = set_of(mid, NELEMS(mid));
    const char *inm[] = {"2001:db8:0:1::",
                         "2001:db8:0:1:ffff:ffff:ffff:ffff",
                         "2001:db8:0:2:8000::",
                         "2001:db8:0:2:ffff:ffff:ffff:ffff",
                         "8000::",
                         "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                         "192.0.2.128",
                         "192.0.2.255",
                         "198.51.100.1",
                         "2001:db8:1::1"};
    const char *outm[] = {"2001:db8:0:0:ffff:ffff:ffff:ffff",
                          "2001:db8:0:2:7fff:ffff:ffff:ffff",
                          "7fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                          "192.0.2.127",
                          "198.51.100.2",
                          "2001:db8:1::2"};
    expect_members(set, inm, NELEMS(inm), outm, NELEMS(outm));
    ls_cidr_set_free(set);
}

static void test_cidr_strict_parsing_names_entry(void **state)
{
    (void)state;
    expect_bad_entry("10.0.0.1/8", "host bits set, did you mean 10.0.0.0/8?");
    expect_bad_entry("192.168.1.7/24", "did you mean 192.168.1.0/24?");
    expect_bad_entry("2001:db8::1/32", "did you mean 2001:db8::/32?");
    expect_bad_entry("::ffff:10.0.0.1/104", "did you mean ::ffff:10.0.0.0/104?");
    expect_bad_entry("0.0.0.1/0", "did you mean 0.0.0.0/0?");
    expect_bad_entry("10.0.0.0/33", "out of range (0-32 for IPv4)");
    expect_bad_entry("::/129", "out of range (0-128 for IPv6)");
    expect_bad_entry("10.0.0.0/", "prefix length");
    expect_bad_entry("10.0.0.0/08", "prefix length");
    expect_bad_entry("10.0.0.0/+8", "prefix length");
    expect_bad_entry("10.0.0.0/-1", "prefix length");
    expect_bad_entry("10.0.0.0/8 ", "prefix length");
    expect_bad_entry("::1/128/1", "prefix length");
    expect_bad_entry("::/0128", "prefix length");
    expect_bad_entry("010.0.0.0/8", "not an IP address"); /* no octal ambiguity */
    expect_bad_entry("10.0.0/8", "not an IP address");
    expect_bad_entry("10.0.0.0.0", "not an IP address");
    expect_bad_entry("1.2.3.256", "not an IP address");
    expect_bad_entry(" 10.0.0.0/8", "not an IP address");
    expect_bad_entry("0x0a000000", "not an IP address");
    expect_bad_entry("1.2.3.4:80", "not an IP address");
    expect_bad_entry("[::1]", "not an IP address");
    expect_bad_entry("2001:db8:::1", "not an IP address");
    expect_bad_entry("2001:db8::g", "not an IP address");
    expect_bad_entry("1:2:3:4:5:6:7:8:9", "not an IP address");
    expect_bad_entry("fe80::1%eth0", "zone ids");
    expect_bad_entry("fe80::%1/64", "zone ids");
    expect_bad_entry("example.com", "not an IP address");
    expect_bad_entry("", "empty");
    expect_bad_entry("/8", "empty");
    expect_bad_entry("1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa", "too long");

    ls_cidr_set_t *set = NULL;
    ls_err err = {0};
    th_ok(ls_cidr_set_new(&set, &err), &err);
    assert_int_equal(ls_cidr_set_add(set, "10.0.0.0/8\0junk", 15, &err), LS_EINVAL);
    assert_int_equal(ls_cidr_set_add(NULL, "10.0.0.0/8", 10, &err), LS_EINVAL);
    assert_int_equal(ls_cidr_set_add(set, NULL, 0, &err), LS_EINVAL);
    assert_int_equal(ls_cidr_set_add(set, "10.0.0.0/8", 4, NULL), LS_EINVAL); /* "10.0" */
    th_ok(ls_cidr_set_add(set, "10.0.0.0/8 and more", 10, &err), &err);       /* length, not NUL */
    assert_int_equal(has(set, "10.9.9.9"), 1);
    ls_cidr_set_free(set);
    ls_cidr_set_free(NULL);
}

static void test_cidr_add_list_all_or_nothing(void **state)
{
    (void)state;
    ls_cidr_set_t *set = NULL;
    ls_err err = {0};
    th_ok(ls_cidr_set_new(&set, &err), &err);
    const char *bad[] = {"10.0.0.0/8", "192.168.0.0/16", "172.16.0.1/12", "::1"};
    assert_int_equal(ls_cidr_set_add_list(set, bad, NELEMS(bad), &err), LS_EINVAL);
    assert_non_null(strstr(err.msg, "entry 3"));
    assert_non_null(strstr(err.msg, "\"172.16.0.1/12\""));
    assert_non_null(strstr(err.msg, "did you mean 172.16.0.0/12?"));
    assert_int_equal(ls_cidr_set_ranges(set), 0);
    assert_int_equal(has(set, "10.1.1.1"), 0);

    const char *nul[] = {"10.0.0.0/8", NULL};
    assert_int_equal(ls_cidr_set_add_list(set, nul, 2, &err), LS_EINVAL);
    assert_non_null(strstr(err.msg, "entry 2"));
    assert_int_equal(ls_cidr_set_add_list(set, NULL, 1, &err), LS_EINVAL);
    th_ok(ls_cidr_set_add_list(set, NULL, 0, &err), &err);
    assert_int_equal(ls_cidr_set_ranges(set), 0);
    assert_int_equal(has(set, "10.1.1.1"), 0);

    const char *good[] = {"10.0.0.0/8", "192.168.0.0/16", "172.16.0.0/12", "::1"};
    th_ok(ls_cidr_set_add_list(set, good, NELEMS(good), &err), &err);
    assert_int_equal(ls_cidr_set_ranges(set), 4);
    assert_int_equal(has(set, "172.20.0.1"), 1);
    ls_cidr_set_free(set);
}

static void test_cidr_merges_overlapping_and_adjacent(void **state)
{
    (void)state;
    const char *halves[] = {"10.128.0.0/9", "10.0.0.0/9"};
    ls_cidr_set_t *set = set_of(halves, NELEMS(halves));
    assert_int_equal(ls_cidr_set_ranges(set), 1); /* 10.0.0.0/8 */

    ls_err err = {0};
    th_ok(ls_cidr_set_add(set, "10.1.0.0/16", 11, &err), &err); /* inside */
    th_ok(ls_cidr_set_add(set, "10.0.0.0/8", 10, &err), &err);  /* duplicate */
    assert_int_equal(ls_cidr_set_ranges(set), 1);
    th_ok(ls_cidr_set_add(set, "11.0.0.0/8", 10, &err), &err); /* adjacent */
    assert_int_equal(ls_cidr_set_ranges(set), 1);
    th_ok(ls_cidr_set_add(set, "13.0.0.0/8", 10, &err), &err); /* gap */
    assert_int_equal(ls_cidr_set_ranges(set), 2);
    assert_int_equal(has(set, "12.0.0.0"), 0);
    th_ok(ls_cidr_set_add(set, "12.0.0.0/8", 10, &err), &err); /* closes it */
    assert_int_equal(ls_cidr_set_ranges(set), 1);
    th_ok(ls_cidr_set_add(set, "8.0.0.0/7", 9, &err), &err); /* covers the front */
    assert_int_equal(ls_cidr_set_ranges(set), 1);
    const char *in[] = {"8.0.0.0", "9.255.255.255", "11.5.5.5", "13.255.255.255"};
    const char *out[] = {"7.255.255.255", "14.0.0.0"};
    expect_members(set, in, NELEMS(in), out, NELEMS(out));
    th_ok(ls_cidr_set_add(set, "0.0.0.0/0", 9, &err), &err); /* swallows all IPv4 */
    assert_int_equal(ls_cidr_set_ranges(set), 1);
    th_ok(ls_cidr_set_add(set, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 39, &err), &err);
    th_ok(ls_cidr_set_add(set, "ffff::/16", 9, &err), &err); /* up to the top address */
    assert_int_equal(ls_cidr_set_ranges(set), 2);
    th_ok(ls_cidr_set_add(set, "::/0", 4, &err), &err);
    assert_int_equal(ls_cidr_set_ranges(set), 1);
    assert_int_equal(has(set, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), 1);
    ls_cidr_set_free(set);

    set = set_of(NULL, 0);
    assert_int_equal(ls_cidr_set_ranges(set), 0);
    assert_int_equal(has(set, "10.0.0.1"), 0);
    ls_cidr_set_free(set);
    assert_int_equal(ls_cidr_set_ranges(NULL), 0);
}

/* ---- a large random set against a linear scan ---- */

static uint64_t rng_state;

static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

struct ref {
    uint8_t net[16];
    unsigned plen; /* over the 128-bit form */
};

static int ref_match(const struct ref *r, const uint8_t a[16])
{
    unsigned full = r->plen / 8, rest = r->plen % 8;
    if (memcmp(r->net, a, full) != 0) return 0;
    if (rest == 0) return 1;
    uint8_t m = (uint8_t)(0xff << (8 - rest));
    return (r->net[full] & m) == (a[full] & m);
}

static void random_addr(uint8_t a[16], int v4)
{
    uint64_t x = rng(), y = rng();
    memcpy(a, &x, 8);
    memcpy(a + 8, &y, 8);
    if (v4) {
        memset(a, 0, 10);
        a[10] = a[11] = 0xff;
        if (rng() % 2) a[12] = 10; /* crowd some ranges */
    } else if (rng() % 2) {
        a[0] = 0x20, a[1] = 0x01, a[2] = 0x0d, a[3] = 0xb8;
    }
}

static void test_cidr_large_set_matches_linear_scan(void **state)
{
    (void)state;
    enum { N = 10000, PROBES = 5000, ONE_BY_ONE = 1000 };
    rng_state = 0x5EED1234;
    struct ref *refs = calloc(N, sizeof *refs);
    char(*text)[64] = calloc(N, sizeof *text);
    const char **entries = calloc(N, sizeof *entries);
    assert_non_null(refs);
    for (int i = 0; i < N; i++) {
        int v4 = (int)(rng() % 2);
        uint8_t a[16];
        random_addr(a, v4);
        unsigned plen = v4 ? 8 + (unsigned)(rng() % 25) : 16 + (unsigned)(rng() % 113);
        unsigned total = v4 ? plen + 96 : plen;
        for (unsigned b = total; b < 128; b++) a[b / 8] &= (uint8_t) ~(0x80 >> (b % 8));
        memcpy(refs[i].net, a, 16);
        refs[i].plen = total;
        char addr[LS_CIDR_TEXTMAX];
        ls_cidr_format_addr(a, addr);
        snprintf(text[i], sizeof text[i], "%s/%u", addr, plen);
        entries[i] = text[i];
    }
    ls_cidr_set_t *set = set_of(entries, N);

    /* a part of it built one entry at a time, in reverse order, against the
     * same part added as a list */
    ls_cidr_set_t *one = NULL, *part = set_of(entries, ONE_BY_ONE);
    ls_err err = {0};
    th_ok(ls_cidr_set_new(&one, &err), &err);
    for (int i = ONE_BY_ONE - 1; i >= 0; i--)
        th_ok(ls_cidr_set_add(one, entries[i], strlen(entries[i]), &err), &err);
    assert_int_equal(ls_cidr_set_ranges(one), ls_cidr_set_ranges(part));

    int hits = 0;
    for (int p = 0; p < PROBES; p++) {
        uint8_t a[16];
        if (p % 4 == 0) {
            /* the edges of an entry: its first and last address and beyond */
            const struct ref *r = &refs[rng() % N];
            memcpy(a, r->net, 16);
            if (p % 8 == 0)
                for (unsigned b = r->plen; b < 128; b++) a[b / 8] |= (uint8_t)(0x80 >> (b % 8));
            if (rng() % 2) {
                int i = 15;
                if (p % 8 == 0)
                    while (i >= 0 && ++a[i] == 0) i--; /* one past the last */
                else
                    while (i >= 0 && a[i]-- == 0) i--; /* one before the first */
            }
        } else {
            random_addr(a, (int)(rng() % 2));
        }
        int want = 0;
        for (int i = 0; i < N && !want; i++) want = ref_match(&refs[i], a);
        int got = ls_cidr_set_contains_addr(set, a);
        if (got != want) {
            char t[LS_CIDR_TEXTMAX];
            ls_cidr_format_addr(a, t);
            fail_msg("%s: set says %d, linear scan says %d", t, got, want);
        }
        assert_int_equal(ls_cidr_set_contains_addr(one, a), ls_cidr_set_contains_addr(part, a));
        hits += want;
    }
    print_message("large set: %zu ranges, %d of %d probes inside\n", ls_cidr_set_ranges(set), hits,
                  PROBES);
    assert_true(hits > PROBES / 10 && hits < PROBES * 9 / 10);
    ls_cidr_set_free(one);
    ls_cidr_set_free(part);
    ls_cidr_set_free(set);
    free(entries);
    free(text);
    free(refs);
}

/* ---- addresses ---- */

static void test_cidr_parse_and_format_addresses(void **state)
{
    (void)state;
    static const struct {
        const char *in, *canonical;
    } cases[] = {
        {"192.0.2.1", "192.0.2.1"},
        {"::ffff:192.0.2.1", "192.0.2.1"},
        {"::FFFF:C000:0201", "192.0.2.1"},
        {"2001:DB8:0:0:0:0:0:1", "2001:db8::1"},
        {"2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"},
        {"0:0:0:0:0:0:0:0", "::"},
        {"::1", "::1"},
        {"fe80::0001", "fe80::1"},
        {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
    };
    for (size_t i = 0; i < NELEMS(cases); i++) {
        uint8_t a[LS_CIDR_ADDRBYTES];
        char out[LS_CIDR_TEXTMAX];
        ls_err err = {0};
        th_ok(ls_cidr_parse_addr(cases[i].in, strlen(cases[i].in), a, &err), &err);
        ls_cidr_format_addr(a, out);
        assert_string_equal(out, cases[i].canonical);
    }
    uint8_t a[LS_CIDR_ADDRBYTES];
    ls_err err = {0};
    assert_int_equal(ls_cidr_parse_addr("fe80::1%eth0", 12, a, &err), LS_EINVAL);
    assert_non_null(strstr(err.msg, "\"fe80::1%eth0\": zone ids"));
    assert_int_equal(ls_cidr_parse_addr("10.0.0.0/8", 10, a, &err), LS_EINVAL);
    assert_non_null(strstr(err.msg, "not an IP address"));
    assert_int_equal(ls_cidr_parse_addr(NULL, 0, a, &err), LS_EINVAL);

    const char *v4[] = {"10.0.0.0/8"};
    ls_cidr_set_t *set = set_of(v4, 1);
    int found = -1;
    assert_int_equal(ls_cidr_set_contains(set, "10.0.0.1%eth0", 13, &found, &err), LS_EINVAL);
    assert_int_equal(found, 0);
    assert_int_equal(ls_cidr_set_contains(set, "10.0.0.1 ", 9, &found, &err), LS_EINVAL);
    assert_int_equal(ls_cidr_set_contains(set, "", 0, &found, &err), LS_EINVAL);
    assert_int_equal(ls_cidr_set_contains(set, "10.0.0.1", 8, NULL, &err), LS_EINVAL);
    th_ok(ls_cidr_set_contains(NULL, "10.0.0.1", 8, &found, &err), &err); /* NULL set: empty */
    assert_int_equal(found, 0);
    ls_cidr_set_free(set);
}

/* ---- client address behind proxies ---- */

static void test_cidr_client_untrusted_peer_ignores_xff(void **state)
{
    (void)state;
    const char *proxies[] = {"127.0.0.1", "10.0.0.0/8"};
    ls_cidr_set_t *trusted = set_of(proxies, NELEMS(proxies));
    assert_string_equal(client("203.0.113.9", "1.1.1.1", trusted), "203.0.113.9");
    assert_string_equal(client("203.0.113.9", "10.0.0.1, 127.0.0.1", trusted), "203.0.113.9");
    assert_string_equal(client("203.0.113.9", NULL, trusted), "203.0.113.9");
    assert_string_equal(client("2001:db8::9", "1.1.1.1", trusted), "2001:db8::9");
    /* no trusted set: XFF is never believed */
    assert_string_equal(client("127.0.0.1", "1.1.1.1", NULL), "127.0.0.1");
    ls_cidr_set_t *empty = set_of(NULL, 0);
    assert_string_equal(client("127.0.0.1", "1.1.1.1", empty), "127.0.0.1");
    ls_cidr_set_free(empty);
    ls_cidr_set_free(trusted);
}

static void test_cidr_client_trusted_proxy_chain(void **state)
{
    (void)state;
    const char *proxies[] = {"127.0.0.1", "10.0.0.0/8", "2001:db8:ffff::/48"};
    ls_cidr_set_t *trusted = set_of(proxies, NELEMS(proxies));
    assert_string_equal(client("127.0.0.1", "198.51.100.7", trusted), "198.51.100.7");
    assert_string_equal(client("127.0.0.1", NULL, trusted), "127.0.0.1");
    assert_string_equal(client("127.0.0.1", "198.51.100.7, 10.1.1.1, 10.2.2.2", trusted),
                        "198.51.100.7");
    assert_string_equal(client("127.0.0.1", "198.51.100.7,10.1.1.1", trusted), "198.51.100.7");
    assert_string_equal(client("127.0.0.1", "\t198.51.100.7 ,\t 10.1.1.1 ", trusted),
                        "198.51.100.7");
    /* every hop trusted: the leftmost is the client */
    assert_string_equal(client("127.0.0.1", "10.0.0.5, 10.0.0.6", trusted), "10.0.0.5");
    /* IPv6 and mapped forms, normalised */
    assert_string_equal(client("::ffff:127.0.0.1", "2001:DB8::1, 2001:db8:ffff::2", trusted),
                        "2001:db8::1");
    assert_string_equal(client("2001:db8:ffff::1", " ::ffff:203.0.113.9 ", trusted), "203.0.113.9");
    assert_string_equal(client("::ffff:203.0.113.9", NULL, trusted), "203.0.113.9");

    char out[LS_CIDR_TEXTMAX];
    uint8_t bin[LS_CIDR_ADDRBYTES];
    ls_err err = {0};
    th_ok(ls_cidr_client_addr("127.0.0.1", 9, "2001:db8::1", 11, trusted, out, bin, &err), &err);
    static const uint8_t want[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    assert_memory_equal(bin, want, 16);
    /* lengths are honoured: the header need not end in NUL */
    th_ok(ls_cidr_client_addr("127.0.0.1", 9, "198.51.100.7, 10.1.1.1XYZ", 22, trusted, out, NULL,
                              &err),
          &err);
    assert_string_equal(out, "198.51.100.7");
    ls_cidr_set_free(trusted);
}

static void test_cidr_client_spoofed_xff_ignored(void **state)
{
    (void)state;
    const char *proxies[] = {"127.0.0.1", "10.0.0.0/8"};
    ls_cidr_set_t *trusted = set_of(proxies, NELEMS(proxies));
    /* the client prepends addresses; the proxy appends the real one */
    assert_string_equal(client("127.0.0.1", "1.1.1.1, 203.0.113.5", trusted), "203.0.113.5");
    assert_string_equal(client("127.0.0.1", "127.0.0.1, 203.0.113.5", trusted), "203.0.113.5");
    assert_string_equal(client("127.0.0.1", "10.9.9.9, 198.51.100.7, 10.1.1.1", trusted),
                        "198.51.100.7");
    /* garbage the client wrote to the left is never reached */
    assert_string_equal(client("127.0.0.1", "<script>, ::1%lo, 203.0.113.5", trusted),
                        "203.0.113.5");
    ls_cidr_set_free(trusted);
}

static void test_cidr_client_malformed_stops_at_last_trusted(void **state)
{
    (void)state;
    const char *proxies[] = {"127.0.0.1", "10.0.0.0/8"};
    ls_cidr_set_t *trusted = set_of(proxies, NELEMS(proxies));
    /* what is left of a malformed entry may come from anyone */
    assert_string_equal(client("127.0.0.1", "6.6.6.6, unknown, 10.1.1.1", trusted), "10.1.1.1");
    assert_string_equal(client("127.0.0.1", "6.6.6.6, unknown", trusted), "127.0.0.1");
    assert_string_equal(client("127.0.0.1", "6.6.6.6,,10.1.1.1", trusted), "10.1.1.1");
    assert_string_equal(client("127.0.0.1", "6.6.6.6,", trusted), "127.0.0.1");
    assert_string_equal(client("127.0.0.1", "6.6.6.6, 1.2.3.4:5678", trusted), "127.0.0.1");
    assert_string_equal(client("127.0.0.1", "6.6.6.6, [2001:db8::1]", trusted), "127.0.0.1");
    assert_string_equal(client("127.0.0.1", "6.6.6.6, fe80::1%eth0", trusted), "127.0.0.1");
    assert_string_equal(client("127.0.0.1", "6.6.6.6, 10.0.0.0/8", trusted), "127.0.0.1");
    assert_string_equal(client("127.0.0.1", "", trusted), "127.0.0.1");
    assert_string_equal(client("127.0.0.1", "   ", trusted), "127.0.0.1");
    assert_string_equal(client("127.0.0.1", ",", trusted), "127.0.0.1");
    char longest[300];
    memset(longest, '1', sizeof longest - 1);
    longest[sizeof longest - 1] = '\0';
    assert_string_equal(client("127.0.0.1", longest, trusted), "127.0.0.1");
    ls_cidr_set_free(trusted);
}

static void test_cidr_client_bad_peer_einval(void **state)
{
    (void)state;
    char out[LS_CIDR_TEXTMAX] = "x";
    ls_err err = {0};
    assert_int_equal(ls_cidr_client_addr("", 0, NULL, 0, NULL, out, NULL, &err), LS_EINVAL);
    assert_non_null(strstr(err.msg, "peer"));
    assert_string_equal(out, "");
    assert_int_equal(ls_cidr_client_addr("fe80::1%eth0", 12, NULL, 0, NULL, out, NULL, &err),
                     LS_EINVAL);
    assert_non_null(strstr(err.msg, "zone ids"));
    assert_int_equal(ls_cidr_client_addr("unix:/run/sock", 14, NULL, 0, NULL, out, NULL, &err),
                     LS_EINVAL);
    assert_int_equal(ls_cidr_client_addr(NULL, 0, NULL, 0, NULL, out, NULL, &err), LS_EINVAL);
    assert_int_equal(ls_cidr_client_addr("127.0.0.1", 9, NULL, 0, NULL, NULL, NULL, &err),
                     LS_EINVAL);
}

/* ---- allocation failures ---- */

static ls_rc alloc_build(void *ud)
{
    (void)ud;
    ls_cidr_set_t *set = NULL;
    ls_err err = {0};
    ls_rc rc = ls_cidr_set_new(&set, &err);
    if (rc != LS_OK) return rc;
    rc = ls_cidr_set_add(set, "10.0.0.0/8", 10, &err);
    if (rc == LS_OK) {
        const char *more[] = {"192.168.0.0/16", "::1"};
        rc = ls_cidr_set_add_list(set, more, 2, &err);
        if (rc != LS_OK) assert_int_equal(ls_cidr_set_ranges(set), 1); /* unchanged */
    }
    if (rc == LS_OK) {
        char out[LS_CIDR_TEXTMAX];
        rc = ls_cidr_client_addr("::1", 3, "192.168.7.7", 11, set, out, NULL, &err);
        if (rc == LS_OK) assert_string_equal(out, "192.168.7.7");
    }
    if (rc == LS_ENOMEM) assert_non_null(strstr(err.msg, "out of memory"));
    ls_cidr_set_free(set);
    return rc;
}

static void test_cidr_alloc_failure(void **state)
{
    (void)state;
    /* the set, the merge of add, the list and the merge of add_list */
    assert_int_equal(th_each_alloc_failure(alloc_build, NULL), 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cidr_ipv4_entries),
        cmocka_unit_test(test_cidr_ipv6_entries),
        cmocka_unit_test(test_cidr_mapped_addresses),
        cmocka_unit_test(test_cidr_prefix_boundaries),
        cmocka_unit_test(test_cidr_strict_parsing_names_entry),
        cmocka_unit_test(test_cidr_add_list_all_or_nothing),
        cmocka_unit_test(test_cidr_merges_overlapping_and_adjacent),
        cmocka_unit_test(test_cidr_large_set_matches_linear_scan),
        cmocka_unit_test(test_cidr_parse_and_format_addresses),
        cmocka_unit_test(test_cidr_client_untrusted_peer_ignores_xff),
        cmocka_unit_test(test_cidr_client_trusted_proxy_chain),
        cmocka_unit_test(test_cidr_client_spoofed_xff_ignored),
        cmocka_unit_test(test_cidr_client_malformed_stops_at_last_trusted),
        cmocka_unit_test(test_cidr_client_bad_peer_einval),
        cmocka_unit_test(test_cidr_alloc_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
