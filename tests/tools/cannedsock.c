/* SPDX-License-Identifier: MIT
 * A fake lodestoned that answers every request on a unix socket with one
 * canned JSON answer, and appends each request it got (request line, then
 * the body, one line each) to a log file: for tests of what a caller sends
 * and how it reads an answer (tests/lua/08-route_spec.lua). Runs until
 * killed; one connection at a time, kept alive.
 *   usage: cannedsock SOCKET_PATH STATUS BODY LOG_FILE
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "unix_listen.h"

/* Reads one request into buf; returns its total length, 0 on EOF. */
static size_t read_request(int fd, char *buf, size_t cap, size_t *head_len)
{
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r <= 0) return 0;
        n += (size_t)r;
        buf[n] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end == NULL) continue;
        *head_len = (size_t)(end + 4 - buf);
        size_t want = *head_len;
        char *cl = strstr(buf, "Content-Length: ");
        if (cl && cl < end) want += (size_t)atol(cl + 16);
        if (n >= want || n == cap - 1) return n;
    }
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: cannedsock SOCKET_PATH STATUS BODY LOG_FILE\n");
        return 2;
    }
    int lfd = unix_listen("cannedsock", argv[1]);
    if (lfd < 0) return 1;
    char answer[8192];
    int alen = snprintf(answer, sizeof answer,
                        "HTTP/1.1 %s Canned\r\nContent-Type: application/json\r\n"
                        "Content-Length: %zu\r\n\r\n%s",
                        argv[2], strlen(argv[3]), argv[3]);
    if (alen < 0 || (size_t)alen >= sizeof answer) return 2;
    static char buf[1 << 16];
    for (;;) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0) continue;
        size_t head_len = 0, n;
        while ((n = read_request(fd, buf, sizeof buf, &head_len)) > 0) {
            FILE *log = fopen(argv[4], "a");
            if (log) {
                fprintf(log, "%.*s\n%.*s\n", (int)strcspn(buf, "\r"), buf, (int)(n - head_len),
                        buf + head_len);
                fclose(log);
            }
            if (write(fd, answer, (size_t)alen) != alen) break;
        }
        close(fd);
    }
}
