/* SPDX-License-Identifier: MIT
 * GCRA rate limiting over a fixed table in a shared memory file. Promises:
 * processes that open one file share one budget per key; a file is either
 * a complete table of this layout or refused with LS_EFORMAT; a process
 * killed while holding a lock does not stop the others.
 *
 * Layout: a header (magic, layout, capacity, hash key, counters), then
 * striped locks, then 8-way sets of slots { 128-bit key hash, TAT }. Keys
 * are hashed with SipHash-128 under a random key made at creation, so
 * nobody can aim keys at one set to push out another key.
 *
 * Locking: process-shared robust mutexes, one per stripe of sets (up to
 * 256, each on its own cache line). The critical section is a scan of 8
 * slots and a few integer operations, so an uncontended futex lock costs
 * about as much as the atomics a lock-free scheme would need, and it keeps
 * eviction (choosing among 8 slots) and the GCRA update trivially atomic;
 * a lock-free set would need 16-byte compare-and-swap or seqlocks plus a
 * retry protocol for eviction races. EOWNERDEAD is recovered with
 * pthread_mutex_consistent: the worst a half-written slot can do is hold
 * a TAT for a key nobody has, and TATs are clamped to one bucket ahead.
 *
 * A file cut short while mapped (truncate(1), `: > file`) would turn the
 * next access beyond its new end into SIGBUS, ending the process (a
 * lighttpd worker). So every access to a table runs under shm_guard.h's
 * guard (installed by ls_rl_open), which jumps back out of the access: it
 * fails with LS_EIO; the handle is then damaged and every later take fails
 * at once (closed), saying so.
 */
#include "ls_config.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lodestone/ls_alloc.h"
#include "lodestone/ls_duration.h"
#include "lodestone/ls_ratelimit.h"
#include "ratelimit_int.h"
#include "shm_guard.h"

#define MAGIC       "LSRATELM"
#define WAYS        8
#define MAX_STRIPES 256
#define LINE        64
#define NS_PER_MS   INT64_C(1000000)
#define MAX_PER_MS  (INT64_C(100) * 365 * 24 * 3600 * 1000) /* a century */
#define MAX_NS      (MAX_PER_MS * NS_PER_MS)

/* ---- shared layout (every field written by the creator, then read-only,
 * except the counters, which are updated atomically) ---- */

struct header {
    char magic[8];
    uint32_t layout;
    uint32_t header_bytes; /* offset of the first slot */
    uint64_t capacity;     /* slots, a power of two */
    uint64_t file_bytes;
    uint32_t ways;
    uint32_t nstripes;
    uint32_t mutex_bytes; /* sizeof(pthread_mutex_t) of the creator's ABI */
    uint32_t slot_bytes;
    unsigned char hash_key[crypto_shorthash_siphashx24_KEYBYTES];
    uint64_t used;
    uint64_t evictions;
    uint64_t recovered;
};

union stripe {
    pthread_mutex_t mu;
    char line[LINE];
};

struct slot {
    uint64_t h0, h1; /* key hash; both 0 = empty */
    int64_t tat;     /* theoretical arrival time, monotonic ns */
};

_Static_assert(sizeof(pthread_mutex_t) <= LINE, "a mutex fits a cache line");
_Static_assert(sizeof(union stripe) == LINE, "stripes are one line each");
_Static_assert(sizeof(struct slot) == 24, "a set of 8 slots is 3 cache lines");

struct ls_rl {
    char *path;
    unsigned char *map;
    size_t map_bytes;
    struct header *hdr;
    union stripe *stripes;
    struct slot *slots;
    uint64_t set_mask;    /* sets - 1 */
    uint64_t stripe_mask; /* stripes - 1 */
    size_t capacity;
    int damaged; /* (atomic) the file was cut short under the mapping */
    unsigned char hash_key[crypto_shorthash_siphashx24_KEYBYTES];
};

static size_t round_up(size_t n, size_t to)
{
    return (n + to - 1) / to * to;
}

static uint32_t stripes_for(size_t capacity)
{
    size_t sets = capacity / WAYS;
    return (uint32_t)(sets < MAX_STRIPES ? sets : MAX_STRIPES);
}

static size_t header_bytes_for(size_t capacity)
{
    return round_up(sizeof(struct header), LINE) + stripes_for(capacity) * sizeof(union stripe);
}

static size_t file_bytes_for(size_t capacity)
{
    return header_bytes_for(capacity) + capacity * sizeof(struct slot);
}

/* ---- damage (see the file comment and shm_guard.h) ---- */

static int is_damaged(const ls_rl_t *rl)
{
    return __atomic_load_n(&rl->damaged, __ATOMIC_RELAXED);
}

static ls_rc damaged_err(const ls_rl_t *rl, ls_err *err)
{
    return ls_err_set(err, LS_EIO,
                      "rate limit table %s was cut short while in use (truncated?): denying "
                      "until it is reopened; remove the file, then reload the policy",
                      rl->path);
}

/* ---- limits ---- */

/* Validates lim and derives the emission interval T (ns per request) and
 * the tolerance tau = burst * T (how far TAT may run ahead of now). */
static ls_rc limit_derive(const ls_rl_limit *lim, int64_t *t, int64_t *tau, ls_err *err)
{
    if (lim->rate <= 0)
        return ls_err_set(err, LS_EINVAL, "rate limit: rate must be > 0 (got %lld)",
                          (long long)lim->rate);
    if (lim->per_ms <= 0)
        return ls_err_set(err, LS_EINVAL, "rate limit: per must be > 0 ms (got %lld)",
                          (long long)lim->per_ms);
    if (lim->per_ms > MAX_PER_MS)
        return ls_err_set(err, LS_EINVAL, "rate limit: per (%lld ms) is over 100 years",
                          (long long)lim->per_ms);
    if (lim->burst < 1)
        return ls_err_set(err, LS_EINVAL, "rate limit: burst must be >= 1 (got %lld)",
                          (long long)lim->burst);
    int64_t per_ns = lim->per_ms * NS_PER_MS;
    if (lim->rate > per_ns)
        return ls_err_set(err, LS_EINVAL,
                          "rate limit: rate %lld per %lld ms is more than one per nanosecond",
                          (long long)lim->rate, (long long)lim->per_ms);
    /* rounded up: never more than rate per period, at most 1 ns slower */
    int64_t interval = (per_ns + lim->rate - 1) / lim->rate;
    if (lim->burst > MAX_NS / interval)
        return ls_err_set(err, LS_EINVAL,
                          "rate limit: burst %lld at rate %lld per %lld ms takes over 100 years "
                          "to refill",
                          (long long)lim->burst, (long long)lim->rate, (long long)lim->per_ms);
    *t = interval;
    *tau = lim->burst * interval;
    return LS_OK;
}

ls_rc ls_rl_limit_check(const ls_rl_limit *lim, ls_err *err)
{
    if (lim == NULL) return ls_err_set(err, LS_EINVAL, "rate limit: no limit given");
    int64_t t = 1, tau = 0;
    return limit_derive(lim, &t, &tau, err);
}

ls_rc ls_rl_limit_parse(ls_rl_limit *out, int64_t rate, const char *per, size_t per_len,
                        int64_t burst, ls_err *err)
{
    if (out == NULL || (per == NULL && per_len > 0))
        return ls_err_set(err, LS_EINVAL, "ls_rl_limit_parse: out and per are required");
    if (rate <= 0)
        return ls_err_set(err, LS_EINVAL, "rate limit: rate must be > 0 (got %lld)",
                          (long long)rate);
    if (burst < 0)
        return ls_err_set(err, LS_EINVAL, "rate limit: burst must be >= 1 (got %lld)",
                          (long long)burst);
    int64_t per_ms = 0;
    ls_rc rc = ls_duration_parse(per ? per : "", per_len, &per_ms, err);
    if (rc != LS_OK) {
        ls_err_prefix(err, "rate limit: per");
        return rc;
    }
    if (per_ms <= 0)
        return ls_err_set(err, LS_EINVAL, "rate limit: per \"%.*s\" must be longer than 0 ms",
                          (int)(per_len > 40 ? 40 : per_len), per);
    ls_rl_limit lim = {rate, per_ms, burst ? burst : rate};
    rc = ls_rl_limit_check(&lim, err);
    if (rc == LS_OK) *out = lim;
    return rc;
}

/* ---- creating a table ---- */

static ls_rc init_table(unsigned char *map, size_t capacity, const char *path, ls_err *err)
{
    struct header *h = (struct header *)map;
    h->layout = LS_RL_LAYOUT;
    h->header_bytes = (uint32_t)header_bytes_for(capacity);
    h->capacity = capacity;
    h->file_bytes = file_bytes_for(capacity);
    h->ways = WAYS;
    h->nstripes = stripes_for(capacity);
    h->mutex_bytes = (uint32_t)sizeof(pthread_mutex_t);
    h->slot_bytes = (uint32_t)sizeof(struct slot);
    randombytes_buf(h->hash_key, sizeof h->hash_key);

    pthread_mutexattr_t attr;
    int e = pthread_mutexattr_init(&attr);
    if (e == 0) e = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    if (e == 0) e = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    union stripe *stripes = (union stripe *)(map + round_up(sizeof(struct header), LINE));
    for (uint32_t i = 0; e == 0 && i < h->nstripes; i++)
        e = pthread_mutex_init(&stripes[i].mu, &attr);
    pthread_mutexattr_destroy(&attr);
    if (e != 0)
        return ls_err_set(err, LS_EIO, "rate limit table %s: cannot set up its locks: %s", path,
                          strerror(e));
    memcpy(h->magic, MAGIC, sizeof h->magic);
    return LS_OK;
}

/* Builds a complete table in a temporary file beside path and links it into
 * place, so that other processes see either no file or a whole table.
 * LS_EEXIST (err untouched) when another process linked one first. */
static ls_rc create_table(const char *path, size_t capacity, unsigned mode, ls_err *err)
{
    ls_rc rc = LS_OK;
    size_t plen = strlen(path), bytes = file_bytes_for(capacity);
    unsigned char *map = MAP_FAILED;
    int fd = -1;
    char *tmp = ls_malloc(plen + sizeof ".XXXXXX");
    if (tmp == NULL) return ls_err_set(err, LS_ENOMEM, "rate limit table %s: out of memory", path);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".XXXXXX", sizeof ".XXXXXX");

    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        rc = ls_err_set(err, errno == EACCES ? LS_EPERM : LS_EIO,
                        "rate limit table %s: cannot create: %s", path, strerror(errno));
        goto done;
    }
    int e = fchmod(fd, mode) != 0 ? errno : 0;
    if (e == 0) e = posix_fallocate(fd, 0, (off_t)bytes);
    if (e == EOPNOTSUPP || e == EINVAL) e = ftruncate(fd, (off_t)bytes) != 0 ? errno : 0;
    if (e != 0) {
        rc = ls_err_set(err, LS_EIO, "rate limit table %s: cannot make %zu bytes: %s", path, bytes,
                        strerror(e));
        goto done;
    }
    map = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        rc = ls_err_set(err, LS_EIO, "rate limit table %s: cannot map: %s", path, strerror(errno));
        goto done;
    }
    rc = init_table(map, capacity, path, err);
    if (rc != LS_OK) goto done;
    if (link(tmp, path) != 0) {
        if (errno == EEXIST)
            rc = LS_EEXIST;
        else
            rc = ls_err_set(err, LS_EIO, "rate limit table %s: cannot create: %s", path,
                            strerror(errno));
    }
done:
    if (map != MAP_FAILED) munmap(map, bytes);
    if (fd >= 0) {
        unlink(tmp);
        close(fd);
    }
    ls_free(tmp);
    return rc;
}

/* ---- opening a table ---- */

static ls_rc open_file(const char *path, size_t capacity, unsigned mode, int *fd, ls_err *err)
{
    for (int tries = 0; tries < 4; tries++) {
        *fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        if (*fd >= 0) return LS_OK;
        if (errno == ELOOP)
            return ls_err_set(err, LS_EPERM, "rate limit table %s is a symbolic link (refused)",
                              path);
        if (errno == EACCES)
            return ls_err_set(err, LS_EPERM, "rate limit table %s: cannot open: %s", path,
                              strerror(errno));
        if (errno != ENOENT)
            return ls_err_set(err, LS_EIO, "rate limit table %s: cannot open: %s", path,
                              strerror(errno));
        ls_rc rc = create_table(path, capacity, mode, err);
        if (rc != LS_OK && rc != LS_EEXIST) return rc;
    }
    return ls_err_set(err, LS_EIO, "rate limit table %s keeps disappearing while being opened",
                      path);
}

static ls_rc check_file(const char *path, const struct stat *sb, ls_err *err)
{
    if (!S_ISREG(sb->st_mode))
        return ls_err_set(err, LS_EFORMAT, "rate limit table %s is not a regular file", path);
    if (sb->st_uid != geteuid() && sb->st_uid != 0)
        return ls_err_set(err, LS_EPERM, "rate limit table %s belongs to uid %u, not to us (%u)",
                          path, (unsigned)sb->st_uid, (unsigned)geteuid());
    if (sb->st_mode & S_IWOTH)
        return ls_err_set(err, LS_EPERM,
                          "rate limit table %s is writable by other users (mode %03o)", path,
                          (unsigned)(sb->st_mode & 0777));
    return LS_OK;
}

/* Checks the header in the file against what this build and the caller
 * expect, before anything is mapped. */
static ls_rc check_header(const char *path, int fd, off_t size, size_t capacity, ls_err *err)
{
    struct header h;
    memset(&h, 0, sizeof h);
    size_t want = size < (off_t)sizeof h ? (size_t)size : sizeof h;
    ssize_t got = pread(fd, &h, want, 0);
    if (got < 0)
        return ls_err_set(err, LS_EIO, "rate limit table %s: cannot read: %s", path,
                          strerror(errno));
    if ((size_t)got < sizeof h.magic || memcmp(h.magic, MAGIC, sizeof h.magic) != 0)
        return ls_err_set(err, LS_EFORMAT,
                          "%s is not a Lodestone rate limit table (bad magic); remove it or "
                          "choose another path",
                          path);
    if ((size_t)got < sizeof h)
        return ls_err_set(err, LS_EFORMAT, "rate limit table %s is truncated (%lld bytes)", path,
                          (long long)size);
    if (h.layout != LS_RL_LAYOUT)
        return ls_err_set(err, LS_EFORMAT,
                          "rate limit table %s has layout %u; this build reads layout %u", path,
                          (unsigned)h.layout, (unsigned)LS_RL_LAYOUT);
    if (h.ways != WAYS || h.mutex_bytes != sizeof(pthread_mutex_t) ||
        h.slot_bytes != sizeof(struct slot))
        return ls_err_set(err, LS_EFORMAT,
                          "rate limit table %s was made by an incompatible build (ways %u, mutex "
                          "%u bytes, slot %u bytes)",
                          path, (unsigned)h.ways, (unsigned)h.mutex_bytes, (unsigned)h.slot_bytes);
    if (h.capacity != capacity)
        return ls_err_set(err, LS_EFORMAT,
                          "rate limit table %s holds %llu slots, not the %zu asked for (use one "
                          "capacity everywhere, or remove the file)",
                          path, (unsigned long long)h.capacity, capacity);
    if (h.header_bytes != header_bytes_for(capacity) || h.nstripes != stripes_for(capacity) ||
        h.file_bytes != file_bytes_for(capacity))
        return ls_err_set(err, LS_EFORMAT, "rate limit table %s has a damaged header", path);
    if (size != (off_t)h.file_bytes)
        return ls_err_set(err, LS_EFORMAT,
                          "rate limit table %s has %lld bytes, not %llu: truncated or damaged",
                          path, (long long)size, (unsigned long long)h.file_bytes);
    return LS_OK;
}

static ls_rc map_table(ls_rl_t *rl, int fd, size_t capacity, ls_err *err)
{
    struct stat sb;
    if (fstat(fd, &sb) != 0)
        return ls_err_set(err, LS_EIO, "rate limit table %s: cannot stat: %s", rl->path,
                          strerror(errno));
    ls_rc rc = check_file(rl->path, &sb, err);
    if (rc == LS_OK) rc = check_header(rl->path, fd, sb.st_size, capacity, err);
    if (rc != LS_OK) return rc;

    size_t bytes = file_bytes_for(capacity);
    void *map = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED)
        return ls_err_set(err, LS_EIO, "rate limit table %s: cannot map: %s", rl->path,
                          strerror(errno));
    rl->map = map;
    rl->map_bytes = bytes;
    rl->hdr = map;
    rl->stripes = (union stripe *)(rl->map + round_up(sizeof(struct header), LINE));
    rl->slots = (struct slot *)(rl->map + header_bytes_for(capacity));
    rl->set_mask = capacity / WAYS - 1;
    rl->stripe_mask = stripes_for(capacity) - 1;
    rl->capacity = capacity;
    memcpy(rl->hash_key, rl->hdr->hash_key, sizeof rl->hash_key);
    return LS_OK;
}

static ls_rc norm_capacity(const ls_rl_opts *opts, size_t *capacity, ls_err *err)
{
    size_t want = opts && opts->capacity ? opts->capacity : LS_RL_DEFAULT_CAPACITY;
    if (want > LS_RL_MAX_CAPACITY)
        return ls_err_set(err, LS_EINVAL, "rate limit table: capacity %zu is over the maximum %zu",
                          want, (size_t)LS_RL_MAX_CAPACITY);
    size_t c = LS_RL_MIN_CAPACITY;
    while (c < want) c <<= 1;
    *capacity = c;
    return LS_OK;
}

ls_rc ls_rl_open(ls_rl_t **out, const char *path, const ls_rl_opts *opts, ls_err *err)
{
    if (out == NULL || path == NULL || *path == '\0')
        return ls_err_set(err, LS_EINVAL, "ls_rl_open: out and path are required");
    *out = NULL;
    size_t capacity = 0;
    ls_rc rc = norm_capacity(opts, &capacity, err);
    if (rc != LS_OK) return rc;
    unsigned mode = opts && opts->mode ? opts->mode : 0600;
    if ((mode & ~0777u) != 0 || (mode & 0002u) != 0)
        return ls_err_set(err, LS_EINVAL,
                          "rate limit table %s: mode %o must be permission bits that do not let "
                          "other users write",
                          path, mode);
    if (sodium_init() < 0)
        return ls_err_set(err, LS_EIO, "rate limit table %s: libsodium failed to start", path);

    int fd = -1;
    ls_rl_t *rl = ls_calloc(1, sizeof *rl);
    if (rl == NULL) return ls_err_set(err, LS_ENOMEM, "rate limit table %s: out of memory", path);
    rl->path = ls_strdup(path);
    if (rl->path == NULL) {
        rc = ls_err_set(err, LS_ENOMEM, "rate limit table %s: out of memory", path);
        goto fail;
    }
    rc = open_file(path, capacity, mode, &fd, err);
    if (rc != LS_OK) goto fail;
    rc = map_table(rl, fd, capacity, err);
    if (rc != LS_OK) goto fail;
    close(fd);
    ls_shm_guard_install();
    *out = rl;
    return LS_OK;

fail:
    if (fd >= 0) close(fd);
    ls_rl_close(rl);
    return rc;
}

void ls_rl_close(ls_rl_t *rl)
{
    if (rl == NULL) return;
    if (rl->map != NULL) munmap(rl->map, rl->map_bytes);
    sodium_memzero(rl->hash_key, sizeof rl->hash_key);
    ls_free(rl->path);
    ls_free(rl);
}

void ls_rl_stats_get(const ls_rl_t *rl, ls_rl_stats *out)
{
    assert(rl != NULL && out != NULL);
    memset(out, 0, sizeof *out);
    out->capacity = rl->capacity;
    if (is_damaged(rl)) return; /* counters gone with the file */
    sigjmp_buf jb;
    if (sigsetjmp(jb, 0) == 0) {
        ls_shm_guard_begin(&jb);
        out->used = (size_t)__atomic_load_n(&rl->hdr->used, __ATOMIC_RELAXED);
        out->evictions = __atomic_load_n(&rl->hdr->evictions, __ATOMIC_RELAXED);
        out->recovered = __atomic_load_n(&rl->hdr->recovered, __ATOMIC_RELAXED);
    } else {
        __atomic_store_n(&((ls_rl_t *)rl)->damaged, 1, __ATOMIC_RELAXED);
        memset(out, 0, sizeof *out);
        out->capacity = rl->capacity;
    }
    ls_shm_guard_end();
}

/* ---- taking ---- */

void ls_rl_hash(const ls_rl_t *rl, const void *key, size_t klen, ls_rl_key *out)
{
    unsigned char h[crypto_shorthash_siphashx24_BYTES];
    crypto_shorthash_siphashx24(h, key ? key : (const void *)"", klen, rl->hash_key);
    memcpy(&out->h0, h, 8);
    memcpy(&out->h1, h + 8, 8);
    if (out->h0 == 0 && out->h1 == 0) out->h1 = 1; /* all zero marks an empty slot */
}

static pthread_mutex_t *stripe_of(ls_rl_t *rl, uint64_t set)
{
    return &rl->stripes[set & rl->stripe_mask].mu;
}

/* Set when a fault left a stripe lock of this process in glibc's list of
 * robust mutexes it holds (the list runs through the mutexes, in a
 * mapping that is gone): the next robust lock would write through it. A
 * process with it set takes no lock again, of any table, until it ends. */
static int locks_lost;

/* How long a take waits for a stripe lock: far longer than any holder
 * keeps one (a few hundred nanoseconds), so that only a holder stopped in
 * its critical section, or a lock whose memory was cut away, runs out. */
#define LOCK_WAIT_MS 250

static ls_rc lock(ls_rl_t *rl, pthread_mutex_t *mu, ls_err *err)
{
    int e = pthread_mutex_trylock(mu); /* the usual case: free, and no clock read */
    if (e == EBUSY) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += LOCK_WAIT_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        e = pthread_mutex_clocklock(mu, CLOCK_MONOTONIC, &until);
    }
    if (e == 0) return LS_OK;
    if (e == ETIMEDOUT)
        return ls_err_set(err, LS_EIO,
                          "rate limit table %s: a lock was held over %d ms (a worker stopped "
                          "inside it, or the table was cut short): denying",
                          rl->path, LOCK_WAIT_MS);
    if (e == EOWNERDEAD) {
        /* The holder died inside its critical section; the slots it may
         * have half written are still valid slots (see the file comment). */
        pthread_mutex_consistent(mu);
        __atomic_fetch_add(&rl->hdr->recovered, 1, __ATOMIC_RELAXED);
        return LS_OK;
    }
    return ls_err_set(err, LS_EIO, "rate limit table %s: cannot lock: %s", rl->path, strerror(e));
}

static int64_t sat_add(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r)) return b > 0 ? INT64_MAX : INT64_MIN;
    return r;
}

static int64_t ceil_ms(int64_t ns)
{
    return ns <= 0 ? 0 : ns / NS_PER_MS + (ns % NS_PER_MS != 0);
}

/* Finds the slot of (h0, h1) in its set, or picks one for it: an empty
 * slot, else an idle one (TAT <= now: its bucket is full, so forgetting it
 * loses nothing), else the one with the oldest TAT (counted as an
 * eviction). *fresh is 1 when the slot does not hold the key yet. */
static struct slot *find_slot(struct slot *set, uint64_t h0, uint64_t h1, int64_t now, int *fresh)
{
    struct slot *empty = NULL, *idle = NULL, *oldest = NULL;
    for (int i = 0; i < WAYS; i++) {
        struct slot *s = &set[i];
        if (s->h0 == h0 && s->h1 == h1) {
            *fresh = 0;
            return s;
        }
        if (s->h0 == 0 && s->h1 == 0) {
            if (empty == NULL) empty = s;
        } else {
            if (idle == NULL && s->tat <= now) idle = s;
            if (oldest == NULL || s->tat < oldest->tat) oldest = s;
        }
    }
    *fresh = 1;
    if (empty != NULL) return empty;
    if (idle != NULL) return idle;
    return oldest;
}

static void claim_slot(ls_rl_t *rl, struct slot *s, int64_t now)
{
    if (s->h0 == 0 && s->h1 == 0)
        __atomic_fetch_add(&rl->hdr->used, 1, __ATOMIC_RELAXED);
    else if (s->tat > now)
        __atomic_fetch_add(&rl->hdr->evictions, 1, __ATOMIC_RELAXED);
}

typedef struct {
    int64_t tat, new_tat; /* before and after this request */
    int allowed;
} gcra_step;

/* The GCRA step for key (h0, h1) in set, with its stripe lock held. */
static void step(ls_rl_t *rl, uint64_t set, uint64_t h0, uint64_t h1, int64_t now, int64_t full_at,
                 int64_t t, int64_t tau, int64_t cost, gcra_step *out)
{
    int fresh;
    struct slot *s = find_slot(&rl->slots[set * WAYS], h0, h1, now, &fresh);
    /* A TAT beyond an empty bucket means the clock restarted (a reboot with
     * the file kept) or the limit was lowered: count the bucket as empty
     * from now on, and store that, so that it refills from now. */
    if (!fresh && s->tat > full_at) s->tat = full_at;
    int64_t tat = fresh ? now : s->tat;
    if (tat < now) tat = now;
    int64_t new_tat = sat_add(tat, cost * t);
    int allowed = new_tat - tau <= now;
    if (allowed && cost > 0) {
        if (fresh) {
            claim_slot(rl, s, now);
            s->h0 = h0;
            s->h1 = h1;
        }
        s->tat = new_tat;
    }
    out->tat = tat;
    out->new_tat = new_tat;
    out->allowed = allowed;
}

ls_rc ls_rl_take(ls_rl_t *rl, const void *key, size_t klen, const ls_rl_limit *lim, int64_t cost,
                 const ls_clock *clock, ls_rl_result *out, ls_err *err)
{
    if (rl == NULL || (key == NULL && klen > 0))
        return ls_err_set(err, LS_EINVAL, "ls_rl_take: table, limit, key and out are required");
    ls_rl_key h;
    ls_rl_hash(rl, key, klen, &h);
    return ls_rl_take_hash(rl, &h, lim, cost, clock, out, err);
}

ls_rc ls_rl_take_hash(ls_rl_t *rl, const ls_rl_key *key, const ls_rl_limit *lim, int64_t cost,
                      const ls_clock *clock, ls_rl_result *out, ls_err *err)
{
    if (rl == NULL || key == NULL || lim == NULL || out == NULL)
        return ls_err_set(err, LS_EINVAL, "ls_rl_take: table, limit, key and out are required");
    int64_t t = 1, tau = 0;
    ls_rc rc = limit_derive(lim, &t, &tau, err);
    if (rc != LS_OK) return rc;
    if (cost < 0 || cost > lim->burst)
        return ls_err_set(err, LS_EINVAL,
                          "rate limit: cost %lld must be between 0 and the burst (%lld)",
                          (long long)cost, (long long)lim->burst);

    uint64_t h0 = key->h0, h1 = key->h1;
    uint64_t set = h0 & rl->set_mask;
    int64_t now = ls_clock_mono_ns(clock);
    int64_t full_at = sat_add(now, tau); /* TAT of an empty bucket */

    if (is_damaged(rl)) return damaged_err(rl, err);
    if (__atomic_load_n(&locks_lost, __ATOMIC_RELAXED))
        return ls_err_set(err, LS_EIO,
                          "rate limit: this process lost a lock when a table was cut short "
                          "under it, and takes no lock again (lest it lose one in a table in "
                          "use): denying until it restarts (%s)",
                          rl->path);
    pthread_mutex_t *mu = stripe_of(rl, set);
    gcra_step st;
    sigjmp_buf jb;
    volatile int held = 0, unlocking = 0;
    if (sigsetjmp(jb, 0) != 0) {
        /* SIGBUS: the file was cut short under the mapping. (The guard is
         * still set: an unlock that faults too comes back here.) A fault
         * inside lock() leaves glibc's list of held robust mutexes as it
         * was (it writes the mutex before the list head); but a held lock
         * whose unlock faults stays in that list, which now runs into the
         * dead mapping: no lock may be taken after that. */
        if (unlocking) {
            unlocking = 0;
            __atomic_store_n(&locks_lost, 1, __ATOMIC_RELAXED);
        } else if (held) {
            held = 0;
            unlocking = 1;
            pthread_mutex_unlock(mu);
            unlocking = 0;
        }
        ls_shm_guard_end();
        __atomic_store_n(&rl->damaged, 1, __ATOMIC_RELAXED);
        return damaged_err(rl, err);
    }
    ls_shm_guard_begin(&jb);
    rc = lock(rl, mu, err);
    if (rc != LS_OK) {
        ls_shm_guard_end();
        return rc;
    }
    held = 1;
    step(rl, set, h0, h1, now, full_at, t, tau, cost, &st);
    if (ls_rl_test_inside_lock) ls_rl_test_inside_lock(ls_rl_test_inside_arg);
    held = 0;
    unlocking = 1;
    pthread_mutex_unlock(mu);
    unlocking = 0;
    ls_shm_guard_end();

    int64_t tat = st.tat, new_tat = st.new_tat, allow_at = new_tat - tau;
    int allowed = st.allowed;
    int64_t at = allowed ? new_tat : tat;
    out->allowed = allowed;
    out->limit = lim->burst;
    out->remaining = (full_at - at) / t;
    out->retry_after_ms = allowed ? 0 : ceil_ms(allow_at - now);
    out->reset_ms = ceil_ms(at - now);
    return LS_OK;
}

/* ---- test hooks ---- */

void (*ls_rl_test_inside_lock)(void *arg);
void *ls_rl_test_inside_arg;

/* Locks the stripe that key maps to and returns holding it, so that a test
 * can kill the process inside the lock. Not part of the API. */

ls_rc ls_rl_test_hold_lock(ls_rl_t *rl, const void *key, size_t klen, ls_err *err)
{
    ls_rl_key h;
    ls_rl_hash(rl, key, klen, &h);
    return lock(rl, stripe_of(rl, h.h0 & rl->set_mask), err);
}
