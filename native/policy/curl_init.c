/* SPDX-License-Identifier: MIT
 * libcurl's global initialisation, once per process (see curl_init.h).
 */
#include "ls_config.h"

#include <curl/curl.h>
#include <dlfcn.h>
#include <pthread.h>

#include "curl_init.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;
static CURLcode init_rc = CURLE_FAILED_INIT;

/* Keeps the shared object holding addr mapped until the process ends. */
static void pin(const void *addr)
{
    Dl_info info;
    if (dladdr(addr, &info) == 0 || info.dli_fname == NULL) return;
    void *h = dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
    (void)h; /* never closed: the point is the reference */
}

static void init_once(void)
{
    init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    pin((const void *)curl_easy_init);
    pin((const void *)init_once);
}

const char *ls_curl_init(void)
{
    pthread_once(&once, init_once);
    return init_rc == CURLE_OK ? NULL : curl_easy_strerror(init_rc);
}
