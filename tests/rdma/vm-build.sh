#!/bin/bash
# vm-build.sh BUILD_DIR -- build (once, cached in BUILD_DIR) what the soft-RoCE
# guest needs: an uncompressed Debian kernel (vmlinux) and a base initramfs with
# busybox, iproute2, rdma-core/perftest tools, the rxe provider and the kernel
# modules for rdma_rxe, veth, dummy, netem and tls.  See tests/rdma/README.md.
#
# Outputs (BUILD_DIR):
#   vmlinux          uncompressed ELF kernel (QEMU boots it through PVH)
#   initrd.img       base gzipped newc initramfs (/init = tests/rdma/guest-init)
#   root/            the staging tree the initramfs was made from
#   kernel-release   the guest kernel's `uname -r`
#   .stamp           what the current outputs were built from
#
# Exit: 0 built or already up to date, 1 error, 2 missing host packages.
# Env:  RPAGE_VM_KERNEL_PKG  kernel image package to use (default: the package
#                            linux-image-amd64 depends on, resolved once and
#                            pinned in BUILD_DIR/kernel-pkg).
set -eu

me=vm-build
say() { printf '%s: %s\n' "$me" "$*"; }
die() { printf '%s: ERROR: %s\n' "$me" "$*" >&2; exit 1; }

[ $# -eq 1 ] || { echo "usage: $0 BUILD_DIR" >&2; exit 1; }
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1" || die "cannot create $1"
B=$(cd "$1" && pwd)

# Guest user space: host binaries copied with their ldd closure.
TOOLS="/usr/bin/ip /usr/sbin/tc /usr/bin/rdma /usr/bin/ibv_devices
/usr/bin/ibv_devinfo /usr/bin/ibv_rc_pingpong /usr/bin/rping /usr/bin/ib_read_lat
/usr/bin/ib_read_bw /usr/bin/ib_send_lat /usr/bin/ib_send_bw /usr/bin/ib_write_lat
/usr/bin/ib_write_bw"
# tls: the kernel's TLS record layer (TCP_ULP "tls"), which rpage moves its
# TLS connections to after the handshake, and the AES-GCM it asks the
# crypto API for (the kernel loads them by alias: crypto-gcm(aes), ...)
MODULES="rdma_rxe rdma_ucm ib_umad crc32_generic crc32-pclmul dummy veth sch_netem
tls gcm ctr ghash_generic ghash-clmulni-intel aes_generic aesni_intel"
# file-or-command -> Debian package that provides it (for the "missing" message)
REQS="/usr/bin/busybox:busybox-static cpio:cpio depmod:kmod modprobe:kmod
/usr/bin/ip:iproute2 /usr/sbin/tc:iproute2 /usr/bin/rdma:iproute2
/usr/bin/ibv_devices:ibverbs-utils /usr/bin/ibv_devinfo:ibverbs-utils
/usr/bin/ibv_rc_pingpong:ibverbs-utils /usr/bin/rping:rdmacm-utils
/usr/bin/ib_read_lat:perftest /usr/bin/ib_read_bw:perftest
/usr/bin/ib_send_lat:perftest /usr/bin/ib_send_bw:perftest
/usr/bin/ib_write_lat:perftest /usr/bin/ib_write_bw:perftest
/etc/libibverbs.d/rxe.driver:ibverbs-providers python3:python3 gzip:gzip
ldd:libc-bin apt-get:apt dpkg:dpkg flock:util-linux
/usr/bin/od:coreutils"
ARCHLIB=/usr/lib/x86_64-linux-gnu

# ---- 1. host requirements --------------------------------------------------
missing=
for r in $REQS; do
	f=${r%%:*} p=${r#*:}
	case $f in
	/*) [ -e "$f" ] ;;
	*) command -v "$f" >/dev/null 2>&1 ;;
	esac || case " $missing " in *" $p "*) ;; *) missing="$missing $p" ;; esac
done
ls $ARCHLIB/libibverbs/librxe-rdmav*.so >/dev/null 2>&1 ||
	case " $missing " in *" ibverbs-providers "*) ;; *) missing="$missing ibverbs-providers" ;; esac
if [ -n "$missing" ]; then
	echo "$me: missing host packages:$missing" >&2
	echo "$me: install them with: apt-get install -y$missing" >&2
	exit 2
fi
[ -e $ARCHLIB/libgcc_s.so.1 ] || { echo "$me: missing $ARCHLIB/libgcc_s.so.1 (package libgcc-s1)" >&2; exit 2; }
if ldd /usr/bin/busybox >/dev/null 2>&1; then
	echo "$me: /usr/bin/busybox is dynamic; the guest needs busybox-static" >&2
	exit 2
fi

# One build at a time per BUILD_DIR.
exec 9>"$B/.lock"
flock 9 || die "cannot lock $B/.lock"

# ---- 2. the kernel package (resolved once, then pinned) ----------------------
if [ -n "${RPAGE_VM_KERNEL_PKG:-}" ]; then
	kpkg=$RPAGE_VM_KERNEL_PKG
elif [ -s "$B/kernel-pkg" ]; then
	kpkg=$(cat "$B/kernel-pkg")
else
	resolve() { apt-cache depends linux-image-amd64 2>/dev/null |
		awk '$1 ~ /Depends:$/ && $2 ~ /^linux-image-[0-9]/ { print $2; exit }'; }
	kpkg=$(resolve)
	if [ -z "$kpkg" ]; then
		say "apt-cache does not know linux-image-amd64; running apt-get update"
		apt-get update -qq || die "apt-get update failed"
		kpkg=$(resolve)
	fi
	[ -n "$kpkg" ] || die "cannot resolve the kernel package linux-image-amd64 depends on"
	echo "$kpkg" >"$B/kernel-pkg"
fi

# ---- 3. up to date? ----------------------------------------------------------
# The stamp covers the harness sources, the kernel package, the host packages
# whose files are copied and the lists above.  Cheap: no apt, no hashing of
# big files.
pkgs="busybox-static iproute2 ibverbs-utils ibverbs-providers rdmacm-utils perftest
libibverbs1 librdmacm1 libc6 libgcc-s1 libnuma1 libcunit1 kmod"
stamp=$( {
	echo "kernel $kpkg"
	echo "tools $TOOLS modules $MODULES"
	dpkg-query -W -f '${Package} ${Version}\n' $pkgs 2>/dev/null || true
	cat "$0" "$here/guest-init" "$here/guest-lib.sh"
} | sha256sum | cut -d' ' -f1)
if [ -s "$B/.stamp" ] && [ "$(cat "$B/.stamp")" = "$stamp" ] &&
	[ -s "$B/vmlinux" ] && [ -s "$B/initrd.img" ] && [ -s "$B/kernel-release" ]; then
	say "up to date: $B/vmlinux $B/initrd.img (kernel $(cat "$B/kernel-release"))"
	exit 0
fi
rm -f "$B/.stamp"
[ -r "$here/guest-init" ] || die "missing $here/guest-init"
[ -r "$here/guest-lib.sh" ] || die "missing $here/guest-lib.sh"
t0=$(date +%s)

# ---- 4. download and unpack the kernel ---------------------------------------
K=$B/kernel/$kpkg
if [ ! -e "$K/.unpacked" ]; then
	mkdir -p "$B/dl"
	deb=$(ls "$B/dl/${kpkg}_"*.deb 2>/dev/null | tail -n 1 || true)
	if [ -z "$deb" ]; then
		say "downloading $kpkg (about 70 MB) with apt-get download"
		# apt's _apt sandbox user must be able to write there while it downloads
		chmod 0777 "$B/dl"
		if ! (cd "$B/dl" && apt-get download -q "$kpkg"); then
			say "apt-get download failed; running apt-get update and retrying"
			apt-get update -qq || { chmod 0755 "$B/dl"; die "apt-get update failed"; }
			(cd "$B/dl" && apt-get download -q "$kpkg") ||
				{ chmod 0755 "$B/dl"; die "apt-get download $kpkg failed"; }
		fi
		chmod 0755 "$B/dl"
		deb=$(ls "$B/dl/${kpkg}_"*.deb 2>/dev/null | tail -n 1 || true)
		[ -n "$deb" ] || die "apt-get download left no ${kpkg}_*.deb in $B/dl"
	fi
	say "unpacking $(basename "$deb")"
	rm -rf "$K"
	mkdir -p "$K"
	dpkg -x "$deb" "$K" || die "dpkg -x $deb failed"
	touch "$K/.unpacked"
fi
vmlinuz=$(ls "$K"/boot/vmlinuz-* 2>/dev/null | head -n 1 || true)
[ -n "$vmlinuz" ] || die "no boot/vmlinuz-* in $kpkg"
kver=${vmlinuz##*/vmlinuz-}
kmods=$K/lib/modules/$kver
[ -d "$kmods" ] || kmods=$K/usr/lib/modules/$kver
[ -d "$kmods" ] || die "no lib/modules/$kver in $kpkg"
KROOT=${kmods%/lib/modules/"$kver"}

# ---- 5. vmlinux out of the bzImage ---------------------------------------------
if [ ! -s "$K/vmlinux" ]; then
	say "extracting vmlinux from $(basename "$vmlinuz") (XZ payload)"
	python3 - "$vmlinuz" "$K/vmlinux.tmp" <<'EOF' || die "vmlinux extraction failed"
import lzma, sys
data = open(sys.argv[1], "rb").read()
magic = b"\xfd7zXZ\x00"
pos = data.find(magic)
while pos >= 0:
    try:
        d = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
        out = d.decompress(data[pos:])
        if out[:4] == b"\x7fELF":
            open(sys.argv[2], "wb").write(out)
            print("vm-build: vmlinux: %d bytes (XZ stream at offset %d)" % (len(out), pos))
            sys.exit(0)
    except lzma.LZMAError:
        pass
    pos = data.find(magic, pos + 1)
sys.exit("vm-build: no XZ stream decompressing to an ELF found in " + sys.argv[1])
EOF
	mv "$K/vmlinux.tmp" "$K/vmlinux"
fi

# ---- 6. module closure ---------------------------------------------------------
if [ ! -e "$kmods/modules.dep" ] || [ ! -e "$K/.depmod" ]; then
	say "depmod on the full module tree of $kver"
	depmod -b "$KROOT" "$kver" || die "depmod -b $KROOT $kver failed"
	touch "$K/.depmod"
fi
deps=$(modprobe -d "$KROOT" -S "$kver" --show-depends -a $MODULES 2>&1) ||
	die "modprobe --show-depends failed: $deps"
modfiles=$(printf '%s\n' "$deps" | awk '$1 == "insmod" { print $2 }' | sort -u)
builtin=$(printf '%s\n' "$deps" | awk '$1 == "builtin" { print $2 }' | sort -u | tr '\n' ' ')
[ -n "$modfiles" ] || die "no module files for: $MODULES"
say "modules: $(printf '%s\n' "$modfiles" | sed 's|.*/||; s|\.ko.*||' | tr '\n' ' ')"
[ -z "$builtin" ] || say "built into the kernel: $builtin"

# ---- 7. staging tree -------------------------------------------------------------
R=$B/root
rm -rf "$R" "$B/root.tmp"
R=$B/root.tmp
mkdir -p "$R"/usr/bin "$R"/usr/sbin "$R"/usr/lib/x86_64-linux-gnu "$R"/usr/lib64 \
	"$R"/etc "$R"/proc "$R"/sys "$R"/dev "$R"/tmp "$R"/run "$R"/var/tmp "$R"/root \
	"$R"/mnt "$R"/rpage "$R"/usr/lib/rpage
ln -s usr/bin "$R/bin"
ln -s usr/sbin "$R/sbin"
ln -s usr/lib "$R/lib"
ln -s usr/lib64 "$R/lib64"
chmod 1777 "$R/tmp" "$R/var/tmp"
if [ "$(id -u)" = 0 ]; then
	mknod -m 600 "$R/dev/console" c 5 1
	mknod -m 666 "$R/dev/null" c 1 3
else
	say "not root: no /dev/console node in the initramfs (guest-init reopens it)"
fi

# map a host path onto the merged-/usr guest tree
gpath() {
	case $1 in
	/lib/* | /lib64/* | /bin/* | /sbin/*) echo "/usr$1" ;;
	*) echo "$1" ;;
	esac
}
# copy a host file (dereferenced) to the same (merged-/usr) path in the guest
put() {
	local dst
	dst=$R$(gpath "$1")
	[ -e "$dst" ] && return 0
	mkdir -p "$(dirname "$dst")"
	cp -L "$1" "$dst" || die "cannot copy $1"
}
# copy an ELF file and its ldd closure
put_elf() {
	local out lib
	put "$1"
	out=$(ldd "$1" 2>&1) || {
		case $out in *"not a dynamic executable"*) return 0 ;; esac
		die "ldd $1 failed: $out"
	}
	case $out in *"not found"*) die "ldd $1: unresolved libraries: $out" ;; esac
	for lib in $(printf '%s\n' "$out" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
		put "$lib"
	done
}

say "staging user space"
cp /usr/bin/busybox "$R/usr/bin/busybox"
for t in $TOOLS; do
	put_elf "$t"
done
ln -s ../sbin/tc "$R/usr/bin/tc"
# not in any ldd output: the verbs provider, its driver file, libgcc_s
for p in $ARCHLIB/libibverbs/librxe-rdmav*.so; do put_elf "$p"; done
put /etc/libibverbs.d/rxe.driver
put_elf $ARCHLIB/libgcc_s.so.1
# project dependencies, when installed on the host
for l in libnuma.so.1 libcunit.so.1; do
	if [ -e "$ARCHLIB/$l" ]; then
		put_elf "$ARCHLIB/$l"
	else
		say "note: $ARCHLIB/$l not on the host, not copied"
	fi
done
# busybox applets, except where the real tool was copied
for a in $(/usr/bin/busybox --list-full); do
	case $a in */*) ;; *) continue ;; esac
	name=${a##*/}
	dir=$(gpath "/${a%/*}")
	[ -e "$R/usr/bin/$name" ] || [ -e "$R/usr/sbin/$name" ] || [ -L "$R$dir/$name" ] ||
		ln -s /usr/bin/busybox "$R$dir/$name"
done
[ -L "$R/usr/bin/sh" ] || die "busybox provides no sh"
cat >"$R/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
EOF
cat >"$R/etc/group" <<'EOF'
root:x:0:
EOF
cat >"$R/etc/hosts" <<'EOF'
127.0.0.1 localhost
10.0.0.1 rxe-a
10.0.0.2 rxe-b
EOF
echo "hosts: files" >"$R/etc/nsswitch.conf"
echo rpage-vm >"$R/etc/hostname"
mkdir -p "$R/etc/iproute2"

# kernel modules + depmod on the subset
say "staging modules for $kver"
gm=$R/usr/lib/modules/$kver
mkdir -p "$gm"
for f in $modfiles; do
	rel=${f#"$kmods"/}
	mkdir -p "$gm/$(dirname "$rel")"
	cp "$f" "$gm/$rel"
done
for f in modules.builtin modules.builtin.modinfo modules.order; do
	[ -e "$kmods/$f" ] && cp "$kmods/$f" "$gm/$f"
done
depmod -b "$R" "$kver" || die "depmod -b $R $kver failed"

# the harness itself
install -m 0755 "$here/guest-init" "$R/init"
install -m 0644 "$here/guest-lib.sh" "$R/usr/lib/rpage/guest-lib.sh"
echo "$kver" >"$R/etc/rpage-vm-kernel"

# ---- 8. pack ---------------------------------------------------------------------
say "packing the base initramfs"
(cd "$R" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
	cpio --null -o -H newc --owner=0:0 --reproducible --quiet) |
	gzip -6 -n >"$B/initrd.img.tmp" || die "cpio/gzip failed"
mv "$R" "$B/root"
mv "$B/initrd.img.tmp" "$B/initrd.img"
cp "$K/vmlinux" "$B/vmlinux.tmp" && mv "$B/vmlinux.tmp" "$B/vmlinux"
echo "$kver" >"$B/kernel-release"
echo "$stamp" >"$B/.stamp"
say "done in $(($(date +%s) - t0)) s: kernel $kver ($kpkg)"
say "  $B/vmlinux ($(du -m "$B/vmlinux" | cut -f1) MB)"
say "  $B/initrd.img ($(du -k "$B/initrd.img" | cut -f1) KB)"
