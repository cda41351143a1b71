/* SPDX-License-Identifier: MIT
 * libcurl's global initialisation, shared by the jwks_url fetcher and the
 * blocking client lodestone.httpc (native/lua/lls_http.c). Internal.
 */
#ifndef LS_POLICY_CURL_INIT_H
#define LS_POLICY_CURL_INIT_H

/* Runs curl_global_init once per process (thread-safe) and keeps libcurl
 * and the shared object this code is linked into mapped until the process
 * ends (RTLD_NODELETE): a resolver or fetch thread that libcurl or its
 * caller left behind must never run code a dlclose() unmapped (a
 * mod_magnet or Lua state closing its module). Returns NULL when libcurl is
 * ready, else libcurl's message (static). */
const char *ls_curl_init(void);

#endif
