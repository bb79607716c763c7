#!/bin/bash
# vm-run.sh BUILD_DIR PAYLOAD_DIR SCRIPT [TIMEOUT_S [ARG...]]
#
# Boot the soft-RoCE guest (QEMU TCG, Debian kernel, busybox initramfs built by
# vm-build.sh in BUILD_DIR) with the files of PAYLOAD_DIR under /rpage, run
# /rpage/SCRIPT there (ARGs become its arguments) and exit with its status.
#
# The serial console goes to stdout and to BUILD_DIR/log/<SCRIPT>.log.
#
# Exit status:
#   N   the guest payload's status, from its `RPAGE-VM-RESULT rc=N` line
#       (127: payload missing / cannot start; 125: guest setup failed;
#        124: the in-guest payload time limit expired)
#   1   harness failure: no result line, host timeout, QEMU error, bad usage
#   2   host packages missing (from vm-build.sh)
#   77  qemu-system-x86_64 cannot run here (skip)
#
# Env:
#   RPAGE_VM_SMP=1          vCPUs (1 is fastest for userfaultfd round trips)
#   RPAGE_VM_MEM=1024       guest RAM in MB
#   RPAGE_VM_APPEND=        extra kernel command-line words; NAME=value words
#                           become environment variables of the payload
#   RPAGE_TEST_TIMEOUT=120  per-run_test limit inside the guest
#   RPAGE_VM_LOG=           log file (default BUILD_DIR/log/<SCRIPT>.log)
#   RPAGE_VM_QUIET=0        1: do not copy the console to stdout (log only)
set -eu

me=vm-run
say() { printf '%s: %s\n' "$me" "$*" >&2; }
die() { printf '%s: ERROR: %s\n' "$me" "$*" >&2; exit 1; }
usage() {
	echo "usage: $0 BUILD_DIR PAYLOAD_DIR SCRIPT [TIMEOUT_S [ARG...]]" >&2
	exit 1
}

[ $# -ge 3 ] || usage
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1" || die "cannot create $1"
B=$(cd "$1" && pwd)
[ -d "$2" ] || die "payload directory $2 does not exist"
P=$(cd "$2" && pwd)
script=$3
timeout_s=${4:-600}
shift 3
[ $# -eq 0 ] || shift
case $timeout_s in '' | *[!0-9]* | 0) die "TIMEOUT_S must be a positive integer, not '$timeout_s'" ;; esac
case $script in /* | *..*) die "SCRIPT must be a relative path inside PAYLOAD_DIR: $script" ;; esac
[ -f "$P/$script" ] || die "$P/$script does not exist"
for a in "$@"; do
	case $a in *[[:space:]\"\']* | '') die "payload argument '$a' cannot go on a kernel command line" ;; esac
done
smp=${RPAGE_VM_SMP:-1}
mem=${RPAGE_VM_MEM:-1024}
case $smp in '' | *[!0-9]* | 0) die "bad RPAGE_VM_SMP '$smp'" ;; esac
case $mem in '' | *[!0-9]*) die "bad RPAGE_VM_MEM '$mem'" ;; esac
[ "$mem" -ge 1024 ] || die "RPAGE_VM_MEM must be at least 1024"

# ---- can QEMU run at all? (exit 77 if not) -----------------------------------
QEMU=qemu-system-x86_64
command -v $QEMU >/dev/null 2>&1 || { say "SKIP: $QEMU not installed (package qemu-system-x86)"; exit 77; }
if ! probe=$(printf '{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n' |
	timeout 60 $QEMU -machine q35 -accel tcg -nodefaults -no-user-config -display none \
		-S -qmp stdio 2>&1); then
	say "SKIP: $QEMU cannot start a q35/TCG machine here: $(printf '%s' "$probe" | grep -v '^{' | tail -n 3)"
	exit 77
fi

# ---- base image ------------------------------------------------------------------
brc=0
"$here/vm-build.sh" "$B" >&2 || brc=$?
[ "$brc" = 0 ] || { [ "$brc" = 2 ] && exit 2; die "vm-build.sh failed (rc=$brc)"; }

# ---- payload cpio ------------------------------------------------------------------
tmp=$(mktemp -d "$B/run.XXXXXX")
qpid='' teepid=''
# shellcheck disable=SC2317 # called through trap
cleanup() {
	if [ -n "$qpid" ] && kill -0 "$qpid" 2>/dev/null; then
		kill -TERM "$qpid" 2>/dev/null || true
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			kill -0 "$qpid" 2>/dev/null || break
			sleep 0.3
		done
		kill -KILL "$qpid" 2>/dev/null || true
		wait "$qpid" 2>/dev/null || true
	fi
	if [ -n "$teepid" ]; then
		wait "$teepid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT
trap 'say "terminated"; exit 143' TERM

R=$tmp/root
mkdir -p "$R/rpage"
cp -a "$P/." "$R/rpage/" || die "cannot copy $P"
gpath() {
	case $1 in
	/lib/* | /lib64/* | /bin/* | /sbin/*) echo "/usr$1" ;;
	*) echo "$1" ;;
	esac
}
nelf=0 nlib=0
while IFS= read -r -d '' f; do
	[ "$(head -c 4 "$f" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ] || continue
	nelf=$((nelf + 1))
	out=$(ldd "$f" 2>&1) || continue # static or not loadable here: nothing to copy
	case $out in *"not found"*)
		die "ldd $f: unresolved libraries (put them in PAYLOAD_DIR or install them): $(printf '%s\n' "$out" | grep 'not found' | tr -s ' \t' ' ')" ;;
	esac
	for lib in $(printf '%s\n' "$out" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
		case $lib in "$P"/*) continue ;; esac
		g=$(gpath "$lib")
		[ -e "$B/root$g" ] || [ -e "$R$g" ] && continue
		mkdir -p "$R$(dirname "$g")"
		cp -L "$lib" "$R$g" || die "cannot copy $lib"
		nlib=$((nlib + 1))
	done
done < <(find "$P" -type f -print0)
(cd "$R" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
	cpio --null -o -H newc --owner=0:0 --quiet) | gzip -1 -n >"$tmp/payload.cpio.gz" ||
	die "packing the payload failed"
cat "$B/initrd.img" "$tmp/payload.cpio.gz" >"$tmp/initrd.img"
say "payload: $P -> /rpage ($nelf ELF files, $nlib extra libraries, $(du -k "$tmp/payload.cpio.gz" | cut -f1) KB)"

# ---- boot --------------------------------------------------------------------------
guest_timeout=$((timeout_s > 60 ? timeout_s - 20 : timeout_s * 2 / 3))
append="console=ttyS0 quiet loglevel=4 panic=-1 RPAGE_PAYLOAD=/rpage/$script"
append="$append RPAGE_TIMEOUT=$guest_timeout RPAGE_TEST_TIMEOUT=${RPAGE_TEST_TIMEOUT:-120}"
[ -z "${RPAGE_VM_APPEND:-}" ] || append="$append $RPAGE_VM_APPEND"
[ $# -eq 0 ] || append="$append -- $*"
log=${RPAGE_VM_LOG:-$B/log/$(basename "$script").log}
mkdir -p "$(dirname "$log")"
: >"$log"
# shellcheck disable=SC2054 # commas belong to QEMU options
cmd=("$QEMU" -machine q35 -cpu max -smp "$smp" -m "$mem"
	-accel tcg,thread=multi,tb-size=256
	-nodefaults -no-user-config -display none -serial stdio -no-reboot
	-kernel "$B/vmlinux" -initrd "$tmp/initrd.img" -append "$append")
say "booting: kernel $(cat "$B/kernel-release"), -smp $smp -m $mem, timeout ${timeout_s}s (guest ${guest_timeout}s), log $log"
say "append: $append"
mkfifo "$tmp/console"
if [ "${RPAGE_VM_QUIET:-0}" = 1 ]; then
	cat <"$tmp/console" >>"$log" &
else
	tee -a "$log" <"$tmp/console" &
fi
teepid=$!
t0=$(date +%s%N)
"${cmd[@]}" </dev/null >"$tmp/console" 2>&1 &
qpid=$!
timed_out=0
while kill -0 "$qpid" 2>/dev/null; do
	if [ $((($(date +%s%N) - t0) / 1000000000)) -ge "$timeout_s" ]; then
		timed_out=1
		say "TIMEOUT: the guest ran longer than ${timeout_s}s; killing QEMU"
		kill -TERM "$qpid" 2>/dev/null || true
		sleep 2
		kill -KILL "$qpid" 2>/dev/null || true
		break
	fi
	sleep 0.2
done
qrc=0
wait "$qpid" || qrc=$?
qpid=
wait "$teepid" || true
teepid=
secs=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')

res=$(tr -d '\r' <"$log" | grep -a -o 'RPAGE-VM-RESULT rc=[0-9]*' | tail -n 1 || true)
[ "$timed_out" = 0 ] || die "no result: host timeout after ${timeout_s}s (log: $log)"
if [ -z "$res" ]; then
	tail -n 5 "$log" | sed 's/^/    /' >&2
	die "no RPAGE-VM-RESULT line from the guest after ${secs}s (QEMU exit status $qrc; log: $log)"
fi
rc=${res#*rc=}
say "guest finished in ${secs}s: rc=$rc (QEMU exit status $qrc)"
exit "$rc"
