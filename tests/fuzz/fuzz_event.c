/* SPDX-License-Identifier: MIT
 * libFuzzer: workflow history values (flow/history.h). Every input is
 * decoded as an event, as a run record and as a history key; what decodes
 * must re-encode to the same bytes (varints are canonical; a version 1 run
 * record re-encodes as version 2 with an empty version) and decode again
 * to the same value. */
#include "fuzz_common.h"

#include "flow/history.h"
#include "lodestone/ls_buf.h"

#include "fuzz_refs.h" /* tests/c/ */

/* Writes b's bytes to dir/name. */
static void put_seed(const char *dir, const char *name, const ls_buf *b)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(b->ptr, 1, b->len, f) != b->len) FUZZ_BUG("cannot write %s", path);
    fclose(f);
}

/* With FUZZ_SEED_DIR set, writes test_fuzz.c's seed events there, a run
 * record and a history key. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *dir = getenv("FUZZ_SEED_DIR");
    if (dir == NULL) return 0;
    ls_event evs[FUZZ_SEED_EVENTS + 1];
    fuzz_seed_events(evs);
    evs[FUZZ_SEED_EVENTS] = (ls_event){.type = LS_EV_CHILD_STARTED,
                                       .flags = LS_EVF_DETACHED,
                                       .seq = 2,
                                       .time_ms = 5,
                                       .name = "run-1",
                                       .name_len = 5,
                                       .payload = (const unsigned char *)"{}",
                                       .payload_len = 2};
    ls_buf b = LS_BUF_INIT;
    ls_err err;
    char name[32];
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++) {
        if (ls_event_encode(&evs[i], &b, &err) != LS_OK) FUZZ_BUG("%s", err.msg);
        snprintf(name, sizeof name, "ev-%zu", i);
        put_seed(dir, name, &b);
    }
    ls_run_record rr = fuzz_seed_run_record();
    if (ls_run_encode(&rr, &b, &err) != LS_OK) FUZZ_BUG("%s", err.msg);
    put_seed(dir, "run-0", &b);
    ls_id id;
    memset(&id, 0x42, sizeof id);
    if (ls_history_key(&b, &id, 77, &err) != LS_OK) FUZZ_BUG("%s", err.msg);
    put_seed(dir, "key-0", &b);
    ls_buf_free(&b);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536) return 0;
    char *c = fuzz_exact(data, size);
    ls_buf again = LS_BUF_INIT;
    ls_err err;
    ls_event ev, back;
    fuzz_err_poison(&err);
    ls_rc rc = ls_event_decode(c, size, &ev, &err);
    if (rc != LS_OK && rc != LS_ECORRUPT && rc != LS_EFORMAT)
        FUZZ_BUG("event_decode returned %s", ls_rc_name(rc));
    fuzz_check_err(rc, &err);
    if (rc == LS_OK) {
        if (ev.seq == 0 || ev.type < 1 || ev.type > LS_EV_LAST || (ev.flags & ~LS_EVF_KNOWN))
            FUZZ_BUG("decoded an event that breaks its own rules");
        if ((ev.name_len && (const uint8_t *)ev.name < (const uint8_t *)c) ||
            (ev.name_len && (const char *)ev.name + ev.name_len > c + size) ||
            (ev.payload_len && (const char *)ev.payload + ev.payload_len > c + size) ||
            (ev.error_len && ev.error + ev.error_len > c + size))
            FUZZ_BUG("a decoded string points outside the value");
        (void)ls_event_type_name(ev.type);
        if (ls_event_encode(&ev, &again, &err) != LS_OK)
            FUZZ_BUG("decoded event does not encode: %s", err.msg);
        if (again.len != size || memcmp(again.ptr, data, size) != 0)
            FUZZ_BUG("decoded event re-encodes to other bytes");
        if (ls_event_decode(again.ptr, again.len, &back, &err) != LS_OK ||
            !events_equal(&ev, &back))
            FUZZ_BUG("re-encoded event decodes differently");
    }
    ls_run_record r, r2;
    fuzz_err_poison(&err);
    rc = ls_run_decode(c, size, &r, &err);
    if (rc != LS_OK && rc != LS_ECORRUPT && rc != LS_EFORMAT)
        FUZZ_BUG("run_decode returned %s", ls_rc_name(rc));
    fuzz_check_err(rc, &err);
    if (rc == LS_OK) {
        (void)ls_run_status_name(r.status);
        if (ls_run_encode(&r, &again, &err) != LS_OK) FUZZ_BUG("run record does not encode");
        int v1 = size > 0 && data[0] == 1;
        if ((!v1 && (again.len != size || memcmp(again.ptr, data, size) != 0)) ||
            (v1 && (again.len != size + 1 || memcmp(again.ptr + 1, data + 1, size - 1) != 0 ||
                    again.ptr[size] != 0)))
            FUZZ_BUG("decoded run record re-encodes to other bytes");
        if (ls_run_decode(again.ptr, again.len, &r2, &err) != LS_OK || r2.status != r.status ||
            r2.created_ms != r.created_ms || r2.updated_ms != r.updated_ms ||
            r2.last_seq != r.last_seq || r2.type_len != r.type_len || r2.name_len != r.name_len)
            FUZZ_BUG("re-encoded run record decodes differently");
    }
    ls_id run;
    uint64_t seq;
    rc = ls_history_key_parse(c, size, &run, &seq, &err);
    if (rc == LS_OK) {
        if (ls_history_key(&again, &run, seq, &err) != LS_OK) FUZZ_BUG("history key");
        if (again.len != size || memcmp(again.ptr, data, size) != 0)
            FUZZ_BUG("history key does not round-trip");
    }
    /* type names */
    ls_event_type t;
    if (ls_event_type_parse(c, size, &t) == LS_OK &&
        (strlen(ls_event_type_name(t)) != size || memcmp(ls_event_type_name(t), data, size) != 0))
        FUZZ_BUG("type name does not round-trip");
    ls_buf_free(&again);
    free(c);
    return 0;
}
