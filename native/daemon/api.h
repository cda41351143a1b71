/* SPDX-License-Identifier: MIT
 * lodestoned's HTTP API (libmicrohttpd): the routes of DESIGN.md over a
 * unix socket and, optionally, a loopback TCP port that needs a token.
 */
#ifndef LSD_API_H
#define LSD_API_H

#include <stddef.h>

#include "lls_flow.h"
#include "lodestone/ls_flow.h"

typedef struct lsd_api lsd_api;

typedef struct {
    ls_flow_t *flow;
    lls_runner *runner;
    ls_store_t *store;
    ls_vault_t *vault;
    const char *socket_path; /* NULL: no unix socket */
    const char *listen;      /* "127.0.0.1:PORT" or NULL */
    const char *token;       /* required with listen */
    size_t body_limit;       /* bytes; 0 picks 1 MiB */
    const char *store_dir;   /* the store's directory (its size in /metrics), or NULL */
    unsigned threads;        /* HTTP threads; 0 picks 4 */
} lsd_api_opts;

/* Checks o->socket_path (it fits a unix socket's address) and o->listen
 * (127.0.0.1:PORT, PORT 1 to 65535) as lsd_api_start reads them, so that a
 * bad option is refused before anything is opened. LS_EINVAL naming the
 * option (err may be NULL). */
ls_rc lsd_api_check(const lsd_api_opts *o, ls_err *err);

ls_rc lsd_api_start(lsd_api **out, const lsd_api_opts *o, ls_err *err);

/* Stops accepting requests, answers the long polls, and frees. */
void lsd_api_stop(lsd_api *a);

#endif
