#!/bin/sh
# `make install` honours PREFIX and DESTDIR and installs everything a user
# needs; a program builds against the installed library with pkg-config and
# runs; the shared library exports exactly the symbols listed in
# librpage.map, all prefixed rpage_.
. "$(dirname "$0")/lib.sh"
top=$(cd "$(dirname "$0")/../.." && pwd)
dest="$WORK/dest"
make -s -C "$top" install B="$B" PREFIX=/opt/rpage DESTDIR="$dest" >"$WORK/install.log" 2>&1 || fail "make install"
for f in bin/rpage-server bin/rpage-client bin/rpage-bench lib/librpage.a \
	lib/librpage.so lib/librpage.so.0 include/rpage/rpage.h lib/pkgconfig/rpage.pc \
	share/man/man1/rpage-server.1 share/man/man1/rpage-client.1 \
	share/man/man1/rpage-bench.1 share/man/man3/rpage.3; do
	[ -e "$dest/opt/rpage/$f" ] || fail "not installed: $f"
done
grep -q '^prefix=/opt/rpage$' "$dest/opt/rpage/lib/pkgconfig/rpage.pc" || fail "rpage.pc has the wrong prefix"
# a consumer, built with pkg-config against the installed tree (with the
# same sanitizers as the library when this is a sanitizer build)
case $B in
*san-*) san="-fsanitize=$(basename "$B" | sed 's/^san-//; s/-/,/g')" ;;
*) san="" ;;
esac
cat >"$WORK/use.c" <<'C'
#include <rpage/rpage.h>
#include <stdio.h>
#include <string.h>
int main(void)
{
	struct rpage_server *s;
	if (rpage_server_new(&s))
		return 1;
	printf("rpage %s: %s\n", rpage_version_string(),
	       rpage_transport_name(RPAGE_TRANSPORT_TCP));
	rpage_server_free(s);
	return strcmp(rpage_transport_name(rpage_transport_parse("rdma")), "rdma") != 0;
}
C
PKG_CONFIG_PATH="$dest/opt/rpage/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$dest" \
	cc -Wall -Werror $san -o "$WORK/use" "$WORK/use.c" \
	$(PKG_CONFIG_PATH="$dest/opt/rpage/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$dest" pkg-config --cflags --libs rpage) \
	|| fail "a program does not build against the installed library"
LD_LIBRARY_PATH="$dest/opt/rpage/lib" "$WORK/use" | grep -q "rpage 0.1: tcp" || fail "the consumer does not run"
# exported symbols == the version script's list
nm -D --defined-only "$dest/opt/rpage/lib/librpage.so" | awk '$2 ~ /[TDBRW]/ {print $3}' | sed 's/@.*//' | grep -v '^RPAGE_' | sort -u >"$WORK/exported"
sed -n 's/^[[:space:]]*\(rpage_[a-z0-9_]*\);.*/\1/p' "$top/librpage.map" | sort -u >"$WORK/listed"
diff "$WORK/listed" "$WORK/exported" || fail "exported symbols differ from librpage.map"
grep -v '^rpage_' "$WORK/exported" && fail "an exported symbol lacks the rpage_ prefix"
# every listed symbol is declared in the public header
for s in $(cat "$WORK/listed"); do
	grep -q "\b$s(" "$top/include/rpage/rpage.h" || fail "$s is exported but not declared in rpage.h"
done
echo "installed and usable: $(wc -l <"$WORK/listed") exported symbols, all listed"
