/* SPDX-License-Identifier: MIT
 * Reads trusted configuration files whole, refusing ones that others could
 * have changed. */
#include "ls_config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conffile.h"
#include "lodestone/ls_alloc.h"
#include "lodestone/ls_policy.h"

/* what: NULL takes the file whoever may write it. */
static ls_rc read_whole(const char *path, size_t max, const char *what, char **text, size_t *len,
                        ls_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return ls_err_set(err,
                          errno == ENOENT   ? LS_ENOTFOUND
                          : errno == EACCES ? LS_EPERM
                                            : LS_EIO,
                          "cannot open: %s", strerror(errno));
    struct stat st;
    ls_rc rc = LS_OK;
    char *buf = NULL;
    size_t got = 0;
    if (fstat(fd, &st) != 0) {
        rc = ls_err_set(err, LS_EIO, "cannot stat: %s", strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        rc = ls_err_set(err, LS_EPERM, "not a regular file");
    } else if (what && (st.st_mode & (S_IWGRP | S_IWOTH))) {
        rc = ls_err_set(err, LS_EPERM,
                        "mode %04o lets group or others write it, so anyone could add %s "
                        "(chmod go-w)",
                        (unsigned)(st.st_mode & 07777), what);
    } else if ((uintmax_t)st.st_size > max) {
        rc = ls_err_set(err, LS_EFORMAT, "larger than %zu bytes", max);
    } else if ((buf = ls_malloc((size_t)st.st_size + 1)) == NULL) {
        rc = ls_err_set(err, LS_ENOMEM, "out of memory reading the file");
    }
    while (rc == LS_OK && got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) rc = ls_err_set(err, LS_EIO, "cannot read: %s", strerror(errno));
        if (r <= 0) break; /* EOF: the file shrank while we read it */
        got += (size_t)r;
    }
    close(fd);
    if (rc != LS_OK) {
        ls_free(buf);
        return rc;
    }
    buf[got] = '\0';
    *text = buf;
    *len = got;
    return LS_OK;
}

ls_rc ls_conffile_read(const char *path, size_t max, const char *what, char **text, size_t *len,
                       ls_err *err)
{
    return read_whole(path, max, what, text, len, err);
}

ls_rc ls_policy_read_file(const char *path, char **text, size_t *len, ls_err *err)
{
    ls_rc rc = read_whole(path, LS_POLICY_FILE_MAX, NULL, text, len, err);
    return rc == LS_OK ? LS_OK : LS_ERR_PREFIXED(rc, err, "%s", path);
}
