#!/bin/sh
# Build keytunnel's FreeRDP 2 client plugin: libkeytunnel-client.so from keytunnel-dvc.c.
#   build.sh [OUTPUT_DIR]        (default: this directory)
# Needs a C compiler, pkg-config and FreeRDP 2's headers (Debian/Ubuntu: apt-get install gcc pkg-config
# freerdp2-dev). Install the result where FreeRDP 2 looks for plugins: `keytunnel install-rdp-plugin` does both.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here}
cc=${CC:-cc}
flags=$(pkg-config --cflags --libs freerdp2 winpr2) || {
  echo "build.sh: FreeRDP 2 development files not found (Debian/Ubuntu: apt-get install freerdp2-dev pkg-config)" >&2
  exit 1
}
mkdir -p "$out"
# shellcheck disable=SC2086 # pkg-config output is a word list
"$cc" -shared -fPIC -O2 -Wall -Wextra -Werror -o "$out/libkeytunnel-client.so" "$here/keytunnel-dvc.c" $flags -lpthread
echo "$out/libkeytunnel-client.so"
