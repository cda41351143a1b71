/* SPDX-License-Identifier: MIT
 * The allocation hook every library allocation goes through. */
#include "ls_config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lodestone/ls_alloc.h"

static void *libc_alloc(void *ud, void *ptr, size_t size)
{
    (void)ud;
    if (size == 0) {
        free(ptr);
        return NULL;
    }
    return realloc(ptr, size);
}

static ls_alloc_fn alloc_fn = libc_alloc;
static void *alloc_ud;

void ls_set_allocator(ls_alloc_fn fn, void *ud)
{
    alloc_fn = fn ? fn : libc_alloc;
    alloc_ud = fn ? ud : NULL;
}

void *ls_malloc(size_t size)
{
    return alloc_fn(alloc_ud, NULL, size ? size : 1);
}

void *ls_calloc(size_t n, size_t size)
{
    if (size != 0 && n > SIZE_MAX / size) return NULL;
    void *p = ls_malloc(n * size);
    if (p) memset(p, 0, n * size);
    return p;
}

void *ls_realloc(void *ptr, size_t size)
{
    return alloc_fn(alloc_ud, ptr, size ? size : 1);
}

void ls_free(void *ptr)
{
    if (ptr) alloc_fn(alloc_ud, ptr, 0);
}

char *ls_strndup(const char *s, size_t n)
{
    char *p = ls_malloc(n + 1);
    if (p == NULL) return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *ls_strdup(const char *s)
{
    return ls_strndup(s, strlen(s));
}
