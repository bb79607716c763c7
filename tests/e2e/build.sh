#!/bin/sh
# The build as a new user meets it, on a copy of this tree:
#  1. on a machine without CUnit and without rdma-core's headers (hidden
#     in a private mount namespace), plain `make` builds the library and
#     the programs, succeeds, and names the Debian package the unit tests
#     need;
#  2. the same tree built again once they are there links everything,
#     rpage-keyprobe included (RDMA objects rebuilt, not left as stubs),
#     and builds the unit tests;
#  3. a changed header rebuilds exactly the objects that include it.
. "$(dirname "$0")/lib.sh"
top=$(cd "$(dirname "$0")/../.." && pwd)
[ "$(id -u)" = 0 ] || skip "hiding headers in a mount namespace needs root"
command -v unshare >/dev/null || skip "unshare (util-linux) is not installed"
unshare -m true 2>/dev/null || skip "cannot create a mount namespace here"
[ -e /usr/include/CUnit/CUnit.h ] || skip "CUnit is not installed, so there is nothing to hide"

src="$WORK/src"
mkdir -p "$src" "$WORK/empty"
if [ -d "$top/.git" ] || [ -f "$top/.git" ]; then
	(cd "$top" && git ls-files -z -c -o --exclude-standard | xargs -0 tar cf - | tar xf - -C "$src") || fail "copying the tree"
else
	(cd "$top" && tar cf - --exclude=./build . | tar xf - -C "$src") || fail "copying the tree"
fi
# as a user types it: not under the flags of a make that runs this test
# (make -s check would hide the commands this test reads)
unset MAKEFLAGS MFLAGS MAKELEVEL
mk() { make -C "$src" -j2 B=b "$@"; }

# 1. nothing optional installed
hide="mount --bind $WORK/empty /usr/include/CUnit"
have_rdma=0
if [ -e /usr/include/infiniband/verbs.h ] && [ -e /usr/include/rdma/rdma_cma.h ]; then
	have_rdma=1
	hide="$hide && mount --bind $WORK/empty /usr/include/infiniband && mount --bind $WORK/empty /usr/include/rdma"
fi
unshare -m sh -c "$hide && make -C '$src' -j2 B=b" >"$WORK/bare.log" 2>&1 ||
	fail "plain make failed without CUnit: $(grep -m3 'error:\|Error [0-9]' "$WORK/bare.log")"
for f in lib/librpage.a lib/librpage.so bin/rpage-server bin/rpage-client bin/rpage-bench; do
	[ -f "$src/b/$f" ] || fail "without CUnit, make did not build $f"
done
[ ! -e "$src/b/tests/unit-tests" ] || fail "the unit tests were built without CUnit?"
grep -q 'libcunit1-dev' "$WORK/bare.log" || fail "make did not name the package the unit tests need"
echo "without CUnit$([ $have_rdma = 1 ] && echo ' and rdma-core'): built; make said: $(grep -m1 'libcunit1-dev' "$WORK/bare.log")"

# 2. everything installed, same tree
mk >"$WORK/full.log" 2>&1 || fail "the second build (CUnit and rdma-core present) failed: $(grep -m3 'error:\|undefined reference' "$WORK/full.log")"
[ -x "$src/b/tests/unit-tests" ] || fail "the unit tests were not built once CUnit was there"
if [ $have_rdma = 1 ]; then
	[ -x "$src/b/tests/rpage-keyprobe" ] || fail "rpage-keyprobe was not built"
	nm "$src/b/bin/rpage-client" | grep -q ' [Tt] rp_rdma_find_device$' ||
		fail "rpage-client has no RDMA transport after the second build"
	echo "then with them: everything links, rpage-keyprobe included"
fi

# 3. a header change rebuilds what includes it, and nothing else
mk >/dev/null 2>&1 || fail "a third make failed"
users=$(grep -l 'common/bitmap.h' $(find "$src/b" -name '*.d') | sed 's/\.d$/.o/' | sort)
[ -n "$users" ] || fail "no dependency file names common/bitmap.h (-MMD missing?)"
sleep 1
touch "$src/common/bitmap.h"
mk >"$WORK/dep.log" 2>&1 || fail "make after touching common/bitmap.h failed"
rebuilt=$(sed -n 's/.* -c -o \([^ ]*\) .*/\1/p' "$WORK/dep.log" | sed "s|^b/|$src/b/|" | sort)
[ "$rebuilt" = "$users" ] || fail "touching common/bitmap.h rebuilt $(echo "$rebuilt" | wc -l) objects, $(echo "$users" | wc -l) include it: $(echo "$rebuilt" | tr '\n' ' ')"
echo "touching common/bitmap.h rebuilt the $(echo "$users" | wc -l) objects that include it"
echo "PASS: builds without CUnit or rdma-core, relinks when they appear, tracks headers"
