/* SPDX-License-Identifier: MIT
 * The pure parts of schedules (see schedule.h): a definition read from
 * JSON with a message naming the bad field, the fire due at a given time
 * and what was missed, the overlap decision and the fire's run id. No
 * clock, no store, no locks: tested with tables in test_flow_schedule.
 */
#include "ls_config.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lodestone/ls_alloc.h"
#include "flow_int.h"
#include "ls_json.h"
#include "schedule.h"

/* ---- names ---- */

static const char *const OVERLAP_NAMES[] = {"skip", "buffer_one", "allow"};
static const char *const CATCHUP_NAMES[] = {"one", "none"};

const char *flow_overlap_name(int overlap)
{
    return overlap >= 0 && overlap <= FLOW_OVERLAP_ALLOW ? OVERLAP_NAMES[overlap] : "?";
}

const char *flow_catchup_name(int catchup)
{
    return catchup >= 0 && catchup <= FLOW_CATCHUP_NONE ? CATCHUP_NAMES[catchup] : "?";
}

static int pick(const char *s, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0) return i;
    return -1;
}

/* ---- definitions ---- */

/* fresh: a new definition, not a stored record. A stored "." or ".."
 * (allowed before) still loads, so that it can be deleted. */
static ls_rc check_name(const char *what, const char *s, size_t n, int fresh, ls_err *err)
{
    return flow_check_word(what, s, n, FLOW_SCHED_NAMEMAX, !fresh, err);
}

static const char *const DEF_FIELDS[] = {"name",    "workflow", "cron",  "timezone",
                                         "overlap", "catchup",  "input", NULL};

static int listed(const char *k, const char *const *list)
{
    for (size_t i = 0; list && list[i]; i++)
        if (strcmp(k, list[i]) == 0) return 1;
    return 0;
}

/* A required or optional string field into *s (NULL when absent). */
static ls_rc get_text(const json_t *obj, const char *field, int required, const char **s, size_t *n,
                      ls_err *err)
{
    json_t *v = json_object_get(obj, field);
    *s = NULL;
    *n = 0;
    if (v == NULL) {
        if (required) return ls_err_set(err, LS_EINVAL, "%s: is required", field);
        return LS_OK;
    }
    if (!json_is_string(v))
        return ls_err_set(err, LS_EINVAL, "%s: must be a string, got %s", field,
                          ls_json_type_name(v));
    *s = json_string_value(v);
    *n = json_string_length(v);
    if (memchr(*s, '\0', *n)) /* it would end there: "@daily\u0000x" read as "@daily" */
        return ls_err_set(err, LS_EINVAL, "%s: must not contain \\u0000", field);
    return LS_OK;
}

/* An optional choice among names (known: how a message lists them). */
static ls_rc get_choice(const json_t *obj, const char *field, const char *const *names, int n,
                        const char *known, int *out, ls_err *err)
{
    const char *s;
    size_t len;
    ls_rc rc = get_text(obj, field, 0, &s, &len, err);
    if (rc != LS_OK || s == NULL) return rc; /* absent: *out keeps its default */
    int i = strlen(s) == len ? pick(s, names, n) : -1;
    if (i >= 0) {
        *out = i;
        return LS_OK;
    }
    return ls_err_set(err, LS_EINVAL, "%s: must be %s, got \"%.40s\"", field, known, s);
}

static ls_rc check_cron(const char *text, size_t len, ls_cron *c, ls_err *err)
{
    ls_rc rc = ls_cron_parse(text, len, c, err);
    if (rc != LS_OK) return rc;
    int64_t next;
    if (ls_cron_next(c, 0, &next) != LS_OK)
        return ls_err_set(err, LS_EINVAL, "cron \"%.60s\": never fires", text);
    return LS_OK;
}

static ls_rc parse_fields(const json_t *obj, const char *const *extra, flow_sched_def *d,
                          ls_err *err)
{
    if (!json_is_object(obj))
        return ls_err_set(err, LS_EINVAL, "schedule: must be an object, got %s",
                          ls_json_type_name(obj));
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v)
    {
        if (!listed(k, DEF_FIELDS) && !listed(k, extra))
            return ls_err_set(err, LS_EINVAL,
                              "%.60s: unknown field (known: name, workflow, cron, timezone, "
                              "overlap, catchup, input)",
                              k);
    }
    const char *s;
    size_t n;
    ls_rc rc = get_text(obj, "name", 1, &s, &n, err);
    if (rc == LS_OK) rc = check_name("name", s, n, extra == NULL, err);
    if (rc != LS_OK) return rc;
    d->name = ls_strndup(s, n);
    /* A workflow type's name (longer than a schedule's, which a fire id
     * holds), as a workflow file or a start can give it. */
    if ((rc = get_text(obj, "workflow", 1, &s, &n, err)) != LS_OK ||
        (rc = flow_check_word("workflow", s, n, LS_FLOW_NAMEMAX, extra != NULL, err)) != LS_OK)
        return rc;
    d->workflow = ls_strndup(s, n);
    if ((rc = get_text(obj, "cron", 1, &s, &n, err)) != LS_OK ||
        (rc = check_cron(s, n, &d->cron, err)) != LS_OK)
        return rc;
    d->cron_text = ls_strndup(s, n);
    if ((rc = get_text(obj, "timezone", 0, &s, &n, err)) != LS_OK) return rc;
    if (s && (rc = ls_cron_zone_check(s, n, err)) != LS_OK) return rc;
    if (s && !(n == 3 && memcmp(s, "UTC", 3) == 0) && (d->timezone = ls_strndup(s, n)) == NULL)
        return ls_err_set(err, LS_ENOMEM, "schedule: out of memory");
    if ((rc = get_choice(obj, "overlap", OVERLAP_NAMES, 3, "skip, buffer_one or allow", &d->overlap,
                         err)) != LS_OK ||
        (rc = get_choice(obj, "catchup", CATCHUP_NAMES, 2, "one or none", &d->catchup, err)) !=
            LS_OK)
        return rc;
    json_t *in = json_object_get(obj, "input");
    if (in && !json_is_null(in)) {
        ls_buf b = LS_BUF_INIT;
        rc = ls_json_dump(in, &b, err);
        if (rc == LS_OK && b.len > FLOW_SCHED_INPUTMAX)
            rc = ls_err_set(err, LS_EINVAL, "input: at most %zu bytes of JSON, got %zu",
                            FLOW_SCHED_INPUTMAX, b.len);
        if (rc == LS_OK) {
            d->input_len = b.len;
            d->input = (char *)ls_buf_steal(&b, NULL);
        }
        ls_buf_free(&b);
        if (rc != LS_OK) return rc;
    }
    if (d->name == NULL || d->workflow == NULL || d->cron_text == NULL ||
        (in && !json_is_null(in) && d->input == NULL))
        return ls_err_set(err, LS_ENOMEM, "schedule: out of memory");
    return LS_OK;
}

ls_rc flow_sched_def_parse(const json_t *obj, const char *const *extra, flow_sched_def *d,
                           ls_err *err)
{
    memset(d, 0, sizeof *d);
    d->overlap = FLOW_OVERLAP_SKIP;
    d->catchup = FLOW_CATCHUP_ONE;
    ls_rc rc = parse_fields(obj, extra, d, err);
    if (rc != LS_OK) flow_sched_def_free(d);
    return rc;
}

void flow_sched_def_free(flow_sched_def *d)
{
    ls_free(d->name);
    ls_free(d->workflow);
    ls_free(d->cron_text);
    ls_free(d->timezone);
    ls_free(d->input);
    memset(d, 0, sizeof *d);
    d->overlap = FLOW_OVERLAP_SKIP;
    d->catchup = FLOW_CATCHUP_ONE;
}

static int same_str(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

int flow_sched_def_equal(const flow_sched_def *a, const flow_sched_def *b)
{
    return same_str(a->name, b->name) && same_str(a->workflow, b->workflow) &&
           same_str(a->cron_text, b->cron_text) && same_str(a->timezone, b->timezone) &&
           a->overlap == b->overlap && a->catchup == b->catchup && same_str(a->input, b->input);
}

ls_rc flow_sched_def_to_json(const flow_sched_def *d, json_t *obj, ls_err *err)
{
    int bad =
        json_object_set_new(obj, "name", json_string(d->name)) ||
        json_object_set_new(obj, "workflow", json_string(d->workflow)) ||
        json_object_set_new(obj, "cron", json_string(d->cron_text)) ||
        json_object_set_new(obj, "timezone", json_string(d->timezone ? d->timezone : "UTC")) ||
        json_object_set_new(obj, "overlap", json_string(flow_overlap_name(d->overlap))) ||
        json_object_set_new(obj, "catchup", json_string(flow_catchup_name(d->catchup)));
    if (bad) return ls_err_set(err, LS_ENOMEM, "schedule: out of memory");
    if (d->input) {
        json_t *in = NULL;
        ls_rc rc = ls_json_parse(d->input, d->input_len, &in, err);
        if (rc != LS_OK) return LS_ERR_PREFIXED(rc, err, "schedule %s: input", d->name);
        if (json_object_set_new(obj, "input", in))
            return ls_err_set(err, LS_ENOMEM, "schedule: out of memory");
    }
    return LS_OK;
}

/* ---- what is due ---- */

void flow_sched_plan_at(const ls_cron *c, const char *zone, int64_t anchor, int64_t now,
                        int after_downtime, int catchup, flow_sched_plan *p)
{
    memset(p, 0, sizeof *p);
    p->anchor = anchor;
    ls_cron_tz *tz = NULL;
    if (ls_cron_tz_open(zone, &tz) != LS_OK) return; /* checked when defined: never here */
    int64_t t, latest = 0;
    uint64_t due = 0;
    if (ls_cron_next_tz(c, tz, anchor, &t) != LS_OK) goto done; /* never again */
    if (t > now) {
        p->next = t;
        goto done;
    }
    if (c->every_ms > 0) {
        /* Fires at multiples of the interval: count them. */
        latest = now - (now % c->every_ms + c->every_ms) % c->every_ms;
        due = (uint64_t)((latest - t) / c->every_ms) + 1;
    } else {
        /* At most one fire a minute: walk them (a year down is 525,600). */
        do {
            latest = t;
            due++;
        } while (ls_cron_next_tz(c, tz, latest, &t) == LS_OK && t <= now);
    }
    p->anchor = latest;
    if (after_downtime && catchup == FLOW_CATCHUP_NONE) {
        p->missed = due;
    } else {
        p->fire = latest;
        p->missed = due - 1;
    }
    if (ls_cron_next_tz(c, tz, latest, &t) == LS_OK) p->next = t;
done:
    ls_cron_tz_close(tz);
}

flow_sched_action flow_sched_decide(int overlap, int prev_running, int buffered_waiting)
{
    if (overlap == FLOW_OVERLAP_ALLOW || !prev_running) return FLOW_SCHED_START;
    if (overlap == FLOW_OVERLAP_BUFFER_ONE && !buffered_waiting) return FLOW_SCHED_BUFFER;
    return FLOW_SCHED_SKIP;
}

size_t flow_sched_fire_id(const char *name, int64_t fire_ms, char *out, size_t cap)
{
    time_t secs = (time_t)(fire_ms >= 0 ? fire_ms / 1000 : (fire_ms - 999) / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    int n = snprintf(out, cap, "%s@%04d%02d%02dT%02d%02d%02dZ", name, tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}
