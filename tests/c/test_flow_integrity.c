/* SPDX-License-Identifier: MIT
 * Tests of what binds a sealed event payload to its record (native/flow/
 * query.c: flow_seal_event, flow_open_event): a payload opens with the
 * record it was sealed in, and with no record that differs in any field,
 * in its run, its place (seq, inbox arrival) or its version byte; events
 * of version 1, sealed by older lodestoned with the run id and seq alone,
 * open as they were; the custom status stays bound to its run and slot.
 * Since version 3 every event is sealed, one of a kind that holds no
 * payload as an empty plaintext, and a reader of a run's history
 * (flow_hist_check) refuses a gap and, in a run started at version 3, an
 * event of an older version. Engine-level cases (records changed in a
 * store: a forged timer firing, a deleted event, a run of version 2
 * events) are in test_flow_engine.c, where the engine's test runner is.
 */
#define _GNU_SOURCE 1
#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow/flow_int.h"
#include "flow/history.h"

#define PT "{\"decision\":\"approve\"}"

static int setup(void **state)
{
    th_store_dir *d = calloc(1, sizeof *d);
    if (d == NULL) return -1;
    th_store_dir_open(d, "flow_integrity");
    *state = d;
    return 0;
}

static int teardown(void **state)
{
    th_store_dir *d = *state;
    th_store_dir_close(d);
    free(d);
    return 0;
}

static ls_id run_id(unsigned char b)
{
    ls_id id;
    memset(id.b, b, LS_ID_BYTES);
    return id;
}

/* A SignalReceived with every field set. */
static ls_event signal_event(void)
{
    return (ls_event){.type = LS_EV_SIGNAL_RECEIVED,
                      .flags = 0,
                      .seq = 7,
                      .time_ms = 1700000000000,
                      .due_ms = 0,
                      .attempt = 0,
                      .name = "approve",
                      .name_len = 7,
                      .error = NULL,
                      .error_len = 0};
}

/* Opens ev (of run id; arrival: an inbox entry's) and expects rc, with
 * want in the message when rc is not LS_OK, and PT when it is. */
static void opens(th_store_dir *d, const ls_id *id, const ls_id *arrival, const ls_event *ev,
                  ls_rc want_rc, const char *want)
{
    ls_buf out = LS_BUF_INIT;
    ls_err err = {0};
    ls_rc rc = flow_open_event_with(d->v, id, arrival, 3, ev, &out, &err);
    if (rc != want_rc)
        fail_msg("open: %s (%s), expected %s", ls_rc_name(rc), err.msg, ls_rc_name(want_rc));
    if (rc == LS_OK) {
        assert_int_equal(out.len, strlen(PT));
        assert_memory_equal(out.ptr, PT, out.len);
    } else if (want == NULL || strstr(err.msg, want) == NULL) {
        fail_msg("open: \"%s\" lacks \"%s\"", err.msg, want);
    }
    ls_buf_free(&out);
}

#define NO_AUTH "sealed value does not authenticate"

/* The message of an inbox entry stored under arrival, holding type and
 * name (as shown: quoted, cut and escaped), refused with why. */
static const char *entry_refused(char *out, size_t cap, const ls_id *arrival, const char *type,
                                 const char *shown, const char *why)
{
    char at[LS_ID_TEXTLEN + 1];
    ls_id_format(arrival, at);
    snprintf(out, cap, "payload of a pending signal or child result (inbox entry %s, %s %s): %s",
             at, type, shown, why);
    return out;
}

/* Opens ev, which has no payload: "null", or rc with want in the message. */
static void opens_none(th_store_dir *d, const ls_id *id, const ls_id *arrival, const ls_event *ev,
                       ls_rc want_rc, const char *want)
{
    ls_buf out = LS_BUF_INIT;
    ls_err err = {0};
    ls_rc rc = flow_open_event_with(d->v, id, arrival, 3, ev, &out, &err);
    if (rc != want_rc)
        fail_msg("open: %s (%s), expected %s", ls_rc_name(rc), err.msg, ls_rc_name(want_rc));
    if (rc == LS_OK)
        assert_string_equal((const char *)out.ptr, "null");
    else if (want == NULL || strstr(err.msg, want) == NULL)
        fail_msg("open: \"%s\" lacks \"%s\"", err.msg, want ? want : "");
    ls_buf_free(&out);
}

/* A history event's payload opens with its record and fails, naming the
 * event, once any one field outside the payload differs. */
static void test_integrity_history_binds_every_field(void **state)
{
    th_store_dir *d = *state;
    ls_err err = {0};
    ls_buf sealed = LS_BUF_INIT;
    ls_id id = run_id(0x11), other = run_id(0x12);
    ls_event ev = signal_event();
    th_ok(flow_seal_event_with(d->v, &id, NULL, 3, &ev, PT, strlen(PT), &sealed, &err), &err);
    assert_int_equal(ev.version, LS_EVENT_VERSION);
    assert_ptr_equal(ev.payload, sealed.ptr);
    assert_int_equal(ev.payload_len, sealed.len);
    opens(d, &id, NULL, &ev, LS_OK, NULL);

    /* Through the codec, as the store holds it. */
    ls_buf v = LS_BUF_INIT;
    ls_event back;
    th_ok(ls_event_encode(&ev, &v, &err), &err);
    assert_int_equal(v.ptr[0], 3);
    th_ok(ls_event_decode(v.ptr, v.len, &back, &err), &err);
    assert_int_equal(back.version, 3);
    opens(d, &id, NULL, &back, LS_OK, NULL);

    ls_event x;
    const char *want = "payload of event 7: " NO_AUTH;
    x = ev, x.type = LS_EV_STEP_COMPLETED;
    opens(d, &id, NULL, &x, LS_EAUTH, want);
    x = ev, x.type = LS_EV_CHILD_COMPLETED;
    opens(d, &id, NULL, &x, LS_EAUTH, want);
    x = ev, x.name = "reject", x.name_len = 6;
    opens(d, &id, NULL, &x, LS_EAUTH, want);
    x = ev, x.name_len = 6; /* "approv": a prefix */
    opens(d, &id, NULL, &x, LS_EAUTH, want);
    x = ev, x.flags = LS_EVF_DETACHED;
    opens(d, &id, NULL, &x, LS_EAUTH, want);
    x = ev, x.time_ms++;
    opens(d, &id, NULL, &x, LS_EAUTH, want);
    x = ev, x.due_ms = 1;
    opens(d, &id, NULL, &x, LS_EAUTH, want);
    x = ev, x.attempt = 1;
    opens(d, &id, NULL, &x, LS_EAUTH, want);
    x = ev, x.error = "x", x.error_len = 1;
    opens(d, &id, NULL, &x, LS_EAUTH, want);
    x = ev, x.seq = 8;
    opens(d, &id, NULL, &x, LS_EAUTH, "payload of event 8: " NO_AUTH);
    /* another run, or the same bytes as an inbox entry */
    opens(d, &other, NULL, &ev, LS_EAUTH, want);
    char want_in[512];
    opens(d, &id, &id, &ev, LS_EAUTH,
          entry_refused(want_in, sizeof want_in, &id, "signal_received", "\"approve\"", NO_AUTH));
    /* the version byte cannot downgrade it: as version 2 the record
     * differs, and as version 1, the run id and seq alone do not open it
     * either */
    x = ev, x.version = 2;
    opens(d, &id, NULL, &x, LS_EAUTH, want);
    x = ev, x.version = 1;
    opens(d, &id, NULL, &x, LS_EAUTH, want);
    ls_buf_free(&v);
    ls_buf_free(&sealed);
}

/* An inbox entry's payload is bound to its run, its arrival id (the key
 * it is stored under), its name and type: two pending signals' payloads
 * swapped, or an entry moved to another arrival, do not open. */
static void test_integrity_inbox_binds_place_name_and_type(void **state)
{
    th_store_dir *d = *state;
    ls_err err = {0};
    ls_buf s1 = LS_BUF_INIT, s2 = LS_BUF_INIT;
    ls_id id = run_id(0x21), a1 = run_id(0xa1), a2 = run_id(0xa2);
    ls_event approve = signal_event(), reject = signal_event();
    approve.seq = reject.seq = 1;
    reject.name = "reject";
    reject.name_len = 6;
    th_ok(flow_seal_event_with(d->v, &id, &a1, 3, &approve, PT, strlen(PT), &s1, &err), &err);
    th_ok(flow_seal_event_with(d->v, &id, &a2, 3, &reject, PT, strlen(PT), &s2, &err), &err);
    opens(d, &id, &a1, &approve, LS_OK, NULL);
    opens(d, &id, &a2, &reject, LS_OK, NULL);

    char w1[512], w2[512];
    const char *want = entry_refused(w1, sizeof w1, &a1, "signal_received", "\"approve\"", NO_AUTH);
    ls_event x = approve; /* approve's record with reject's payload */
    x.payload = reject.payload;
    x.payload_len = reject.payload_len;
    opens(d, &id, &a1, &x, LS_EAUTH, want);
    /* moved to the other slot */
    opens(d, &id, &a2, &approve, LS_EAUTH,
          entry_refused(w2, sizeof w2, &a2, "signal_received", "\"approve\"", NO_AUTH));
    x = approve, x.name = "reject", x.name_len = 6;
    opens(d, &id, &a1, &x, LS_EAUTH,
          entry_refused(w2, sizeof w2, &a1, "signal_received", "\"reject\"", NO_AUTH));
    x = approve, x.type = LS_EV_CHILD_COMPLETED;
    opens(d, &id, &a1, &x, LS_EAUTH,
          entry_refused(w2, sizeof w2, &a1, "child_completed", "\"approve\"", NO_AUTH));
    opens(d, &id, NULL, &approve, LS_EAUTH, "payload of event 1: " NO_AUTH);
    ls_buf_free(&s1);
    ls_buf_free(&s2);
}

/* An inbox entry that does not open is named by its arrival id, type and
 * name, the name cut at a character's start within 100 bytes and its
 * control characters, quotes and bytes that are not UTF-8 escaped: a name
 * forged in the store cannot break the log line nor hide what follows. */
static void test_integrity_inbox_entry_named_safely(void **state)
{
    th_store_dir *d = *state;
    ls_err err = {0};
    ls_buf s1 = LS_BUF_INIT;
    ls_id id = run_id(0x23), a1 = run_id(0xa3);
    ls_event ev = signal_event();
    ev.seq = 1;
    th_ok(flow_seal_event_with(d->v, &id, &a1, 3, &ev, PT, strlen(PT), &s1, &err), &err);

    /* 9 bytes of ASCII, then 60 two-byte characters: byte 100 is the
     * second half of one, so the cut keeps 99 bytes */
    char name[200] = "b\"d\n\x1b[31m";
    for (int i = 0; i < 60; i++) strcat(name, "\xc3\xa9");
    char shown[300] = "\"b\\\"d\\x0a\\x1b[31m";
    for (int i = 0; i < 45; i++) strcat(shown, "\xc3\xa9");
    strcat(shown, "\"...");
    char want[512];
    ls_event x = ev;
    x.name = name, x.name_len = strlen(name);
    opens(d, &id, &a1, &x, LS_EAUTH,
          entry_refused(want, sizeof want, &a1, "signal_received", shown, NO_AUTH));

    /* a C1 control, a stray continuation byte, a NUL, DEL; no cut */
    static const char odd[] = "a\xc2\x9b"
                              "b\x80"
                              "c\0d\x7f";
    x.name = odd, x.name_len = sizeof odd - 1;
    opens(d, &id, &a1, &x, LS_EAUTH,
          entry_refused(want, sizeof want, &a1, "signal_received",
                        "\"a\\xc2\\x9bb\\x80c\\x00d\\x7f\"", NO_AUTH));
    ls_buf_free(&s1);
}

/* Seals PT as older lodestoned did: the run id and seq, 24 bytes. */
static void seal_v1(th_store_dir *d, const ls_id *id, uint64_t seq, ls_buf *out)
{
    ls_err err = {0};
    unsigned char ad[LS_ID_BYTES + 8];
    memcpy(ad, id->b, LS_ID_BYTES);
    for (int i = 0; i < 8; i++) ad[LS_ID_BYTES + i] = (unsigned char)(seq >> (56 - 8 * i));
    th_ok(ls_vault_seal(d->v, ad, sizeof ad, PT, strlen(PT), out, &err), &err);
}

/* Version 1 events open with the run id and seq (FLOW_SEQ_INBOX for an
 * inbox entry) they were sealed with, whatever their other fields hold
 * (older records bound nothing else); marked version 2, they do not. */
static void test_integrity_version1_opens_as_before(void **state)
{
    th_store_dir *d = *state;
    ls_err err = {0};
    ls_buf h = LS_BUF_INIT, in = LS_BUF_INIT, v = LS_BUF_INIT;
    ls_id id = run_id(0x31), arrival = run_id(0xb1);
    ls_event ev = signal_event(), back;
    seal_v1(d, &id, ev.seq, &h);
    ev.version = 1;
    ev.payload = h.ptr;
    ev.payload_len = h.len;
    th_ok(ls_event_encode(&ev, &v, &err), &err);
    assert_int_equal(v.ptr[0], 1);
    th_ok(ls_event_decode(v.ptr, v.len, &back, &err), &err);
    assert_int_equal(back.version, 1);
    opens(d, &id, NULL, &back, LS_OK, NULL);
    back.name = "reject", back.name_len = 6; /* unbound in version 1 */
    opens(d, &id, NULL, &back, LS_OK, NULL);
    back.seq = 8;
    opens(d, &id, NULL, &back, LS_EAUTH, "payload of event 8: " NO_AUTH);
    back = ev, back.version = 2;
    opens(d, &id, NULL, &back, LS_EAUTH, "payload of event 7: " NO_AUTH);

    ls_event ie = signal_event();
    seal_v1(d, &id, FLOW_SEQ_INBOX, &in);
    ie.version = 1, ie.seq = 1, ie.payload = in.ptr, ie.payload_len = in.len;
    opens(d, &id, &arrival, &ie, LS_OK, NULL);
    opens(d, &id, NULL, &ie, LS_EAUTH, "payload of event 1: " NO_AUTH);
    ie.version = 2;
    char want_in[512];
    opens(d, &id, &arrival, &ie, LS_EAUTH,
          entry_refused(want_in, sizeof want_in, &arrival, "signal_received", "\"approve\"",
                        NO_AUTH));
    ls_buf_free(&h);
    ls_buf_free(&in);
    ls_buf_free(&v);
}

/* The custom status opens in its run's slot only; an event payload of
 * either version does not open as one. */
static void test_integrity_custom_status_slot(void **state)
{
    th_store_dir *d = *state;
    ls_err err = {0};
    ls_buf s = LS_BUF_INIT, out = LS_BUF_INIT;
    ls_id id = run_id(0x41), other = run_id(0x42);
    th_ok(flow_seal_status_with(d->v, &id, PT, strlen(PT), &s, &err), &err);
    th_ok(flow_open_status_with(d->v, &id, s.ptr, s.len, &out, &err), &err);
    assert_memory_equal(out.ptr, PT, strlen(PT));
    assert_int_equal(flow_open_status_with(d->v, &other, s.ptr, s.len, &out, &err), LS_EAUTH);
    ls_event ev = signal_event();
    th_ok(flow_seal_event_with(d->v, &id, NULL, 3, &ev, PT, strlen(PT), &s, &err), &err);
    assert_int_equal(flow_open_status_with(d->v, &id, s.ptr, s.len, &out, &err), LS_EAUTH);
    seal_v1(d, &id, 7, &s);
    assert_int_equal(flow_open_status_with(d->v, &id, s.ptr, s.len, &out, &err), LS_EAUTH);
    /* Nor does the custom status open as the payload of a version 1 event
     * that claims the status's slot as its seq (the slot form has no
     * other separation): a store writer would have the history and result
     * API show the status as an event's payload or the run's output. */
    th_ok(flow_seal_status_with(d->v, &id, PT, strlen(PT), &s, &err), &err);
    ev = signal_event();
    ev.type = LS_EV_WORKFLOW_COMPLETED;
    ev.version = 1, ev.seq = FLOW_SEQ_CUSTOM, ev.payload = s.ptr, ev.payload_len = s.len;
    opens(d, &id, NULL, &ev, LS_EAUTH, "payload of event 18446744073709551615: ");
    ls_buf_free(&s);
    ls_buf_free(&out);
}

/* A signal or a child's result always carries a sealed payload ("null"
 * too): one without, in history or the inbox, of either version, is
 * refused rather than opened as null (a forged signal); other events
 * without a payload read as null. */
static void test_integrity_signal_without_payload_refused(void **state)
{
    th_store_dir *d = *state;
    ls_id id = run_id(0x61), arrival = run_id(0xd1);
    for (unsigned version = 1; version <= 2; version++) {
        ls_event ev = signal_event();
        ev.version = version;
        opens_none(d, &id, NULL, &ev, LS_EAUTH,
                   "payload of event 7: a signal_received without its sealed payload");
        ev.seq = 1;
        char want_in[512];
        opens_none(d, &id, &arrival, &ev, LS_EAUTH,
                   entry_refused(want_in, sizeof want_in, &arrival, "signal_received",
                                 "\"approve\"", "a signal_received without its sealed payload"));
        ev.type = LS_EV_CHILD_COMPLETED;
        opens_none(d, &id, &arrival, &ev, LS_EAUTH, "a child_completed without its sealed payload");
        ev.type = LS_EV_STEP_STARTED;
        opens_none(d, &id, NULL, &ev, LS_OK, NULL);
    }
}

/* Every other event that holds a payload (a step's result, a side effect,
 * the input, the output, a child's start) is sealed since version 2, "null"
 * too: a version 2 one without is forged (a step that never ran, read as
 * completed with null) and refused; version 1, whose writers left a null
 * out, still reads as null. */
static void test_integrity_payload_events_without_payload(void **state)
{
    th_store_dir *d = *state;
    ls_id id = run_id(0x62);
    static const ls_event_type holds[] = {LS_EV_WORKFLOW_STARTED, LS_EV_STEP_COMPLETED,
                                          LS_EV_SIDE_EFFECT, LS_EV_WORKFLOW_COMPLETED,
                                          LS_EV_CHILD_STARTED};
    for (size_t i = 0; i < sizeof holds / sizeof holds[0]; i++) {
        ls_event ev = signal_event();
        ev.type = holds[i];
        ev.version = 2;
        opens_none(d, &id, NULL, &ev, LS_EAUTH, "without its sealed payload");
        ev.version = 1;
        opens_none(d, &id, NULL, &ev, LS_OK, NULL);
    }
    ls_event ev = signal_event(); /* a failure's traceback is optional */
    ev.type = LS_EV_WORKFLOW_FAILED;
    ev.version = 2;
    opens_none(d, &id, NULL, &ev, LS_OK, NULL);
}

/* ---- version 3: every event sealed ---- */

/* A retryable StepFailed with every field set. */
static ls_event step_failed_event(void)
{
    return (ls_event){.type = LS_EV_STEP_FAILED,
                      .flags = 0,
                      .seq = 4,
                      .time_ms = 1700000000000,
                      .due_ms = 1700000001000,
                      .attempt = 2,
                      .name = "charge",
                      .name_len = 6,
                      .error = "card declined",
                      .error_len = 13};
}

/* An event of a kind that holds no payload is sealed all the same (a MAC
 * alone, over the record) and opens as null; any field changed, the seal
 * stripped (the event forged by a writer without the key), or the seal
 * kept and the version byte lowered, it is refused: a StepFailed made
 * fatal, or given another attempt or retry time, a TimerFired without a
 * seal. */
static void test_integrity_v3_binds_events_without_payload(void **state)
{
    th_store_dir *d = *state;
    ls_err err = {0};
    ls_buf sealed = LS_BUF_INIT, v = LS_BUF_INIT;
    ls_id id = run_id(0x71);
    ls_event ev = step_failed_event(), back, x;
    th_ok(flow_seal_event_with(d->v, &id, NULL, 3, &ev, NULL, 0, &sealed, &err), &err);
    assert_int_equal(ev.version, 3);
    assert_int_equal(ev.payload_len, ls_vault_overhead()); /* empty plaintext: the MAC */
    th_ok(ls_event_encode(&ev, &v, &err), &err);
    th_ok(ls_event_decode(v.ptr, v.len, &back, &err), &err);
    opens_none(d, &id, NULL, &back, LS_OK, NULL);

    const char *want = "payload of event 4: " NO_AUTH;
    x = back, x.flags = LS_EVF_FATAL;
    opens_none(d, &id, NULL, &x, LS_EAUTH, want);
    x = back, x.flags = LS_EVF_PAUSED;
    opens_none(d, &id, NULL, &x, LS_EAUTH, want);
    x = back, x.attempt = 3;
    opens_none(d, &id, NULL, &x, LS_EAUTH, want);
    x = back, x.due_ms = 1;
    opens_none(d, &id, NULL, &x, LS_EAUTH, want);
    x = back, x.error = "card declined!", x.error_len = 14;
    opens_none(d, &id, NULL, &x, LS_EAUTH, want);
    x = back, x.type = LS_EV_CHILD_FAILED;
    opens_none(d, &id, NULL, &x, LS_EAUTH, want);
    x = back, x.version = 2;
    opens_none(d, &id, NULL, &x, LS_EAUTH, want);
    x = back, x.payload = NULL, x.payload_len = 0;
    opens_none(d, &id, NULL, &x, LS_EAUTH,
               "payload of event 4: a step_failed without its sealed payload");
    /* every kind, in history and the inbox: one without its seal is
     * refused */
    for (int t = 1; t <= LS_EV_LAST; t++) {
        x = back, x.type = (ls_event_type)t, x.payload = NULL, x.payload_len = 0;
        opens_none(d, &id, NULL, &x, LS_EAUTH, "without its sealed payload");
        opens_none(d, &id, &id, &x, LS_EAUTH, "without its sealed payload");
    }
    ls_buf_free(&sealed);
    ls_buf_free(&v);
}

/* A version 3 event of a kind that holds no payload whose seal holds one
 * (sealed with the right associated data, by someone with the key but
 * not by lodestoned) is refused: only the empty plaintext is its. A
 * run's failure may hold its traceback. */
static void test_integrity_v3_no_payload_kinds_hold_nothing(void **state)
{
    th_store_dir *d = *state;
    ls_err err = {0};
    ls_buf sealed = LS_BUF_INIT;
    ls_id id = run_id(0x72), arrival = run_id(0xe2);
    ls_event ev = signal_event();
    ev.type = LS_EV_TIMER_FIRED;
    th_ok(flow_seal_event_with(d->v, &id, NULL, 3, &ev, PT, strlen(PT), &sealed, &err), &err);
    opens_none(d, &id, NULL, &ev, LS_EAUTH,
               "payload of event 7: a timer_fired whose sealed payload is not empty");
    ev = signal_event(), ev.type = LS_EV_CANCEL_REQUESTED, ev.seq = 1;
    th_ok(flow_seal_event_with(d->v, &id, &arrival, 3, &ev, "{}", 2, &sealed, &err), &err);
    char want[512], at[LS_ID_TEXTLEN + 1];
    ls_id_format(&arrival, at);
    snprintf(want, sizeof want,
             "seal of a pending request (inbox entry %s, cancel_requested \"approve\"): a "
             "cancel_requested whose sealed payload is not empty",
             at);
    opens_none(d, &id, &arrival, &ev, LS_EAUTH, want);
    ev = signal_event(), ev.type = LS_EV_WORKFLOW_FAILED;
    th_ok(flow_seal_event_with(d->v, &id, NULL, 3, &ev, PT, strlen(PT), &sealed, &err), &err);
    opens(d, &id, NULL, &ev, LS_OK, NULL);
    ls_buf_free(&sealed);
}

/* Checks event ev under key seq with h: want_rc, want in the message. */
static void hist_next(flow_hist *h, uint64_t seq, unsigned version, ls_rc want_rc, const char *want)
{
    ls_err err = {0};
    ls_event ev = signal_event();
    ev.seq = seq, ev.version = version;
    ls_rc rc = flow_hist_check(h, seq, &ev, &err);
    if (rc != want_rc)
        fail_msg("seq %llu: %s (%s), expected %s", (unsigned long long)seq, ls_rc_name(rc), err.msg,
                 ls_rc_name(want_rc));
    if (want && strcmp(err.msg, want) != 0) fail_msg("\"%s\", expected \"%s\"", err.msg, want);
}

/* In a run started at version 3 an event or inbox entry of an older
 * version (which carries no seal of its fields) is refused: it was put
 * there without the key. A run started at version 2 or 1 (an older
 * store) reads its older events as before, and those this build appends
 * are of version 3: after the first of them, an older event or entry is
 * refused too (the old code took it). */
static void test_integrity_no_downgrade_in_a_v3_run(void **state)
{
    (void)state;
    flow_hist h = FLOW_HIST_INIT;
    hist_next(&h, 1, 3, LS_OK, NULL);
    hist_next(&h, 2, 3, LS_OK, NULL);
    hist_next(&h, 3, 1, LS_EAUTH, "event 3: a version 1 event in a run started at version 3");
    hist_next(&h, 3, 2, LS_EAUTH, "event 3: a version 2 event in a run started at version 3");
    ls_id arrival = run_id(0xe3);
    ls_event in = signal_event();
    ls_err err = {0};
    in.seq = 1, in.version = 2;
    assert_int_equal(flow_hist_check_entry(&h, &arrival, &in, &err), LS_EAUTH);
    char want[512];
    assert_string_equal(err.msg,
                        entry_refused(want, sizeof want, &arrival, "signal_received", "\"approve\"",
                                      "a version 2 event in a run started at version 3"));
    in.version = 3;
    th_ok(flow_hist_check_entry(&h, &arrival, &in, &err), &err);

    /* A run started before: versions 1 and 2 in any order until one of
     * version 3, then never lower (events nor entries). */
    for (unsigned started = 1; started <= 2; started++) {
        flow_hist old = FLOW_HIST_INIT;
        hist_next(&old, 1, started, LS_OK, NULL);
        hist_next(&old, 2, 1, LS_OK, NULL);
        hist_next(&old, 3, 2, LS_OK, NULL);
        in.version = 1;
        th_ok(flow_hist_check_entry(&old, &arrival, &in, &err), &err);
        hist_next(&old, 4, 3, LS_OK, NULL);
        hist_next(&old, 5, 2, LS_EAUTH, "event 5: a version 2 event after event 4 of version 3");
        hist_next(&old, 5, 1, LS_EAUTH, "event 5: a version 1 event after event 4 of version 3");
        hist_next(&old, 5, 3, LS_OK, NULL);
        assert_int_equal(flow_hist_check_entry(&old, &arrival, &in, &err), LS_EAUTH);
        assert_string_equal(err.msg, entry_refused(want, sizeof want, &arrival, "signal_received",
                                                   "\"approve\"",
                                                   "a version 1 event after event 4 of version 3"));
        in.version = 3;
        th_ok(flow_hist_check_entry(&old, &arrival, &in, &err), &err);
    }
}

/* A run's events are dense from seq 1: one missing (deleted from the
 * middle) is refused, named; so is a first event other than 1, and a
 * record under another seq's key. */
static void test_integrity_history_gap_refused(void **state)
{
    (void)state;
    flow_hist h = FLOW_HIST_INIT;
    hist_next(&h, 1, 3, LS_OK, NULL);
    hist_next(&h, 2, 3, LS_OK, NULL);
    hist_next(&h, 4, 3, LS_ECORRUPT, "history: event 3 is missing (event 4 follows 2)");
    flow_hist first = FLOW_HIST_INIT;
    hist_next(&first, 2, 3, LS_ECORRUPT, "history: its first event is event 2, not 1");
    flow_hist moved = FLOW_HIST_INIT;
    ls_event ev = signal_event();
    ls_err err = {0};
    ev.seq = 5, ev.version = 1;
    assert_int_equal(flow_hist_check(&moved, 1, &ev, &err), LS_ECORRUPT);
    assert_string_equal(err.msg, "event 1: the record holds seq 5");
}

/* A seal and an open under failing allocations return LS_ENOMEM, and
 * leave nothing allocated (ASan, valgrind). */
static th_store_dir *alloc_d;

static ls_rc seal_open_under_failure(void *ud)
{
    (void)ud;
    ls_buf s = LS_BUF_INIT, out = LS_BUF_INIT;
    ls_err err = {0};
    ls_id id = run_id(0x51), arrival = run_id(0xc1);
    ls_event ev = signal_event();
    ev.error = "a long enough error to take the associated data past the stack";
    ev.error_len = strlen(ev.error);
    ls_rc rc = flow_seal_event_with(alloc_d->v, &id, &arrival, 3, &ev, PT, strlen(PT), &s, &err);
    if (rc == LS_OK) rc = flow_open_event_with(alloc_d->v, &id, &arrival, 3, &ev, &out, &err);
    if (rc == LS_OK && (out.len != strlen(PT) || memcmp(out.ptr, PT, out.len) != 0))
        rc = LS_ECORRUPT;
    ls_buf_free(&s);
    ls_buf_free(&out);
    return rc;
}

static void test_integrity_alloc_failures(void **state)
{
    alloc_d = *state;
    assert_true(th_each_alloc_failure(seal_open_under_failure, NULL) >= 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_integrity_history_binds_every_field),
        cmocka_unit_test(test_integrity_inbox_binds_place_name_and_type),
        cmocka_unit_test(test_integrity_inbox_entry_named_safely),
        cmocka_unit_test(test_integrity_version1_opens_as_before),
        cmocka_unit_test(test_integrity_custom_status_slot),
        cmocka_unit_test(test_integrity_signal_without_payload_refused),
        cmocka_unit_test(test_integrity_payload_events_without_payload),
        cmocka_unit_test(test_integrity_v3_binds_events_without_payload),
        cmocka_unit_test(test_integrity_v3_no_payload_kinds_hold_nothing),
        cmocka_unit_test(test_integrity_no_downgrade_in_a_v3_run),
        cmocka_unit_test(test_integrity_history_gap_refused),
        cmocka_unit_test(test_integrity_alloc_failures),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
