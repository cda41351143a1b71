/* SPDX-License-Identifier: MIT
 * Store write path: synced single-writer batches (what a workflow step
 * transition costs) against unsynced batches measured in the same run, for
 * batches of 1 and 8 records of 256 bytes. Prints median rates over rounds,
 * latency percentiles and the sync/nosync ratio. */
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "lodestone/lodestone.h"

#define ROUNDS     5
#define PER_ROUND  400
#define VALUE_SIZE 256

struct result {
    double rate[ROUNDS]; /* batches per second */
    int64_t lat[ROUNDS * PER_ROUND];
};

static void run(ls_store_t *st, unsigned flags, int records, uint64_t *seq, struct result *r)
{
    ls_store_batch_t *b;
    ls_err err;
    ls_buf key = LS_BUF_INIT;
    unsigned char val[VALUE_SIZE];
    memset(val, 0xab, sizeof val);
    if (ls_store_batch_new(&b, &err) != LS_OK) bench_die("batch", err.msg);
    size_t nlat = 0;
    for (int round = 0; round < ROUNDS; round++) {
        int64_t t0 = bench_now_ns();
        for (int i = 0; i < PER_ROUND; i++) {
            ls_store_batch_clear(b);
            for (int k = 0; k < records; k++) {
                ls_buf_clear(&key);
                ls_key_ns(&key, LS_NS_HISTORY, NULL);
                ls_key_u64(&key, (*seq)++, NULL);
                ls_store_batch_put(b, key.ptr, key.len, val, sizeof val);
            }
            int64_t s = bench_now_ns();
            if (ls_store_write(st, b, flags, &err) != LS_OK) bench_die("write", err.msg);
            r->lat[nlat++] = bench_now_ns() - s;
        }
        r->rate[round] = PER_ROUND / ((double)(bench_now_ns() - t0) / 1e9);
    }
    ls_buf_free(&key);
    ls_store_batch_free(b);
}

static double report(const char *name, struct result *r)
{
    double med = bench_median_d(r->rate, ROUNDS);
    size_t n = (size_t)ROUNDS * PER_ROUND;
    printf("  %-22s %10.0f batches/s   p50 %7.1f us   p99 %7.1f us\n", name, med,
           (double)bench_quantile(r->lat, n, 0.50) / 1e3,
           (double)bench_quantile(r->lat, n, 0.99) / 1e3);
    return med;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "/tmp";
    char path[4096];
    snprintf(path, sizeof path, "%s/bench-store", dir);
    ls_store_opts opts = {.create_if_missing = 1};
    ls_store_t *st;
    ls_err err;
    if (ls_store_open(&st, path, &opts, &err) != LS_OK) bench_die("open", err.msg);

    static struct result r;
    uint64_t seq = 0;
    printf("store writes, %d rounds x %d batches, %d-byte values (medians over rounds)\n", ROUNDS,
           PER_ROUND, VALUE_SIZE);
    run(st, 0, 1, &seq, &r);
    double base1 = report("nosync, 1 record", &r);
    run(st, LS_STORE_SYNC, 1, &seq, &r);
    double sync1 = report("sync, 1 record", &r);
    run(st, 0, 8, &seq, &r);
    double base8 = report("nosync, 8 records", &r);
    run(st, LS_STORE_SYNC, 8, &seq, &r);
    double sync8 = report("sync, 8 records", &r);
    printf("  ratio sync/nosync: %.3f (1 record), %.3f (8 records)\n", sync1 / base1,
           sync8 / base8);
    printf("  records/s synced: %.0f (1 per batch), %.0f (8 per batch)\n", sync1, sync8 * 8);
    ls_store_close(st);
    return 0;
}
