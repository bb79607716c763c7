#!/bin/sh
# What `make install` ships (the library, static and shared, and the three
# programs) holds no fault injection: no rp_inject symbol, not a byte
# naming it (not even in the debug information), and it reads no
# environment variable that the man pages do not document. The test
# builds of the same tree ($B/tests/) do hold it: that is what this test
# would see if injection leaked into the shipped build.
. "$(dirname "$0")/lib.sh"
top=$(cd "$(dirname "$0")/../.." && pwd)
command -v nm >/dev/null && command -v strings >/dev/null && command -v strip >/dev/null ||
	skip "binutils (nm, strings, strip) are not installed"

shipped="$B/lib/librpage.a $B/lib/librpage.so $BIN/rpage-server $BIN/rpage-client $BIN/rpage-bench"
test_built="$B/tests/lib/librpage.a $TBIN/bin/rpage-server $TBIN/bin/rpage-client $TBIN/bin/rpage-bench"
for f in $shipped $test_built; do
	[ -f "$f" ] || fail "$f is not built"
done

# the environment variables a program can read: RPAGE_* strings in its
# data, without the debug information (which names the public enums)
env_names() { # FILE
	strip -o "$WORK/stripped" "$1" 2>/dev/null || cp "$1" "$WORK/stripped"
	strings "$WORK/stripped" | grep -o 'RPAGE_[A-Z][A-Z0-9_]*' | sort -u
}
documented=$(cat "$top"/docs/man/*.[0-9] | grep -o 'RPAGE_[A-Z][A-Z0-9_]*' | sort -u)

for f in $shipped; do
	n=$(nm -A "$f" 2>/dev/null | grep -c 'rp_inject') || true
	[ "$n" = 0 ] || fail "$f has $n rp_inject symbols: injection code in a shipped build"
	n=$(strings "$f" | grep -ci 'inject') || true
	[ "$n" = 0 ] || fail "$f names fault injection $n times: $(strings "$f" | grep -i inject | sort -u | head -5 | tr '\n' ' ')"
	for v in $(env_names "$f"); do
		echo "$documented" | grep -qx "$v" ||
			fail "$f reads $v, which no man page documents (a test hook?)"
	done
	echo "shipped: $(basename "$f"): no injection; environment: $(env_names "$f" | tr '\n' ' ')"
done

# the test builds have it, so the checks above can see it
for f in $test_built; do
	nm -A "$f" 2>/dev/null | grep -q ' [Tt] rp_inject_fail$' || fail "$f (a test build) has no rp_inject_fail: is injection compiled in?"
	env_names "$f" | grep -qx RPAGE_INJECT || fail "$f (a test build) does not read RPAGE_INJECT"
done
echo "PASS: the shipped library and programs hold no fault injection; the test builds do"
