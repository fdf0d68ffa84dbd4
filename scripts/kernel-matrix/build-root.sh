#!/usr/bin/env bash
# Build the guest's whole root file system as one initramfs (cpio) for one
# Debian kernel. The cloud kernels have neither 9p nor virtiofs, so nothing of
# the host can be shared: everything the live suite runs is copied in.
#
#   build-root.sh KERNEL_TREE OUT.cpio
#
# KERNEL_TREE: a 'dpkg-deb -x' of linux-image-*-cloud-amd64-unsigned.
# The checkout is the one this script belongs to; the test libraries (pytest,
# hypothesis, ...) come from its .venv (scripts/setup.sh --test makes it).
set -euo pipefail
tree=$(realpath "$1"); out=$(realpath -m "$2")
here=$(dirname "$(realpath "$0")")
checkout=$(realpath "$here/../..")
kver=$(ls "$tree/lib/modules")
python=/usr/bin/python3.11  # Debian's: its libraries are all in /usr
site=$(echo "$checkout"/.venv/lib/python3*/site-packages)
[ -x "$python" ] || { echo "build-root.sh: $python is missing (apt-get install python3)" >&2; exit 4; }
[ -d "$site" ] || { echo "build-root.sh: no .venv in $checkout (run scripts/setup.sh --test)" >&2; exit 4; }
root=$(mktemp -d /tmp/tcpscope-root.XXXXXX)
trap 'rm -rf "$root"' EXIT
chmod 755 "$root"  # the guest's /: tests run programs as an unprivileged user too

# The shared libraries a program or library links, into the image.
deps() {
  local lib
  for lib in $(ldd "$1" 2>/dev/null | grep -o '/[^ ]*' || true); do
    [ -e "$root$lib" ] || { mkdir -p "$root$(dirname "$lib")"; cp -L "$lib" "$root$lib"; }
  done
}

# Copy programs or libraries to the same path in the image, with the shared
# libraries they link.
copy() {
  local f
  for f in "$@"; do
    mkdir -p "$root$(dirname "$f")"
    cp -L --preserve=mode "$f" "$root$f"
    deps "$f"
  done
}

# Debian's merged /usr layout.
mkdir -p "$root"/usr/{bin,sbin,lib,lib64} "$root"/{etc,proc,sys,dev,tmp,run,root,var/log/nginx,var/lib/nginx}
for d in bin sbin lib lib64; do ln -s usr/$d "$root/$d"; done
ln -s ../run "$root/var/run"
chmod 1777 "$root/tmp"

# The real programs the tests run (iproute2 and nft for namespaces and faults,
# nginx, ab and iperf3 for workloads, bpftool to inspect the tracers, Prometheus
# and openssl for serve's tests), busybox for the rest.
copy "$python" /usr/sbin/ip /usr/sbin/tc /usr/bin/ss /usr/sbin/nft /usr/sbin/nginx /usr/bin/ab /usr/bin/iperf3 \
     /usr/bin/prometheus /usr/bin/openssl \
     /usr/sbin/bpftool /usr/bin/kmod /usr/bin/bash /usr/sbin/sysctl /usr/bin/setpriv \
     /usr/bin/unshare \
     /usr/lib/x86_64-linux-gnu/libbpf.so.1
ln -s python3.11 "$root/usr/bin/python3"
for m in modprobe insmod rmmod lsmod depmod modinfo; do ln -s ../bin/kmod "$root/usr/sbin/$m"; done
cp /usr/bin/busybox "$root/usr/bin/busybox"
for applet in $(/usr/bin/busybox --list); do
  [ -e "$root/usr/bin/$applet" ] || [ -e "$root/usr/sbin/$applet" ] || ln -s busybox "$root/usr/bin/$applet"
done
tar -C / --exclude=usr/lib/python3.11/test --exclude='*/idlelib' --exclude='*/tkinter' \
    --exclude='__pycache__' -cf - usr/lib/python3.11 | tar -C "$root" -xf -
for so in /usr/lib/python3.11/lib-dynload/*.so; do copy "$so"; done
tar -C / -cf - usr/share/nginx etc/nginx usr/lib/nginx 2>/dev/null | tar -C "$root" -xf - || true
cp /etc/ld.so.cache /etc/passwd /etc/group /etc/nsswitch.conf /etc/protocols /etc/services "$root/etc/"
mkdir -p "$root/etc/ssl" "$root/usr/lib/ssl"
cp /etc/ssl/openssl.cnf "$root/etc/ssl/" && ln -s /etc/ssl/openssl.cnf "$root/usr/lib/ssl/openssl.cnf"
cp -a /usr/lib/x86_64-linux-gnu/libnss_files* "$root/usr/lib/x86_64-linux-gnu/" 2>/dev/null || true
echo "127.0.0.1 localhost" > "$root/etc/hosts"
echo "::1 localhost ip6-localhost" >> "$root/etc/hosts"

# The kernel's modules that tests load (nftables, qdiscs, veth), for kmod.
mdir=lib/modules/$kver
mkdir -p "$root/usr/$mdir/kernel/drivers"
for d in net lib crypto arch; do
  [ -d "$tree/$mdir/kernel/$d" ] && cp -a "$tree/$mdir/kernel/$d" "$root/usr/$mdir/kernel/"
done
cp -a "$tree/$mdir/kernel/drivers/net" "$root/usr/$mdir/kernel/drivers/"
cp "$tree/$mdir"/modules.{order,builtin,builtin.modinfo} "$root/usr/$mdir/" 2>/dev/null || true
depmod -b "$root/usr" "$kver"

# The checkout (without .git and the venv) and the test libraries.
mkdir -p "$root/src/tcpscope" "$root/opt/site-packages"
tar -C "$checkout" --exclude=.git --exclude=.venv --exclude='__pycache__' --exclude='*.egg-info' \
    -cf - . | tar -C "$root/src/tcpscope" -xf -
# Not the plot extra (matplotlib and what it pulls in): there, the tests check that
# --plot without it says in one line how to get it.
tar -C "$site" --exclude='pip*' --exclude='setuptools*' --exclude='ruff*' --exclude='mypy*' \
    --exclude='*hypothesis*' --exclude='*matplotlib*' --exclude='mpl_toolkits' --exclude='numpy*' \
    --exclude='PIL' --exclude='pillow*' --exclude='fontTools' --exclude='fonttools*' \
    --exclude='contourpy*' --exclude='kiwisolver*' \
    --exclude='__pycache__' --exclude='*tcpscope*' --exclude=pkg_resources \
    --exclude='_distutils_hack' --exclude='*.pth' -cf - . | tar -C "$root/opt/site-packages" -xf -
# Their compiled extensions' libraries too (bcrypt's needs libgcc_s).
find "$root/opt/site-packages" -name '*.so' -print0 | while IFS= read -r -d '' so; do deps "$so"; done
# tcpscope importable by any python3 in the guest, as an installed package is.
mkdir -p "$root/usr/lib/python3/dist-packages"
echo /src/tcpscope/src > "$root/usr/lib/python3/dist-packages/tcpscope.pth"
# Compiled once here: under emulation, compiling the modules each Python process
# imports (the guest writes no bytecode) costs seconds per process.
"$python" -m compileall -q -j0 -s "$root" -p / "$root/usr/lib/python3.11" "$root/opt/site-packages" \
    "$root/src/tcpscope/src" "$root/src/tcpscope/tests" >/dev/null || true
cp "$here/init.sh" "$root/init"
chmod +x "$root/init"

(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet) > "$out"
echo "built $(basename "$out") ($(du -h "$out" | cut -f1)) for $kver" >&2
