/* SPDX-License-Identifier: MIT
 * Masks: secret values replaced by "[secret NAME]" in texts that are kept
 * or shown in clear. The values of a store's secrets are loaded once into
 * one guarded block (with the index that finds them), and again only
 * after the secrets change; texts are then masked without a store read.
 */
#include "ls_config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "lodestone/ls_alloc.h"
#include "lodestone/ls_clock.h"
#include "vault_int.h"

_Static_assert(LS_VAULT_MASK_MIN >= 4, "the index reads the first 4 bytes of every value");

#define BLOOM_LOG2   16 /* bits of the filter of first-4-byte words: 8 KiB */
#define BLOOM_WORDS  ((1u << BLOOM_LOG2) / 64u)
#define RETRY_NS     1000000000LL /* a load cut short by a store error: try again after 1 s */
#define NOTE_NAMES   1024u        /* bytes of names a note lists at most */
#define MARK_OPEN    "[secret "
#define MARK_OPENLEN (sizeof MARK_OPEN - 1)

/* One value: the first 4 bytes as a word (the index's key), where the
 * value is in the block, its name. */
typedef struct {
    uint32_t head;
    uint32_t nlen;
    size_t off; /* in vals */
    size_t len;
    const char *name; /* in the set's names (ordinary memory: names are not secret) */
} mask_entry;

/* The values of one load. Everything derived from a value (the filter,
 * the entries with their heads, the values) is in one sodium_malloc'd
 * block; the names are not secret. Shared by the masks running with it
 * (refs, under the mask's mu); the last one out frees it. */
typedef struct {
    unsigned refs;
    size_t n;
    unsigned char *block; /* sodium_malloc'd: bloom, entries, values */
    size_t block_len;
    const uint64_t *bloom; /* BLOOM_WORDS words, in block */
    mask_entry *e;         /* n entries, in block: by head, longer first, then by name */
    const unsigned char *vals;
    char *names; /* ls_malloc'd, NUL-separated */
} mask_set;

struct ls_vault_mask {
    ls_vault_t *v;
    ls_store_t *st;
    ls_vault_mask_opts o;
    pthread_mutex_t mu;
    mask_set *set;    /* the current values (NULL until the first load) */
    uint64_t gen;     /* ls_vault_secrets_generation when set was loaded */
    int64_t retry_ns; /* set is incomplete (a store error): load again from then (0: complete) */
    ls_buf last_note; /* the last note given, so that a retry does not repeat it */
};

/* ---- the set ---- */

static void set_free(mask_set *s)
{
    if (s == NULL) return;
    if (s->block) {
        sodium_memzero(s->block, s->block_len);
        sodium_free(s->block);
    }
    ls_free(s->names);
    ls_free(s);
}

static uint32_t head_hash(uint32_t w)
{
    return (w * 0x9E3779B1u) >> (32 - BLOOM_LOG2);
}

static int entry_cmp(const void *x, const void *y)
{
    const mask_entry *a = x, *b = y;
    if (a->head != b->head) return a->head < b->head ? -1 : 1;
    if (a->len != b->len) return a->len > b->len ? -1 : 1; /* the longest first */
    return strcmp(a->name, b->name);
}

/* The first place from i on where a value may start (len: none): where
 * the filter holds the 4 bytes there. The scan every byte goes through. */
static size_t next_candidate(const mask_set *s, const unsigned char *t, size_t i, size_t len)
{
    if (len < LS_VAULT_MASK_MIN) return len;
    for (size_t end = len - 3; i < end; i++) {
        uint32_t w;
        memcpy(&w, t + i, 4);
        uint32_t h = head_hash(w);
        if ((s->bloom[h >> 6] >> (h & 63)) & 1u) return i;
    }
    return len;
}

/* The longest value that text (left bytes at p) starts with, or NULL. */
static const mask_entry *match_at(const mask_set *s, const unsigned char *p, size_t left)
{
    if (left < LS_VAULT_MASK_MIN) return NULL;
    uint32_t w;
    memcpy(&w, p, 4);
    uint32_t h = head_hash(w);
    if (!((s->bloom[h >> 6] >> (h & 63)) & 1u)) return NULL;
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->e[mid].head < w)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo; i < s->n && s->e[i].head == w; i++) {
        const mask_entry *e = &s->e[i];
        if (e->len <= left && memcmp(p + 4, s->vals + e->off + 4, e->len - 4) == 0) return e;
    }
    return NULL;
}

/* ---- loading ---- */

/* What one load gathers before the block is made. */
typedef struct {
    ls_buf names;  /* every name, NUL-terminated each */
    size_t nnames; /* ... how many */
    /* The values that opened and are long enough, one after the other in
     * one sodium_malloc'd block (grown by doubling): each secret is freed
     * once copied, so that a load holds two guarded allocations at a time,
     * not one per secret (thousands of them, each its own pages and
     * mappings, ran out of mappings: vm.max_map_count). */
    unsigned char *vals;
    size_t vals_cap;
    size_t *vlen;
    const char **svname;
    size_t nsv;
    size_t total; /* their bytes */
    ls_buf bad;   /* names that did not open, ", "-separated (for the note) */
    size_t nbad;
    ls_err why;     /* the first reason one did not open */
    ls_err stopped; /* a store or memory error that cut the load short */
    int incomplete;
    int oom; /* a name could not be kept */
} load_state;

static int collect_name(void *ud, const char *name, size_t len)
{
    load_state *ls = ud;
    if (ls_buf_append(&ls->names, name, len, NULL) != LS_OK ||
        ls_buf_putc(&ls->names, '\0', NULL) != LS_OK) {
        if (ls->names.len && ls->names.ptr[ls->names.len - 1] != '\0') ls->names.len -= len;
        ls->oom = 1;
        return 1;
    }
    ls->nnames++;
    return 0;
}

static void note_bad(load_state *ls, const char *name, const ls_err *why)
{
    if (ls->nbad++ == 0) ls->why = *why;
    if (ls->bad.len > NOTE_NAMES) return;
    if (ls->bad.len) ls_buf_append(&ls->bad, ", ", 2, NULL);
    ls_buf_append(&ls->bad, name, strlen(name), NULL);
}

/* Copies sec's value (name's) after the values staged so far. */
static ls_rc stage_value(load_state *ls, const char *name, const ls_secret_t *sec, ls_err *err)
{
    size_t len = ls_secret_len(sec);
    if (len > SIZE_MAX / 2 - ls->total)
        return ls_err_set(err, LS_ENOMEM, "secret \"%s\": too long to mask", name);
    if (ls->total + len > ls->vals_cap) {
        size_t cap = ls->vals_cap ? ls->vals_cap : 4096;
        while (cap < ls->total + len) cap *= 2;
        unsigned char *nv = sodium_malloc(cap);
        if (nv == NULL)
            return ls_err_set(err, LS_ENOMEM, "secret \"%s\": out of guarded memory", name);
        if (ls->vals) {
            memcpy(nv, ls->vals, ls->total);
            sodium_memzero(ls->vals, ls->vals_cap);
            sodium_free(ls->vals);
        }
        ls->vals = nv;
        ls->vals_cap = cap;
    }
    memcpy(ls->vals + ls->total, ls_secret_data(sec), len);
    ls->vlen[ls->nsv] = len;
    ls->svname[ls->nsv++] = name;
    ls->total += len;
    return LS_OK;
}

/* Reads every secret of m's store: the names, then each value. A secret
 * that does not open is noted and skipped; a store or memory failure
 * stops the reading, keeping what was read (incomplete). */
static void load_values(ls_vault_mask_t *m, load_state *ls)
{
    ls_err err = {0};
    ls_rc rc = ls_vault_secret_list(m->st, collect_name, ls, &err);
    if (rc == LS_OK && ls->oom)
        rc = ls_err_set(&err, LS_ENOMEM, "out of memory listing the secrets");
    if (rc != LS_OK) { /* the names listed before it are loaded all the same */
        ls->incomplete = 1;
        ls->stopped = err;
    }
    if (ls->nnames == 0) return;
    ls->vlen = ls_calloc(ls->nnames, sizeof *ls->vlen);
    ls->svname = ls_calloc(ls->nnames, sizeof *ls->svname);
    if (ls->vlen == NULL || ls->svname == NULL) {
        ls->incomplete = 1;
        if (ls->stopped.code == LS_OK)
            ls_err_set(&ls->stopped, LS_ENOMEM, "out of memory loading the secrets");
        return;
    }
    const char *name = (const char *)ls->names.ptr;
    for (size_t i = 0; i < ls->nnames; i++, name += strlen(name) + 1) {
        ls_secret_t *sec = NULL;
        ls_rc r = ls_vault_secret_get(m->v, m->st, name, &sec, &err);
        if (r == LS_OK && ls_secret_len(sec) >= LS_VAULT_MASK_MIN)
            r = stage_value(ls, name, sec, &err);
        else if (r == LS_OK)
            r = LS_ENOTFOUND; /* short: not masked */
        ls_secret_free(sec);
        if (r == LS_OK) continue;
        if (r == LS_ENOTFOUND) continue; /* short, or deleted meanwhile */
        if (r == LS_EAUTH || r == LS_EFORMAT || r == LS_EINVAL) {
            note_bad(ls, name, &err); /* it does not open: until it is set again */
            continue;
        }
        ls->incomplete = 1; /* a store or memory failure: try again later */
        if (ls->stopped.code == LS_OK) ls->stopped = err;
        note_bad(ls, name, &err);
    }
}

/* Makes the set from what load_values read (NULL: out of memory). */
static mask_set *make_set(const load_state *ls)
{
    mask_set *s = ls_calloc(1, sizeof *s);
    if (s == NULL) return NULL;
    s->refs = 1;
    s->n = ls->nsv;
    size_t ebytes = ls->nsv * sizeof(mask_entry);
    /* A multiple of 16: sodium_malloc puts the block against its guard
     * page, so its start is aligned only when its size is. */
    s->block_len = (BLOOM_WORDS * sizeof(uint64_t) + ebytes + ls->total + 15u) & ~(size_t)15u;
    s->block = sodium_malloc(s->block_len);
    s->names = ls_malloc(ls->names.len ? ls->names.len : 1);
    if (s->block == NULL || s->names == NULL) {
        if (s->block == NULL) s->block_len = 0;
        set_free(s);
        return NULL;
    }
    memset(s->block, 0, BLOOM_WORDS * sizeof(uint64_t));
    memcpy(s->names, ls->names.ptr ? (const char *)ls->names.ptr : "", ls->names.len);
    uint64_t *bloom = (uint64_t *)s->block;
    s->bloom = bloom;
    s->e = (mask_entry *)(s->block + BLOOM_WORDS * sizeof(uint64_t));
    unsigned char *vals = s->block + BLOOM_WORDS * sizeof(uint64_t) + ebytes;
    s->vals = vals;
    size_t off = 0;
    for (size_t i = 0; i < ls->nsv; i++) {
        const unsigned char *d = ls->vals + off;
        size_t len = ls->vlen[i];
        mask_entry *e = &s->e[i];
        memcpy(vals + off, d, len);
        memcpy(&e->head, d, 4);
        e->off = off;
        e->len = len;
        e->name = s->names + (ls->svname[i] - (const char *)ls->names.ptr);
        e->nlen = (uint32_t)strlen(e->name);
        uint32_t h = head_hash(e->head);
        bloom[h >> 6] |= (uint64_t)1 << (h & 63);
        off += len;
    }
    if (s->n > 1) qsort(s->e, s->n, sizeof *s->e, entry_cmp);
    return s;
}

static void load_free(load_state *ls)
{
    if (ls->vals) {
        sodium_memzero(ls->vals, ls->vals_cap);
        sodium_free(ls->vals);
    }
    ls_free(ls->vlen);
    ls_free(ls->svname);
    ls_buf_free(&ls->names);
    ls_buf_free(&ls->bad);
}

/* The note for a load that left secrets out, into note ("" when none). */
static void load_note(const load_state *ls, size_t loaded, ls_buf *note)
{
    ls_buf_clear(note);
    if (ls->nbad)
        ls_buf_printf(note, NULL,
                      "secret masking: %zu secret%s could not be loaded and %s not masked in "
                      "texts kept in clear (history errors, log lines): %.*s%s (first reason: "
                      "%s)",
                      ls->nbad, ls->nbad == 1 ? "" : "s", ls->nbad == 1 ? "is" : "are",
                      (int)ls->bad.len, ls->bad.ptr ? (const char *)ls->bad.ptr : "",
                      ls->bad.len > NOTE_NAMES ? ", ..." : "", ls_err_text(&ls->why));
    if (ls->incomplete)
        ls_buf_printf(note, NULL,
                      "%ssecret masking: reading the secrets failed (%s); masking with the %zu "
                      "loaded, trying again in a second",
                      note->len ? "; " : "", ls_err_text(&ls->stopped), loaded);
}

/* Loads m's set again (caller holds mu; gen is the generation read before
 * the load). The old set stays when a new one cannot be made. note
 * receives what to tell (NUL-terminated), or stays empty. */
static void reload(ls_vault_mask_t *m, uint64_t gen, ls_buf *note)
{
    load_state ls = {.names = LS_BUF_INIT, .bad = LS_BUF_INIT};
    load_values(m, &ls);
    mask_set *s = make_set(&ls);
    if (s == NULL) {
        ls.incomplete = 1;
        ls_err_set(&ls.stopped, LS_ENOMEM, "out of memory for %zu values", ls.nsv);
    } else {
        if (m->set && --m->set->refs == 0) set_free(m->set);
        m->set = s;
        m->gen = gen;
    }
    load_note(&ls, s ? s->n : 0, note);
    m->retry_ns = ls.incomplete ? ls_clock_mono_ns(NULL) + RETRY_NS : 0;
    /* Told once: a load that finds the same secrets missing (a retry, a
     * change of another secret) says nothing new. */
    if (note->len && m->last_note.len == note->len &&
        memcmp(m->last_note.ptr, note->ptr, note->len) == 0)
        ls_buf_clear(note);
    else if (ls_buf_set(&m->last_note, note->ptr, note->len, NULL) != LS_OK)
        ls_buf_clear(&m->last_note);
    load_free(&ls);
}

/* The current set, loaded again first when the secrets changed (or a
 * load to retry is due), with a reference the caller gives back with
 * set_release. NULL when none could ever be made. */
static mask_set *set_acquire(ls_vault_mask_t *m)
{
    ls_buf note = LS_BUF_INIT;
    pthread_mutex_lock(&m->mu);
    uint64_t gen = ls_vault_secrets_generation();
    if (m->set == NULL || m->gen != gen || (m->retry_ns && ls_clock_mono_ns(NULL) >= m->retry_ns))
        reload(m, gen, &note);
    mask_set *s = m->set;
    if (s) s->refs++;
    pthread_mutex_unlock(&m->mu);
    if (note.len && m->o.note) m->o.note(m->o.note_ud, (const char *)note.ptr);
    ls_buf_free(&note);
    return s;
}

static void set_release(ls_vault_mask_t *m, mask_set *s)
{
    if (s == NULL) return;
    pthread_mutex_lock(&m->mu);
    int last = --s->refs == 0;
    pthread_mutex_unlock(&m->mu);
    if (last) set_free(s);
}

/* ---- masking ---- */

/* State of one masking: out grows from base, by at most limit bytes. */
typedef struct {
    const mask_set *s;
    const unsigned char *t;
    size_t len;
    ls_buf *out;
    size_t base, limit;
} mask_run;

static size_t room(const mask_run *r)
{
    size_t n = r->out->len - r->base;
    return n >= r->limit ? 0 : r->limit - n;
}

static ls_rc put_mark(mask_run *r, const mask_entry *e, ls_err *err)
{
    ls_rc rc = ls_buf_append(r->out, MARK_OPEN, MARK_OPENLEN, err);
    if (rc == LS_OK) rc = ls_buf_append(r->out, e->name, e->nlen, err);
    if (rc == LS_OK) rc = ls_buf_putc(r->out, ']', err);
    return rc;
}

/* Appends text [from, to) as it is; *stop receives where it stopped
 * short for want of room (to when it did not): where a character starts,
 * never before from. */
static ls_rc put_plain(mask_run *r, size_t from, size_t to, size_t *stop, ls_err *err)
{
    size_t n = to - from, fit = room(r);
    *stop = to;
    if (n > fit) {
        n = fit;
        /* As ls_utf8_cut: back over a character the cut would split. */
        for (int i = 0; i < 3 && n > 0 && (r->t[from + n] & 0xC0u) == 0x80u; i++) n--;
        *stop = from + n;
    }
    return n ? ls_buf_append(r->out, r->t + from, n, err) : LS_OK;
}

/* Masks r->t; *used receives how many bytes of it the output stands for. */
static ls_rc mask_run_text(mask_run *r, size_t *used, ls_err *err)
{
    size_t i = 0, plain = 0, stop;
    ls_rc rc;
    while ((i = next_candidate(r->s, r->t, i, r->len)) < r->len) {
        const mask_entry *e = match_at(r->s, r->t + i, r->len - i);
        if (e == NULL) {
            i++;
            continue;
        }
        if ((rc = put_plain(r, plain, i, &stop, err)) != LS_OK) return rc;
        if (stop < i) {
            *used = stop;
            return LS_OK;
        }
        /* A stretch: this occurrence and every one that starts inside it
         * and ends past it, one mark each. */
        size_t mark_at = r->out->len, end = i + e->len;
        if ((rc = put_mark(r, e, err)) != LS_OK) return rc;
        for (size_t j = i + 1; j < end; j++) {
            const mask_entry *x = match_at(r->s, r->t + j, r->len - j);
            if (x == NULL || j + x->len <= end) continue;
            end = j + x->len;
            if ((rc = put_mark(r, x, err)) != LS_OK) return rc;
        }
        if (r->out->len - r->base > r->limit) { /* the stretch does not fit: left out whole */
            r->out->len = mark_at;
            r->out->ptr[mark_at] = '\0';
            *used = i;
            return LS_OK;
        }
        i = plain = end;
    }
    if ((rc = put_plain(r, plain, r->len, &stop, err)) != LS_OK) return rc;
    *used = stop;
    return LS_OK;
}

/* ---- the API ---- */

ls_rc ls_vault_mask_new(ls_vault_mask_t **out, ls_vault_t *v, ls_store_t *st,
                        const ls_vault_mask_opts *opts, ls_err *err)
{
    if (out == NULL || v == NULL || st == NULL)
        return ls_err_set(err, LS_EINVAL, "a mask needs a vault and a store");
    *out = NULL;
    ls_vault_mask_t *m = ls_calloc(1, sizeof *m);
    if (m == NULL) return ls_err_set(err, LS_ENOMEM, "out of memory for a mask");
    m->v = v;
    m->st = st;
    if (opts) m->o = *opts;
    if (pthread_mutex_init(&m->mu, NULL) != 0) {
        ls_free(m);
        return ls_err_set(err, LS_ENOMEM, "cannot make a mask's lock");
    }
    *out = m;
    return LS_OK;
}

void ls_vault_mask_free(ls_vault_mask_t *m)
{
    if (m == NULL) return;
    if (m->set && --m->set->refs == 0) set_free(m->set);
    ls_buf_free(&m->last_note);
    pthread_mutex_destroy(&m->mu);
    ls_free(m);
}

ls_rc ls_vault_mask_text(ls_vault_mask_t *m, const void *text, size_t len, size_t limit,
                         ls_buf *out, size_t *used, ls_err *err)
{
    if (m == NULL || out == NULL || used == NULL || (text == NULL && len))
        return ls_err_set(err, LS_EINVAL, "mask text needs a mask, a text and an out buffer");
    *used = 0;
    mask_set *s = set_acquire(m);
    mask_run r = {.s = s, .t = text, .len = len, .out = out, .base = out->len, .limit = limit};
    ls_rc rc;
    if (s == NULL || s->n == 0 || len < LS_VAULT_MASK_MIN)
        rc = put_plain(&r, 0, len, used, err); /* nothing to mask with, or in */
    else
        rc = mask_run_text(&r, used, err);
    set_release(m, s);
    if (rc != LS_OK) {
        out->len = r.base;
        if (out->ptr) out->ptr[r.base] = '\0';
        *used = 0;
    }
    return rc;
}

size_t ls_vault_mask_count(ls_vault_mask_t *m)
{
    if (m == NULL) return 0;
    mask_set *s = set_acquire(m);
    size_t n = s ? s->n : 0;
    set_release(m, s);
    return n;
}
