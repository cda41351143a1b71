/* SPDX-License-Identifier: MIT
 * Lodestone: the umbrella header. Include this, or only the parts you use.
 */
#ifndef LODESTONE_H
#define LODESTONE_H

#include "ls_err.h"
#include "ls_alloc.h"
#include "ls_buf.h"
#include "ls_clock.h"
#include "ls_duration.h"
#include "ls_id.h"
#include "ls_store.h"
#include "ls_vault.h"
#include "ls_base64.h"
#include "ls_jwt.h"
#include "ls_cidr.h"
#include "ls_ratelimit.h"
#include "ls_apikey.h"
#include "ls_basic.h"
#include "ls_hmac.h"
#include "ls_pmetrics.h"
#include "ls_policy.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Version of this build, "MAJOR.MINOR.PATCH"; static, never NULL. */
LS_API const char *ls_version(void);

#ifdef __cplusplus
}
#endif
#endif
