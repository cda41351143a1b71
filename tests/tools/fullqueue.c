/* SPDX-License-Identifier: MIT
 * A TCP listener on 127.0.0.1 whose accept queue is full: it never accepts,
 * and its own connections fill the queue, so a client's connect gets no
 * answer and times out. For tests of what callers say when a connect, not
 * an answer, times out (tests/e2e/key_rotation.sh, tests/lua/06-http_spec).
 * Writes the port to PORT_FILE (atomically) once the queue is full; runs
 * until killed.
 *   usage: fullqueue PORT_FILE
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define FILLERS 4 /* with a backlog of 0, Linux queues one; the rest wait on SYN */

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fullqueue PORT_FILE\n");
        return 2;
    }
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, 0) != 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &alen) != 0) {
        perror("fullqueue: listen");
        return 1;
    }
    for (int i = 0; i < FILLERS; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        if (fd < 0 || (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS)) {
            perror("fullqueue: connect");
            return 1;
        }
    }
    usleep(200 * 1000); /* the first filler's handshake completes: the queue is full */
    char tmp[4096];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp", argv[1]);
    FILE *f = n > 0 && (size_t)n < sizeof tmp ? fopen(tmp, "w") : NULL;
    int ok = f != NULL && fprintf(f, "%u\n", (unsigned)ntohs(a.sin_port)) > 0;
    if (f != NULL && fclose(f) != 0) ok = 0;
    if (!ok || rename(tmp, argv[1]) != 0) {
        perror("fullqueue: port file");
        return 1;
    }
    for (;;) pause();
}
