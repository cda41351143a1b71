/* SPDX-License-Identifier: MIT
 * Error codes, their fixed texts, and formatted error detail. */
#include "ls_config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lodestone/ls_err.h"

static const struct {
    const char *name;
    const char *text;
} codes[] = {
    [LS_OK] = {"OK", "success"},
    [LS_ENOTFOUND] = {"ENOTFOUND", "not found"},
    [LS_EINVAL] = {"EINVAL", "invalid argument"},
    [LS_ENOMEM] = {"ENOMEM", "out of memory"},
    [LS_EIO] = {"EIO", "input/output error"},
    [LS_ECORRUPT] = {"ECORRUPT", "data is corrupt"},
    [LS_EAUTH] = {"EAUTH", "authentication failed"},
    [LS_EDENIED] = {"EDENIED", "denied"},
    [LS_EBUSY] = {"EBUSY", "resource busy"},
    [LS_EPERM] = {"EPERM", "unsafe or insufficient permissions"},
    [LS_EFORMAT] = {"EFORMAT", "unknown format or version"},
    [LS_EEXIST] = {"EEXIST", "already exists"},
    [LS_ENONDET] = {"ENONDET", "non-determinism: the workflow diverged from its history"},
    [LS_ESTATE] = {"ESTATE", "not allowed in the current state"},
};

static int known(ls_rc rc)
{
    return (unsigned)rc < sizeof codes / sizeof codes[0] && codes[rc].name != NULL;
}

const char *ls_strerror(ls_rc rc)
{
    return known(rc) ? codes[rc].text : "unknown error";
}

const char *ls_rc_name(ls_rc rc)
{
    return known(rc) ? codes[rc].name : "EUNKNOWN";
}

#undef ls_err_set /* the analyser's model in ls_err.h: this is the real one */
ls_rc ls_err_set(ls_err *err, ls_rc code, const char *fmt, ...)
{
    if (err == NULL) return code;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return code;
}

ls_rc ls_err_prefix(ls_err *err, const char *fmt, ...)
{
    if (err == NULL) return LS_OK;
    char prefix[LS_ERR_MSGMAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);

    char old[LS_ERR_MSGMAX];
    memcpy(old, err->msg, sizeof old);
    old[sizeof old - 1] = '\0';
    char joined[2 * LS_ERR_MSGMAX + 2]; /* fits both: the cut happens below */
    snprintf(joined, sizeof joined, "%s: %s", prefix, old[0] ? old : ls_strerror(err->code));
    memcpy(err->msg, joined, sizeof err->msg - 1);
    err->msg[sizeof err->msg - 1] = '\0';
    return err->code;
}

const char *ls_err_text(const ls_err *err)
{
    if (err == NULL) return "";
    return err->msg[0] ? err->msg : ls_strerror(err->code);
}
