/* SPDX-License-Identifier: MIT
 * Request ids (request_id.h). */
#include "ls_config.h"

#include "request_id.h"

#include <sodium.h>
#include <string.h>
#include <unistd.h>

int ls_reqid_next(ls_reqid_gen *g, char out[LS_REQID_LEN + 1])
{
    pid_t pid = getpid();
    if (g->pid != pid) {
        if (sodium_init() < 0) return -1; /* once per process; cheap after the first */
        randombytes_buf(g->key, sizeof g->key);
        g->seq = 0;
        g->pid = pid;
    }
    unsigned char in[8], h[LS_REQID_LEN / 2];
    uint64_t n = g->seq++;
    for (int i = 0; i < 8; i++) in[i] = (unsigned char)(n >> (8 * i));
    crypto_generichash(h, sizeof h, in, sizeof in, g->key, sizeof g->key);
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
