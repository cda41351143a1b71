/* SPDX-License-Identifier: MIT
 * The LuaJIT workflow runner for lodestoned: loads the workflow files into one
 * Lua state per worker thread (JIT off, so the count hook that enforces
 * deadlines always fires) and runs activations through
 * lodestone.workflow's driver. No Lua types here.
 */
#ifndef LLS_FLOW_H
#define LLS_FLOW_H

#include "lodestone/ls_buf.h"
#include "lodestone/ls_err.h"
#include "lodestone/ls_flow.h"

typedef struct lls_runner lls_runner;

/* Loads every *.lua file of dir (in name order) in a probe state to learn
 * the workflow types and the files that fail to load (those are reported,
 * the others still run). lua_dir holds lodestone's Lua files. Caller frees
 * with lls_runner_free. Fails only when dir cannot be read. */
ls_rc lls_runner_new(lls_runner **out, const char *dir, const char *lua_dir, ls_err *err);
void lls_runner_free(lls_runner *r);

/* The runner interface for ls_flow_opts (ud: the lls_runner). */
const ls_flow_runner *lls_runner_ops(void);

/* Loads the files again; workers pick the new generation up before their
 * next activation. */
ls_rc lls_runner_reload(lls_runner *r, ls_err *err);

/* {"types":[{"name","file"}],"errors":[{"file","error"}]} into out. */
ls_rc lls_runner_describe(lls_runner *r, ls_buf *out, ls_err *err);

/* The schedules the loaded files declare (workflow.define{schedule=...}),
 * as a JSON array of definitions for ls_flow_schedule_sync_files. */
ls_rc lls_runner_schedules(lls_runner *r, ls_buf *out, ls_err *err);

/* Number of files that failed to load in the current generation. */
size_t lls_runner_error_count(lls_runner *r);

#endif
