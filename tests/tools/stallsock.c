/* SPDX-License-Identifier: MIT
 * A fake lodestoned that accepts connections on a unix socket, reads what
 * it is sent and never answers: for tests of callers' timeouts
 * (tests/e2e/client_routes.sh). Runs until killed.
 *   usage: stallsock SOCKET_PATH
 */
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "unix_listen.h"

#define MAX_CONN 64

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: stallsock SOCKET_PATH\n");
        return 2;
    }
    int lfd = unix_listen("stallsock", argv[1]);
    if (lfd < 0) return 1;
    struct pollfd p[MAX_CONN + 1];
    int n = 1;
    p[0].fd = lfd;
    p[0].events = POLLIN;
    for (;;) {
        if (poll(p, (nfds_t)n, -1) < 0) continue;
        for (int i = n - 1; i >= 1; i--) {
            if (!p[i].revents) continue;
            char buf[4096];
            if (read(p[i].fd, buf, sizeof buf) > 0) continue; /* read and ignore */
            close(p[i].fd);
            p[i] = p[--n];
        }
        if (p[0].revents & POLLIN) {
            int fd = accept(lfd, NULL, NULL);
            if (fd >= 0 && n <= MAX_CONN) {
                p[n].fd = fd;
                p[n].events = POLLIN;
                p[n].revents = 0;
                n++;
            } else if (fd >= 0) {
                close(fd);
            }
        }
    }
}
