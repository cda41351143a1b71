/* SPDX-License-Identifier: MIT
 * Helpers shared by the cmocka suites. */
#define _GNU_SOURCE 1
#include "helpers.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *th_mkdtemp(const char *suite)
{
    const char *tmp = getenv("TMPDIR");
    char *path;
    if (asprintf(&path, "%s/lodestone-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", suite) < 0) abort();
    if (mkdtemp(path) == NULL) fail_msg("mkdtemp %s failed", path);
    return path;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void th_rmtree(const char *path)
{
    if (path) nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

char *th_path(const char *dir, const char *name)
{
    char *p;
    if (asprintf(&p, "%s/%s", dir, name) < 0) abort();
    return p;
}

/* ---- tokens ---- */

char *th_mint_hs256(const char *header_json, const char *payload_json, const char *key)
{
    ls_buf tok = LS_BUF_INIT, part = LS_BUF_INIT;
    ls_base64url_encode(header_json, strlen(header_json), &tok, NULL);
    ls_buf_putc(&tok, '.', NULL);
    ls_base64url_encode(payload_json, strlen(payload_json), &part, NULL);
    ls_buf_append(&tok, part.ptr, part.len, NULL);
    unsigned char mac[LS_HMAC_SHA256_BYTES];
    ls_hmac_sha256(key, strlen(key), tok.ptr, tok.len, mac);
    ls_buf_clear(&part);
    ls_base64url_encode(mac, sizeof mac, &part, NULL);
    ls_buf_putc(&tok, '.', NULL);
    ls_buf_append(&tok, part.ptr, part.len, NULL);
    char *out = strdup((char *)tok.ptr);
    ls_buf_free(&tok);
    ls_buf_free(&part);
    if (out == NULL) abort();
    return out;
}

/* ---- failing allocator ---- */

static long fail_at = -1; /* allocation index that fails; -1 never */
static long count;

static void *failing_alloc(void *ud, void *ptr, size_t size)
{
    (void)ud;
    if (size == 0) {
        free(ptr);
        return NULL;
    }
    long n = count++;
    if (fail_at >= 0 && n == fail_at) return NULL;
    return realloc(ptr, size);
}

void th_fail_install(void)
{
    count = 0;
    fail_at = -1;
    ls_set_allocator(failing_alloc, NULL);
}

void th_fail_uninstall(void)
{
    ls_set_allocator(NULL, NULL);
    fail_at = -1;
}

void th_fail_after(long n)
{
    fail_at = count + n;
}

void th_fail_never(void)
{
    fail_at = -1;
}

long th_alloc_count(void)
{
    return count;
}

long th_each_alloc_failure(ls_rc (*fn)(void *ud), void *ud)
{
    th_fail_install();
    long points = 0;
    for (long i = 0;; i++) {
        th_fail_after(i);
        long before = count;
        ls_rc rc = fn(ud);
        int injected = fail_at >= before && fail_at < count;
        th_fail_never();
        if (!injected) {
            assert_int_equal(rc, LS_OK);
            break;
        }
        if (rc != LS_ENOMEM)
            fail_msg("allocation %ld failed but the call returned %s, not ENOMEM", i,
                     ls_rc_name(rc));
        points++;
    }
    th_fail_uninstall();
    return points;
}
