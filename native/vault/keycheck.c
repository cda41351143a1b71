/* SPDX-License-Identifier: MIT
 * The store's key check: a fixed text sealed under the keyring's current
 * key and kept in the store's metadata namespace. Opening it tells, before
 * anything reads or writes the store's sealed data, whether a keyring is
 * the one that data was written with.
 */
#include "ls_config.h"

#include <string.h>

#include "vault_int.h"

/* The record: namespace byte 0 then "keycheck" (beside the store's
 * "format"); its value is CHECK_TEXT sealed with CHECK_AD as associated
 * data, so no other sealed value of the store can stand in for it. */
static const char check_key[] = {(char)LS_NS_META, 'k', 'e', 'y', 'c', 'h', 'e', 'c', 'k'};

#define CHECK_AD   "lodestone.store-key-check"
#define CHECK_TEXT "lodestone store key check, version 1"

ls_rc ls_vault_check_key(ls_store_t *st, uint32_t *key_id, ls_err *err)
{
    if (st == NULL || key_id == NULL)
        return ls_err_set(err, LS_EINVAL, "ls_vault_check_key needs a store and key_id");
    *key_id = 0;
    ls_buf val = LS_BUF_INIT;
    ls_rc rc = ls_store_get(st, check_key, sizeof check_key, &val, err);
    if (rc == LS_OK && (*key_id = ls_vault_sealed_key(val.ptr, val.len)) == 0)
        rc = ls_err_set(err, LS_ECORRUPT,
                        "the store's key check is not a sealed value this build reads (%zu bytes)",
                        val.len);
    ls_buf_free(&val);
    return rc;
}

ls_rc ls_vault_check_open(ls_vault_t *v, ls_store_t *st, uint32_t *key_id, ls_err *err)
{
    if (v == NULL || st == NULL || key_id == NULL)
        return ls_err_set(err, LS_EINVAL, "ls_vault_check_open needs a vault, a store and key_id");
    *key_id = 0;
    ls_buf val = LS_BUF_INIT, pt = LS_BUF_INIT;
    ls_rc rc = ls_store_get(st, check_key, sizeof check_key, &val, err);
    if (rc == LS_OK) {
        *key_id = ls_vault_sealed_key(val.ptr, val.len);
        rc = ls_vault_open(v, CHECK_AD, sizeof CHECK_AD - 1, val.ptr, val.len, &pt, err);
    }
    if (rc == LS_ENOTFOUND && *key_id != 0) /* a key this keyring does not hold */
        rc = ls_err_set(err, LS_EAUTH,
                        "key file %s does not open this store's data (written under key %u, "
                        "which it does not hold)",
                        v->path, (unsigned)*key_id);
    else if (rc == LS_EAUTH)
        ls_err_set(err, LS_EAUTH,
                   "key file %s does not open this store's data (written under key %u)", v->path,
                   (unsigned)*key_id);
    else if (rc == LS_EFORMAT)
        ls_err_prefix(err, "the store's key check");
    else if (rc == LS_OK &&
             (pt.len != sizeof CHECK_TEXT - 1 || memcmp(pt.ptr, CHECK_TEXT, pt.len) != 0))
        rc = ls_err_set(err, LS_ECORRUPT, "the store's key check opens to an unexpected text");
    ls_buf_free(&val);
    ls_buf_free(&pt);
    return rc;
}

ls_rc ls_vault_check_write(ls_vault_t *v, ls_store_t *st, ls_err *err)
{
    if (v == NULL || st == NULL)
        return ls_err_set(err, LS_EINVAL, "ls_vault_check_write needs a vault and a store");
    ls_buf sealed = LS_BUF_INIT;
    ls_rc rc = ls_vault_seal(v, CHECK_AD, sizeof CHECK_AD - 1, CHECK_TEXT, sizeof CHECK_TEXT - 1,
                             &sealed, err);
    if (rc == LS_OK)
        rc = ls_store_put(st, check_key, sizeof check_key, sealed.ptr, sealed.len, LS_STORE_SYNC,
                          err);
    if (rc != LS_OK) ls_err_prefix(err, "writing the store's key check");
    ls_buf_free(&sealed);
    return rc;
}
