/* SPDX-License-Identifier: MIT
 * Authenticator costs: API key verify (hit and miss, 1000 keys) against the
 * bare keyed BLAKE2b it computes, HTTP Basic verify from the cache and
 * uncached at libsodium's interactive argon2id limits, and GitHub signature verify on 1 KiB and 64
 * KiB bodies against a bare crypto_auth_hmacsha256 over the same bytes in the same run. Prints
 * medians over rounds and ratios; never passes or fails on time. */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "bench.h"
#include "lodestone/lodestone.h"
#include "lodestone/ls_apikey.h"
#include "lodestone/ls_basic.h"
#include "lodestone/ls_hmac.h"

#define ROUNDS 7
#define NKEYS  1000

static volatile unsigned sink;

/* ---- API keys ---- */

static char keys[NKEYS][LS_APIKEY_KEY_SIZE];

static ls_apikey_set_t *make_keyset(void)
{
    ls_buf text = LS_BUF_INIT;
    ls_err err;
    if (ls_apikey_new_file_header(&text, &err) != LS_OK) bench_die("header", err.msg);
    ls_apikey_spec spec = {"bench-client", "reader,writer", "orders:read"};
    for (int i = 0; i < NKEYS; i++)
        if (ls_apikey_generate((char *)text.ptr, text.len, &spec, keys[i], &text, &err) != LS_OK)
            bench_die("generate", err.msg);
    ls_apikey_set_t *set;
    if (ls_apikey_parse(&set, (char *)text.ptr, text.len, &err) != LS_OK)
        bench_die("parse", err.msg);
    ls_buf_free(&text);
    return set;
}

static double apikey_ns(const ls_apikey_set_t *set, int hit, int iters)
{
    char miss[LS_APIKEY_KEY_SIZE];
    memcpy(miss, keys[0], sizeof miss);
    miss[10] ^= 1;
    double v[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        int64_t t0 = bench_now_ns();
        for (int i = 0; i < iters; i++) {
            const char *k = hit ? keys[i % NKEYS] : miss;
            const ls_apikey_entry *e;
            ls_rc rc = ls_apikey_verify(set, k, LS_APIKEY_KEY_LEN, &e, NULL);
            if ((rc == LS_OK) != hit) bench_die("apikey", "unexpected result");
            sink += (unsigned)rc;
        }
        v[r] = (double)(bench_now_ns() - t0) / iters;
    }
    return bench_median_d(v, ROUNDS);
}

/* The baseline: the keyed BLAKE2b-256 a verify computes, alone. */
static double blake2b_ns(int iters)
{
    unsigned char hk[32], h[32];
    randombytes_buf(hk, sizeof hk);
    double v[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        int64_t t0 = bench_now_ns();
        for (int i = 0; i < iters; i++) {
            crypto_generichash(h, sizeof h, (const unsigned char *)keys[i % NKEYS],
                               LS_APIKEY_KEY_LEN, hk, sizeof hk);
            sink += h[0];
        }
        v[r] = (double)(bench_now_ns() - t0) / iters;
    }
    return bench_median_d(v, ROUNDS);
}

/* ---- HTTP Basic ---- */

static double basic_cached_ns(ls_basic_set_t *set, const char *hdr, int iters)
{
    const char *user;
    ls_err err;
    if (ls_basic_verify(set, hdr, strlen(hdr), &user, &err) != LS_OK) bench_die("basic", err.msg);
    double v[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        int64_t t0 = bench_now_ns();
        for (int i = 0; i < iters; i++)
            if (ls_basic_verify(set, hdr, strlen(hdr), &user, NULL) != LS_OK)
                bench_die("basic", "cached verify failed");
        v[r] = (double)(bench_now_ns() - t0) / iters;
    }
    return bench_median_d(v, ROUNDS);
}

static double basic_uncached_ms(ls_basic_set_t *set, const char *hdr, int iters)
{
    double v[16];
    const char *user;
    for (int i = 0; i < iters; i++) {
        int64_t t0 = bench_now_ns();
        if (ls_basic_verify(set, hdr, strlen(hdr), &user, NULL) != LS_OK)
            bench_die("basic", "uncached verify failed");
        v[i] = (double)(bench_now_ns() - t0) / 1e6;
    }
    return bench_median_d(v, (size_t)iters);
}

static void bench_basic(void)
{
    ls_buf line = LS_BUF_INIT;
    ls_err err;
    const char *pw = "correct horse battery staple";
    if (ls_basic_hash_line("bench", pw, strlen(pw), 0, 0, &line, &err) != LS_OK)
        bench_die("hash", err.msg);
    char hdr[256] = "Basic ";
    char cred[64];
    int n = snprintf(cred, sizeof cred, "bench:%s", pw);
    sodium_bin2base64(hdr + 6, sizeof hdr - 6, (unsigned char *)cred, (size_t)n,
                      sodium_base64_VARIANT_ORIGINAL);

    ls_basic_set_t *cached, *uncached;
    ls_basic_opts off = {LS_BASIC_NO_CACHE, 0, NULL};
    if (ls_basic_parse(&cached, (char *)line.ptr, line.len, NULL, &err) != LS_OK ||
        ls_basic_parse(&uncached, (char *)line.ptr, line.len, &off, &err) != LS_OK)
        bench_die("parse", err.msg);
    double hit = basic_cached_ns(cached, hdr, 200000);
    double slow = basic_uncached_ms(uncached, hdr, 5);
    printf("  %-34s %10.1f ns/op\n", "Basic verify, cache hit", hit);
    printf("  %-34s %10.2f ms/op   (argon2id 64 MiB, t=2; 5 runs)\n", "Basic verify, uncached",
           slow);
    printf("  %-34s %10.0fx\n", "  uncached / cached", slow * 1e6 / hit);
    ls_basic_free(cached);
    ls_basic_free(uncached);
    ls_buf_free(&line);
}

/* ---- GitHub signatures ---- */

static void bench_github(size_t size, int iters)
{
    static unsigned char body[64 * 1024];
    unsigned char key[crypto_auth_hmacsha256_KEYBYTES], mac[32];
    randombytes_buf(key, sizeof key);
    randombytes_buf(body, size);
    char hdr[80] = "sha256=";
    ls_hmac_sha256(key, sizeof key, body, size, mac);
    sodium_bin2hex(hdr + 7, sizeof hdr - 7, mac, 32);
    size_t hlen = strlen(hdr);

    double verify[ROUNDS], bare[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) { /* alternate, so drift hits both */
        int64_t t0 = bench_now_ns();
        for (int i = 0; i < iters; i++) {
            ls_rc rc = ls_hmac_verify_github(key, sizeof key, hdr, hlen, body, size, NULL, NULL);
            if (rc != LS_OK) bench_die("github", "verify failed");
        }
        int64_t t1 = bench_now_ns();
        for (int i = 0; i < iters; i++) {
            crypto_auth_hmacsha256(mac, body, size, key);
            sink += mac[0];
        }
        int64_t t2 = bench_now_ns();
        verify[r] = (double)(t1 - t0) / iters;
        bare[r] = (double)(t2 - t1) / iters;
    }
    double v = bench_median_d(verify, ROUNDS), b = bench_median_d(bare, ROUNDS);
    char name[64];
    snprintf(name, sizeof name, "GitHub verify, %zu KiB", size / 1024);
    printf("  %-34s %10.1f ns/op   bare HMAC %10.1f ns/op   ratio %.3f   (%.0f MB/s)\n", name, v, b,
           v / b, (double)size / v * 1e3);
}

int main(void)
{
    if (sodium_init() < 0) bench_die("sodium", "init failed");
    printf("authenticators (medians over %d rounds)\n", ROUNDS);
    ls_apikey_set_t *set = make_keyset();
    double hit = apikey_ns(set, 1, 500000), miss = apikey_ns(set, 0, 500000);
    double base = blake2b_ns(500000);
    printf("  %-34s %10.1f ns/op\n", "API key verify, hit (1000 keys)", hit);
    printf("  %-34s %10.1f ns/op\n", "API key verify, miss", miss);
    printf("  %-34s %10.1f ns/op   verify/bare: hit %.2f, miss %.2f\n",
           "bare keyed BLAKE2b-256, 47 bytes", base, hit / base, miss / base);
    ls_apikey_free(set);
    bench_basic();
    bench_github(1024, 50000);
    bench_github((size_t)64 * 1024, 1000);
    return 0;
}
