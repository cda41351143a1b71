/* SPDX-License-Identifier: MIT
 * libFuzzer: one policy decision (ls_policy_eval) on a fuzzed request,
 * against tests/fuzz/policy_eval.json (every authenticator, rules, rate
 * limits, IP rules with trusted proxies, identity headers, assertion).
 * Input: byte 0 advances the monotonic clock by that many seconds (rate
 * limits refill; wall time stays fixed for token expiry), byte 1 is a mask
 * of fields to leave absent (bit i: field i), then fields separated by
 * 0x1f: method, path, query, host, remote_addr, Authorization,
 * X-Forwarded-For, X-API-Key, X-Hub-Signature-256, Stripe-Signature,
 * X-Sig, X-Token, X-Tenant, claims, body. Empty header and claims fields
 * are absent.
 * When the claims field is present and Authorization is absent or empty,
 * Authorization becomes "Bearer " + an HS256 token over those claims,
 * signed with hs.key; a signature field that is exactly "!" is replaced
 * by the right signature of the body. */
#include "fuzz_policy.h"

#include <strings.h>

#include <jansson.h>

#include "ls_json.h"

#include "lodestone/ls_base64.h"
#include "lodestone/ls_cidr.h"
#include "lodestone/ls_hmac.h"
#include "policy/path.h"

enum {
    F_METHOD,
    F_PATH,
    F_QUERY,
    F_HOST,
    F_PEER,
    F_AUTHZ,
    F_XFF,
    F_APIKEY,
    F_GH,
    F_STRIPE,
    F_XSIG,
    F_XTOKEN,
    F_TENANT,
    F_CLAIMS,
    F_BODY,
    NF
};
static const char *const hdr_of[NF] = {
    [F_AUTHZ] = "Authorization",    [F_XFF] = "X-Forwarded-For",     [F_APIKEY] = "X-API-Key",
    [F_GH] = "X-Hub-Signature-256", [F_STRIPE] = "Stripe-Signature", [F_XSIG] = "X-Sig",
    [F_XTOKEN] = "X-Token",         [F_TENANT] = "X-Tenant",
};

static ls_policy_t *pol;
static ls_cidr_set_t *deny_set, *allow_set;

/* (Re)loads the policy with the clock at its start. */
static void load_policy(void)
{
    ls_policy_opts opts = policy_opts();
    size_t n;
    char *text = fuzz_slurp("tests/fuzz/policy_eval.json", &n);
    ls_err err;
    if (ls_policy_load(&pol, text, n, &opts, &err) != LS_OK) FUZZ_BUG("load: %s", err.msg);
    free(text);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    policy_files();
    load_policy();
    ls_err err;
    const char *d[] = {"10.9.0.0/16", "2001:db8:dead::/48"};
    const char *a[] = {"10.0.0.0/8", "::1/128", "192.0.2.0/24", "127.0.0.0/8", "2001:db8::/32"};
    if (ls_cidr_set_new(&deny_set, &err) != LS_OK || ls_cidr_set_add_list(deny_set, d, 2, &err) ||
        ls_cidr_set_new(&allow_set, &err) != LS_OK || ls_cidr_set_add_list(allow_set, a, 5, &err))
        abort();
    return 0;
}

static void hexs(char *out, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", p[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > 16384) return 0;
    pol_clock.mono_ns += (int64_t)data[0] * INT64_C(1000000000);
    if (pol_clock.mono_ns > INT64_C(1000000000000000000)) { /* about 31 years: start again */
        ls_policy_free(pol);
        load_policy();
    }
    unsigned absent = data[1];
    data += 2, size -= 2;

    char *f[NF] = {0};
    size_t fl[NF] = {0};
    int have[NF] = {0};
    size_t start = 0, k = 0;
    for (size_t i = 0; i <= size && k < NF; i++) {
        if (i == size || data[i] == 0x1f) {
            f[k] = fuzz_exact(data + start, i - start);
            fl[k] = i - start;
            have[k] = !(k < 8 && (absent >> k) & 1);
            k++;
            start = i + 1;
        }
    }
    for (; k < NF; k++) f[k] = fuzz_exact("", 0);
    /* an empty header or claims field is an absent one */
    for (int j = F_AUTHZ; j <= F_CLAIMS; j++)
        if (fl[j] == 0) have[j] = 0;

    /* harness-made credentials */
    char *minted = NULL;
    if (have[F_CLAIMS] && !have[F_AUTHZ]) {
        ls_buf tok = LS_BUF_INIT;
        ls_buf_set(&tok, "Bearer ", 7, NULL);
        size_t s0 = tok.len;
        ls_base64url_encode("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", 27, &tok, NULL);
        ls_buf_putc(&tok, '.', NULL);
        ls_base64url_encode(f[F_CLAIMS], fl[F_CLAIMS], &tok, NULL);
        unsigned char mac[32];
        ls_hmac_sha256(POL_SECRET, strlen(POL_SECRET), tok.ptr + s0, tok.len - s0, mac);
        ls_buf_putc(&tok, '.', NULL);
        ls_base64url_encode(mac, 32, &tok, NULL);
        minted = fuzz_exact(tok.ptr, tok.len);
        free(f[F_AUTHZ]);
        f[F_AUTHZ] = minted;
        fl[F_AUTHZ] = tok.len;
        have[F_AUTHZ] = 1;
        ls_buf_free(&tok);
    }
    unsigned char mac[32];
    char sigbuf[256];
    if (have[F_GH] && fl[F_GH] == 1 && f[F_GH][0] == '!') {
        ls_hmac_sha256(POL_GH_SECRET, strlen(POL_GH_SECRET), f[F_BODY], fl[F_BODY], mac);
        strcpy(sigbuf, "sha256=");
        hexs(sigbuf + 7, mac, 32);
        free(f[F_GH]);
        fl[F_GH] = strlen(sigbuf);
        f[F_GH] = fuzz_exact(sigbuf, fl[F_GH]);
    }
    if (have[F_STRIPE] && fl[F_STRIPE] == 1 && f[F_STRIPE][0] == '!') {
        ls_buf m = LS_BUF_INIT;
        ls_buf_printf(&m, NULL, "%lld.", FUZZ_NOW_S);
        ls_buf_append(&m, f[F_BODY], fl[F_BODY], NULL);
        ls_hmac_sha256(POL_GH_SECRET, strlen(POL_GH_SECRET), m.ptr, m.len, mac);
        ls_buf_free(&m);
        int n = snprintf(sigbuf, sizeof sigbuf, "t=%lld,v1=", FUZZ_NOW_S);
        hexs(sigbuf + n, mac, 32);
        free(f[F_STRIPE]);
        fl[F_STRIPE] = strlen(sigbuf);
        f[F_STRIPE] = fuzz_exact(sigbuf, fl[F_STRIPE]);
    }
    if (have[F_XSIG] && fl[F_XSIG] == 1 && f[F_XSIG][0] == '!') {
        ls_hmac_sha256(POL_GH_SECRET, strlen(POL_GH_SECRET), f[F_BODY], fl[F_BODY], mac);
        ls_buf b = LS_BUF_INIT;
        ls_buf_set(&b, "v1=", 3, NULL);
        ls_base64_encode(mac, 32, &b, NULL);
        free(f[F_XSIG]);
        fl[F_XSIG] = b.len;
        f[F_XSIG] = fuzz_exact(b.ptr, b.len);
        ls_buf_free(&b);
    }

    size_t nh = ls_policy_header_count(pol);
    ls_str headers[32];
    if (nh > 32) abort();
    for (size_t i = 0; i < nh; i++) {
        const char *name = ls_policy_header_name(pol, i);
        headers[i] = (ls_str){NULL, 0};
        for (int j = 0; j < NF; j++)
            if (hdr_of[j] && have[j] && strcasecmp(hdr_of[j], name) == 0)
                headers[i] = (ls_str){f[j], fl[j]};
    }
#define S(i) (have[i] ? (ls_str){f[i], fl[i]} : (ls_str){NULL, 0})
    ls_policy_request req = {.method = S(F_METHOD),
                             .path = S(F_PATH),
                             .query = S(F_QUERY),
                             .host = S(F_HOST),
                             .remote_addr = S(F_PEER),
                             .headers = headers,
                             .body = have[F_BODY] ? (ls_str){f[F_BODY], fl[F_BODY]}
                                                  : (ls_str){NULL, 0}};
    ls_policy_decision d;
    memset(&d, 0x5a, sizeof d);
    ls_err err;
    ls_rc rc = ls_policy_eval(pol, &req, &d, &err);
    if (rc != LS_OK) FUZZ_BUG("eval returned %s", ls_rc_name(rc));
    if (getenv("FUZZ_VERBOSE"))
        fprintf(stderr, "decision: allow %d status %d reason %s detail %s subject %s client %s\n",
                d.allow, d.status, d.allow ? "-" : d.reason, d.allow || !d.detail ? "-" : d.detail,
                d.subject ? d.subject : "-", d.client ? d.client : "-");
    if (getenv("FUZZ_VERBOSE") && d.allow)
        for (size_t i = 0; i < d.n_set_headers; i++) {
            const char *v = d.set_headers[i].value, *dot = strchr(v, '.');
            fprintf(stderr, "  set %s: %s\n", d.set_headers[i].name, v);
            if (strcasecmp(d.set_headers[i].name, "X-Lodestone-Assertion") == 0 && dot) {
                const char *end = strchr(dot + 1, '.');
                ls_buf pl = LS_BUF_INIT;
                if (end &&
                    ls_base64url_decode(dot + 1, (size_t)(end - dot - 1), &pl, NULL) == LS_OK)
                    fprintf(stderr, "  assertion claims: %.*s\n", (int)pl.len, (char *)pl.ptr);
                ls_buf_free(&pl);
            }
        }
    if (d.allow != 0 && d.allow != 1) FUZZ_BUG("allow is %d", d.allow);
    /* 200 with allow 0: the gate answered itself (the assertion JWKS at
     * /.well-known/lodestone/jwks.json) */
    if (d.allow ? d.status != 0
                : (d.status != 400 && d.status != 401 && d.status != 403 && d.status != 429 &&
                   d.status != 500 && d.status != 200))
        FUZZ_BUG("allow %d with status %d", d.allow, d.status);
    if (!d.allow && (d.reason == NULL || d.reason[0] == '\0')) FUZZ_BUG("denied without a reason");
    if (!d.allow && d.status == 500)
        FUZZ_BUG("internal error: %s (%s)", d.reason, d.detail ? d.detail : "");
    if (d.allow) {
        ls_buf norm = LS_BUF_INIT;
        if (!have[F_PATH] || ls_path_normalize(f[F_PATH], fl[F_PATH], &norm, NULL) != LS_OK)
            FUZZ_BUG("allowed a path that does not normalise");
        const char *np = (const char *)norm.ptr;
        if (strncmp(np, "/internal/", 10) == 0 || strcmp(np, "/internal") == 0)
            FUZZ_BUG("allowed %s past a deny rule", np);
        int public = strcmp(np, "/healthz") == 0 ||
                     (fl[F_METHOD] == 7 && memcmp(f[F_METHOD], "OPTIONS", 7) == 0);
        if (!public && d.subject == NULL && strncmp(np, "/admin", 6) == 0)
            FUZZ_BUG("allowed %s without a subject", np);
        /* Rule /admin/(anything) needs the role "admin": with a token minted here, the
         * claims must hold exactly that string in realm_access.roles */
        if (minted && d.subject && have[F_CLAIMS] &&
            (strcmp(np, "/admin") == 0 || strncmp(np, "/admin/", 7) == 0)) {
            json_t *cj = NULL;
            int ok = 0;
            if (ls_json_parse(f[F_CLAIMS], fl[F_CLAIMS], &cj, NULL) == LS_OK) {
                json_t *roles = ls_json_path(cj, "realm_access.roles"), *e;
                size_t i;
                if (json_is_string(roles))
                    ok = json_string_length(roles) >= 5 &&
                         (strcmp(json_string_value(roles), "admin") == 0 ||
                          strstr(json_string_value(roles), " admin") ||
                          strncmp(json_string_value(roles), "admin ", 6) == 0);
                if (json_is_array(roles)) json_array_foreach(roles, i, e)
                    {
                        if (json_is_string(e) && json_string_length(e) == 5 &&
                            memcmp(json_string_value(e), "admin", 5) == 0)
                            ok = 1;
                    }
            }
            json_decref(cj);
            if (!ok) FUZZ_BUG("allowed %s but the token has no role \"admin\"", np);
        }
        ls_buf_free(&norm);
        if (d.client == NULL) FUZZ_BUG("allowed without a client address");
        uint8_t a[16];
        if (ls_cidr_parse_addr(d.client, strlen(d.client), a, NULL) != LS_OK)
            FUZZ_BUG("allowed client \"%s\" is not an address", d.client);
        if (ls_cidr_set_contains_addr(deny_set, a)) FUZZ_BUG("allowed denied client %s", d.client);
        if (!ls_cidr_set_contains_addr(allow_set, a))
            FUZZ_BUG("allowed client %s not in the allow list", d.client);
        for (size_t i = 0; i < d.n_set_headers; i++) {
            const ls_policy_header *h = &d.set_headers[i];
            size_t j;
            for (j = 0; j < ls_policy_strip_count(pol); j++)
                if (strcasecmp(ls_policy_strip_name(pol, j), h->name) == 0) break;
            if (j == ls_policy_strip_count(pol))
                FUZZ_BUG("sets header %s that the caller is not told to strip", h->name);
            for (const char *v = h->value; *v; v++)
                if ((unsigned char)*v < 0x20 || *v == 0x7f)
                    FUZZ_BUG("header %s has a control character", h->name);
        }
    } else {
        if (d.body == NULL || strlen(d.body) != d.body_len) FUZZ_BUG("deny body");
    }
    for (size_t i = 0; i < d.n_resp_headers; i++)
        for (const char *v = d.resp_headers[i].value; *v; v++)
            if ((unsigned char)*v < 0x20 || *v == 0x7f)
                FUZZ_BUG("response header %s has a control character", d.resp_headers[i].name);
    for (int i = 0; i < NF; i++) free(f[i]);
    return 0;
}
