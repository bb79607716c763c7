#!/bin/sh
# tests/deps.sh build|test: makes sure the Debian packages rpage needs are
# installed. As root it installs the missing ones with apt-get; otherwise it
# names them and stops.
#   build: compiler, make, pkg-config, linux headers, rdma-core development
#          files (libibverbs, librdmacm), libnuma, CUnit, GnuTLS (TLS 1.3)
#   test:  build + python3 and bc (test scripts), iproute2 (network
#          namespaces, veth, netem), and for the soft-RoCE guest:
#          qemu-system-x86, busybox-static, cpio, kmod, rdma-core,
#          ibverbs-providers, ibverbs-utils, rdmacm-utils, perftest
#          (the guest's kernel itself is fetched with `apt-get download`
#          into build/vm by tests/rdma/vm-build.sh), gnuplot-nox (plots),
#          gnutls-bin (certtool and psktool: test credentials), tcpdump
#          (the capture that must hold no clear bytes), curl and
#          prometheus (scraping the metrics endpoints; promtool checks
#          what they serve)
#   fuzz:  build + clang and its libFuzzer/sanitizer runtimes
set -eu
build="gcc make pkg-config linux-libc-dev libc6-dev libibverbs-dev librdmacm-dev libnuma-dev libcunit1-dev libgnutls28-dev"
test="$build python3 bc iproute2 procps qemu-system-x86 busybox-static cpio kmod rdma-core ibverbs-providers ibverbs-utils rdmacm-utils perftest gnuplot-nox gnutls-bin tcpdump curl prometheus"
fuzz="$build clang libclang-rt-dev"
case ${1:-build} in
build) want=$build ;;
test) want=$test ;;
fuzz) want=$fuzz ;;
*) echo "usage: tests/deps.sh build|test|fuzz" >&2; exit 2 ;;
esac
missing=""
for p in $want; do
	s=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case $s in *" installed") ;; *) missing="$missing $p" ;; esac
done
[ -n "$missing" ] || exit 0
if [ "$(id -u)" != 0 ]; then
	echo "rpage: these Debian packages are missing:$missing" >&2
	echo "rpage: install them with: sudo apt-get install$missing" >&2
	exit 1
fi
echo "rpage: installing Debian packages:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "rpage: packages installed"
