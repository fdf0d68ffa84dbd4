#!/bin/bash
# /init of the test guest: mount what tcpscope and the tests need, run the live
# suite (arguments from tcpscope.pytest= on the kernel command line, commas for
# spaces; or the base64 shell command in tcpscope.command=), print its output
# between markers on the serial console, power off.
export PATH=/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tracefs nodev /sys/kernel/tracing
mount -t debugfs nodev /sys/kernel/debug
mount -t bpf bpf /sys/fs/bpf
mount -t cgroup2 none /sys/fs/cgroup
mount -t tmpfs tmpfs /run
mkdir -p /run/netns /run/lock /run/nginx /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
ip link set lo up
hostname guest
args=$(sed -n 's/.*tcpscope\.pytest=\([^ ]*\).*/\1/p' /proc/cmdline | tr , ' ')
command=$(sed -n 's/.*tcpscope\.command=\([^ ]*\).*/\1/p' /proc/cmdline | base64 -d)
echo "TCPSCOPE-GUEST $(uname -r) btf=$([ -e /sys/kernel/btf/vmlinux ] && echo yes || echo no)"
cd /src/tcpscope
# TCPSCOPE_EMULATED: the tests that stress what qemu's emulation gets wrong hold back.
export CI=true PYTHONPATH=/src/tcpscope:/opt/site-packages PYTHONDONTWRITEBYTECODE=1 TCPSCOPE_EMULATED=1
echo "TCPSCOPE-BEGIN"
if [ -n "$command" ]; then
  bash -c "$command" 2>&1
else
  # shellcheck disable=SC2086 # the arguments are words
  python3 -m pytest -p no:cacheprovider -q --color=no -rfE --durations=10 ${args:-tests/live} 2>&1
fi
echo "TCPSCOPE-END rc=$?"
poweroff -f
