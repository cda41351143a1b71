# SPDX-License-Identifier: MIT
# Finds Lodestone's third-party libraries. Each missing one stops the
# configure step with the Debian package that provides it
# (scripts/deps.sh installs them all).
find_package(PkgConfig QUIET)
if(NOT PKG_CONFIG_FOUND)
  message(FATAL_ERROR "pkg-config not found: install the Debian package 'pkg-config' (or run scripts/deps.sh)")
endif()

# ls_pkg(<target> <pkg-config name> <Debian package>)
# Creates the imported target ls::<target>.
function(ls_pkg target pcname debpkg)
  pkg_check_modules(LSDEP_${target} QUIET IMPORTED_TARGET GLOBAL ${pcname})
  if(NOT LSDEP_${target}_FOUND)
    message(FATAL_ERROR "${pcname} not found: install the Debian package '${debpkg}' (or run scripts/deps.sh)")
  endif()
  add_library(ls::${target} ALIAS PkgConfig::LSDEP_${target})
endfunction()

ls_pkg(sodium   libsodium     libsodium-dev)
ls_pkg(jansson  jansson       libjansson-dev)
ls_pkg(crypto   libcrypto     libssl-dev)
ls_pkg(curl     libcurl       libcurl4-openssl-dev)
ls_pkg(mhd      libmicrohttpd libmicrohttpd-dev)
ls_pkg(cmocka   cmocka        libcmocka-dev)
ls_pkg(lua54    lua5.4        liblua5.4-dev)
ls_pkg(luajit   luajit        libluajit-5.1-dev)
ls_pkg(icu      icu-i18n      libicu-dev)

# LevelDB ships no pkg-config file on Debian: look for the header and library.
find_path(LEVELDB_INCLUDE_DIR leveldb/c.h)
find_library(LEVELDB_LIBRARY NAMES leveldb)
if(NOT LEVELDB_INCLUDE_DIR OR NOT LEVELDB_LIBRARY)
  message(FATAL_ERROR "LevelDB not found: install the Debian package 'libleveldb-dev' (or run scripts/deps.sh)")
endif()
add_library(ls::leveldb UNKNOWN IMPORTED GLOBAL)
set_target_properties(ls::leveldb PROPERTIES
  IMPORTED_LOCATION "${LEVELDB_LIBRARY}"
  INTERFACE_INCLUDE_DIRECTORIES "${LEVELDB_INCLUDE_DIR}")

# Programs the tests run.
function(ls_program var name debpkg)
  find_program(${var} ${name})
  if(NOT ${var})
    message(FATAL_ERROR "${name} not found: install the Debian package '${debpkg}' (or run scripts/deps.sh)")
  endif()
endfunction()
ls_program(LS_LUAJIT  luajit  luajit)
ls_program(LS_LUA54   lua5.4  lua5.4)
ls_program(LS_BUSTED  busted  lua-busted)
