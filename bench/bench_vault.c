/* SPDX-License-Identifier: MIT
 * Vault sealing: seal+open round trips for 64 B, 1 KiB and 64 KiB payloads,
 * against copying the same bytes into a buffer in the same run (the floor
 * any at-rest encryption sits on). Prints median MB/s and the ratio.
 * Secret masking: the median time to mask an 8 KiB log line against 0,
 * 10 and 100 secrets (values loaded once), without and with occurrences. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "lodestone/lodestone.h"

#define ROUNDS 5

static double seal_open_mbs(ls_vault_t *v, const unsigned char *pt, size_t n, long iters)
{
    ls_buf sealed = LS_BUF_INIT, out = LS_BUF_INIT;
    ls_err err;
    double rates[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        int64_t t0 = bench_now_ns();
        for (long i = 0; i < iters; i++) {
            if (ls_vault_seal(v, "ad", 2, pt, n, &sealed, &err) != LS_OK)
                bench_die("seal", err.msg);
            if (ls_vault_open(v, "ad", 2, sealed.ptr, sealed.len, &out, &err) != LS_OK)
                bench_die("open", err.msg);
        }
        rates[r] = (double)n * (double)iters / ((double)(bench_now_ns() - t0) / 1e9) / 1e6;
    }
    ls_buf_free(&sealed);
    ls_buf_free(&out);
    return bench_median_d(rates, ROUNDS);
}

static double copy_mbs(const unsigned char *pt, size_t n, long iters)
{
    ls_buf out = LS_BUF_INIT;
    double rates[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        int64_t t0 = bench_now_ns();
        for (long i = 0; i < iters; i++) {
            ls_buf_set(&out, pt, n, NULL);
            __asm__ volatile("" : : "r"(out.ptr) : "memory"); /* keep the copy */
        }
        rates[r] = (double)n * (double)iters / ((double)(bench_now_ns() - t0) / 1e9) / 1e6;
    }
    ls_buf_free(&out);
    return bench_median_d(rates, ROUNDS);
}

/* ---- masking ---- */

#define MASK_ITERS 2000

/* Median over ROUNDS rounds of the time (ns) to mask text once. */
static double mask_ns(ls_vault_mask_t *m, const char *text, size_t len)
{
    ls_buf out = LS_BUF_INIT;
    double t[ROUNDS];
    size_t used;
    for (int r = 0; r < ROUNDS; r++) {
        int64_t t0 = bench_now_ns();
        for (int i = 0; i < MASK_ITERS; i++) {
            ls_buf_clear(&out);
            if (ls_vault_mask_text(m, text, len, 8192, &out, &used, NULL) != LS_OK)
                bench_die("mask", "out of memory");
        }
        t[r] = (double)(bench_now_ns() - t0) / MASK_ITERS;
    }
    ls_buf_free(&out);
    return bench_median_d(t, ROUNDS);
}

/* Random printable text (as a log line holds), n bytes. */
static void fill_text(char *p, size_t n, unsigned *seed)
{
    static const char chars[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 =:,./_-";
    for (size_t i = 0; i < n; i++) p[i] = chars[(unsigned)rand_r(seed) % (sizeof chars - 1)];
}

static void bench_mask(ls_vault_t *v, const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/bench-mask-store", dir);
    ls_store_opts so = {.create_if_missing = 1};
    ls_store_t *st;
    ls_err err;
    if (ls_store_open(&st, path, &so, &err) != LS_OK) bench_die("store", err.msg);
    ls_vault_mask_t *m;
    if (ls_vault_mask_new(&m, v, st, NULL, &err) != LS_OK) bench_die("mask", err.msg);
    enum { LINE = 8192, NSEC = 100, VLEN = 32 };
    static char line[LINE], hits[LINE], vals[NSEC][VLEN + 1];
    unsigned seed = 42;
    fill_text(line, LINE, &seed);
    for (int i = 0; i < NSEC; i++) {
        fill_text(vals[i], VLEN, &seed);
        vals[i][VLEN] = '\0';
    }
    memcpy(hits, line, LINE);
    for (size_t k = 0; k < 4; k++)
        memcpy(hits + 1000 + k * 1800, vals[k * 7], VLEN); /* 4 occurrences */
    printf("secret masking of an 8 KiB log line, medians of %d rounds of %d\n", ROUNDS, MASK_ITERS);
    int have = 0;
    const int counts[] = {0, 10, 100};
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        for (; have < counts[c]; have++) {
            char name[32];
            snprintf(name, sizeof name, "bench/%03d", have);
            if (ls_vault_secret_put(v, st, name, vals[have], VLEN, &err) != LS_OK)
                bench_die("put", err.msg);
        }
        double plain = mask_ns(m, line, LINE);
        double with = counts[c] ? mask_ns(m, hits, LINE) : plain;
        printf("  %3d secrets: %8.0f ns (no occurrence)   %8.0f ns (4 occurrences)   %6.0f MB/s\n",
               counts[c], plain, with, LINE / plain * 1e3);
    }
    ls_vault_mask_free(m);
    for (int i = 0; i < have; i++) {
        char name[32];
        snprintf(name, sizeof name, "bench/%03d", i);
        ls_vault_secret_delete(st, name, NULL);
    }
    ls_store_close(st);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "/tmp";
    char path[4096];
    snprintf(path, sizeof path, "%s/bench-vault.key", dir);
    ls_vault_opts opts = {.create_if_missing = 1};
    ls_vault_t *v;
    ls_err err;
    if (ls_vault_load(&v, path, &opts, &err) != LS_OK) bench_die("load", err.msg);

    static unsigned char pt[65536];
    memset(pt, 0x5a, sizeof pt);
    const size_t sizes[] = {64, 1024, 65536};
    printf("vault seal+open round trips (XChaCha20-Poly1305), medians of %d rounds\n", ROUNDS);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        long iters = (long)(64L * 1024 * 1024 / n / 8);
        if (iters > 200000) iters = 200000;
        double s = seal_open_mbs(v, pt, n, iters);
        double c = copy_mbs(pt, n, iters);
        printf("  %6zu B: %8.1f MB/s (%8.0f round trips/s)   copy %9.1f MB/s   ratio %.4f\n", n, s,
               s * 1e6 / (double)n, c, s / c);
    }
    bench_mask(v, dir);
    ls_vault_close(v);
    return 0;
}
