/* SPDX-License-Identifier: MIT
 * Reading the files a policy trusts (API key files, password files,
 * secrets): whole, bounded, and only when no one but the owner can change
 * them. Internal to ls_policy. */
#ifndef LS_POLICY_CONFFILE_H
#define LS_POLICY_CONFFILE_H

#include <stddef.h>

#include "lodestone/ls_err.h"

/* Reads the regular file at path into a new ls_malloc block with a NUL
 * after the contents (caller frees with ls_free). Refuses, with LS_EPERM
 * and a message saying how to fix it, a file that is not regular or that
 * group or others may write ("anyone could add <what>"); LS_EFORMAT when it
 * is larger than max bytes; LS_ENOTFOUND, LS_EIO, LS_ENOMEM. Messages do not
 * name the path: callers prefix it. */
ls_rc ls_conffile_read(const char *path, size_t max, const char *what, char **text, size_t *len,
                       ls_err *err);

#endif
