/* SPDX-License-Identifier: MIT
 * Verified-token cache: a bounded LRU of tokens that passed ls_jwt_verify
 * with the cache's options. Entries and buckets are allocated once; lookup
 * is a seeded hash of the token's end, a chained hash table and a full comparison
 * of the token text, so a hash collision can never hand out another
 * token's claims. An entry is served until min(exp + leeway,
 * inserted + ttl) and only while the key that verified it is still in the
 * keyset given to the lookup. One thread per cache. */
#include "ls_config.h"

#include <string.h>

#include <sodium.h>

#include "jwt_int.h"
#include "lodestone/ls_alloc.h"

#define NIL          UINT32_MAX
#define CAPACITY_MAX ((size_t)1 << 24)
#define TTL_DEFAULT  300
/* Bytes of the token's end that select the bucket. Only verified tokens are
 * stored, so these are signature bytes, unpredictable to anyone without the
 * signing key; the hash is seeded per cache, and a hit compares the whole
 * token. 16 bytes spread entries as well as 64. */
#define HASHED_TAIL 16

struct entry {
    uint64_t hash;
    uint32_t chain;      /* next in bucket, or in the free list */
    uint32_t prev, next; /* LRU list: head is the most recently used */
    int used;
    char *token; /* copy of the token; the buffer is kept for reuse */
    size_t len, cap;
    ls_jwt_t *jwt;
    int64_t deadline_ms; /* served while now < deadline */
    uint64_t ks_serial;  /* keyset last seen to hold the key */
};

struct ls_jwt_cache {
    struct entry *e;
    uint32_t *bucket;
    uint32_t mask, cap;
    uint32_t head, tail, free_list;
    ls_jwt_opts opts; /* deep copy */
    void *opts_mem;
    int64_t ttl_ms;
    uint64_t seed[2]; /* random, per cache (token_hash) */
    uint64_t (*hash_fn)(const char *token, size_t len);
    ls_jwt_cache_stats st;
};

/* ---- hashing ----
 * The bucket comes from the token's length and its last HASHED_TAIL
 * bytes, mixed with a random per-cache seed. Those bytes lie in the
 * signature, and only verified tokens are ever stored, so nobody without
 * the signing key can choose them, and nobody without the seed can tell
 * which bucket they select: no one can pile entries into one chain. A
 * token that is not stored costs a walk of one chain of verified entries,
 * whatever its bytes. The entry's full comparison is what makes a hit
 * safe, so the mixing needs to spread, not to resist inversion: two rounds
 * of a 64-bit multiply-xorshift finaliser, a few nanoseconds, where keyed
 * SipHash over the same bytes took about 60 ns, an eighth of a cached
 * decision. */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= UINT64_C(0xff51afd7ed558ccd);
    x ^= x >> 33;
    x *= UINT64_C(0xc4ceb9fe1a85ec53);
    x ^= x >> 33;
    return x;
}

static uint64_t token_hash(const ls_jwt_cache_t *c, const char *token, size_t len)
{
    if (c->hash_fn) return c->hash_fn(token, len);
    unsigned char tail[HASHED_TAIL] = {0};
    size_t n = len < HASHED_TAIL ? len : HASHED_TAIL;
    if (n) memcpy(tail, token + len - n, n);
    uint64_t a, b;
    memcpy(&a, tail, 8);
    memcpy(&b, tail + 8, 8);
    return mix64(a ^ c->seed[0] ^ mix64(b ^ c->seed[1] ^ (uint64_t)len));
}

void ls_jwt_cache_set_hash_for_test(ls_jwt_cache_t *c, uint64_t (*fn)(const char *, size_t))
{
    ls_jwt_cache_clear(c);
    c->hash_fn = fn;
}

/* ---- lists ---- */

static void lru_unlink(ls_jwt_cache_t *c, uint32_t i)
{
    struct entry *e = &c->e[i];
    if (e->prev != NIL)
        c->e[e->prev].next = e->next;
    else
        c->head = e->next;
    if (e->next != NIL)
        c->e[e->next].prev = e->prev;
    else
        c->tail = e->prev;
    e->prev = e->next = NIL;
}

static void lru_push_front(ls_jwt_cache_t *c, uint32_t i)
{
    struct entry *e = &c->e[i];
    e->prev = NIL;
    e->next = c->head;
    if (c->head != NIL) c->e[c->head].prev = i;
    c->head = i;
    if (c->tail == NIL) c->tail = i;
}

static void bucket_unlink(ls_jwt_cache_t *c, uint32_t i)
{
    uint32_t *p = &c->bucket[c->e[i].hash & c->mask];
    while (*p != i) p = &c->e[*p].chain;
    *p = c->e[i].chain;
}

/* Removes entry i, keeping its token buffer for the next insert. */
static void drop(ls_jwt_cache_t *c, uint32_t i)
{
    struct entry *e = &c->e[i];
    bucket_unlink(c, i);
    lru_unlink(c, i);
    ls_jwt_free(e->jwt);
    e->jwt = NULL;
    if (e->token) sodium_memzero(e->token, e->len); /* tokens are bearer credentials */
    e->len = 0;
    e->used = 0;
    e->chain = c->free_list;
    c->free_list = i;
    c->st.count--;
}

static uint32_t find(const ls_jwt_cache_t *c, uint64_t h, const char *token, size_t len)
{
    for (uint32_t i = c->bucket[h & c->mask]; i != NIL; i = c->e[i].chain) {
        const struct entry *e = &c->e[i];
        if (e->hash == h && e->len == len && memcmp(e->token, token, len) == 0) return i;
    }
    return NIL;
}

/* ---- life cycle ---- */

ls_rc ls_jwt_cache_new(ls_jwt_cache_t **out, const ls_jwt_cache_opts *copts,
                       const ls_jwt_opts *vopts, ls_err *err)
{
    if (copts == NULL || copts->capacity == 0 || copts->capacity > CAPACITY_MAX)
        return ls_err_set(err, LS_EINVAL, "cache capacity must be 1 to %zu", CAPACITY_MAX);
    if (copts->ttl_s < 0 || copts->ttl_s > INT64_C(86400) * 365)
        return ls_err_set(err, LS_EINVAL, "cache ttl must be 0 to one year, got %lld s",
                          (long long)copts->ttl_s);
    ls_rc rc = ls_jwt_opts_check(vopts, err);
    if (rc != LS_OK) return rc;
    if (sodium_init() < 0) return ls_err_set(err, LS_EIO, "libsodium failed to initialise");

    size_t nb = 1;
    while (nb < copts->capacity * 2) nb *= 2;
    rc = LS_ENOMEM;
    ls_jwt_cache_t *c = ls_calloc(1, sizeof *c);
    if (c == NULL) goto fail;
    c->cap = (uint32_t)copts->capacity;
    c->mask = (uint32_t)(nb - 1);
    if ((c->e = ls_calloc(c->cap, sizeof *c->e)) == NULL) goto fail;
    if ((c->bucket = ls_malloc(nb * sizeof *c->bucket)) == NULL) goto fail;
    if ((rc = ls_jwt_opts_copy(&c->opts, &c->opts_mem, vopts, err)) != LS_OK) goto fail;
    for (size_t i = 0; i < nb; i++) c->bucket[i] = NIL;
    for (uint32_t i = 0; i < c->cap; i++) {
        c->e[i].chain = i + 1 < c->cap ? i + 1 : NIL;
        c->e[i].prev = c->e[i].next = NIL;
    }
    c->free_list = 0;
    c->head = c->tail = NIL;
    c->ttl_ms = (copts->ttl_s ? copts->ttl_s : TTL_DEFAULT) * 1000;
    randombytes_buf(c->seed, sizeof c->seed);
    *out = c;
    return LS_OK;
fail:
    if (rc == LS_ENOMEM) ls_err_set(err, rc, "out of memory creating a token cache");
    if (c != NULL) {
        ls_free(c->bucket);
        ls_free(c->e);
        ls_free(c);
    }
    return rc;
}

void ls_jwt_cache_free(ls_jwt_cache_t *c)
{
    if (c == NULL) return;
    ls_jwt_cache_clear(c);
    for (uint32_t i = 0; i < c->cap; i++) ls_free(c->e[i].token);
    ls_free(c->e);
    ls_free(c->bucket);
    ls_free(c->opts_mem);
    ls_free(c);
}

void ls_jwt_cache_clear(ls_jwt_cache_t *c)
{
    while (c->head != NIL) drop(c, c->head);
}

void ls_jwt_cache_get_stats(const ls_jwt_cache_t *c, ls_jwt_cache_stats *stats)
{
    *stats = c->st;
}

/* ---- lookup and insert ---- */

/* Finds a live entry for token; drops a stale one. */
static uint32_t lookup(ls_jwt_cache_t *c, const ls_jwks_t *keys, uint64_t h, const char *token,
                       size_t len, int64_t now_ms)
{
    uint32_t i = find(c, h, token, len);
    if (i == NIL) return NIL;
    struct entry *e = &c->e[i];
    if (now_ms >= e->deadline_ms) goto stale;
    if (e->ks_serial != keys->serial) {
        /* Another keyset (a reload): is the key still there? */
        if (!ls_jwks_has_fp(keys, e->jwt->key_fp)) goto stale;
        e->ks_serial = keys->serial;
    }
    if (c->head != i) {
        lru_unlink(c, i);
        lru_push_front(c, i);
    }
    return i;
stale:
    drop(c, i);
    c->st.invalidations++;
    return NIL;
}

ls_rc ls_jwt_cache_lookup(ls_jwt_cache_t *c, const ls_jwks_t *keys, const char *token, size_t len,
                          ls_jwt_t **out, ls_err *err)
{
    *out = NULL;
    if (c == NULL || keys == NULL || (token == NULL && len > 0))
        return ls_err_set(err, LS_EINVAL, "cache, keys and token are required");
    size_t max = c->opts.max_token_len ? c->opts.max_token_len : LS_JWT_MAX_TOKEN_DEFAULT;
    uint32_t i = NIL;
    if (len <= max)
        i = lookup(c, keys, token_hash(c, token, len), token, len, ls_clock_wall_ms(c->opts.clock));
    if (i == NIL) {
        c->st.misses++;
        return LS_ENOTFOUND;
    }
    c->st.hits++;
    *out = ls_jwt_ref(c->e[i].jwt);
    return LS_OK;
}

static int64_t deadline_of(const ls_jwt_cache_t *c, const ls_jwt_t *t, int64_t now_ms)
{
    int64_t d = now_ms + c->ttl_ms;
    if (t->has_exp) {
        double x = (t->exp + (double)c->opts.leeway_s) * 1000.0;
        if (x <= (double)now_ms) return now_ms;
        if (x < (double)d) d = (int64_t)x;
    }
    return d;
}

static ls_rc insert(ls_jwt_cache_t *c, const ls_jwks_t *keys, uint64_t h, const char *token,
                    size_t len, ls_jwt_t *t, int64_t now_ms, ls_err *err)
{
    int64_t deadline = deadline_of(c, t, now_ms);
    if (deadline <= now_ms) return LS_OK;
    uint32_t i = c->free_list != NIL ? c->free_list : c->tail;
    struct entry *e = &c->e[i];
    if (e->cap < len) {
        /* Grow before evicting, so a failure leaves the cache as it was. */
        char *p = ls_realloc(e->token, len);
        if (p == NULL) return ls_err_set(err, LS_ENOMEM, "out of memory caching a token");
        e->token = p;
        e->cap = len;
    }
    if (e->used) {
        drop(c, i);
        c->st.evictions++;
    }
    c->free_list = e->chain; /* i is the head of the free list now */
    memcpy(e->token, token, len);
    e->len = len;
    e->hash = h;
    e->jwt = ls_jwt_ref(t);
    e->deadline_ms = deadline;
    e->ks_serial = keys->serial;
    e->used = 1;
    e->chain = c->bucket[h & c->mask];
    c->bucket[h & c->mask] = i;
    lru_push_front(c, i);
    c->st.count++;
    c->st.inserts++;
    return LS_OK;
}

ls_rc ls_jwt_cache_verify(ls_jwt_cache_t *c, const ls_jwks_t *keys, const char *token, size_t len,
                          ls_jwt_t **out, ls_jwt_reason *reason, ls_err *err)
{
    ls_jwt_reason dummy;
    if (reason == NULL) reason = &dummy;
    *out = NULL;
    *reason = LS_JWT_ERROR;
    if (c == NULL || keys == NULL || (token == NULL && len > 0))
        return ls_err_set(err, LS_EINVAL, "cache, keys and token are required");
    size_t max = c->opts.max_token_len ? c->opts.max_token_len : LS_JWT_MAX_TOKEN_DEFAULT;
    if (len == 0 || len > max) { /* never hash an empty or oversized token: let verify reject it */
        c->st.misses++;
        return ls_jwt_verify(out, keys, token, len, &c->opts, reason, err);
    }
    int64_t now_ms = ls_clock_wall_ms(c->opts.clock);
    uint64_t h = token_hash(c, token, len);
    uint32_t i = lookup(c, keys, h, token, len, now_ms);
    if (i != NIL) {
        c->st.hits++;
        *reason = LS_JWT_OK;
        *out = ls_jwt_ref(c->e[i].jwt);
        return LS_OK;
    }
    c->st.misses++;
    ls_jwt_t *t;
    ls_rc rc = ls_jwt_verify(&t, keys, token, len, &c->opts, reason, err);
    if (rc != LS_OK) return rc;
    rc = insert(c, keys, h, token, len, t, now_ms, err);
    if (rc != LS_OK) {
        ls_jwt_free(t);
        *reason = LS_JWT_ERROR;
        return rc;
    }
    *out = t;
    return LS_OK;
}
