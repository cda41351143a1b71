/* SPDX-License-Identifier: MIT
 * Lodestone allocation hooks: every library allocation goes through
 * ls_malloc/ls_realloc/ls_free so that tests can make allocation fail.
 * Key material is the exception: it lives in libsodium's guarded memory.
 */
#ifndef LODESTONE_ALLOC_H
#define LODESTONE_ALLOC_H

#include <stddef.h>
#include <stdint.h>

#include "ls_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One function does everything, as lua_Alloc does: ptr NULL allocates,
 * size 0 frees (and returns NULL), otherwise it resizes. */
typedef void *(*ls_alloc_fn)(void *ud, void *ptr, size_t size);

/* Replaces the allocator for the whole process; fn NULL restores the C
 * library's. Not thread-safe: call before any other Lodestone function, or
 * in single-threaded tests. Memory must be freed by the allocator that
 * allocated it. */
LS_API void ls_set_allocator(ls_alloc_fn fn, void *ud);

/* malloc/calloc/realloc/free through the current allocator. ls_malloc(0)
 * returns a valid unique pointer or NULL like malloc. ls_free(NULL) does
 * nothing. ls_calloc checks n * size for overflow. */
LS_API void *ls_malloc(size_t size);
LS_API void *ls_calloc(size_t n, size_t size);
LS_API void *ls_realloc(void *ptr, size_t size);
LS_API void ls_free(void *ptr);

/* Copies s (NUL-terminated) or the first n bytes of s plus a NUL.
 * Caller frees with ls_free. NULL on allocation failure. */
LS_API char *ls_strdup(const char *s);
LS_API char *ls_strndup(const char *s, size_t n);

#ifdef __cplusplus
}
#endif
#endif
