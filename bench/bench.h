/* SPDX-License-Identifier: MIT
 * Small helpers shared by the benchmarks: timing, medians, percentiles.
 * Benchmarks print figures and ratios; they never pass or fail on time. */
#ifndef LS_BENCH_H
#define LS_BENCH_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static inline int64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline int bench_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Sorts v in place and returns the value at quantile q (0..1). */
static inline int64_t bench_quantile(int64_t *v, size_t n, double q)
{
    if (n == 0) return 0;
    qsort(v, n, sizeof *v, bench_cmp_i64);
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return v[i];
}

static inline double bench_median_d(double *v, size_t n)
{
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return n ? (n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2) : 0;
}

static inline _Noreturn void bench_die(const char *what, const char *msg)
{
    fprintf(stderr, "bench: %s: %s\n", what, msg);
    exit(1);
}

#endif
