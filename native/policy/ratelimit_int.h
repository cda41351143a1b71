/* SPDX-License-Identifier: MIT
 * Test hooks of the rate limiter (internal; not exported). */
#ifndef LS_RATELIMIT_INT_H
#define LS_RATELIMIT_INT_H

#include "lodestone/ls_ratelimit.h"

/* Takes the stripe lock of key and never releases it: a test forks a child
 * that calls this and is then killed, to check that a dead lock holder does
 * not block the other processes. */
ls_rc ls_rl_test_hold_lock(ls_rl_t *rl, const void *key, size_t klen, ls_err *err);

/* When set, a take calls it with ls_rl_test_inside_arg while it holds its
 * stripe lock: a test cuts the file there, as a truncate(1) running at
 * that moment would. NULL otherwise. */
extern void (*ls_rl_test_inside_lock)(void *arg);
extern void *ls_rl_test_inside_arg;

#endif
