/* SPDX-License-Identifier: MIT
 * `lodestone dev token`: prints a JWT signed RS256 with the DEMO key in
 * policies/demo-keys/, so the example policies can be tried without an
 * identity provider. The key is public: nothing real may trust it.
 */
#include "ls_config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "cli.h"
#include "lodestone/lodestone.h"
#include "ls_json.h"

static const char usage[] =
    "usage: lodestone dev token --sub NAME [--roles a,b] [--scopes \"x y\"] [--aud AUD]\n"
    "                           [--iss ISS] [--ttl 1h] [--claim KEY=VALUE ...]\n"
    "\n"
    "Prints a JWT signed (RS256) with Lodestone's DEMO key,\n"
    "policies/demo-keys/demo-signing-key.pem, which the example policies trust\n"
    "through policies/demo-keys/jwks.json. For the demo and tests only: that\n"
    "private key is published with the source, so never let a real policy trust\n"
    "it. There is no option to sign with another key.\n"
    "\n"
    "  --sub NAME         subject (required)\n"
    "  --roles a,b        \"roles\" claim, a list\n"
    "  --scopes \"x y\"     \"scope\" claim (space- or comma-separated)\n"
    "  --aud AUD          audience (default lodestone: policies/lodestone-api.lua)\n"
    "  --iss ISS          issuer (default https://id.example.com/)\n"
    "  --ttl DURATION     lifetime: 30m, 1h, 7d ... (default 1h)\n"
    "  --claim KEY=VALUE  any other claim; VALUE is JSON when it parses as JSON\n"
    "                     (42, true, [\"a\"]), else a string; repeatable; applied\n"
    "                     last, so --claim exp=1 makes an expired token\n";

#define MAX_CLAIMS 32

typedef struct {
    const char *sub, *roles, *scopes, *aud, *iss, *ttl;
    const char *claims[MAX_CLAIMS];
    int nclaims;
} token_opts;

__attribute__((format(printf, 1, 2))) static int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("lodestone dev token: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 2;
}

/* ---- options ---- */

/* Whether s is valid UTF-8 (what a JSON string may hold). */
static int utf8(const char *s)
{
    json_t *j = json_string(s);
    json_decref(j);
    return j != NULL;
}

static int parse_opts(int argc, char **argv, token_opts *o)
{
    memset(o, 0, sizeof *o);
    o->aud = "lodestone";
    o->iss = "https://id.example.com/";
    o->ttl = "1h";
    static const char *const names[] = {"sub", "roles", "scopes", "aud",
                                        "iss", "ttl",   "claim",  NULL};
    const char **slot[] = {&o->sub, &o->roles, &o->scopes, &o->aud, &o->iss, &o->ttl};
    for (int i = 3; i < argc; i++) {
        const char *v;
        int k = cli_option(argc, argv, &i, "dev token", names, &v);
        if (k < 0) return 2;
        if (strcmp(names[k], "claim") != 0) {
            if (!utf8(v)) return fail("--%s: not valid UTF-8", names[k]);
            *slot[k] = v;
        } else {
            if (o->nclaims == MAX_CLAIMS) return fail("--claim: at most %d", MAX_CLAIMS);
            o->claims[o->nclaims++] = v;
        }
    }
    if (o->sub == NULL || *o->sub == '\0')
        return fail("--sub is required (the token's subject, e.g. --sub alice)");
    if (*o->aud == '\0') return fail("--aud: must not be empty");
    if (*o->iss == '\0') return fail("--iss: must not be empty");
    return 0;
}

/* Splits text at any of seps into a JSON array of non-empty strings; an
 * empty item ("a,,b") is an error naming the option. */
static int split_list(const char *opt, const char *text, const char *seps, json_t **out)
{
    json_t *arr = json_array();
    const char *p = text;
    while (1) {
        size_t n = strcspn(p, seps);
        if (n == 0) {
            json_decref(arr);
            return fail("%s: empty item in \"%s\"", opt, text);
        }
        json_array_append_new(arr, json_stringn(p, n));
        if (p[n] == '\0') break;
        p += n + 1;
    }
    *out = arr;
    return 0;
}

/* ---- claims ---- */

static int add_claim(json_t *claims, const char *kv)
{
    const char *eq = strchr(kv, '=');
    if (eq == NULL || eq == kv) return fail("--claim: expected KEY=VALUE, got \"%s\"", kv);
    const char *val = eq + 1;
    json_t *v = NULL;
    ls_err err;
    if (ls_json_parse(val, strlen(val), &v, &err) != LS_OK) v = json_string(val);
    if (v == NULL) return fail("--claim: \"%s\" is not valid UTF-8", kv);
    char key[128];
    if ((size_t)(eq - kv) >= sizeof key) {
        json_decref(v);
        return fail("--claim: key too long in \"%s\"", kv);
    }
    memcpy(key, kv, (size_t)(eq - kv));
    key[eq - kv] = '\0';
    if (json_object_set_new(claims, key, v) != 0) /* v is released either way */
        return fail("--claim: the key in \"%s\" is not valid UTF-8", kv);
    return 0;
}

static int build_claims(const token_opts *o, json_t **out)
{
    ls_err err;
    int64_t ttl_ms;
    if (ls_duration_parse(o->ttl, strlen(o->ttl), &ttl_ms, &err) != LS_OK)
        return fail("--ttl: %s", ls_err_text(&err));
    if (ttl_ms < 1000) return fail("--ttl: must be at least 1s, got \"%s\"", o->ttl);
    int64_t now = (int64_t)time(NULL);
    json_t *c = json_object();
    int rc = 0;
    json_object_set_new(c, "iss", json_string(o->iss));
    json_object_set_new(c, "aud", json_string(o->aud));
    json_object_set_new(c, "sub", json_string(o->sub));
    json_object_set_new(c, "iat", json_integer(now));
    json_object_set_new(c, "exp", json_integer(now + ttl_ms / 1000));
    json_t *list;
    if (rc == 0 && o->roles != NULL && (rc = split_list("--roles", o->roles, ",", &list)) == 0)
        json_object_set_new(c, "roles", list);
    if (rc == 0 && o->scopes != NULL &&
        (rc = split_list("--scopes", o->scopes, ", ", &list)) == 0) {
        /* The items joined by single spaces: never longer than --scopes. */
        char *scope = malloc(strlen(o->scopes) + 1);
        if (scope == NULL) {
            json_decref(list);
            json_decref(c);
            return fail("out of memory");
        }
        size_t i, n = 0;
        json_t *s;
        json_array_foreach(list, i, s)
        {
            size_t len = json_string_length(s);
            if (i > 0) scope[n++] = ' ';
            memcpy(scope + n, json_string_value(s), len);
            n += len;
        }
        scope[n] = '\0';
        json_decref(list);
        json_object_set_new(c, "scope", json_string(scope));
        free(scope);
    }
    for (int i = 0; rc == 0 && i < o->nclaims; i++) rc = add_claim(c, o->claims[i]);
    if (rc != 0 || json_string_value(json_object_get(c, "sub")) == NULL) {
        json_decref(c);
        return rc != 0 ? rc : fail("--claim sub: the subject must be a string");
    }
    *out = c;
    return 0;
}

/* ---- keys and signing ---- */

/* The kid of the first key in the JWKS beside the demo key, into kid. */
static int read_kid(const char *jwks_path, char *kid, size_t n)
{
    json_error_t jerr;
    json_t *doc = json_load_file(jwks_path, 0, &jerr);
    if (doc == NULL && jerr.line < 1) return fail("%s", jerr.text); /* names the file */
    if (doc == NULL) return fail("%s: line %d: %s", jwks_path, jerr.line, jerr.text);
    const char *k =
        json_string_value(json_object_get(json_array_get(json_object_get(doc, "keys"), 0), "kid"));
    int rc = k != NULL ? cli_fmt(kid, n, "%s", k) : -1;
    json_decref(doc);
    if (rc != 0) return fail("%s: no key with a \"kid\" in it", jwks_path);
    return 0;
}

/* RS256 over input with the PEM private key at pem_path; sig gets the
 * raw signature. */
static int sign_rs256(const char *pem_path, const char *input, ls_buf *sig)
{
    FILE *f = fopen(pem_path, "r");
    if (f == NULL) return fail("cannot open the demo key %s", pem_path);
    EVP_PKEY *key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (key == NULL || EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA) {
        EVP_PKEY_free(key);
        return fail("%s: not an RSA private key in PEM", pem_path);
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t len = 0;
    int rc = 2;
    ls_err err;
    if (ctx != NULL && EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) == 1 &&
        EVP_DigestSign(ctx, NULL, &len, (const unsigned char *)input, strlen(input)) == 1 &&
        ls_buf_reserve(sig, len, &err) == LS_OK &&
        EVP_DigestSign(ctx, sig->ptr, &len, (const unsigned char *)input, strlen(input)) == 1) {
        sig->len = len;
        rc = 0;
    }
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(key);
    if (rc != 0) return fail("signing with %s failed", pem_path);
    return 0;
}

static int b64url_json(const json_t *v, ls_buf *out)
{
    ls_buf text = LS_BUF_INIT;
    ls_err err = {LS_OK, ""};
    ls_rc rc = ls_json_dump(v, &text, &err);
    if (rc == LS_OK) rc = ls_base64url_encode(text.ptr, text.len, out, &err);
    ls_buf_free(&text);
    return rc == LS_OK ? 0 : fail("encoding: %s", ls_err_text(&err));
}

static int mint(const token_opts *o, const char *keys_dir)
{
    char pem[4096], jwks[4096], kid[256];
    if (cli_fmt(pem, sizeof pem, "%s/demo-signing-key.pem", keys_dir) != 0 ||
        cli_fmt(jwks, sizeof jwks, "%s/jwks.json", keys_dir) != 0)
        return fail("path too long: %s", keys_dir);
    int rc = read_kid(jwks, kid, sizeof kid);
    if (rc != 0) return rc;
    json_t *claims = NULL;
    if ((rc = build_claims(o, &claims)) != 0) return rc;
    json_t *header = json_pack("{s:s, s:s, s:s}", "alg", "RS256", "typ", "JWT", "kid", kid);
    ls_buf input = LS_BUF_INIT, part = LS_BUF_INIT, sig = LS_BUF_INIT;
    ls_err err;
    rc = b64url_json(header, &input);
    if (rc == 0) rc = b64url_json(claims, &part);
    if (rc == 0 && (ls_buf_putc(&input, '.', &err) != LS_OK ||
                    ls_buf_append(&input, part.ptr, part.len, &err) != LS_OK))
        rc = fail("out of memory");
    if (rc == 0) rc = sign_rs256(pem, (const char *)input.ptr, &sig);
    ls_buf_clear(&part);
    if (rc == 0 && ls_base64url_encode(sig.ptr, sig.len, &part, &err) != LS_OK)
        rc = fail("encoding: %s", ls_err_text(&err));
    if (rc == 0) printf("%s.%s\n", (const char *)input.ptr, (const char *)part.ptr);
    json_decref(header);
    json_decref(claims);
    ls_buf_free(&input);
    ls_buf_free(&part);
    ls_buf_free(&sig);
    return rc;
}

int cli_dev_main(int argc, char **argv)
{
    if (argc < 3 || strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0) {
        fputs(usage, argc < 3 ? stderr : stdout);
        return argc < 3 ? 2 : 0;
    }
    if (strcmp(argv[2], "token") != 0) {
        fprintf(stderr, "lodestone dev: unknown command '%s' (dev token is the only one)\n",
                argv[2]);
        return 2;
    }
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        }
    }
    token_opts o;
    int rc = parse_opts(argc, argv, &o);
    if (rc != 0) return rc;
    char share[4096], keys[4096];
    if (cli_share_dir(share, sizeof share) != 0 ||
        cli_fmt(keys, sizeof keys, "%s/policies/demo-keys", share) != 0)
        return fail("the share directory's path is too long");
    if (access(keys, R_OK) != 0)
        return fail("runs from a source checkout: it signs with the demo key in its "
                    "policies/demo-keys/, which an installed copy leaves out on purpose (the key "
                    "is public), and %s is not there",
                    keys);
    return mint(&o, keys);
}
