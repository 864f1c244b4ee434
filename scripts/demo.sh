#!/bin/sh
# Install, build, and boot the test guest on two vCPUs with a disk served by
# a separate driver process (pairvisor-blkdrv): the guest checks what the
# VMM handed it, starts its second CPU with INIT/SIPI, drives the virtio-pci
# entropy device, then writes and verifies 1000 blocks of its disk twice
# from both CPUs. The host then checks the image with its own pattern code.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

scripts/install-deps.sh
scripts/build.sh "$top/build"

img="$top/build/demo-disk.img"
rm -f "$img"
truncate -s 8M "$img"
printf 'initrd handed to the guest\n' > "$top/build/demo-initrd"

echo "== pairvisor-vmm: test guest, 2 vCPUs, one disk through pairvisor-blkdrv =="
set -x
"$top/build/bin/pairvisor-vmm" --memory 256M --vcpus 2 \
	--kernel "$top/build/share/pairvisor/testguest.bzImage" \
	--initrd "$top/build/demo-initrd" \
	--disk "$img" \
	--cmdline "pvtest=hello,smp,virtio,blkverify count=1000"
"$top/build/bin/blkpattern" verify "$img" --blocks 1000 --pass 2 --rest-zero
