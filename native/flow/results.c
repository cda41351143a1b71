/* SPDX-License-Identifier: MIT
 * Recent results of completed runs: see results.h.
 *
 * The entries sit in a ring of max_entries slots, oldest at `head`, in the
 * order they were put; a slot whose text is NULL is a hole (its entry was
 * replaced). A chained hash of the run ids finds a slot; chains link slot
 * numbers + 1, 0 ending them.
 */
#include "results.h"

#include <pthread.h>
#include <sodium.h>
#include <stdint.h>
#include <string.h>

#include "lodestone/ls_alloc.h"

typedef struct {
    ls_id id;
    char *text; /* NULL: a hole */
    size_t len;
    uint32_t next; /* the next slot of its chain, + 1 (0: none) */
} slot;

struct flow_results {
    pthread_mutex_t mu;
    slot *slots;
    size_t cap;       /* slots */
    size_t head;      /* the oldest slot */
    size_t span;      /* slots in use from head on, holes included */
    uint32_t *chains; /* nchains heads: slot + 1, 0 for none */
    size_t nchains;   /* a power of two */
    size_t count, bytes, max_bytes;
};

static size_t chain_of(const flow_results *c, const ls_id *id)
{
    uint64_t a, b;
    memcpy(&a, id->b, 8);
    memcpy(&b, id->b + 8, 8);
    uint64_t h = (a ^ (b * 0x9E3779B97F4A7C15ull)) * 0xD6E8FEB86659FD93ull;
    return (size_t)(h >> 32) & (c->nchains - 1);
}

static size_t find(const flow_results *c, const ls_id *id)
{
    for (uint32_t s = c->chains[chain_of(c, id)]; s; s = c->slots[s - 1].next)
        if (memcmp(c->slots[s - 1].id.b, id->b, LS_ID_BYTES) == 0) return s - 1;
    return SIZE_MAX;
}

/* Empties slot i (which holds an entry): off its chain, text wiped. */
static void forget(flow_results *c, size_t i)
{
    slot *s = &c->slots[i];
    uint32_t *p = &c->chains[chain_of(c, &s->id)];
    while (*p != i + 1) p = &c->slots[*p - 1].next;
    *p = s->next;
    sodium_memzero(s->text, s->len);
    ls_free(s->text);
    c->count--;
    c->bytes -= s->len;
    s->text = NULL;
    s->len = 0;
    s->next = 0;
}

static void drop_oldest(flow_results *c)
{
    if (c->slots[c->head].text) forget(c, c->head);
    c->head = (c->head + 1) % c->cap;
    c->span--;
}

ls_rc flow_results_new(flow_results **out, size_t max_entries, size_t max_bytes, ls_err *err)
{
    *out = NULL;
    if (max_entries == 0 || max_entries > UINT32_MAX / 4)
        return ls_err_set(err, LS_EINVAL, "results cache: %zu entries", max_entries);
    flow_results *c = ls_calloc(1, sizeof *c);
    size_t nchains = 1;
    while (nchains < 2 * max_entries) nchains *= 2;
    if (c) c->slots = ls_calloc(max_entries, sizeof *c->slots);
    if (c && c->slots) c->chains = ls_calloc(nchains, sizeof *c->chains);
    if (c == NULL || c->chains == NULL) {
        if (c) ls_free(c->slots);
        ls_free(c);
        return ls_err_set(err, LS_ENOMEM, "results cache: out of memory");
    }
    pthread_mutex_init(&c->mu, NULL);
    c->cap = max_entries;
    c->nchains = nchains;
    c->max_bytes = max_bytes;
    *out = c;
    return LS_OK;
}

void flow_results_free(flow_results *c)
{
    if (c == NULL) return;
    flow_results_clear(c);
    pthread_mutex_destroy(&c->mu);
    ls_free(c->chains);
    ls_free(c->slots);
    ls_free(c);
}

void flow_results_put(flow_results *c, const ls_id *id, char *text, size_t len)
{
    if (text == NULL) return;
    pthread_mutex_lock(&c->mu);
    size_t old = find(c, id);
    if (old != SIZE_MAX) forget(c, old); /* (its slot stays a hole) */
    if (len > c->max_bytes) {
        pthread_mutex_unlock(&c->mu);
        sodium_memzero(text, len);
        ls_free(text);
        return;
    }
    while (c->span > 0 && (c->span == c->cap || c->bytes + len > c->max_bytes)) drop_oldest(c);
    size_t i = (c->head + c->span) % c->cap;
    c->span++;
    slot *s = &c->slots[i];
    s->id = *id;
    s->text = text;
    s->len = len;
    uint32_t *chain = &c->chains[chain_of(c, id)];
    s->next = *chain;
    *chain = (uint32_t)i + 1;
    c->count++;
    c->bytes += len;
    pthread_mutex_unlock(&c->mu);
}

int flow_results_get(flow_results *c, const ls_id *id, ls_buf *out, ls_err *err)
{
    pthread_mutex_lock(&c->mu);
    size_t i = find(c, id);
    int got = 0;
    if (i != SIZE_MAX)
        got = ls_buf_set(out, c->slots[i].text, c->slots[i].len, err) == LS_OK ? 1 : -1;
    pthread_mutex_unlock(&c->mu);
    return got;
}

void flow_results_clear(flow_results *c)
{
    pthread_mutex_lock(&c->mu);
    while (c->span > 0) drop_oldest(c);
    c->head = 0;
    pthread_mutex_unlock(&c->mu);
}

size_t flow_results_count(flow_results *c)
{
    pthread_mutex_lock(&c->mu);
    size_t n = c->count;
    pthread_mutex_unlock(&c->mu);
    return n;
}

size_t flow_results_bytes(flow_results *c)
{
    pthread_mutex_lock(&c->mu);
    size_t n = c->bytes;
    pthread_mutex_unlock(&c->mu);
    return n;
}
