/* SPDX-License-Identifier: MIT
 * `lodestone up`, shared between its files: the configuration it
 * generates (up_conf.c) and the two children it supervises (up_proc.c).
 * Private to the CLI.
 */
#ifndef LS_CLI_UP_H
#define LS_CLI_UP_H

#include <stddef.h>
#include <sys/types.h>

#define UP_PATH 4096
#define UP_TAIL 12 /* last log lines kept per child, shown when it dies */

/* ---- configuration (up_conf.c) ---- */

/* A @NAME@ placeholder and its value. */
typedef struct {
    const char *name;
    const char *value;
} up_var;

/* Renders template file `in` into `out` (written to a temporary file and
 * renamed), replacing each @NAME@ by its value in vars[0..nvars-1]. An
 * @UPPER_CASE@ word that is not in vars is an error (a typo in a
 * template); other '@' characters are copied. Returns 0, or -1 after
 * printing why on stderr. */
int up_render(const char *in, const char *out, const up_var *vars, size_t nvars);

/* Whether a value can go between double quotes in lighttpd's
 * configuration and in a Lua string: no '"', '\\' or control characters. */
int up_quotable(const char *s);

/* Returns 0 when 127.0.0.1:port can be bound now; else prints a clear
 * error naming the port and returns -1. */
int up_port_free(int port);

/* Whether 127.0.0.1:port (port > 0) or the unix socket at path accepts a
 * connection now. */
int up_can_connect(int port, const char *path);

/* ---- children (up_proc.c) ---- */

typedef struct {
    const char *name; /* "lighttpd", "lodestoned": the log prefix */
    pid_t pid;        /* 0 before start and once reaped */
    int out;          /* read end of its stdout and stderr, or -1 */
    int log;          /* its log file (appended to), or -1 */
    int status;       /* wait status once reaped */
    int reaped;
    int stopping; /* we sent SIGTERM */
    char part[2048];
    size_t plen;
    char tail[UP_TAIL][256];
    int ntail;
} up_child;

/* Runs argv (argv[0] a path) once and waits for it, its output collected
 * into out (NUL-terminated, truncated to n). Returns its exit status, or
 * -1 when it could not run. */
int up_run_capture(char *const argv[], char *out, size_t n);

/* Blocks SIGINT, SIGTERM, SIGHUP and SIGCHLD and returns a signalfd for
 * them, or -1. Children get the normal mask back before exec. */
int up_signals(void);

/* Starts argv (argv[0] a path) as c, in its own process group, with
 * stdout and stderr into a pipe and SIGTERM when `up` dies; logs go to
 * log_path too. Returns 0 or -1 (printed). */
int up_start(up_child *c, const char *name, char *const argv[], const char *log_path);

/* What ended an up_wait. */
enum { UP_READY, UP_SIGNAL, UP_DIED, UP_TIMEOUT };

/* Copies the children's output to stdout (prefixed) and their logs while
 * waiting until ready(arg) returns true (checked every 100 ms; NULL: never),
 * a stop signal arrives on sigfd, a child exits, or timeout_ms passes
 * (< 0: no limit). Returns one of the UP_ values; *died names the child
 * that exited. */
int up_wait(up_child *kids, int nkids, int sigfd, int (*ready)(void *), void *arg, int timeout_ms,
            up_child **died);

/* Says why c exited and shows its last log lines, on stderr. */
void up_report_death(const up_child *c);

/* Stops the children still running, in order: SIGTERM, up to
 * grace_ms for each, then SIGKILL. Returns 0 when each exited on its own
 * with status 0 or by the SIGTERM, else 1. */
int up_stop_all(up_child *kids, int nkids, int sigfd, int grace_ms);

#endif
