/* SPDX-License-Identifier: MIT
 * HTTP Basic against argon2id password files (format in ls_basic.h). Users
 * sit in an open-addressing table keyed by SipHash with a per-set key; good
 * credentials are remembered in a 4-way set-associative cache keyed by
 * BLAKE2b(per-set key, user "\0" password), so the password itself is never
 * stored. Decoded credentials live in per-set sodium_malloc scratch memory
 * and are wiped on every path. Unknown users cost a dummy argon2id run. */
#include "ls_config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "conffile.h"
#include "lodestone/ls_alloc.h"
#include "lodestone/ls_basic.h"

#define FILE_MAX    ((size_t)16 << 20)
#define USER_MAX    255u
#define PREFIX      "$argon2id$v=19$m="
#define M_MAX       1048576u /* KiB: 1 GiB */
#define T_MAX       64u
#define EMPTY       UINT32_MAX
#define WAYS        4u
#define DIGESTBYTES 32u
#define CACHEKEY    32u /* BLAKE2b key of the cache */
#define SHORTKEY    crypto_shorthash_KEYBYTES
#define SCRATCH     (LS_BASIC_HEADER_MAX / 4 * 3 + 3)
#define TTL_MAX_MS  ((int64_t)366 * 24 * 3600 * 1000)
/* The dummy hash an unknown user is checked against: fixed salt and output,
 * the parameters of the file's first user. It never matches anything. */
#define DUMMY_FMT \
    PREFIX "%u,t=%u,p=1$bG9kZXN0b25lLWR1bW15IQ$2JyjpcuaxVuIz+PitKW/9XtcNYRXdfFKCY0fpCSX0z8"

struct user {
    const char *name; /* NUL-terminated in the text block */
    size_t nlen;
    const char *hash; /* NUL-terminated argon2id string */
    size_t line;
};

struct slot {
    unsigned char digest[DIGESTBYTES];
    int64_t expires_ns;
    uint64_t stamp; /* insertion order, for eviction */
    uint32_t user;  /* EMPTY when free */
};

struct ls_basic_set {
    char *text;
    struct user *u;
    size_t n, cap;
    uint32_t *table; /* user indexes */
    size_t mask;
    unsigned char *secret; /* sodium_malloc: cache key, then SipHash key */
    char *scratch;         /* sodium_malloc: decoded credentials */
    struct slot *cache;    /* NULL when caching is off */
    size_t nbuckets;       /* power of two; WAYS slots each */
    int64_t ttl_ns;
    uint64_t tick;
    const ls_clock *clock;
    char dummy[crypto_pwhash_STRBYTES];
    ls_basic_stats st;
};

static ls_rc sodium_ready(ls_err *err)
{
    if (sodium_init() < 0) return ls_err_set(err, LS_EIO, "libsodium failed to initialise");
    return LS_OK;
}

size_t ls_basic_count(const ls_basic_set_t *set)
{
    return set ? set->n : 0;
}

void ls_basic_get_stats(const ls_basic_set_t *set, ls_basic_stats *out)
{
    if (out == NULL) return;
    if (set == NULL) {
        memset(out, 0, sizeof *out);
        return;
    }
    *out = set->st;
}

void ls_basic_free(ls_basic_set_t *set)
{
    if (set == NULL) return;
    if (set->cache) sodium_memzero(set->cache, set->nbuckets * WAYS * sizeof *set->cache);
    ls_free(set->cache);
    sodium_free(set->secret); /* wipes */
    sodium_free(set->scratch);
    ls_free(set->text);
    ls_free(set->u);
    ls_free(set->table);
    ls_free(set);
}

/* ---- grammar ---- */

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static const char *check_user(const char *s, size_t len)
{
    if (len == 0) return "the user name is empty";
    if (len > USER_MAX) return "the user name is longer than 255 characters";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c > 0x7e || c == ':')
            return "the user name has a character that is not printable ASCII (or is ':')";
    }
    return NULL;
}

static int starts(const char *s, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && memcmp(s, prefix, n) == 0;
}

/* Names a password hash format that is not argon2id. */
static const char *foreign_format(const char *h, size_t len)
{
    static const struct {
        const char *prefix, *name;
    } known[] = {
        {"$apr1$", "an htpasswd MD5 hash ($apr1$)"},
        {"{SHA}", "an htpasswd SHA-1 hash ({SHA})"},
        {"$2a$", "a bcrypt hash ($2a$)"},
        {"$2b$", "a bcrypt hash ($2b$)"},
        {"$2y$", "a bcrypt hash ($2y$)"},
        {"$1$", "an MD5-crypt hash ($1$)"},
        {"$5$", "a SHA-256-crypt hash ($5$)"},
        {"$6$", "a SHA-512-crypt hash ($6$)"},
        {"$y$", "a yescrypt hash ($y$)"},
        {"$7$", "a scrypt hash ($7$)"},
        {"$argon2i$", "an argon2i hash"},
        {"$argon2d$", "an argon2d hash"},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (starts(h, len, known[i].prefix)) return known[i].name;
    return "not an argon2id hash";
}

/* Reads a decimal number (1 to 10 digits, at most UINT32_MAX) at *p. */
static int read_u32(const char **p, const char *end, uint32_t *out)
{
    uint64_t v = 0;
    const char *s = *p;
    while (s < end && *s >= '0' && *s <= '9' && s - *p < 10) v = v * 10 + (uint64_t)(*s++ - '0');
    if (s == *p || v > UINT32_MAX) return -1;
    *out = (uint32_t)v;
    *p = s;
    return 0;
}

/* Checks a NUL-terminated hash string of len bytes; gives its m and t. */
static const char *check_hash(const char *h, size_t len, uint32_t *m, uint32_t *t)
{
    if (!starts(h, len, "$argon2id$")) return foreign_format(h, len);
    if (len >= crypto_pwhash_STRBYTES) return "the argon2id string is too long";
    if (!starts(h, len, PREFIX)) return "the argon2id string is not version 19 (v=19)";
    const char *p = h + strlen(PREFIX), *end = h + len;
    uint32_t lanes;
    if (read_u32(&p, end, m) != 0 || !starts(p, (size_t)(end - p), ",t=") ||
        (p += 3, read_u32(&p, end, t)) != 0 || !starts(p, (size_t)(end - p), ",p=") ||
        (p += 3, read_u32(&p, end, &lanes)) != 0 || p == end || *p != '$')
        return "the argon2id parameters are not \"m=<KiB>,t=<passes>,p=1\"";
    if (lanes != 1) return "the argon2id hash uses more than one lane (p=1 is required)";
    if (*m > M_MAX || *t > T_MAX || *t < 1)
        return "the argon2id parameters are out of range (m <= 1048576 KiB, t from 1 to 64)";
    if (crypto_pwhash_argon2id_str_needs_rehash(h, *t, (size_t)*m * 1024) < 0)
        return "the argon2id string is malformed";
    return NULL;
}

/* ---- users ---- */

static uint64_t user_hash(const ls_basic_set_t *set, const char *name, size_t len)
{
    unsigned char h[crypto_shorthash_BYTES];
    crypto_shorthash(h, (const unsigned char *)name, len, set->secret + CACHEKEY);
    uint64_t v;
    memcpy(&v, h, sizeof v);
    return v;
}

static uint32_t find_user(const ls_basic_set_t *set, const char *name, size_t len)
{
    uint64_t h = user_hash(set, name, len);
    for (size_t i = (size_t)h & set->mask; set->table[i] != EMPTY; i = (i + 1) & set->mask) {
        const struct user *u = &set->u[set->table[i]];
        if (u->nlen == len && memcmp(u->name, name, len) == 0) return set->table[i];
    }
    return EMPTY;
}

static ls_rc build_table(ls_basic_set_t *set, ls_err *err)
{
    size_t cap = 8;
    while (cap < set->n * 2) cap *= 2;
    set->table = ls_malloc(cap * sizeof *set->table);
    if (set->table == NULL) return ls_err_set(err, LS_ENOMEM, "out of memory loading users");
    memset(set->table, 0xff, cap * sizeof *set->table);
    set->mask = cap - 1;
    for (size_t k = 0; k < set->n; k++) {
        const struct user *u = &set->u[k];
        uint64_t h = user_hash(set, u->name, u->nlen);
        size_t i = (size_t)h & set->mask;
        for (; set->table[i] != EMPTY; i = (i + 1) & set->mask) {
            const struct user *o = &set->u[set->table[i]];
            if (o->nlen == u->nlen && memcmp(o->name, u->name, u->nlen) == 0)
                return ls_err_set(err, LS_EFORMAT, "line %zu: user '%s' is already on line %zu",
                                  u->line, u->name, o->line);
        }
        set->table[i] = (uint32_t)k;
    }
    return LS_OK;
}

/* ---- parsing ---- */

static ls_rc parse_line(ls_basic_set_t *set, char *s, size_t len, size_t line, uint32_t *m,
                        uint32_t *t, ls_err *err)
{
    char *colon = memchr(s, ':', len);
    if (colon == NULL)
        return ls_err_set(err, LS_EFORMAT, "line %zu: expected <user>:<argon2id hash>", line);
    size_t ulen = (size_t)(colon - s);
    const char *why = check_user(s, ulen);
    if (why) return ls_err_set(err, LS_EFORMAT, "line %zu: %s", line, why);
    *colon = '\0';
    char *h = colon + 1;
    size_t hlen = len - ulen - 1;
    h[hlen] = '\0';
    if (memchr(h, '\0', hlen) != NULL || (why = check_hash(h, hlen, m, t)) != NULL)
        return ls_err_set(err, LS_EFORMAT, "line %zu: user '%s': %s; only argon2id is accepted",
                          line, s, why ? why : "the hash has a NUL byte");
    if (set->n == set->cap) {
        size_t ncap = set->cap ? set->cap * 2 : 16;
        struct user *u = ls_realloc(set->u, ncap * sizeof *u);
        if (u == NULL) return ls_err_set(err, LS_ENOMEM, "out of memory loading users");
        set->u = u;
        set->cap = ncap;
    }
    set->u[set->n++] = (struct user){s, ulen, h, line};
    return LS_OK;
}

static ls_rc parse_lines(ls_basic_set_t *set, char *text, size_t len, ls_err *err)
{
    uint32_t m = crypto_pwhash_MEMLIMIT_INTERACTIVE / 1024, t = crypto_pwhash_OPSLIMIT_INTERACTIVE;
    char *p = text, *end = text + len;
    for (size_t line = 1; p < end; line++) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *stop = nl ? nl : end, *s = p;
        p = nl ? nl + 1 : end;
        while (s < stop && is_blank(*s)) s++;
        if (s < stop && stop[-1] == '\r') stop--;
        while (stop > s && is_blank(stop[-1])) stop--;
        if (s == stop || *s == '#') continue;
        uint32_t lm = 0, lt = 0; /* set by parse_line on LS_OK */
        ls_rc rc = parse_line(set, s, (size_t)(stop - s), line, &lm, &lt, err);
        if (rc != LS_OK) return rc;
        if (set->n == 1) m = lm, t = lt;
    }
    snprintf(set->dummy, sizeof set->dummy, DUMMY_FMT, m, t);
    if (crypto_pwhash_argon2id_str_needs_rehash(set->dummy, t, (size_t)m * 1024) < 0)
        return ls_err_set(err, LS_EIO, "internal error: the dummy argon2id hash is malformed");
    return build_table(set, err);
}

static ls_rc apply_opts(ls_basic_set_t *set, const ls_basic_opts *opts, ls_err *err)
{
    int64_t ttl = opts && opts->cache_ttl_ms ? opts->cache_ttl_ms : LS_BASIC_CACHE_TTL_DEFAULT_MS;
    size_t want =
        opts && opts->cache_entries ? opts->cache_entries : LS_BASIC_CACHE_ENTRIES_DEFAULT;
    set->clock = opts ? opts->clock : NULL;
    if (ttl == LS_BASIC_NO_CACHE) return LS_OK;
    if (ttl < 0 || ttl > TTL_MAX_MS)
        return ls_err_set(err, LS_EINVAL, "cache TTL %lld ms is out of range", (long long)ttl);
    if (want > LS_BASIC_CACHE_ENTRIES_MAX)
        return ls_err_set(err, LS_EINVAL, "cache of %zu entries is over the limit of %u", want,
                          LS_BASIC_CACHE_ENTRIES_MAX);
    size_t slots = WAYS;
    while (slots < want) slots *= 2;
    set->cache = ls_calloc(slots, sizeof *set->cache);
    if (set->cache == NULL) return ls_err_set(err, LS_ENOMEM, "out of memory for the Basic cache");
    for (size_t i = 0; i < slots; i++) set->cache[i].user = EMPTY;
    set->nbuckets = slots / WAYS;
    set->ttl_ns = ttl * 1000000;
    return LS_OK;
}

/* Parses text (len bytes plus a NUL), taking ownership of it. */
static ls_rc parse_owned(ls_basic_set_t **out, char *text, size_t len, const ls_basic_opts *opts,
                         ls_err *err)
{
    ls_basic_set_t *set = ls_calloc(1, sizeof *set);
    if (set == NULL) {
        ls_free(text);
        return ls_err_set(err, LS_ENOMEM, "out of memory loading users");
    }
    set->text = text;
    ls_rc rc = apply_opts(set, opts, err);
    if (rc != LS_OK) goto fail;
    set->secret = sodium_malloc(CACHEKEY + SHORTKEY);
    set->scratch = sodium_malloc(SCRATCH);
    if (set->secret == NULL || set->scratch == NULL) {
        rc = ls_err_set(err, LS_ENOMEM, "out of memory for Basic credentials");
        goto fail;
    }
    randombytes_buf(set->secret, CACHEKEY + SHORTKEY);
    rc = parse_lines(set, text, len, err);
    if (rc != LS_OK) goto fail;
    *out = set;
    return LS_OK;

fail:
    ls_basic_free(set);
    return rc;
}

ls_rc ls_basic_parse(ls_basic_set_t **out, const char *text, size_t len, const ls_basic_opts *opts,
                     ls_err *err)
{
    if (out == NULL || (text == NULL && len != 0))
        return ls_err_set(err, LS_EINVAL, "ls_basic_parse needs an out pointer and text");
    *out = NULL;
    ls_rc rc = sodium_ready(err);
    if (rc != LS_OK) return rc;
    if (len > FILE_MAX)
        return ls_err_set(err, LS_EFORMAT, "password file larger than %zu bytes", FILE_MAX);
    char *copy = ls_malloc(len + 1);
    if (copy == NULL) return ls_err_set(err, LS_ENOMEM, "out of memory loading users");
    if (len) memcpy(copy, text, len);
    copy[len] = '\0';
    return parse_owned(out, copy, len, opts, err);
}

ls_rc ls_basic_load(ls_basic_set_t **out, const char *path, const ls_basic_opts *opts, ls_err *err)
{
    if (out == NULL || path == NULL)
        return ls_err_set(err, LS_EINVAL, "ls_basic_load needs an out pointer and a path");
    *out = NULL;
    ls_rc rc = sodium_ready(err);
    if (rc != LS_OK) return rc;
    char *text = NULL;
    size_t len = 0;
    rc = ls_conffile_read(path, FILE_MAX, "a user", &text, &len, err);
    if (rc == LS_OK) rc = parse_owned(out, text, len, opts, err);
    if (rc != LS_OK) ls_err_prefix(err, "password file %s", path);
    return rc;
}

/* ---- cache ---- */

static void cred_digest(const ls_basic_set_t *set, const char *user, size_t ulen,
                        const void *password, size_t plen, unsigned char out[DIGESTBYTES])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, set->secret, CACHEKEY, DIGESTBYTES);
    crypto_generichash_update(&st, (const unsigned char *)user, ulen);
    crypto_generichash_update(&st, (const unsigned char *)"", 1);
    if (plen) crypto_generichash_update(&st, password, plen);
    crypto_generichash_final(&st, out, DIGESTBYTES);
    sodium_memzero(&st, sizeof st);
}

static struct slot *bucket(const ls_basic_set_t *set, const unsigned char digest[DIGESTBYTES])
{
    uint64_t h;
    memcpy(&h, digest, sizeof h);
    return &set->cache[((size_t)h & (set->nbuckets - 1)) * WAYS];
}

/* 1 when the cache holds a live entry for these credentials. */
static int cache_hit(ls_basic_set_t *set, const unsigned char digest[DIGESTBYTES], uint32_t user,
                     int64_t now)
{
    struct slot *b = bucket(set, digest);
    for (unsigned w = 0; w < WAYS; w++) {
        struct slot *s = &b[w];
        if (s->user == EMPTY || sodium_memcmp(s->digest, digest, DIGESTBYTES) != 0) continue;
        if (s->user == user && now < s->expires_ns) return 1;
        s->user = EMPTY; /* expired */
        sodium_memzero(s->digest, DIGESTBYTES);
        return 0;
    }
    return 0;
}

static void cache_put(ls_basic_set_t *set, const unsigned char digest[DIGESTBYTES], uint32_t user,
                      int64_t now)
{
    struct slot *b = bucket(set, digest), *victim = NULL;
    for (unsigned w = 0; w < WAYS; w++) {
        struct slot *s = &b[w];
        if (s->user == EMPTY || now >= s->expires_ns) {
            victim = s;
            break;
        }
        if (victim == NULL || s->stamp < victim->stamp) victim = s;
    }
    if (victim->user != EMPTY && now < victim->expires_ns) set->st.cache_evictions++;
    memcpy(victim->digest, digest, DIGESTBYTES);
    victim->user = user;
    victim->expires_ns = now + set->ttl_ns;
    victim->stamp = ++set->tick;
}

/* ---- verification ---- */

ls_rc ls_basic_verify_password(ls_basic_set_t *set, const char *user, size_t ulen,
                               const void *password, size_t plen, const char **user_out,
                               ls_err *err)
{
    if (set == NULL || user_out == NULL || (user == NULL && ulen) || (password == NULL && plen))
        return ls_err_set(err, LS_EINVAL, "ls_basic_verify_password needs a set and credentials");
    *user_out = NULL;
    uint32_t idx = ulen <= USER_MAX ? find_user(set, user ? user : "", ulen) : EMPTY;
    unsigned char digest[DIGESTBYTES];
    int64_t now = 0;
    ls_rc rc;
    if (set->cache) {
        cred_digest(set, user ? user : "", ulen, password, plen, digest);
        now = ls_clock_mono_ns(set->clock);
        if (idx != EMPTY && cache_hit(set, digest, idx, now)) {
            set->st.cache_hits++;
            *user_out = set->u[idx].name;
            rc = LS_OK;
            goto done;
        }
        set->st.cache_misses++;
    }
    set->st.pwhash_calls++;
    const char *hash = idx != EMPTY ? set->u[idx].hash : set->dummy;
    int ok = crypto_pwhash_str_verify(hash, password ? password : "", plen) == 0;
    if (idx == EMPTY) {
        rc = ls_err_set(err, LS_EAUTH, "unknown user");
    } else if (!ok) {
        rc = ls_err_set(err, LS_EAUTH, "wrong password for user '%s'", set->u[idx].name);
    } else {
        if (set->cache) cache_put(set, digest, idx, now);
        *user_out = set->u[idx].name;
        rc = LS_OK;
    }
done:
    if (set->cache) sodium_memzero(digest, sizeof digest);
    return rc;
}

static int scheme_is_basic(const char *s, size_t len)
{
    static const char basic[] = "basic";
    if (len < 6 || s[5] != ' ') return 0;
    for (size_t i = 0; i < 5; i++)
        if ((s[i] | 0x20) != basic[i]) return 0;
    return 1;
}

ls_rc ls_basic_verify(ls_basic_set_t *set, const char *header, size_t len, const char **user,
                      ls_err *err)
{
    if (set == NULL || user == NULL)
        return ls_err_set(err, LS_EINVAL, "ls_basic_verify needs a set and a user pointer");
    *user = NULL;
    if (header == NULL) return ls_err_set(err, LS_EINVAL, "no Authorization header");
    while (len && is_blank(header[0])) header++, len--;
    while (len && is_blank(header[len - 1])) len--;
    if (len > LS_BASIC_HEADER_MAX)
        return ls_err_set(err, LS_EINVAL, "Authorization header longer than %u bytes",
                          LS_BASIC_HEADER_MAX);
    if (!scheme_is_basic(header, len))
        return ls_err_set(err, LS_EINVAL, "Authorization header is not Basic credentials");
    size_t i = 6;
    while (i < len && header[i] == ' ') i++;
    if (i == len) return ls_err_set(err, LS_EINVAL, "no credentials after \"Basic\"");

    size_t n = 0, wipe = (len - i) / 4 * 3 + 3;
    char *cred = set->scratch;
    ls_rc rc;
    if (sodium_base642bin((unsigned char *)cred, SCRATCH, header + i, len - i, NULL, &n, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0) {
        rc = ls_err_set(err, LS_EINVAL, "Basic credentials are not valid padded base64");
    } else {
        const char *colon = memchr(cred, ':', n);
        size_t ulen = colon ? (size_t)(colon - cred) : 0;
        rc = colon ? ls_basic_verify_password(set, cred, ulen, colon + 1, n - ulen - 1, user, err)
                   : ls_err_set(err, LS_EINVAL, "Basic credentials have no ':' after the user");
    }
    sodium_memzero(cred, wipe < SCRATCH ? wipe : SCRATCH);
    return rc;
}

/* ---- writing password files ---- */

static ls_rc make_hash(const void *password, size_t len, uint64_t ops, size_t mem,
                       char out[crypto_pwhash_STRBYTES], ls_err *err)
{
    if (password == NULL && len != 0) return ls_err_set(err, LS_EINVAL, "password is NULL");
    ls_rc rc = sodium_ready(err);
    if (rc != LS_OK) return rc;
    if (ops == 0) ops = crypto_pwhash_OPSLIMIT_INTERACTIVE;
    if (mem == 0) mem = crypto_pwhash_MEMLIMIT_INTERACTIVE;
    if (ops < crypto_pwhash_OPSLIMIT_MIN || ops > T_MAX)
        return ls_err_set(err, LS_EINVAL, "opslimit %llu is outside %u..%u",
                          (unsigned long long)ops, (unsigned)crypto_pwhash_OPSLIMIT_MIN, T_MAX);
    if (mem < crypto_pwhash_MEMLIMIT_MIN || mem > (size_t)M_MAX * 1024)
        return ls_err_set(err, LS_EINVAL, "memlimit %zu is outside %u..%zu bytes", mem,
                          (unsigned)crypto_pwhash_MEMLIMIT_MIN, (size_t)M_MAX * 1024);
    if (crypto_pwhash_str(out, password ? password : "", len, ops, mem) != 0)
        return ls_err_set(err, LS_ENOMEM, "argon2id could not get %zu bytes of memory", mem);
    return LS_OK;
}

ls_rc ls_basic_hash_password(const void *password, size_t len, uint64_t opslimit, size_t memlimit,
                             ls_buf *out, ls_err *err)
{
    if (out == NULL) return ls_err_set(err, LS_EINVAL, "ls_basic_hash_password needs a buffer");
    char h[crypto_pwhash_STRBYTES];
    ls_rc rc = make_hash(password, len, opslimit, memlimit, h, err);
    if (rc == LS_OK) rc = ls_buf_append(out, h, strlen(h), err);
    sodium_memzero(h, sizeof h);
    return rc;
}

ls_rc ls_basic_hash_line(const char *user, const void *password, size_t len, uint64_t opslimit,
                         size_t memlimit, ls_buf *out, ls_err *err)
{
    if (out == NULL || user == NULL)
        return ls_err_set(err, LS_EINVAL, "ls_basic_hash_line needs a user and a buffer");
    size_t ulen = strlen(user);
    const char *why = check_user(user, ulen);
    if (why) return ls_err_set(err, LS_EINVAL, "%s", why);
    char h[crypto_pwhash_STRBYTES];
    ls_rc rc = make_hash(password, len, opslimit, memlimit, h, err);
    size_t hlen = rc == LS_OK ? strlen(h) : 0;
    if (rc == LS_OK) rc = ls_buf_reserve(out, ulen + 1 + hlen + 1, err);
    if (rc == LS_OK) {
        ls_buf_append(out, user, ulen, NULL);
        ls_buf_putc(out, ':', NULL);
        ls_buf_append(out, h, hlen, NULL);
        ls_buf_putc(out, '\n', NULL);
    }
    sodium_memzero(h, sizeof h);
    return rc;
}
