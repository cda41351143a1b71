/* SPDX-License-Identifier: MIT
 * Policy decision metrics in a shared memory file (see ls_pmetrics.h).
 * Promises: processes that open one file count into the same slots; a file
 * is either a complete table of this layout or refused with LS_EFORMAT;
 * recording takes no lock (a few relaxed atomic adds on a cached slot).
 *
 * Layout: a header, then LS_PMETRICS_SERIES counter slots, then
 * LS_PMETRICS_POLICIES histogram slots, each an open-addressing hash table
 * (linear probing, FNV-1a of the labels). A slot is claimed by a
 * compare-and-swap of its state from EMPTY to BUSY, filled, then published
 * as READY with a release store; lookups wait a bounded time for a BUSY
 * slot, then move on. So a claimer that dies leaves one slot unusable, and
 * a claimer stalled past the wait can make a second slot for the same
 * labels: rendering sums slots with equal labels, so counts stay exact.
 *
 * A file cut short while mapped (truncate(1), `: > file`) would turn the
 * next access beyond its new end into SIGBUS and end the process (a
 * lighttpd worker). Every access runs under shm_guard.h's guard instead: a
 * fault marks the handle damaged, the table stops counting (its mapping is
 * replaced by private zero pages, so slot pointers callers cached stay
 * harmless), rendering fails, and ls_pmetrics_take_fault says why once.
 * Decisions go on: counting never fails a caller.
 */
#include "ls_config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lodestone/ls_alloc.h"
#include "lodestone/ls_pmetrics.h"
#include "shm_guard.h"

#define MAGIC     "LSPMETRC"
#define EMPTY     0u
#define BUSY      1u
#define READY     2u
#define BUSY_WAIT 100000 /* polls of a BUSY slot before moving on */

/* ---- shared layout ---- */

struct header {
    char magic[8];
    uint32_t layout;
    uint32_t nseries;
    uint32_t npolicies;
    uint32_t nbuckets;
    uint32_t counter_bytes;
    uint32_t hist_bytes;
    uint64_t file_bytes;
    uint64_t dropped; /* decisions whose series found no slot */
    char pad[16];
};

struct ls_pmetrics_counter {
    uint32_t state;
    uint32_t allow;
    uint64_t count;
    char policy[LS_PMETRICS_POLICY_MAX + 1];
    char reason[LS_PMETRICS_REASON_MAX + 1];
};

struct ls_pmetrics_hist {
    uint32_t state;
    uint32_t pad;
    uint64_t count;
    uint64_t sum_ns;
    uint64_t buckets[LS_PMETRICS_BUCKETS + 1]; /* per bucket, not cumulative; last: +Inf */
    char policy[LS_PMETRICS_POLICY_MAX + 1];
};

_Static_assert(sizeof(struct header) == 64, "the header is one cache line");
_Static_assert(sizeof(struct ls_pmetrics_counter) == 128, "a counter is two cache lines");
_Static_assert(sizeof(struct ls_pmetrics_hist) == 192, "a histogram is three cache lines");

#define FILE_BYTES                                                                     \
    (sizeof(struct header) + LS_PMETRICS_SERIES * sizeof(struct ls_pmetrics_counter) + \
     LS_PMETRICS_POLICIES * sizeof(struct ls_pmetrics_hist))

/* Upper bounds of the buckets: 1 us to 100 ms (a cached decision takes
 * about a microsecond, a cold RS256 one tens). */
static const int64_t bounds_ns[LS_PMETRICS_BUCKETS] = {
    1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 10000000, 100000000,
};

struct ls_pmetrics {
    unsigned char *map;
    struct header *hdr;
    struct ls_pmetrics_counter *counters;
    struct ls_pmetrics_hist *hists;
    char *path;
    int damaged;         /* (atomic) the file was cut short under the mapping */
    int fault_told;      /* (atomic) ls_pmetrics_take_fault said so */
    ls_pmetrics_t *next; /* in the list of open tables (under open_mu) */
};

/* The open tables, so that a fault in an access given only a slot
 * (ls_pmetrics_hist_observe) finds the table it belongs to. */
static pthread_mutex_t open_mu = PTHREAD_MUTEX_INITIALIZER;
static ls_pmetrics_t *open_tables;

int64_t ls_pmetrics_bucket_ns(size_t i)
{
    return i < LS_PMETRICS_BUCKETS ? bounds_ns[i] : INT64_MAX;
}

/* ---- creating and opening ---- */

static void init_table(unsigned char *map)
{
    struct header *h = (struct header *)map;
    h->layout = LS_PMETRICS_LAYOUT;
    h->nseries = LS_PMETRICS_SERIES;
    h->npolicies = LS_PMETRICS_POLICIES;
    h->nbuckets = LS_PMETRICS_BUCKETS;
    h->counter_bytes = sizeof(struct ls_pmetrics_counter);
    h->hist_bytes = sizeof(struct ls_pmetrics_hist);
    h->file_bytes = FILE_BYTES;
    memcpy(h->magic, MAGIC, sizeof h->magic);
}

/* Builds a whole table beside path and links it into place, so others see
 * no file or a complete one. LS_EEXIST (err untouched) when one is there. */
static ls_rc create_table(const char *path, ls_err *err)
{
    size_t plen = strlen(path);
    char *tmp = ls_malloc(plen + sizeof ".XXXXXX");
    if (tmp == NULL) return ls_err_set(err, LS_ENOMEM, "metrics table %s: out of memory", path);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".XXXXXX", sizeof ".XXXXXX");
    ls_rc rc = LS_OK;
    unsigned char *map = MAP_FAILED;
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        rc = ls_err_set(err, errno == EACCES ? LS_EPERM : LS_EIO,
                        "metrics table %s: cannot create: %s", path, strerror(errno));
        goto done;
    }
    if (fchmod(fd, 0600) != 0 || ftruncate(fd, (off_t)FILE_BYTES) != 0) {
        rc = ls_err_set(err, LS_EIO, "metrics table %s: cannot size: %s", path, strerror(errno));
        goto done;
    }
    map = mmap(NULL, FILE_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        rc = ls_err_set(err, LS_EIO, "metrics table %s: cannot map: %s", path, strerror(errno));
        goto done;
    }
    init_table(map);
    if (link(tmp, path) != 0)
        rc = errno == EEXIST ? LS_EEXIST
                             : ls_err_set(err, LS_EIO, "metrics table %s: cannot create: %s", path,
                                          strerror(errno));
done:
    if (map != MAP_FAILED) munmap(map, FILE_BYTES);
    if (fd >= 0) {
        unlink(tmp);
        close(fd);
    }
    ls_free(tmp);
    return rc;
}

static ls_rc open_file(const char *path, int *fd, ls_err *err)
{
    for (int tries = 0; tries < 4; tries++) {
        *fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        if (*fd >= 0) return LS_OK;
        if (errno == ELOOP)
            return ls_err_set(err, LS_EPERM, "metrics table %s is a symbolic link (refused)", path);
        if (errno != ENOENT)
            return ls_err_set(err, errno == EACCES ? LS_EPERM : LS_EIO,
                              "metrics table %s: cannot open: %s", path, strerror(errno));
        ls_rc rc = create_table(path, err);
        if (rc != LS_OK && rc != LS_EEXIST) return rc;
    }
    return ls_err_set(err, LS_EIO, "metrics table %s keeps disappearing while being opened", path);
}

static ls_rc check_file(const char *path, int fd, ls_err *err)
{
    struct stat sb;
    if (fstat(fd, &sb) != 0)
        return ls_err_set(err, LS_EIO, "metrics table %s: cannot stat: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return ls_err_set(err, LS_EFORMAT, "metrics table %s is not a regular file", path);
    if (sb.st_uid != geteuid() && sb.st_uid != 0)
        return ls_err_set(err, LS_EPERM, "metrics table %s belongs to uid %u, not to us (%u)", path,
                          (unsigned)sb.st_uid, (unsigned)geteuid());
    if (sb.st_mode & S_IWOTH)
        return ls_err_set(err, LS_EPERM, "metrics table %s is writable by other users", path);
    struct header h;
    memset(&h, 0, sizeof h);
    ssize_t got = pread(fd, &h, sizeof h, 0);
    if (got != (ssize_t)sizeof h || memcmp(h.magic, MAGIC, sizeof h.magic) != 0)
        return ls_err_set(err, LS_EFORMAT,
                          "%s is not a Lodestone metrics table (bad magic); remove it or choose "
                          "another path",
                          path);
    if (h.layout != LS_PMETRICS_LAYOUT || h.nseries != LS_PMETRICS_SERIES ||
        h.npolicies != LS_PMETRICS_POLICIES || h.nbuckets != LS_PMETRICS_BUCKETS ||
        h.counter_bytes != sizeof(struct ls_pmetrics_counter) ||
        h.hist_bytes != sizeof(struct ls_pmetrics_hist) || h.file_bytes != FILE_BYTES)
        return ls_err_set(err, LS_EFORMAT,
                          "metrics table %s has layout %u made by another build; remove it", path,
                          (unsigned)h.layout);
    if (sb.st_size != (off_t)FILE_BYTES)
        return ls_err_set(err, LS_EFORMAT, "metrics table %s has %lld bytes, not %zu", path,
                          (long long)sb.st_size, (size_t)FILE_BYTES);
    return LS_OK;
}

ls_rc ls_pmetrics_open(ls_pmetrics_t **out, const char *path, ls_err *err)
{
    if (out != NULL) *out = NULL;
    if (out == NULL || path == NULL || *path == '\0')
        return ls_err_set(err, LS_EINVAL, "ls_pmetrics_open: out and path are required");
    int fd = -1;
    ls_rc rc;
    ls_pmetrics_t *m = ls_calloc(1, sizeof *m);
    if (m == NULL || (m->path = ls_strdup(path)) == NULL) {
        rc = ls_err_set(err, LS_ENOMEM, "metrics table %s: out of memory", path);
        goto fail;
    }
    if ((rc = open_file(path, &fd, err)) != LS_OK) goto fail;
    if ((rc = check_file(path, fd, err)) != LS_OK) goto fail;
    void *map = mmap(NULL, FILE_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        rc = ls_err_set(err, LS_EIO, "metrics table %s: cannot map: %s", path, strerror(errno));
        goto fail;
    }
    close(fd);
    m->map = map;
    m->hdr = map;
    m->counters = (struct ls_pmetrics_counter *)(m->map + sizeof(struct header));
    m->hists = (struct ls_pmetrics_hist *)(m->counters + LS_PMETRICS_SERIES);
    ls_shm_guard_install();
    pthread_mutex_lock(&open_mu);
    m->next = open_tables;
    open_tables = m;
    pthread_mutex_unlock(&open_mu);
    *out = m;
    return LS_OK;

fail:
    if (fd >= 0) close(fd);
    ls_pmetrics_close(m);
    return rc;
}

void ls_pmetrics_close(ls_pmetrics_t *m)
{
    if (m == NULL) return;
    pthread_mutex_lock(&open_mu);
    for (ls_pmetrics_t **at = &open_tables; *at != NULL; at = &(*at)->next)
        if (*at == m) {
            *at = m->next;
            break;
        }
    pthread_mutex_unlock(&open_mu);
    if (m->map != NULL) munmap(m->map, FILE_BYTES);
    ls_free(m->path);
    ls_free(m);
}

/* ---- damage (see the file comment) ---- */

static int is_damaged(const ls_pmetrics_t *m)
{
    return __atomic_load_n(&m->damaged, __ATOMIC_RELAXED);
}

/* After a fault in an access to m: m counts nothing more. Its mapping
 * becomes private zero pages, so that slot pointers callers cached write
 * where nobody reads instead of faulting again (when that fails they keep
 * faulting, each fault caught). */
static void set_damaged(ls_pmetrics_t *m)
{
    if (__atomic_exchange_n(&m->damaged, 1, __ATOMIC_RELAXED)) return;
    (void)mmap(m->map, FILE_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
               -1, 0);
}

/* After a fault in an access to the slot at p: damages its table. */
static void set_damaged_at(const void *p)
{
    const unsigned char *at = p;
    pthread_mutex_lock(&open_mu);
    for (ls_pmetrics_t *m = open_tables; m != NULL; m = m->next)
        if (at >= m->map && at < m->map + FILE_BYTES) {
            set_damaged(m);
            break;
        }
    pthread_mutex_unlock(&open_mu);
}

static ls_rc damaged_err(const ls_pmetrics_t *m, ls_err *err)
{
    return ls_err_set(err, LS_EIO,
                      "metrics table %s was cut short while in use (truncated?): decisions are "
                      "no longer counted; remove the file, then restart lighttpd",
                      m->path);
}

ls_rc ls_pmetrics_take_fault(ls_pmetrics_t *m, ls_err *err)
{
    if (m == NULL || !is_damaged(m) || __atomic_exchange_n(&m->fault_told, 1, __ATOMIC_RELAXED))
        return LS_OK;
    return damaged_err(m, err);
}

/* ---- slots ---- */

static uint64_t fnv(uint64_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

/* Copies s into a label field of size max+1, truncated; returns its length. */
static size_t label(char *dst, const char *s, size_t max)
{
    size_t n = strnlen(s ? s : "", max);
    memcpy(dst, s ? s : "", n);
    dst[n] = '\0';
    return n;
}

/* Waits (bounded) while a slot is BUSY; returns its state then. */
static uint32_t settled(uint32_t *state)
{
    uint32_t st = __atomic_load_n(state, __ATOMIC_ACQUIRE);
    for (int i = 0; st == BUSY && i < BUSY_WAIT; i++) {
        if (i > 64) sched_yield();
        st = __atomic_load_n(state, __ATOMIC_ACQUIRE);
    }
    return st;
}

/* Claims an EMPTY slot: 1 when this caller got it (state now BUSY). */
static int claim(uint32_t *state)
{
    uint32_t want = EMPTY;
    return __atomic_compare_exchange_n(state, &want, BUSY, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}

/* The slot of a series (counter_get, under the guard). */
static ls_pmetrics_counter *find_counter(ls_pmetrics_t *m, const char *pol, size_t plen,
                                         uint32_t al, const char *why, size_t rlen)
{
    uint64_t h = fnv(UINT64_C(0xcbf29ce484222325), pol, plen + 1);
    h = fnv(h, al ? "a" : "d", 1);
    h = fnv(h, why, rlen);
    for (size_t i = 0; i < LS_PMETRICS_SERIES; i++) {
        ls_pmetrics_counter *c = &m->counters[(h + i) % LS_PMETRICS_SERIES];
        uint32_t st = settled(&c->state);
        if (st == EMPTY && claim(&c->state)) {
            memcpy(c->policy, pol, plen + 1);
            memcpy(c->reason, why, rlen + 1);
            c->allow = al;
            __atomic_store_n(&c->state, READY, __ATOMIC_RELEASE);
            return c;
        }
        if (st == EMPTY) st = settled(&c->state); /* lost the race: see who won */
        if (st == READY && c->allow == al && strcmp(c->policy, pol) == 0 &&
            strcmp(c->reason, why) == 0)
            return c;
    }
    return NULL;
}

ls_pmetrics_counter *ls_pmetrics_counter_get(ls_pmetrics_t *m, const char *policy, int allow,
                                             const char *reason)
{
    if (m == NULL || is_damaged(m)) return NULL;
    char pol[LS_PMETRICS_POLICY_MAX + 1], why[LS_PMETRICS_REASON_MAX + 1];
    size_t plen = label(pol, policy, LS_PMETRICS_POLICY_MAX);
    size_t rlen = label(why, reason, LS_PMETRICS_REASON_MAX);
    ls_pmetrics_counter *c = NULL;
    sigjmp_buf jb;
    if (sigsetjmp(jb, 0) == 0) {
        ls_shm_guard_begin(&jb);
        c = find_counter(m, pol, plen, allow ? 1u : 0u, why, rlen);
        ls_shm_guard_end();
    } else {
        ls_shm_guard_end(); /* first: what follows takes a lock */
        c = NULL;
        set_damaged(m);
    }
    return c;
}

void ls_pmetrics_counter_add(ls_pmetrics_t *m, ls_pmetrics_counter *c)
{
    if (m != NULL && is_damaged(m)) return;
    uint64_t *v = c != NULL ? &c->count : m != NULL ? &m->hdr->dropped : NULL;
    if (v == NULL) return;
    sigjmp_buf jb;
    if (sigsetjmp(jb, 0) == 0) {
        ls_shm_guard_begin(&jb);
        __atomic_fetch_add(v, 1, __ATOMIC_RELAXED);
        ls_shm_guard_end();
    } else {
        ls_shm_guard_end(); /* first: what follows takes a lock */
        if (m != NULL)
            set_damaged(m);
        else
            set_damaged_at(v);
    }
}

/* The histogram slot of a policy (hist_get, under the guard). */
static ls_pmetrics_hist *find_hist(ls_pmetrics_t *m, const char *pol, size_t plen)
{
    uint64_t h = fnv(UINT64_C(0xcbf29ce484222325), pol, plen);
    for (size_t i = 0; i < LS_PMETRICS_POLICIES; i++) {
        ls_pmetrics_hist *t = &m->hists[(h + i) % LS_PMETRICS_POLICIES];
        uint32_t st = settled(&t->state);
        if (st == EMPTY && claim(&t->state)) {
            memcpy(t->policy, pol, plen + 1);
            __atomic_store_n(&t->state, READY, __ATOMIC_RELEASE);
            return t;
        }
        if (st == EMPTY) st = settled(&t->state);
        if (st == READY && strcmp(t->policy, pol) == 0) return t;
    }
    return NULL;
}

ls_pmetrics_hist *ls_pmetrics_hist_get(ls_pmetrics_t *m, const char *policy)
{
    if (m == NULL || is_damaged(m)) return NULL;
    char pol[LS_PMETRICS_POLICY_MAX + 1];
    size_t plen = label(pol, policy, LS_PMETRICS_POLICY_MAX);
    ls_pmetrics_hist *t = NULL;
    sigjmp_buf jb;
    if (sigsetjmp(jb, 0) == 0) {
        ls_shm_guard_begin(&jb);
        t = find_hist(m, pol, plen);
        ls_shm_guard_end();
    } else {
        ls_shm_guard_end(); /* first: what follows takes a lock */
        t = NULL;
        set_damaged(m);
    }
    return t;
}

/* Adds one time to h (hist_observe, under the guard). */
static void observe(ls_pmetrics_hist *h, int64_t ns)
{
    if (ns < 0) ns = 0;
    size_t b = 0;
    while (b < LS_PMETRICS_BUCKETS && ns > bounds_ns[b]) b++;
    __atomic_fetch_add(&h->buckets[b], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&h->sum_ns, (uint64_t)ns, __ATOMIC_RELAXED);
    __atomic_fetch_add(&h->count, 1, __ATOMIC_RELAXED);
}

void ls_pmetrics_hist_observe(ls_pmetrics_hist *h, int64_t ns)
{
    if (h == NULL) return;
    sigjmp_buf jb;
    if (sigsetjmp(jb, 0) == 0) {
        ls_shm_guard_begin(&jb);
        observe(h, ns);
        ls_shm_guard_end();
    } else {
        ls_shm_guard_end(); /* first: what follows takes a lock */
        set_damaged_at(h);  /* (its table is not at hand) */
    }
}

void ls_pmetrics_record(ls_pmetrics_t *m, const char *policy, int allow, const char *reason,
                        int64_t ns)
{
    if (m == NULL) return;
    ls_pmetrics_counter_add(m, ls_pmetrics_counter_get(m, policy, allow, reason));
    ls_pmetrics_hist_observe(ls_pmetrics_hist_get(m, policy), ns);
}

/* ---- rendering ---- */

/* Copies of the published slots, sorted by their labels for rendering:
 * the table is read under the guard in one go, then rendered from these
 * (a fault cannot leave rendering half way, holding memory). */
typedef struct {
    const ls_pmetrics_counter *c;
} cref;
typedef struct {
    const ls_pmetrics_hist *h;
} href;
typedef struct {
    ls_pmetrics_counter cs[LS_PMETRICS_SERIES];
    ls_pmetrics_hist hs[LS_PMETRICS_POLICIES];
    cref c[LS_PMETRICS_SERIES];
    href h[LS_PMETRICS_POLICIES];
    size_t nc, nh;
    uint64_t dropped;
} view;

static int cmp_counter(const void *a, const void *b)
{
    const ls_pmetrics_counter *x = ((const cref *)a)->c, *y = ((const cref *)b)->c;
    int c = strcmp(x->policy, y->policy);
    if (c == 0) c = (int)y->allow - (int)x->allow; /* allow first */
    if (c == 0) c = strcmp(x->reason, y->reason);
    return c;
}

static int cmp_hist(const void *a, const void *b)
{
    return strcmp(((const href *)a)->h->policy, ((const href *)b)->h->policy);
}

/* A label value with \, " and newlines escaped (Prometheus text format). */
static ls_rc put_label(ls_buf *out, const char *s, ls_err *err)
{
    ls_rc rc = LS_OK;
    for (; *s && rc == LS_OK; s++) {
        if (*s == '\\' || *s == '"')
            rc = ls_buf_printf(out, err, "\\%c", *s);
        else if (*s == '\n')
            rc = ls_buf_append(out, "\\n", 2, err);
        else
            rc = ls_buf_putc(out, (unsigned char)*s, err);
    }
    return rc;
}

static uint64_t load(const uint64_t *v)
{
    return __atomic_load_n(v, __ATOMIC_RELAXED);
}

static ls_rc render_counters(ls_buf *out, const cref *v, size_t n, ls_err *err)
{
    ls_rc rc = ls_buf_printf(out, err,
                             "# HELP lodestone_policy_decisions_total Policy decisions by policy, "
                             "decision and reason.\n"
                             "# TYPE lodestone_policy_decisions_total counter\n");
    for (size_t i = 0; i < n && rc == LS_OK;) {
        uint64_t total = 0;
        size_t j = i;
        for (; j < n && cmp_counter(&v[i], &v[j]) == 0; j++) total += load(&v[j].c->count);
        const ls_pmetrics_counter *c = v[i].c;
        rc = ls_buf_printf(out, err, "lodestone_policy_decisions_total{policy=\"");
        if (rc == LS_OK) rc = put_label(out, c->policy, err);
        if (rc == LS_OK)
            rc = ls_buf_printf(out, err, "\",decision=\"%s\",reason=\"",
                               c->allow ? "allow" : "deny");
        if (rc == LS_OK) rc = put_label(out, c->reason, err);
        if (rc == LS_OK) rc = ls_buf_printf(out, err, "\"} %llu\n", (unsigned long long)total);
        i = j;
    }
    return rc;
}

/* One policy's histogram: the sum of its n slots (more than one only when
 * a claimer stalled; see the file comment). */
static ls_rc render_one_hist(ls_buf *out, const href *v, size_t n, ls_err *err)
{
    uint64_t buckets[LS_PMETRICS_BUCKETS + 1] = {0}, count = 0, sum = 0;
    for (size_t k = 0; k < n; k++) {
        for (size_t b = 0; b <= LS_PMETRICS_BUCKETS; b++) buckets[b] += load(&v[k].h->buckets[b]);
        count += load(&v[k].h->count);
        sum += load(&v[k].h->sum_ns);
    }
    const char *policy = v[0].h->policy;
    ls_rc rc = LS_OK;
    uint64_t cum = 0;
    for (size_t b = 0; b <= LS_PMETRICS_BUCKETS && rc == LS_OK; b++) {
        cum += buckets[b];
        rc = ls_buf_printf(out, err, "lodestone_policy_decision_seconds_bucket{policy=\"");
        if (rc == LS_OK) rc = put_label(out, policy, err);
        if (rc != LS_OK) break;
        if (b < LS_PMETRICS_BUCKETS)
            rc = ls_buf_printf(out, err, "\",le=\"%g\"} %llu\n", (double)bounds_ns[b] / 1e9,
                               (unsigned long long)cum);
        else
            rc = ls_buf_printf(out, err, "\",le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    }
    if (rc == LS_OK)
        rc = ls_buf_printf(out, err, "lodestone_policy_decision_seconds_sum{policy=\"");
    if (rc == LS_OK) rc = put_label(out, policy, err);
    if (rc == LS_OK) rc = ls_buf_printf(out, err, "\"} %.9f\n", (double)sum / 1e9);
    if (rc == LS_OK)
        rc = ls_buf_printf(out, err, "lodestone_policy_decision_seconds_count{policy=\"");
    if (rc == LS_OK) rc = put_label(out, policy, err);
    if (rc == LS_OK) rc = ls_buf_printf(out, err, "\"} %llu\n", (unsigned long long)count);
    return rc;
}

static ls_rc render_hists(ls_buf *out, const href *v, size_t n, ls_err *err)
{
    ls_rc rc = ls_buf_printf(out, err,
                             "# HELP lodestone_policy_decision_seconds Time to decide a request.\n"
                             "# TYPE lodestone_policy_decision_seconds histogram\n");
    for (size_t i = 0; i < n && rc == LS_OK;) {
        size_t j = i;
        while (j < n && cmp_hist(&v[i], &v[j]) == 0) j++;
        rc = render_one_hist(out, v + i, j - i, err);
        i = j;
    }
    return rc;
}

/* Copies the published slots of m into v (under the guard: plain loads
 * and stores only). */
static void snapshot(const ls_pmetrics_t *m, view *v)
{
    v->nc = v->nh = 0;
    for (size_t i = 0; i < LS_PMETRICS_SERIES; i++) {
        const ls_pmetrics_counter *c = &m->counters[i];
        if (__atomic_load_n(&c->state, __ATOMIC_ACQUIRE) != READY) continue;
        ls_pmetrics_counter *d = &v->cs[v->nc];
        d->allow = c->allow;
        d->count = load(&c->count);
        memcpy(d->policy, c->policy, sizeof d->policy);
        memcpy(d->reason, c->reason, sizeof d->reason);
        v->c[v->nc++].c = d;
    }
    for (size_t i = 0; i < LS_PMETRICS_POLICIES; i++) {
        const ls_pmetrics_hist *h = &m->hists[i];
        if (__atomic_load_n(&h->state, __ATOMIC_ACQUIRE) != READY) continue;
        ls_pmetrics_hist *d = &v->hs[v->nh];
        for (size_t b = 0; b <= LS_PMETRICS_BUCKETS; b++) d->buckets[b] = load(&h->buckets[b]);
        d->count = load(&h->count);
        d->sum_ns = load(&h->sum_ns);
        memcpy(d->policy, h->policy, sizeof d->policy);
        v->h[v->nh++].h = d;
    }
    v->dropped = load(&m->hdr->dropped);
}

ls_rc ls_pmetrics_render(ls_pmetrics_t *m, ls_buf *out, ls_err *err)
{
    if (m == NULL || out == NULL)
        return ls_err_set(err, LS_EINVAL, "ls_pmetrics_render: table and out are required");
    if (is_damaged(m)) return damaged_err(m, err);
    view *v = ls_malloc(sizeof *v);
    if (v == NULL) return ls_err_set(err, LS_ENOMEM, "metrics: out of memory");
    sigjmp_buf jb;
    if (sigsetjmp(jb, 0) == 0) {
        ls_shm_guard_begin(&jb);
        snapshot(m, v);
        ls_shm_guard_end();
    } else {
        ls_shm_guard_end();
        set_damaged(m);
        ls_free(v);
        return damaged_err(m, err);
    }
    size_t nc = v->nc, nh = v->nh;
    if (nc) qsort(v->c, nc, sizeof v->c[0], cmp_counter);
    if (nh) qsort(v->h, nh, sizeof v->h[0], cmp_hist);

    ls_rc rc = render_counters(out, v->c, nc, err);
    if (rc == LS_OK) rc = render_hists(out, v->h, nh, err);
    if (rc == LS_OK)
        rc = ls_buf_printf(out, err,
                           "# HELP lodestone_policy_metrics_dropped_total Decisions not counted "
                           "by policy and reason because the metrics table was full.\n"
                           "# TYPE lodestone_policy_metrics_dropped_total counter\n"
                           "lodestone_policy_metrics_dropped_total %llu\n",
                           (unsigned long long)v->dropped);
    ls_free(v);
    return rc;
}
