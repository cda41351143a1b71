/* SPDX-License-Identifier: MIT
 * Where the CLI finds itself and Lodestone's shared files, and the option
 * parsing its C commands share (see cli.h).
 */
#include "ls_config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "lls_state.h"

int cli_fmt(char *buf, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(buf, n, fmt, ap);
    va_end(ap);
    return len < 0 || (size_t)len >= n ? -1 : 0;
}

int cli_exe_dir(char *buf, size_t n)
{
    ssize_t len = readlink("/proc/self/exe", buf, n - 1);
    if (len <= 0 || (size_t)len >= n - 1) {
        fprintf(stderr, "lodestone: cannot find this program's path: %s\n",
                len < 0 ? strerror(errno) : "too long");
        return -1;
    }
    buf[len] = '\0';
    char *slash = strrchr(buf, '/');
    if (slash == NULL) return -1;
    *slash = '\0';
    return 0;
}

int cli_share_dir(char *buf, size_t n)
{
    const char *env = getenv("LODESTONE_SHARE_DIR");
    if (env != NULL && *env != '\0') return cli_fmt(buf, n, "%s", env);
    if (cli_fmt(buf, n, "%s", lls_lua_dir()) != 0) return -1;
    size_t len = strlen(buf);
    while (len > 1 && buf[len - 1] == '/') buf[--len] = '\0';
    char *slash = strrchr(buf, '/');
    if (slash == NULL) return cli_fmt(buf, n, ".");
    if (slash == buf)
        slash[1] = '\0';
    else
        *slash = '\0';
    return 0;
}

/* 1 when arg is "--help", "-h" or one of names as "--NAME" or "--NAME=...":
 * after an option that wants a value, a forgotten value. */
static int names_option(const char *arg, const char *const *names)
{
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) return 1;
    if (strncmp(arg, "--", 2) != 0) return 0;
    size_t len = strcspn(arg + 2, "=");
    for (int k = 0; names[k] != NULL; k++)
        if (strlen(names[k]) == len && strncmp(arg + 2, names[k], len) == 0) return 1;
    return 0;
}

int cli_option(int argc, char **argv, int *i, const char *cmd, const char *const *names,
               const char **value)
{
    const char *arg = argv[*i];
    if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
        fprintf(stderr, "lodestone %s: unexpected argument \"%s\" (see lodestone %s --help)\n", cmd,
                arg, cmd);
        return -1;
    }
    const char *eq = strchr(arg, '=');
    size_t len = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
    for (int k = 0; names[k] != NULL; k++) {
        if (strlen(names[k]) != len - 2 || strncmp(arg + 2, names[k], len - 2) != 0) continue;
        if (eq != NULL) {
            *value = eq + 1;
        } else if (*i + 1 < argc && names_option(argv[*i + 1], names)) {
            fprintf(stderr,
                    "lodestone %s: %s needs a value, got the option %s (write %s=%s if that is "
                    "the value)\n",
                    cmd, arg, argv[*i + 1], arg, argv[*i + 1]);
            return -1;
        } else if (*i + 1 < argc) {
            *value = argv[++*i];
        } else {
            fprintf(stderr, "lodestone %s: %s needs a value (see lodestone %s --help)\n", cmd, arg,
                    cmd);
            return -1;
        }
        return k;
    }
    fprintf(stderr, "lodestone %s: unknown option %.*s (see lodestone %s --help)\n", cmd, (int)len,
            arg, cmd);
    return -1;
}
