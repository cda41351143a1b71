/* SPDX-License-Identifier: MIT
 * The jwks_url fetcher: one background thread per fetcher GETs the URL with
 * libcurl's multi interface (so that stopping wakes a transfer at once),
 * checks that the body is a usable JWK Set, and replaces the cache file
 * atomically (temporary file, fsync, rename). libcurl's global init is
 * curl_init.c's, shared with lodestone.httpc. See jwks_fetch.h for the
 * schedule and the rules on threads and fork. */
#include "ls_config.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "curl_init.h"
#include "jwks_fetch.h"
#include "lodestone/ls_alloc.h"
#include "lodestone/ls_buf.h"
#include "lodestone/ls_jwt.h"

#define URL_MAX 4096

struct ls_jwks_fetch {
    char *url;
    char *path; /* the cache file */
    char *dir;  /* its directory, synced after a rename */
    ls_jwks_fetch_opts o;

    pid_t pid; /* process the thread was started in, 0: none; owner thread only */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;

    atomic_int stop; /* ls_jwks_fetch_free wants the thread gone */
    /* A refetch asked for and not yet served: 1 + the installs the asker's
     * keys came from (see ls_jwks_fetch_request); 0 when none. */
    atomic_uint_fast64_t asked;
    /* Cache files written, and copies another fetcher wrote that answered
     * an ask: see ls_jwks_fetch_installs. */
    atomic_uint_fast64_t installs;

    /* under mu */
    CURLM *multi; /* the thread's, while it runs: woken to stop a transfer */
    uint64_t fail_seq;
    int failing; /* the latest fetch failed; fail says why */
    ls_err fail;
    ls_jwks_fetch_stats st;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sync_init(ls_jwks_fetch_t *f)
{
    pthread_mutex_init(&f->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&f->cv, &ca);
    pthread_condattr_destroy(&ca);
}

/* ---- URLs ---- */

static int loopback_host(const char *host)
{
    struct in_addr a;
    if (strcasecmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0) return 1;
    return inet_pton(AF_INET, host, &a) == 1 && (ntohl(a.s_addr) >> 24) == 127;
}

ls_rc ls_jwks_fetch_check_url(const char *url, ls_err *err)
{
    if (url == NULL || url[0] == '\0') return ls_err_set(err, LS_EINVAL, "empty URL");
    if (strlen(url) > URL_MAX)
        return ls_err_set(err, LS_EINVAL, "URL longer than %d bytes", URL_MAX);
    CURLU *u = curl_url();
    if (u == NULL) return ls_err_set(err, LS_ENOMEM, "out of memory");
    char *scheme = NULL, *host = NULL, *part = NULL;
    ls_rc rc = LS_OK;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK) {
        rc = ls_err_set(err, LS_EINVAL, "\"%s\" is not an absolute http or https URL", url);
    } else if (strcmp(scheme, "https") != 0 && strcmp(scheme, "http") != 0) {
        rc = ls_err_set(err, LS_EINVAL, "scheme \"%s\": use https", scheme);
    } else if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        rc = ls_err_set(err, LS_EINVAL, "\"%s\" has no host", url);
    } else if (curl_url_get(u, CURLUPART_USER, &part, 0) == CURLUE_OK ||
               curl_url_get(u, CURLUPART_PASSWORD, &part, 0) == CURLUE_OK) {
        rc = ls_err_set(err, LS_EINVAL, "a user name or password in the URL is not supported");
    } else if (strcmp(scheme, "http") == 0 && !loopback_host(host)) {
        rc = ls_err_set(err, LS_EINVAL,
                        "use https: plain http only to a loopback address (127.0.0.1, [::1], "
                        "localhost)");
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(part);
    curl_url_cleanup(u);
    return rc;
}

/* ---- one transfer ---- */

typedef struct {
    ls_jwks_fetch_t *f;
    ls_buf body;
    int too_big, nomem;
    int64_t max_age; /* seconds from Cache-Control, -1: none */
} xfer;

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    xfer *x = ud;
    size_t len = size * n;
    if (len > x->f->o.max_body - x->body.len) {
        x->too_big = 1;
        return 0; /* aborts the transfer */
    }
    if (ls_buf_append(&x->body, data, len, NULL) != LS_OK) {
        x->nomem = 1;
        return 0;
    }
    return len;
}

/* Seconds a Cache-Control value lets us keep the response: its max-age, 0
 * for no-cache or no-store, -1 when it says neither. */
static int64_t parse_max_age(const char *s, size_t n)
{
    int64_t out = -1;
    size_t i = 0;
    while (i < n) {
        while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == ',')) i++;
        size_t start = i;
        while (i < n && s[i] != ',') i++;
        size_t end = i;
        while (end > start && (s[end - 1] == ' ' || s[end - 1] == '\t' || s[end - 1] == '\r' ||
                               s[end - 1] == '\n'))
            end--;
        const char *d = s + start;
        size_t dl = end - start, j = 8, digits = 0;
        int64_t v = 0;
        if (dl > 8 && strncasecmp(d, "max-age=", 8) == 0) {
            if (d[j] == '"') j++;
            for (; j < dl && d[j] >= '0' && d[j] <= '9'; j++, digits++)
                if (v < INT64_C(1000000000)) v = v * 10 + (d[j] - '0');
            if (digits == 0) continue;
        } else if (!(dl == 8 &&
                     (strncasecmp(d, "no-cache", 8) == 0 || strncasecmp(d, "no-store", 8) == 0))) {
            continue;
        }
        if (out < 0 || v < out) out = v;
    }
    return out;
}

static size_t on_header(char *data, size_t size, size_t n, void *ud)
{
    xfer *x = ud;
    size_t len = size * n;
    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        x->max_age = -1; /* a new response (after a redirect) */
    } else if (len > 14 && strncasecmp(data, "Cache-Control:", 14) == 0) {
        int64_t v = parse_max_age(data + 14, len - 14);
        if (v >= 0 && (x->max_age < 0 || v < x->max_age)) x->max_age = v;
    }
    return len;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    const xfer *x = ud;
    return atomic_load(&x->f->stop) ? 1 : 0; /* non-zero aborts */
}

static CURLcode configure(CURL *h, xfer *x, char *errbuf)
{
    const ls_jwks_fetch_t *f = x->f;
    CURLcode rc = CURLE_OK;
#define SET(opt, val) \
    if (rc == CURLE_OK) rc = curl_easy_setopt(h, opt, val)
    SET(CURLOPT_URL, f->url);
#if LIBCURL_VERSION_NUM >= 0x075500
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_REDIR_PROTOCOLS_STR, "https");
#else
    SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    SET(CURLOPT_REDIR_PROTOCOLS, (long)CURLPROTO_HTTPS);
#endif
    SET(CURLOPT_FOLLOWLOCATION, 1L);
    SET(CURLOPT_MAXREDIRS, (long)LS_JWKS_FETCH_MAX_REDIRS);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_CONNECTTIMEOUT_MS, (long)f->o.connect_timeout_ms);
    SET(CURLOPT_TIMEOUT_MS, (long)f->o.timeout_ms);
    SET(CURLOPT_SSL_VERIFYPEER, 1L);
    SET(CURLOPT_SSL_VERIFYHOST, 2L);
    SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)f->o.max_body);
    SET(CURLOPT_FORBID_REUSE, 1L);
    SET(CURLOPT_USERAGENT, "lodestone/" LS_VERSION);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, x);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, x);
    SET(CURLOPT_NOPROGRESS, 0L);
    SET(CURLOPT_XFERINFOFUNCTION, on_progress);
    SET(CURLOPT_XFERINFODATA, x);
    SET(CURLOPT_ERRORBUFFER, errbuf);
#if LIBCURL_VERSION_NUM >= 0x075700
    /* Do not wait for a name lookup still running when we stop: its thread
     * is left to finish on its own (libcurl stays mapped, see pin). */
    SET(CURLOPT_QUICK_EXIT, 1L);
#endif
#undef SET
    if (rc == CURLE_OK) (void)curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, ""); /* optional */
    return rc;
}

/* Runs one GET on multi m into x. LS_OK with the body of a 200 response. */
static ls_rc get_url(CURLM *m, xfer *x, ls_err *err)
{
    ls_jwks_fetch_t *f = x->f;
    char errbuf[CURL_ERROR_SIZE] = "";
    CURL *h = curl_easy_init();
    if (h == NULL) return ls_err_set(err, LS_ENOMEM, "cannot create a libcurl handle");
    CURLcode res = configure(h, x, errbuf);
    if (res != CURLE_OK) {
        curl_easy_cleanup(h);
        return ls_err_set(err, LS_EIO, "libcurl: %s", curl_easy_strerror(res));
    }
    CURLMcode mc = curl_multi_add_handle(m, h);
    int running = 1, done = 0;
    while (mc == CURLM_OK && !atomic_load(&f->stop)) {
        mc = curl_multi_perform(m, &running);
        if (mc != CURLM_OK || running == 0) break;
        mc = curl_multi_poll(m, NULL, 0, 1000, NULL); /* ls_jwks_fetch_free wakes it */
    }
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(m, &left)) != NULL) {
        if (msg->msg == CURLMSG_DONE && msg->easy_handle == h) {
            res = msg->data.result;
            done = 1;
        }
    }
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_multi_remove_handle(m, h);
    curl_easy_cleanup(h);

    if (atomic_load(&f->stop)) return ls_err_set(err, LS_EIO, "stopped");
    if (mc != CURLM_OK) return ls_err_set(err, LS_EIO, "libcurl: %s", curl_multi_strerror(mc));
    if (!done) return ls_err_set(err, LS_EIO, "the transfer did not finish");
    if (x->too_big || res == CURLE_FILESIZE_EXCEEDED)
        return ls_err_set(err, LS_EFORMAT, "response larger than %zu bytes", f->o.max_body);
    if (x->nomem) return ls_err_set(err, LS_ENOMEM, "out of memory");
    if (res == CURLE_UNSUPPORTED_PROTOCOL || res == CURLE_TOO_MANY_REDIRECTS)
        return ls_err_set(err, LS_EIO, "redirect not followed (at most %d, only to https): %s",
                          LS_JWKS_FETCH_MAX_REDIRS, errbuf[0] ? errbuf : curl_easy_strerror(res));
    if (res != CURLE_OK)
        return ls_err_set(err, LS_EIO, "%s", errbuf[0] ? errbuf : curl_easy_strerror(res));
    if (status != 200) return ls_err_set(err, LS_EIO, "HTTP status %ld", status);
    return LS_OK;
}

static ls_rc sys_err(ls_err *err, const char *what, const char *path)
{
    return ls_err_set(err, errno == ENOENT ? LS_ENOTFOUND : LS_EIO, "cache %s: %s: %s", path, what,
                      strerror(errno));
}

/* Replaces the cache file with len bytes of data: a new file beside it,
 * synced, then renamed over it, so readers see the old or the new whole. */
static ls_rc write_cache(const ls_jwks_fetch_t *f, const unsigned char *data, size_t len,
                         ls_err *err)
{
    size_t n = strlen(f->path);
    char *tmp = ls_malloc(n + 8);
    if (tmp == NULL) return ls_err_set(err, LS_ENOMEM, "out of memory");
    memcpy(tmp, f->path, n);
    memcpy(tmp + n, ".XXXXXX", 8);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        ls_rc rc = sys_err(err, "cannot create a file beside it", f->path);
        ls_free(tmp);
        return rc;
    }
    ls_rc rc = LS_OK;
    while (len > 0) {
        ssize_t w = write(fd, data, len);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
            rc = sys_err(err, "write", tmp);
            break;
        }
        data += w;
        len -= (size_t)w;
    }
    if (rc == LS_OK && fchmod(fd, 0644) != 0) rc = sys_err(err, "chmod", tmp);
    if (rc == LS_OK && fsync(fd) != 0) rc = sys_err(err, "fsync", tmp);
    if (close(fd) != 0 && rc == LS_OK) rc = sys_err(err, "close", tmp);
    if (rc == LS_OK && rename(tmp, f->path) != 0) rc = sys_err(err, "rename", tmp);
    if (rc != LS_OK) {
        unlink(tmp);
    } else if ((fd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
        (void)fsync(fd); /* the rename itself survives a crash */
        close(fd);
    }
    ls_free(tmp);
    return rc;
}

/* Fetches, checks and installs the keys once. *max_age: from the response. */
static ls_rc fetch_once(ls_jwks_fetch_t *f, CURLM *m, int64_t *max_age, ls_err *err)
{
    xfer x = {.f = f, .body = LS_BUF_INIT, .max_age = -1};
    ls_rc rc = get_url(m, &x, err);
    if (rc == LS_OK) {
        ls_jwks_t *ks = NULL;
        const char *text = x.body.ptr ? (const char *)x.body.ptr : "";
        rc = ls_jwks_parse(&ks, text, x.body.len, err);
        if (rc != LS_OK)
            ls_err_prefix(err, "not a usable JWK Set");
        else if (ls_jwks_count(ks) == 0)
            rc = ls_err_set(err, LS_EFORMAT, "the JWK Set has no key this server can use");
        else if (ls_jwks_count(ks) > f->o.max_keys)
            rc = ls_err_set(err, LS_EFORMAT,
                            "the JWK Set has %zu usable keys, more than the %zu taken (each "
                            "worker would check them all again on its request path)",
                            ls_jwks_count(ks), f->o.max_keys);
        else if (ls_jwks_count(ks) + ls_jwks_skipped(ks) > f->o.max_keys)
            rc = ls_err_set(err, LS_EFORMAT,
                            "the JWK Set has %zu keys (%zu of them skipped as unusable), more "
                            "than the %zu taken (each worker would check them all again on its "
                            "request path)",
                            ls_jwks_count(ks) + ls_jwks_skipped(ks), ls_jwks_skipped(ks),
                            f->o.max_keys);
        ls_jwks_free(ks);
    }
    if (rc == LS_OK) rc = write_cache(f, x.body.ptr, x.body.len, err);
    *max_age = x.max_age;
    ls_buf_free(&x.body);
    return rc;
}

/* ---- the thread ---- */

/* How much longer the cache file stays fresh: interval_ms after it was
 * written (by this fetcher, an earlier run, or another process's fetcher),
 * 0 when it is missing or older, or (check_keys) holds no usable key. */
static int64_t fresh_ms(const ls_jwks_fetch_t *f, int64_t interval_ms, int check_keys)
{
    struct stat st;
    struct timespec wall;
    if (stat(f->path, &st) != 0) return 0;
    clock_gettime(CLOCK_REALTIME, &wall);
    int64_t age = ((int64_t)wall.tv_sec - (int64_t)st.st_mtim.tv_sec) * 1000 +
                  (wall.tv_nsec - st.st_mtim.tv_nsec) / 1000000;
    if (age < 0 || age >= interval_ms) return 0;
    if (check_keys) {
        ls_jwks_t *ks = NULL;
        if (ls_jwks_load_file(&ks, f->path, NULL) != LS_OK) return 0;
        size_t n = ls_jwks_count(ks);
        ls_jwks_free(ks);
        if (n == 0) return 0;
    }
    return interval_ms - age;
}

static int64_t refresh_after(const ls_jwks_fetch_t *f, int64_t max_age)
{
    if (max_age < 0) return f->o.refresh_ms;
    int64_t ms = max_age * 1000;
    if (ms < f->o.min_refresh_ms) return f->o.min_refresh_ms;
    if (ms > f->o.max_refresh_ms) return f->o.max_refresh_ms;
    return ms;
}

/* ms plus up to a tenth more, so that processes sharing a cache, started
 * together or refreshing from the same file, drift apart and one of them
 * finds the file already fresh. */
static int64_t spread(uint64_t *seed, int64_t ms)
{
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    return ms + (int64_t)(*seed % (uint64_t)(ms / 10 + 1));
}

static void wait_until(ls_jwks_fetch_t *f, int64_t until_ms)
{
    struct timespec ts = {.tv_sec = (time_t)(until_ms / 1000),
                          .tv_nsec = (long)(until_ms % 1000) * 1000000};
    pthread_cond_timedwait(&f->cv, &f->mu, &ts);
}

/* Notes a fetch's outcome; called with mu held. delay_ms: until the next try. */
static void record(ls_jwks_fetch_t *f, ls_rc rc, const ls_err *err, int64_t delay_ms)
{
    if (rc == LS_OK) {
        f->failing = 0;
        f->st.installs++;
        atomic_fetch_add(&f->installs, 1);
        return;
    }
    f->st.failures++;
    f->fail_seq++;
    f->failing = 1;
    ls_err_set(&f->fail, rc, "jwks_url: %s; %s, next try in %.3gs (%s)", err->msg,
               access(f->path, F_OK) == 0 ? "keeping the cached keys" : "no keys yet",
               (double)delay_ms / 1000.0, f->url);
}

/* How soon a fetcher that found another one fetching into the same cache
 * looks again (by then that copy is usually fresh, and it waits for it to
 * age instead). */
#define FETCH_LOCK_RETRY_MS 25

/* A copy of the cache this young that another fetcher wrote may not be in
 * this process's keys yet (the engine looks at the file once a second), so
 * it answers an ask as a fetch would. */
#define NEW_COPY_MS 2000

/* Which copy of the cache file is in place (a rename makes a new inode). */
typedef struct {
    int exists;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtim;
} copy_id;

static copy_id copy_now(const char *path)
{
    struct stat st;
    copy_id c = {0};
    if (stat(path, &st) != 0) return c;
    c.exists = 1;
    c.dev = st.st_dev;
    c.ino = st.st_ino;
    c.size = st.st_size;
    c.mtim = st.st_mtim;
    return c;
}

static int same_copy(const copy_id *a, const copy_id *b)
{
    if (!a->exists || !b->exists) return a->exists == b->exists;
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtim.tv_sec == b->mtim.tv_sec && a->mtim.tv_nsec == b->mtim.tv_nsec;
}

/* 1 when c was written less than NEW_COPY_MS ago (system clock). */
static int new_copy(const copy_id *c)
{
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    int64_t age = ((int64_t)wall.tv_sec - (int64_t)c->mtim.tv_sec) * 1000 +
                  (wall.tv_nsec - c->mtim.tv_nsec) / 1000000;
    return c->exists && age >= 0 && age < NEW_COPY_MS;
}

/* Whether an ask is answered by the copy in place, cur, without fetching:
 * when another fetcher (another lighttpd worker) put it there, unseen by
 * this one (not known, the copy this fetcher last wrote or took), while
 * this one waited for the fetch lock (since waited_on), or so recently that
 * the engine may not have loaded it yet. Then N workers asking for one
 * unknown kid cause one fetch, not N in turn. */
static int answered_by(const copy_id *cur, const copy_id *known, const copy_id *waited_on)
{
    if (!cur->exists || same_copy(cur, known)) return 0;
    return (waited_on != NULL && !same_copy(cur, waited_on)) || new_copy(cur);
}

/* Takes the cache's fetch lock (flock on PATH.lock) without waiting, so
 * that processes sharing a cache (lighttpd workers) fetch one at a time:
 * 0 when another fetcher holds it; else 1, with *fd to close once the
 * fetch is done (-1 when the lock file cannot be made: then this fetcher
 * goes on as if alone). */
static int fetch_lock(const ls_jwks_fetch_t *f, int *fd)
{
    *fd = -1;
    size_t n = strlen(f->path);
    char *lp = ls_malloc(n + 6);
    if (lp == NULL) return 1;
    memcpy(lp, f->path, n);
    memcpy(lp + n, ".lock", 6);
    int lfd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    ls_free(lp);
    if (lfd < 0) return 1;
    if (flock(lfd, LOCK_EX | LOCK_NB) != 0) {
        int busy = errno == EWOULDBLOCK;
        close(lfd);
        return busy ? 0 : 1;
    }
    *fd = lfd;
    return 1;
}

static void fetch_unlock(int fd)
{
    if (fd >= 0) close(fd); /* (releases the flock) */
}

static void *fetch_main(void *ud)
{
    ls_jwks_fetch_t *f = ud;
    CURLM *m = NULL;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    uint64_t seed = ((uint64_t)getpid() << 32) ^ (uint64_t)t0.tv_nsec ^ (uintptr_t)f;
    if (seed == 0) seed = 1;
    int64_t interval = f->o.refresh_ms; /* set by the last success */
    int64_t fresh = fresh_ms(f, interval, 1);
    int64_t next = mono_ms() + (fresh ? spread(&seed, fresh) : 0);
    int64_t ask_after = INT64_MIN, backoff = 0;
    /* The copy of the cache this process's keys come from, as far as this
     * fetcher knows (the one in place now, the engine loaded at start); and
     * the one that was in place when an ask found the fetch lock busy. */
    copy_id known = copy_now(f->path), waited_on = {0};
    int waiting = 0;
    pthread_mutex_lock(&f->mu);
    while (!atomic_load(&f->stop)) {
        int64_t now = mono_ms();
        int asked = atomic_load(&f->asked) != 0, due = now >= next;
        if (!due && !(asked && now >= ask_after)) {
            wait_until(f, asked && ask_after < next ? ask_after : next);
            continue;
        }
        /* Another process sharing the cache (a lighttpd worker) may have
         * refreshed it: then wait for that copy to age instead. One that is
         * fetching now holds the fetch lock: look again shortly. */
        pthread_mutex_unlock(&f->mu);
        int64_t left = asked ? 0 : fresh_ms(f, interval, 0);
        copy_id cur = asked ? copy_now(f->path) : known;
        int answered = asked && answered_by(&cur, &known, waiting ? &waited_on : NULL);
        int lock_fd = -1, busy = left <= 0 && !answered && !fetch_lock(f, &lock_fd);
        pthread_mutex_lock(&f->mu);
        if (left > 0) {
            waiting = 0;
            next = mono_ms() + spread(&seed, left);
            continue;
        }
        if (answered) {
            /* Another fetcher's new copy answers the ask. Counted as an
             * install, so that the engine looks at the file now and asks
             * made with older keys are dropped. (A due refresh then finds
             * the copy fresh.) */
            waiting = 0;
            known = cur;
            uint64_t ask = atomic_exchange(&f->asked, 0);
            if (ask && ask - 1 >= atomic_load(&f->installs)) { /* (not one made stale) */
                f->st.requests++;
                f->st.shared++;
            }
            atomic_fetch_add(&f->installs, 1);
            continue;
        }
        if (busy) {
            if (asked && !waiting) {
                waited_on = cur;
                waiting = 1;
            }
            next = mono_ms() + FETCH_LOCK_RETRY_MS;
            if (asked) ask_after = next;
            continue;
        }
        waiting = 0;
        uint64_t ask = atomic_exchange(&f->asked, 0);
        if (ask && ask - 1 < atomic_load(&f->installs))
            ask = 0; /* asked with keys a newer install is replacing: not an ask */
        if (!ask && !due) {
            fetch_unlock(lock_fd);
            continue;
        }
        if (ask) {
            f->st.requests++;
            if (!due) ask_after = now + f->o.kid_refetch_ms; /* a fetch only because asked */
        }
        f->st.attempts++;
        if (m == NULL) f->multi = m = curl_multi_init();
        pthread_mutex_unlock(&f->mu);

        ls_err err = {0};
        int64_t max_age = -1;
        ls_rc rc = m ? fetch_once(f, m, &max_age, &err)
                     : ls_err_set(&err, LS_ENOMEM, "cannot create a libcurl multi handle");
        if (rc == LS_OK) known = copy_now(f->path); /* ours, before anyone else's */
        fetch_unlock(lock_fd);                      /* (the new copy, if any, is in place) */

        pthread_mutex_lock(&f->mu);
        if (atomic_load(&f->stop)) break;
        if (atomic_exchange(&f->asked, 0)) f->st.requests++; /* asked meanwhile: answered */
        if (rc == LS_OK) {
            backoff = 0;
            interval = refresh_after(f, max_age);
            next = mono_ms() + spread(&seed, interval);
        } else {
            backoff = backoff ? backoff * 2 : f->o.retry_min_ms;
            if (backoff > f->o.retry_max_ms) backoff = f->o.retry_max_ms;
            next = mono_ms() + spread(&seed, backoff);
        }
        record(f, rc, &err, backoff);
    }
    f->multi = NULL;
    pthread_mutex_unlock(&f->mu);
    if (m) curl_multi_cleanup(m);
    return NULL;
}

/* Starts the thread in this process unless it runs here already. */
static ls_rc ensure_thread(ls_jwks_fetch_t *f, ls_err *err)
{
    pid_t me = getpid();
    if (f->pid == me) return LS_OK;
    if (f->pid != 0) {
        /* Forked: the thread is the parent's and is not here; its lock may
         * have been held at the fork, and its handles are not ours. */
        sync_init(f);
        f->multi = NULL;
        f->pid = 0;
    }
    const char *why = ls_curl_init();
    if (why != NULL)
        return ls_err_set(err, LS_EIO, "jwks_url: libcurl failed to initialise: %s", why);
    atomic_store(&f->stop, 0);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* the thread inherits: no signal lands there */
    int e = pthread_create(&f->thread, NULL, fetch_main, f);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e != 0)
        return ls_err_set(err, LS_EIO, "jwks_url: cannot start the fetch thread: %s", strerror(e));
    pthread_setname_np(f->thread, "ls-jwks-fetch");
    f->pid = me;
    return LS_OK;
}

/* ---- API ---- */

ls_rc ls_jwks_fetch_new(ls_jwks_fetch_t **out, const char *url, const char *cache_path,
                        const ls_jwks_fetch_opts *opts, ls_err *err)
{
    if (out == NULL || url == NULL || cache_path == NULL || cache_path[0] == '\0')
        return ls_err_set(err, LS_EINVAL, "NULL argument");
    ls_rc rc = ls_jwks_fetch_check_url(url, err);
    if (rc != LS_OK) return rc;
    ls_jwks_fetch_opts o = opts ? *opts : (ls_jwks_fetch_opts){0};
    if (!o.refresh_ms) o.refresh_ms = LS_JWKS_FETCH_REFRESH_MS;
    if (!o.min_refresh_ms) o.min_refresh_ms = LS_JWKS_FETCH_MIN_REFRESH_MS;
    if (!o.max_refresh_ms) o.max_refresh_ms = LS_JWKS_FETCH_MAX_REFRESH_MS;
    if (!o.retry_min_ms) o.retry_min_ms = LS_JWKS_FETCH_RETRY_MIN_MS;
    if (!o.retry_max_ms) o.retry_max_ms = LS_JWKS_FETCH_RETRY_MAX_MS;
    if (!o.kid_refetch_ms) o.kid_refetch_ms = LS_JWKS_FETCH_KID_MS;
    if (!o.connect_timeout_ms) o.connect_timeout_ms = LS_JWKS_FETCH_CONNECT_MS;
    if (!o.timeout_ms) o.timeout_ms = LS_JWKS_FETCH_TIMEOUT_MS;
    if (!o.max_body) o.max_body = LS_JWKS_FETCH_MAX_BODY;
    if (!o.max_keys) o.max_keys = LS_JWKS_FETCH_MAX_KEYS;
    const int64_t week = INT64_C(86400000) * 7;
    if (o.refresh_ms < 0 || o.refresh_ms > week || o.min_refresh_ms < 0 ||
        o.min_refresh_ms > o.max_refresh_ms || o.max_refresh_ms > week || o.retry_min_ms < 0 ||
        o.retry_min_ms > o.retry_max_ms || o.retry_max_ms > week || o.kid_refetch_ms < 0 ||
        o.kid_refetch_ms > week || o.connect_timeout_ms < 0 || o.connect_timeout_ms > week ||
        o.timeout_ms < 0 || o.timeout_ms > week)
        return ls_err_set(err, LS_EINVAL, "jwks_url: fetch intervals out of range");

    ls_jwks_fetch_t *f = ls_calloc(1, sizeof *f);
    if (f == NULL) return ls_err_set(err, LS_ENOMEM, "out of memory");
    f->o = o;
    const char *slash = strrchr(cache_path, '/');
    f->url = ls_strdup(url);
    f->path = ls_strdup(cache_path);
    f->dir = slash == NULL         ? ls_strdup(".")
             : slash == cache_path ? ls_strdup("/")
                                   : ls_strndup(cache_path, (size_t)(slash - cache_path));
    if (f->url == NULL || f->path == NULL || f->dir == NULL) {
        ls_free(f->url);
        ls_free(f->path);
        ls_free(f->dir);
        ls_free(f);
        return ls_err_set(err, LS_ENOMEM, "out of memory");
    }
    atomic_init(&f->stop, 0);
    atomic_init(&f->asked, 0);
    atomic_init(&f->installs, 0);
    sync_init(f);
    *out = f;
    return LS_OK;
}

void ls_jwks_fetch_free(ls_jwks_fetch_t *f)
{
    if (f == NULL) return;
    pid_t me = getpid();
    if (f->pid == me) {
        pthread_mutex_lock(&f->mu);
        atomic_store(&f->stop, 1);
        if (f->multi) curl_multi_wakeup(f->multi); /* thread-safe in libcurl */
        pthread_cond_signal(&f->cv);
        pthread_mutex_unlock(&f->mu);
        pthread_join(f->thread, NULL);
    }
    if (f->pid == 0 || f->pid == me) { /* a forked child leaves the parent's alone */
        pthread_cond_destroy(&f->cv);
        pthread_mutex_destroy(&f->mu);
    }
    ls_free(f->url);
    ls_free(f->path);
    ls_free(f->dir);
    ls_free(f);
}

ls_rc ls_jwks_fetch_poll(ls_jwks_fetch_t *f, uint64_t *seen, ls_err *err)
{
    ls_rc rc = ensure_thread(f, err);
    if (rc != LS_OK) return rc;
    pthread_mutex_lock(&f->mu);
    if (f->fail_seq != *seen) {
        *seen = f->fail_seq;
        if (f->failing) {
            rc = f->fail.code != LS_OK ? f->fail.code : LS_EIO;
            if (err) *err = f->fail;
        }
    }
    pthread_mutex_unlock(&f->mu);
    return rc;
}

uint64_t ls_jwks_fetch_installs(const ls_jwks_fetch_t *f)
{
    return atomic_load_explicit(&((ls_jwks_fetch_t *)f)->installs, memory_order_acquire);
}

void ls_jwks_fetch_request(ls_jwks_fetch_t *f, uint64_t seen)
{
    /* The newest view wins: an ask made with newer keys replaces a pending
     * one made with older keys (which the fetcher would drop). */
    uint64_t want = seen + 1, prev = atomic_load(&f->asked);
    while (prev < want && !atomic_compare_exchange_weak(&f->asked, &prev, want)) {}
    if (prev != 0) return; /* already pending */
    /* No thread here yet (or only the parent's): the next poll starts one,
     * and it sees the flag. */
    if (f->pid == 0 || f->pid != getpid()) return;
    pthread_mutex_lock(&f->mu);
    pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

void ls_jwks_fetch_get_stats(ls_jwks_fetch_t *f, ls_jwks_fetch_stats *st)
{
    pthread_mutex_lock(&f->mu);
    *st = f->st;
    pthread_mutex_unlock(&f->mu);
}
