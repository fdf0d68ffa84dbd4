#!/usr/bin/env bash
# Set up tcpscope on a Debian/Ubuntu host, as root, idempotently:
#   scripts/setup.sh          libbpf1 and a virtualenv (.venv) with tcpscope
#   scripts/setup.sh --test   also what the test suite needs (servers, clang, ...)
#   scripts/setup.sh --matrix also what the kernel matrix needs (qemu, busybox, ...)
#   scripts/setup.sh --bench  also what bench/ compares against
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(libbpf1)
extras=""
for arg in "$@"; do
    case "$arg" in
        --test) packages+=(iproute2 nftables nginx-light apache2-utils iperf3 prometheus openssl clang llvm
                           libbpf-dev bpftool make)
                extras="[test]" ;;
        --matrix) packages+=(qemu-system-x86 busybox-static cpio kmod python3.11 util-linux) ;;
        --bench) packages+=(iproute2 nginx-light apache2-utils tcpdump bpftrace iperf3) ;;
        *) echo "setup.sh: unknown option $arg (use --test, --matrix or --bench)" >&2; exit 2 ;;
    esac
done

if [ "$(id -u)" != 0 ]; then
    echo "setup.sh: run as root (it installs Debian packages)" >&2
    exit 3
fi

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup.sh: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".$extras"
