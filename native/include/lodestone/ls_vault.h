/* SPDX-License-Identifier: MIT
 * The Lodestone vault: a keyring in a 0600 key file, authenticated
 * encryption (XChaCha20-Poly1305, libsodium's IETF AEAD) with associated
 * data, key rotation, and named secrets stored sealed in the store along
 * with the time each was last set.
 * Key material and secret plaintext live only in libsodium guarded memory
 * and are wiped on every exit path; none of it is ever logged.
 *
 * Conventions: see ls_err.h. Decryption failures of any kind (tampering,
 * wrong associated data, wrong key) are LS_EAUTH and say nothing more.
 * One vault may be shared by threads: every call but ls_vault_close may run
 * concurrently with the others (rotation waits for seals in flight).
 */
#ifndef LODESTONE_VAULT_H
#define LODESTONE_VAULT_H

#include <stddef.h>
#include <stdint.h>

#include "ls_buf.h"
#include "ls_err.h"
#include "ls_store.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LS_VAULT_KEYBYTES    32u                             /* one data key */
#define LS_VAULT_NONCEBYTES  24u                             /* XChaCha20 nonce */
#define LS_VAULT_MACBYTES    16u                             /* Poly1305 tag */
#define LS_VAULT_HEADERBYTES (1u + 4u + LS_VAULT_NONCEBYTES) /* version, key id, nonce */
#define LS_VAULT_OVERHEAD    (LS_VAULT_HEADERBYTES + LS_VAULT_MACBYTES)

/* The same constants as functions, for Lua and FFI. */
LS_API size_t ls_vault_keybytes(void);
LS_API size_t ls_vault_overhead(void);

typedef struct ls_vault ls_vault_t;

typedef struct {
    int create_if_missing; /* create a key file with one fresh key if absent */
} ls_vault_opts;

/* ---- keyring ---- */

/* Loads the keyring from key_file. With create_if_missing an absent file is
 * created with mode 0600 holding one new random key. Errors: LS_EPERM when
 * the file is readable or writable by group or others (the message says
 * which mode it has and how to fix it), or is not owned by the effective
 * user; LS_ENOTFOUND when absent and not
 * creating; LS_EFORMAT when the file is not a Lodestone key file; LS_EIO.
 * Caller frees with ls_vault_close. */
LS_API ls_rc ls_vault_load(ls_vault_t **out, const char *key_file, const ls_vault_opts *opts,
                           ls_err *err);

/* Wipes all key material and frees the vault. v may be NULL. */
LS_API void ls_vault_close(ls_vault_t *v);

/* 1 when ls_vault_load created v's key file (create_if_missing, and the
 * file was absent), else 0. */
LS_API int ls_vault_created(const ls_vault_t *v);

/* As ls_vault_close, and when ls_vault_load created v's key file, removes
 * that file again: for a caller that refuses a keyring it has just
 * created (nothing was sealed under it). v may be NULL. */
LS_API void ls_vault_discard(ls_vault_t *v);

/* Id of the key used for new seals. Key ids start at 1 and only grow. */
LS_API uint32_t ls_vault_current_key(const ls_vault_t *v);

/* Number of keys held (current and retired). */
LS_API size_t ls_vault_key_count(const ls_vault_t *v);

/* 1 when v holds key id (the id a sealed value names: ls_vault_sealed_key),
 * 0 when it does not (a stale or wrong key file). */
LS_API int ls_vault_holds_key(const ls_vault_t *v, uint32_t id);

/* Adds a fresh random key, makes it current, and rewrites the key file
 * atomically (temporary file, fsync, rename). Old keys stay to open old
 * data. On success *new_id (may be NULL) receives its id. A key file that
 * is a symlink stays one: the file it names is replaced, in its own
 * directory. */
LS_API ls_rc ls_vault_rotate(ls_vault_t *v, uint32_t *new_id, ls_err *err);

/* ---- retiring old keys ---- */

/* Writes the ids of v's keys, in key file order, to ids (at most cap of
 * them; ids may be NULL when cap is 0) and returns how many keys v holds. */
LS_API size_t ls_vault_key_ids(const ls_vault_t *v, uint32_t *ids, size_t cap);

/* Rewrites the key file to hold the current key alone (same id), as
 * ls_vault_rotate does (temporary file beside it, 0600, fsync, rename,
 * fsync of the directory; through a symlink, its target), and drops the
 * other keys from v. Whatever is still sealed under them no longer opens:
 * call it only once nothing is (ls_flow_key_retire checks). LS_OK at once
 * when v holds one key. On failure v and the key file are unchanged,
 * except when only the final sync of the key file's directory failed: the
 * file holds the current key alone then, and so does v (the error says so;
 * ls_vault_key_count tells). */
LS_API ls_rc ls_vault_retire_old_keys(ls_vault_t *v, ls_err *err);

/* ---- sealing ---- */

/* Encrypts pt with the current key and associated data ad (may be NULL
 * when adlen is 0), replacing *out with version, key id, nonce and the
 * ciphertext with tag: ptlen + LS_VAULT_OVERHEAD bytes. pt must not point
 * into out. */
LS_API ls_rc ls_vault_seal(ls_vault_t *v, const void *ad, size_t adlen, const void *pt,
                           size_t ptlen, ls_buf *out, ls_err *err);

/* Decrypts a sealed value, replacing *out with the plaintext. LS_EAUTH when
 * it does not authenticate under the key it names with this ad;
 * LS_EFORMAT when too short or of an unknown version; LS_ENOTFOUND when it
 * names a key this keyring does not hold. out is ordinary memory: use
 * secrets below for values that must stay in guarded memory. sealed must
 * not point into out; on failure out is left empty. */
LS_API ls_rc ls_vault_open(ls_vault_t *v, const void *ad, size_t adlen, const void *sealed,
                           size_t slen, ls_buf *out, ls_err *err);

/* Key id a sealed value names (0 when it is no sealed value this build
 * reads: shorter than LS_VAULT_OVERHEAD or of an unknown version). */
LS_API uint32_t ls_vault_sealed_key(const void *sealed, size_t slen);

/* ---- the store's key check ----
 *
 * A fixed text sealed under the current key (with associated data naming
 * its purpose) in the store's metadata namespace: a keyring that opens it
 * is the one the store's sealed data was written with. */

/* Opens the store's key check with v. *key_id receives the key id it names
 * (0 when there is none). LS_ENOTFOUND (err untouched) when the store has
 * no key check; LS_EAUTH when it does not authenticate under v's keys or
 * names a key v does not hold ("key file F does not open this store's data
 * (written under key N)"); LS_EFORMAT, LS_ECORRUPT when it is no key check
 * this build reads. */
LS_API ls_rc ls_vault_check_open(ls_vault_t *v, ls_store_t *st, uint32_t *key_id, ls_err *err);

/* The key id the store's key check names, without opening it (for a store
 * whose key file is missing). LS_ENOTFOUND (err untouched) when there is no
 * key check. */
LS_API ls_rc ls_vault_check_key(ls_store_t *st, uint32_t *key_id, ls_err *err);

/* Seals the key check under v's current key and writes it (synced),
 * replacing any other. */
LS_API ls_rc ls_vault_check_write(ls_vault_t *v, ls_store_t *st, ls_err *err);

/* ---- secrets ---- */

/* A decrypted secret value in guarded memory. */
typedef struct ls_secret ls_secret_t;

LS_API const unsigned char *ls_secret_data(const ls_secret_t *s); /* borrowed until free */
LS_API size_t ls_secret_len(const ls_secret_t *s);
LS_API void ls_secret_free(ls_secret_t *s); /* wipes; s may be NULL */

/* Names are 1..256 bytes of printable ASCII without spaces ("a-z A-Z 0-9
 * . _ - / :"); anything else is LS_EINVAL naming the bad character. */
#define LS_SECRET_NAMEMAX 256

/* Seals value under the current key and writes it (synced) under
 * LS_NS_SECRET, with the time of the put (the system clock, ms since the
 * epoch) as the secret's update time. The name and that time are the
 * associated data, so neither can be changed on disk without the record
 * failing to open. Replaces an existing value. */
LS_API ls_rc ls_vault_secret_put(ls_vault_t *v, ls_store_t *st, const char *name, const void *value,
                                 size_t vlen, ls_err *err);

/* Reads and opens a secret. LS_ENOTFOUND when absent; LS_EAUTH when the
 * record does not authenticate for this name and update time (tampered or
 * moved) or names a key this keyring does not hold; LS_EFORMAT when the
 * record is in a format this build does not read, such as the old one
 * without an update time (set the secret again). Caller frees with
 * ls_secret_free. */
LS_API ls_rc ls_vault_secret_get(ls_vault_t *v, ls_store_t *st, const char *name, ls_secret_t **out,
                                 ls_err *err);

/* The key id secret name's record names when v does not hold that key (a
 * stale key file), else 0: 0 also when the secret is absent, unreadable or
 * sealed under a key v holds. Tells ls_vault_secret_get's LS_EAUTH for a
 * missing key from one for a record that does not authenticate. */
LS_API uint32_t ls_vault_secret_missing_key(ls_vault_t *v, ls_store_t *st, const char *name);

/* Deletes a secret (synced). LS_ENOTFOUND when absent. */
LS_API ls_rc ls_vault_secret_delete(ls_store_t *st, const char *name, ls_err *err);

/* Calls fn for each secret name in byte order; a non-zero return from fn
 * stops the walk and is returned as LS_OK. name is borrowed for the call. */
typedef int (*ls_secret_name_fn)(void *ud, const char *name, size_t len);
LS_API ls_rc ls_vault_secret_list(ls_store_t *st, ls_secret_name_fn fn, void *ud, ls_err *err);

/* As ls_vault_secret_list, and fn also receives the secret's update time:
 * ms since the epoch of the put that set its value (a reseal keeps it).
 * Reads only the records' headers and never a value, so it needs no vault;
 * the time is therefore not authenticated here (ls_vault_secret_get is: a
 * changed time makes it LS_EAUTH). A record without a readable header stops
 * the walk with LS_ECORRUPT naming the secret. */
typedef int (*ls_secret_info_fn)(void *ud, const char *name, size_t len, int64_t updated_ms);
LS_API ls_rc ls_vault_secret_list_info(ls_store_t *st, ls_secret_info_fn fn, void *ud, ls_err *err);

/* What ls_vault_secret_reseal_all_detailed did. Caller's memory (the
 * stack will do); nothing in it is freed. */
typedef struct {
    size_t resealed; /* resealed under the current key and written */
    size_t skipped;  /* did not open: left as they were */
    /* the first skipped one's name, "" when none; for a record whose store
     * key is malformed (no name can be read), "0x" and the key in hex */
    char first_skipped[LS_SECRET_NAMEMAX + 1];
    /* why it did not open (LS_EAUTH or LS_EFORMAT, text naming it), or
     * LS_ECORRUPT for such a key ("a damaged secret record under key 0x...") */
    ls_err first_reason;
} ls_secret_reseal_report;

/* Re-encrypts every secret whose record names a key other than the
 * current one with the current key, in synced batches, keeping each
 * secret's update time. A secret that does not open (damaged, of a format
 * this build does not read, or under a key the keyring does not hold), and
 * a record whose store key is malformed, is skipped and left as it was;
 * the others are resealed all the same. *rep (not NULL) receives the
 * counts and the first skipped secret's name and reason. Returns LS_OK
 * when the walk reached the end, skipped or not: check rep->skipped. A
 * store, I/O or memory failure stops the walk with its code; batches
 * written before stay, and rep counts them. Safe to interrupt and run
 * again. */
LS_API ls_rc ls_vault_secret_reseal_all_detailed(ls_vault_t *v, ls_store_t *st,
                                                 ls_secret_reseal_report *rep, ls_err *err);

/* As ls_vault_secret_reseal_all_detailed; *count (may be NULL) receives how
 * many were resealed. When some were skipped, returns the first skipped
 * one's code, with err saying how many and naming that one (the others are
 * resealed). */
LS_API ls_rc ls_vault_secret_reseal_all(ls_vault_t *v, ls_store_t *st, size_t *count, ls_err *err);

/* *count (not NULL) receives how many secrets' records name a key other
 * than key_id, read from the records without opening them (so it needs no
 * vault): with the current key's id, the secrets a reseal would reseal. A
 * record whose key id cannot be read counts. A store failure stops with
 * its code and *count is 0. */
LS_API ls_rc ls_vault_secret_count_other_keys(ls_store_t *st, uint32_t key_id, size_t *count,
                                              ls_err *err);

/* ---- masking secret values in texts ----
 *
 * Texts that workflow code produces and that are kept or shown in clear
 * (error messages and tracebacks in a run's history, its log lines) have
 * each occurrence of a secret's value replaced by "[secret NAME]". A mask
 * masks against every secret of one store that opens under one vault. It
 * loads the values the first time a text needs masking, keeps them in
 * guarded memory, and loads them again, on its next use, after any secret
 * has been put, deleted or resealed (ls_vault_secrets_generation). A mask
 * may be shared by threads: masks run concurrently; a reload makes the
 * others wait for it. */

/* Values shorter than this many bytes are not masked: a value of 1 to 3
 * bytes ("on", "42", "eu") is in ordinary text by chance, so masking it
 * would wreck every message, and it is too short to be worth hiding. */
#define LS_VAULT_MASK_MIN 4u

/* Bumped (after the store write) by every ls_vault_secret_put,
 * ls_vault_secret_delete and ls_vault_secret_reseal_all_detailed in this
 * process, on any store: a mask built at another generation reloads. */
LS_API uint64_t ls_vault_secrets_generation(void);

typedef struct ls_vault_mask ls_vault_mask_t;

typedef struct {
    /* Optional: told when a load leaves values out (the names of the
     * secrets that do not open under v; a store or memory error, after
     * which it loads again a second later), so that the caller can log
     * it; not told again while the same are left out. msg holds names,
     * never a value; borrowed for the call. Called without the mask's
     * lock held, on the thread whose text caused the load. */
    void (*note)(void *ud, const char *msg);
    void *note_ud;
} ls_vault_mask_opts;

/* A mask over st's secrets, opened with v (both borrowed: they must
 * outlive it). Loads nothing yet. opts may be NULL. Caller frees with
 * ls_vault_mask_free. */
LS_API ls_rc ls_vault_mask_new(ls_vault_mask_t **out, ls_vault_t *v, ls_store_t *st,
                               const ls_vault_mask_opts *opts, ls_err *err);

/* Wipes the values it holds and frees m. m may be NULL. */
LS_API void ls_vault_mask_free(ls_vault_mask_t *m);

/* Appends text (len bytes) to out with each occurrence of a secret's
 * value (of LS_VAULT_MASK_MIN bytes or more; exact bytes only) replaced by
 * "[secret NAME]". Where several values match at one place, the longest
 * wins (then the first name in byte order); where occurrences overlap,
 * the whole stretch is masked, with a mark for each secret whose
 * occurrence extends it ("[secret A][secret B]"). At most limit bytes are
 * appended (SIZE_MAX: no limit): *used (not NULL) receives how many bytes
 * of text the appended part stands for, len when all of it fits. A cut
 * falls where a character starts (as ls_utf8_cut) and never inside a
 * mark: an occurrence that does not fit is left out whole.
 * Secrets that cannot be loaded are left out (opts.note says which); the
 * only errors are LS_ENOMEM (out cannot grow; out keeps what it held)
 * and LS_EINVAL. */
LS_API ls_rc ls_vault_mask_text(ls_vault_mask_t *m, const void *text, size_t len, size_t limit,
                                ls_buf *out, size_t *used, ls_err *err);

/* How many values m masks with now (loading them when they are stale). */
LS_API size_t ls_vault_mask_count(ls_vault_mask_t *m);

#ifdef __cplusplus
}
#endif
#endif
