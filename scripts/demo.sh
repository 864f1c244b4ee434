#!/bin/sh
# Install, build, and boot the test guest on two vCPUs: it checks what the
# VMM handed it, starts its second CPU with INIT/SIPI, drives the virtio-pci
# entropy device with MSI-X interrupts, and exits through the test port.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

scripts/install-deps.sh
scripts/build.sh "$top/build"
printf 'initrd handed to the guest\n' > "$top/build/demo-initrd"
echo "== pairvisor-vmm: test guest, 2 vCPUs =="
set -x
"$top/build/bin/pairvisor-vmm" --memory 256M --vcpus 2 \
	--kernel "$top/build/share/pairvisor/testguest.bzImage" \
	--initrd "$top/build/demo-initrd" \
	--cmdline "pvtest=hello,smp,virtio"
