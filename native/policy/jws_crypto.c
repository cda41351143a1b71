/* SPDX-License-Identifier: MIT
 * JWS signature primitives: key objects built once from public parameters
 * (OpenSSL 3 EVP_PKEY_fromdata), RSA PKCS#1 v1.5 and PSS, ECDSA with raw
 * R||S signatures, Ed25519 (libsodium) and HMAC. The only file of
 * Lodestone that includes OpenSSL headers; OpenSSL's error queue is
 * cleared before returning so that no error leaks to other code. */
#include "ls_config.h"

#include <limits.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <sodium.h>

#include "jwt_int.h"
#include "lodestone/ls_alloc.h"

static const char *const md_names[LS_MD_COUNT] = {"SHA256", "SHA384", "SHA512"};
static const size_t md_sizes[LS_MD_COUNT] = {32, 48, 64};

/* ---- per-keyset digests ---- */

ls_rc ls_jws_crypto_init(ls_jwks_t *ks, ls_err *err)
{
    if (sodium_init() < 0) return ls_err_set(err, LS_EIO, "libsodium failed to initialise");
    for (int i = 0; i < LS_MD_COUNT; i++) {
        ks->md[i] = EVP_MD_fetch(NULL, md_names[i], NULL);
        if (ks->md[i] == NULL) {
            ERR_clear_error();
            ls_jws_crypto_fini(ks);
            return ls_err_set(err, LS_EIO, "OpenSSL cannot provide the %s digest", md_names[i]);
        }
    }
    return LS_OK;
}

void ls_jws_crypto_fini(ls_jwks_t *ks)
{
    for (int i = 0; i < LS_MD_COUNT; i++) {
        EVP_MD_free(ks->md[i]);
        ks->md[i] = NULL;
    }
}

/* ---- building keys ---- */

/* Runs EVP_PKEY_fromdata for a public key of type name ("RSA", "EC"). */
static EVP_PKEY *pkey_from_params(const char *name, OSSL_PARAM *params)
{
    EVP_PKEY *pkey = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, name, NULL);
    if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
        pkey = NULL;
    EVP_PKEY_CTX_free(ctx);
    return pkey;
}

ls_rc ls_jws_key_rsa(ls_jwk *k, const unsigned char *n, size_t nlen, const unsigned char *e,
                     size_t elen, ls_err *err)
{
    ls_rc rc = LS_OK;
    BIGNUM *bn_n = NULL, *bn_e = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;

    if (nlen > INT_MAX || elen > INT_MAX) return ls_err_set(err, LS_EINVAL, "RSA key too large");
    bn_n = BN_bin2bn(n, (int)nlen, NULL);
    bn_e = BN_bin2bn(e, (int)elen, NULL);
    bld = OSSL_PARAM_BLD_new();
    if (bn_n == NULL || bn_e == NULL || bld == NULL ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) ||
        (params = OSSL_PARAM_BLD_to_param(bld)) == NULL) {
        rc = ls_err_set(err, LS_ENOMEM, "out of memory building an RSA key");
        goto done;
    }
    k->pkey = pkey_from_params("RSA", params);
    if (k->pkey == NULL) {
        rc = ls_err_set(err, LS_EINVAL, "OpenSSL rejected the RSA public key");
        goto done;
    }
    k->sig_len = nlen;
done:
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn_n);
    BN_free(bn_e);
    ERR_clear_error();
    return rc;
}

static const char *curve_group(int crv)
{
    switch (crv) {
    case LS_CRV_P256: return "P-256";
    case LS_CRV_P384: return "P-384";
    case LS_CRV_P521: return "P-521";
    }
    return NULL;
}

ls_rc ls_jws_key_ec(ls_jwk *k, const unsigned char *x, const unsigned char *y, size_t len,
                    ls_err *err)
{
    ls_rc rc = LS_OK;
    const char *group = curve_group(k->crv);
    unsigned char point[1 + 2 * 66];
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *check = NULL;

    if (group == NULL || len > 66) return ls_err_set(err, LS_EINVAL, "unsupported curve");
    point[0] = 0x04; /* uncompressed */
    memcpy(point + 1, x, len);
    memcpy(point + 1 + len, y, len);
    bld = OSSL_PARAM_BLD_new();
    if (bld == NULL ||
        !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, 1 + 2 * len) ||
        (params = OSSL_PARAM_BLD_to_param(bld)) == NULL) {
        rc = ls_err_set(err, LS_ENOMEM, "out of memory building an EC key");
        goto done;
    }
    k->pkey = pkey_from_params("EC", params);
    if (k->pkey != NULL) check = EVP_PKEY_CTX_new_from_pkey(NULL, k->pkey, NULL);
    if (k->pkey == NULL || check == NULL || EVP_PKEY_public_check(check) != 1) {
        EVP_PKEY_free(k->pkey);
        k->pkey = NULL;
        rc = ls_err_set(err, LS_EINVAL, "x, y: not a point on %s", group);
        goto done;
    }
    k->sig_len = 2 * len;
done:
    EVP_PKEY_CTX_free(check);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    ERR_clear_error();
    return rc;
}

ls_rc ls_jws_key_okp(ls_jwk *k, const unsigned char *x, size_t len, ls_err *err)
{
    if (len != sizeof k->okp || crypto_core_ed25519_is_valid_point(x) != 1)
        return ls_err_set(err, LS_EINVAL, "x: not a valid Ed25519 public key");
    memcpy(k->okp, x, sizeof k->okp);
    k->sig_len = crypto_sign_BYTES;
    return LS_OK;
}

ls_rc ls_jws_key_oct(ls_jwk *k, const unsigned char *secret, size_t len, ls_err *err)
{
    ls_rc rc = LS_OK;
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (mac == NULL) {
        ERR_clear_error();
        return ls_err_set(err, LS_EIO, "OpenSSL cannot provide HMAC");
    }
    for (int i = 0; i < LS_MD_COUNT; i++) {
        if (len < md_sizes[i]) continue; /* RFC 7518 3.2: key at least the hash size */
        if (k->alg != LS_JWT_ALG_ANY && ls_jwt_alg_md(k->alg) != i) continue;
        OSSL_PARAM params[] = {
            OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)md_names[i], 0),
            OSSL_PARAM_construct_end(),
        };
        EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
        if (ctx == NULL || EVP_MAC_init(ctx, secret, len, params) != 1) {
            EVP_MAC_CTX_free(ctx);
            rc = ls_err_set(err, LS_ENOMEM, "cannot set up HMAC-%s", md_names[i]);
            break;
        }
        k->mac[i] = ctx;
    }
    EVP_MAC_free(mac);
    ERR_clear_error();
    if (rc != LS_OK) ls_jws_key_release(k);
    return rc;
}

void ls_jws_key_release(ls_jwk *k)
{
    EVP_PKEY_free(k->pkey);
    k->pkey = NULL;
    for (int i = 0; i < LS_MD_COUNT; i++) {
        EVP_MAC_CTX_free(k->mac[i]);
        k->mac[i] = NULL;
    }
}

/* ---- PEM ---- */

static ls_rc append_bn(ls_buf *out, const BIGNUM *bn, int pad, ls_err *err)
{
    int n = pad > 0 ? pad : BN_num_bytes(bn);
    ls_rc rc = ls_buf_reserve(out, (size_t)n, err);
    if (rc != LS_OK) return rc;
    if (pad > 0 ? BN_bn2binpad(bn, out->ptr + out->len, pad) < 0
                : BN_bn2bin(bn, out->ptr + out->len) != n)
        return ls_err_set(err, LS_EINVAL, "key parameter does not fit its field");
    out->len += (size_t)n;
    out->ptr[out->len] = '\0';
    return LS_OK;
}

static ls_rc bn_param(const EVP_PKEY *pk, const char *name, ls_buf *out, int pad, ls_err *err)
{
    BIGNUM *bn = NULL;
    if (EVP_PKEY_get_bn_param(pk, name, &bn) != 1)
        return ls_err_set(err, LS_EINVAL, "PEM key lacks %s", name);
    ls_rc rc = append_bn(out, bn, pad, err);
    BN_free(bn);
    return rc;
}

static ls_rc pem_ec(const EVP_PKEY *pk, ls_jwk_params *p, ls_err *err)
{
    char group[64];
    if (EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, NULL) !=
        1)
        return ls_err_set(err, LS_EINVAL, "EC key without a named curve");
    int fs;
    if (strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0) {
        p->crv = LS_CRV_P256;
        fs = 32;
    } else if (strcmp(group, "secp384r1") == 0 || strcmp(group, "P-384") == 0) {
        p->crv = LS_CRV_P384;
        fs = 48;
    } else if (strcmp(group, "secp521r1") == 0 || strcmp(group, "P-521") == 0) {
        p->crv = LS_CRV_P521;
        fs = 66;
    } else {
        return ls_err_set(err, LS_EINVAL, "unsupported EC curve %s", group);
    }
    p->type = LS_JWK_EC;
    ls_rc rc = bn_param(pk, OSSL_PKEY_PARAM_EC_PUB_X, &p->a, fs, err);
    if (rc == LS_OK) rc = bn_param(pk, OSSL_PKEY_PARAM_EC_PUB_Y, &p->b, fs, err);
    return rc;
}

static ls_rc pem_okp(const EVP_PKEY *pk, ls_jwk_params *p, ls_err *err)
{
    unsigned char raw[32];
    size_t n = sizeof raw;
    if (EVP_PKEY_get_raw_public_key(pk, raw, &n) != 1 || n != sizeof raw)
        return ls_err_set(err, LS_EINVAL, "cannot read the Ed25519 public key");
    p->type = LS_JWK_OKP;
    p->crv = LS_CRV_ED25519;
    return ls_buf_append(&p->a, raw, n, err);
}

ls_rc ls_jws_pem_params(const char *pem, size_t len, ls_jwk_params *p, ls_err *err)
{
    if (len > INT_MAX) return ls_err_set(err, LS_EINVAL, "PEM text too large");
    ls_rc rc;
    EVP_PKEY *pk = NULL;
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (bio == NULL) {
        rc = ls_err_set(err, LS_ENOMEM, "out of memory reading PEM");
        goto done;
    }
    pk = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    if (pk == NULL) {
        rc = ls_err_set(err, LS_EINVAL,
                        "no PEM public key (expected -----BEGIN PUBLIC KEY----- holding a "
                        "SubjectPublicKeyInfo)");
        goto done;
    }
    switch (EVP_PKEY_get_base_id(pk)) {
    case EVP_PKEY_RSA:
        p->type = LS_JWK_RSA;
        rc = bn_param(pk, OSSL_PKEY_PARAM_RSA_N, &p->a, 0, err);
        if (rc == LS_OK) rc = bn_param(pk, OSSL_PKEY_PARAM_RSA_E, &p->b, 0, err);
        break;
    case EVP_PKEY_EC: rc = pem_ec(pk, p, err); break;
    case EVP_PKEY_ED25519: rc = pem_okp(pk, p, err); break;
    default:
        rc = ls_err_set(err, LS_EINVAL, "unsupported PEM key type %s",
                        EVP_PKEY_get0_type_name(pk) ? EVP_PKEY_get0_type_name(pk) : "?");
    }
done:
    EVP_PKEY_free(pk);
    BIO_free(bio);
    ERR_clear_error();
    return rc;
}

/* ---- verification ---- */

/* Appends a DER INTEGER holding the unsigned big-endian v (n bytes). */
static size_t der_uint(unsigned char *o, const unsigned char *v, size_t n)
{
    while (n > 1 && v[0] == 0) {
        v++;
        n--;
    }
    size_t pad = (v[0] & 0x80) ? 1 : 0, i = 0;
    o[i++] = 0x02;
    o[i++] = (unsigned char)(n + pad);
    if (pad) o[i++] = 0x00;
    memcpy(o + i, v, n);
    return i + n;
}

/* JWS ECDSA signatures are R||S, each the field size; OpenSSL wants
 * SEQUENCE { INTEGER r, INTEGER s }. Returns the DER length. */
static size_t ecdsa_raw_to_der(const unsigned char *sig, size_t half, unsigned char *der)
{
    unsigned char body[2 * (3 + 66)];
    size_t n = der_uint(body, sig, half);
    n += der_uint(body + n, sig + half, half);
    size_t i = 0;
    der[i++] = 0x30;
    if (n >= 0x80) der[i++] = 0x81;
    der[i++] = (unsigned char)n;
    memcpy(der + i, body, n);
    return i + n;
}

static int verify_hmac(const ls_jwk *k, int md, const unsigned char *msg, size_t mlen,
                       const unsigned char *sig, size_t slen)
{
    if (k->mac[md] == NULL || slen != md_sizes[md]) return 0;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_dup(k->mac[md]);
    if (ctx == NULL) {
        ERR_clear_error();
        return -1;
    }
    unsigned char out[64];
    size_t outl = 0;
    int ok = EVP_MAC_update(ctx, msg, mlen) == 1 && EVP_MAC_final(ctx, out, &outl, sizeof out) == 1;
    EVP_MAC_CTX_free(ctx);
    if (!ok) ERR_clear_error();
    ok = ok && outl == slen && CRYPTO_memcmp(out, sig, slen) == 0;
    OPENSSL_cleanse(out, sizeof out);
    return ok;
}

static int verify_pkey(const ls_jwks_t *ks, const ls_jwk *k, ls_jwt_alg alg, int md,
                       const unsigned char *msg, size_t mlen, const unsigned char *sig, size_t slen)
{
    int pss = alg == LS_JWT_PS256 || alg == LS_JWT_PS384 || alg == LS_JWT_PS512;
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    if (mctx == NULL) {
        ERR_clear_error();
        return -1;
    }
    EVP_PKEY_CTX *pctx = NULL;
    int r = EVP_DigestVerifyInit(mctx, &pctx, ks->md[md], NULL, k->pkey);
    if (r == 1 && pss)
        r = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
            EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1 &&
            EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, ks->md[md]) == 1;
    if (r == 1) r = EVP_DigestVerify(mctx, sig, slen, msg, mlen);
    EVP_MD_CTX_free(mctx);
    if (r != 1) ERR_clear_error();
    return r == 1;
}

int ls_jws_verify_sig(const ls_jwks_t *ks, const ls_jwk *k, ls_jwt_alg alg,
                      const unsigned char *msg, size_t mlen, const unsigned char *sig, size_t slen)
{
    int md = ls_jwt_alg_md(alg);
    switch (k->type) {
    case LS_JWK_OCT: return verify_hmac(k, md, msg, mlen, sig, slen);
    case LS_JWK_RSA:
        if (slen != k->sig_len) return 0;
        return verify_pkey(ks, k, alg, md, msg, mlen, sig, slen);
    case LS_JWK_EC: {
        if (slen != k->sig_len) return 0; /* exactly 64, 96 or 132 bytes */
        unsigned char der[8 + 2 * (3 + 66)];
        size_t dlen = ecdsa_raw_to_der(sig, slen / 2, der);
        return verify_pkey(ks, k, alg, md, msg, mlen, der, dlen);
    }
    case LS_JWK_OKP:
        if (slen != crypto_sign_BYTES) return 0;
        return crypto_sign_verify_detached(sig, msg, mlen, k->okp) == 0;
    }
    return 0;
}
