/* SPDX-License-Identifier: MIT
 * Time-sortable 128-bit ids: 48-bit milliseconds, 80 random bits, and a
 * 26-character Crockford base32 text form that sorts like the bytes. */
#include "ls_config.h"

#include <pthread.h>
#include <sodium.h>
#include <string.h>

#include "lodestone/ls_id.h"

#define TIME_BYTES 6
#define RAND_BYTES (LS_ID_BYTES - TIME_BYTES)
#define TIME_MAX   ((int64_t)1 << 48)

static const char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/* Last id made, so ids in one millisecond sort in creation order. */
static pthread_mutex_t last_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t last_ms = -1;
static uint8_t last_rand[RAND_BYTES];

/* Adds one to a big-endian number; returns 1 when it wrapped to zero. */
static int increment(uint8_t *p, size_t n)
{
    while (n-- > 0)
        if (++p[n] != 0) return 0;
    return 1;
}

ls_rc ls_id_new(ls_id *out, const ls_clock *clock, ls_err *err)
{
    if (sodium_init() < 0) return ls_err_set(err, LS_EIO, "libsodium failed to initialise");
    int64_t ms = ls_clock_wall_ms(clock);
    if (ms < 0 || ms >= TIME_MAX)
        return ls_err_set(err, LS_EINVAL, "clock reads %lld ms, outside the 48-bit id time range",
                          (long long)ms);

    uint8_t rnd[RAND_BYTES];
    pthread_mutex_lock(&last_lock);
    if (ms == last_ms && !increment(last_rand, RAND_BYTES)) {
        memcpy(rnd, last_rand, RAND_BYTES);
    } else {
        /* A new millisecond, a clock that went back, or 2^80 ids in one
         * millisecond: draw afresh. */
        randombytes_buf(rnd, RAND_BYTES);
        rnd[0] &= 0x7f; /* leave room to increment within the millisecond */
        memcpy(last_rand, rnd, RAND_BYTES);
        last_ms = ms;
    }
    pthread_mutex_unlock(&last_lock);

    for (int i = TIME_BYTES - 1; i >= 0; i--) {
        out->b[i] = (uint8_t)(ms & 0xff);
        ms >>= 8;
    }
    memcpy(out->b + TIME_BYTES, rnd, RAND_BYTES);
    return LS_OK;
}

void ls_id_format(const ls_id *id, char out[LS_ID_TEXTLEN + 1])
{
    /* 26 digits of 5 bits hold 130 bits: the first digit carries the top 3
     * bits of the id. Walk the bits from the least significant end. */
    unsigned acc = 0, nbits = 0;
    int byte = LS_ID_BYTES - 1;
    for (int pos = LS_ID_TEXTLEN - 1; pos >= 0; pos--) {
        while (nbits < 5 && byte >= 0) {
            acc |= (unsigned)id->b[byte--] << nbits;
            nbits += 8;
        }
        out[pos] = alphabet[acc & 31];
        acc >>= 5;
        nbits = nbits >= 5 ? nbits - 5 : 0;
    }
    out[LS_ID_TEXTLEN] = '\0';
}

static int digit_value(char c)
{
    if (c >= 'a' && c <= 'z') c = (char)(c - 'a' + 'A');
    switch (c) {
    case 'O': return 0;
    case 'I':
    case 'L': return 1;
    case 'U': return -1;
    default: break;
    }
    const char *p = c ? strchr(alphabet, c) : NULL;
    return p ? (int)(p - alphabet) : -1;
}

ls_rc ls_id_parse(ls_id *out, const char *text, size_t len, ls_err *err)
{
    if (len != LS_ID_TEXTLEN)
        return ls_err_set(err, LS_EINVAL, "id must be %d characters, got %zu", LS_ID_TEXTLEN, len);
    int first = digit_value(text[0]);
    if (first > 7)
        return ls_err_set(err, LS_EINVAL, "id out of range: first character '%c' is above '7'",
                          text[0]);

    ls_id id;
    memset(&id, 0, sizeof id);
    unsigned acc = 0, nbits = 0;
    int byte = LS_ID_BYTES - 1;
    for (int pos = LS_ID_TEXTLEN - 1; pos >= 0; pos--) {
        int v = digit_value(text[pos]);
        if (v < 0)
            return ls_err_set(err, LS_EINVAL, "id has invalid character at position %d", pos + 1);
        acc |= (unsigned)v << nbits;
        nbits += 5;
        while (nbits >= 8 && byte >= 0) {
            id.b[byte--] = (uint8_t)(acc & 0xff);
            acc >>= 8;
            nbits -= 8;
        }
    }
    if (byte >= 0) id.b[byte] = (uint8_t)acc; /* the first digit's last bits */
    *out = id;
    return LS_OK;
}

int64_t ls_id_time_ms(const ls_id *id)
{
    int64_t ms = 0;
    for (int i = 0; i < TIME_BYTES; i++) ms = (ms << 8) | id->b[i];
    return ms;
}

int ls_id_cmp(const ls_id *a, const ls_id *b)
{
    return memcmp(a->b, b->b, LS_ID_BYTES);
}
