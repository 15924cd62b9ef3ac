# Sourced by setup.sh and run-guest.sh (bash): which initramfs this checkout's guest boots.
# The initramfs carries this checkout's init.sh, so its name is content-addressed: checkouts with different guest
# inits share the cache directory without rebuilding (or booting) each other's.
# The modules the guest loads (their dependencies are resolved from modules.dep). hidraw is built into the kernel.
VM_MODULES=(uhid hid-generic usbhid vhci-hcd 9p 9pnet_virtio virtio_pci virtio_net)
VM_BUSYBOX=/bin/busybox

# initrd_path DIR KERNEL_VERSION — prints the path of the initramfs built from this checkout's inputs.
initrd_path() {
  local here inputs
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  inputs=$( { echo "$2"; echo "${VM_MODULES[*]}"; cat "$here/init.sh" "$here/setup.sh" "$here/initrd.sh"; sha256sum "$VM_BUSYBOX"; } \
    | sha256sum | cut -c1-16)
  echo "$1/initramfs-$2-$inputs.cpio.gz"
}
