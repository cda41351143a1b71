/* SPDX-License-Identifier: MIT
 * Identity assertions (internal to ls_policy): a short-lived Ed25519-signed
 * JWT naming the caller, sent to the backend beside the plain identity
 * headers, so a backend can verify who is calling instead of trusting a
 * header. The public keys are served as a JWKS. The signing key lives in a
 * 0600 key file shared by every lighttpd worker (created on first use). */
#ifndef LS_POLICY_ASSERTION_H
#define LS_POLICY_ASSERTION_H

#include <stddef.h>
#include <stdint.h>

#include "lodestone/ls_clock.h"
#include "lodestone/ls_err.h"

typedef struct ls_assertion ls_assertion_t;

/* Loads the Ed25519 key from key_path, creating it (mode 0600, O_EXCL, so
 * concurrent workers agree on one key) when absent. A key file that group
 * or others can read is refused (LS_EPERM). issuer and audience (may be
 * NULL) go into every token; ttl_s is the token lifetime (1..3600). Caller
 * frees with ls_assertion_free. */
ls_rc ls_assertion_open(ls_assertion_t **out, const char *key_path, const char *issuer,
                        const char *audience, int64_t ttl_s, const ls_clock *clock, ls_err *err);

/* Wipes the key and frees everything; a may be NULL. */
void ls_assertion_free(ls_assertion_t *a);

/* A signed compact JWT {iss, aud?, sub, roles, iat, exp} for this caller.
 * Tokens are cached per (subject, roles) and reused until half their
 * lifetime has passed, so signing is rare on a hot path. *token is borrowed
 * until the next call. */
ls_rc ls_assertion_token(ls_assertion_t *a, const char *subject, const char *const *roles,
                         size_t nroles, const char **token, ls_err *err);

/* The public key as a JWK Set (JSON text), borrowed until free. */
const char *ls_assertion_jwks(const ls_assertion_t *a);

/* The key id (16 hex digits). */
const char *ls_assertion_kid(const ls_assertion_t *a);

#endif
