#!/bin/sh
# Install, build, and boot the test guest on two vCPUs with a disk served by
# a separate driver process (pairvisor-blkdrv): the guest checks what the
# VMM handed it, starts its second CPU with INIT/SIPI, drives the virtio-pci
# entropy device, then writes and verifies 1000 blocks of its disk twice
# from both CPUs. The host then checks the image with its own pattern code.
#
# Part 2, driver failover (issue 4): a guest named "demo" runs a long
# blkverify on a spare=local disk (an active driver process and a hot spare
# seeded from its state). Under load, `pairctl status demo` shows the role
# table, the active driver is killed with kill -9, the spare is promoted
# and a new spare seeded, `pairctl status demo` shows generation 2,
# failovers 1, executed twice 0 and the new spare pid; the guest passes
# with no I/O error and the host checks the image.
#
# Part 3, the cluster (issue 10): scripts/demo-cluster.sh, the two-host
# story on a local cluster of network namespaces.
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
	--disk "$img,format=raw" \
	--cmdline "pvtest=hello,smp,virtio,blkverify count=1000"
"$top/build/bin/blkpattern" verify "$img" --blocks 1000 --pass 2 --rest-zero
{ set +x; } 2>/dev/null

echo
echo "== failover: kill -9 the active driver under load; the spare takes over =="
bin=$top/build/bin
blocks=16384				# 64 MiB, two passes: ~7 s of I/O
img=$top/build/demo-failover.img
log=$top/build/demo-vmm.log		# the VMM's and the drivers' log
con=$top/build/demo-console.txt		# the guest's serial console
rm -f "$img" "$log" "$con"
truncate -s $((blocks * 4))K "$img"
vmm=

stop_vmm() {
	[ -n "$vmm" ] || return 0
	if kill -0 "$vmm" 2>/dev/null; then
		kill -TERM "$vmm" 2>/dev/null || true
		i=0
		while kill -0 "$vmm" 2>/dev/null && [ $i -lt 30 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		kill -KILL "$vmm" 2>/dev/null || true
	fi
	wait "$vmm" 2>/dev/null || true
	vmm=
}
trap stop_vmm EXIT
trap 'exit 1' INT TERM HUP

fail() {
	echo "demo: $*" >&2
	echo "--- VMM log ($log) ---" >&2
	tail -n 20 "$log" >&2 || true
	exit 1
}

# wait_log TEXT N SECONDS: until TEXT is in the log N times, or fail
wait_log() {
	i=0
	while [ "$(grep -c -- "$1" "$log" 2>/dev/null || true)" -lt "$2" ]; do
		kill -0 "$vmm" 2>/dev/null || fail "the VMM exited while waiting for '$1'"
		[ $i -lt $(($3 * 10)) ] || fail "no '$1' (x$2) within $3 s"
		sleep 0.1
		i=$((i + 1))
	done
}

set -x
"$bin/pairvisor-vmm" --memory 128M --vcpus 2 --name demo --stats \
	--kernel "$top/build/share/pairvisor/testguest.bzImage" \
	--disk "$img,format=raw,spare=local" \
	--cmdline "pvtest=blkverify count=$blocks" >"$con" 2>"$log" &
{ set +x; } 2>/dev/null
vmm=$!
wait_log "seeded at input" 1 10
sleep 1					# the guest is writing and reading now
echo "-- before:"
"$bin/pairctl" status demo || fail "pairctl status demo"
active=$("$bin/pairctl" status demo | sed -n 's/.* active pid \([0-9]*\) .*/\1/p')
[ -n "$active" ] || fail "no active driver pid in pairctl's status"
echo "-- kill -9 $active (the active driver)"
kill -KILL "$active"
wait_log "promoting spare" 1 10
wait_log "seeded at input" 2 10		# a new spare for the next failure
echo "-- after:"
"$bin/pairctl" status demo || fail "pairctl status demo"
i=0
while kill -0 "$vmm" 2>/dev/null; do
	[ $i -lt 300 ] || fail "the guest did not finish within 30 s"
	sleep 0.1
	i=$((i + 1))
done
st=0
wait "$vmm" || st=$?
vmm=
echo "-- guest console:"
grep -E '^PVTEST|^PVGUEST (blkverify|done)' "$con" || true
grep -E 'promoting|failover:' "$log" | sed 's/^pairvisor-vmm: //'
[ "$st" -eq 0 ] || fail "pairvisor-vmm exited with status $st"
grep -q "^PVTEST blkverify PASS blocks=$blocks" "$con" || fail "no blkverify PASS"
! grep -q -e FAIL -e "I/O error" "$con" || fail "the guest saw an error"
grep -q " failovers=1 .*executed_twice=0 " "$log" || fail "want failovers=1 executed_twice=0"
set -x
"$bin/blkpattern" verify "$img" --blocks $blocks --pass 2 --rest-zero
{ set +x; } 2>/dev/null
echo
echo "== the two-host cluster (scripts/demo-cluster.sh) =="
"$top/scripts/demo-cluster.sh"
echo "demo: OK"
