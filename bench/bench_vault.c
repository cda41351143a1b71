/* SPDX-License-Identifier: MIT
 * Vault sealing: seal+open round trips for 64 B, 1 KiB and 64 KiB payloads,
 * against copying the same bytes into a buffer in the same run (the floor
 * any at-rest encryption sits on). Prints median MB/s and the ratio. */
#include <stdio.h>
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
    ls_vault_close(v);
    return 0;
}
