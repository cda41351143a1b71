/* SPDX-License-Identifier: MIT
 * lodestone.core crypto primitives for custom scripts: HMAC-SHA256 and its
 * constant-time check, base64url. Thin over ls_hmac.h and ls_base64.h. */
#include "ls_config.h"

#include "lls.h"
#include "lodestone/ls_base64.h"
#include "lodestone/ls_hmac.h"

/* hmac_sha256(key, msg) -> 32 raw bytes */
static int l_hmac_sha256(lua_State *L)
{
    size_t klen, mlen;
    const char *key = luaL_checklstring(L, 1, &klen);
    const char *msg = luaL_checklstring(L, 2, &mlen);
    unsigned char mac[LS_HMAC_SHA256_BYTES];
    ls_hmac_sha256(key, klen, msg, mlen, mac);
    lua_pushlstring(L, (const char *)mac, sizeof mac);
    return 1;
}

/* hmac_verify(key, msg, signature, [encoding]) -> true | false, reason, msg
 * encoding: "hex" (default), "base64", "base64url"; compared in constant
 * time. */
static int l_hmac_verify(lua_State *L)
{
    size_t klen, mlen, slen;
    const char *key = luaL_checklstring(L, 1, &klen);
    const char *msg = luaL_checklstring(L, 2, &mlen);
    const char *sig = luaL_checklstring(L, 3, &slen);
    static const char *const encs[] = {"hex", "base64", "base64url", NULL};
    int enc = luaL_checkoption(L, 4, "hex", encs);
    /* (an unset secret, such as an empty environment variable: no
     * signature can be checked against it) */
    if (klen == 0) lls_argerror(L, 1, "the key is empty");
    ls_hmac_generic_opts opts = {.encoding = enc == 0   ? LS_HMAC_HEX
                                             : enc == 1 ? LS_HMAC_BASE64
                                                        : LS_HMAC_BASE64URL};
    ls_hmac_reason why = LS_HMAC_OK;
    ls_err err;
    ls_rc rc = ls_hmac_verify_generic(key, klen, &opts, sig, slen, msg, mlen, &why, &err);
    lua_pushboolean(L, rc == LS_OK);
    if (rc == LS_OK) return 1;
    lua_pushstring(L, ls_hmac_reason_name(why));
    lua_pushstring(L, ls_err_text(&err)); /* "malformed_header: expected 64 hex ..." */
    return 3;
}

static int push_buf_result(lua_State *L, ls_rc rc, ls_buf *out, const char *what, ls_err *err)
{
    if (rc == LS_OK) lua_pushlstring(L, out->ptr ? (const char *)out->ptr : "", out->len);
    ls_buf_free(out); /* before anything that can raise */
    if (rc == LS_OK) return 1;
    return lls_push_fail(L, what, err);
}

/* base64url_encode(bytes) -> text (unpadded) */
static int l_b64url_encode(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    ls_buf out = LS_BUF_INIT;
    ls_err err;
    ls_rc rc = ls_base64url_encode(s, len, &out, &err);
    return push_buf_result(L, rc, &out, "base64url_encode", &err);
}

/* base64url_decode(text) -> bytes | nil, msg, code */
static int l_b64url_decode(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    ls_buf out = LS_BUF_INIT;
    ls_err err;
    ls_rc rc = ls_base64url_decode(s, len, &out, &err);
    return push_buf_result(L, rc, &out, "base64url_decode", &err);
}

void lls_open_crypto(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"hmac_sha256", l_hmac_sha256},
        {"hmac_verify", l_hmac_verify},
        {"base64url_encode", l_b64url_encode},
        {"base64url_decode", l_b64url_decode},
        {NULL, NULL},
    };
    luaL_setfuncs(L, funcs, 0);
    lls_name_funcs(L, -1, funcs, NULL);
}
