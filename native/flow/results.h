/* SPDX-License-Identifier: MIT
 * Recent results (internal to native/flow/): the answer ls_flow_result
 * gives for a run that has just completed, kept in memory for a while so
 * that the long polls waiting for that end are answered without reading
 * the store, opening the sealed output and encoding it again. The store
 * stays the truth: a miss reads it as before.
 *
 * Bounded by entries and by bytes of text; the oldest entry goes first. A
 * text is wiped when it leaves (the outputs are sealed at rest; their
 * plaintext does not linger in freed memory).
 *
 * Costs: put, get and drop are O(1) expected (a hash of the run id); clear
 * is O(entries). About 40 bytes per entry besides its text.
 *
 * Thread-safety: every call takes the cache's own lock.
 */
#ifndef LS_FLOW_RESULTS_H
#define LS_FLOW_RESULTS_H

#include <stddef.h>

#include "lodestone/ls_buf.h"
#include "lodestone/ls_err.h"
#include "lodestone/ls_id.h"

typedef struct flow_results flow_results;

/* A cache of at most max_entries texts (> 0) and max_bytes bytes of text
 * in all. LS_ENOMEM (*out NULL) on allocation failure. */
ls_rc flow_results_new(flow_results **out, size_t max_entries, size_t max_bytes, ls_err *err);

/* Frees c (may be NULL) and wipes every text in it. */
void flow_results_free(flow_results *c);

/* Keeps text (len bytes, from ls_malloc) as the result of run id, replacing
 * any entry of id, and takes it over whatever happens: a text larger than
 * max_bytes is wiped and freed at once (and id has no entry then). Older
 * entries go to make room. */
void flow_results_put(flow_results *c, const ls_id *id, char *text, size_t len);

/* Copies the result of id into out (replacing what it held): 1 when there
 * is one, 0 when not (out untouched), -1 when out could not grow (err
 * set). */
int flow_results_get(flow_results *c, const ls_id *id, ls_buf *out, ls_err *err);

/* Forgets every entry (runs were deleted from the store). */
void flow_results_clear(flow_results *c);

/* Entries held, and their bytes of text. */
size_t flow_results_count(flow_results *c);
size_t flow_results_bytes(flow_results *c);

#endif
