/* SPDX-License-Identifier: MIT
 * Request ids (request_id.h). */
#include "ls_config.h"

#include "request_id.h"

#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <string.h>

/* Bumped in every child a fork makes, so that a generator set up before
 * the fork draws a new key in the child (cheaper than a getpid() system
 * call per id). Starts at 1: a zeroed generator has none yet. */
static atomic_uint fork_generation = 1;
static pthread_once_t fork_hook_once = PTHREAD_ONCE_INIT;

static void after_fork_in_child(void)
{
    atomic_fetch_add_explicit(&fork_generation, 1, memory_order_relaxed);
}

static void hook_fork(void)
{
    /* glibc drops the hook when this library is unloaded. Should it fail
     * (no memory), ids stay unique within a process but a child of a fork
     * would repeat its parent's sequence: the same as before the hook. */
    (void)pthread_atfork(NULL, NULL, after_fork_in_child);
}

int ls_reqid_next(ls_reqid_gen *g, char out[LS_REQID_LEN + 1])
{
    pthread_once(&fork_hook_once, hook_fork);
    unsigned gen = atomic_load_explicit(&fork_generation, memory_order_relaxed);
    if (g->generation != gen) {
        if (sodium_init() < 0) return -1; /* once per process; cheap after the first */
        randombytes_buf(g->key, sizeof g->key);
        g->seq = 0;
        g->generation = gen;
    }
    unsigned char in[8], h[LS_REQID_LEN / 2];
    uint64_t n = g->seq++;
    for (int i = 0; i < 8; i++) in[i] = (unsigned char)(n >> (8 * i));
    crypto_shorthash_siphashx24(h, in, sizeof in, g->key);
    sodium_bin2hex(out, LS_REQID_LEN + 1, h, sizeof h);
    return 0;
}

int ls_reqid_valid(const char *s, size_t len)
{
    if (s == NULL || len == 0 || len > LS_REQID_MAX_LEN) return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) continue;
        if (c == '\0' || strchr("-._:+/=@", c) == NULL) return 0;
    }
    return 1;
}
