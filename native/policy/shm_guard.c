/* SPDX-License-Identifier: MIT
 * The SIGBUS guard of shared memory tables (see shm_guard.h): a chaining
 * handler that jumps back out of a guarded access and leaves every other
 * SIGBUS to the handler the process had. */
#include "ls_config.h"

#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>

#include "shm_guard.h"

__thread sigjmp_buf *ls_shm_guard_jb __attribute__((tls_model("initial-exec")));

static pthread_mutex_t bus_mu = PTHREAD_MUTEX_INITIALIZER;
static struct sigaction bus_prev; /* the handler ours stands in front of */

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
    sigjmp_buf *g = ls_shm_guard_jb;
    /* Only a fault (si_code > 0) is the table's: a SIGBUS someone sent
     * (kill -BUS) goes to the process as before. */
    if (g != NULL && si->si_code > 0) siglongjmp(*g, 1); /* (SA_NODEFER: not left blocked) */
    if (bus_prev.sa_flags & SA_SIGINFO) {
        bus_prev.sa_sigaction(sig, si, uc);
    } else if (bus_prev.sa_handler != SIG_DFL && bus_prev.sa_handler != SIG_IGN) {
        bus_prev.sa_handler(sig);
    } else if (bus_prev.sa_handler == SIG_DFL || si->si_code > 0) {
        /* A fault runs again on return and ends the process as it would
         * have; a SIGBUS someone sent is sent again. */
        signal(SIGBUS, SIG_DFL);
        if (si->si_code <= 0) raise(SIGBUS);
    }
}

/* Keeps the shared object holding this code mapped until the process
 * ends: the handler must outlive a dlclose of the Lua module. */
static void pin_self(void)
{
    Dl_info info;
    if (dladdr((const void *)on_sigbus, &info) == 0 || info.dli_fname == NULL) return;
    void *h = dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
    (void)h; /* never closed: the point is the reference */
}

void ls_shm_guard_install(void)
{
    static int pinned;
    pthread_mutex_lock(&bus_mu);
    struct sigaction cur;
    if (sigaction(SIGBUS, NULL, &cur) == 0 &&
        !((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == on_sigbus)) {
        if (!pinned) pin_self();
        pinned = 1;
        bus_prev = cur; /* (ours is not installed: no handler reads it now) */
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_sigbus;
        sa.sa_flags = SA_SIGINFO | SA_NODEFER | (cur.sa_flags & SA_ONSTACK);
        sigemptyset(&sa.sa_mask);
        sigaction(SIGBUS, &sa, NULL);
    }
    pthread_mutex_unlock(&bus_mu);
}
