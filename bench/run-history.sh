#!/bin/sh
# The manager's history check (tests/cluster/test_mgrcluster.c, in the
# manner of Jepsen) over many seeded runs (root; env RUNS=21, SEED=1;
# about 20 s a run): three clients create and delete guests with unique
# names through both hosts while the active manager's host is killed,
# stopped past the token (SIGSTOP, then fenced), cut off (a partition)
# or the manager is moved back and forth (pairctl manager switchover), in
# turn, at a random moment of each seed; each run must find every
# acknowledged create not deleted, once, and nothing never asked for.
# Prints each run's counts and exits 1 when any run failed.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build}
runs=${RUNS:-21}
seed=${SEED:-1}
failed=0
i=0
while [ $i -lt "$runs" ]; do
	case $((i % 4)) in
	0) fault=kill; test="host killed: no ack" ;;
	1) fault=stop; test="host killed: no ack" ;;
	2) fault=partition; test="partition: no ack" ;;
	3) fault=switchover; test="moved back and forth" ;;
	esac
	s=$((seed + i))
	out=$(PV_SEED=$s PV_HISTORY_FAULT=$fault PV_TEST="$test" \
		"$build/bin/test_mgrcluster" 2>&1) || true
	line=$(echo "$out" | grep -o '(seed [^)]*) ([^)]*)' | head -1)
	if echo "$out" | grep -q '^  Test: .*passed$\|\.\.\.(seed.*passed'; then
		echo "run $((i + 1)) $fault: $line passed"
	else
		echo "run $((i + 1)) $fault: $line FAILED"
		echo "$out" | grep -E 'lost:|listed|never asked|^ +[0-9]+\. ' | sed 's/^/    /'
		failed=$((failed + 1))
	fi
	i=$((i + 1))
done
echo "history: $runs runs, $failed failed"
[ "$failed" -eq 0 ]
