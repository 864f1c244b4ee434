#!/bin/sh
# The cluster manager's figures on a local two-host cluster
# (scripts/cluster.sh --fence ipmi; root; env RUNS=5, REQS=1000; about
# three minutes):
#   - for Corosync's token 300 and 1000 ms: the active manager's host is
#     killed (every process at once); on the other host mgrbench --watch
#     notes when Corosync reported the host lost (detection) and when its
#     manager became the active (promotion: the fence delay, fencing
#     through ipmi_sim and fence_ipmilan, the take-over). Medians and
#     maxima of both from the kill, their difference and ratio;
#   - the active's pairvisord alone killed (CPG PROCDOWN, no fencing);
#   - pairctl manager switchover (the planned move), asked on the active:
#     the time pairctl takes, and until the old active's host holds a
#     live spare again;
#   - with the quorum device instead of fencing (token 300): the same
#     host kill, promoted on the device's verdict;
#   - mgrbench: requests/s and latency on the active host with its spare
#     live, through the spare's host (forwarded over CPG), and with no
#     spare (the peer's pairvisord stopped).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build}
runs=${RUNS:-5}
reqs=${REQS:-1000}
export PV_CLUSTER=pvbench PV_BUILD="$build"
cl="$top/scripts/cluster.sh"
tmp=$(mktemp -d)
trap '"$cl" down >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM HUP

role() {
	"$cl" exec "$1" pairctl status --json 2>/dev/null | python3 -c '
import json, sys
try:
    m = json.load(sys.stdin)["manager"]
    print(m["local_role"], m["spare_state"])
except Exception:
    print("none none")'
}

# the active host once the other's spare is live, else wait (60 s)
pair() {
	i=0
	while [ $i -lt 600 ]; do
		for h in a b; do
			if [ "$(role $h)" = "active live" ]; then
				echo $h
				return 0
			fi
		done
		sleep 0.1
		i=$((i + 1))
	done
	echo "run-cluster: no active manager with a live spare" >&2
	exit 1
}

other() { [ "$1" = a ] && echo b || echo a; }

# median and max of the numbers in file $1
stats() {
	sort -n "$1" | awk '{ v[NR] = $1 } END {
		printf "median %.0f, max %.0f", v[int((NR + 1) / 2)], v[NR] }'
}

# failover KIND: kill the active's host (host) or its pairvisord (daemon)
failover() {
	: > "$tmp/det"
	: > "$tmp/pro"
	for r in $(seq "$runs"); do
		a=$(pair)
		b=$(other "$a")
		"$cl" exec "$b" mgrbench --watch > "$tmp/watch" &
		w=$!
		until grep -q ready "$tmp/watch" 2>/dev/null; do sleep 0.01; done
		k=$(date +%s%N)
		if [ "$1" = host ]; then
			"$cl" kill "$a"
		else
			"$cl" kill "$a" pairvisord
		fi
		wait $w || { echo "run-cluster: no promotion" >&2; exit 1; }
		set -- "$1" $(tail -1 "$tmp/watch")
		# detected D promoted P
		echo $((($3 - k) / 1000000)) >> "$tmp/det"
		echo $((($5 - k) / 1000000)) >> "$tmp/pro"
		set -- "$1"
		if [ "$1" = host ]; then
			"$cl" start "$a"
		else
			"$cl" start "$a" pairvisord
		fi
	done
}

for token in 300 1000; do
	"$cl" up --token "$token" --fence ipmi >/dev/null
	echo "== token $token ms, fence delay 3000 ms (the spare's host waits it), $runs runs"
	failover host
	echo "  host killed: Corosync detection $(stats "$tmp/det") ms; promotion $(stats "$tmp/pro") ms"
	paste "$tmp/det" "$tmp/pro" | awk '{ print $2 - $1 }' > "$tmp/diff"
	paste "$tmp/det" "$tmp/pro" | awk '{ printf "%.2f\n", $2 / $1 }' \
		> "$tmp/ratio"
	echo "  promotion - detection $(stats "$tmp/diff") ms; promotion / detection: $(sort -n "$tmp/ratio" | awk '{ v[NR] = $1 } END { printf "median %.2f", v[int((NR + 1) / 2)] }')"
	failover daemon
	echo "  pairvisord killed (PROCDOWN, no fencing): detection of the host: none; promotion $(stats "$tmp/pro") ms"
	if [ "$token" = 300 ]; then
		: > "$tmp/sw"
		: > "$tmp/swl"
		for r in $(seq "$runs"); do
			a=$(pair)
			k=$(date +%s%N)
			"$cl" exec "$a" pairctl manager switchover >/dev/null
			echo $((($(date +%s%N) - k) / 1000000)) >> "$tmp/sw"
			[ "$(pair)" = "$(other "$a")" ] ||
				{ echo "run-cluster: the switchover did not move it" >&2; exit 1; }
			echo $((($(date +%s%N) - k) / 1000000)) >> "$tmp/swl"
		done
		echo "  manager switchover: answered $(stats "$tmp/sw") ms; a live spare again $(stats "$tmp/swl") ms"
		a=$(pair)
		b=$(other "$a")
		echo "== manager requests ($reqs, one at a time: vm create / vm delete)"
		echo "  on the active, spare live:      $("$cl" exec "$a" mgrbench "$reqs")"
		echo "  through the spare's host:       $("$cl" exec "$b" mgrbench "$reqs")"
		"$cl" stop "$b" pairvisord
		sleep 1
		echo "  on the active, no spare:        $("$cl" exec "$a" mgrbench "$reqs")"
	fi
	"$cl" down
done

"$cl" up --qdevice >/dev/null
echo "== token 300 ms, quorum device (qnetd, ffsplit, device timeout 2000 ms), no fencing, $runs runs"
failover host
echo "  host killed: Corosync detection $(stats "$tmp/det") ms; promotion $(stats "$tmp/pro") ms"
paste "$tmp/det" "$tmp/pro" | awk '{ print $2 - $1 }' > "$tmp/diff"
echo "  promotion - detection $(stats "$tmp/diff") ms (the device's verdict)"
"$cl" down
