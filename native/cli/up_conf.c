/* SPDX-License-Identifier: MIT
 * `lodestone up`: configuration from templates (@NAME@ placeholders) and
 * the network checks before and after starting (see up.h).
 */
#include "ls_config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli.h"
#include "up.h"

/* ---- templates ---- */

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "lodestone up: cannot read %s: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t cap = 8192, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf != NULL && (got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n - 1 == 0) {
            char *grown = realloc(buf, cap * 2);
            if (grown == NULL) free(buf);
            buf = grown;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf == NULL) {
        fprintf(stderr, "lodestone up: out of memory reading %s\n", path);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* The length of an @NAME@ placeholder's NAME at p (just after an '@'), or
 * 0 when p does not start one. */
static size_t placeholder(const char *p)
{
    size_t n = 0;
    while ((p[n] >= 'A' && p[n] <= 'Z') || p[n] == '_') n++;
    return n > 0 && p[n] == '@' ? n : 0;
}

static const char *lookup(const up_var *vars, size_t nvars, const char *name, size_t n)
{
    for (size_t i = 0; i < nvars; i++)
        if (strlen(vars[i].name) == n && memcmp(vars[i].name, name, n) == 0) return vars[i].value;
    return NULL;
}

static int expand(FILE *f, const char *in, const char *text, const up_var *vars, size_t nvars)
{
    for (const char *p = text; *p; p++) {
        size_t n = *p == '@' ? placeholder(p + 1) : 0;
        if (n == 0) {
            fputc(*p, f);
            continue;
        }
        const char *v = lookup(vars, nvars, p + 1, n);
        if (v == NULL) {
            fprintf(stderr, "lodestone up: %s: unknown placeholder @%.*s@\n", in, (int)n, p + 1);
            return -1;
        }
        fputs(v, f);
        p += n + 1;
    }
    return 0;
}

int up_render(const char *in, const char *out, const up_var *vars, size_t nvars)
{
    size_t len;
    char *text = read_all(in, &len);
    if (text == NULL) return -1;
    char tmp[UP_PATH];
    if (cli_fmt(tmp, sizeof tmp, "%s.tmp", out) != 0) {
        free(text);
        fprintf(stderr, "lodestone up: path too long: %s\n", out);
        return -1;
    }
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        fprintf(stderr, "lodestone up: cannot write %s: %s\n", tmp, strerror(errno));
        free(text);
        return -1;
    }
    int rc = expand(f, in, text, vars, nvars);
    free(text);
    if (fclose(f) != 0 && rc == 0) {
        fprintf(stderr, "lodestone up: cannot write %s: %s\n", tmp, strerror(errno));
        rc = -1;
    }
    if (rc == 0 && rename(tmp, out) != 0) {
        fprintf(stderr, "lodestone up: cannot write %s: %s\n", out, strerror(errno));
        rc = -1;
    }
    if (rc != 0) unlink(tmp);
    return rc;
}

int up_quotable(const char *s)
{
    for (; *s; s++)
        if (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20) return 0;
    return 1;
}

/* ---- the network ---- */

static struct sockaddr_in loopback(int port)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

int up_port_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fprintf(stderr, "lodestone up: socket: %s\n", strerror(errno));
        return -1;
    }
    /* As lighttpd binds: a port in TIME_WAIT is free, a listener is not. */
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = loopback(port);
    int rc = bind(fd, (struct sockaddr *)&a, sizeof a);
    int e = errno;
    close(fd);
    if (rc == 0) return 0;
    if (e == EADDRINUSE)
        fprintf(stderr,
                "lodestone up: port %d on 127.0.0.1 is in use (another `lodestone up` or web "
                "server?); choose another with --port N (make demo PORT=N)\n",
                port);
    else
        fprintf(stderr, "lodestone up: cannot use port %d on 127.0.0.1: %s\n", port, strerror(e));
    return -1;
}

int up_can_connect(int port, const char *path)
{
    int fd = socket(port > 0 ? AF_INET : AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    int rc;
    if (port > 0) {
        struct sockaddr_in a = loopback(port);
        rc = connect(fd, (struct sockaddr *)&a, sizeof a);
    } else {
        struct sockaddr_un u;
        memset(&u, 0, sizeof u);
        u.sun_family = AF_UNIX;
        if (strlen(path) >= sizeof u.sun_path) {
            close(fd);
            return 0;
        }
        memcpy(u.sun_path, path, strlen(path) + 1);
        rc = connect(fd, (struct sockaddr *)&u, sizeof u);
    }
    close(fd);
    return rc == 0;
}
