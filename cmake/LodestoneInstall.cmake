# SPDX-License-Identifier: MIT
# `make install` / `cmake --install BUILD [--prefix P]`: what goes where
# (docs/install.md). DESTDIR is honoured for staging. Paths that depend on
# the prefix are decided at install time, so `--prefix` given to
# `cmake --install` counts, not only the prefix the build was configured with:
#
#   bin/lodestone, bin/lodestoned
#   LUALIB/lua/5.4/lodestone/core.so            Lua 5.4 (lighttpd's mod_magnet)
#   LUALIB/lua/5.1/lodestone/{core,httpc}.so    LuaJIT
#   share/lua/{5.4,5.1}/lodestone/**            the pure-Lua modules
#   share/lodestone/{conf,policies,workflows,ui}/
#   lib/systemd/system/lodestoned.service, lib/sysusers.d/lodestone.conf
#   share/man/man1/lodestone.1, share/man/man8/lodestoned.8
#   share/doc/lodestone/
#
# LUALIB is lib/<multiarch triplet> when the prefix is /usr (Debian's lua5.4
# and luajit search /usr/lib/x86_64-linux-gnu/lua/5.x) and lib otherwise
# (they search /usr/local/lib/lua/5.x, with no triplet).

install(TARGETS lodestone lodestoned RUNTIME DESTINATION bin)

# The pure-Lua modules, once for each Lua ABI's search path.
foreach(abi 5.4 5.1)
  install(DIRECTORY ${CMAKE_SOURCE_DIR}/lua/lodestone DESTINATION share/lua/${abi})
endforeach()

# The C modules: the destination depends on the install prefix.
set(LS_ARCH "${CMAKE_LIBRARY_ARCHITECTURE}")
install(CODE "
  if(CMAKE_INSTALL_PREFIX MATCHES \"^/usr/?$\" AND NOT \"${LS_ARCH}\" STREQUAL \"\")
    set(_ls_lualib \"lib/${LS_ARCH}\")
  else()
    set(_ls_lualib \"lib\")
  endif()
  set(_ls_root \"\${CMAKE_INSTALL_PREFIX}/\${_ls_lualib}/lua\")
  file(INSTALL \"$<TARGET_FILE:lodestone_lua54>\" DESTINATION \"\${_ls_root}/5.4/lodestone\")
  file(INSTALL \"$<TARGET_FILE:lodestone_luajit>\" \"$<TARGET_FILE:lodestone_httpc_luajit>\"
       DESTINATION \"\${_ls_root}/5.1/lodestone\")
")

# Configuration snippets, examples and the web UI (when present), read-only.
install(DIRECTORY ${CMAKE_SOURCE_DIR}/conf/ DESTINATION share/lodestone/conf
        PATTERN "*.in" EXCLUDE)
# The example policies without policies/demo-keys: its signing key, webhook
# secret and API keys are public, so they must never guard anything real.
install(DIRECTORY ${CMAKE_SOURCE_DIR}/policies ${CMAKE_SOURCE_DIR}/workflows
        DESTINATION share/lodestone PATTERN "demo-keys" EXCLUDE)
# OPTIONAL: checked when installing, so a ui/ that appears later needs no
# reconfigure.
install(DIRECTORY ${CMAKE_SOURCE_DIR}/ui DESTINATION share/lodestone OPTIONAL)

# systemd: the unit names the installed lodestoned, so it is written at
# install time from conf/lodestoned.service.in with the real prefix.
install(CODE "
  set(LS_BINDIR \"\${CMAKE_INSTALL_PREFIX}/bin\")
  configure_file(\"${CMAKE_SOURCE_DIR}/conf/lodestoned.service.in\"
                 \"${CMAKE_BINARY_DIR}/install/lodestoned.service\" @ONLY)
  file(INSTALL \"${CMAKE_BINARY_DIR}/install/lodestoned.service\"
       DESTINATION \"\${CMAKE_INSTALL_PREFIX}/lib/systemd/system\")
")
install(FILES ${CMAKE_SOURCE_DIR}/conf/lodestone.sysusers DESTINATION lib/sysusers.d
        RENAME lodestone.conf)

install(FILES ${CMAKE_SOURCE_DIR}/docs/man/lodestone.1 DESTINATION share/man/man1)
install(FILES ${CMAKE_SOURCE_DIR}/docs/man/lodestoned.8 DESTINATION share/man/man8)
install(FILES ${CMAKE_SOURCE_DIR}/README.md DESTINATION share/doc/lodestone)
install(DIRECTORY ${CMAKE_SOURCE_DIR}/docs/ DESTINATION share/doc/lodestone
        PATTERN "man" EXCLUDE)
