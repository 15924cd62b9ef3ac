#!/usr/bin/env bash
# run-guest.sh SCRIPT|shell — boot the keytunnel test guest (scripts/vm/setup.sh must have run), run
# `sh SCRIPT` inside it (chrooted into the host's read-only root, cwd = the share), power off, and exit with the
# script's exit status. The guest console goes to stdout. 99 = the guest never reported (crash, hang, timeout).
#
# Environment:
#   KEYTUNNEL_VM_SHARE  host directory shared read-write at the same path in the guest (default: the script's
#                       directory). It may be anywhere but /proc, /sys, /dev (a share under /tmp or /run is
#                       mounted on a directory made in the guest's own tmpfs there).
#   KEYTUNNEL_VM_HOSTFWD  e.g. "hostfwd=tcp:127.0.0.1:P-:P" (host 127.0.0.1:P reaches the guest's port P)
#   KEYTUNNEL_VM_TIMEOUT  seconds before the guest is killed (default 300)
#   KEYTUNNEL_VM_MEM (MiB, default 1024)  KEYTUNNEL_VM_SMP (default 2)  KEYTUNNEL_VM_DIR (setup's cache dir)
#   KEYTUNNEL_VM_SLOTS    guests allowed to run at once on this machine (default: one per 2 CPUs, at least 1)
#   KEYTUNNEL_VM_LOCK_WAIT  seconds to wait for a free slot (default 1800)
# This checkout (the directory two levels up) is visible in the guest at the same path, read-only, wherever it is:
# init.sh keeps a checkout under /tmp or /run visible although the guest mounts fresh tmpfs over both.
# Always TCG (`-accel tcg,thread=multi -cpu max`): KVM does not work on the nested build machines.
# Guests are slot-limited machine-wide (flock on $VM/slot-N.lock): a TCG guest with 2 vCPUs saturates 2 cores,
# and overcommitted guests get so slow that CTAPHID's 500 ms inter-packet timeout fires. The timeout starts once
# a slot is held; "[run-guest] slot N acquired" goes to stderr at that moment.
set -uo pipefail
VM=${KEYTUNNEL_VM_DIR:-$HOME/.cache/keytunnel/vm}
[ -s "$VM/kernel-version" ] || { echo "run-guest: no guest kernel in $VM; run scripts/vm/setup.sh" >&2; exit 2; }
KV=$(cat "$VM/kernel-version")
# shellcheck source=initrd.sh
. "$(dirname "$0")/initrd.sh"
INITRD=$(initrd_path "$VM" "$KV")
[ -s "$INITRD" ] || { echo "run-guest: no initramfs for this checkout's init.sh in $VM; run scripts/vm/setup.sh" >&2; exit 2; }
REPO=$(cd "$(dirname "$0")/../.." && pwd)
SCRIPT=${1:-shell}
if [ "$SCRIPT" != shell ]; then
  [ -f "$SCRIPT" ] || { echo "run-guest: no such script: $SCRIPT" >&2; exit 2; }
  SCRIPT=$(cd "$(dirname "$SCRIPT")" && pwd)/$(basename "$SCRIPT")
fi
SHARE=${KEYTUNNEL_VM_SHARE:-$( [ "$SCRIPT" = shell ] && pwd || dirname "$SCRIPT")}
SHARE=$(cd "$SHARE" && pwd)
case "$SHARE" in /|/tmp|/run|/proc|/proc/*|/sys|/sys/*|/dev|/dev/*) echo "run-guest: the share cannot be $SHARE (the guest mounts its own there)" >&2; exit 2;; esac
# The paths travel on the kernel command line and into the guest's shell: plain characters only.
for p in "$SHARE" "$SCRIPT" "$REPO"; do
  case "$p" in *[!A-Za-z0-9._/+@-]*) echo "run-guest: unsupported character in path $p (allowed: A-Z a-z 0-9 . _ / + @ -)" >&2; exit 2;; esac
done

# Take a slot, first come first served (the wait does not count towards the guest's timeout): each waiter holds a
# ticket in $VM/queue named <nanoseconds>-<pid>; only the SLOTS oldest live tickets may try the slot locks.
SLOTS=${KEYTUNNEL_VM_SLOTS:-$(( $(nproc) / 2 ))}; [ "$SLOTS" -ge 1 ] 2>/dev/null || SLOTS=1
Q="$VM/queue"; mkdir -p "$Q"
TICKET="$(date +%s%N)-$$"; : > "$Q/$TICKET"
trap 'rm -f "$Q/$TICKET"' EXIT
start=$(date +%s); deadline=$(( start + ${KEYTUNNEL_VM_LOCK_WAIT:-1800} ))
while :; do
  for f in "$Q"/*; do [ -e "$f" ] && { kill -0 "${f##*-}" 2>/dev/null || rm -f "$f"; }; done   # drop dead waiters
  ahead=$(ls "$Q" | sort | awk -v me="$TICKET" '$0 < me' | wc -l)
  if [ "$ahead" -lt "$SLOTS" ]; then
    for n in $(seq 1 "$SLOTS"); do
      exec 9>"$VM/slot-$n.lock"
      if flock -n 9; then break 2; fi
      exec 9>&-
    done
  fi
  [ "$(date +%s)" -ge "$deadline" ] && { echo "run-guest: no free guest slot after $(( $(date +%s) - start ))s" >&2; exit 99; }
  sleep 0.5
done
rm -f "$Q/$TICKET"
echo "[run-guest] slot $n acquired after $(( $(date +%s) - start ))s" >&2

NET=(-netdev "user,id=n0${KEYTUNNEL_VM_HOSTFWD:+,$KEYTUNNEL_VM_HOSTFWD}" -device virtio-net-pci,netdev=n0,romfile=)
LOG=$(mktemp)
trap 'rm -f "$LOG" "$Q/$TICKET"' EXIT
timeout --kill-after=5 "${KEYTUNNEL_VM_TIMEOUT:-300}" qemu-system-x86_64 \
  -accel tcg,thread=multi -cpu max -m "${KEYTUNNEL_VM_MEM:-1024}" -smp "${KEYTUNNEL_VM_SMP:-2}" \
  -display none -monitor none -serial stdio -no-reboot -nodefaults \
  -kernel "$VM/vmlinux-$KV" -initrd "$INITRD" \
  -append "console=ttyS0 quiet loglevel=3 panic=-1 kt.script=$SCRIPT kt.share=$SHARE kt.repo=$REPO" \
  -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
  -virtfs "local,path=$SHARE,mount_tag=share,security_model=none,multidevs=remap" \
  "${NET[@]}" </dev/null 9>&- | tee "$LOG"
rc=$(sed -n 's/.*KEYTUNNEL_GUEST_RC=\([0-9]*\).*/\1/p' "$LOG" | tail -1)
exit "${rc:-99}"
