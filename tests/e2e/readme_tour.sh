#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# End to end: README.md's ten-minute tour, run as written. Starts
# `lodestone up` (what `make demo` runs) on a free port in a temp copy of
# the source tree's layout (build/, policies/, workflows/ linked; its own
# var/), then walks the tour section:
#   ```console blocks: each "$ COMMAND" line is run with bash in that
#     directory (127.0.0.1:8080 becomes the test's port; assignments such
#     as TOKEN=... are kept for the later commands) and must exit 0; the
#     lines after it, up to the next "$ ", must appear in its output in
#     that order (blank lines and "..." skipped);
#   <!-- tour: banner -->  the ```text block after it must appear in up's
#     output;
#   <!-- tour: restart --> `up` must exit 1 on its own (the tour killed
#     lodestoned), with the ```text block after it in its stderr; then it
#     is started again on the same port and data;
#   <!-- tour: stop -->    SIGTERM to `up`: exit 0, the block in stderr.
# Outputs are compared after normalising what varies between runs: ids,
# times, dates, pids, tokens, version hashes, lighttpd's version, runs of
# spaces, and the directory (/home/you/lodestone in the README).
# usage: tests/e2e/readme_tour.sh BUILD_DIR   (from the project root)
set -u
root=$(pwd)
build=$(cd "${1:-build}" && pwd)
. "$root/tests/e2e/lib.sh"
e2e_tmpdir
trap e2e_cleanup EXIT
for tool in jq openssl curl pgrep; do
  command -v "$tool" >/dev/null || { echo "$tool not found (scripts/deps.sh installs it)"; exit 1; }
done

d=$E2E_DIR
work=$d/lodestone
mkdir -p "$work" "$d/steps"
ln -s "$build" "$work/build"
ln -s "$root/policies" "$work/policies"
ln -s "$root/workflows" "$work/workflows"
port=$(e2e_free_port)
# lighttpd loads the module built with ASan: it needs the runtime first.
UP_ENV=("${E2E_SAN_VARS[@]}")

# ---- the tour, cut into steps: $d/steps/N.kind, N.cmd, N.exp ----

awk '/^## A ten-minute tour/{on=1; next} on && /^## /{exit} on' README.md > "$d/tour.md"
n=0 mode= marker= cont=0
while IFS= read -r line; do
  if [ -z "$mode" ]; then
    case "$line" in
      '<!-- tour: '*' -->') marker=${line#<!-- tour: }; marker=${marker% -->} ;;
      '```console') mode=console ;;
      '```text')
        if [ -n "$marker" ]; then
          n=$((n + 1)); echo "$marker" > "$d/steps/$n.kind"; : > "$d/steps/$n.exp"; mode=text
        else
          mode=skip
        fi
        marker= ;;
      '```'*) mode=skip ;;
    esac
    continue
  fi
  if [ "$line" = '```' ]; then mode=; cont=0; continue; fi
  case "$mode" in
    console)
      if [ "$cont" = 1 ]; then
        printf '%s\n' "$line" >> "$d/steps/$n.cmd"
      elif [[ "$line" == '$ '* ]]; then
        n=$((n + 1)); echo cmd > "$d/steps/$n.kind"; : > "$d/steps/$n.exp"
        printf '%s\n' "${line#\$ }" > "$d/steps/$n.cmd"
      else
        printf '%s\n' "$line" >> "$d/steps/$n.exp"
      fi
      [[ "$line" == *'\' ]] && cont=1 || cont=0 ;;
    text) printf '%s\n' "$line" >> "$d/steps/$n.exp" ;;
  esac
done < "$d/tour.md"
check_match "the tour has steps" '^[1-9][0-9]+$' "$n"
check "the tour starts with the banner" banner "$(cat "$d/steps/1.kind" 2>/dev/null)"

# ---- comparing ----

normalise() {
  sed -E -e 's/\r$//' \
    -e "s#127\\.0\\.0\\.1:$port#127.0.0.1:8080#g" \
    -e "s#$work#/home/you/lodestone#g" -e "s#$root#/home/you/lodestone#g" \
    -e 's/eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+/<JWT>/g' \
    -e 's/^Date: .*/Date: <DATE>/' \
    -e 's#lighttpd/[0-9][0-9.]*[0-9]#lighttpd/<V>#g' \
    -e 's/[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z?( UTC)?/<TIME>/g' \
    -e 's/[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}/<T>/g' \
    -e 's/\b[0-9A-Z]{26}\b/<ID>/g' \
    -e 's/pid [0-9]+/pid <PID>/g' -e 's/PID = [0-9]+/PID = <PID>/g' \
    -e 's/\b1[0-9]{9}(\.[0-9]+)?\b/<EPOCH>/g' \
    -e 's/\b[0-9a-f]{16}\b/<HASH>/g' \
    -e 's/[[:space:]]+/ /g' -e 's/^ //' -e 's/ $//'
}

# header_sets: drops blank and "..." lines, and sorts each run of
# "Name: value" lines (lighttpd sends a policy's response headers in no
# fixed order).
header_sets() {
  awk 'function flush(  a, b, t) {
         for (a = 2; a <= k; a++) for (b = a; b > 1 && h[b - 1] > h[b]; b--) { t = h[b]; h[b] = h[b - 1]; h[b - 1] = t }
         for (a = 1; a <= k; a++) print h[a]
         k = 0
       }
       $0 == "" || $0 == "..." { next }
       /^[A-Za-z][A-Za-z0-9-]*: / { h[++k] = $0; next }
       { flush(); print }
       END { flush() }'
}

# matches EXPECTED_FILE ACTUAL_FILE: the expected lines appear in the
# actual output in order; prints the first that does not.
matches() {
  normalise < "$1" | header_sets > "$d/exp.n"
  normalise < "$2" | header_sets > "$d/act.n"
  awk 'NR == FNR { if ($0 != "" && $0 != "...") e[++n] = $0; next }
       $0 != "" && i < n && $0 == e[i + 1] { i++ }
       END { if (i < n) { print e[i + 1]; exit 1 } }' "$d/exp.n" "$d/act.n"
}

# ---- lodestone up ----

# start_up NAME: `lodestone up` in the work directory, in its own session;
# output in $d/NAME.out and $d/NAME.err; sets $up, and $ld (lodestoned's
# pid from the banner). Waits for the banner's last line.
start_up() {
  (cd "$work" && exec setsid env "${UP_ENV[@]}" build/bin/lodestone up --port "$port" \
    > "$d/$1.out" 2> "$d/$1.err") &
  up=$!
  E2E_PIDS+=("$up")
  for _ in $(seq 300); do
    grep -q "Ctrl-C stops everything" "$d/$1.out" 2>/dev/null && break
    e2e_alive "$up" || break
    sleep 0.1
  done
  if ! grep -q "Ctrl-C stops everything" "$d/$1.out" 2>/dev/null; then
    echo "lodestone up did not come up:"; cat "$d/$1.out" "$d/$1.err"
    return 1
  fi
  ld=$(grep -o 'lodestoned /.* (pid [0-9]*)' "$d/$1.out" | grep -o 'pid [0-9]*' | grep -o '[0-9]*')
}

# wait_up_exit: waits up to 30 s for `up` to exit; sets $rc (or "timeout").
wait_up_exit() {
  for _ in $(seq 300); do e2e_alive "$up" || break; sleep 0.1; done
  if e2e_alive "$up"; then rc=timeout; return; fi
  wait "$up" 2>/dev/null
  rc=$?
  e2e_forget "$up"
}

# The free port may be taken by a test running alongside before up binds
# it: then up says so, and another port is tried.
for try in 1 2 3; do
  start_up up1 && break
  grep -q "is in use" "$d/up1.err" 2>/dev/null && [ "$try" -lt 3 ] || exit 1
  wait "$up" 2>/dev/null
  e2e_forget "$up"
  port=$(e2e_free_port)
done
ups=1
prelude=

# run_cmd N: runs step N's command; its output in $d/N.out, status in $rc.
run_cmd() {
  local cmd
  cmd=$(sed "s#127\\.0\\.0\\.1:8080#127.0.0.1:$port#g" "$d/steps/$1.cmd")
  (cd "$work" && bash -c "$prelude$cmd") > "$d/$1.out" 2>&1
  rc=$?
}

for i in $(seq "$n"); do
  kind=$(cat "$d/steps/$i.kind")
  case "$kind" in
    banner)
      if why=$(matches "$d/steps/$i.exp" "$d/up$ups.out"); then ok "tour $i: the banner"
      else not_ok "tour $i: the banner" "not in up's output: [$why]"; fi ;;
    restart)
      wait_up_exit
      check "tour $i: up exits 1 once lodestoned was killed" 1 "$rc"
      if why=$(matches "$d/steps/$i.exp" "$d/up$ups.err"); then ok "tour $i: up says why"
      else not_ok "tour $i: up says why" "not in up's stderr: [$why]"; fi
      ups=$((ups + 1))
      start_up "up$ups" || exit 1
      ok "tour $i: up starts again on the same data"
      said=$(tr '\n' ' ' < "$d/tour.md" | grep -o 'logs `recovered[^`]*`' | sed 's/^logs `//; s/`$//')
      check_match "tour $i: the README quotes the recovery log line" '^recovered ' "$said"
      poll 100 grep -qF "$said" "$d/up$ups.out"
      check_contains "tour $i: the daemon logs it" "${said:-(nothing quoted)}" "$(cat "$d/up$ups.out")" ;;
    stop)
      kill -TERM "$up"
      wait_up_exit
      check "tour $i: up stops cleanly on SIGTERM" 0 "$rc"
      if why=$(matches "$d/steps/$i.exp" "$d/up$ups.err"); then ok "tour $i: up reports both stopped"
      else not_ok "tour $i: up reports both stopped" "not in up's stderr: [$why]"; fi ;;
    cmd)
      cmd=$(cat "$d/steps/$i.cmd")
      label="tour $i: \$ ${cmd:0:70}"
      if [[ "$cmd" == *kill* ]]; then
        # Only ever this test's daemon: the README's pattern must find
        # exactly the lodestoned that this `up` started.
        found=$(cd "$work" && pgrep -f "lodestoned --data $work/var/lodestone ")
        if [ "$found" != "$ld" ]; then
          not_ok "$label" "its pgrep finds [$found], not lodestoned's pid $ld: not run"
          continue
        fi
      fi
      run_cmd "$i"
      # Reads may race with the run they look at (a run that is about to
      # sleep): they are repeated until they match, for up to 20 s.
      if [[ "$cmd" != *"-X POST"* && "$cmd" != *kill* && ! "$cmd" =~ ^[A-Za-z_][A-Za-z0-9_]*= ]]; then
        for _ in $(seq 100); do
          [ "$rc" = 0 ] && matches "$d/steps/$i.exp" "$d/$i.out" > /dev/null && break
          sleep 0.2
          run_cmd "$i"
        done
      fi
      if [ "$rc" != 0 ]; then
        not_ok "$label" "exit $rc: $(head -c 600 "$d/$i.out")"
      elif why=$(matches "$d/steps/$i.exp" "$d/$i.out"); then
        ok "$label"
      else
        not_ok "$label" "[$why] not in its output: $(normalise < "$d/$i.out" | head -c 1500)"
      fi
      if [[ "$cmd" =~ ^[A-Za-z_][A-Za-z0-9_]*= ]]; then prelude+="$cmd"$'\n'; fi ;;
    *) not_ok "tour $i: unknown marker '$kind'" ;;
  esac
done

if e2e_alive "$up"; then
  not_ok "the tour ends with up stopped" "it still runs"
  kill -TERM "$up"
  wait_up_exit
fi

e2e_finish
