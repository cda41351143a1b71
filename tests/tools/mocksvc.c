/* SPDX-License-Identifier: MIT
 * mocksvc: a small HTTP service for tests and workflow examples (payments
 * with idempotency keys, echo, slow and flaky endpoints, webhook sinks).
 * Listens on 127.0.0.1 with an ephemeral port, writes the port to
 * --port-file (atomically) once it serves, logs one line per request, stops
 * on SIGTERM. With --unix PATH it also serves the same routes on that unix
 * socket (for clients' unix_socket options). The routes are in route().
 * usage: mocksvc --port-file FILE [--log FILE] [--fail-first N] [--unix PATH]
 */
#include "ls_config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>

#if MHD_VERSION < 0x00097002
typedef int mhd_result; /* before enum MHD_Result */
#else
typedef enum MHD_Result mhd_result;
#endif

#define MAX_BODY (1u << 20) /* larger request bodies get 413 */
#define MAX_SLOW 60000      /* ms */

/* ---- shared state, under one mutex ---- */

typedef struct charge {
    struct charge *next;
    char *key; /* Idempotency-Key of a successful charge */
    long long k;
    json_int_t amount;
} charge;

typedef struct counter {
    struct counter *next;
    char *name; /* "hooks/NAME" or "flaky/NAME" */
    long long n;
} counter;

static struct {
    pthread_mutex_t mu;
    long long fail_first; /* /charges calls still to answer with 503 */
    long long charges;    /* charges made */
    charge *by_key;
    counter *counters;
    FILE *log;
} S = {.mu = PTHREAD_MUTEX_INITIALIZER};

static atomic_int stopping;

/* Increments the counter called name and returns its new value; 0 when out
 * of memory. With add == 0, returns the value unchanged. Call under S.mu. */
static long long count(const char *name, int add)
{
    counter *c = S.counters;
    while (c != NULL && strcmp(c->name, name) != 0) c = c->next;
    if (c == NULL) {
        if (!add) return 0;
        c = calloc(1, sizeof *c);
        if (c == NULL || (c->name = strdup(name)) == NULL) {
            free(c);
            return 0;
        }
        c->next = S.counters;
        S.counters = c;
    }
    c->n += add;
    return c->n;
}

static void free_state(void)
{
    while (S.by_key != NULL) {
        charge *c = S.by_key;
        S.by_key = c->next;
        free(c->key);
        free(c);
    }
    while (S.counters != NULL) {
        counter *c = S.counters;
        S.counters = c->next;
        free(c->name);
        free(c);
    }
}

/* ---- responses ---- */

typedef struct {
    char *body;
    size_t len;
    int too_big;
} upload;

/* Appends "METHOD PATH STATUS KEY" to the log. */
static void log_request(struct MHD_Connection *con, const char *method, const char *url,
                        unsigned status)
{
    const char *key = MHD_lookup_connection_value(con, MHD_HEADER_KIND, "Idempotency-Key");
    pthread_mutex_lock(&S.mu);
    if (S.log != NULL) {
        fprintf(S.log, "%s %s %u %s\n", method, url, status, key && *key ? key : "-");
        fflush(S.log);
    }
    pthread_mutex_unlock(&S.mu);
}

/* Sends status with body (a JSON value, stolen; NULL: empty body) and logs
 * "METHOD PATH STATUS KEY". */
static mhd_result reply(struct MHD_Connection *con, const char *method, const char *url,
                        unsigned status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    struct MHD_Response *res =
        text ? MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE)
             : MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (res == NULL) {
        free(text);
        return MHD_NO;
    }
    if (text) MHD_add_response_header(res, "Content-Type", "application/json");
    mhd_result rc = MHD_queue_response(con, status, res);
    MHD_destroy_response(res);
    log_request(con, method, url, status);
    return rc;
}

static json_t *error_body(const char *msg)
{
    return json_pack("{s:s}", "error", msg);
}

/* ---- endpoints ---- */

static mhd_result charges(struct MHD_Connection *con, const char *method, const char *url,
                          const upload *u)
{
    json_t *req = json_loadb(u->body ? u->body : "", u->len, 0, NULL);
    json_t *amount = json_object_get(req, "amount");
    if (!json_is_integer(amount)) {
        json_decref(req);
        return reply(con, method, url, 400, error_body("expected {\"amount\": N}"));
    }
    json_int_t n = json_integer_value(amount);
    json_decref(req);
    const char *key = MHD_lookup_connection_value(con, MHD_HEADER_KIND, "Idempotency-Key");

    unsigned status = 201;
    long long k = 0;
    pthread_mutex_lock(&S.mu);
    charge *c = key != NULL ? S.by_key : NULL;
    while (key != NULL && c != NULL && strcmp(c->key, key) != 0) c = c->next;
    if (c != NULL) {
        status = 200; /* the same charge again */
        k = c->k;
        n = c->amount;
    } else if (S.fail_first > 0) {
        S.fail_first--;
        status = 503;
    } else {
        k = ++S.charges;
        charge *nc = key ? calloc(1, sizeof *nc) : NULL;
        if (nc != NULL && (nc->key = strdup(key)) != NULL) {
            nc->k = k;
            nc->amount = n;
            nc->next = S.by_key;
            S.by_key = nc;
        } else {
            free(nc);
        }
    }
    pthread_mutex_unlock(&S.mu);
    if (status == 503) return reply(con, method, url, 503, error_body("unavailable"));
    char id[32];
    snprintf(id, sizeof id, "ch_%lld", k);
    return reply(con, method, url, status, json_pack("{s:s,s:I}", "id", id, "amount", n));
}

static mhd_result add_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    json_t *headers = cls;
    char name[256];
    size_t i = 0;
    for (; i < sizeof name - 1 && key[i]; i++) name[i] = (char)tolower((unsigned char)key[i]);
    name[i] = '\0';
    const char *old = json_string_value(json_object_get(headers, name));
    if (old == NULL) {
        json_object_set_new(headers, name, json_string(value ? value : ""));
    } else {
        size_t n = strlen(old) + strlen(value ? value : "") + 3;
        char *joined = malloc(n);
        if (joined == NULL) return MHD_YES;
        snprintf(joined, n, "%s, %s", old, value ? value : "");
        json_object_set_new(headers, name, json_string(joined));
        free(joined);
    }
    return MHD_YES;
}

static mhd_result echo(struct MHD_Connection *con, const char *method, const char *url,
                       const upload *u)
{
    json_t *headers = json_object();
    MHD_get_connection_values(con, MHD_HEADER_KIND, add_header, headers);
    json_t *body = json_stringn(u->body ? u->body : "", u->len);
    if (body == NULL) body = json_string("(not UTF-8)");
    return reply(con, method, url, 200,
                 json_pack("{s:s,s:s,s:o,s:o}", "method", method, "path", url, "headers", headers,
                           "body", body));
}

static mhd_result slow(struct MHD_Connection *con, const char *method, const char *url)
{
    const char *arg = MHD_lookup_connection_value(con, MHD_GET_ARGUMENT_KIND, "ms");
    long ms = arg ? strtol(arg, NULL, 10) : 0;
    if (ms < 0) ms = 0;
    if (ms > MAX_SLOW) ms = MAX_SLOW;
    log_request(con, method, url, 0); /* status 0: arrived (tests wait for it) */
    for (long left = ms; left > 0 && !atomic_load(&stopping); left -= 10) {
        struct timespec ts = {0, (left < 10 ? left : 10) * 1000000L};
        nanosleep(&ts, NULL);
    }
    return reply(con, method, url, 200, json_pack("{s:i}", "slept", (int)ms));
}

/* GET /barrier?n=N: answers only once N requests are waiting here
 * together (all of them 200 {"met":N}), or after 10 s with 504: proves
 * that a client made N requests at the same time. */
static pthread_mutex_t barrier_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t barrier_cv = PTHREAD_COND_INITIALIZER;
static long barrier_waiting, barrier_round;

static mhd_result barrier(struct MHD_Connection *con, const char *method, const char *url)
{
    const char *arg = MHD_lookup_connection_value(con, MHD_GET_ARGUMENT_KIND, "n");
    long n = arg ? strtol(arg, NULL, 10) : 2;
    if (n < 1 || n > 64) return reply(con, method, url, 400, error_body("n must be 1 to 64"));
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&barrier_mu);
    long round = barrier_round;
    int met = 0;
    if (++barrier_waiting >= n) {
        barrier_waiting = 0;
        barrier_round++;
        pthread_cond_broadcast(&barrier_cv);
        met = 1;
    }
    while (!met && barrier_round == round &&
           pthread_cond_timedwait(&barrier_cv, &barrier_mu, &until) == 0) {}
    if (!met && barrier_round != round) met = 1;
    if (!met) barrier_waiting--;
    pthread_mutex_unlock(&barrier_mu);
    if (!met) return reply(con, method, url, 504, error_body("the others never came"));
    return reply(con, method, url, 200, json_pack("{s:i}", "met", (int)n));
}

static mhd_result status_code(struct MHD_Connection *con, const char *method, const char *url)
{
    char *end;
    long code = strtol(url + strlen("/status/"), &end, 10);
    if (*end != '\0' || code < 200 || code > 599)
        return reply(con, method, url, 400, error_body("status must be 200 to 599"));
    json_t *body = code == 204 || code == 304 ? NULL : json_object();
    return reply(con, method, url, (unsigned)code, body);
}

static mhd_result hooks(struct MHD_Connection *con, const char *method, const char *url)
{
    const char *name = url + 1; /* "hooks/NAME" */
    int post = strcmp(method, "POST") == 0;
    pthread_mutex_lock(&S.mu);
    long long n = count(name, post);
    pthread_mutex_unlock(&S.mu);
    if (post) return reply(con, method, url, 204, NULL);
    return reply(con, method, url, 200, json_pack("{s:I}", "count", (json_int_t)n));
}

static mhd_result flaky(struct MHD_Connection *con, const char *method, const char *url)
{
    const char *arg = MHD_lookup_connection_value(con, MHD_GET_ARGUMENT_KIND, "fail");
    long long fail = arg ? strtoll(arg, NULL, 10) : 0;
    pthread_mutex_lock(&S.mu);
    long long k = count(url + 1, 1); /* "flaky/NAME" */
    pthread_mutex_unlock(&S.mu);
    if (k <= fail) return reply(con, method, url, 500, error_body("flaky"));
    return reply(con, method, url, 200, json_pack("{s:b,s:I}", "ok", 1, "calls", (json_int_t)k));
}

/* GET /raw?type=T&body=B: 200 with that content type (none when absent)
 * and body, plus two X-Twice headers; for clients' non-JSON paths. */
static mhd_result raw(struct MHD_Connection *con, const char *method, const char *url)
{
    const char *type = MHD_lookup_connection_value(con, MHD_GET_ARGUMENT_KIND, "type");
    const char *body = MHD_lookup_connection_value(con, MHD_GET_ARGUMENT_KIND, "body");
    if (body == NULL) body = "";
    struct MHD_Response *res =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (res == NULL) return MHD_NO;
    if (type != NULL) MHD_add_response_header(res, "Content-Type", type);
    MHD_add_response_header(res, "X-Twice", "1");
    MHD_add_response_header(res, "X-Twice", "2");
    mhd_result rc = MHD_queue_response(con, 200, res);
    MHD_destroy_response(res);
    log_request(con, method, url, 200);
    return rc;
}

/* "/PREFIXNAME" with a non-empty NAME without slashes. */
static int named(const char *url, const char *prefix)
{
    size_t n = strlen(prefix);
    return strncmp(url, prefix, n) == 0 && url[n] != '\0' && strchr(url + n, '/') == NULL;
}

static mhd_result route(struct MHD_Connection *con, const char *method, const char *url,
                        const upload *u)
{
    int get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
    if (post && strcmp(url, "/charges") == 0) return charges(con, method, url, u);
    if (post && strcmp(url, "/decline") == 0)
        return reply(con, method, url, 402, error_body("card declined"));
    if ((get || post) && strcmp(url, "/echo") == 0) return echo(con, method, url, u);
    if (get && strcmp(url, "/slow") == 0) return slow(con, method, url);
    if (get && strcmp(url, "/barrier") == 0) return barrier(con, method, url);
    if (get && strcmp(url, "/raw") == 0) return raw(con, method, url);
    if (strncmp(url, "/status/", 8) == 0) return status_code(con, method, url);
    if ((get || post) && named(url, "/hooks/")) return hooks(con, method, url);
    if (post && named(url, "/flaky/")) return flaky(con, method, url);
    return reply(con, method, url, 404, error_body("no route"));
}

static mhd_result on_request(void *cls, struct MHD_Connection *con, const char *url,
                             const char *method, const char *version, const char *data,
                             size_t *data_size, void **con_cls)
{
    (void)cls, (void)version;
    upload *u = *con_cls;
    if (u == NULL) { /* headers only so far */
        u = calloc(1, sizeof *u);
        if (u == NULL) return MHD_NO;
        *con_cls = u;
        return MHD_YES;
    }
    if (*data_size > 0) {
        if (!u->too_big && *data_size > MAX_BODY - u->len) {
            u->too_big = 1;
        } else if (!u->too_big) {
            char *p = realloc(u->body, u->len + *data_size + 1);
            if (p == NULL) return MHD_NO;
            memcpy(p + u->len, data, *data_size);
            u->body = p;
            u->len += *data_size;
            p[u->len] = '\0';
        }
        *data_size = 0;
        return MHD_YES;
    }
    if (u->too_big) return reply(con, method, url, 413, error_body("body larger than 1 MiB"));
    return route(con, method, url, u);
}

static void on_completed(void *cls, struct MHD_Connection *con, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)con, (void)toe;
    upload *u = *con_cls;
    if (u != NULL) free(u->body);
    free(u);
    *con_cls = NULL;
}

/* ---- main ---- */

static int write_port_file(const char *path, unsigned port)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp) return -1;
    FILE *f = fopen(tmp, "w");
    if (f == NULL) return -1;
    int bad = fprintf(f, "%u\n", port) < 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

static int usage(void)
{
    fputs("usage: mocksvc --port-file FILE [--log FILE] [--fail-first N] [--unix PATH]\n", stderr);
    return 2;
}

#define MHD_FLAGS \
    (MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG)

/* A second daemon on a unix socket at path (replaced if it exists). */
static struct MHD_Daemon *start_unix(const char *path)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa.sun_path) return NULL;
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return NULL;
    unlink(path);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 64) != 0) {
        close(fd);
        return NULL;
    }
    struct MHD_Daemon *d =
        MHD_start_daemon(MHD_FLAGS, 0, NULL, NULL, on_request, NULL, MHD_OPTION_LISTEN_SOCKET, fd,
                         MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_END);
    if (d == NULL) close(fd);
    return d;
}

int main(int argc, char **argv)
{
    const char *port_file = NULL, *log_file = NULL, *unix_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) return usage();
        if (strcmp(argv[i], "--port-file") == 0)
            port_file = argv[++i];
        else if (strcmp(argv[i], "--log") == 0)
            log_file = argv[++i];
        else if (strcmp(argv[i], "--fail-first") == 0)
            S.fail_first = atoll(argv[++i]);
        else if (strcmp(argv[i], "--unix") == 0)
            unix_path = argv[++i];
        else
            return usage();
    }
    if (port_file == NULL) return usage();
    if (log_file != NULL && (S.log = fopen(log_file, "a")) == NULL) {
        fprintf(stderr, "mocksvc: %s: %s\n", log_file, strerror(errno));
        return 1;
    }

    /* Threads MHD starts inherit this mask: only sigwait below sees these. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_FLAGS, 0, NULL, NULL, on_request, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_END);
    if (d == NULL) {
        fputs("mocksvc: cannot start the HTTP daemon\n", stderr);
        return 1;
    }
    struct MHD_Daemon *ud = NULL;
    if (unix_path != NULL && (ud = start_unix(unix_path)) == NULL) {
        fprintf(stderr, "mocksvc: cannot listen on %s: %s\n", unix_path, strerror(errno));
        MHD_stop_daemon(d);
        return 1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    if (info == NULL || info->port == 0 || write_port_file(port_file, info->port) != 0) {
        fprintf(stderr, "mocksvc: cannot write the port to %s\n", port_file);
        MHD_stop_daemon(d);
        if (ud != NULL) MHD_stop_daemon(ud);
        return 1;
    }

    int sig = 0;
    while (sigwait(&set, &sig) != 0) {}
    atomic_store(&stopping, 1);
    MHD_stop_daemon(d);
    if (ud != NULL) {
        MHD_stop_daemon(ud);
        unlink(unix_path);
    }
    if (S.log != NULL) fclose(S.log);
    free_state();
    return 0;
}
