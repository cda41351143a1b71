/* SPDX-License-Identifier: MIT
 * The workflow engine in process, with a C runner (no Lua, no HTTP): a
 * 3-step workflow whose steps return small JSON, synced writes. Prints
 * runs per second at concurrency 1, 32 and 256 (concurrency = runs in
 * flight: a new run starts as one ends), start-to-end latency at 1, and
 * the cost of a run with sync off as the CPU baseline.
 *
 *   bench_flow DIR                 the figures above
 *   bench_flow --fill DATA C U     store C completed and U unfinished runs
 *                                  of type "three" in lodestoned's layout
 *                                  (DATA/store, DATA/master.key), unsynced:
 *                                  used by bench/workflows.sh
 */
#include "ls_config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "bench.h"
#include "lodestone/lodestone.h"
#include "lodestone/ls_flow.h"

static double bench_now(void)
{
    return (double)bench_now_ns() / 1e9;
}

static ls_rc w_open(void *ud, unsigned i, void **w, ls_err *err)
{
    (void)ud, (void)i, (void)err;
    *w = NULL;
    return LS_OK;
}

static void w_close(void *ud, void *w)
{
    (void)ud, (void)w;
}

static void activate(void *ud, void *w, ls_flow_act *a)
{
    (void)ud, (void)w;
    static const char *const steps[] = {"a", "b", "c"};
    ls_buf out = LS_BUF_INIT;
    ls_err err;
    for (int i = 0; i < 3; i++) {
        ls_flow_step_info info;
        if (ls_flow_act_step(a, steps[i], 1, &info, &out, &err) != LS_OK) goto fail;
        if (info.outcome == LS_FLOW_RUN &&
            ls_flow_act_step_done(a, steps[i], 1, info.attempt, "{\"n\":1}", 7, &err) != LS_OK)
            goto fail;
        if (info.outcome == LS_FLOW_WAIT || info.outcome == LS_FLOW_FAILED) goto fail;
    }
    if (ls_flow_act_complete(a, "{\"total\":3}", 11, &err) != LS_OK) goto fail;
    ls_buf_free(&out);
    return;
fail:
    fprintf(stderr, "bench_flow: %s\n", ls_err_text(&err));
    ls_flow_act_abandon(a);
    ls_buf_free(&out);
}

static int has_type(void *ud, const char *t, size_t n)
{
    (void)ud;
    return n == 5 && memcmp(t, "three", 5) == 0;
}

static void list_types(void *ud, ls_buf *out)
{
    (void)ud;
    ls_buf_printf(out, NULL, "three");
}

static const ls_flow_runner runner = {.worker_open = w_open,
                                      .worker_close = w_close,
                                      .activate = activate,
                                      .has_type = has_type,
                                      .list_types = list_types};

/* ---- closed loop: `conc` runs in flight ---- */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    long ended;
} loop_state;

static void on_end(void *ud)
{
    loop_state *s = ud;
    pthread_mutex_lock(&s->mu);
    s->ended++;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

typedef struct {
    ls_flow_t *f;
    loop_state *ls;
    long runs;
    double *lat;
} client_arg;

static void *client(void *p)
{
    client_arg *c = p;
    ls_buf out = LS_BUF_INIT;
    ls_err err;
    for (long i = 0; i < c->runs; i++) {
        double t0 = bench_now();
        int created;
        if (ls_flow_start(c->f, "three", 5, NULL, 0, "{\"n\":1}", 7, &out, &created, &err) !=
            LS_OK) {
            fprintf(stderr, "start: %s\n", ls_err_text(&err));
            exit(1);
        }
        /* the run's name is its id: take it from the JSON */
        const char *p0 = strstr((const char *)out.ptr, "\"id\":\"") + 6;
        char name[64];
        size_t n = strcspn(p0, "\"");
        memcpy(name, p0, n);
        name[n] = '\0';
        loop_state one = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
        uint64_t w;
        if (ls_flow_watch(c->f, name, n, on_end, &one, &w, &err) == LS_OK) {
            pthread_mutex_lock(&one.mu);
            while (one.ended == 0) pthread_cond_wait(&one.cv, &one.mu);
            pthread_mutex_unlock(&one.mu);
        }
        if (c->lat) c->lat[i] = (bench_now() - t0) * 1e3;
    }
    ls_buf_free(&out);
    return NULL;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static ls_rc open_all(const char *dir, int create, ls_store_t **st, ls_vault_t **v, ls_err *err)
{
    char p[4096];
    mkdir(dir, 0700);
    snprintf(p, sizeof p, "%s/store", dir);
    ls_store_opts so = {
        .create_if_missing = create, .cache_bytes = 32u << 20, .write_buffer = 16u << 20};
    ls_rc rc = ls_store_open(st, p, &so, err);
    if (rc != LS_OK) return rc;
    snprintf(p, sizeof p, "%s/master.key", dir);
    ls_vault_opts vo = {.create_if_missing = 1};
    return ls_vault_load(v, p, &vo, err);
}

/* Runs `total` runs with `conc` in flight; returns runs/s. */
static double closed_loop(const char *dir, int nosync, unsigned workers, int conc, long total,
                          double *p50, double *p99, double *per_write, double *per_run)
{
    ls_store_t *st = NULL;
    ls_vault_t *v = NULL;
    ls_flow_t *f = NULL;
    ls_err err;
    if (open_all(dir, 1, &st, &v, &err) != LS_OK) {
        fprintf(stderr, "bench_flow: %s\n", ls_err_text(&err));
        exit(1);
    }
    ls_flow_opts o = {
        .store = st, .vault = v, .runner = &runner, .workers = workers, .nosync = nosync};
    if (ls_flow_open(&f, &o, &err) != LS_OK || ls_flow_run(f, &err) != LS_OK) {
        fprintf(stderr, "bench_flow: %s\n", ls_err_text(&err));
        exit(1);
    }
    pthread_t *th = calloc((size_t)conc, sizeof *th);
    client_arg *ca = calloc((size_t)conc, sizeof *ca);
    double *lat = calloc((size_t)total, sizeof *lat);
    double t0 = bench_now();
    for (int i = 0; i < conc; i++) {
        ca[i] = (client_arg){f, NULL, total / conc, lat + (size_t)i * (size_t)(total / conc)};
        pthread_create(&th[i], NULL, client, &ca[i]);
    }
    for (int i = 0; i < conc; i++) pthread_join(th[i], NULL);
    double el = bench_now() - t0;
    long done = total / conc * conc;
    qsort(lat, (size_t)done, sizeof *lat, cmp_d);
    *p50 = lat[done / 2];
    *p99 = lat[done * 99 / 100];
    ls_flow_stats fs;
    ls_flow_get_stats(f, &fs);
    *per_write = fs.commits ? (double)fs.transitions / (double)fs.commits : 0;
    *per_run = (double)fs.transitions / (double)done;
    ls_flow_close(f);
    ls_vault_close(v);
    ls_store_close(st);
    free(th);
    free(ca);
    free(lat);
    return (double)done / el;
}

static int fill(const char *dir, long completed, long unfinished)
{
    ls_store_t *st = NULL;
    ls_vault_t *v = NULL;
    ls_flow_t *f = NULL;
    ls_err err;
    ls_buf out = LS_BUF_INIT;
    if (open_all(dir, 1, &st, &v, &err) != LS_OK) goto fail;
    ls_flow_opts o = {.store = st, .vault = v, .runner = &runner, .workers = 2, .nosync = 1};
    double t0 = bench_now();
    if (completed) {
        if (ls_flow_open(&f, &o, &err) != LS_OK || ls_flow_run(f, &err) != LS_OK) goto fail;
        /* 64 runs in flight until `completed` have ended */
        int conc = 64;
        pthread_t th[64];
        client_arg ca[64];
        for (int i = 0; i < conc; i++) {
            ca[i] = (client_arg){f, NULL, completed / conc + (i < completed % conc), NULL};
            pthread_create(&th[i], NULL, client, &ca[i]);
        }
        for (int i = 0; i < conc; i++) pthread_join(th[i], NULL);
        ls_flow_close(f);
        f = NULL;
    }
    double t1 = bench_now();
    if (unfinished) {
        /* Started, never run: the engine's workers are not started. */
        if (ls_flow_open(&f, &o, &err) != LS_OK) goto fail;
        for (long i = 0; i < unfinished; i++) {
            int created;
            if (ls_flow_start(f, "three", 5, NULL, 0, "{\"n\":1}", 7, &out, &created, &err) !=
                LS_OK)
                goto fail;
        }
        ls_flow_stop(f, 0, NULL);
        ls_flow_close(f);
        f = NULL;
    }
    printf("fill: %ld completed runs in %.1f s (%.0f/s, unsynced), %ld unfinished in %.1f s\n",
           completed, t1 - t0, (double)completed / (t1 - t0 > 0 ? t1 - t0 : 1), unfinished,
           bench_now() - t1);
    ls_buf_free(&out);
    ls_vault_close(v);
    ls_store_close(st);
    return 0;
fail:
    fprintf(stderr, "bench_flow --fill: %s\n", ls_err_text(&err));
    return 1;
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--fill") == 0)
        return fill(argv[2], atol(argv[3]), atol(argv[4]));
    int only_nosync = argc == 3 && strcmp(argv[2], "nosync") == 0;
    if (argc != 2 && !only_nosync) {
        fprintf(stderr, "usage: bench_flow DIR | bench_flow --fill DATA COMPLETED UNFINISHED\n");
        return 2;
    }
    char dir[4096];
    double p50, p99, per_write, per_run;
    static const int concs[] = {1, 32, 256};
    printf("engine in process, C runner, 3 steps, synced transitions\n");
    for (int k = 0; k < 3 && !only_nosync; k++) {
        int c = concs[k];
        long total = c == 1 ? 2000 : 20000;
        unsigned workers = c == 1 ? 1 : (unsigned)(c < 64 ? c : 64);
        snprintf(dir, sizeof dir, "%s/flow-%d", argv[1], c);
        double rate = closed_loop(dir, 0, workers, c, total, &p50, &p99, &per_write, &per_run);
        printf("  concurrency %3d (%2u workers): %7.0f runs/s  p50 %.2f ms  p99 %.2f ms  "
               "(%.1f transitions per run, %.1f per synced write)\n",
               c, workers, rate, p50, p99, per_run, per_write);
    }
    snprintf(dir, sizeof dir, "%s/flow-nosync", argv[1]);
    double rate = closed_loop(dir, 1, 2, 32, 20000, &p50, &p99, &per_write, &per_run);
    printf("  baseline without fsync, concurrency 32 (2 workers): %.0f runs/s = %.1f us of CPU "
           "per run at most\n",
           rate, 2e6 / rate);
    return 0;
}
