/* SPDX-License-Identifier: MIT
 * Access rules of a policy (internal to ls_policy): an ordered list compiled
 * once from the JSON array a Lua policy's `rules = {...}` becomes. The first
 * rule whose route (method, host, path) matches decides; no match denies.
 * Evaluation allocates nothing and reads no clock.
 *
 * A rule is an object with these fields, all optional:
 *   path     pattern, written like a request path and %-decoded the same
 *            way (path.h). Segments are literal, `*` (exactly one
 *            non-empty segment) or `**` (any number of segments, including
 *            none: "/admin" followed by a "**" segment matches "/admin",
 *            "/admin/" and "/admin/a/b").
 *            '*' anywhere else in a segment is an error. Absent: any path.
 *            A trailing slash is not significant, in the pattern or in the
 *            request: "/me" matches "/me" and "/me/".
 *   methods  array of method names, compared case-insensitively (stored
 *            upper case). Absent: any method.
 *   host     host name, compared case-insensitively, without the port and a
 *            trailing dot ("API.example.com.:443" matches "api.example.com").
 *            Absent: any host.
 *   allow    "anyone": a public route, no authentication needed.
 *   deny     true: an explicit block (deny = false is the same as absent).
 *   roles    array: the caller needs AT LEAST ONE of these roles (any-of).
 *   scopes   array: the caller needs ALL of these scopes (all-of), as OAuth
 *            scopes are requested and granted together.
 *   claims   object: each key is a claim name, or a dotted path through
 *            nested objects ("realm_access.level") when no claim has the
 *            literal name; the claim must equal the given string, number or
 *            boolean, or be an array that contains it.
 *   name     label for the audit log; default "rules[N]".
 * A rule with none of allow/deny/roles/scopes/claims admits any
 * authenticated caller. allow and deny exclude each other and exclude
 * requirements. Rules are numbered from 1, as in the Lua table they come
 * from: errors read "rules[3]: unknown field 'role' (did you mean 'roles'?)".
 * Compiled rules are read-only: any number of threads may match and check
 * at once.
 */
#ifndef LS_POLICY_RULES_H
#define LS_POLICY_RULES_H

#include <stddef.h>
#include <stdint.h>

#include "ls_json.h"
#include "lodestone/ls_err.h"

/* Longest method name and host name a rule may name, in bytes. A request
 * whose method or host is longer can match no rule that names one. */
#define LS_RULES_METHOD_MAX 32
#define LS_RULES_HOST_MAX   255

typedef struct ls_rules ls_rules_t;
typedef struct ls_rule ls_rule; /* one rule; borrowed from its ls_rules_t */

/* What a rule does once its route matches. */
typedef enum {
    LS_RULE_REQUIRE = 0, /* authenticated caller, plus roles/scopes/claims */
    LS_RULE_PUBLIC,      /* allow = "anyone" */
    LS_RULE_DENY         /* deny = true */
} ls_rule_kind;

/* Why a decision went the way it did. */
typedef enum {
    LS_REASON_ALLOWED = 0,
    LS_REASON_NO_MATCH,          /* no rule matched: default deny */
    LS_REASON_NOT_AUTHENTICATED, /* the rule needs a caller; there is none */
    LS_REASON_MISSING_ROLE,
    LS_REASON_MISSING_SCOPE,
    LS_REASON_CLAIM_MISMATCH,
    LS_REASON_EXPLICIT_DENY
} ls_rule_reason;

/* Who is calling, as the engine found out. Strings are NUL-terminated and
 * compared exactly (case-sensitive). All pointers are borrowed for the
 * duration of the call; arrays may be NULL when their count is 0. */
typedef struct {
    int authenticated; /* 0: anonymous; every other field is ignored */
    const char *subject;
    const char *const *roles;
    size_t nroles;
    const char *const *scopes;
    size_t nscopes;
    const json_t *claims; /* object, or NULL */
} ls_identity;

/* Compiles decl, a JSON array of rule objects (see above), into *out.
 * An empty array is allowed and denies everything. decl is not kept: the
 * rules own copies of everything. Errors: LS_EINVAL naming the rule and
 * field, LS_ENOMEM. Caller frees with ls_rules_free. */
ls_rc ls_rules_compile(ls_rules_t **out, const json_t *decl, ls_err *err);

/* Compiles paths, a JSON array of 1 to 10000 path patterns written as a
 * rule's path, into rules that match those paths whatever the method and
 * host (for a field such as an authenticator's `paths`; match with method
 * and host NULL). label names the field in errors: "api.paths[2]: path
 * '/a*': ...". Errors: LS_EINVAL, LS_ENOMEM. Free with ls_rules_free. */
ls_rc ls_rules_compile_paths(ls_rules_t **out, const json_t *paths, const char *label, ls_err *err);

/* Frees the rules; NULL does nothing. Every ls_rule taken from them dies. */
void ls_rules_free(ls_rules_t *rules);

/* Number of rules. */
size_t ls_rules_count(const ls_rules_t *rules);

/* The i-th rule, counted from 0 (i < ls_rules_count). */
const ls_rule *ls_rules_at(const ls_rules_t *rules, size_t i);

/* Finds the first rule whose route matches. method and host are
 * NUL-terminated; host may carry a port and may be NULL (then rules with a
 * host never match); method may be NULL (then rules with methods never
 * match). path is the output of ls_path_normalize (path_len bytes).
 * Returns LS_OK with *rule set (borrowed until ls_rules_free), or
 * LS_ENOTFOUND when nothing matches: the request must be denied with
 * LS_REASON_NO_MATCH. Allocates nothing. */
ls_rc ls_rules_match(const ls_rules_t *rules, const char *method, const char *host,
                     const char *path, size_t path_len, const ls_rule **rule);

/* Decides a matched rule for id (id may be NULL: anonymous). Returns LS_OK
 * to allow or LS_EDENIED to deny, with *reason set either way. Checks, in
 * order: deny, allow = "anyone", authentication, roles (any-of), scopes
 * (all-of), claims (each). When detail is not NULL it receives what was
 * missing (the first missing scope, the mismatched claim name, the rule's
 * first role) or NULL: borrowed until ls_rules_free. Allocates nothing. */
ls_rc ls_rule_check(const ls_rule *rule, const ls_identity *id, ls_rule_reason *reason,
                    const char **detail);

/* The rule's name ("rules[N]" by default): borrowed until ls_rules_free. */
const char *ls_rule_name(const ls_rule *rule);

/* The rule's number, from 1, in the declaration. */
size_t ls_rule_index(const ls_rule *rule);

/* What the rule does: the engine skips authentication for LS_RULE_DENY and
 * may skip it for LS_RULE_PUBLIC. */
ls_rule_kind ls_rule_kind_of(const ls_rule *rule);

/* "allowed", "no_matching_rule", "not_authenticated", "missing_role",
 * "missing_scope", "claim_mismatch", "explicit_deny"; never NULL. */
const char *ls_rule_reason_name(ls_rule_reason reason);

#endif
