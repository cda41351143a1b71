/* SPDX-License-Identifier: MIT
 * Sets of IPv4 and IPv6 address ranges in CIDR notation ("10.0.0.0/8",
 * "2001:db8::/32", or a single address), with fast membership tests, and
 * the client address of a request behind trusted proxies (X-Forwarded-For).
 *
 * Conventions: see ls_err.h. Text inputs are (pointer, length) pairs and
 * need no NUL. Addresses are parsed strictly: dotted-quad IPv4 without
 * leading zeros, IPv6 as inet_pton(3) reads it, no zone ids ("%eth0"), no
 * brackets, ports or surrounding spaces. In binary form every address is 16
 * bytes: IPv4 a.b.c.d is stored as the IPv4-mapped IPv6 address
 * ::ffff:a.b.c.d, so IPv4 entries match mapped addresses and the other way
 * round.
 *
 * Threads: a set is built by one thread; once built, any number of threads
 * may test membership at once (lookups never write).
 */
#ifndef LODESTONE_CIDR_H
#define LODESTONE_CIDR_H

#include <stddef.h>
#include <stdint.h>

#include "ls_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes of a binary address, and room for an address as text with its NUL
 * (the longest is "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"). */
#define LS_CIDR_ADDRBYTES 16
#define LS_CIDR_TEXTMAX   46

typedef struct ls_cidr_set ls_cidr_set_t;

/* ---- addresses ---- */

/* Parses one address (IPv4 or IPv6, no prefix) into out. LS_EINVAL with
 * the text in the message when it is not an address. */
LS_API ls_rc ls_cidr_parse_addr(const char *text, size_t len, uint8_t out[LS_CIDR_ADDRBYTES],
                                ls_err *err);

/* Writes the canonical text of addr into out (NUL-terminated): IPv4 and
 * IPv4-mapped addresses as dotted quads, others as inet_ntop(3) writes
 * IPv6 (lower case, longest zero run compressed). */
LS_API void ls_cidr_format_addr(const uint8_t addr[LS_CIDR_ADDRBYTES], char out[LS_CIDR_TEXTMAX]);

/* ---- sets ---- */

/* New empty set. Caller frees with ls_cidr_set_free. */
LS_API ls_rc ls_cidr_set_new(ls_cidr_set_t **out, ls_err *err);

/* set may be NULL. */
LS_API void ls_cidr_set_free(ls_cidr_set_t *set);

/* Adds one entry: "addr/len" or a single address (a /32 or /128). LS_EINVAL
 * naming the entry when the address does not parse, the length is out of
 * range (0-32 for IPv4, 0-128 for IPv6) or not plain decimal, or bits are
 * set beyond the prefix ("10.0.0.1/8: host bits set, did you mean
 * 10.0.0.0/8?"). On failure the set is unchanged. Each call costs time in
 * proportion to the size of the set: add many entries with
 * ls_cidr_set_add_list. */
LS_API ls_rc ls_cidr_set_add(ls_cidr_set_t *set, const char *entry, size_t len, ls_err *err);

/* Adds n NUL-terminated entries at once, all or none: on a bad entry the
 * set is unchanged and the message names that entry and its index. */
LS_API ls_rc ls_cidr_set_add_list(ls_cidr_set_t *set, const char *const *entries, size_t n,
                                  ls_err *err);

/* Number of disjoint address ranges the set holds after overlapping and
 * adjacent entries were merged (0 for an empty set). */
LS_API size_t ls_cidr_set_ranges(const ls_cidr_set_t *set);

/* 1 when addr lies in one of the set's ranges, else 0. set may be NULL
 * (empty). */
LS_API int ls_cidr_set_contains_addr(const ls_cidr_set_t *set,
                                     const uint8_t addr[LS_CIDR_ADDRBYTES]);

/* Parses addr as ls_cidr_parse_addr does and sets *found to 1 or 0.
 * LS_EINVAL when addr is not an address (*found is then 0). */
LS_API ls_rc ls_cidr_set_contains(const ls_cidr_set_t *set, const char *addr, size_t len,
                                  int *found, ls_err *err);

/* ---- client address ---- */

/* Decides which address a request comes from. peer is the address of the
 * connection; xff the X-Forwarded-For header value (NULL or xff_len 0 when
 * absent; several headers joined with commas, spaces around entries
 * allowed); trusted the proxies whose X-Forwarded-For entries are believed
 * (NULL: none).
 *  - When peer is not in trusted, the client is peer and xff is ignored.
 *  - Otherwise xff is walked from the right (each proxy appends the address
 *    it received the request from); entries that are trusted proxies are
 *    skipped and the first that is not is the client. When every entry is
 *    trusted, the client is the leftmost one.
 *  - An entry that is not an address (empty, "unknown", a port, garbage)
 *    ends the walk, and the client is the last address known to be trusted
 *    (the entry to its right, or peer). Entries to the left of it may have
 *    been written by anyone, the client included, so they are never used:
 *    a client can never choose its address by prepending to the header.
 * Writes the chosen address as canonical text (see ls_cidr_format_addr)
 * into out, and in binary into addr_out unless it is NULL. LS_EINVAL when
 * peer is not an address. */
LS_API ls_rc ls_cidr_client_addr(const char *peer, size_t peer_len, const char *xff, size_t xff_len,
                                 const ls_cidr_set_t *trusted, char out[LS_CIDR_TEXTMAX],
                                 uint8_t addr_out[LS_CIDR_ADDRBYTES] /* may be NULL */,
                                 ls_err *err);

#ifdef __cplusplus
}
#endif
#endif
