/* SPDX-License-Identifier: MIT
 * `lodestone up`: the product on 127.0.0.1 in one command. Starts
 * lodestoned on DATA, then Debian's lighttpd with a configuration generated
 * from templates in conf/ into DATA/lighttpd/, prints what is where and three
 * commands to try, follows both logs, and stops both on Ctrl-C or SIGTERM.
 */
#include "ls_config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "up.h"

static const char usage[] =
    "usage: lodestone up [--port 8080] [--data DIR] [--workflows DIR] [--policies DIR]\n"
    "\n"
    "Runs Lodestone locally: lodestoned (data in DIR) and Debian's lighttpd on\n"
    "127.0.0.1:PORT with a configuration generated from conf/lighttpd.conf.in\n"
    "and conf/demo-gate.lua.in into DIR/lighttpd/. Every request passes the policy\n"
    "gate; /v1/ goes to lodestoned's API (admin token required), /ui/ is the web UI.\n"
    "Prints what is where and three commands to try, follows both logs (lines\n"
    "prefixed [lighttpd] and [lodestoned], also in DIR/logs/), and stops both on\n"
    "Ctrl-C or SIGTERM (exit 0). If either stops on its own, says why and stops\n"
    "the other (exit 1).\n"
    "\n"
    "  --port N          lighttpd's port on 127.0.0.1 (default 8080)\n"
    "  --data DIR        lodestoned's data, the generated configuration, logs\n"
    "                    (default ./var/lodestone)\n"
    "  --workflows DIR   workflow files (default ./workflows)\n"
    "  --policies DIR    policy files the gate loads (default: the examples,\n"
    "                    SHARE/policies); edits apply within a second\n"
    "\n"
    "SHARE is the directory above the Lua files (the source tree in a build);\n"
    "$LODESTONE_SHARE_DIR overrides it. lighttpd is /usr/sbin/lighttpd, or\n"
    "$LODESTONE_LIGHTTPD.\n";

typedef struct {
    int port;
    char port_s[8];
    const char *data_arg, *wf_arg, *pol_arg;
    char share[UP_PATH], bindir[UP_PATH], data[UP_PATH], workflows[UP_PATH], policies[UP_PATH];
    char lua[UP_PATH], cpath[UP_PATH], ui[UP_PATH], conf_dir[UP_PATH];
    char lt_dir[UP_PATH], www[UP_PATH], rl[UP_PATH], logs[UP_PATH];
    char conf[UP_PATH], gate[UP_PATH], socket[UP_PATH];
    char lodestoned[UP_PATH], lodestone[UP_PATH];
    const char *lighttpd;
} up_opts;

__attribute__((format(printf, 1, 2))) static int die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("lodestone up: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return -1;
}

/* ---- options and paths ---- */

static int parse(int argc, char **argv, up_opts *o)
{
    o->port = 8080;
    o->data_arg = "./var/lodestone";
    o->wf_arg = "./workflows";
    static const char *const names[] = {"port", "data", "workflows", "policies", NULL};
    for (int i = 2; i < argc; i++) {
        const char *v;
        int k = cli_option(argc, argv, &i, "up", names, &v);
        if (k < 0) return -1;
        if (k == 0) {
            char *end;
            long p = strtol(v, &end, 10);
            if (*v == '\0' || *end != '\0' || p < 1 || p > 65535)
                return die("--port: expected 1 to 65535, got \"%s\"", v);
            o->port = (int)p;
        } else if (*v == '\0') {
            return die("--%s: empty; a directory is needed", names[k]);
        } else if (k == 1) {
            o->data_arg = v;
        } else if (k == 2) {
            o->wf_arg = v;
        } else {
            o->pol_arg = v;
        }
    }
    snprintf(o->port_s, sizeof o->port_s, "%d", o->port);
    return 0;
}

static int mkdirs(const char *path)
{
    char tmp[UP_PATH];
    if (cli_fmt(tmp, sizeof tmp, "%s", path) != 0) return -1;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    return mkdir(tmp, 0750) != 0 && errno != EEXIST ? -1 : 0;
}

/* The absolute path of an existing directory, into out; opt names it in
 * errors. */
static int existing_dir(const char *opt, const char *arg, char *out)
{
    struct stat st;
    if (realpath(arg, out) == NULL || stat(out, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "lodestone up: %s %s: no such directory\n", opt, arg);
        return -1;
    }
    if (!up_quotable(out))
        return die("%s: the path has a quote, backslash or control character, which the "
                   "generated configuration cannot hold",
                   opt);
    return 0;
}

static int need_file(const char *path, const char *hint)
{
    if (access(path, R_OK) == 0) return 0;
    fprintf(stderr, "lodestone up: %s not found (%s)\n", path, hint);
    return -1;
}

static int locate(up_opts *o)
{
    if (cli_share_dir(o->share, sizeof o->share) != 0 || cli_exe_dir(o->bindir, UP_PATH) != 0)
        return die("cannot find Lodestone's files");
    /* An installed copy has no templates and no demo keys, on purpose. */
    char tmpl[UP_PATH];
    if (cli_fmt(tmpl, sizeof tmpl, "%s/conf/lighttpd.conf.in", o->share) != 0 ||
        access(tmpl, R_OK) != 0)
        return die("runs from a source checkout (make demo there): it needs the checkout's "
                   "conf/lighttpd.conf.in and policies/demo-keys/, which an installed copy "
                   "leaves out on purpose, and %s has no %s (docs/install.md says how to put an "
                   "installed Lodestone in front of lighttpd)",
                   o->share, "conf/lighttpd.conf.in");
    /* What must exist first, so that a wrong folder leaves nothing behind
     * (no stray ./var/lodestone where up was run by mistake). */
    char def_pol[UP_PATH];
    if (cli_fmt(def_pol, sizeof def_pol, "%s/policies", o->share) != 0) return -1;
    if (existing_dir("--workflows", o->wf_arg, o->workflows) != 0 ||
        existing_dir("--policies", o->pol_arg ? o->pol_arg : def_pol, o->policies) != 0)
        return -1;
    if (mkdirs(o->data_arg) != 0) {
        fprintf(stderr, "lodestone up: --data %s: cannot create: %s\n", o->data_arg,
                strerror(errno));
        return -1;
    }
    if (existing_dir("--data", o->data_arg, o->data) != 0) return -1;
    char share_arg[UP_PATH];
    memcpy(share_arg, o->share, sizeof share_arg);
    if (existing_dir("(share directory)", share_arg, o->share) != 0) return -1;
    const char *lt = getenv("LODESTONE_LIGHTTPD");
    o->lighttpd = lt != NULL && *lt != '\0' ? lt : "/usr/sbin/lighttpd";
    /* Paths in the data directory, then the programs and the Lua files. */
    if (cli_fmt(o->lt_dir, UP_PATH, "%s/lighttpd", o->data) != 0 ||
        cli_fmt(o->www, UP_PATH, "%s/www", o->lt_dir) != 0 ||
        cli_fmt(o->rl, UP_PATH, "%s/ratelimit", o->lt_dir) != 0 ||
        cli_fmt(o->logs, UP_PATH, "%s/logs", o->data) != 0 ||
        cli_fmt(o->conf, UP_PATH, "%s/lighttpd.conf", o->lt_dir) != 0 ||
        cli_fmt(o->gate, UP_PATH, "%s/gate.lua", o->lt_dir) != 0 ||
        cli_fmt(o->socket, UP_PATH, "%s/lodestoned.sock", o->data) != 0 ||
        cli_fmt(o->lodestoned, UP_PATH, "%s/lodestoned", o->bindir) != 0 ||
        cli_fmt(o->lodestone, UP_PATH, "%s/lodestone", o->bindir) != 0 ||
        cli_fmt(o->cpath, UP_PATH, "%s/../lib/lua/5.4", o->bindir) != 0 ||
        cli_fmt(o->lua, UP_PATH, "%s/lua", o->share) != 0 ||
        cli_fmt(o->ui, UP_PATH, "%s/ui", o->share) != 0 ||
        cli_fmt(o->conf_dir, UP_PATH, "%s/conf", o->share) != 0)
        return die("a path is too long");
    if (mkdirs(o->www) != 0 || mkdirs(o->rl) != 0 || mkdirs(o->logs) != 0)
        return die("cannot create the directories under %s", o->data);
    char probe[UP_PATH];
    cli_fmt(probe, sizeof probe, "%s/lodestone/core.so", o->cpath);
    if (need_file(o->lodestoned, "build it with make") != 0 ||
        need_file(probe, "the Lua 5.4 module for lighttpd; build it with make") != 0 ||
        need_file(o->lighttpd, "apt-get install lighttpd lighttpd-modules-lua, or "
                               "scripts/deps.sh") != 0 ||
        need_file("/usr/lib/lighttpd/mod_magnet.so",
                  "apt-get install lighttpd-modules-lua, or scripts/deps.sh") != 0)
        return -1;
    char real_cpath[UP_PATH];
    if (realpath(o->cpath, real_cpath) != NULL) cli_fmt(o->cpath, UP_PATH, "%s", real_cpath);
    return 0;
}

/* ---- the generated configuration ---- */

static int generate(const up_opts *o)
{
    const up_var vars[] = {
        {"PORT", o->port_s},       {"SHARE", o->share},     {"DATA", o->data},
        {"LUA_DIR", o->lua},       {"LUA_CPATH", o->cpath}, {"POLICIES", o->policies},
        {"UI_DIR", o->ui},         {"SOCKET", o->socket},   {"LOG_DIR", o->logs},
        {"GATE", o->gate},         {"WWW", o->www},         {"RATELIMIT_DIR", o->rl},
        {"CONF_DIR", o->conf_dir},
    };
    size_t n = sizeof vars / sizeof vars[0];
    char in[UP_PATH];
    if (cli_fmt(in, sizeof in, "%s/lighttpd.conf.in", o->conf_dir) != 0 ||
        up_render(in, o->conf, vars, n) != 0)
        return -1;
    if (cli_fmt(in, sizeof in, "%s/demo-gate.lua.in", o->conf_dir) != 0 ||
        up_render(in, o->gate, vars, n) != 0)
        return -1;
    /* lighttpd's own check, before anything starts. */
    char out[4096];
    char *argv[] = {(char *)o->lighttpd, "-tt", "-f", (char *)o->conf, NULL};
    int rc = up_run_capture(argv, out, sizeof out);
    if (rc != 0) {
        fprintf(stderr, "lodestone up: lighttpd -tt -f %s failed (status %d):\n%s", o->conf, rc,
                out);
        return -1;
    }
    return 0;
}

/* ---- what is where ---- */

static void banner(const up_opts *o, const up_child *lt, const up_child *ld)
{
    const char *p = o->port_s;
    printf("\nLodestone is up.\n\n");
    printf("  web        http://127.0.0.1:%s/   lighttpd (pid %d), every request through the "
           "policy gate\n",
           p, (int)lt->pid);
    printf("  API        http://127.0.0.1:%s/v1/   lodestoned's HTTP API, admin token required\n",
           p);
    printf("  UI         http://127.0.0.1:%s/ui/%s\n", p,
           access(o->ui, R_OK) == 0 ? "" : "   (not installed: no ui/ directory yet)");
    printf("  lodestoned %s (pid %d)\n", o->socket, (int)ld->pid);
    printf("  data       %s\n", o->data);
    printf("  workflows  %s\n", o->workflows);
    printf("  policies   %s (edits apply within a second)\n", o->policies);
    printf("  config     %s, %s\n", o->conf, o->gate);
    printf("  logs       %s/{lighttpd,lodestoned,access}.log\n", o->logs);
    printf("\nTry it from another terminal:\n\n");
    printf("  # allowed (200): an admin token, minted with the demo key\n");
    printf("  curl -s -H \"Authorization: Bearer $(%s dev token --sub alice --roles admin)\" "
           "http://127.0.0.1:%s/v1/workflows\n",
           o->lodestone, p);
    printf("  # denied (401): no token\n");
    printf("  curl -s -i http://127.0.0.1:%s/v1/workflows\n", p);
    printf("  # starts the hello workflow (201); then GET /v1/workflows/ID/result?wait=10\n");
    printf("  curl -s -X POST -H \"Authorization: Bearer $(%s dev token --sub alice --roles "
           "admin)\" -d '{\"input\":{\"name\":\"Ada\"}}' http://127.0.0.1:%s/v1/workflows/hello\n",
           o->lodestone, p);
    printf("\n  (or: %s list --socket %s)\n", o->lodestone, o->socket);
    printf("\nFollowing both logs; Ctrl-C stops everything.\n\n");
    fflush(stdout);
}

/* ---- main ---- */

typedef struct {
    int port;
    const char *socket;
} probe;

static int socket_ready(void *arg)
{
    return up_can_connect(0, ((probe *)arg)->socket);
}

static int port_ready(void *arg)
{
    return up_can_connect(((probe *)arg)->port, NULL);
}

/* Waits for c to be ready; on anything else stops all and returns the exit
 * status to use (-1: ready). */
static int await(up_child *kids, int nkids, int sigfd, int (*ready)(void *), probe *pr,
                 const char *what)
{
    up_child *died = NULL;
    int ev = up_wait(kids, nkids, sigfd, ready, pr, 15000, &died);
    if (ev == UP_READY) return -1;
    if (ev == UP_DIED) up_report_death(died);
    if (ev == UP_TIMEOUT) fprintf(stderr, "lodestone up: %s not ready after 15 s\n", what);
    int rc = up_stop_all(kids, nkids, sigfd, 15000);
    return ev == UP_SIGNAL ? rc : 1;
}

static int run(up_opts *o)
{
    char log_ld[UP_PATH], log_lt[UP_PATH];
    cli_fmt(log_ld, sizeof log_ld, "%s/lodestoned.log", o->logs);
    cli_fmt(log_lt, sizeof log_lt, "%s/lighttpd.log", o->logs);
    int sigfd = up_signals();
    if (sigfd < 0) return die("signalfd: %s", strerror(errno)), 1;
    /* kids[0] is stopped first: lighttpd, so no request reaches a daemon
     * that is going away. */
    up_child kids[2];
    memset(kids, 0, sizeof kids);
    kids[0].out = kids[0].log = kids[1].out = kids[1].log = -1;
    probe pr = {o->port, o->socket};
    char *ld_argv[] = {o->lodestoned, "--data", o->data, "--workflows", o->workflows, NULL};
    if (up_start(&kids[1], "lodestoned", ld_argv, log_ld) != 0) return 1;
    int rc = await(kids, 2, sigfd, socket_ready, &pr, "lodestoned");
    if (rc >= 0) return rc;
    char *lt_argv[] = {(char *)o->lighttpd, "-D", "-f", o->conf, NULL};
    if (up_start(&kids[0], "lighttpd", lt_argv, log_lt) != 0)
        return up_stop_all(kids, 2, sigfd, 15000), 1;
    rc = await(kids, 2, sigfd, port_ready, &pr, "lighttpd");
    if (rc >= 0) return rc;
    banner(o, &kids[0], &kids[1]);
    up_child *died = NULL;
    int ev = up_wait(kids, 2, sigfd, NULL, NULL, -1, &died);
    if (ev == UP_DIED)
        up_report_death(died);
    else
        fprintf(stderr, "\nlodestone up: stopping\n");
    rc = up_stop_all(kids, 2, sigfd, 15000);
    return ev == UP_DIED ? 1 : rc;
}

int cli_up_main(int argc, char **argv)
{
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        }
    }
    static up_opts o;
    if (parse(argc, argv, &o) != 0) return 2;
    if (locate(&o) != 0 || up_port_free(o.port) != 0) return 1;
    if (up_can_connect(0, o.socket)) {
        fprintf(stderr,
                "lodestone up: a lodestoned already answers on %s: another `lodestone up` "
                "uses --data %s; stop it or choose another --data\n",
                o.socket, o.data);
        return 1;
    }
    if (generate(&o) != 0) return 1;
    return run(&o);
}
