/* SPDX-License-Identifier: MIT
 * The table of unfinished runs held in memory: a chained hash on the
 * random bits of the run id, doubled when it fills. Callers hold the
 * engine's mutex. Finished runs leave the table, so memory follows the
 * number of unfinished runs, not of stored ones.
 */
#include "ls_config.h"

#include <sodium.h>
#include <string.h>

#include "flow_int.h"
#include "lodestone/ls_alloc.h"

static size_t hash_id(const ls_id *id)
{
    uint64_t h;
    memcpy(&h, id->b + 8, sizeof h); /* random bits */
    return (size_t)(h ^ (h >> 29));
}

ls_rc flow_runtab_init(flow_runtab *t, ls_err *err)
{
    t->nb = 1024;
    t->n = 0;
    t->b = ls_calloc(t->nb, sizeof(flow_run *));
    if (t->b == NULL) return ls_err_set(err, LS_ENOMEM, "run table: out of memory");
    return LS_OK;
}

void flow_runtab_free(flow_runtab *t)
{
    if (t->b == NULL) return;
    for (size_t i = 0; i < t->nb; i++) {
        flow_run *r = t->b[i];
        while (r) {
            flow_run *next = r->hnext;
            flow_run_free(r);
            r = next;
        }
    }
    ls_free(t->b);
    t->b = NULL;
    t->n = t->nb = 0;
}

flow_run *flow_runtab_find(const flow_runtab *t, const ls_id *id)
{
    for (flow_run *r = t->b[hash_id(id) & (t->nb - 1)]; r; r = r->hnext)
        if (memcmp(r->id.b, id->b, LS_ID_BYTES) == 0) return r;
    return NULL;
}

static void grow(flow_runtab *t)
{
    size_t nb = t->nb * 2;
    flow_run **b = ls_calloc(nb, sizeof(flow_run *));
    if (b == NULL) return; /* stay slower, not wrong */
    for (size_t i = 0; i < t->nb; i++) {
        flow_run *r = t->b[i];
        while (r) {
            flow_run *next = r->hnext;
            size_t j = hash_id(&r->id) & (nb - 1);
            r->hnext = b[j];
            b[j] = r;
            r = next;
        }
    }
    ls_free(t->b);
    t->b = b;
    t->nb = nb;
}

ls_rc flow_runtab_add(flow_runtab *t, flow_run *r, ls_err *err)
{
    (void)err;
    if (t->n >= t->nb) grow(t);
    size_t j = hash_id(&r->id) & (t->nb - 1);
    r->hnext = t->b[j];
    t->b[j] = r;
    t->n++;
    return LS_OK;
}

void flow_runtab_remove(flow_runtab *t, flow_run *r)
{
    flow_run **p = &t->b[hash_id(&r->id) & (t->nb - 1)];
    while (*p && *p != r) p = &(*p)->hnext;
    if (*p) {
        *p = r->hnext;
        t->n--;
    }
    r->hnext = NULL;
}

static char *dup_n(const char *s, size_t n)
{
    char *d = ls_malloc(n + 1);
    if (d) {
        if (n) memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

flow_run *flow_run_new(const ls_id *id, const char *name, size_t nlen, const char *type,
                       size_t tlen)
{
    flow_run *r = ls_calloc(1, sizeof *r);
    if (r == NULL) return NULL;
    r->id = *id;
    r->name = dup_n(name, nlen);
    r->type = dup_n(type, tlen);
    if (r->name == NULL || r->type == NULL) {
        flow_run_free(r);
        return NULL;
    }
    r->status = LS_RUN_RUNNING;
    return r;
}

void flow_run_free(flow_run *r)
{
    if (r == NULL) return;
    ls_free(r->name);
    ls_free(r->type);
    ls_free(r->wait_name);
    ls_free(r->fresh);
    ls_free(r->custom);
    if (r->output) sodium_memzero(r->output, r->output_len);
    ls_free(r->output);
    ls_free(r->version);
    ls_free(r->ckey);
    ls_free(r->branch);
    ls_free(r);
}
