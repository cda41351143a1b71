/* SPDX-License-Identifier: MIT
 * Surviving a shared memory file cut short under its mapping (internal to
 * ls_policy: the rate-limit and metrics tables). truncate(1) or `: > file`
 * on a mapped file turns the next access beyond its new end into SIGBUS,
 * which would end the process (a lighttpd worker). An access run under the
 * guard jumps back out instead: a SIGBUS handler, put in front of the
 * process's own by ls_shm_guard_install, siglongjmps to the access's
 * sigjmp_buf. A SIGBUS outside a guarded access goes on to the handler the
 * process had (or ends it, as it would have). The guard is per thread.
 *
 *     sigjmp_buf jb;
 *     if (sigsetjmp(jb, 0) != 0) {      (the file was cut short)
 *         ls_shm_guard_end();
 *         ... give back what the access held, mark the table damaged ...
 *     }
 *     ls_shm_guard_begin(&jb);
 *     ... reads and writes of the mapping, no allocation, no lock but
 *         one the fault path gives back ...
 *     ls_shm_guard_end();
 *
 * Locals written between sigsetjmp and the fault and read after it must be
 * volatile.
 */
#ifndef LS_POLICY_SHM_GUARD_H
#define LS_POLICY_SHM_GUARD_H

#include <setjmp.h>
#include <stdatomic.h>
#include <stddef.h>

/* Where the calling thread's guarded access jumps back to; NULL outside
 * one. initial-exec: the handler must not make TLS allocate. */
extern __thread sigjmp_buf *ls_shm_guard_jb __attribute__((tls_model("initial-exec")));

/* Puts the guard's handler in front of the process's SIGBUS handler unless
 * it is there already (again after the host replaced it, as lighttpd does
 * on a restart). Call it whenever a table is opened. Keeps the code mapped
 * until the process ends, so that the handler outlives a dlclose. */
void ls_shm_guard_install(void);

/* Starts and ends a guarded access of the calling thread. The fences keep
 * the compiler from moving accesses of the mapping out of the guard. */
static inline void ls_shm_guard_begin(sigjmp_buf *jb)
{
    ls_shm_guard_jb = jb;
    atomic_signal_fence(memory_order_seq_cst);
}

static inline void ls_shm_guard_end(void)
{
    atomic_signal_fence(memory_order_seq_cst);
    ls_shm_guard_jb = NULL;
}

#endif
