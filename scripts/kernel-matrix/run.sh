#!/usr/bin/env bash
# The kernel matrix: run the live test suite on Debian's long-term kernels,
# each booted under qemu (software emulation: no KVM here), and print a
# summary line per kernel. Exits non-zero when any guest's suite fails or
# does not finish, after printing that guest's test output.
#
#   scripts/kernel-matrix/run.sh [-k SERIES]... [PYTEST ARGS...]
#   scripts/kernel-matrix/run.sh [-k SERIES]... -c 'SHELL COMMAND'   (to investigate)
#
# SERIES: 6.1 and 6.12 by default (Debian 12's kernel and the current LTS);
# the newest cloud kernel of each series is fetched with 'apt-get download'.
# PYTEST ARGS default to tests/live, e.g. 'tests/live/test_life.py -x'.
# Env: TCPSCOPE_MATRIX_CACHE (kernels and images, default
# /var/cache/tcpscope-matrix), TCPSCOPE_MATRIX_TIMEOUT (seconds per guest, 1200),
# TCPSCOPE_MATRIX_MEM (MiB per guest, 2048).
set -euo pipefail
here=$(dirname "$(realpath "$0")")
cache=${TCPSCOPE_MATRIX_CACHE:-/var/cache/tcpscope-matrix}
series=()
command=
while [ $# -gt 0 ]; do
  case "$1" in
    -k) series+=("$2"); shift 2 ;;
    -c) command=$(printf '%s' "$2" | base64 -w0); shift 2 ;;
    *) break ;;
  esac
done
[ ${#series[@]} -gt 0 ] || series=(6.1 6.12)
pytest_args=$(IFS=,; echo "$*")
case "$pytest_args" in *' '*) echo "run.sh: pytest arguments cannot hold spaces" >&2; exit 2 ;; esac
mkdir -p "$cache/debs" "$cache/kernels" "$cache/logs"

# The newest cloud kernel of a series, unpacked; prints its tree.
fetch_kernel() {
  local pattern package deb tree
  case "$1" in
    6.1) pattern='^linux-image-6\.1\.0-[0-9]+-cloud-amd64-unsigned$' ;;
    *) pattern="^linux-image-${1//./\\.}\\.[0-9]+\\+deb[0-9]+-cloud-amd64-unsigned\$" ;;
  esac
  newest() { apt-cache search --names-only "$pattern" | cut -d' ' -f1 | sort -V | tail -1; }
  package=$(newest)
  tree=$cache/kernels/${package#linux-image-}
  if [ -z "$package" ] || [ ! -d "$tree/boot" ]; then
    # The package lists may be older than the mirror: refresh them once.
    if ! (cd "$cache/debs" && apt-get download -q "$package" >/dev/null 2>&1); then
      apt-get update -qq && package=$(newest) && tree=$cache/kernels/${package#linux-image-}
      [ -n "$package" ] || { echo "run.sh: Debian has no cloud kernel of series $1" >&2; return 1; }
      (cd "$cache/debs" && apt-get download -q "$package" >/dev/null 2>&1) \
        || { echo "run.sh: could not download $package" >&2; return 1; }
    fi
    deb=$(ls -t "$cache/debs/${package}"_*.deb | head -1)
    rm -rf "$tree.tmp" && mkdir -p "$tree.tmp" && dpkg-deb -x "$deb" "$tree.tmp" && mv "$tree.tmp" "$tree"
  fi
  echo "$tree"
}

# Boot one kernel with a fresh image of the checkout; the console goes to LOG.
boot() {
  local tree=$1 log=$2 kver image
  kver=$(ls "$tree/lib/modules")
  image=$cache/root-$kver.cpio
  "$here/build-root.sh" "$tree" "$image"
  # -cpu max: the emulator's most capable model; no network device (the tests
  # use loopback and veth); panic=-1 and -no-reboot end qemu on a panic.
  timeout "${TCPSCOPE_MATRIX_TIMEOUT:-1200}" qemu-system-x86_64 \
    -machine q35 -accel tcg,thread=multi -cpu max -smp 2 -m "${TCPSCOPE_MATRIX_MEM:-2048}" \
    -kernel "$tree/boot/vmlinuz-$kver" -initrd "$image" \
    -append "console=ttyS0 panic=-1 quiet loglevel=3 rdinit=/init${pytest_args:+ tcpscope.pytest=$pytest_args}${command:+ tcpscope.command=$command}" \
    -nic none -display none -serial "file:$log" -monitor none -no-reboot </dev/null || true
  rm -f "$image"
}

failed=0 passed_total=0 failed_total=0 summary=()
# The guests run side by side: much of a live test is waiting (timers, settling,
# scrapes), which the other guest's emulation fills.
logs=() pids=()
for s in "${series[@]}"; do
  tree=$(fetch_kernel "$s") || { failed=1; summary+=("$s: could not fetch the kernel"); continue; }
  kver=$(ls "$tree/lib/modules")
  log=$cache/logs/$kver.log
  { boot "$tree" "$log"; echo "$SECONDS" > "$log.end"; } &
  logs+=("$log") pids+=($!)
done
for i in "${!logs[@]}"; do
  wait "${pids[$i]}" || true
  log=${logs[$i]}
  kver=$(basename "$log" .log)
  tr -d '\r' < "$log" > "$log.txt"
  output=$(sed -n '/^TCPSCOPE-BEGIN/,/^TCPSCOPE-END/p' "$log.txt" | sed '1d;$d')
  rc=$(sed -n 's/^TCPSCOPE-END rc=\([0-9]*\).*/\1/p' "$log.txt")
  result=$(printf '%s\n' "$output" | grep -E '^[0-9]+ (passed|failed)|[0-9]+ (passed|failed).* in [0-9.]+s' | tail -1 || true)
  passed=$(printf '%s' "$result" | grep -oE '[0-9]+ passed' | cut -d' ' -f1 || true)
  nfailed=$(printf '%s' "$result" | grep -oE '[0-9]+ (failed|error)' | cut -d' ' -f1 | paste -sd+ | bc || true)
  passed_total=$((passed_total + ${passed:-0})); failed_total=$((failed_total + ${nfailed:-0}))
  [ -n "$command" ] && result="the command exited ${rc:-?}"
  if [ "$rc" != 0 ] || [ -n "$command" ]; then
    [ "$rc" = 0 ] || failed=1
    [ -n "$rc" ] || { failed_total=$((failed_total + 1)); result="did not finish (see $log.txt)"; }
    echo "==== $kver: the guest's output ===="
    if [ -n "$output" ]; then printf '%s\n' "$output"; else tail -50 "$log.txt"; fi
  fi
  summary+=("$kver: ${result:-no result} [$(cat "$log.end") s]")
done
echo "==== kernel matrix ===="
printf '%s\n' "${summary[@]}"
echo "matrix: $passed_total passed, $failed_total failed"
exit $failed
