/* SPDX-License-Identifier: MIT
 * API key files: generation round trip, a BLAKE2b known answer computed
 * with python3's hashlib, format errors with line numbers, permission
 * refusal, tampered keys and every allocation failure. */
#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>

#include "lodestone/ls_apikey.h"

/* Hashing key = bytes 0..31. */
#define HDR "lodestone-apikeys 1 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
/* hashlib.blake2b(b"lsk_known_answer_key_0001", digest_size=32, key=bytes(range(32))) */
#define KAT_KEY  "lsk_known_answer_key_0001"
#define KAT_HASH "0984c0caf7873e8addef3b1ca58be5b84fa09a2b885291aae510545729d6fe50"
#define H2       "1111111111111111111111111111111111111111111111111111111111111111"

static char *tmpdir;

static int setup(void **state)
{
    (void)state;
    tmpdir = th_mkdtemp("apikey");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    th_rmtree(tmpdir);
    free(tmpdir);
    return 0;
}

static char *write_file(const char *name, const char *text, mode_t mode)
{
    char *path = th_path(tmpdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
    return path;
}

static ls_apikey_set_t *parse_ok(const char *text)
{
    ls_apikey_set_t *set = NULL;
    ls_err err;
    th_ok(ls_apikey_parse(&set, text, strlen(text), &err), &err);
    return set;
}

static const ls_apikey_entry *verify_ok(const ls_apikey_set_t *set, const char *key)
{
    const ls_apikey_entry *e = NULL;
    ls_err err;
    th_ok(ls_apikey_verify(set, key, strlen(key), &e, &err), &err);
    assert_non_null(e);
    return e;
}

static void test_apikey_generate_and_verify(void **state)
{
    (void)state;
    ls_buf text = LS_BUF_INIT;
    ls_err err;
    char key[LS_APIKEY_KEY_SIZE];
    th_ok(ls_apikey_new_file_header(&text, &err), &err);
    ls_apikey_spec spec = {"svc-billing", "admin,ops", "orders:read,orders:write"};
    th_ok(ls_apikey_generate((char *)text.ptr, text.len, &spec, key, &text, &err), &err);
    assert_int_equal(strlen(key), LS_APIKEY_KEY_LEN);
    assert_int_equal(ls_apikey_key_size(), LS_APIKEY_KEY_SIZE);
    assert_memory_equal(key, "lsk_", 4);
    assert_int_equal(
        strspn(key + 4, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), 43);
    /* the file holds the hash, never the key */
    assert_null(strstr((char *)text.ptr, key));
    assert_null(strstr((char *)text.ptr, key + 4));

    ls_apikey_set_t *set = parse_ok((char *)text.ptr);
    assert_int_equal(ls_apikey_count(set), 1);
    const ls_apikey_entry *e = verify_ok(set, key);
    assert_string_equal(e->subject, "svc-billing");
    assert_int_equal(e->nroles, 2);
    assert_string_equal(e->roles[0], "admin");
    assert_string_equal(e->roles[1], "ops");
    assert_int_equal(e->nscopes, 2);
    assert_string_equal(e->scopes[0], "orders:read");
    assert_string_equal(e->scopes[1], "orders:write");
    assert_int_equal(e->line, 2);
    assert_int_equal(strlen(e->key_id), 16);
    assert_non_null(strstr((char *)text.ptr, e->key_id)); /* the start of the stored hash */

    /* a second key for the file, without roles or scopes */
    char key2[LS_APIKEY_KEY_SIZE];
    ls_apikey_spec spec2 = {"svc-reports", NULL, ""};
    th_ok(ls_apikey_generate((char *)text.ptr, text.len, &spec2, key2, &text, &err), &err);
    assert_string_not_equal(key, key2);
    ls_apikey_free(set);
    set = parse_ok((char *)text.ptr);
    e = verify_ok(set, key2);
    assert_string_equal(e->subject, "svc-reports");
    assert_int_equal(e->nroles, 0);
    assert_null(e->roles);
    assert_int_equal(e->nscopes, 0);
    assert_string_equal(verify_ok(set, key)->subject, "svc-billing");
    ls_apikey_free(set);
    ls_buf_free(&text);
    sodium_memzero(key, sizeof key);
}

static void test_apikey_known_answer(void **state)
{
    (void)state;
    ls_apikey_set_t *set = parse_ok(HDR KAT_HASH " alice roles=reader\n");
    const ls_apikey_entry *e = verify_ok(set, KAT_KEY);
    assert_string_equal(e->subject, "alice");
    assert_string_equal(e->key_id, "0984c0caf7873e8a");
    assert_int_equal(e->nroles, 1);
    assert_string_equal(e->roles[0], "reader");
    ls_apikey_free(set);
}

static void test_apikey_wrong_keys_rejected(void **state)
{
    (void)state;
    ls_apikey_set_t *set = parse_ok(HDR KAT_HASH " alice\n");
    const ls_apikey_entry *e = (const ls_apikey_entry *)1;
    ls_err err;
    char key[] = KAT_KEY;
    for (size_t i = 0; i < strlen(key); i++) {
        key[i] ^= 0x01; /* tamper with one byte */
        assert_int_equal(ls_apikey_verify(set, key, strlen(key), &e, &err), LS_EAUTH);
        assert_null(e);
        assert_string_equal(err.msg, "unknown API key");
        key[i] ^= 0x01;
    }
    assert_int_equal(ls_apikey_verify(set, key, strlen(key) - 1, &e, &err), LS_EAUTH); /* prefix */
    assert_int_equal(ls_apikey_verify(set, KAT_KEY "x", strlen(KAT_KEY) + 1, &e, &err), LS_EAUTH);
    assert_int_equal(ls_apikey_verify(set, "", 0, &e, &err), LS_EAUTH);
    assert_int_equal(ls_apikey_verify(set, NULL, 0, &e, &err), LS_EAUTH);
    char *big = calloc(1, LS_APIKEY_MAX_LEN + 1);
    memset(big, 'k', LS_APIKEY_MAX_LEN + 1);
    assert_int_equal(ls_apikey_verify(set, big, LS_APIKEY_MAX_LEN + 1, &e, &err), LS_EAUTH);
    free(big);
    /* the set still works, and bad arguments are LS_EINVAL */
    verify_ok(set, KAT_KEY);
    assert_int_equal(ls_apikey_verify(NULL, key, 3, &e, &err), LS_EINVAL);
    assert_int_equal(ls_apikey_verify(set, key, strlen(key), NULL, &err), LS_EINVAL);
    assert_int_equal(ls_apikey_verify(set, NULL, 3, &e, &err), LS_EINVAL);
    ls_apikey_free(set);
    ls_apikey_free(NULL);
    assert_int_equal(ls_apikey_count(NULL), 0);
}

static void test_apikey_comments_blanks_crlf(void **state)
{
    (void)state;
    const char *text = "# API keys for the orders service\r\n"
                       "\r\n"
                       "  lodestone-apikeys\t1   AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=  \r\n"
                       "   # a comment with roles=x in it\n"
                       "\t\n" KAT_HASH "\t alice \tscopes=s1,s2   roles=r1 \r\n" H2 " bob";
    ls_apikey_set_t *set = parse_ok(text);
    assert_int_equal(ls_apikey_count(set), 2);
    const ls_apikey_entry *e = verify_ok(set, KAT_KEY);
    assert_string_equal(e->subject, "alice");
    assert_int_equal(e->line, 6);
    assert_int_equal(e->nroles, 1);
    assert_string_equal(e->roles[0], "r1");
    assert_int_equal(e->nscopes, 2);
    assert_string_equal(e->scopes[1], "s2");
    ls_apikey_free(set);
    /* a header alone is a valid, empty set */
    set = parse_ok(HDR);
    assert_int_equal(ls_apikey_count(set), 0);
    const ls_apikey_entry *m;
    assert_int_equal(ls_apikey_verify(set, KAT_KEY, strlen(KAT_KEY), &m, NULL), LS_EAUTH);
    ls_apikey_free(set);
}

static void test_apikey_rotation_same_subject(void **state)
{
    (void)state;
    ls_buf text = LS_BUF_INIT;
    ls_err err;
    char k1[LS_APIKEY_KEY_SIZE], k2[LS_APIKEY_KEY_SIZE];
    ls_apikey_spec spec = {"ci", "deploy", NULL};
    th_ok(ls_buf_set(&text, HDR, strlen(HDR), &err), &err);
    th_ok(ls_apikey_generate((char *)text.ptr, text.len, &spec, k1, &text, &err), &err);
    th_ok(ls_apikey_generate((char *)text.ptr, text.len, &spec, k2, &text, &err), &err);
    ls_apikey_set_t *set = parse_ok((char *)text.ptr);
    const ls_apikey_entry *e1 = verify_ok(set, k1), *e2 = verify_ok(set, k2);
    assert_ptr_not_equal(e1, e2);
    assert_string_equal(e1->subject, "ci");
    assert_string_equal(e2->subject, "ci");
    assert_int_equal(e1->line, 2);
    assert_int_equal(e2->line, 3);
    assert_string_not_equal(e1->key_id, e2->key_id);
    ls_apikey_free(set);
    ls_buf_free(&text);
}

struct bad_case {
    const char *text;
    size_t len; /* 0: strlen */
    const char *expect;
};

static void test_apikey_format_errors(void **state)
{
    (void)state;
    static const char long_subject[] = HDR KAT_HASH
        " "
        "sssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssss"
        "sssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssss"
        "sssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssss"
        "ssssssssssssss\n";
    static const char nul_line[] = HDR KAT_HASH " al\0ice\n";
    const struct bad_case cases[] = {
        {"", 0, "line 1: no header"},
        {"# only a comment\n\n", 0, "line 3: no header"},
        {"lodestone-apikey 1 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n", 0,
         "line 1: expected the header"},
        {"# c\nlodestone-apikeys 2 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n", 0,
         "line 2: unsupported key file version \"2\""},
        {"lodestone-apikeys\n", 0, "line 1: unsupported key file version"},
        {"lodestone-apikeys 1\n", 0, "line 1: the header needs exactly one hashing key"},
        {"lodestone-apikeys 1 AAECAwQF\n", 0, "line 1: the hashing key must be 32 bytes"},
        {"lodestone-apikeys 1 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\n", 0,
         "line 1: the hashing key must be 32 bytes"},
        {"lodestone-apikeys 1 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8= x\n", 0,
         "line 1: the header needs exactly one"},
        {HDR "\n# c\n" KAT_HASH "\n", 0, "line 4: expected \"<hash> <subject>"},
        {HDR "0984C0CAF7873E8ADDEF3B1CA58BE5B84FA09A2B885291AAE510545729D6FE50 alice\n", 0,
         "line 2: the hash must be 64 lower-case hex digits"},
        {HDR "0984c0caf7873e8addef3b1ca58be5b84fa09a2b885291aae510545729d6fe5 alice\n", 0,
         "line 2: the hash must be 64"},
        {HDR "0984c0caf7873e8addef3b1ca58be5b84fa09a2b885291aae510545729d6fe5g alice\n", 0,
         "line 2: the hash must be 64"},
        {HDR KAT_HASH " alice roles=\n", 0, "line 2: the roles list is empty"},
        {HDR KAT_HASH " alice roles=a,,b\n", 0, "line 2: the roles list has an empty name"},
        {HDR KAT_HASH " alice scopes=a,\n", 0, "line 2: the scopes list has an empty name"},
        {HDR KAT_HASH " alice roles=a roles=b\n", 0, "line 2: roles appears twice"},
        {HDR KAT_HASH " alice owner=bob\n", 0, "line 2: unknown field"},
        {HDR KAT_HASH " alice roles=a scopes=b c\n", 0, "line 2: too many fields"},
        {HDR KAT_HASH " al\x01ice\n", 0, "line 2: the subject has a control character"},
        {HDR KAT_HASH " alice roles=\xc3\xa9\n", 0,
         "line 2: the roles list has a character that is not ASCII"},
        {long_subject, 0, "line 2: the subject is too long"},
        {nul_line, sizeof nul_line - 1, "line 2: the subject has a control character"},
        {HDR KAT_HASH " alice\n" H2 " bob\n# c\n" KAT_HASH " carol\n", 0,
         "line 5: same key as line 2"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ls_apikey_set_t *set = (ls_apikey_set_t *)1;
        ls_err err;
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].text);
        ls_rc rc = ls_apikey_parse(&set, cases[i].text, len, &err);
        if (rc != LS_EFORMAT || strstr(err.msg, cases[i].expect) == NULL)
            fail_msg("case %zu: got %s \"%s\", want EFORMAT \"%s\"", i, ls_rc_name(rc), err.msg,
                     cases[i].expect);
        assert_null(set);
    }
}

static void test_apikey_load_file(void **state)
{
    (void)state;
    ls_err err;
    ls_apikey_set_t *set;
    const mode_t ok_modes[] = {0600, 0644, 0400, 0640};
    for (size_t i = 0; i < sizeof ok_modes / sizeof ok_modes[0]; i++) {
        char *path = write_file("keys", HDR KAT_HASH " alice\n", ok_modes[i]);
        th_ok(ls_apikey_load(&set, path, &err), &err);
        assert_string_equal(verify_ok(set, KAT_KEY)->subject, "alice");
        ls_apikey_free(set);
        remove(path);
        free(path);
    }
    char *path = write_file("broken", HDR KAT_HASH " alice\n" KAT_HASH " bob\n", 0600);
    assert_int_equal(ls_apikey_load(&set, path, &err), LS_EFORMAT);
    assert_null(set);
    char want[4096];
    snprintf(want, sizeof want, "API key file %s: line 3: same key as line 2", path);
    assert_string_equal(err.msg, want);
    free(path);
}

static void test_apikey_refuses_writable_file(void **state)
{
    (void)state;
    ls_err err;
    ls_apikey_set_t *set = (ls_apikey_set_t *)1;
    const mode_t bad_modes[] = {0620, 0602, 0666, 0622};
    for (size_t i = 0; i < sizeof bad_modes / sizeof bad_modes[0]; i++) {
        char *path = write_file("writable", HDR KAT_HASH " alice\n", bad_modes[i]);
        assert_int_equal(ls_apikey_load(&set, path, &err), LS_EPERM);
        assert_null(set);
        assert_non_null(strstr(err.msg, "lets group or others write it"));
        assert_non_null(strstr(err.msg, path));
        remove(path);
        free(path);
    }
    assert_int_equal(ls_apikey_load(&set, tmpdir, &err), LS_EPERM); /* a directory */
    assert_non_null(strstr(err.msg, "not a regular file"));
    char *missing = th_path(tmpdir, "missing");
    assert_int_equal(ls_apikey_load(&set, missing, &err), LS_ENOTFOUND);
    free(missing);
    assert_int_equal(ls_apikey_load(&set, NULL, &err), LS_EINVAL);
}

static void test_apikey_hash_line(void **state)
{
    (void)state;
    ls_err err;
    ls_buf line = LS_BUF_INIT;
    const char *legacy = "legacy-key-from-the-old-gateway";
    ls_apikey_spec spec = {"partner-acme", "partner", "orders:read"};
    th_ok(ls_apikey_hash_line(HDR, strlen(HDR), legacy, strlen(legacy), &spec, &line, &err), &err);
    assert_int_equal(line.ptr[line.len - 1], '\n');
    assert_non_null(strstr((char *)line.ptr, " partner-acme roles=partner scopes=orders:read\n"));
    ls_buf text = LS_BUF_INIT;
    th_ok(ls_buf_printf(&text, &err, "%s%s", HDR, (char *)line.ptr), &err);
    ls_apikey_set_t *set = parse_ok((char *)text.ptr);
    assert_string_equal(verify_ok(set, legacy)->subject, "partner-acme");
    ls_apikey_free(set);

    /* adding the same key again is refused */
    ls_buf_clear(&line);
    assert_int_equal(
        ls_apikey_hash_line((char *)text.ptr, text.len, legacy, strlen(legacy), &spec, &line, &err),
        LS_EEXIST);
    assert_non_null(strstr(err.msg, "line 2"));
    assert_int_equal(line.len, 0);

    /* spec and key checks */
    const ls_apikey_spec bad[] = {
        {NULL, NULL, NULL},       {"", NULL, NULL},     {"two words", NULL, NULL},
        {"ok", "a,,b", NULL},     {"ok", NULL, "x y"},  {"ok", ",", NULL},
        {"ok", "r\n", NULL},      {"a\tb", NULL, NULL}, {"ok", "a, b", NULL},
        {"ok", "\xc3\xa9", NULL},
    };
    /* each says which character is not allowed (a space is printable) */
    static const char *const why[] = {
        "an API key entry needs a subject",
        "the subject is empty",
        "the subject has a space",
        "the roles list has an empty name",
        "the scopes list has a space (names are separated by a comma alone: a,b)",
        "the roles list has an empty name",
        "the roles list has a control character",
        "the subject has a tab",
        "the roles list has a space (names are separated by a comma alone: a,b)",
        "the roles list has a character that is not ASCII",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(
            ls_apikey_hash_line(HDR, strlen(HDR), legacy, strlen(legacy), &bad[i], &line, &err),
            LS_EINVAL);
        assert_string_equal(err.msg, why[i]);
    }
    assert_int_equal(ls_apikey_hash_line(HDR, strlen(HDR), "short", 5, &spec, &line, &err),
                     LS_EINVAL);
    assert_int_equal(
        ls_apikey_hash_line(HDR, strlen(HDR), legacy, strlen(legacy), NULL, &line, &err),
        LS_EINVAL);
    /* a broken file is reported, not appended to */
    const char *broken = HDR "zz alice\n";
    assert_int_equal(
        ls_apikey_hash_line(broken, strlen(broken), legacy, strlen(legacy), &spec, &line, &err),
        LS_EFORMAT);
    char key[LS_APIKEY_KEY_SIZE];
    memset(key, 'x', sizeof key);
    assert_int_equal(ls_apikey_generate(broken, strlen(broken), &spec, key, &line, &err),
                     LS_EFORMAT);
    for (size_t i = 0; i < sizeof key; i++) assert_int_equal(key[i], 0); /* wiped */
    assert_int_equal(line.len, 0);
    ls_buf_free(&line);
    ls_buf_free(&text);
}

static void test_apikey_new_headers_differ(void **state)
{
    (void)state;
    ls_buf a = LS_BUF_INIT, b = LS_BUF_INIT;
    ls_err err;
    th_ok(ls_apikey_new_file_header(&a, &err), &err);
    th_ok(ls_apikey_new_file_header(&b, &err), &err);
    assert_int_equal(a.len, strlen(HDR));
    assert_memory_equal(a.ptr, "lodestone-apikeys 1 ", 20);
    assert_string_not_equal((char *)a.ptr, (char *)b.ptr);
    /* the same key hashes differently under each header */
    const char *k = "the-same-key-in-two-files";
    ls_apikey_spec spec = {"x", NULL, NULL};
    ls_buf la = LS_BUF_INIT, lb = LS_BUF_INIT;
    th_ok(ls_apikey_hash_line((char *)a.ptr, a.len, k, strlen(k), &spec, &la, &err), &err);
    th_ok(ls_apikey_hash_line((char *)b.ptr, b.len, k, strlen(k), &spec, &lb, &err), &err);
    assert_memory_not_equal(la.ptr, lb.ptr, 64);
    ls_buf_free(&a);
    ls_buf_free(&b);
    ls_buf_free(&la);
    ls_buf_free(&lb);
}

/* A file of n entries hashed here with libsodium directly under HDR's key. */
static void many_keys_text(ls_buf *text, int n)
{
    unsigned char hk[32], h[32];
    char hex[65], key[32];
    for (int i = 0; i < 32; i++) hk[i] = (unsigned char)i;
    assert_int_equal(ls_buf_set(text, HDR, strlen(HDR), NULL), LS_OK);
    for (int i = 0; i < n; i++) {
        int kl = snprintf(key, sizeof key, "key-number-%06d", i);
        crypto_generichash(h, 32, (unsigned char *)key, (size_t)kl, hk, 32);
        sodium_bin2hex(hex, sizeof hex, h, 32);
        assert_int_equal(
            ls_buf_printf(text, NULL, "%s user%d roles=r%d,all scopes=s%d\n", hex, i, i, i), LS_OK);
    }
}

static void test_apikey_many_keys(void **state)
{
    (void)state;
    ls_buf text = LS_BUF_INIT;
    many_keys_text(&text, 3000);
    ls_apikey_set_t *set = parse_ok((char *)text.ptr);
    assert_int_equal(ls_apikey_count(set), 3000);
    char key[32], want[32];
    for (int i = 0; i < 3000; i++) {
        snprintf(key, sizeof key, "key-number-%06d", i);
        const ls_apikey_entry *e = verify_ok(set, key);
        snprintf(want, sizeof want, "user%d", i);
        assert_string_equal(e->subject, want);
        snprintf(want, sizeof want, "r%d", i);
        assert_string_equal(e->roles[0], want);
        assert_string_equal(e->roles[1], "all");
        snprintf(want, sizeof want, "s%d", i);
        assert_string_equal(e->scopes[0], want);
        assert_int_equal(e->line, (size_t)i + 2);
    }
    for (int i = 3000; i < 6000; i++) {
        snprintf(key, sizeof key, "key-number-%06d", i);
        const ls_apikey_entry *e;
        assert_int_equal(ls_apikey_verify(set, key, strlen(key), &e, NULL), LS_EAUTH);
    }
    ls_apikey_free(set);
    ls_buf_free(&text);
}

/* ---- allocation failures ---- */

static ls_buf alloc_text = LS_BUF_INIT;
static char *alloc_path;

static ls_rc parse_and_verify(void *ud)
{
    (void)ud;
    ls_apikey_set_t *set;
    ls_rc rc = ls_apikey_parse(&set, (char *)alloc_text.ptr, alloc_text.len, NULL);
    if (rc != LS_OK) return rc;
    const ls_apikey_entry *e;
    rc = ls_apikey_verify(set, "key-number-000039", 17, &e, NULL);
    ls_apikey_free(set);
    if (rc != LS_OK) return rc;
    rc = ls_apikey_load(&set, alloc_path, NULL);
    ls_apikey_free(set);
    return rc;
}

static ls_rc generate_line(void *ud)
{
    (void)ud;
    ls_buf line = LS_BUF_INIT;
    char key[LS_APIKEY_KEY_SIZE];
    ls_apikey_spec spec = {"someone", "a,b", "c"};
    ls_rc rc = ls_apikey_generate((char *)alloc_text.ptr, alloc_text.len, &spec, key, &line, NULL);
    ls_buf_free(&line);
    if (rc != LS_OK) return rc;
    rc = ls_apikey_new_file_header(&line, NULL);
    ls_buf_free(&line);
    return rc;
}

static void test_apikey_alloc_failures(void **state)
{
    (void)state;
    many_keys_text(&alloc_text, 40); /* enough to grow the entry and name arrays */
    alloc_path = write_file("alloc", (char *)alloc_text.ptr, 0600);
    /* parse: text copy, set, 3 entry-array and 4 name-array growths, table;
     * verify: none; load: the same with the file buffer for the copy */
    assert_int_equal(th_each_alloc_failure(parse_and_verify, NULL), 10 + 10);
    /* generate: the parse above, the line; then the header line */
    assert_int_equal(th_each_alloc_failure(generate_line, NULL), 10 + 1 + 1);
    ls_buf_free(&alloc_text);
    free(alloc_path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_apikey_generate_and_verify),
        cmocka_unit_test(test_apikey_known_answer),
        cmocka_unit_test(test_apikey_wrong_keys_rejected),
        cmocka_unit_test(test_apikey_comments_blanks_crlf),
        cmocka_unit_test(test_apikey_rotation_same_subject),
        cmocka_unit_test(test_apikey_format_errors),
        cmocka_unit_test(test_apikey_load_file),
        cmocka_unit_test(test_apikey_refuses_writable_file),
        cmocka_unit_test(test_apikey_hash_line),
        cmocka_unit_test(test_apikey_new_headers_differ),
        cmocka_unit_test(test_apikey_many_keys),
        cmocka_unit_test(test_apikey_alloc_failures),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
