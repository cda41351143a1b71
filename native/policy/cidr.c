/* SPDX-License-Identifier: MIT
 * CIDR sets and X-Forwarded-For client resolution. Promises: entries are
 * parsed strictly and refused with a message naming them; a set is kept as
 * a sorted array of disjoint 128-bit ranges (IPv4 as IPv4-mapped IPv6), so
 * a lookup is one binary search and never writes; a client behind proxies
 * can never choose its own address by writing X-Forwarded-For.
 */
#include "ls_config.h"

#include <arpa/inet.h>
#include <endian.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lodestone/ls_alloc.h"
#include "lodestone/ls_cidr.h"

#define ENTRY_SHOWN 60 /* bytes of a bad entry quoted in a message */

typedef struct {
    uint64_t hi, lo;
} u128;

struct range {
    u128 lo, hi; /* inclusive */
};

/* Ranges sorted by lo, disjoint and not adjacent, kept as two arrays in one
 * block: the lookup's binary search reads only the packed lo keys. */
struct ls_cidr_set {
    u128 *lo; /* block[0..n); the block holds 2 * cap keys */
    u128 *hi; /* block + cap */
    size_t n, cap;
};

/* ---- 128-bit helpers ---- */

static u128 load(const uint8_t a[LS_CIDR_ADDRBYTES])
{
    u128 v;
    memcpy(&v.hi, a, 8);
    memcpy(&v.lo, a + 8, 8);
    v.hi = be64toh(v.hi);
    v.lo = be64toh(v.lo);
    return v;
}

static void store(u128 v, uint8_t a[LS_CIDR_ADDRBYTES])
{
    for (int i = 7; i >= 0; i--, v.hi >>= 8) a[i] = (uint8_t)v.hi;
    for (int i = 15; i >= 8; i--, v.lo >>= 8) a[i] = (uint8_t)v.lo;
}

static int cmp(u128 a, u128 b)
{
    if (a.hi != b.hi) return a.hi < b.hi ? -1 : 1;
    return (a.lo > b.lo) - (a.lo < b.lo);
}

/* a <= b without branches, for the lookup loop */
static size_t le(u128 a, u128 b)
{
    return (size_t)((a.hi < b.hi) | ((a.hi == b.hi) & (a.lo <= b.lo)));
}

static u128 mask_of(unsigned plen)
{
    u128 m;
    m.hi = plen == 0 ? 0 : plen >= 64 ? UINT64_MAX : UINT64_MAX << (64 - plen);
    m.lo = plen <= 64 ? 0 : plen >= 128 ? UINT64_MAX : UINT64_MAX << (128 - plen);
    return m;
}

static int is_max(u128 a)
{
    return a.hi == UINT64_MAX && a.lo == UINT64_MAX;
}

static u128 plus_one(u128 a)
{
    u128 r = {a.hi + (a.lo == UINT64_MAX), a.lo + 1};
    return r;
}

/* ---- addresses ---- */

static int is_mapped(const uint8_t a[LS_CIDR_ADDRBYTES])
{
    static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return memcmp(a, prefix, sizeof prefix) == 0;
}

/* Dotted-quad IPv4, exactly as inet_pton(3) reads it: four decimal parts
 * of at most 255, no leading zeros, nothing else. A hand-written parser
 * because this runs on every request and inet_pton needs a NUL-terminated
 * copy. 0 on success. */
static int parse_v4(const char *s, size_t len, uint8_t out[4])
{
    size_t i = 0;
    for (int part = 0; part < 4; part++) {
        if (part > 0) {
            if (i >= len || s[i] != '.') return -1;
            i++;
        }
        size_t start = i;
        unsigned v = 0;
        while (i < len && i - start < 3 && s[i] >= '0' && s[i] <= '9')
            v = v * 10 + (unsigned)(s[i++] - '0');
        if (i == start || v > 255 || (i - start > 1 && s[start] == '0')) return -1;
        out[part] = (uint8_t)v;
    }
    return i == len ? 0 : -1;
}

/* Parses an address; NULL on success, else why it is not one. */
static const char *addr_parse(const char *text, size_t len, uint8_t out[LS_CIDR_ADDRBYTES], int *v4)
{
    char buf[LS_CIDR_TEXTMAX];
    if (len == 0) return "empty";
    if (memchr(text, ':', len) == NULL) {
        if (parse_v4(text, len, out + 12) != 0) return "not an IP address";
        memset(out, 0, 10);
        out[10] = out[11] = 0xff;
        *v4 = 1;
        return NULL;
    }
    if (memchr(text, '%', len) != NULL) return "zone ids (\"%...\") are not allowed";
    if (len >= sizeof buf) return "too long for an IP address";
    if (memchr(text, '\0', len) != NULL) return "not an IP address";
    memcpy(buf, text, len);
    buf[len] = '\0';
    if (inet_pton(AF_INET6, buf, out) != 1) return "not an IP address";
    *v4 = 0;
    return NULL;
}

ls_rc ls_cidr_parse_addr(const char *text, size_t len, uint8_t out[LS_CIDR_ADDRBYTES], ls_err *err)
{
    int v4;
    const char *why = text && out ? addr_parse(text, len, out, &v4) : "no address given";
    if (why == NULL) return LS_OK;
    size_t shown = text ? (len > ENTRY_SHOWN ? ENTRY_SHOWN : len) : 0;
    return ls_err_set(err, LS_EINVAL, "address \"%.*s\": %s", (int)shown, text ? text : "", why);
}

void ls_cidr_format_addr(const uint8_t addr[LS_CIDR_ADDRBYTES], char out[LS_CIDR_TEXTMAX])
{
    if (is_mapped(addr))
        inet_ntop(AF_INET, addr + 12, out, LS_CIDR_TEXTMAX);
    else
        inet_ntop(AF_INET6, addr, out, LS_CIDR_TEXTMAX);
}

/* ---- entries ---- */

/* Reads a prefix length: plain decimal, no sign or leading zero. */
static int parse_plen(const char *s, size_t len, unsigned *out)
{
    if (len == 0 || len > 3 || (len > 1 && s[0] == '0')) return -1;
    unsigned v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    *out = v;
    return 0;
}

static ls_rc bad_entry(ls_err *err, const char *e, size_t len, const char *why)
{
    return ls_err_set(err, LS_EINVAL, "ip entry \"%.*s\": %s",
                      (int)(len > ENTRY_SHOWN ? ENTRY_SHOWN : len), e, why);
}

/* Parses "addr" or "addr/len" into an inclusive range. */
static ls_rc entry_parse(const char *e, size_t len, struct range *r, ls_err *err)
{
    const char *slash = memchr(e, '/', len);
    size_t alen = slash ? (size_t)(slash - e) : len;
    uint8_t a[LS_CIDR_ADDRBYTES];
    int v4;
    const char *why = addr_parse(e, alen, a, &v4);
    if (why != NULL) return bad_entry(err, e, len, why);

    unsigned bits = v4 ? 32 : 128, plen = bits;
    if (slash != NULL && parse_plen(slash + 1, len - alen - 1, &plen) != 0)
        return bad_entry(err, e, len, "the prefix length after '/' must be a plain number");
    if (plen > bits)
        return bad_entry(err, e, len,
                         v4 ? "prefix length out of range (0-32 for IPv4)"
                            : "prefix length out of range (0-128 for IPv6)");

    u128 addr = load(a), m = mask_of(v4 ? plen + 96 : plen);
    u128 net = {addr.hi & m.hi, addr.lo & m.lo};
    if (cmp(net, addr) != 0) {
        char text[LS_CIDR_TEXTMAX], why_buf[LS_ERR_MSGMAX];
        store(net, a);
        inet_ntop(v4 ? AF_INET : AF_INET6, v4 ? a + 12 : a, text, sizeof text);
        snprintf(why_buf, sizeof why_buf, "host bits set, did you mean %s/%u?", text, plen);
        return bad_entry(err, e, len, why_buf);
    }
    r->lo = net;
    r->hi.hi = net.hi | ~m.hi;
    r->hi.lo = net.lo | ~m.lo;
    return LS_OK;
}

static int range_cmp(const void *pa, const void *pb)
{
    const struct range *a = pa, *b = pb;
    int c = cmp(a->lo, b->lo);
    return c != 0 ? c : cmp(a->hi, b->hi);
}

/* ---- sets ---- */

ls_rc ls_cidr_set_new(ls_cidr_set_t **out, ls_err *err)
{
    if (out == NULL) return ls_err_set(err, LS_EINVAL, "ls_cidr_set_new: out is required");
    *out = ls_calloc(1, sizeof **out);
    if (*out == NULL) return ls_err_set(err, LS_ENOMEM, "ip set: out of memory");
    return LS_OK;
}

void ls_cidr_set_free(ls_cidr_set_t *set)
{
    if (set == NULL) return;
    ls_free(set->lo);
    ls_free(set);
}

size_t ls_cidr_set_ranges(const ls_cidr_set_t *set)
{
    return set ? set->n : 0;
}

/* Appends r to the ranges lo/hi[0..*n), merging it into the last one when
 * the two overlap or touch. Ranges arrive sorted by lo. */
static void push(u128 *lo, u128 *hi, size_t *n, u128 rlo, u128 rhi)
{
    if (*n > 0) {
        u128 *last = &hi[*n - 1];
        if (is_max(*last) || cmp(rlo, plus_one(*last)) <= 0) {
            if (cmp(rhi, *last) > 0) *last = rhi;
            return;
        }
    }
    lo[*n] = rlo;
    hi[(*n)++] = rhi;
}

/* Merges the sorted ranges add[0..n) into the set: a new block, swapped in
 * only once complete, so a failure leaves the set as it was. */
static ls_rc merge(ls_cidr_set_t *set, const struct range *add, size_t n, ls_err *err)
{
    if (n == 0) return LS_OK;
    size_t cap = set->n + n;
    if (cap < n || cap > SIZE_MAX / (2 * sizeof(u128)))
        return ls_err_set(err, LS_ENOMEM, "ip set: too many entries");
    u128 *lo = ls_malloc(2 * cap * sizeof *lo);
    if (lo == NULL) return ls_err_set(err, LS_ENOMEM, "ip set: out of memory");
    u128 *hi = lo + cap;
    size_t i = 0, j = 0, m = 0;
    while (i < set->n || j < n) {
        if (j == n || (i < set->n && cmp(set->lo[i], add[j].lo) <= 0)) {
            push(lo, hi, &m, set->lo[i], set->hi[i]);
            i++;
        } else {
            push(lo, hi, &m, add[j].lo, add[j].hi);
            j++;
        }
    }
    ls_free(set->lo);
    set->lo = lo;
    set->hi = hi;
    set->n = m;
    set->cap = cap;
    return LS_OK;
}

ls_rc ls_cidr_set_add(ls_cidr_set_t *set, const char *entry, size_t len, ls_err *err)
{
    if (set == NULL || entry == NULL)
        return ls_err_set(err, LS_EINVAL, "ls_cidr_set_add: set and entry are required");
    struct range r;
    ls_rc rc = entry_parse(entry, len, &r, err);
    return rc != LS_OK ? rc : merge(set, &r, 1, err);
}

ls_rc ls_cidr_set_add_list(ls_cidr_set_t *set, const char *const *entries, size_t n, ls_err *err)
{
    if (set == NULL || (entries == NULL && n > 0))
        return ls_err_set(err, LS_EINVAL, "ls_cidr_set_add_list: set and entries are required");
    if (n == 0) return LS_OK;
    if (n > SIZE_MAX / sizeof(struct range))
        return ls_err_set(err, LS_ENOMEM, "ip set: too many entries");
    struct range *tmp = ls_malloc(n * sizeof *tmp);
    if (tmp == NULL) return ls_err_set(err, LS_ENOMEM, "ip set: out of memory");
    ls_rc rc = LS_OK;
    for (size_t i = 0; i < n && rc == LS_OK; i++) {
        if (entries[i] == NULL) {
            rc = ls_err_set(err, LS_EINVAL, "ip entry %zu: missing (NULL)", i + 1);
            break;
        }
        rc = entry_parse(entries[i], strlen(entries[i]), &tmp[i], err);
        if (rc != LS_OK) ls_err_prefix(err, "entry %zu", i + 1);
    }
    if (rc == LS_OK) {
        qsort(tmp, n, sizeof *tmp, range_cmp);
        rc = merge(set, tmp, n, err);
    }
    ls_free(tmp);
    return rc;
}

int ls_cidr_set_contains_addr(const ls_cidr_set_t *set, const uint8_t addr[LS_CIDR_ADDRBYTES])
{
    if (set == NULL || set->n == 0) return 0;
    u128 a = load(addr);
    /* the last range whose lo is <= a is the only candidate; a branchless
     * binary search, since its branches would be unpredictable */
    const u128 *base = set->lo;
    size_t len = set->n;
    while (len > 1) {
        size_t half = len / 2;
        /* fetch both possible next midpoints while this one is compared */
        __builtin_prefetch(&base[half / 2]);
        __builtin_prefetch(&base[half + half / 2]);
        base += le(base[half], a) * half;
        len -= half;
    }
    return (int)(le(*base, a) & le(a, set->hi[base - set->lo]));
}

ls_rc ls_cidr_set_contains(const ls_cidr_set_t *set, const char *addr, size_t len, int *found,
                           ls_err *err)
{
    uint8_t a[LS_CIDR_ADDRBYTES];
    if (found == NULL) return ls_err_set(err, LS_EINVAL, "ls_cidr_set_contains: found is required");
    *found = 0;
    ls_rc rc = ls_cidr_parse_addr(addr, len, a, err);
    if (rc != LS_OK) return rc;
    *found = ls_cidr_set_contains_addr(set, a);
    return LS_OK;
}

/* ---- client address ---- */

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

ls_rc ls_cidr_client_addr(const char *peer, size_t peer_len, const char *xff, size_t xff_len,
                          const ls_cidr_set_t *trusted, char out[LS_CIDR_TEXTMAX],
                          uint8_t addr_out[LS_CIDR_ADDRBYTES], ls_err *err)
{
    if (out == NULL) return ls_err_set(err, LS_EINVAL, "ls_cidr_client_addr: out is required");
    out[0] = '\0';
    uint8_t cur[LS_CIDR_ADDRBYTES]; /* the client as far as we can trust */
    ls_rc rc = ls_cidr_parse_addr(peer, peer_len, cur, err);
    if (rc != LS_OK) {
        ls_err_prefix(err, "peer");
        return rc;
    }
    if (xff != NULL && ls_cidr_set_contains_addr(trusted, cur)) {
        size_t end = xff_len;
        for (;;) {
            size_t start = end;
            while (start > 0 && xff[start - 1] != ',') start--;
            size_t a = start, b = end;
            while (a < b && is_ows(xff[a])) a++;
            while (b > a && is_ows(xff[b - 1])) b--;
            uint8_t hop[LS_CIDR_ADDRBYTES];
            int v4;
            /* written by a trusted hop, yet not an address: stop at that hop */
            if (addr_parse(xff + a, b - a, hop, &v4) != NULL) break;
            memcpy(cur, hop, sizeof cur);
            if (!ls_cidr_set_contains_addr(trusted, cur) || start == 0) break;
            end = start - 1;
        }
    }
    ls_cidr_format_addr(cur, out);
    if (addr_out != NULL) memcpy(addr_out, cur, sizeof cur);
    return LS_OK;
}
