/* SPDX-License-Identifier: MIT
 * Retry policies: parsing from the Lua/JSON shape, per-step merging and the
 * delay schedule (see retry.h). Promises: every message names the field;
 * the delay never exceeds max_interval * (1 + jitter) and never overflows,
 * for any attempt number.
 */
#include "ls_config.h"

#include <assert.h>
#include <math.h>
#include <sodium.h>
#include <string.h>

#include "lodestone/ls_alloc.h"
#include "lodestone/ls_duration.h"
#include "retry.h"

#define MAX_NAME 64 /* longest error code accepted in non_retryable */

/* ---- lifetime ---- */

void ls_flow_retry_init(ls_flow_retry *p)
{
    memset(p, 0, sizeof *p);
    p->initial_ms = LS_FLOW_RETRY_DEFAULT_INITIAL_MS;
    p->backoff = LS_FLOW_RETRY_DEFAULT_BACKOFF;
    p->max_ms = LS_FLOW_RETRY_DEFAULT_INITIAL_MS * LS_FLOW_RETRY_DEFAULT_MAX_FACTOR;
    p->max_attempts = 0;
    p->jitter = LS_FLOW_RETRY_DEFAULT_JITTER;
}

void ls_flow_retry_free(ls_flow_retry *p)
{
    if (!p) return;
    ls_free(p->non_retryable);
    ls_flow_retry_init(p);
}

static ls_rc set_list(ls_flow_retry *p, const char *list, size_t len, ls_err *err)
{
    char *copy = NULL;
    if (len > 0) {
        copy = ls_malloc(len);
        if (!copy) return ls_err_set(err, LS_ENOMEM, "retry: out of memory");
        memcpy(copy, list, len);
    }
    ls_free(p->non_retryable);
    p->non_retryable = copy;
    p->non_retryable_len = len;
    return LS_OK;
}

ls_rc ls_flow_retry_copy(ls_flow_retry *dst, const ls_flow_retry *src, ls_err *err)
{
    assert(dst != src);
    *dst = *src;
    dst->non_retryable = NULL;
    dst->non_retryable_len = 0;
    ls_rc rc = set_list(dst, src->non_retryable, src->non_retryable_len, err);
    if (rc != LS_OK) ls_flow_retry_init(dst);
    return rc;
}

/* ---- validation shared by parse and merge ---- */

static int64_t derived_max(int64_t initial_ms)
{
    if (initial_ms > LS_FLOW_RETRY_MAX_MS / LS_FLOW_RETRY_DEFAULT_MAX_FACTOR)
        return LS_FLOW_RETRY_MAX_MS;
    return initial_ms * LS_FLOW_RETRY_DEFAULT_MAX_FACTOR;
}

static ls_rc finish(ls_flow_retry *p, const char *name, ls_err *err)
{
    if (!(p->set & LS_FLOW_RETRY_SET_MAX)) p->max_ms = derived_max(p->initial_ms);
    if (p->max_ms < p->initial_ms)
        return ls_err_set(err, LS_EINVAL,
                          "%s.max_interval: must be at least initial_interval (%lld ms), got "
                          "%lld ms",
                          name, (long long)p->initial_ms, (long long)p->max_ms);
    return LS_OK;
}

/* ---- parsing ---- */

/* A duration given as seconds (number) or as a duration string. */
static ls_rc parse_interval(const json_t *v, const char *name, const char *field, int64_t *ms,
                            ls_err *err)
{
    if (json_is_string(v)) {
        ls_rc rc = ls_duration_parse(json_string_value(v), json_string_length(v), ms, err);
        if (rc != LS_OK) return LS_ERR_PREFIXED(rc, err, "%s.%s", name, field);
    } else if (json_is_number(v)) {
        double s = json_number_value(v);
        if (!(s >= 0)) /* also catches NaN */
            return ls_err_set(err, LS_EINVAL, "%s.%s: must not be negative, got %g", name, field,
                              s);
        if (s * 1000.0 > (double)LS_FLOW_RETRY_MAX_MS)
            return ls_err_set(err, LS_EINVAL, "%s.%s: over 100 years, got %g s", name, field, s);
        *ms = llround(s * 1000.0);
    } else {
        return ls_err_set(err, LS_EINVAL,
                          "%s.%s: expected seconds or a duration string such as \"10s\", got %s",
                          name, field, ls_json_type_name(v));
    }
    if (*ms <= 0)
        return ls_err_set(err, LS_EINVAL, "%s.%s: must be positive (at least 1ms)", name, field);
    return LS_OK;
}

static ls_rc parse_number(const json_t *v, const char *name, const char *field, double *out,
                          ls_err *err)
{
    if (!json_is_number(v))
        return ls_err_set(err, LS_EINVAL, "%s.%s: expected a number, got %s", name, field,
                          ls_json_type_name(v));
    *out = json_number_value(v);
    return LS_OK;
}

static ls_rc parse_backoff(const json_t *v, const char *name, double *out, ls_err *err)
{
    ls_rc rc = parse_number(v, name, "backoff", out, err);
    if (rc != LS_OK) return rc;
    if (!(*out >= 1.0) || !isfinite(*out))
        return ls_err_set(err, LS_EINVAL, "%s.backoff: must be at least 1, got %g", name, *out);
    return LS_OK;
}

static ls_rc parse_jitter(const json_t *v, const char *name, double *out, ls_err *err)
{
    ls_rc rc = parse_number(v, name, "jitter", out, err);
    if (rc != LS_OK) return rc;
    if (!(*out >= 0.0 && *out <= 1.0))
        return ls_err_set(err, LS_EINVAL, "%s.jitter: must be between 0 and 1, got %g", name, *out);
    return LS_OK;
}

static ls_rc parse_attempts(const json_t *v, const char *name, uint32_t *out, ls_err *err)
{
    double d;
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < 0 || i > (json_int_t)UINT32_MAX)
            return ls_err_set(err, LS_EINVAL,
                              "%s.max_attempts: must be between 0 (no limit) and %lu, got %lld",
                              name, (unsigned long)UINT32_MAX, (long long)i);
        *out = (uint32_t)i;
        return LS_OK;
    }
    if (!json_is_real(v))
        return ls_err_set(err, LS_EINVAL, "%s.max_attempts: expected an integer, got %s", name,
                          ls_json_type_name(v));
    d = json_real_value(v);
    if (d != floor(d) || !isfinite(d))
        return ls_err_set(err, LS_EINVAL, "%s.max_attempts: expected an integer, got %g", name, d);
    if (d < 0 || d > (double)UINT32_MAX)
        return ls_err_set(err, LS_EINVAL,
                          "%s.max_attempts: must be between 0 (no limit) and %lu, got %g", name,
                          (unsigned long)UINT32_MAX, d);
    *out = (uint32_t)d;
    return LS_OK;
}

/* Checks the list and packs it into one allocation set on p. */
static ls_rc parse_list(const json_t *v, const char *name, ls_flow_retry *p, ls_err *err)
{
    if (json_is_object(v) && json_object_size(v) == 0) return set_list(p, NULL, 0, err);
    if (!json_is_array(v))
        return ls_err_set(err, LS_EINVAL, "%s.non_retryable: expected a list of strings, got %s",
                          name, ls_json_type_name(v));
    size_t i, total = 0;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        if (!json_is_string(e))
            return ls_err_set(err, LS_EINVAL, "%s.non_retryable[%zu]: expected a string, got %s",
                              name, i + 1, ls_json_type_name(e));
        size_t n = json_string_length(e);
        if (n == 0 || n > MAX_NAME || memchr(json_string_value(e), '\0', n))
            return ls_err_set(err, LS_EINVAL,
                              "%s.non_retryable[%zu]: must be 1 to %d characters without NUL", name,
                              i + 1, MAX_NAME);
        total += n + 1;
    }
    char *packed = total ? ls_malloc(total) : NULL;
    if (total && !packed) return ls_err_set(err, LS_ENOMEM, "%s: out of memory", name);
    size_t at = 0;
    json_array_foreach(v, i, e)
    {
        if (packed == NULL) break; /* cannot happen: a non-empty list has total > 0 */
        size_t n = json_string_length(e);
        memcpy(packed + at, json_string_value(e), n + 1);
        at += n + 1;
    }
    ls_free(p->non_retryable);
    p->non_retryable = packed;
    p->non_retryable_len = total;
    return LS_OK;
}

static ls_rc parse_field(const char *key, const json_t *v, const char *name, ls_flow_retry *p,
                         ls_err *err)
{
    ls_rc rc;
    if (strcmp(key, "initial_interval") == 0) {
        rc = parse_interval(v, name, key, &p->initial_ms, err);
        p->set |= LS_FLOW_RETRY_SET_INITIAL;
    } else if (strcmp(key, "max_interval") == 0) {
        rc = parse_interval(v, name, key, &p->max_ms, err);
        p->set |= LS_FLOW_RETRY_SET_MAX;
    } else if (strcmp(key, "backoff") == 0) {
        rc = parse_backoff(v, name, &p->backoff, err);
        p->set |= LS_FLOW_RETRY_SET_BACKOFF;
    } else if (strcmp(key, "max_attempts") == 0) {
        rc = parse_attempts(v, name, &p->max_attempts, err);
        p->set |= LS_FLOW_RETRY_SET_ATTEMPTS;
    } else if (strcmp(key, "jitter") == 0) {
        rc = parse_jitter(v, name, &p->jitter, err);
        p->set |= LS_FLOW_RETRY_SET_JITTER;
    } else if (strcmp(key, "non_retryable") == 0) {
        rc = parse_list(v, name, p, err);
        p->set |= LS_FLOW_RETRY_SET_NON_RETRYABLE;
    } else {
        rc = ls_err_set(err, LS_EINVAL,
                        "%s.%.40s: unknown field (known: initial_interval, backoff, "
                        "max_interval, max_attempts, jitter, non_retryable)",
                        name, key);
    }
    return rc;
}

ls_rc ls_flow_retry_parse(const json_t *obj, const ls_flow_retry *base, const char *name,
                          ls_flow_retry *out, ls_err *err)
{
    ls_flow_retry defaults;
    ls_rc rc;
    if (!name) name = "retry";
    if (!base) {
        ls_flow_retry_init(&defaults);
        base = &defaults;
    }
    ls_flow_retry_init(out);
    if (!json_is_object(obj))
        return ls_err_set(err, LS_EINVAL, "%s: expected a table (object), got %s", name,
                          obj ? ls_json_type_name(obj) : "nothing");
    rc = ls_flow_retry_copy(out, base, err);
    if (rc != LS_OK) return rc;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        rc = parse_field(key, v, name, out, err);
        if (rc != LS_OK) goto fail;
    }
    rc = finish(out, name, err);
    if (rc != LS_OK) goto fail;
    return LS_OK;
fail:
    ls_flow_retry_free(out);
    return rc;
}

ls_rc ls_flow_retry_merge(const ls_flow_retry *base, const ls_flow_retry *over, const char *name,
                          ls_flow_retry *out, ls_err *err)
{
    assert(out != base && out != over);
    if (!name) name = "retry";
    ls_rc rc = ls_flow_retry_copy(out, base, err);
    if (rc != LS_OK) return rc;
    unsigned s = over->set;
    if (s & LS_FLOW_RETRY_SET_INITIAL) out->initial_ms = over->initial_ms;
    if (s & LS_FLOW_RETRY_SET_BACKOFF) out->backoff = over->backoff;
    if (s & LS_FLOW_RETRY_SET_MAX) out->max_ms = over->max_ms;
    if (s & LS_FLOW_RETRY_SET_ATTEMPTS) out->max_attempts = over->max_attempts;
    if (s & LS_FLOW_RETRY_SET_JITTER) out->jitter = over->jitter;
    if (s & LS_FLOW_RETRY_SET_NON_RETRYABLE) {
        rc = set_list(out, over->non_retryable, over->non_retryable_len, err);
        if (rc != LS_OK) goto fail;
    }
    out->set |= s;
    rc = finish(out, name, err);
    if (rc != LS_OK) goto fail;
    return LS_OK;
fail:
    ls_flow_retry_free(out);
    return rc;
}

/* ---- schedule ---- */

int ls_flow_retry_is_non_retryable(const ls_flow_retry *p, const char *code)
{
    if (!code || !p->non_retryable) return 0;
    const char *at = p->non_retryable, *end = at + p->non_retryable_len;
    while (at < end) {
        if (strcmp(at, code) == 0) return 1;
        at += strlen(at) + 1;
    }
    return 0;
}

int64_t ls_flow_retry_base_delay(const ls_flow_retry *p, uint64_t attempt)
{
    assert(attempt >= 1);
    /* backoff >= 1, so pow is finite or +inf, never NaN; compare in double
     * before converting so that no huge value reaches an integer. */
    double d = (double)p->initial_ms * pow(p->backoff, (double)(attempt - 1));
    if (!(d < (double)p->max_ms)) return p->max_ms;
    int64_t ms = llround(d);
    return ms > p->max_ms ? p->max_ms : ms;
}

static uint64_t sodium_bits(void)
{
    uint64_t v;
    randombytes_buf(&v, sizeof v);
    return v;
}

static int64_t jittered(int64_t base, double jitter, const ls_flow_rand *rnd)
{
    int64_t spread = (int64_t)floor((double)base * jitter); /* <= base <= a century */
    if (spread <= 0) return base;
    uint64_t bits = rnd ? rnd->next(rnd->ud) : sodium_bits();
    uint64_t span = 2 * (uint64_t)spread + 1;
    int64_t ms = base - spread + (int64_t)(bits % span);
    return ms < 0 ? 0 : ms;
}

ls_flow_retry_verdict ls_flow_retry_next(const ls_flow_retry *p, uint64_t attempt,
                                         const char *error_code, int fatal, const ls_flow_rand *rnd,
                                         int64_t *delay_ms)
{
    assert(attempt >= 1);
    *delay_ms = -1;
    if (fatal) return LS_FLOW_RETRY_FATAL;
    if (ls_flow_retry_is_non_retryable(p, error_code)) return LS_FLOW_RETRY_NON_RETRYABLE;
    if (p->max_attempts > 0 && attempt >= p->max_attempts) return LS_FLOW_RETRY_EXHAUSTED;
    *delay_ms = jittered(ls_flow_retry_base_delay(p, attempt), p->jitter, rnd);
    return LS_FLOW_RETRY_AGAIN;
}

const char *ls_flow_retry_verdict_name(ls_flow_retry_verdict v)
{
    switch (v) {
    case LS_FLOW_RETRY_AGAIN: return "again";
    case LS_FLOW_RETRY_FATAL: return "fatal";
    case LS_FLOW_RETRY_NON_RETRYABLE: return "non_retryable";
    case LS_FLOW_RETRY_EXHAUSTED: return "exhausted";
    }
    return "unknown";
}
