/* SPDX-License-Identifier: MIT
 * Timer queue: a binary min-heap of (due, node) pairs over a pool of timer
 * nodes, plus an open-addressing hash index from (run id, seq) to node, so
 * that removing a cancelled or fired timer by key is O(log n). Promises:
 * deterministic order on ties; a failed allocation leaves the queue as it
 * was.
 *
 * Why a heap and not a hierarchical wheel: due times span milliseconds to
 * years and must come out in an exact, deterministic order; a wheel needs
 * cascading and a sort within a slot for that, while the heap gives it
 * directly at O(log n), about 20 levels for a million timers.
 */
#include "ls_config.h"

#include <assert.h>
#include <string.h>

#include "lodestone/ls_alloc.h"
#include "timerq.h"

#define NONE      UINT32_MAX
#define MIN_CAP   16
#define MAX_COUNT (UINT32_MAX / 4) /* ids and hash slots stay in uint32 */

struct node {
    int64_t due;
    uint8_t run[LS_FLOW_RUN_ID_BYTES];
    uint64_t seq;
    uint32_t pos;  /* heap index while queued; next free node while free */
    uint32_t hash; /* of (run, seq) */
};

struct hent {
    int64_t due; /* copied from the node so that sifting rarely touches nodes */
    uint32_t node;
};

struct ls_flow_timerq {
    struct hent *heap; /* count entries, heap_cap room */
    size_t count, heap_cap;
    struct node *nodes; /* nodes_used ever handed out, nodes_cap room */
    size_t nodes_used, nodes_cap;
    uint32_t free_head;
    uint32_t *slots; /* hash index: node id + 1, 0 = empty; power-of-two size */
    size_t slots_cap;
};

/* ---- keys ---- */

static uint64_t load64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* A fast mixer, not a keyed hash: run ids are made by the daemon (random
 * or time-ordered), not chosen by clients. */
static uint32_t hash_key(const uint8_t *run, uint64_t seq)
{
    uint64_t h = load64(run) * UINT64_C(0x9E3779B97F4A7C15);
    h ^= (load64(run + 8) + (h >> 29)) * UINT64_C(0xBF58476D1CE4E5B9);
    h ^= (seq + (h >> 31)) * UINT64_C(0x94D049BB133111EB);
    h ^= h >> 32;
    h *= UINT64_C(0xD6E8FEB86659FD93);
    h ^= h >> 32;
    return (uint32_t)h;
}

static int key_eq(const struct node *n, const uint8_t *run, uint64_t seq)
{
    return n->seq == seq && memcmp(n->run, run, LS_FLOW_RUN_ID_BYTES) == 0;
}

/* ---- hash index ---- */

static void index_put(uint32_t *slots, size_t cap, uint32_t hash, uint32_t id)
{
    size_t mask = cap - 1, i = hash & mask;
    while (slots[i]) i = (i + 1) & mask;
    slots[i] = id + 1;
}

/* Slot holding (run, seq), or NONE. */
static uint32_t index_find(const ls_flow_timerq_t *q, const uint8_t *run, uint64_t seq)
{
    size_t mask = q->slots_cap - 1, i = hash_key(run, seq) & mask;
    for (; q->slots[i]; i = (i + 1) & mask)
        if (key_eq(&q->nodes[q->slots[i] - 1], run, seq)) return (uint32_t)i;
    return NONE;
}

/* Empties slot i and moves later entries of its cluster back (no
 * tombstones, so probes stay short however many removes happen). */
static void index_delete(ls_flow_timerq_t *q, size_t i)
{
    size_t mask = q->slots_cap - 1, j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!q->slots[j]) break;
        size_t home = q->nodes[q->slots[j] - 1].hash & mask;
        /* leave j where it is if its home lies cyclically in (i, j] */
        int stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (stays) continue;
        q->slots[i] = q->slots[j];
        i = j;
    }
    q->slots[i] = 0;
}

static ls_rc index_grow(ls_flow_timerq_t *q, size_t cap, ls_err *err)
{
    uint32_t *slots = ls_calloc(cap, sizeof *slots);
    if (!slots) return ls_err_set(err, LS_ENOMEM, "timer queue: out of memory (index)");
    for (size_t i = 0; i < q->slots_cap; i++)
        if (q->slots[i]) {
            uint32_t id = q->slots[i] - 1;
            index_put(slots, cap, q->nodes[id].hash, id);
        }
    ls_free(q->slots);
    q->slots = slots;
    q->slots_cap = cap;
    return LS_OK;
}

/* ---- heap ---- */

static int before(const ls_flow_timerq_t *q, const struct hent *a, const struct hent *b)
{
    if (a->due != b->due) return a->due < b->due;
    const struct node *x = &q->nodes[a->node], *y = &q->nodes[b->node];
    int c = memcmp(x->run, y->run, LS_FLOW_RUN_ID_BYTES);
    if (c != 0) return c < 0;
    return x->seq < y->seq;
}

static void place(ls_flow_timerq_t *q, size_t i, struct hent e)
{
    q->heap[i] = e;
    q->nodes[e.node].pos = (uint32_t)i;
}

static void sift_up(ls_flow_timerq_t *q, size_t i)
{
    struct hent e = q->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(q, &e, &q->heap[parent])) break;
        place(q, i, q->heap[parent]);
        i = parent;
    }
    place(q, i, e);
}

static void sift_down(ls_flow_timerq_t *q, size_t i)
{
    struct hent e = q->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= q->count) break;
        if (c + 1 < q->count && before(q, &q->heap[c + 1], &q->heap[c])) c++;
        if (!before(q, &q->heap[c], &e)) break;
        place(q, i, q->heap[c]);
        i = c;
    }
    place(q, i, e);
}

/* Takes node id out of heap, index and pool. */
static void unlink_node(ls_flow_timerq_t *q, uint32_t slot)
{
    uint32_t id = q->slots[slot] - 1;
    size_t pos = q->nodes[id].pos;
    index_delete(q, slot);
    q->count--;
    if (pos != q->count) {
        place(q, pos, q->heap[q->count]);
        if (pos > 0 && before(q, &q->heap[pos], &q->heap[(pos - 1) / 2]))
            sift_up(q, pos);
        else
            sift_down(q, pos);
    }
    q->nodes[id].pos = q->free_head;
    q->free_head = id;
}

/* ---- growth: every allocation happens before anything changes ---- */

static ls_rc grow_array(void **p, size_t *cap, size_t elem, ls_err *err)
{
    size_t n = *cap ? *cap * 2 : MIN_CAP;
    void *np = ls_realloc(*p, n * elem);
    if (!np) return ls_err_set(err, LS_ENOMEM, "timer queue: out of memory (%zu timers)", n);
    *p = np;
    *cap = n;
    return LS_OK;
}

static ls_rc reserve_one(ls_flow_timerq_t *q, ls_err *err)
{
    ls_rc rc;
    if (q->count >= MAX_COUNT)
        return ls_err_set(err, LS_ENOMEM, "timer queue: full (%zu timers)", q->count);
    if (q->free_head == NONE && q->nodes_used == q->nodes_cap) {
        rc = grow_array((void **)&q->nodes, &q->nodes_cap, sizeof *q->nodes, err);
        if (rc != LS_OK) return rc;
    }
    if (q->count == q->heap_cap) {
        rc = grow_array((void **)&q->heap, &q->heap_cap, sizeof *q->heap, err);
        if (rc != LS_OK) return rc;
    }
    if ((q->count + 1) * 2 > q->slots_cap) return index_grow(q, q->slots_cap * 2, err);
    return LS_OK;
}

/* ---- API ---- */

static size_t pow2_at_least(size_t n)
{
    size_t p = MIN_CAP;
    while (p < n) p *= 2;
    return p;
}

ls_rc ls_flow_timerq_new(ls_flow_timerq_t **out, size_t cap, ls_err *err)
{
    *out = NULL;
    if (cap < MIN_CAP) cap = MIN_CAP;
    if (cap > MAX_COUNT)
        return ls_err_set(err, LS_EINVAL, "timer queue: capacity %zu too big", cap);
    ls_flow_timerq_t *q = ls_calloc(1, sizeof *q);
    if (!q) goto fail;
    q->free_head = NONE;
    q->heap = ls_malloc(cap * sizeof *q->heap);
    q->nodes = ls_malloc(cap * sizeof *q->nodes);
    q->slots_cap = pow2_at_least(cap * 2);
    q->slots = ls_calloc(q->slots_cap, sizeof *q->slots);
    if (!q->heap || !q->nodes || !q->slots) goto fail;
    q->heap_cap = q->nodes_cap = cap;
    *out = q;
    return LS_OK;
fail:
    ls_flow_timerq_free(q);
    return ls_err_set(err, LS_ENOMEM, "timer queue: out of memory");
}

void ls_flow_timerq_free(ls_flow_timerq_t *q)
{
    if (!q) return;
    ls_free(q->heap);
    ls_free(q->nodes);
    ls_free(q->slots);
    ls_free(q);
}

size_t ls_flow_timerq_count(const ls_flow_timerq_t *q)
{
    return q->count;
}

ls_rc ls_flow_timerq_add(ls_flow_timerq_t *q, const uint8_t run_id[LS_FLOW_RUN_ID_BYTES],
                         uint64_t seq, int64_t due_ms, ls_err *err)
{
    if (index_find(q, run_id, seq) != NONE)
        return ls_err_set(err, LS_EEXIST, "timer queue: timer %llu of this run is already queued",
                          (unsigned long long)seq);
    ls_rc rc = reserve_one(q, err);
    if (rc != LS_OK) return rc;
    uint32_t id;
    if (q->free_head != NONE) {
        id = q->free_head;
        q->free_head = q->nodes[id].pos;
    } else {
        id = (uint32_t)q->nodes_used++;
    }
    struct node *n = &q->nodes[id];
    n->due = due_ms;
    memcpy(n->run, run_id, LS_FLOW_RUN_ID_BYTES);
    n->seq = seq;
    n->hash = hash_key(run_id, seq);
    index_put(q->slots, q->slots_cap, n->hash, id);
    q->heap[q->count] = (struct hent){due_ms, id};
    n->pos = (uint32_t)q->count++;
    sift_up(q, n->pos);
    return LS_OK;
}

ls_rc ls_flow_timerq_remove(ls_flow_timerq_t *q, const uint8_t run_id[LS_FLOW_RUN_ID_BYTES],
                            uint64_t seq, int64_t *due_ms)
{
    uint32_t slot = index_find(q, run_id, seq);
    if (slot == NONE) return LS_ENOTFOUND;
    if (due_ms) *due_ms = q->nodes[q->slots[slot] - 1].due;
    unlink_node(q, slot);
    return LS_OK;
}

ls_rc ls_flow_timerq_find(const ls_flow_timerq_t *q, const uint8_t run_id[LS_FLOW_RUN_ID_BYTES],
                          uint64_t seq, int64_t *due_ms)
{
    uint32_t slot = index_find(q, run_id, seq);
    if (slot == NONE) return LS_ENOTFOUND;
    if (due_ms) *due_ms = q->nodes[q->slots[slot] - 1].due;
    return LS_OK;
}

static void copy_out(const ls_flow_timerq_t *q, uint32_t id, ls_flow_timer *t)
{
    const struct node *n = &q->nodes[id];
    t->due_ms = n->due;
    memcpy(t->run_id, n->run, LS_FLOW_RUN_ID_BYTES);
    t->seq = n->seq;
}

ls_rc ls_flow_timerq_peek(const ls_flow_timerq_t *q, ls_flow_timer *t)
{
    if (q->count == 0) return LS_ENOTFOUND;
    copy_out(q, q->heap[0].node, t);
    return LS_OK;
}

ls_rc ls_flow_timerq_next_due_in(const ls_flow_timerq_t *q, int64_t now_ms, int64_t *in_ms)
{
    if (q->count == 0) return LS_ENOTFOUND;
    int64_t due = q->heap[0].due;
    /* due - now without overflow for any pair of int64 */
    *in_ms = due <= now_ms ? 0 : (int64_t)((uint64_t)due - (uint64_t)now_ms);
    if (*in_ms < 0) *in_ms = INT64_MAX;
    return LS_OK;
}

ls_rc ls_flow_timerq_pop(ls_flow_timerq_t *q, int64_t now_ms, ls_flow_timer *t)
{
    if (q->count == 0 || q->heap[0].due > now_ms) return LS_ENOTFOUND;
    const struct node *n = &q->nodes[q->heap[0].node];
    copy_out(q, q->heap[0].node, t);
    uint32_t slot = index_find(q, n->run, n->seq);
    assert(slot != NONE);
    unlink_node(q, slot);
    return LS_OK;
}

size_t ls_flow_timerq_pop_due(ls_flow_timerq_t *q, int64_t now_ms, ls_flow_timer *out, size_t max)
{
    size_t n = 0;
    while (n < max && ls_flow_timerq_pop(q, now_ms, &out[n]) == LS_OK) n++;
    return n;
}

ls_rc ls_flow_timerq_check(const ls_flow_timerq_t *q, ls_err *err)
{
    size_t indexed = 0;
    for (size_t i = 0; i < q->count; i++) {
        const struct hent *e = &q->heap[i];
        const struct node *n = &q->nodes[e->node];
        if (e->node >= q->nodes_used || n->pos != i || n->due != e->due)
            return ls_err_set(err, LS_ECORRUPT, "timer queue: heap entry %zu and its node disagree",
                              i);
        if (i > 0 && before(q, e, &q->heap[(i - 1) / 2]))
            return ls_err_set(err, LS_ECORRUPT, "timer queue: heap order broken at %zu", i);
        if (n->hash != hash_key(n->run, n->seq) || index_find(q, n->run, n->seq) == NONE)
            return ls_err_set(err, LS_ECORRUPT, "timer queue: entry %zu missing from the index", i);
    }
    for (size_t i = 0; i < q->slots_cap; i++) indexed += q->slots[i] != 0;
    if (indexed != q->count)
        return ls_err_set(err, LS_ECORRUPT, "timer queue: index holds %zu, heap %zu", indexed,
                          q->count);
    return LS_OK;
}
