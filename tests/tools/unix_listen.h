/* SPDX-License-Identifier: MIT
 * The listening socket of the test tools that play lodestoned on a unix
 * socket (cannedsock, stallsock). The socket is bound and listening under
 * a temporary name, then renamed into place: a caller that waits for the
 * path to exist (test -S) never connects before listen() and gets
 * ECONNREFUSED.
 */
#ifndef LS_TESTS_UNIX_LISTEN_H
#define LS_TESTS_UNIX_LISTEN_H

#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* Returns the listening fd, or -1 after a message on stderr naming tool. */
static int unix_listen(const char *tool, const char *path)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    int n = snprintf(sa.sun_path, sizeof sa.sun_path, "%s.tmp", path);
    if (n < 0 || (size_t)n >= sizeof sa.sun_path) {
        fprintf(stderr, "%s: path too long: %s\n", tool, path);
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    unlink(sa.sun_path);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 16) != 0 ||
        rename(sa.sun_path, path) != 0) {
        perror(tool);
        if (fd >= 0) close(fd);
        return -1;
    }
    return fd;
}

#endif
