/* SPDX-License-Identifier: MIT
 * lodestoned: runs the workflows of a directory durably, serving the HTTP
 * API on a unix socket (and optionally on a loopback port with a token).
 * The only owner of its data directory.
 *
 *   SIGTERM, SIGINT  stop taking work, let running steps finish (up to
 *                    --grace), exit; nothing is lost
 *   SIGHUP           reload the workflow files
 */
#include "ls_config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api.h"
#include "lls_flow.h"
#include "lls_state.h"
#include "lodestone/lodestone.h"
#include "log.h"

static const char usage[] =
    "usage: lodestoned [OPTIONS]\n"
    "\n"
    "  --data DIR          data directory (default ./var/lodestone)\n"
    "  --workflows DIR     workflow files (default ./workflows)\n"
    "  --socket PATH       HTTP on a unix socket, mode 0660 (default DATA/lodestoned.sock)\n"
    "  --listen 127.0.0.1:PORT  also serve HTTP on loopback TCP (needs --token-file)\n"
    "  --token-file FILE   bearer token for --listen (first line)\n"
    "  --key-file FILE     master key (default $LODESTONE_KEY_FILE, else DATA/master.key;\n"
    "                      created 0600 only for a new, empty data directory, and must\n"
    "                      open the store's data)\n"
    "  --workers N         worker threads running workflow code (default 8)\n"
    "  --http-threads N    HTTP threads (default twice the CPUs, at least 4)\n"
    "  --grace SECONDS     on SIGTERM, how long running steps may finish (default 10)\n"
    "  --body-limit BYTES  largest request body (default 1048576)\n"
    "  --max-payload BYTES largest input, step result, output or signal (default 1048576)\n"
    "  --max-events N      events in one run's history (default 50000)\n"
    "  --max-steps N       steps one run may complete (default 10000)\n"
    "  --max-depth N       how deep child runs may nest (default 32)\n"
    "  --log-level LEVEL   debug, info, warn or error (default info)\n"
    "  --retention DUR     keep finished runs this long, then delete them (default 7d;\n"
    "                      \"forever\" or 0 keeps them); workflow.define{retention} per type\n"
    "  --retention-interval DUR  how often retention runs (default 1m; for tests)\n"
    "  --retention-batch N the most runs one retention write deletes (default 500; for tests)\n"
    "  --no-sync           do not fsync transitions (benchmarks only: unsafe)\n"
    "  --retire-old-keys   do not start: reseal every value sealed under an older key\n"
    "                      under the current one, then rewrite the key file to hold the\n"
    "                      current key only, and exit (lodestoned stopped; uses --data,\n"
    "                      --key-file; exit 0 done, 1 not done, 2 refused)\n"
    "  --version, --help\n"
    "\n"
    "A value is the next argument or follows '=' (--workers 4 or --workers=4).\n"
    "Signals: SIGTERM/SIGINT stop after running steps finish (--grace); SIGHUP reloads\n"
    "the workflow files. LODESTONE_LUA_DIR: Lodestone's Lua files (default:\n"
    "PREFIX/share/lua/5.1 when installed, the source tree's lua/ in the build tree).\n"
    "See lodestoned(8).\n";

static volatile sig_atomic_t got_term, got_hup;

static void on_signal(int sig)
{
    if (sig == SIGHUP)
        got_hup = 1;
    else
        got_term = 1;
}

static int die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("lodestoned: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 2;
}

/* ---- options ---- */

/* Every option the parser takes: usage above and lodestoned(8) list each
 * (tests/e2e/cli_daemon.sh and install.sh check that they agree). */
static const struct {
    const char *name;
    int takes_value;
} options[] = {
    {"--help", 0},
    {"--version", 0},
    {"--no-sync", 0},
    {"--retire-old-keys", 0},
    {"--data", 1},
    {"--workflows", 1},
    {"--socket", 1},
    {"--listen", 1},
    {"--token-file", 1},
    {"--key-file", 1},
    {"--workers", 1},
    {"--http-threads", 1},
    {"--grace", 1},
    {"--body-limit", 1},
    {"--max-payload", 1},
    {"--max-events", 1},
    {"--max-steps", 1},
    {"--max-depth", 1},
    {"--retention", 1},
    {"--retention-interval", 1},
    {"--retention-batch", 1},
    {"--log-level", 1},
};

/* Reads the option at argv[*i]: "--name VALUE", "--name=VALUE", a flag,
 * or -h for --help. Returns its name (static) and points *value at its
 * value (borrowed from argv; "" for a flag), leaving *i on the last
 * argument it used. Returns NULL after saying on stderr what is wrong: an
 * argument that is no option, an unknown option, a flag given a value, a
 * missing or empty value. */
static const char *next_option(int argc, char **argv, int *i, const char **value)
{
    const char *arg = argv[*i];
    if (strcmp(arg, "-h") == 0) arg = "--help";
    if (arg[0] != '-' || strcmp(arg, "-") == 0 || strcmp(arg, "--") == 0) {
        die("unexpected argument \"%s\": lodestoned takes only options (see --help)", arg);
        return NULL;
    }
    size_t len = strcspn(arg, "=");
    for (size_t k = 0; k < sizeof options / sizeof options[0]; k++) {
        const char *name = options[k].name;
        if (strlen(name) != len || strncmp(arg, name, len) != 0) continue;
        if (!options[k].takes_value) {
            if (arg[len] == '=') {
                die("%s takes no value, got \"%s\"", name, arg);
                return NULL;
            }
            *value = "";
            return name;
        }
        if (arg[len] == '=') {
            *value = arg + len + 1;
        } else if (*i + 1 < argc) {
            *value = argv[++*i];
        } else {
            die("%s needs a value (see --help)", name);
            return NULL;
        }
        if (**value == '\0') {
            die("%s: the value is empty (see --help)", name);
            return NULL;
        }
        return name;
    }
    die("unknown option %.*s (see --help)", (int)len, arg);
    return NULL;
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (*s == '\0' || *end != '\0' || errno || v > max) return -1;
    *out = v;
    return 0;
}

#define TOKEN_MIN 16   /* characters of a --token-file token */
#define TOKEN_MAX 4096 /* (a client sends it in a header) */

/* Reads up to n bytes of fd's first line (to '\n' or '\r') into line,
 * one read(2) at a time, so that no copy of the token stays in a stdio
 * buffer. Sets *cut when the line is longer than n. -1 with errno set on
 * a read error. */
static ssize_t read_first_line(int fd, char *line, size_t n, int *cut)
{
    size_t len = 0;
    *cut = 0;
    for (;;) {
        ssize_t r = read(fd, line + len, n - len);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -1;
        char *end = NULL;
        for (size_t k = len; k < len + (size_t)r && end == NULL; k++)
            if (line[k] == '\n' || line[k] == '\r') end = line + k;
        if (end) return end - line;
        len += (size_t)r;
        if (r == 0) return (ssize_t)len;
        if (len == n) {
            *cut = 1;
            return (ssize_t)len;
        }
    }
}

/* The bearer token for --listen: the first line of path without the
 * spaces and tabs around it, as lodestone(1) reads its --token-file and
 * HTTP an Authorization header; TOKEN_MIN to TOKEN_MAX characters, none a
 * control character. A regular file that group or others may write is
 * refused (anyone could plant a token they know); one that others may
 * read gets a warning. A pipe works too (--token-file <(pass lodestone)).
 * Caller frees with free(). NULL with err set. */
static char *read_token(const char *path, ls_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        ls_err_set(err, LS_EIO, "--token-file %s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        ls_err_set(err, LS_EIO, "--token-file %s: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    if (S_ISDIR(st.st_mode)) {
        ls_err_set(err, LS_EINVAL, "--token-file %s: is a directory", path);
        close(fd);
        return NULL;
    }
    if (S_ISREG(st.st_mode) && (st.st_mode & (S_IWGRP | S_IWOTH))) {
        ls_err_set(err, LS_EPERM,
                   "--token-file %s: mode %04o lets group or others write it, so anyone could "
                   "set a token they know (chmod go-w)",
                   path, (unsigned)(st.st_mode & 07777));
        close(fd);
        return NULL;
    }
    /* Read at most twice TOKEN_MAX: neither /dev/zero nor a large file
     * without a line break is read whole. */
    char line[2 * TOKEN_MAX];
    int cut;
    ssize_t got = read_first_line(fd, line, sizeof line, &cut);
    int read_errno = got < 0 ? errno : 0;
    close(fd);
    size_t len = got < 0 ? 0 : (size_t)got, start = 0;
    while (start < len && (line[start] == ' ' || line[start] == '\t')) start++;
    while (len > start && (line[len - 1] == ' ' || line[len - 1] == '\t')) len--;
    size_t n = len - start, bad = n;
    for (size_t k = start; k < len && bad == n; k++)
        if ((unsigned char)line[k] < 0x20 || line[k] == 0x7f) bad = k - start;
    char *tok = NULL;
    if (read_errno)
        ls_err_set(err, LS_EIO, "--token-file %s: %s", path, strerror(read_errno));
    else if (n == 0)
        ls_err_set(err, LS_EINVAL, "--token-file %s: has no token on its first line", path);
    else if (cut || n > TOKEN_MAX)
        ls_err_set(err, LS_EINVAL,
                   "--token-file %s: the token on its first line is longer than %d characters",
                   path, TOKEN_MAX);
    else if (bad < n)
        ls_err_set(err, LS_EINVAL,
                   "--token-file %s: the token has a control character (0x%02x at character "
                   "%zu)",
                   path, (unsigned)(unsigned char)line[start + bad], bad + 1);
    else if (n < TOKEN_MIN)
        ls_err_set(err, LS_EINVAL,
                   "--token-file %s: the token is %zu characters; it needs %d or more", path, n,
                   TOKEN_MIN);
    else if ((tok = strndup(line + start, n)) == NULL)
        ls_err_set(err, LS_ENOMEM, "--token-file %s: out of memory", path);
    explicit_bzero(line, sizeof line);
    if (tok && S_ISREG(st.st_mode) && (st.st_mode & S_IROTH))
        lsd_log(LS_FLOW_LOG_WARN, NULL,
                "--token-file %s: mode %04o lets every user read the token (chmod o-r)", path,
                (unsigned)(st.st_mode & 07777));
    return tok;
}

static int mkdir_p(const char *dir)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(tmp, 0700) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(tmp, 0700) != 0 && errno != EEXIST) return -1;
    return 0;
}

/* Files an older lodestoned (or a copy) left readable by group or others
 * in dir, the store: made private as the umask makes new ones. */
static void make_private(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL) return;
    const struct dirent *de;
    unsigned n = 0;
    while ((de = readdir(d)) != NULL) {
        struct stat sb;
        if (fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(sb.st_mode) ||
            (sb.st_mode & 077) == 0)
            continue;
        if (fchmodat(dirfd(d), de->d_name, sb.st_mode & 0700, 0) == 0)
            n++;
        else
            lsd_log(LS_FLOW_LOG_WARN, NULL, "cannot chmod go-rwx %s/%s: %s", dir, de->d_name,
                    strerror(errno));
    }
    closedir(d);
    if (n) lsd_log(LS_FLOW_LOG_INFO, NULL, "%s: made %u files private (chmod go-rwx)", dir, n);
}

/* Hands the schedules the workflow files declare to the engine (after the
 * first load and each reload); files that no longer declare one lose it. */
static void sync_schedules(lls_runner *runner, ls_flow_t *flow)
{
    ls_buf defs = LS_BUF_INIT;
    ls_err err;
    if (lls_runner_schedules(runner, &defs, &err) != LS_OK ||
        ls_flow_schedule_sync_files(flow, (const char *)defs.ptr, defs.len, &err) != LS_OK)
        lsd_log(LS_FLOW_LOG_ERROR, NULL, "workflow file schedules: %s", ls_err_text(&err));
    ls_buf_free(&defs);
}

/* 1 when v is a bare number: the duration grammar reads it as seconds,
 * but "--retention 30" is as likely meant as days, and guessing wrong
 * deletes runs. The daemon's duration flags want a unit. */
static int bare_number(const char *v)
{
    return *v != '\0' && strspn(v, "0123456789.") == strlen(v);
}

/* --retention: a duration, or "forever" / "0" to keep finished runs. */
static int parse_retention(const char *v, int64_t *ms, ls_err *err)
{
    if (strcmp(v, "forever") == 0 || strcmp(v, "0") == 0) {
        *ms = LS_FLOW_KEEP_FOREVER;
        return 0;
    }
    if (bare_number(v)) {
        ls_err_set(err, LS_EINVAL,
                   "--retention: \"%s\" needs a unit: s, m, h or d (\"%sd\" for days), or "
                   "\"forever\"",
                   v, v);
        return -1;
    }
    if (ls_duration_parse(v, strlen(v), ms, err) != LS_OK || *ms < 1000) {
        ls_err_set(err, LS_EINVAL,
                   "--retention: expected a duration of 1s or more (\"7d\"), or \"forever\", "
                   "got \"%s\"",
                   v);
        return -1;
    }
    return 0;
}

/* The HTTP API takes up to 4,096 connections and the store keeps up to
 * 1,000 table files open, past the usual soft limit of 1,024 open files
 * (systemd's default too): raise it to the hard limit (at most 65,536).
 * poll() has no FD_SETSIZE bound, so any descriptor number is fine. */
static void raise_open_files(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    rlim_t want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > 65536 ? 65536 : rl.rlim_max;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            lsd_log(LS_FLOW_LOG_WARN, NULL, "cannot raise the open files limit to %lu: %s",
                    (unsigned long)want, strerror(errno));
    }
}

/* HTTP threads: twice the CPUs, at least 4. A start never holds its
 * thread while it is written, and fewer threads each find more requests
 * ready per poll (on 2 CPUs, 4 threads served ~6% more runs per second
 * than 16); a signal, cancel or secret write does hold one until it is
 * durable, so a few slow requests must not take them all. */
static unsigned long default_http_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 2) return 4;
    return n > 32 ? 64 : (unsigned long)n * 2;
}

/* Keeps the key and the secrets in memory out of reach: every file
 * lodestoned creates (store, key file, logs of LevelDB) is private to its
 * user whatever the umask it was started with (the socket sets its own
 * 0660), and the process is not dumpable: a crash writes no core file, and
 * other processes of the same user cannot ptrace it or read its memory
 * through /proc. */
static void keep_private(void)
{
    umask(077);
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
        lsd_log(LS_FLOW_LOG_WARN, NULL, "cannot turn off core dumps (prctl): %s", strerror(errno));
}

/* A key file ls_flow_key_load refused (rc, err): the start's message, exit
 * 2. */
static int key_refusal(ls_rc rc, const ls_err *err)
{
    if (rc == LS_ENOTFOUND)
        return die("%s: restore the key file from its backup (or give --key-file); a new key "
                   "is created only for a new, empty data directory",
                   ls_err_text(err));
    if (rc == LS_EAUTH)
        return die("%s: wrong --key-file, or a changed key file? Start with the key file this "
                   "data was written with (from its backup); nothing was changed",
                   ls_err_text(err));
    return die("key file: %s", ls_err_text(err));
}

/* ---- --retire-old-keys ---- */

/* n with a comma between groups of three digits ("1,234"), into out. */
static const char *grouped(size_t n, char out[32])
{
    char digits[24];
    int len = snprintf(digits, sizeof digits, "%zu", n), o = 0;
    for (int i = 0; i < len; i++) {
        if (i > 0 && (len - i) % 3 == 0) out[o++] = ',';
        out[o++] = digits[i];
    }
    out[o] = '\0';
    return out;
}

/* "1, 2" (the ids of keys but not except, or every id when except is 0). */
static void key_list(const uint32_t *ids, size_t n, uint32_t except, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && len < cap; i++)
        if (ids[i] != except)
            len +=
                (size_t)snprintf(out + len, cap - len, "%s%u", len ? ", " : "", (unsigned)ids[i]);
}

/* "1,234 values resealed under key 3 (secrets 5, history 1,200)", or
 * "values ... were resealed" (were), for rep, into out. */
static void resealed_text(const ls_flow_retire_report *rep, int were, char *out, size_t cap)
{
    size_t total = 0, len = 0;
    char num[32];
    for (int k = 0; k < LS_FLOW_SEALED_KINDS; k++) total += rep->resealed[k];
    len = (size_t)snprintf(out, cap, "%s %s%s resealed under key %u", grouped(total, num),
                           total == 1 ? "value" : "values",
                           !were        ? ""
                           : total == 1 ? " was"
                                        : " were",
                           (unsigned)rep->key);
    const char *sep = " (";
    for (int k = 0; k < LS_FLOW_SEALED_KINDS && len < cap; k++) {
        if (rep->resealed[k] == 0) continue;
        len += (size_t)snprintf(out + len, cap - len, "%s%s %s", sep,
                                ls_flow_sealed_kind_name((ls_flow_sealed_kind)k),
                                grouped(rep->resealed[k], num));
        sep = ", ";
    }
    if (len < cap && *sep == ',') snprintf(out + len, cap - len, ")");
}

/* lodestoned --retire-old-keys: with lodestoned stopped, reseals what is
 * sealed under older keys under the current one, then leaves the current
 * key alone in the key file. Exit 0 done (or nothing to do), 1 not done
 * (the key file unchanged), 2 refused as a start is. */
static int retire_old_keys(const char *data, const char *store_dir, const char *key_file)
{
    ls_err err;
    ls_store_t *store = NULL;
    ls_store_opts so = {.create_if_missing = 0, .cache_bytes = 32u << 20};
    ls_rc rc = ls_store_open(&store, store_dir, &so, &err);
    if (rc == LS_EBUSY)
        return die("%s is in use by a running lodestoned: stop lodestoned first, then run "
                   "--retire-old-keys again (nothing was changed)",
                   data);
    if (rc == LS_ENOTFOUND)
        return die("--data %s holds no store (%s): is --data right?", data, store_dir);
    if (rc != LS_OK) return die("store %s: %s", store_dir, ls_err_text(&err));
    struct stat sb;
    int holds = 0;
    if (stat(key_file, &sb) != 0 && errno == ENOENT &&
        ls_store_holds_data(store, &holds, NULL) == LS_OK && !holds) {
        ls_store_close(store);
        return die("key file %s does not exist (the store holds no data): is --key-file right?",
                   key_file);
    }
    ls_vault_t *vault = NULL;
    rc = ls_flow_key_load(&vault, store, key_file, &err);
    if (rc != LS_OK) {
        ls_store_close(store);
        return key_refusal(rc, &err);
    }
    uint32_t ids[64];
    size_t nids = ls_vault_key_ids(vault, ids, sizeof ids / sizeof ids[0]);
    if (nids > sizeof ids / sizeof ids[0]) nids = sizeof ids / sizeof ids[0];
    uint32_t cur = ls_vault_current_key(vault);
    char old[256], all[256], text[512], num[32];
    key_list(ids, nids, cur, old, sizeof old);
    key_list(ids, nids, 0, all, sizeof all);
    const char *keys = nids == 2 ? "key" : "keys"; /* the old ones */

    ls_flow_retire_report rep;
    rc = ls_flow_key_retire(vault, store, &rep, &err);
    size_t total = 0;
    for (int k = 0; k < LS_FLOW_SEALED_KINDS; k++) total += rep.resealed[k];
    int code = 1;
    if (rc != LS_OK && rep.retired) { /* the key file was replaced; its directory's sync failed */
        fprintf(stderr,
                "lodestoned: retired %s %s, but %s. Every value is sealed under key %u, so the "
                "key file opens the store whether it holds key %u alone or the old keys too; "
                "check the file system, then back up the key file\n",
                keys, old, ls_err_text(&err), (unsigned)cur, (unsigned)cur);
    } else if (rc != LS_OK) {
        resealed_text(&rep, 1, text, sizeof text);
        fprintf(stderr,
                "lodestoned: retiring %s %s stopped: %s; %s before it. The key file is "
                "unchanged (keys %s). Run lodestoned --retire-old-keys again: it goes on from "
                "there\n",
                keys, old, ls_err_text(&err), text, all);
    } else if (rep.keys_before <= 1) {
        printf("nothing to retire: key file %s holds key %u only\n", key_file, (unsigned)cur);
        code = 0;
    } else if (rep.retired) {
        if (total == 0) /* an earlier pass, cut short, resealed them */
            snprintf(text, sizeof text, "every value was under key %u already", (unsigned)cur);
        else
            resealed_text(&rep, 0, text, sizeof text);
        printf("retired %s %s: %s; the key file holds key %u only\n", keys, old, text,
               (unsigned)cur);
        printf("back up the key file now (it changed), and keep the old one for as long as "
               "store backups from before this retirement are kept: they need it\n");
        code = 0;
    } else if (rep.failed > 0) {
        resealed_text(&rep, 1, text, sizeof text);
        fprintf(stderr,
                "lodestoned: %s %s not retired: %s %s under %s did not open (the first: %s); "
                "%s. The key file is unchanged (keys %s), and what did not open stays as it "
                "was: set such a secret again or remove it (lodestone secret set|rm NAME); a "
                "damaged run stays until retention deletes it once it has ended (or restore "
                "the store from a backup). Then run lodestoned --retire-old-keys again\n",
                keys, old, grouped(rep.failed, num), rep.failed == 1 ? "value" : "values",
                nids == 2 ? "it" : "them", rep.first_failed, text, all);
    } else {
        resealed_text(&rep, 1, text, sizeof text);
        fprintf(stderr,
                "lodestoned: %s %s not retired: %s %s still %s an older key after the pass "
                "(%s). The key file is unchanged (keys %s); run lodestoned --retire-old-keys "
                "again\n",
                keys, old, grouped(rep.remaining, num), rep.remaining == 1 ? "value" : "values",
                rep.remaining == 1 ? "names" : "name", text, all);
    }
    ls_vault_close(vault);
    ls_store_close(store);
    return code;
}

int main(int argc, char **argv)
{
    const char *data = "./var/lodestone", *workflows = "./workflows", *socket_path = NULL;
    const char *listen_addr = NULL, *token_file = NULL, *key_file = NULL;
    unsigned long workers = 8, http_threads = default_http_threads(), grace_s = 10,
                  body_limit = 1 << 20;
    int nosync = 0, retire = 0;
    unsigned long max_payload = 0, max_events = 0, max_steps = 0, max_depth = 0;
    int64_t retention_ms = 0, retention_interval_ms = 0;
    unsigned long retention_batch = 0;
    ls_err err;

    for (int i = 1; i < argc; i++) {
        const char *v;
        const char *o = next_option(argc, argv, &i, &v);
        if (o == NULL) return 2;
        if (strcmp(o, "--help") == 0) {
            fputs(usage, stdout);
            return 0;
        }
        if (strcmp(o, "--version") == 0) {
            printf("lodestoned %s\n", ls_version());
            return 0;
        }
        if (strcmp(o, "--no-sync") == 0)
            nosync = 1;
        else if (strcmp(o, "--retire-old-keys") == 0)
            retire = 1;
        else if (strcmp(o, "--data") == 0)
            data = v;
        else if (strcmp(o, "--workflows") == 0)
            workflows = v;
        else if (strcmp(o, "--socket") == 0)
            socket_path = v;
        else if (strcmp(o, "--listen") == 0)
            listen_addr = v;
        else if (strcmp(o, "--token-file") == 0)
            token_file = v;
        else if (strcmp(o, "--key-file") == 0)
            key_file = v;
        else if (strcmp(o, "--workers") == 0) {
            if (parse_uint(v, 1024, &workers) || workers == 0)
                return die("--workers: expected 1 to 1024, got \"%s\"", v);
        } else if (strcmp(o, "--http-threads") == 0) {
            if (parse_uint(v, 64, &http_threads) || http_threads == 0)
                return die("--http-threads: expected 1 to 64, got \"%s\"", v);
        } else if (strcmp(o, "--grace") == 0) {
            if (parse_uint(v, 3600, &grace_s))
                return die("--grace: expected 0 to 3600 seconds, got \"%s\"", v);
        } else if (strcmp(o, "--body-limit") == 0) {
            if (parse_uint(v, 1UL << 30, &body_limit) || body_limit < 1024)
                return die("--body-limit: expected 1024 to 1073741824 bytes, got \"%s\"", v);
        } else if (strcmp(o, "--max-payload") == 0) {
            if (parse_uint(v, 1UL << 30, &max_payload) || max_payload < 64)
                return die("--max-payload: expected 64 to 1073741824 bytes, got \"%s\"", v);
        } else if (strcmp(o, "--max-events") == 0) {
            if (parse_uint(v, 100000000UL, &max_events) || max_events < 10)
                return die("--max-events: expected 10 to 100000000, got \"%s\"", v);
        } else if (strcmp(o, "--max-steps") == 0) {
            if (parse_uint(v, 100000000UL, &max_steps) || max_steps < 1)
                return die("--max-steps: expected 1 to 100000000, got \"%s\"", v);
        } else if (strcmp(o, "--max-depth") == 0) {
            if (parse_uint(v, 1000, &max_depth) || max_depth < 1)
                return die("--max-depth: expected 1 to 1000, got \"%s\"", v);
        } else if (strcmp(o, "--retention") == 0) {
            if (parse_retention(v, &retention_ms, &err) != 0) return die("%s", ls_err_text(&err));
        } else if (strcmp(o, "--retention-interval") == 0) {
            if (bare_number(v) ||
                ls_duration_parse(v, strlen(v), &retention_interval_ms, &err) != LS_OK ||
                retention_interval_ms < 10)
                return die("--retention-interval: expected a duration of 10ms or more, got \"%s\"",
                           v);
        } else if (strcmp(o, "--retention-batch") == 0) { /* tests: small batches */
            if (parse_uint(v, 100000, &retention_batch) || retention_batch == 0)
                return die("--retention-batch: expected 1 to 100000 runs, got \"%s\"", v);
        } else if (strcmp(o, "--log-level") == 0) {
            int lvl = lsd_log_level_parse(v);
            if (lvl < 0)
                return die("--log-level: expected debug, info, warn or error, got \"%s\"", v);
            lsd_log_set_level(lvl);
        } else {
            return die("%s: in the options table but not handled (a bug)", o);
        }
    }
    char sock_default[PATH_MAX], key_default[PATH_MAX], store_dir[PATH_MAX];
    if (retire) {
        keep_private();
        if (key_file == NULL && (key_file = getenv("LODESTONE_KEY_FILE")) != NULL &&
            *key_file == '\0')
            return die("LODESTONE_KEY_FILE is empty: set it to the key file's path, or unset it "
                       "(default DATA/master.key)");
        snprintf(store_dir, sizeof store_dir, "%s/store", data);
        if (key_file == NULL) {
            snprintf(key_default, sizeof key_default, "%s/master.key", data);
            key_file = key_default;
        }
        return retire_old_keys(data, store_dir, key_file);
    }
    int sock_defaulted = socket_path == NULL;
    if (sock_defaulted) {
        snprintf(sock_default, sizeof sock_default, "%s/lodestoned.sock", data);
        socket_path = sock_default;
    }
    /* What the API will listen on is checked before anything is opened:
     * a bad option is refused as such (exit 2), not after the store. */
    if (lsd_api_check(&(lsd_api_opts){.socket_path = socket_path}, &err) != LS_OK)
        return die("%s%s", ls_err_text(&err),
                   sock_defaulted
                       ? " (the default, DATA/lodestoned.sock: give --socket, or a shorter --data)"
                       : "");
    if (lsd_api_check(&(lsd_api_opts){.listen = listen_addr}, &err) != LS_OK)
        return die("%s", ls_err_text(&err));
    if (listen_addr && token_file == NULL)
        return die("--listen %s needs --token-file: a TCP listener without a token is refused",
                   listen_addr);

    keep_private();
    char *token = NULL;
    if (token_file && (token = read_token(token_file, &err)) == NULL)
        return die("%s", ls_err_text(&err));

    if (key_file == NULL && (key_file = getenv("LODESTONE_KEY_FILE")) != NULL &&
        *key_file == '\0') {
        free(token);
        return die("LODESTONE_KEY_FILE is empty: set it to the key file's path, or unset it "
                   "(default DATA/master.key)");
    }
    if (mkdir_p(data) != 0) {
        free(token);
        return die("--data %s: %s", data, strerror(errno));
    }
    snprintf(store_dir, sizeof store_dir, "%s/store", data);
    if (key_file == NULL) {
        snprintf(key_default, sizeof key_default, "%s/master.key", data);
        key_file = key_default;
    }
    const char *lua_dir = lls_lua_dir();

    raise_open_files();
    /* The store first: its lock makes this the only daemon on data. */
    ls_store_t *store = NULL;
    ls_store_opts so = {
        .create_if_missing = 1, .cache_bytes = 32u << 20, .write_buffer = 16u << 20};
    ls_rc rc = ls_store_open(&store, store_dir, &so, &err);
    if (rc == LS_EBUSY) {
        free(token);
        return die("%s is in use by another lodestoned (only one daemon may own a data "
                   "directory)",
                   data);
    }
    if (rc != LS_OK) {
        free(token);
        return die("store %s: %s", store_dir, ls_err_text(&err));
    }
    /* Then its key: created only for a new store, and refused (nothing
     * changed) unless it opens the store's sealed data. */
    ls_vault_t *vault = NULL;
    ls_flow_key_report kr;
    rc = ls_flow_key_load_report(&vault, store, key_file, &kr, &err);
    if (rc != LS_OK) {
        ls_store_close(store);
        free(token);
        return key_refusal(rc, &err);
    }
    if (kr.damaged)
        lsd_log(LS_FLOW_LOG_WARN, NULL,
                "key file %s: %u of the %u sealed records probed in this store (written before key "
                "checks) did not open and were passed over as damage%s; first: %s",
                key_file, kr.damaged, kr.probed,
                kr.opened ? ", the others opened: the key is taken"
                          : "; nothing confirmed the key, so the next start probes again",
                kr.first_damage);
    make_private(store_dir);
    lls_runner *runner = NULL;
    if (lls_runner_new(&runner, workflows, lua_dir, &err) != LS_OK) {
        ls_vault_close(vault);
        ls_store_close(store);
        free(token);
        return die("%s", ls_err_text(&err));
    }
    {
        ls_buf d = LS_BUF_INIT;
        lls_runner_describe(runner, &d, NULL);
        lsd_log(LS_FLOW_LOG_INFO, NULL, "workflows from %s: %.*s", workflows, (int)d.len,
                (const char *)d.ptr);
        if (lls_runner_error_count(runner))
            lsd_log(LS_FLOW_LOG_ERROR, NULL,
                    "%zu workflow files failed to load; the others run (lodestone types)",
                    lls_runner_error_count(runner));
        ls_buf_free(&d);
    }

    ls_flow_opts fo = {.store = store,
                       .vault = vault,
                       .runner = lls_runner_ops(),
                       .runner_ud = runner,
                       .workers = (unsigned)workers,
                       .nosync = nosync,
                       .max_payload = max_payload,
                       .max_events = max_events,
                       .max_steps = max_steps,
                       .max_depth = (unsigned)max_depth,
                       .log = lsd_log_sink,
                       .retention_ms = retention_ms,
                       .retention_interval_ms = retention_interval_ms,
                       .retention_batch = (unsigned)retention_batch};
    ls_flow_t *flow = NULL;
    if (ls_flow_open(&flow, &fo, &err) != LS_OK) {
        lls_runner_free(runner);
        ls_vault_close(vault);
        ls_store_close(store);
        free(token);
        return die("%s", ls_err_text(&err));
    }

    sync_schedules(runner, flow);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* The threads started from here on block these signals, and the loop
     * below waits for them with sigsuspend: a SIGHUP that arrives while a
     * reload runs is not lost (pause() would sleep through it). */
    sigset_t stop_sigs, waitmask;
    sigemptyset(&stop_sigs);
    sigaddset(&stop_sigs, SIGTERM);
    sigaddset(&stop_sigs, SIGINT);
    sigaddset(&stop_sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &stop_sigs, &waitmask);

    lsd_api *api = NULL;
    lsd_api_opts ao = {.flow = flow,
                       .runner = runner,
                       .store = store,
                       .vault = vault,
                       .socket_path = socket_path,
                       .listen = listen_addr,
                       .token = token,
                       .body_limit = body_limit,
                       .store_dir = store_dir,
                       .threads = (unsigned)http_threads};
    int exit_code = 0;
    if (lsd_api_start(&api, &ao, &err) != LS_OK) {
        lsd_log(LS_FLOW_LOG_ERROR, NULL, "%s", ls_err_text(&err));
        exit_code = 1;
        goto out;
    }
    if (ls_flow_run(flow, &err) != LS_OK) {
        lsd_log(LS_FLOW_LOG_ERROR, NULL, "%s", ls_err_text(&err));
        exit_code = 1;
        goto out;
    }
    lsd_log(LS_FLOW_LOG_INFO, NULL, "lodestoned %s ready: socket %s%s%s, data %s, %lu workers%s",
            ls_version(), socket_path, listen_addr ? ", listening on " : "",
            listen_addr ? listen_addr : "", data, workers, nosync ? ", NO SYNC" : "");

    while (!got_term) {
        while (!got_term && !got_hup) sigsuspend(&waitmask);
        if (got_hup) {
            got_hup = 0;
            if (lls_runner_reload(runner, &err) == LS_OK) {
                sync_schedules(runner, flow);
                size_t again = ls_flow_retry_idle(flow);
                lsd_log(LS_FLOW_LOG_INFO, NULL,
                        "workflows reloaded (%zu load errors); %zu waiting runs tried again",
                        lls_runner_error_count(runner), again);
            } else {
                lsd_log(LS_FLOW_LOG_ERROR, NULL, "reload failed: %s", ls_err_text(&err));
            }
        }
    }
    lsd_log(LS_FLOW_LOG_INFO, NULL, "stopping: letting running steps finish (grace %lus)", grace_s);

out:
    lsd_api_stop(api);
    if (ls_flow_stop(flow, (int64_t)grace_s * 1000, &err) == LS_EBUSY) {
        /* Every transition is durable: exit without waiting for stuck code. */
        lsd_log(LS_FLOW_LOG_WARN, NULL, "%s; exiting anyway (nothing is lost)", ls_err_text(&err));
        _exit(exit_code);
    }
    ls_flow_close(flow);
    lls_runner_free(runner);
    ls_vault_close(vault);
    ls_store_close(store);
    free(token);
    if (exit_code == 0) lsd_log(LS_FLOW_LOG_INFO, NULL, "stopped");
    return exit_code;
}
