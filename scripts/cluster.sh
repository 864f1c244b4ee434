#!/bin/sh
# A local two-host pairvisor cluster on one machine (docs/testbed.md):
# each host is a network namespace running its own Corosync and
# pairvisord. As root.
#
#   cluster.sh up [--token MS]   create hosts a and b, start both, wait
#                                until both are quorate and see each other
#   cluster.sh down              stop everything, remove it all (also after
#                                a crash: whatever is left of a cluster)
#   cluster.sh status            what runs on each host, and pairctl status
#   cluster.sh exec HOST CMD...  run CMD on HOST (the build's bin/ first in
#                                PATH): cluster.sh exec a pairctl status
#   cluster.sh kill HOST [PROG]  end every process of HOST at once, as a
#                                power loss would (PROG: only corosync or
#                                pairvisord, with SIGKILL)
#   cluster.sh start HOST [PROG] boot HOST again: Corosync, then pairvisord
#                                (PROG: only that one)
#   cluster.sh stop HOST PROG    stop corosync or pairvisord of HOST
#                                (SIGTERM), as systemctl stop would
#   cluster.sh partition         cut the link between a and b
#   cluster.sh heal              restore it
#   cluster.sh wait HOST COND [SECONDS]  until pairctl status --json on
#                                HOST satisfies COND (quorate, both, alone,
#                                lost-peer), or fail
#
# Environment: PV_CLUSTER (default pv) names the cluster: its namespaces
# are $PV_CLUSTER-a and $PV_CLUSTER-b, its files in
# ${TMPDIR:-/tmp}/pairvisor-cluster-$PV_CLUSTER; PV_BUILD the build
# directory (default build/ of this tree). Traffic stays inside the
# namespaces: the hosts are 10.88.0.1 (a) and 10.88.0.2 (b) on a veth
# pair of their own.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
id=${PV_CLUSTER:-pv}
build=${PV_BUILD:-$top/build}
bin=$build/bin
dir=${TMPDIR:-/tmp}/pairvisor-cluster-$id
hosts="a b"

die() {
	echo "cluster.sh: $*" >&2
	exit 1
}

ns() { echo "$id-$1"; }

addr() {
	case $1 in
	a) echo 10.88.0.1 ;;
	b) echo 10.88.0.2 ;;
	*) die "no host $1 (hosts: $hosts)" ;;
	esac
}

nodeid() {
	case $1 in
	a) echo 1 ;;
	b) echo 2 ;;
	esac
}

peer() {
	case $1 in
	a) echo b ;;
	b) echo a ;;
	esac
}

# in HOST CMD...: run CMD inside HOST's namespace
in_host() {
	h=$1
	shift
	ip netns exec "$(ns "$h")" "$@"
}

write_corosync_conf() {
	h=$1
	token=$2
	cat > "$dir/$h/corosync.conf" <<EOF
# host $h of the local pairvisor cluster $id (scripts/cluster.sh)
totem {
	version: 2
	cluster_name: pairvisor-$id
	transport: knet
	crypto_cipher: aes256
	crypto_hash: sha256
	keyfile: $dir/authkey
	token: $token
	interface {
		linknumber: 0
		knet_ping_interval: 100
		knet_ping_timeout: 500
	}
}
nodelist {
	node {
		ring0_addr: 10.88.0.1
		name: a
		nodeid: 1
	}
	node {
		ring0_addr: 10.88.0.2
		name: b
		nodeid: 2
	}
}
quorum {
	provider: corosync_votequorum
	two_node: 1
}
logging {
	to_stderr: yes
	to_syslog: no
	to_logfile: no
	timestamp: on
}
system {
	state_dir: $dir/$h/lib
}
EOF
}

write_pairvisor_conf() {
	h=$1
	p=$(peer "$h")
	cat > "$dir/$h/pairvisor.conf" <<EOF
# host $h of the local pairvisor cluster $id (scripts/cluster.sh)
host = "$h";
listen = "tcp:$(addr "$h"):7400";
peer = { name = "$p"; address = "tcp:$(addr "$p"):7400"; };
cluster_key = "$dir/cluster.key";
state_dir = "$dir/$h/state";
EOF
}

# The namespaces, their link, the keys and the files of each host.
create() {
	token=$1
	[ ! -e "$dir" ] || die "cluster $id exists ($dir): cluster.sh down first"
	mkdir -p "$dir"
	chmod 700 "$dir"
	for h in $hosts; do
		ip netns add "$(ns "$h")"
		in_host "$h" ip link set lo up
		mkdir -p "$dir/$h/lib" "$dir/$h/run" "$dir/$h/log"
	done
	ip link add "$id-ab" netns "$(ns a)" type veth peer name "$id-ba" \
		netns "$(ns b)"
	in_host a ip addr add 10.88.0.1/24 dev "$id-ab"
	in_host b ip addr add 10.88.0.2/24 dev "$id-ba"
	in_host a ip link set "$id-ab" up
	in_host b ip link set "$id-ba" up
	corosync-keygen -k "$dir/authkey" >/dev/null 2>&1 ||
		die "corosync-keygen failed"
	"$bin/pairvisor-keygen" -k "$dir/cluster.key" >/dev/null
	for h in $hosts; do
		write_corosync_conf "$h" "$token"
		write_pairvisor_conf "$h"
	done
}

# start_prog HOST PROG: Corosync with a private /run (two on one
# machine), or pairvisord; in its own session, its log in $dir/HOST/log.
start_prog() {
	h=$1
	[ -d "$dir/$h" ] || die "no cluster $id here: cluster.sh up first"
	running "$h" "$2" && die "host $h: $2 is running already"
	case $2 in
	corosync)
		setsid ip netns exec "$(ns "$h")" sh -c \
			'mount --bind "$1/run" /run && exec corosync -f -c "$1/corosync.conf"' \
			sh "$dir/$h" >>"$dir/$h/log/corosync.log" 2>&1 </dev/null &
		;;
	pairvisord)
		setsid ip netns exec "$(ns "$h")" "$bin/pairvisord" \
			--config "$dir/$h/pairvisor.conf" \
			>>"$dir/$h/log/pairvisord.log" 2>&1 </dev/null &
		;;
	*)
		die "no program $2 on a host (corosync, pairvisord)"
		;;
	esac
}

start_host() {
	start_prog "$1" corosync
	start_prog "$1" pairvisord
}

# signal_prog HOST PROG SIG: signal PROG of HOST, wait until it is gone
signal_prog() {
	for p in $(ip netns pids "$(ns "$1")" 2>/dev/null); do
		[ "$(cat "/proc/$p/comm" 2>/dev/null)" = "$2" ] &&
			kill "-$3" "$p" 2>/dev/null
	done
	i=0
	while running "$1" "$2"; do
		[ $i -lt 100 ] || die "host $1: $2 did not stop in 10 s"
		sleep 0.1
		i=$((i + 1))
	done
	clean_shm
}

# running HOST PROG: is PROG among HOST's processes?
running() {
	for p in $(ip netns pids "$(ns "$1")" 2>/dev/null); do
		[ "$(cat "/proc/$p/comm" 2>/dev/null)" = "$2" ] && return 0
	done
	return 1
}

# Every process of HOST, at once (SIGKILL), and what it leaves behind.
kill_host() {
	h=$1
	pids=$(ip netns pids "$(ns "$h")" 2>/dev/null || true)
	[ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
	i=0
	while [ -n "$(ip netns pids "$(ns "$h")" 2>/dev/null)" ] &&
	      [ $i -lt 50 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	clean_shm
}

# libqb's files of processes that are gone (crashed Corosync leaves them).
clean_shm() {
	for f in /dev/shm/qb-*; do
		[ -e "$f" ] || continue
		pid=$(echo "$f" | sed -n 's/^\/dev\/shm\/qb-\([0-9]*\)-.*/\1/p')
		[ -n "$pid" ] && [ ! -d "/proc/$pid" ] && rm -rf "$f"
	done
	return 0
}

down() {
	for h in $hosts; do
		ip netns list 2>/dev/null | grep -q "^$(ns "$h")\b" || continue
		kill_host "$h"
		ip netns delete "$(ns "$h")"
	done
	clean_shm
	rm -rf "$dir"
}

# check_json COND: pairctl status --json on stdin satisfies COND
check_json() {
	python3 -c '
import json, sys
cond = sys.argv[1]
try:
    s = json.load(sys.stdin)
except ValueError:
    sys.exit(1)
hosts = s["hosts"]
both = all(h["member"] and h["daemon"] for h in hosts)
peer = [h for h in hosts if not h["local"]][0]
ok = {
    "quorate": s["corosync"] and s["quorum"]["quorate"],
    "both": s["corosync"] and s["quorum"]["quorate"] and both,
    "alone": s["corosync"] and not peer["member"] and not peer["daemon"],
    "lost-peer": not peer["daemon"],
}.get(cond)
if ok is None:
    sys.exit(2)
sys.exit(0 if ok else 1)
' "$1"
}

# wait_for HOST COND SECONDS
wait_for() {
	h=$1
	cond=$2
	n=$((${3:-30} * 10))
	i=0
	while [ $i -lt "$n" ]; do
		st=0
		in_host "$h" "$bin/pairctl" status --json 2>/dev/null |
			check_json "$cond" || st=$?
		[ $st -eq 2 ] && die "wait: unknown condition $cond (quorate, both, alone, lost-peer)"
		[ $st -eq 0 ] && return 0
		sleep 0.1
		i=$((i + 1))
	done
	echo "cluster.sh: host $h: not $cond after ${3:-30} s; its status:" >&2
	in_host "$h" "$bin/pairctl" status >&2 || true
	exit 1
}

status() {
	[ -d "$dir" ] || die "no cluster $id here"
	for h in $hosts; do
		c=down
		d=down
		running "$h" corosync && c=running
		running "$h" pairvisord && d=running
		echo "== host $h ($(ns "$h"), $(addr "$h")): corosync $c, pairvisord $d"
		[ $d = running ] && in_host "$h" "$bin/pairctl" status || true
	done
}

link_dev() { [ "$1" = a ] && echo "$id-ab" || echo "$id-ba"; }

cmd=${1:-}
[ $# -gt 0 ] && shift
[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces)"
case $cmd in
up)
	token=300
	if [ "${1:-}" = --token ]; then
		token=${2:?--token wants milliseconds}
		shift 2
	fi
	[ $# -eq 0 ] || die "up: unexpected $1"
	[ -x "$bin/pairvisord" ] || die "no $bin/pairvisord: build first (scripts/build.sh)"
	trap 'down' EXIT
	create "$token"
	for h in $hosts; do
		start_host "$h"
	done
	for h in $hosts; do
		wait_for "$h" both 30
	done
	trap - EXIT
	echo "cluster $id is up: hosts a ($(ns a)) and b ($(ns b)), files in $dir"
	;;
down)
	down
	;;
status)
	status
	;;
exec)
	[ $# -ge 2 ] || die "exec wants HOST CMD..."
	h=$1
	shift
	addr "$h" >/dev/null
	in_host "$h" env PATH="$bin:$PATH" "$@"
	;;
kill)
	[ $# -eq 1 ] || [ $# -eq 2 ] || die "kill wants HOST [PROG]"
	addr "$1" >/dev/null
	if [ $# -eq 2 ]; then
		signal_prog "$1" "$2" KILL
	else
		kill_host "$1"
	fi
	;;
start)
	[ $# -eq 1 ] || [ $# -eq 2 ] || die "start wants HOST [PROG]"
	addr "$1" >/dev/null
	if [ $# -eq 2 ]; then
		start_prog "$1" "$2"
	else
		start_host "$1"
	fi
	;;
stop)
	[ $# -eq 2 ] || die "stop wants HOST PROG"
	addr "$1" >/dev/null
	signal_prog "$1" "$2" TERM
	;;
partition)
	in_host a ip link set "$(link_dev a)" down
	;;
heal)
	in_host a ip link set "$(link_dev a)" up
	;;
wait)
	[ $# -ge 2 ] || die "wait wants HOST COND [SECONDS]"
	addr "$1" >/dev/null
	wait_for "$1" "$2" "${3:-30}"
	;;
*)
	sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
	;;
esac
