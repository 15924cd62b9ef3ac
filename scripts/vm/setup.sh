#!/usr/bin/env bash
# Prepare the qemu test guest for the kernel-level tests (test/vm/): a stock Debian kernel (linux-image-amd64's
# current ABI package, only downloaded and unpacked, never installed on the host), its uncompressed vmlinux, and a
# busybox initramfs that loads uhid / hid-generic / usbhid / vhci-hcd / 9p / virtio-net and runs scripts/vm/init.sh.
#
# Everything goes to ${KEYTUNNEL_VM_DIR:-$HOME/.cache/keytunnel/vm} (not the repo; not /tmp, which the guest
# replaces with a fresh tmpfs). Idempotent: when the kernel version and the initramfs inputs (this file, init.sh,
# initrd.sh, the busybox binary) are unchanged it is a fast no-op. Needs: apt-get, dpkg-deb, kmod (depmod/modprobe), xz,
# busybox-static, gzip (scripts/provision.sh installs them).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
VM=${KEYTUNNEL_VM_DIR:-$HOME/.cache/keytunnel/vm}
mkdir -p "$VM"
export LC_ALL=C
log() { echo "vm/setup: $*" >&2; }

# shellcheck source=initrd.sh
. "$HERE/initrd.sh"   # VM_MODULES, VM_BUSYBOX, initrd_path

# 1. Which kernel: linux-image-amd64 depends on the current ABI package (e.g. linux-image-6.1.0-56-amd64).
kernel_package() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}'; }
KPKG=$(kernel_package || true)
if [ -z "$KPKG" ] && [ "$(id -u)" = 0 ]; then apt-get update -qq >/dev/null 2>&1 || true; KPKG=$(kernel_package || true); fi
if [ -z "$KPKG" ]; then
  # Offline or no package lists: keep using the kernel we already have.
  if [ -s "$VM/kernel-version" ]; then KPKG=linux-image-$(cat "$VM/kernel-version"); log "apt has no linux-image-amd64; reusing $KPKG"
  else log "cannot find linux-image-amd64 in apt (run apt-get update)"; exit 1; fi
fi
KV=${KPKG#linux-image-}
K="$VM/kernel/$KV"

# 2. Download + unpack the kernel package (~70 MB, a few seconds) and generate modules.dep (the .deb ships none).
if [ ! -f "$K/.unpacked" ]; then
  log "fetching $KPKG"
  rm -rf "$K" "$VM/debs"; mkdir -p "$K" "$VM/debs"
  (cd "$VM/debs" && apt-get download "$KPKG" >/dev/null 2>&1) || { log "apt-get download $KPKG failed"; exit 1; }
  dpkg-deb -x "$VM/debs/${KPKG}"_*.deb "$K"
  depmod -b "$K" "$KV"
  rm -rf "$VM/debs"
  touch "$K/.unpacked"
fi

# 3. The uncompressed vmlinux (an ELF with a PVH note): qemu boots it directly, saving ~2.4 s of xz under TCG.
VMLINUX="$VM/vmlinux-$KV"
if [ ! -s "$VMLINUX" ]; then
  log "extracting vmlinux"
  off=$(grep -obUaP '\xfd7zXZ\x00' "$K/boot/vmlinuz-$KV" | head -1 | cut -d: -f1)
  # xz warns about the trailing garbage after the compressed kernel; that is expected.
  tail -c +$((off + 1)) "$K/boot/vmlinuz-$KV" | xz -dc > "$VMLINUX.part" 2>/dev/null || true
  [ "$(head -c4 "$VMLINUX.part" | od -An -c | tr -d ' ')" = '177ELF' ] || { log "vmlinux extraction failed"; rm -f "$VMLINUX.part"; exit 1; }
  mv "$VMLINUX.part" "$VMLINUX"
fi

# 4. initramfs: static busybox + modules + init.sh, named for the hash of its inputs (initrd.sh), built in a private
# directory and renamed into place, so concurrent setups (other checkouts) never see a half-made one.
INITRD=$(initrd_path "$VM" "$KV")
if [ ! -s "$INITRD" ]; then
  log "building initramfs"
  R=$(mktemp -d "$VM/initrd-root.XXXXXX"); trap 'rm -rf "$R"' EXIT
  mkdir -p "$R"/root/{bin,proc,sys,dev,host,mods}
  cp "$VM_BUSYBOX" "$R/root/bin/busybox"
  for a in sh mount insmod mkdir cat sed sleep poweroff ip ls chroot cut; do ln -s busybox "$R/root/bin/$a"; done
  for m in "${VM_MODULES[@]}"; do modprobe -d "$K" -S "$KV" --show-depends "$m"; done \
    | awk '$1=="insmod"{print $2}' | awk '!s[$0]++' | while read -r ko; do
      cp "$ko" "$R/root/mods/"; basename "$ko" >> "$R/root/mods/order"; done
  cp "$HERE/init.sh" "$R/root/init"; chmod +x "$R/root/init"
  (cd "$R/root" && find . | "$VM_BUSYBOX" cpio -o -H newc -R 0:0 2>/dev/null | gzip -1) > "$R/initrd.cpio.gz"   # no cpio package needed
  mv "$R/initrd.cpio.gz" "$INITRD"
  rm -rf "$R"; trap - EXIT
fi

# 5. Publish the current kernel for run-guest.sh (written last, so a half-done setup is never "current").
echo "$KV" > "$VM/kernel-version.part" && mv "$VM/kernel-version.part" "$VM/kernel-version"
