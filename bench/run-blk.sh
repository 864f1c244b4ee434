#!/bin/sh
# Block I/O figures (issue 3): 4 KiB reads and writes at queue depth 1 and
# 16 through four paths, medians of ${RUNS:-5} runs, and ratios:
#   split   blkbench (host harness, no vCPU) through the driver process
#   inline  blkbench with driver=inline: the VMM does the I/O itself
#   guest   the test guest's blkbench workload, through the driver process
#           (and guest-inline for the same without the driver)
#   qemu    qemu-img bench on the same image (buffered, like pairvisor)
# Usage: bench/run-blk.sh [build dir]   env: RUNS, SECS (blkbench), COUNT
# (guest and qemu-img requests per run), IMG_MB, TMPDIR.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build}
runs=${RUNS:-5}
secs=${SECS:-2}
count=${COUNT:-20000}
img_mb=${IMG_MB:-64}
bin=$build/bin
guest=$build/share/pairvisor/testguest.bzImage
dir=$(mktemp -d "${TMPDIR:-/var/tmp}/pvblkbench.XXXXXX")
trap 'rm -rf "$dir"' EXIT INT TERM
img=$dir/bench.img

# a fully written image: reads hit data, not holes
"$bin/blkpattern" write "$img" --blocks $((img_mb * 256)) --pass 1
khz=$("$bin/tsckhz")

median() {
	sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "nan" }'
}

# blkbench line -> "iops median_us p99_us"
harness() {
	"$bin/blkbench" --disk "$1" --rw "$2" --qd "$3" --seconds "$secs" \
		2>/dev/null | tr ' ' '\n' | awk -F= '
		$1 == "iops" { i = $2 } $1 == "lat_median_us" { m = $2 }
		$1 == "lat_p99_us" { p = $2 } END { print i, m, p }'
}

# the guest's PVTEST blkbench line, TSC ticks -> "iops median_us p99_us"
guest() {
	"$bin/pairvisor-vmm" --memory 256M --vcpus 1 --kernel "$guest" \
		--disk "$1" --cmdline "pvtest=blkbench rw=$2 qd=$3 count=$count" \
		2>/dev/null | grep '^PVTEST blkbench PASS' | tr ' ' '\n' |
		awk -F= -v khz="$khz" '
		$1 == "requests" { n = $2 } $1 == "ticks" { t = $2 }
		$1 == "median_ticks" { m = $2 } $1 == "p99_ticks" { p = $2 }
		END { if (t) printf "%.0f %.1f %.1f\n", n * khz * 1000 / t,
			m * 1000 / khz, p * 1000 / khz }'
}

# qemu-img bench: throughput only ("Run completed in X seconds")
qemu() {
	w=; [ "$2" = write ] && w=-w
	qemu-img bench -f raw -c "$count" -d "$3" -s 4096 $w "$1" 2>/dev/null |
		awk -v n="$count" '/Run completed in/ { printf "%.0f nan nan\n", n / $4 }'
}

# run PATH RW QD: medians over $runs of iops, median, p99
measure() {
	path=$1 rw=$2 qd=$3 out=$dir/$1.$2.$3
	: > "$out"
	i=0
	while [ $i -lt "$runs" ]; do
		case $path in
		split)	harness "$img" "$rw" "$qd" ;;
		inline)	harness "$img,driver=inline" "$rw" "$qd" ;;
		guest)	guest "$img" "$rw" "$qd" ;;
		guest-inline) guest "$img,driver=inline" "$rw" "$qd" ;;
		qemu)	qemu "$img" "$rw" "$qd" ;;
		esac >> "$out"
		i=$((i + 1))
	done
	echo "$(cut -d' ' -f1 "$out" | median) $(cut -d' ' -f2 "$out" | median)" \
	     "$(cut -d' ' -f3 "$out" | median)"
}

ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "nan" }'
}

echo "# pairvisor block I/O, 4 KiB, medians of $runs runs; TSC $khz kHz"
echo "# image: $img_mb MiB raw on $(df -P "$dir" | awk 'NR == 2 { print $1 }')," \
     "page cache (no O_DIRECT on either side)"
printf '%-6s %-3s %-13s %9s %10s %10s\n' rw qd path iops median_us p99_us
for rw in read write; do
	for qd in 1 16; do
		for path in split inline guest guest-inline qemu; do
			set -- $(measure $path $rw $qd)
			eval "iops_$(echo $path | tr - _)=$1"
			printf '%-6s %-3s %-13s %9s %10s %10s\n' $rw $qd $path "$1" "$2" "$3"
		done
		printf '%-6s %-3s ratios: split/inline %s  guest/split %s  split/qemu %s  guest/qemu %s  guest/guest-inline %s\n' \
			$rw $qd "$(ratio $iops_split $iops_inline)" \
			"$(ratio $iops_guest $iops_split)" \
			"$(ratio $iops_split $iops_qemu)" \
			"$(ratio $iops_guest $iops_qemu)" \
			"$(ratio $iops_guest $iops_guest_inline)"
	done
done
