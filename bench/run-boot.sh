#!/bin/sh
# Boot figures (issue 2): the test guest on pairvisor-vmm, and Debian's stock
# kernel on pairvisor-vmm, QEMU -M microvm and QEMU -M pc. Medians of
# ${RUNS:-10} runs. Usage: bench/run-boot.sh [build dir] [bootbench options]
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build}
[ $# -gt 0 ] && shift
kernel=$("$top/scripts/fetch-debian-kernel.sh")
exec "$build/bin/bootbench" --runs "${RUNS:-10}" \
	--vmm "$build/bin/pairvisor-vmm" \
	--guest "$build/share/pairvisor/testguest.bzImage" \
	--linux "$kernel" "$@"
