/* SPDX-License-Identifier: MIT
 * The store's keyring at start: loads the key file, creating a key only for
 * a new store, and makes sure it opens the store's sealed data (its key
 * check, or for a store written before key checks existed one sealed
 * record of each kind) before anything reads or writes that data. A
 * refused start changes nothing on disk.
 */
#include "ls_config.h"

#include <stdio.h>
#include <string.h>

#include "flow_int.h"
#include "history.h"

/* History events a probe looks at for one with a payload (a run's first,
 * its WorkflowStarted, always has one). */
#define PROBE_EVENTS 64

/* ---- probing a store without a key check ---- */

typedef struct {
    ls_vault_t *v;
    ls_store_t *st;
    unsigned seen;    /* sealed records looked at (and reads that failed) */
    unsigned opened;  /* ... that opened */
    unsigned damaged; /* ... unreadable: damaged, an old format, a read error */
    unsigned unauth;  /* ... not authentic under a key the keyring holds */
    ls_buf refusal;   /* the first that did not authenticate, and why */
    ls_buf damage;    /* the first that did not open, and why */
} probe_state;

/* Keeps "what: why" in b unless it holds one already. */
static void note(ls_buf *b, const char *what, const ls_err *why)
{
    if (b->len) return;
    ls_buf_printf(b, NULL, "%s%s%s", what, *what ? ": " : "", ls_err_text(why));
}

/* Counts the outcome rc of reading one sealed record, named by what, that
 * failed with why; missing: it names a key the keyring lacks. That one
 * stops the probe with LS_EAUTH: the key file is stale or wrong whatever
 * else opens. One that does not authenticate under a key the keyring
 * holds, one this build cannot read (damaged, an old format) and a failed
 * read of the store are counted, and the probe goes on: with others that
 * open, they are damage, not a wrong key. Other failures (out of memory)
 * stop it as they are. */
static ls_rc verdict(probe_state *ps, ls_rc rc, int missing, const char *what, const ls_err *why)
{
    if (rc != LS_OK && rc != LS_EAUTH && rc != LS_EFORMAT && rc != LS_ECORRUPT && rc != LS_EIO)
        return rc;
    ps->seen++;
    if (rc == LS_OK) {
        ps->opened++;
        return LS_OK;
    }
    if (rc == LS_EAUTH) {
        if (missing) { /* the refusal names this one */
            ls_buf_clear(&ps->refusal);
            note(&ps->refusal, what, why);
            return LS_EAUTH;
        }
        note(&ps->refusal, what, why);
        ps->unauth++;
    } else {
        ps->damaged++;
    }
    note(&ps->damage, what, why);
    return LS_OK;
}

/* Whether sealed names a key the keyring does not hold. */
static int names_missing_key(const ls_vault_t *v, const void *sealed, size_t len)
{
    uint32_t id = ls_vault_sealed_key(sealed, len);
    return id != 0 && !ls_vault_holds_key(v, id);
}

typedef struct {
    ls_buf name;
    ls_rc rc;
    ls_err err;
} first_secret;

static int first_name(void *ud, const char *name, size_t len)
{
    first_secret *fs = ud;
    fs->rc = ls_buf_set(&fs->name, name, len, &fs->err);
    return 1;
}

static ls_rc probe_secret(probe_state *ps, ls_err *err)
{
    first_secret fs = {.name = LS_BUF_INIT};
    ls_rc rc = ls_vault_secret_list(ps->st, first_name, &fs, err);
    if (rc == LS_OK && fs.rc != LS_OK) {
        rc = fs.rc;
        if (err) *err = fs.err;
    }
    if (rc != LS_OK) {
        rc = verdict(ps, rc, 0, "reading the secrets", err);
    } else if (fs.name.len) {
        const char *name = (const char *)fs.name.ptr;
        ls_secret_t *s = NULL;
        rc = ls_vault_secret_get(ps->v, ps->st, name, &s, err);
        ls_secret_free(s);
        int missing = rc == LS_EAUTH && ls_vault_secret_missing_key(ps->v, ps->st, name) != 0;
        rc = verdict(ps, rc, missing, "", err); /* (its error names the secret) */
    }
    ls_buf_free(&fs.name);
    return rc;
}

static ls_rc probe_schedule(probe_state *ps, ls_err *err)
{
    const unsigned char prefix[1] = {LS_NS_SCHEDULE};
    ls_store_iter_t *it = NULL;
    ls_buf pt = LS_BUF_INIT, name = LS_BUF_INIT, what = LS_BUF_INIT;
    const void *key, *val;
    size_t klen, vlen;
    ls_rc rc = ls_store_iter_prefix(&it, ps->st, prefix, sizeof prefix, 0, err);
    if (rc == LS_OK) rc = ls_store_iter_next(it, &key, &klen, &val, &vlen, err);
    if (rc == LS_ENOTFOUND) {
        rc = LS_OK; /* no schedule */
    } else if (rc != LS_OK) {
        rc = verdict(ps, rc, 0, "reading the schedules", err);
    } else {
        /* Sealed with its own store key as associated data (schedule.c). */
        rc = ls_vault_open(ps->v, key, klen, val, vlen, &pt, err);
        int missing = rc == LS_ENOTFOUND;
        if (missing)
            rc = ls_err_set(err, LS_EAUTH,
                            "sealed value names key %u, which this keyring does not hold",
                            (unsigned)ls_vault_sealed_key(val, vlen));
        ls_key_reader r;
        ls_key_reader_init(&r, key, klen);
        if (rc != LS_OK && ls_key_read_ns(&r, NULL, NULL) == LS_OK &&
            ls_key_read_str(&r, &name, NULL) == LS_OK)
            ls_buf_printf(&what, NULL, "schedule \"%s\"", (const char *)name.ptr);
        rc = verdict(ps, rc, missing, what.len ? (const char *)what.ptr : "a schedule", err);
    }
    ls_store_iter_free(it);
    ls_buf_free(&pt);
    ls_buf_free(&name);
    ls_buf_free(&what);
    return rc;
}

/* The first (reverse: the last) history event with a payload among the
 * first PROBE_EVENTS from that end. */
static ls_rc probe_history(probe_state *ps, int reverse, ls_err *err)
{
    const unsigned char prefix[1] = {LS_NS_HISTORY};
    ls_store_iter_t *it = NULL;
    ls_buf pt = LS_BUF_INIT;
    const void *key, *val;
    size_t klen, vlen;
    ls_rc rc = ls_store_iter_prefix(&it, ps->st, prefix, sizeof prefix, reverse, err);
    for (int n = 0; rc == LS_OK && n < PROBE_EVENTS; n++) {
        rc = ls_store_iter_next(it, &key, &klen, &val, &vlen, err);
        if (rc != LS_OK) break;
        ls_id id;
        uint64_t seq = 0;
        ls_event ev;
        char what[LS_ID_TEXTLEN + 8] = "a history record";
        ls_rc krc = ls_history_key_parse(key, klen, &id, &seq, err);
        if (krc == LS_OK) {
            memcpy(what, "run ", 4);
            ls_id_format(&id, what + 4);
        }
        if (krc != LS_OK || ls_event_decode(val, vlen, &ev, err) != LS_OK) {
            /* damaged: says nothing of the key */
            rc = verdict(ps, LS_ECORRUPT, 0, what, err);
            continue;
        }
        if (ev.payload_len == 0) continue;
        unsigned started = ev.version; /* when seq is 1 */
        if (seq != 1 && flow_first_version(ps->st, &id, &started, err) != LS_OK) {
            rc = verdict(ps, LS_ECORRUPT, 0, what, err);
            continue;
        }
        rc = flow_open_event_with(ps->v, &id, NULL, started, &ev, &pt, err);
        int missing = rc == LS_EAUTH && names_missing_key(ps->v, ev.payload, ev.payload_len);
        rc = verdict(ps, rc, missing, what, err);
        break;
    }
    if (rc == LS_ENOTFOUND) rc = LS_OK; /* no (more) history */
    /* A failed read of the store: as a damaged record. */
    if (rc == LS_ECORRUPT || rc == LS_EIO) rc = verdict(ps, rc, 0, "reading the history", err);
    ls_store_iter_free(it);
    ls_buf_free(&pt);
    return rc;
}

/* Opens one sealed record of each kind the store holds: its first secret,
 * its first schedule, its first and last history payloads (the oldest run
 * and the newest: a key file from before a rotation lacks the newer key). */
static ls_rc probe(probe_state *ps, ls_err *err)
{
    ls_rc rc = probe_secret(ps, err);
    if (rc == LS_OK) rc = probe_schedule(ps, err);
    if (rc == LS_OK) rc = probe_history(ps, 0, err);
    if (rc == LS_OK) rc = probe_history(ps, 1, err);
    return rc;
}

/* A store without a key check: a new one, or one an older lodestoned
 * wrote. Its sealed records are probed. It is refused when one names a key
 * the keyring lacks, or when none opens and one does not authenticate.
 * Otherwise the key check is written when one opened (the others, which
 * did not, are damage: rep says which), or when it holds none (nothing
 * sealed can be lost). When it holds some but none could be read, none is
 * written: the next start probes again, rather than bind the store to a
 * key nothing confirmed. */
static ls_rc adopt(ls_vault_t *v, ls_store_t *st, const char *key_file, int holds,
                   ls_flow_key_report *rep, ls_err *err)
{
    probe_state ps = {.v = v, .st = st, .refusal = LS_BUF_INIT, .damage = LS_BUF_INIT};
    ls_err why = {0};
    ls_rc rc = holds ? probe(&ps, &why) : LS_OK;
    if (rc == LS_OK && ps.opened == 0 && ps.unauth > 0) rc = LS_EAUTH;
    if (rc == LS_EAUTH) {
        ls_err_set(err, LS_EAUTH, "key file %s does not open this store's data (%s)", key_file,
                   ps.refusal.len ? (const char *)ps.refusal.ptr : "");
    } else if (rc != LS_OK) {
        if (err) *err = why;
    } else {
        if (rep) {
            rep->probed = ps.seen;
            rep->opened = ps.opened;
            rep->damaged = ps.damaged + ps.unauth;
            snprintf(rep->first_damage, sizeof rep->first_damage, "%s",
                     ps.damage.len ? (const char *)ps.damage.ptr : "");
        }
        if (ps.opened > 0 || ps.seen == 0) rc = ls_vault_check_write(v, st, err);
    }
    ls_buf_free(&ps.refusal);
    ls_buf_free(&ps.damage);
    return rc;
}

/* ---- loading ---- */

/* The key file is absent and st holds data: say so, with the key its key
 * check names when it has one. */
static ls_rc missing_key(ls_store_t *st, const char *key_file, ls_err *err)
{
    uint32_t id = 0;
    char under[48] = "";
    if (ls_vault_check_key(st, &id, NULL) == LS_OK)
        snprintf(under, sizeof under, " (written under key %u)", (unsigned)id);
    return ls_err_set(err, LS_ENOTFOUND,
                      "key file %s does not exist, and this store holds data sealed under a key%s",
                      key_file, under);
}

ls_rc ls_flow_key_load_report(ls_vault_t **out, ls_store_t *st, const char *key_file,
                              ls_flow_key_report *rep, ls_err *err)
{
    if (rep) memset(rep, 0, sizeof *rep);
    if (out == NULL || st == NULL || key_file == NULL)
        return ls_err_set(err, LS_EINVAL, "ls_flow_key_load needs out, a store and a key file");
    *out = NULL;
    int holds = 0;
    ls_rc rc = ls_store_holds_data(st, &holds, err);
    if (rc != LS_OK) return rc;

    ls_vault_t *v = NULL;
    ls_vault_opts vo = {.create_if_missing = !holds};
    rc = ls_vault_load(&v, key_file, &vo, err);
    if (rc == LS_ENOTFOUND && holds) return missing_key(st, key_file, err);
    if (rc != LS_OK) return rc;

    uint32_t id = 0;
    rc = ls_vault_check_open(v, st, &id, err);
    if (rc == LS_ENOTFOUND) {
        rc = adopt(v, st, key_file, holds, rep, err);
    } else if (rc != LS_OK && rc != LS_EIO && rc != LS_ENOMEM && !holds && ls_vault_created(v)) {
        /* A key check alone whose key file is gone: the store holds nothing
         * sealed under it, so it is bound to the key created now instead of
         * being locked out for good. (A key file given that does not open
         * the check is still refused: it may be the wrong file.) */
        rc = ls_vault_check_write(v, st, err);
    }
    if (rc != LS_OK) {
        /* A key file created here goes again, unless the key check may
         * have been written under it (LS_EIO: a failed sync leaves the
         * outcome unknown). Kept, it is the key file the next start loads,
         * and a store holding nothing sealed takes it either way. */
        if (rc == LS_EIO && ls_vault_created(v))
            ls_vault_close(v);
        else
            ls_vault_discard(v);
        return rc;
    }
    *out = v;
    return LS_OK;
}

ls_rc ls_flow_key_load(ls_vault_t **out, ls_store_t *st, const char *key_file, ls_err *err)
{
    return ls_flow_key_load_report(out, st, key_file, NULL, err);
}
