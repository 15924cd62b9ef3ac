#!/usr/bin/env bash
# Idempotent provisioning of the system packages the tests need (run by `npm test` before anything else).
# As root it installs what is missing with apt-get; otherwise it names what to install and fails.
set -euo pipefail
cd "$(dirname "$0")/.."

# package -> a file that proves it is installed
declare -A NEED=(
  [fido2-tools]=/usr/bin/fido2-token
  [python3-fido2]=/usr/lib/python3/dist-packages/fido2/__init__.py
  [qemu-system-x86]=/usr/bin/qemu-system-x86_64
  [busybox-static]=/bin/busybox
  [kmod]=/usr/bin/kmod
  [xz-utils]=/usr/bin/xz
  [usbip]=/usr/sbin/usbip
  [libusb-1.0-0]=/usr/lib/x86_64-linux-gnu/libusb-1.0.so.0
  [libudev1]=/usr/lib/x86_64-linux-gnu/libudev.so.1
  [chromium]=/usr/lib/chromium/chromium
  [chromium-headless-shell]=/usr/lib/chromium/chromium-headless-shell
  [systemd]=/usr/bin/systemd-analyze
  # Removes node.exe's signature before the app is injected (scripts/build-exe.mjs).
  [osslsigncode]=/usr/bin/osslsigncode
  # Windows node.exe under Wine (test/windows/): wine64 is the 64-bit loader, wine the rest of Wine 8.
  [wine]=/usr/bin/wine-stable
  [wine64]=/usr/lib/wine/wine64
  # The OS keychain under a real Secret Service (test/desktop/keychain.test.ts): a private session bus,
  # gnome-keyring's secrets component on it, secret-tool as the independent reader.
  [dbus]=/usr/bin/dbus-daemon
  [gnome-keyring]=/usr/bin/gnome-keyring-daemon
  [libsecret-tools]=/usr/bin/secret-tool
  # The tunnel over an RDP virtual channel (test/rdp/): xrdp as the VM's server, FreeRDP 2 as the laptop's client,
  # the keytunnel plugin built with gcc against freerdp2-dev; Xvfb is xfreerdp's display.
  [xrdp]=/usr/sbin/xrdp
  [xorgxrdp]=/usr/lib/xorg/modules/libxorgxrdp.so
  [freerdp2-x11]=/usr/bin/xfreerdp
  [freerdp2-dev]=/usr/include/freerdp2/freerdp/dvc.h
  [xvfb]=/usr/bin/Xvfb
  [gcc]=/usr/bin/gcc
  [pkg-config]=/usr/bin/pkg-config
  [binutils]=/usr/bin/nm
  # Approval dialogs with the real programs (test/agent/presence/dialog-desktop.test.ts): pinentries in a tmux
  # pane, pinentry-gtk2 and zenity under Xvfb answered with xdotool, screenshots with ImageMagick's import.
  [pinentry-tty]=/usr/bin/pinentry-tty
  [pinentry-curses]=/usr/bin/pinentry-curses
  [pinentry-gtk2]=/usr/bin/pinentry-gtk-2
  [zenity]=/usr/bin/zenity
  [xdotool]=/usr/bin/xdotool
  [imagemagick]=/usr/bin/import-im6.q16
  [tmux]=/usr/bin/tmux
  # The container image tests (test/container/, *.docker.test.ts): the engine, and debootstrap for the local base.
  [docker.io]=/usr/sbin/dockerd
  [debootstrap]=/usr/sbin/debootstrap
)
missing=()
for pkg in "${!NEED[@]}"; do [ -e "${NEED[$pkg]}" ] || missing+=("$pkg"); done

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "provision: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "provision: the tests need these Debian packages: ${missing[*]}" >&2
    echo "provision: install them with: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi

# The guest kernel for the kernel-level tests (qemu); see scripts/vm/.
if [ -x scripts/vm/setup.sh ]; then scripts/vm/setup.sh; fi
