/* SPDX-License-Identifier: MIT
 * The library's version string. */
#include "ls_config.h"

#include "lodestone/lodestone.h"

const char *ls_version(void)
{
    return LS_VERSION;
}
