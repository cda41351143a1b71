/* SPDX-License-Identifier: MIT
 * Reference readings, written from the public headers, that the fuzz
 * tests check the engine against: tests/c/test_fuzz.c (deterministic, in
 * make test) and the libFuzzer harnesses in tests/fuzz/ (make fuzz). */
#ifndef LS_TESTS_FUZZ_REFS_H
#define LS_TESTS_FUZZ_REFS_H

#include <arpa/inet.h>
#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "flow/history.h"
#include "lodestone/ls_basic.h"
#include "lodestone/ls_cidr.h"
#include "lodestone/ls_hmac.h"
#include "policy/path.h"

/* Reference normaliser written from path.h: 1 with the result in out, or 0. */
static inline int ref_path(const unsigned char *s, size_t len, char *out, size_t *olen)
{
    if (len == 0 || s[0] != '/' || len > LS_PATH_MAX) return 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] == 0 || s[i] == '\\' || s[i] == '?' || s[i] == '#') return 0;
    size_t n = 0; /* out holds "/seg/seg" */
    int trailing = 0;
    size_t i = 1;
    for (;;) { /* one raw segment s[i..j) per turn */
        size_t j = i;
        while (j < len && s[j] != '/') j++;
        char seg[LS_PATH_MAX];
        size_t sl = 0;
        for (size_t k = i; k < j; k++) {
            if (s[k] != '%') {
                seg[sl++] = (char)s[k];
                continue;
            }
            if (k + 2 >= j || !isxdigit(s[k + 1]) || !isxdigit(s[k + 2])) return 0;
            char h[3] = {(char)s[k + 1], (char)s[k + 2], 0};
            int v = (int)strtol(h, NULL, 16);
            if (v == 0 || v == '/' || v == '\\') return 0;
            seg[sl++] = (char)v;
            k += 2;
        }
        int last = j == len;
        size_t dots = 0;
        while (dots < sl && dots < 2 && seg[dots] == '.') dots++;
        if (sl == 0) {
            trailing = last;
        } else if (dots == sl) {
            if (dots == 2) {
                if (n == 0) return 0;
                while (out[--n] != '/') {}
            }
            trailing = last;
        } else if (dots > 0 && seg[dots] == ';') {
            return 0;
        } else {
            out[n++] = '/';
            memcpy(out + n, seg, sl);
            n += sl;
            trailing = 0;
        }
        if (last) break;
        i = j + 1;
    }
    if (n == 0 || trailing) out[n++] = '/';
    *olen = n;
    return 1;
}

/* What inet_pton makes of text, as a 16-byte address; 0 when it refuses. */
static inline int pton(const unsigned char *p, size_t len, uint8_t out[16])
{
    char buf[256];
    if (len >= sizeof buf || memchr(p, '\0', len)) return 0;
    memcpy(buf, p, len);
    buf[len] = '\0';
    if (inet_pton(AF_INET6, buf, out) == 1) return 1;
    uint8_t v4[4];
    if (inet_pton(AF_INET, buf, v4) != 1) return 0;
    memset(out, 0, 10);
    out[10] = out[11] = 0xff;
    memcpy(out + 12, v4, 4);
    return 1;
}

/* Reference trust test for the trusted-proxy set the fuzz tests build:
 * 127.0.0.1, ::1, 10.0.0.0/8, 2001:db8::/32. */
static inline int ref_trusted(const uint8_t a[16])
{
    static const uint8_t lo4[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1};
    static const uint8_t v6one[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    static const uint8_t ten[13] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10};
    static const uint8_t db8[4] = {0x20, 0x01, 0x0d, 0xb8};
    return !memcmp(a, lo4, 16) || !memcmp(a, v6one, 16) || !memcmp(a, ten, 13) ||
           !memcmp(a, db8, 4);
}

/* Reference client address, from the comment in ls_cidr.h. */
static inline int ref_client(const unsigned char *peer, size_t plen, const unsigned char *xff,
                             size_t xlen, int has_xff, uint8_t out[16])
{
    if (ls_cidr_parse_addr((const char *)peer, plen, out, NULL) != LS_OK) return 0;
    if (!has_xff || !ref_trusted(out)) return 1;
    /* entries right to left */
    size_t end = xlen;
    for (;;) {
        size_t start = end;
        while (start > 0 && xff[start - 1] != ',') start--;
        size_t a = start, b = end;
        while (a < b && (xff[a] == ' ' || xff[a] == '\t')) a++;
        while (b > a && (xff[b - 1] == ' ' || xff[b - 1] == '\t')) b--;
        uint8_t hop[16];
        if (!pton(xff + a, b - a, hop)) return 1; /* not an address: the last trusted one */
        memcpy(out, hop, 16);
        if (!ref_trusted(hop) || start == 0) return 1;
        end = start - 1;
    }
}

/* Reference: the credentials a header carries per ls_basic.h (decoded into
 * cred, at most cap bytes), or 0. */
static inline int ref_basic(const unsigned char *h, size_t len, unsigned char *cred, size_t cap,
                            size_t *clen)
{
    while (len && (h[0] == ' ' || h[0] == '\t')) h++, len--;
    while (len && (h[len - 1] == ' ' || h[len - 1] == '\t')) len--;
    if (len > LS_BASIC_HEADER_MAX || len < 7 || strncasecmp((const char *)h, "basic ", 6) != 0)
        return 0;
    size_t i = 6;
    while (i < len && h[i] == ' ') i++;
    if (i == len) return 0;
    return sodium_base642bin(cred, cap, (const char *)h + i, len - i, NULL, clen, NULL,
                             sodium_base64_VARIANT_ORIGINAL) == 0;
}

static inline int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* 1 when the len bytes are 64 hex digits of mac. */
static inline int hex_is(const unsigned char *p, size_t len, const unsigned char mac[32])
{
    if (len != 64) return 0;
    for (size_t i = 0; i < 32; i++) {
        int a = hexval(p[2 * i]), b = hexval(p[2 * i + 1]);
        if (a < 0 || b < 0 || (unsigned)(a << 4 | b) != mac[i]) return 0;
    }
    return 1;
}

static inline int is_hex64(const unsigned char *p, size_t len)
{
    if (len != 64) return 0;
    for (size_t i = 0; i < len; i++)
        if (hexval(p[i]) < 0) return 0;
    return 1;
}

static inline void trim_ows(const unsigned char **p, size_t *len)
{
    while (*len && ((*p)[0] == ' ' || (*p)[0] == '\t')) (*p)++, (*len)--;
    while (*len && ((*p)[*len - 1] == ' ' || (*p)[*len - 1] == '\t')) (*len)--;
}

/* Stripe's signature of body at timestamp t: HMAC-SHA256(secret, t "." body). */
static inline void ref_stripe_mac(const char *secret, const char *body, const unsigned char *t,
                                  size_t tlen, unsigned char mac[32])
{
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, (const unsigned char *)secret, strlen(secret));
    crypto_auth_hmacsha256_update(&st, t, tlen);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)".", 1);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)body, strlen(body));
    crypto_auth_hmacsha256_final(&st, mac);
}

/* Reference Stripe check from the grammar in ls_hmac.h, over body signed
 * with secret, tol seconds either side of now: 1 accepted, 0 not. */
static inline int ref_stripe(const unsigned char *h, size_t len, int64_t now, int64_t tol,
                             const char *secret, const char *body, ls_hmac_reason *why)
{
    trim_ows(&h, &len);
    *why = LS_HMAC_MALFORMED_HEADER;
    if (len > 4096) return 0;
    const unsigned char *t = NULL, *v1[16];
    size_t tlen = 0, nv1 = 0;
    size_t i = 0;
    for (;;) {
        size_t j = i;
        while (j < len && h[j] != ',') j++;
        const unsigned char *item = h + i;
        size_t il = j - i;
        trim_ows(&item, &il);
        const unsigned char *eq = il ? memchr(item, '=', il) : NULL;
        if (eq == NULL || eq == item) return 0;
        size_t kl = (size_t)(eq - item), vl = il - kl - 1;
        if (kl == 1 && item[0] == 't') {
            if (t || vl < 1 || vl > 18) return 0;
            for (size_t k = 0; k < vl; k++)
                if (eq[1 + k] < '0' || eq[1 + k] > '9') return 0;
            t = eq + 1, tlen = vl;
        } else if (kl == 2 && item[0] == 'v' && item[1] == '1') {
            if (nv1 == 16 || !is_hex64(eq + 1, vl)) return 0;
            v1[nv1++] = eq + 1;
        }
        if (j == len) break;
        i = j + 1;
    }
    if (!t || !nv1) return 0;
    unsigned char mac[32];
    ref_stripe_mac(secret, body, t, tlen, mac);
    int match = 0;
    for (size_t k = 0; k < nv1; k++) match |= hex_is(v1[k], 64, mac);
    *why = LS_HMAC_BAD_SIGNATURE;
    if (!match) return 0;
    int64_t ts = 0;
    for (size_t k = 0; k < tlen; k++) ts = ts * 10 + (t[k] - '0');
    *why = LS_HMAC_TIMESTAMP_OUT_OF_TOLERANCE;
    if (now - ts > tol || ts - now > tol) return 0;
    *why = LS_HMAC_OK;
    return 1;
}

/* A seed run record for the history fuzz tests: edge values, every field. */
static inline ls_run_record fuzz_seed_run_record(void)
{
    return (ls_run_record){.status = LS_RUN_FAILED,
                           .created_ms = -5,
                           .updated_ms = 1700000000000,
                           .last_seq = 1u << 20,
                           .steps_completed = 3,
                           .attempts_failed = UINT32_MAX,
                           .type = "order.ship",
                           .type_len = 10,
                           .name = "n1",
                           .name_len = 2,
                           .version = "v2",
                           .version_len = 2};
}

/* Seed events for the history fuzz tests: edge values in every field. */
#define FUZZ_SEED_EVENTS 4
static inline void fuzz_seed_events(ls_event out[FUZZ_SEED_EVENTS])
{
    static const unsigned char pl[] = {'{', 0, '"', 0xff, '}'};
    const ls_event evs[FUZZ_SEED_EVENTS] = {
        {.type = LS_EV_WORKFLOW_STARTED,
         .seq = 1,
         .time_ms = 1700000000000,
         .payload = pl,
         .payload_len = sizeof pl},
        {.type = LS_EV_STEP_FAILED,
         .flags = LS_EVF_FATAL,
         .seq = UINT64_MAX,
         .time_ms = -1,
         .due_ms = INT64_MIN,
         .attempt = UINT32_MAX,
         .name = "ship",
         .name_len = 4,
         .error = "boom\0x",
         .error_len = 6},
        {.type = LS_EV_TIMER_STARTED,
         .seq = 300,
         .time_ms = INT64_MAX,
         .due_ms = 1700000060000,
         .name = "t",
         .name_len = 1},
        {.type = LS_EV_WORKFLOW_TERMINATED, .seq = 127, .time_ms = 0},
    };
    memcpy(out, evs, sizeof evs);
}

/* 1 when two decoded events are the same, field by field. */
static inline int events_equal(const ls_event *a, const ls_event *b)
{
    return a->version == b->version && a->type == b->type && a->flags == b->flags &&
           a->seq == b->seq && a->time_ms == b->time_ms && a->due_ms == b->due_ms &&
           a->attempt == b->attempt && a->name_len == b->name_len &&
           (!a->name_len || !memcmp(a->name, b->name, a->name_len)) &&
           a->payload_len == b->payload_len &&
           (!a->payload_len || !memcmp(a->payload, b->payload, a->payload_len)) &&
           a->error_len == b->error_len &&
           (!a->error_len || !memcmp(a->error, b->error, a->error_len));
}

#endif
