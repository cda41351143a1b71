/* SPDX-License-Identifier: MIT
 * HTTP Basic against argon2id password files: verification, the success
 * cache (hits, expiry, bounds, never caching failures), unknown users
 * paying for a dummy argon2id run, malformed headers, file format errors
 * with line numbers, permission refusal and every allocation failure.
 * Hashes use libsodium's minimum limits so that the suite stays fast under
 * valgrind. */
#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <sodium.h>

#include "lodestone/ls_basic.h"

#define OPS_MIN 1u
#define MEM_MIN 8192u
/* crypto_pwhash_str("lodestone", 1, 8192) from libsodium 1.0.18, kept
 * verbatim so that a stored hash keeps verifying across releases. */
#define KNOWN_HASH                                                                  \
    "$argon2id$v=19$m=8,t=1,p=1$k78Gt8oHzhYlAKF/oewsiA$ax/X6c5e3cnDxP+b4cIzidJ2oE/" \
    "TrlNT7qlyQoeio4Q"
#define SALT_HASH "$k78Gt8oHzhYlAKF/oewsiA$ax/X6c5e3cnDxP+b4cIzidJ2oE/TrlNT7qlyQoeio4Q"

static char *tmpdir;
static ls_buf users = LS_BUF_INIT; /* alice, bob and the known-hash user */

static void add_user(ls_buf *text, const char *user, const char *password)
{
    ls_err err;
    th_ok(ls_basic_hash_line(user, password, strlen(password), OPS_MIN, MEM_MIN, text, &err), &err);
}

static int setup(void **state)
{
    (void)state;
    tmpdir = th_mkdtemp("basic");
    ls_buf_set(&users, "# test users\n", 13, NULL);
    add_user(&users, "alice", "correct horse battery staple");
    add_user(&users, "bob", "hunter2");
    ls_buf_printf(&users, NULL, "\n  known:%s  \r\n", KNOWN_HASH);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    th_rmtree(tmpdir);
    free(tmpdir);
    ls_buf_free(&users);
    return 0;
}

/* "Basic " + base64(user ":" password) into out (static storage). */
static const char *header_for(const char *user, const void *password, size_t plen)
{
    static char out[512];
    unsigned char cred[256];
    size_t ul = strlen(user);
    assert_true(ul + 1 + plen <= sizeof cred);
    memcpy(cred, user, ul);
    cred[ul] = ':';
    memcpy(cred + ul + 1, password, plen);
    strcpy(out, "Basic ");
    sodium_bin2base64(out + 6, sizeof out - 6, cred, ul + 1 + plen, sodium_base64_VARIANT_ORIGINAL);
    return out;
}

static const char *header(const char *user, const char *password)
{
    return header_for(user, password, strlen(password));
}

static ls_basic_set_t *parse_users(const ls_basic_opts *opts)
{
    ls_basic_set_t *set = NULL;
    ls_err err;
    th_ok(ls_basic_parse(&set, (char *)users.ptr, users.len, opts, &err), &err);
    return set;
}

static ls_rc check(ls_basic_set_t *set, const char *hdr, const char **user, ls_err *err)
{
    return ls_basic_verify(set, hdr, strlen(hdr), user, err);
}

static ls_basic_stats stats(const ls_basic_set_t *set)
{
    ls_basic_stats st;
    ls_basic_get_stats(set, &st);
    return st;
}

static void test_basic_hash_and_verify(void **state)
{
    (void)state;
    ls_basic_set_t *set = parse_users(NULL);
    assert_int_equal(ls_basic_count(set), 3);
    const char *user = NULL;
    ls_err err;
    th_ok(check(set, header("alice", "correct horse battery staple"), &user, &err), &err);
    assert_string_equal(user, "alice");
    th_ok(check(set, header("bob", "hunter2"), &user, &err), &err);
    assert_string_equal(user, "bob");
    ls_basic_stats st = stats(set);
    assert_int_equal(st.pwhash_calls, 2);
    assert_int_equal(st.cache_misses, 2);
    assert_int_equal(st.cache_hits, 0);
    ls_basic_free(set);
    ls_basic_free(NULL);
    assert_int_equal(ls_basic_count(NULL), 0);
}

static void test_basic_known_hash(void **state)
{
    (void)state;
    ls_basic_set_t *set = parse_users(NULL);
    const char *user;
    ls_err err;
    th_ok(check(set, header("known", "lodestone"), &user, &err), &err);
    assert_string_equal(user, "known");
    assert_int_equal(check(set, header("known", "lodestonE"), &user, &err), LS_EAUTH);
    ls_basic_free(set);
}

static void test_basic_wrong_password(void **state)
{
    (void)state;
    ls_basic_set_t *set = parse_users(NULL);
    const char *user = (const char *)1;
    ls_err err;
    const char *wrong[] = {"hunter3", "", "hunter2 ", "Hunter2", "hunter"};
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        assert_int_equal(check(set, header("bob", wrong[i]), &user, &err), LS_EAUTH);
        assert_null(user);
        assert_string_equal(err.msg, "wrong password for user 'bob'");
    }
    /* failures are never cached: each one ran argon2id */
    ls_basic_stats st = stats(set);
    assert_int_equal(st.pwhash_calls, 5);
    assert_int_equal(st.cache_hits, 0);
    /* and the right password still works afterwards */
    th_ok(check(set, header("bob", "hunter2"), &user, &err), &err);
    ls_basic_free(set);
}

static void test_basic_unknown_user(void **state)
{
    (void)state;
    ls_basic_set_t *set = parse_users(NULL);
    const char *user;
    ls_err err;
    assert_int_equal(check(set, header("mallory", "hunter2"), &user, &err), LS_EAUTH);
    assert_string_equal(err.msg, "unknown user"); /* the presented name is not echoed */
    assert_int_equal(check(set, header("", "hunter2"), &user, &err), LS_EAUTH);
    assert_int_equal(check(set, header("Bob", "hunter2"), &user, &err), LS_EAUTH);
    assert_int_equal(check(set, header("bob\n", "hunter2"), &user, &err), LS_EAUTH);
    /* each unknown user still paid for an argon2id run against the dummy */
    assert_int_equal(stats(set).pwhash_calls, 4);
    assert_int_equal(stats(set).cache_hits, 0);
    ls_basic_free(set);
}

/* An unknown user costs what a wrong password costs: an argon2id run, against
 * a dummy hash with the first user's parameters (counted, not timed). */
static void test_basic_unknown_user_costs_a_pwhash(void **state)
{
    (void)state;
    ls_buf text = LS_BUF_INIT;
    ls_err err;
    th_ok(ls_basic_hash_line("carol", "pw", 2, 1, 4u << 20, &text, &err), &err);
    ls_basic_set_t *set;
    th_ok(ls_basic_parse(&set, (char *)text.ptr, text.len, NULL, &err), &err);
    const char *user;
    const char *h_known = strdup(header("carol", "wrong")), *h_unknown = header("dave", "wrong");
    ls_basic_stats st;
    for (int i = 0; i < 5; i++) {
        ls_basic_get_stats(set, &st);
        uint64_t before = st.pwhash_calls;
        assert_int_equal(check(set, h_known, &user, NULL), LS_EAUTH);
        ls_basic_get_stats(set, &st);
        assert_int_equal(st.pwhash_calls, before + 1);
        /* An unknown user costs an argon2id run too (against a dummy hash),
         * so the answer's timing does not tell which users exist. */
        assert_int_equal(check(set, h_unknown, &user, NULL), LS_EAUTH);
        ls_basic_get_stats(set, &st);
        assert_int_equal(st.pwhash_calls, before + 2);
    }
    free((void *)h_known);
    ls_basic_free(set);
    ls_buf_free(&text);
}

static void test_basic_cache_hit(void **state)
{
    (void)state;
    ls_basic_set_t *set = parse_users(NULL);
    const char *user;
    ls_err err;
    const char *good = header("alice", "correct horse battery staple");
    th_ok(check(set, good, &user, &err), &err);
    assert_int_equal(stats(set).pwhash_calls, 1);
    for (int i = 0; i < 10; i++) {
        user = NULL;
        th_ok(check(set, good, &user, &err), &err);
        assert_string_equal(user, "alice");
    }
    ls_basic_stats st = stats(set);
    assert_int_equal(st.pwhash_calls, 1); /* served without recomputation */
    assert_int_equal(st.cache_hits, 10);
    assert_int_equal(st.cache_misses, 1);
    /* a cached success lends nothing to other passwords or users */
    assert_int_equal(check(set, header("alice", "correct horse battery stapl"), &user, &err),
                     LS_EAUTH);
    assert_int_equal(check(set, header("bob", "correct horse battery staple"), &user, &err),
                     LS_EAUTH);
    assert_int_equal(stats(set).pwhash_calls, 3);
    /* verify_password shares the cache */
    const char *pw = "correct horse battery staple";
    th_ok(ls_basic_verify_password(set, "alice", 5, pw, strlen(pw), &user, &err), &err);
    assert_int_equal(stats(set).pwhash_calls, 3);
    assert_int_equal(stats(set).cache_hits, 11);
    ls_basic_free(set);
}

static void test_basic_cache_expiry(void **state)
{
    (void)state;
    ls_manual_clock mc;
    ls_manual_clock_init(&mc, 1700000000000);
    ls_basic_opts o = {1000, 0, &mc.clock};
    ls_basic_set_t *set = parse_users(&o);
    const char *user;
    ls_err err;
    const char *good = header("bob", "hunter2");
    th_ok(check(set, good, &user, &err), &err);
    ls_manual_clock_advance(&mc, 999);
    th_ok(check(set, good, &user, &err), &err);
    assert_int_equal(stats(set).pwhash_calls, 1);
    ls_manual_clock_advance(&mc, 1); /* ttl after the argon2id check: expired */
    th_ok(check(set, good, &user, &err), &err);
    assert_int_equal(stats(set).pwhash_calls, 2);
    ls_manual_clock_advance(&mc, 500);
    th_ok(check(set, good, &user, &err), &err);
    assert_int_equal(stats(set).pwhash_calls, 2);
    assert_int_equal(stats(set).cache_hits, 2);
    ls_basic_free(set);

    /* the default TTL is five minutes */
    ls_manual_clock_init(&mc, 0);
    o.cache_ttl_ms = 0;
    set = parse_users(&o);
    th_ok(check(set, good, &user, &err), &err);
    ls_manual_clock_advance(&mc, LS_BASIC_CACHE_TTL_DEFAULT_MS - 1);
    th_ok(check(set, good, &user, &err), &err);
    assert_int_equal(stats(set).pwhash_calls, 1);
    ls_manual_clock_advance(&mc, 1);
    th_ok(check(set, good, &user, &err), &err);
    assert_int_equal(stats(set).pwhash_calls, 2);
    ls_basic_free(set);
}

static void test_basic_cache_disabled(void **state)
{
    (void)state;
    ls_basic_opts o = {LS_BASIC_NO_CACHE, 0, NULL};
    ls_basic_set_t *set = parse_users(&o);
    const char *user;
    ls_err err;
    for (int i = 0; i < 3; i++) th_ok(check(set, header("bob", "hunter2"), &user, &err), &err);
    ls_basic_stats st = stats(set);
    assert_int_equal(st.pwhash_calls, 3);
    assert_int_equal(st.cache_hits + st.cache_misses, 0);
    ls_basic_free(set);
    /* out-of-range options */
    ls_basic_opts bad[] = {{-2, 0, NULL}, {0, LS_BASIC_CACHE_ENTRIES_MAX + 1, NULL}};
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(ls_basic_parse(&set, (char *)users.ptr, users.len, &bad[i], &err),
                         LS_EINVAL);
        assert_null(set);
    }
}

static void test_basic_cache_bounded(void **state)
{
    (void)state;
    ls_buf text = LS_BUF_INIT;
    char name[16];
    for (int i = 0; i < 6; i++) {
        snprintf(name, sizeof name, "user%d", i);
        add_user(&text, name, name);
    }
    ls_basic_opts o = {0, 1, NULL}; /* rounds up to one bucket of 4 */
    ls_basic_set_t *set;
    ls_err err;
    th_ok(ls_basic_parse(&set, (char *)text.ptr, text.len, &o, &err), &err);
    const char *user;
    for (int i = 0; i < 6; i++) {
        snprintf(name, sizeof name, "user%d", i);
        th_ok(check(set, header(name, name), &user, &err), &err);
    }
    ls_basic_stats st = stats(set);
    assert_int_equal(st.cache_evictions, 2);
    /* the newest four are cached, the two oldest were evicted */
    th_ok(check(set, header("user5", "user5"), &user, &err), &err);
    th_ok(check(set, header("user2", "user2"), &user, &err), &err);
    assert_int_equal(stats(set).pwhash_calls, 6);
    th_ok(check(set, header("user0", "user0"), &user, &err), &err);
    assert_int_equal(stats(set).pwhash_calls, 7);
    assert_int_equal(stats(set).cache_evictions, 3);
    ls_basic_free(set);
    ls_buf_free(&text);
}

static void test_basic_malformed_headers(void **state)
{
    (void)state;
    ls_basic_set_t *set = parse_users(NULL);
    char *huge = malloc(LS_BASIC_HEADER_MAX + 16);
    memcpy(huge, "Basic ", 6);
    memset(huge + 6, 'A', LS_BASIC_HEADER_MAX + 8);
    huge[LS_BASIC_HEADER_MAX + 8] = '\0';
    const struct {
        const char *h;
        const char *expect;
    } bad[] = {
        {"", "not Basic"},
        {"Bearer eyJhbGciOiJIUzI1NiJ9.e30.x", "not Basic"},
        {"Basic", "not Basic"},
        {"Basic ", "not Basic"}, /* trailing blanks are trimmed first */
        {"Basicx YWxpY2U6eA==", "not Basic"},
        {"Basic\tYWxpY2U6eA==", "not Basic"},
        {"Digest username=\"alice\"", "not Basic"},
        {"Basic !!!!", "not valid padded base64"},
        {"Basic YWxpY2U6eA", "not valid padded base64"},    /* unpadded */
        {"Basic YWxpY2U6eA===", "not valid padded base64"}, /* over-padded */
        {"Basic YWxpY2U6eA== x", "not valid padded base64"},
        {"Basic YWxp Y2U6eA==", "not valid padded base64"},
        {"Basic YWxpY2U=", "no ':'"}, /* "alice" */
        {huge, "longer than"},
    };
    const char *user = (const char *)1;
    ls_err err;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ls_rc rc = check(set, bad[i].h, &user, &err);
        if (rc != LS_EINVAL || strstr(err.msg, bad[i].expect) == NULL)
            fail_msg("case %zu: %s \"%s\", want EINVAL \"%s\"", i, ls_rc_name(rc), err.msg,
                     bad[i].expect);
        assert_null(user);
    }
    assert_int_equal(ls_basic_verify(set, NULL, 0, &user, &err), LS_EINVAL);
    assert_string_equal(err.msg, "no Authorization header");
    assert_int_equal(ls_basic_verify(NULL, "Basic YWxpY2U6eA==", 18, &user, &err), LS_EINVAL);
    assert_int_equal(ls_basic_verify(set, "Basic YWxpY2U6eA==", 18, NULL, &err), LS_EINVAL);
    /* none of these reached argon2id */
    assert_int_equal(stats(set).pwhash_calls, 0);
    free(huge);
    ls_basic_free(set);
}

static void test_basic_scheme_and_spacing(void **state)
{
    (void)state;
    ls_basic_set_t *set = parse_users(NULL);
    const char *user;
    ls_err err;
    const char *b64 = header("bob", "hunter2") + 6;
    const struct {
        const char *before, *after;
    } forms[] = {
        {"Basic ", ""}, {"basic ", ""}, {"BASIC ", ""}, {"bAsIc   ", ""}, {" \tBasic ", " \t"}};
    char h[256];
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        snprintf(h, sizeof h, "%s%s%s", forms[i].before, b64, forms[i].after);
        th_ok(check(set, h, &user, &err), &err);
        assert_string_equal(user, "bob");
    }
    ls_basic_free(set);
}

static void test_basic_password_bytes(void **state)
{
    (void)state;
    static const char pw[] = "pa:ss\0w\xffrd"; /* colons, NUL and non-ASCII */
    ls_buf text = LS_BUF_INIT;
    ls_err err;
    th_ok(ls_basic_hash_line("carol", pw, sizeof pw - 1, OPS_MIN, MEM_MIN, &text, &err), &err);
    ls_basic_set_t *set;
    th_ok(ls_basic_parse(&set, (char *)text.ptr, text.len, NULL, &err), &err);
    const char *user;
    th_ok(ls_basic_verify(set, header_for("carol", pw, sizeof pw - 1),
                          strlen(header_for("carol", pw, sizeof pw - 1)), &user, &err),
          &err);
    assert_string_equal(user, "carol");
    /* the password ends at the end, not at the NUL */
    const char *h = header_for("carol", pw, 7);
    assert_int_equal(check(set, h, &user, &err), LS_EAUTH);
    th_ok(ls_basic_verify_password(set, "carol", 5, pw, sizeof pw - 1, &user, &err), &err);
    assert_int_equal(ls_basic_verify_password(set, "carol", 5, NULL, 3, &user, &err), LS_EINVAL);
    ls_basic_free(set);
    ls_buf_free(&text);
}

static void test_basic_format_errors(void **state)
{
    (void)state;
    static const char nul_hash[] = "alice:$argon2id$v=19$m=8,t=1,p=1$k78\0Gt8oHzhYlAKF/oewsiA$a\n";
    const struct {
        const char *text;
        size_t len;
        const char *expect;
    } bad[] = {
        {"alice\n", 0, "line 1: expected <user>:<argon2id hash>"},
        {"# c\n\n:" KNOWN_HASH "\n", 0, "line 3: the user name is empty"},
        {"al ice:" KNOWN_HASH "\n", 0, "line 1: the user name has a character"},
        {"al\x01ice:" KNOWN_HASH "\n", 0, "line 1: the user name has a character"},
        {"alice:$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/\n", 0,
         "line 1: user 'alice': an htpasswd MD5 hash ($apr1$); only argon2id is accepted"},
        {"# c\nbob:$2y$05$0jzgG0ybLHGk2R2HIl5bT.HwIsVq/pR8J0bSRQr3Ylt5cD4RJdUz.\n", 0,
         "line 2: user 'bob': a bcrypt hash ($2y$)"},
        {"bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n", 0, "line 1: user 'bob': an htpasswd SHA-1"},
        {"bob:$6$salt$hash\n", 0, "SHA-512-crypt"},
        {"bob:plaintext\n", 0, "line 1: user 'bob': not an argon2id hash"},
        {"bob:\n", 0, "line 1: user 'bob': not an argon2id hash"},
        {"bob:$argon2i$v=19$m=8,t=3,p=1" SALT_HASH "\n", 0, "an argon2i hash"},
        {"bob:$argon2id$v=16$m=8,t=1,p=1" SALT_HASH "\n", 0, "not version 19"},
        {"bob:$argon2id$m=8,t=1,p=1" SALT_HASH "\n", 0, "not version 19"},
        {"bob:$argon2id$v=19$m=8,t=1,p=2" SALT_HASH "\n", 0, "more than one lane"},
        {"bob:$argon2id$v=19$m=8,t=1" SALT_HASH "\n", 0, "parameters are not"},
        {"bob:$argon2id$v=19$m=8,t=1,p=1\n", 0, "parameters are not"},
        {"bob:$argon2id$v=19$m=,t=1,p=1" SALT_HASH "\n", 0, "parameters are not"},
        {"bob:$argon2id$v=19$m=99999999999,t=1,p=1" SALT_HASH "\n", 0, "parameters are not"},
        {"bob:$argon2id$v=19$m=2097152,t=1,p=1" SALT_HASH "\n", 0, "out of range"},
        {"bob:$argon2id$v=19$m=8,t=65,p=1" SALT_HASH "\n", 0, "out of range"},
        {"bob:$argon2id$v=19$m=8,t=0,p=1" SALT_HASH "\n", 0, "out of range"},
        {"bob:$argon2id$v=19$m=8,t=1,p=1$k78Gt8oHzhYlAKF/oewsiA\n", 0, "malformed"},
        {"bob:$argon2id$v=19$m=8,t=1,p=1$!!!$ax/X6c5e3cnDxP+b4cIzidJ2oE/TrlNT7qlyQoeio4Q\n", 0,
         "malformed"},
        {"bob:" KNOWN_HASH " trailing\n", 0, "malformed"},
        {nul_hash, sizeof nul_hash - 1, "NUL byte"},
        {"bob:" KNOWN_HASH "\n# c\nalice:" KNOWN_HASH "\nbob:" KNOWN_HASH "\n", 0,
         "line 4: user 'bob' is already on line 1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ls_basic_set_t *set = (ls_basic_set_t *)1;
        ls_err err;
        size_t len = bad[i].len ? bad[i].len : strlen(bad[i].text);
        ls_rc rc = ls_basic_parse(&set, bad[i].text, len, NULL, &err);
        if (rc != LS_EFORMAT || strstr(err.msg, bad[i].expect) == NULL)
            fail_msg("case %zu: %s \"%s\", want EFORMAT \"%s\"", i, ls_rc_name(rc), err.msg,
                     bad[i].expect);
        assert_null(set);
    }
    /* an empty file is a valid set that knows nobody */
    ls_basic_set_t *set;
    ls_err err;
    th_ok(ls_basic_parse(&set, "# nobody yet\n", 13, NULL, &err), &err);
    assert_int_equal(ls_basic_count(set), 0);
    ls_basic_free(set);
}

static char *write_file(const char *name, const void *text, size_t len, mode_t mode)
{
    char *path = th_path(tmpdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fwrite(text, 1, len, f);
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
    return path;
}

static void test_basic_load_file(void **state)
{
    (void)state;
    ls_err err;
    ls_basic_set_t *set;
    char *path = write_file("htpasswd", users.ptr, users.len, 0640);
    th_ok(ls_basic_load(&set, path, NULL, &err), &err);
    assert_int_equal(ls_basic_count(set), 3);
    const char *user;
    th_ok(check(set, header("known", "lodestone"), &user, &err), &err);
    ls_basic_free(set);
    remove(path);
    free(path);

    path = write_file("broken", "bob:$apr1$x$y\n", 14, 0600);
    assert_int_equal(ls_basic_load(&set, path, NULL, &err), LS_EFORMAT);
    char want[4096];
    snprintf(want, sizeof want, "password file %s: line 1: user 'bob':", path);
    assert_memory_equal(err.msg, want, strlen(want));
    free(path);
}

static void test_basic_refuses_writable_file(void **state)
{
    (void)state;
    ls_err err;
    ls_basic_set_t *set = (ls_basic_set_t *)1;
    const mode_t bad_modes[] = {0620, 0602, 0666};
    for (size_t i = 0; i < sizeof bad_modes / sizeof bad_modes[0]; i++) {
        char *path = write_file("writable", users.ptr, users.len, bad_modes[i]);
        assert_int_equal(ls_basic_load(&set, path, NULL, &err), LS_EPERM);
        assert_null(set);
        assert_non_null(strstr(err.msg, "lets group or others write it"));
        remove(path);
        free(path);
    }
    assert_int_equal(ls_basic_load(&set, tmpdir, NULL, &err), LS_EPERM);
    char *missing = th_path(tmpdir, "missing");
    assert_int_equal(ls_basic_load(&set, missing, NULL, &err), LS_ENOTFOUND);
    free(missing);
}

static void test_basic_hash_password_limits(void **state)
{
    (void)state;
    ls_buf out = LS_BUF_INIT;
    ls_err err;
    th_ok(ls_basic_hash_password("pw", 2, OPS_MIN, MEM_MIN, &out, &err), &err);
    assert_memory_equal(out.ptr, "$argon2id$v=19$m=8,t=1,p=1$", 27);
    assert_int_equal(crypto_pwhash_str_verify((char *)out.ptr, "pw", 2), 0);
    ls_buf_clear(&out);
    assert_int_equal(ls_basic_hash_password("pw", 2, 65, MEM_MIN, &out, &err), LS_EINVAL);
    assert_int_equal(ls_basic_hash_password("pw", 2, OPS_MIN, 4096, &out, &err), LS_EINVAL);
    assert_int_equal(ls_basic_hash_password("pw", 2, OPS_MIN, ((size_t)1 << 30) + 1024, &out, &err),
                     LS_EINVAL);
    assert_int_equal(ls_basic_hash_password(NULL, 2, OPS_MIN, MEM_MIN, &out, &err), LS_EINVAL);
    assert_int_equal(ls_basic_hash_password("pw", 2, OPS_MIN, MEM_MIN, NULL, &err), LS_EINVAL);
    const char *bad_users[] = {"", "a:b", "a b", "caf\xc3\xa9"};
    for (size_t i = 0; i < sizeof bad_users / sizeof bad_users[0]; i++)
        assert_int_equal(ls_basic_hash_line(bad_users[i], "pw", 2, OPS_MIN, MEM_MIN, &out, &err),
                         LS_EINVAL);
    assert_int_equal(out.len, 0);
    ls_buf_free(&out);
}

/* ---- allocation failures ---- */

static char *alloc_path;

static ls_rc parse_verify_load(void *ud)
{
    (void)ud;
    ls_basic_set_t *set;
    ls_rc rc = ls_basic_parse(&set, (char *)users.ptr, users.len, NULL, NULL);
    if (rc != LS_OK) return rc;
    const char *user;
    const char *h = header("bob", "hunter2");
    rc = ls_basic_verify(set, h, strlen(h), &user, NULL);
    if (rc == LS_OK) rc = ls_basic_verify(set, h, strlen(h), &user, NULL); /* cached */
    ls_basic_free(set);
    if (rc != LS_OK) return rc;
    rc = ls_basic_load(&set, alloc_path, NULL, NULL);
    ls_basic_free(set);
    return rc;
}

static ls_rc hash_line(void *ud)
{
    (void)ud;
    ls_buf out = LS_BUF_INIT;
    ls_rc rc = ls_basic_hash_line("dave", "pw", 2, OPS_MIN, MEM_MIN, &out, NULL);
    if (rc == LS_OK) rc = ls_basic_hash_password("pw", 2, OPS_MIN, MEM_MIN, &out, NULL);
    ls_buf_free(&out);
    return rc;
}

static void test_basic_alloc_failures(void **state)
{
    (void)state;
    ls_buf many = LS_BUF_INIT;
    ls_buf_append(&many, users.ptr, users.len, NULL);
    for (int i = 0; i < 20; i++) /* enough lines to grow the user array */
        ls_buf_printf(&many, NULL, "u%d:%s\n", i, KNOWN_HASH);
    alloc_path = write_file("alloc", many.ptr, many.len, 0600);
    ls_buf_free(&many);
    /* parse (3 users): text copy, set, cache, user array, table; verify and
     * cached verify: none; load (23 users): the same with two user-array
     * growths */
    assert_int_equal(th_each_alloc_failure(parse_verify_load, NULL), 5 + 6);
    /* hash_line: the line; hash_password: the hash */
    assert_int_equal(th_each_alloc_failure(hash_line, NULL), 2);
    free(alloc_path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic_hash_and_verify),
        cmocka_unit_test(test_basic_known_hash),
        cmocka_unit_test(test_basic_wrong_password),
        cmocka_unit_test(test_basic_unknown_user),
        cmocka_unit_test(test_basic_unknown_user_costs_a_pwhash),
        cmocka_unit_test(test_basic_cache_hit),
        cmocka_unit_test(test_basic_cache_expiry),
        cmocka_unit_test(test_basic_cache_disabled),
        cmocka_unit_test(test_basic_cache_bounded),
        cmocka_unit_test(test_basic_malformed_headers),
        cmocka_unit_test(test_basic_scheme_and_spacing),
        cmocka_unit_test(test_basic_password_bytes),
        cmocka_unit_test(test_basic_format_errors),
        cmocka_unit_test(test_basic_load_file),
        cmocka_unit_test(test_basic_refuses_writable_file),
        cmocka_unit_test(test_basic_hash_password_limits),
        cmocka_unit_test(test_basic_alloc_failures),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
