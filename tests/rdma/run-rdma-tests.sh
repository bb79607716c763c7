#!/bin/bash
# run-rdma-tests.sh [VARIANT...] -- host side of the RDMA end-to-end tests.
#
# Builds a payload directory from $B/bin (rpage-server, rpage-client,
# rpage-bench), $B/tests/rpage-keyprobe, the test builds of rpage-server
# and rpage-client ($B/tests/bin, with fault injection: in test/) and
# tests/rdma/rdma-e2e.sh, boots the soft-RoCE guest with
# tests/rdma/vm-run.sh and returns its exit status: 0 all passed, 77 QEMU
# cannot run here at all (skip), anything else a failure.
#
# VARIANTs are passed to rdma-e2e.sh (default: nodev single pair loss
# measure torture). Env:
#   B=build                 build directory holding bin/ (as make passes it)
#   RPAGE_VM_DIR=build/vm   where vm-build.sh caches the kernel and initramfs
#   RPAGE_E2E_TIMEOUT=900   host-side limit for the whole boot, seconds
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
B=${B:-build}
case $B in /*) ;; *) B=$top/$B ;; esac
vmdir=${RPAGE_VM_DIR:-$top/build/vm}
timeout_s=${RPAGE_E2E_TIMEOUT:-900}

for b in bin/rpage-server bin/rpage-client bin/rpage-bench \
	tests/bin/rpage-server tests/bin/rpage-client; do
	if [ ! -x "$B/$b" ]; then
		echo "run-rdma-tests: $B/$b is missing: run make first" >&2
		exit 1
	fi
done
if [ ! -x "$B/tests/rpage-keyprobe" ]; then
	echo "run-rdma-tests: $B/tests/rpage-keyprobe is missing: run make (with RDMA) first" >&2
	exit 1
fi
# never more than one QEMU on this machine: wait for another run to end
n=0
while pgrep -f qemu-system >/dev/null 2>&1; do
	[ $n -lt 600 ] || { echo "run-rdma-tests: another QEMU is still running after 10 min" >&2; exit 1; }
	[ $n != 0 ] || echo "run-rdma-tests: waiting for another QEMU to finish" >&2
	sleep 1
	n=$((n + 1))
done
payload=$(mktemp -d "${TMPDIR:-/tmp}/rpage-rdma-payload.XXXXXX")
trap 'rm -rf "$payload"' EXIT
cp "$B/bin/rpage-server" "$B/bin/rpage-client" "$B/bin/rpage-bench" "$payload/"
cp "$B/tests/rpage-keyprobe" "$payload/"
mkdir "$payload/test"
cp "$B/tests/bin/rpage-server" "$B/tests/bin/rpage-client" "$payload/test/"
cp "$here/rdma-e2e.sh" "$payload/"
cp "$B/tests/rpage-torture" "$payload/"
cp "$top/tests/torture/run.sh" "$payload/torture-run.sh"
rc=0
"$here/vm-run.sh" "$vmdir" "$payload" rdma-e2e.sh "$timeout_s" "$@" || rc=$?
case $rc in
0) echo "run-rdma-tests: PASS" ;;
77) echo "run-rdma-tests: SKIP (QEMU cannot run here)" ;;
*) echo "run-rdma-tests: FAIL (rc=$rc)" ;;
esac
exit $rc
