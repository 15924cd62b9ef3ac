#!/bin/sh
# /init of the keytunnel test guest (runs from the busybox initramfs built by scripts/vm/setup.sh).
# Loads the HID / USB-IP / 9p / virtio-net modules, mounts the host's "/" read-only over 9p plus one
# read-write share at the same path as on the host, chroots into the host root and runs the guest script.
# The guest gets fresh tmpfs on /tmp and /run; a checkout (kt.repo) under either stays visible at its host path.
# The script's exit status is printed as KEYTUNNEL_GUEST_RC=<n>; scripts/vm/run-guest.sh turns it into its own.
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in $(cat /mods/order); do insmod /mods/$m || echo "[init] insmod $m FAILED"; done
[ -c /dev/uhid ] || echo "[init] /dev/uhid MISSING"
ip link set lo up
# qemu user networking: the guest is 10.0.2.15, the host's loopback is reachable as 10.0.2.2.
ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2
arg() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
fail() { echo "[init] $*"; echo "KEYTUNNEL_GUEST_RC=98"; poweroff -f; }
SCRIPT=$(arg kt.script); SHARE=$(arg kt.share); REPO=$(arg kt.repo)
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot /host \
  || fail "9p mount of the host root failed"
# A checkout under /tmp or /run would vanish under the tmpfs mounted below: hold it (read-only, like the rest of the
# host root) on /repo first and bind it back at its own path afterwards.
case "$REPO" in
  /tmp/?*|/run/?*) mkdir -p /repo && mount -o bind "/host$REPO" /repo || fail "cannot hold the checkout $REPO";;
  *) REPO=;;
esac
mount -t proc proc /host/proc; mount -t sysfs sys /host/sys; mount -t devtmpfs dev /host/dev
# Fresh tmpfs on /tmp and /run: the host's /tmp is NOT visible in the guest (usbip attach needs a writable /run).
mount -t tmpfs tmp /host/tmp; mount -t tmpfs run /host/run
mkdir -p /host/dev/pts /host/dev/shm 2>/dev/null
mount -t devpts devpts /host/dev/pts; mount -t tmpfs shm /host/dev/shm
if [ -n "$REPO" ]; then
  mkdir -p "/host$REPO" && mount -o bind /repo "/host$REPO" || fail "cannot bind the checkout back at $REPO"
fi
if [ -n "$SHARE" ]; then
  # A share under /tmp or /run (outside the checkout) gets its mount point in the guest's tmpfs.
  [ -d "/host$SHARE" ] || mkdir -p "/host$SHARE"
  mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 share "/host$SHARE" || fail "9p mount of the share $SHARE failed"
fi
echo "[init] ready after $(cut -d' ' -f1 /proc/uptime)s"
export HOME=/tmp TERM=linux LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
if [ -z "$SCRIPT" ] || [ "$SCRIPT" = shell ]; then chroot /host /bin/bash -l; rc=$?
else chroot /host /bin/sh -c "cd '$SHARE' && exec /bin/sh '$SCRIPT'"; rc=$?; fi
echo "[init] done after $(cut -d' ' -f1 /proc/uptime)s"
echo "KEYTUNNEL_GUEST_RC=$rc"
poweroff -f
