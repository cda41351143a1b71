/* SPDX-License-Identifier: MIT
 * libFuzzer: addresses, CIDR entries and the X-Forwarded-For client
 * address. Byte 0 picks the target:
 *   0: ls_cidr_parse_addr against inet_pton, and format/parse round trip;
 *   1: ls_cidr_set_add of one entry, then membership of a few addresses
 *      checked against a prefix comparison of the parsed network;
 *   2: ls_cidr_client_addr: byte 1 picks the peer (or, when >= 8, the rest
 *      up to 0x1f is the peer), the rest is the X-Forwarded-For value,
 *      checked against the reference walk of test_fuzz.c. */
#include "fuzz_common.h"

#include <arpa/inet.h>

#include "lodestone/ls_cidr.h"

#include "fuzz_refs.h" /* tests/c/ */

static ls_cidr_set_t *trusted;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    ls_err err;
    const char *entries[] = {"127.0.0.1", "10.0.0.0/8", "2001:db8::/32", "::1"};
    if (ls_cidr_set_new(&trusted, &err) != LS_OK ||
        ls_cidr_set_add_list(trusted, entries, 4, &err) != LS_OK)
        abort();
    return 0;
}

static int in_prefix(const uint8_t *a, const uint8_t *net, unsigned bits)
{
    for (unsigned i = 0; i < bits; i++)
        if (((a[i / 8] ^ net[i / 8]) >> (7 - i % 8)) & 1) return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 8192) return 0;
    unsigned mode = data[0] % 3;
    data++, size--;
    ls_err err;
    fuzz_err_poison(&err);
    if (mode == 0) {
        char *c = fuzz_exact(data, size);
        uint8_t a[16], want[16];
        ls_rc rc = ls_cidr_parse_addr(c, size, a, &err);
        free(c);
        if (rc != LS_OK && rc != LS_EINVAL) FUZZ_BUG("returned %s", ls_rc_name(rc));
        fuzz_check_err(rc, &err);
        int pok = pton(data, size, want);
        if (pok != (rc == LS_OK))
            FUZZ_BUG("parse_addr %s, inet_pton %s", ls_rc_name(rc), pok ? "accepts" : "refuses");
        if (rc == LS_OK) {
            if (memcmp(a, want, 16) != 0) FUZZ_BUG("parse_addr and inet_pton differ");
            char text[LS_CIDR_TEXTMAX];
            uint8_t back[16];
            ls_cidr_format_addr(a, text);
            if (ls_cidr_parse_addr(text, strlen(text), back, NULL) != LS_OK ||
                memcmp(a, back, 16) != 0)
                FUZZ_BUG("formatted as \"%s\", which does not parse back", text);
        }
        return 0;
    }
    if (mode == 1) {
        ls_cidr_set_t *set = NULL;
        if (ls_cidr_set_new(&set, &err) != LS_OK) abort();
        char *c = fuzz_exact(data, size);
        ls_rc rc = ls_cidr_set_add(set, c, size, &err);
        free(c);
        if (rc != LS_OK && rc != LS_EINVAL) FUZZ_BUG("set_add returned %s", ls_rc_name(rc));
        fuzz_check_err(rc, &err);
        /* reference: address[/bits] */
        const uint8_t *slash = memchr(data, '/', size);
        size_t alen = slash ? (size_t)(slash - data) : size;
        uint8_t net[16];
        int ok = pton(data, alen, net);
        unsigned bits = 0;
        int v4 = ok && memchr(data, '.', alen) && !memchr(data, ':', alen);
        if (ok && slash) {
            size_t dl = size - alen - 1;
            if (dl == 0 || dl > 3) ok = 0;
            for (size_t i = 0; ok && i < dl; i++) {
                if (slash[1 + i] < '0' || slash[1 + i] > '9') ok = 0;
                bits = bits * 10 + (unsigned)(slash[1 + i] - '0');
            }
            if (ok && dl > 1 && slash[1] == '0') ok = 0; /* leading zero: may be refused */
            if (ok && bits > (v4 ? 32u : 128u)) ok = 0;
            if (ok && v4) bits += 96;
        } else if (ok) {
            bits = 128;
        }
        if (rc == LS_OK && ok) {
            /* probe: the network itself, and the addresses one bit off at
             * each position */
            for (unsigned i = 0; i <= 128; i += 1) {
                uint8_t a[16];
                memcpy(a, net, 16);
                if (i < 128) a[i / 8] ^= (uint8_t)(0x80 >> (i % 8));
                int want = in_prefix(a, net, bits);
                int got = ls_cidr_set_contains_addr(set, a);
                if (want != got)
                    FUZZ_BUG("entry \"%.*s\": bit %u flipped is %s, reference %s", (int)size, data,
                             i, got ? "in" : "out", want ? "in" : "out");
            }
        }
        if (rc == LS_OK && !ok && !(slash && pton(data, alen, net)))
            FUZZ_BUG("set_add accepts \"%.*s\", which is not address[/bits]", (int)size, data);
        ls_cidr_set_free(set);
        return 0;
    }
    if (size < 1) return 0;
    static const char *const peers[] = {"127.0.0.1", "10.9.8.7",         "::1",      "2001:db8::9",
                                        "192.0.2.1", "::ffff:127.0.0.1", "10.0.0.1", "0.0.0.0"};
    unsigned pi = data[0];
    data++, size--;
    const char *peer;
    size_t plen;
    char *pbuf = NULL;
    if (pi < 8) {
        peer = peers[pi];
        plen = strlen(peer);
    } else {
        const uint8_t *us = memchr(data, 0x1f, size);
        plen = us ? (size_t)(us - data) : size;
        pbuf = fuzz_exact(data, plen);
        peer = pbuf;
        data += us ? plen + 1 : plen;
        size -= us ? plen + 1 : plen;
    }
    int has_xff = !(pi & 0x80) || size > 0;
    char *p = fuzz_exact(peer, plen), *x = fuzz_exact(data, size);
    char out[LS_CIDR_TEXTMAX];
    uint8_t addr[16], want[16];
    ls_rc rc = ls_cidr_client_addr(p, plen, has_xff ? x : NULL, has_xff ? size : 0, trusted, out,
                                   addr, &err);
    if (rc != LS_OK && rc != LS_EINVAL) FUZZ_BUG("client_addr returned %s", ls_rc_name(rc));
    fuzz_check_err(rc, &err);
    int rok = ref_client((const unsigned char *)peer, plen, data, size, has_xff, want);
    if (rok != (rc == LS_OK)) FUZZ_BUG("peer accepted differently");
    if (rc == LS_OK) {
        if (memcmp(addr, want, 16) != 0) FUZZ_BUG("client %s differs from the reference", out);
        if (memchr(out, '\0', sizeof out) == NULL) FUZZ_BUG("out not NUL-terminated");
        uint8_t back[16];
        if (ls_cidr_parse_addr(out, strlen(out), back, NULL) != LS_OK ||
            memcmp(back, addr, 16) != 0)
            FUZZ_BUG("text \"%s\" and binary client disagree", out);
    }
    free(p);
    free(x);
    free(pbuf);
    return 0;
}
