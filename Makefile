# rpage: post-copy memory over TCP and RDMA.
#   make            build the library, the programs and the tests
#   make demo       the main job: a real migration on this host, verified
#   make check      every test (unit, end-to-end, soft-RoCE guest)
#   make check T=NAME   one test by name (tests/README.md; T="A B" for several)
#   make check SAN=address,undefined   the same under sanitizers
#   make fuzz       every libFuzzer target for FUZZ_SECONDS (60) each
#   make torture DURATION=1h   the torture test, every host configuration
#   make install PREFIX=/usr/local DESTDIR=
# `make demo` and `make check` first make sure the Debian packages they
# need are installed (tests/deps.sh says which, and installs them as root).

PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
DESTDIR ?=

CC ?= cc
SAN ?=
OPT ?= -O2
WARN := -Wall -Wextra -Wshadow -Wformat=2 -Wmissing-prototypes \
	-Wstrict-prototypes -Wno-format-nonliteral -Werror
CPPFLAGS += -Iinclude -D_GNU_SOURCE
CFLAGS ?= $(OPT) -g
CFLAGS += -std=gnu11 -pthread -fPIC -fvisibility=hidden $(WARN)
LDFLAGS += -pthread
# every object also writes the list of headers it read (X.d beside X.o),
# so a changed header rebuilds exactly what uses it
DEPFLAGS := -MMD -MP

ifneq ($(SAN),)
B ?= build/san-$(subst $(comma),-,$(SAN))
CFLAGS += -fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=$(SAN)
else
B ?= build
endif
comma := ,

# RDMA transport: built when rdma-core's headers are present (RDMA=0 to
# leave it out, RDMA=1 to insist).
RDMA ?= $(shell test -e /usr/include/infiniband/verbs.h -a -e /usr/include/rdma/rdma_cma.h && echo 1 || echo 0)
# TLS: GnuTLS (the handshake, and the record layer where the kernel has none)
LIBS := -lgnutls
ifeq ($(RDMA),1)
CPPFLAGS += -DRPAGE_HAVE_RDMA=1
LIBS += -lrdmacm -libverbs
NUMA ?= $(shell test -e /usr/include/numa.h && echo 1 || echo 0)
ifeq ($(NUMA),1)
CPPFLAGS += -DRPAGE_HAVE_NUMA=1
LIBS += -lnuma
endif
endif

# The unit tests need CUnit (Debian: libcunit1-dev); without it `make`
# builds everything else and says so. CUNIT=0 builds as if it were absent.
CUNIT ?= $(shell test -e /usr/include/CUnit/CUnit.h && echo 1 || echo 0)

LIB_SRC := common/util.c common/proto.c common/bitmap.c common/hist.c \
	common/uffd.c common/net.c common/conn.c common/tls.c \
	common/metrics.c common/metrics_http.c \
	server/server.c \
	client/source.c client/transport_tcp.c client/transport_local.c \
	client/attach.c client/place.c client/urgent.c client/fc.c client/fetch.c
LIB_SRC += $(wildcard common/rdma.c server/server_rdma.c client/transport_rdma.c)
LIB_SRC += $(wildcard common/proto_rdma.c)
LIB_SRC += common/live.c common/proto_live.c common/dirty.c \
	server/live_source.c client/live_dest.c
LIB_OBJ := $(LIB_SRC:%.c=$(B)/obj/%.o)

BENCH_SRC := $(wildcard perf/*.c)
PROGS := $(B)/bin/rpage-server $(B)/bin/rpage-client $(B)/bin/rpage-bench
UNIT_SRC := $(wildcard tests/unit/*.c)
UNIT_BIN := $(B)/tests/unit-tests
TEST_HELPERS := $(B)/tests/rpage-badpeer $(B)/tests/rpage-livepeer \
	$(B)/tests/rpage-probe $(B)/tests/rpage-torture
ifeq ($(RDMA),1)
TEST_HELPERS += $(B)/tests/rpage-keyprobe
endif

# Test builds: the library and the programs again, compiled with the
# fault-injection points of common/inject.h (-DRPAGE_INJECT), for the tests
# that fail something on purpose. Nothing of it is installed: the shipped
# library and programs hold no injection code.
T_CPPFLAGS := -DRPAGE_INJECT=1
T_LIB_OBJ := $(LIB_OBJ:$(B)/obj/%=$(B)/tests/obj/%) $(B)/tests/obj/common/inject.o
T_LIB := $(B)/tests/lib/librpage.a
T_PROGS := $(PROGS:$(B)/bin/%=$(B)/tests/bin/%)

ALL := $(B)/lib/librpage.a $(B)/lib/librpage.so $(PROGS) $(TEST_HELPERS) \
	$(T_PROGS) $(B)/lib/rpage.pc
ifeq ($(CUNIT),1)
ALL += $(UNIT_BIN)
endif

all: $(ALL)
ifneq ($(CUNIT),1)
	@echo "rpage: CUnit is not installed, so the unit tests ($(UNIT_BIN)) were not built;"
	@echo "rpage: they need the Debian package libcunit1-dev (apt-get install libcunit1-dev, or make deps-test)"
endif

# The compiler and flags every object was built with: when they change
# (RDMA=0 then RDMA=1, another CC or CFLAGS), every object is rebuilt,
# not only those whose sources changed.
BUILD_FLAGS := $(CC) $(CPPFLAGS) $(CFLAGS) $(LIBS)
$(B)/build-flags: FORCE
	@mkdir -p $(dir $@)
	@echo '$(BUILD_FLAGS)' | cmp -s - $@ || echo '$(BUILD_FLAGS)' > $@

$(B)/obj/%.o: %.c $(B)/build-flags
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(DEPFLAGS) -c -o $@ $<

$(B)/tests/obj/%.o: %.c $(B)/build-flags
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(T_CPPFLAGS) $(CFLAGS) $(DEPFLAGS) -c -o $@ $<

$(B)/lib/librpage.a: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(T_LIB): $(T_LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(B)/lib/librpage.so: $(LIB_OBJ) librpage.map
	@mkdir -p $(dir $@)
	$(CC) -shared -Wl,-soname,librpage.so.0 -Wl,--version-script=librpage.map \
		-Wl,--no-undefined $(LDFLAGS) -o $@ $(LIB_OBJ) $(LIBS)

$(B)/lib/rpage.pc: rpage.pc.in Makefile
	@mkdir -p $(dir $@)
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@LIBS@|$(LIBS)|' $< > $@

# Programs link the static library: they run from the build tree.
$(B)/bin/rpage-server: $(B)/obj/server/main.o $(B)/lib/librpage.a
$(B)/bin/rpage-client: $(B)/obj/client/main.o $(B)/lib/librpage.a
$(B)/bin/rpage-bench: $(BENCH_SRC:%.c=$(B)/obj/%.o) $(B)/lib/librpage.a
$(B)/tests/bin/rpage-server: $(B)/tests/obj/server/main.o $(T_LIB)
$(B)/tests/bin/rpage-client: $(B)/tests/obj/client/main.o $(T_LIB)
$(B)/tests/bin/rpage-bench: $(BENCH_SRC:%.c=$(B)/tests/obj/%.o) $(T_LIB)
$(PROGS) $(T_PROGS):
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) -lm

$(UNIT_BIN): $(UNIT_SRC:%.c=$(B)/tests/obj/%.o) $(T_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) -lcunit -lm

$(B)/tests/rpage-badpeer: $(B)/obj/tests/badpeer.o $(B)/lib/librpage.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

# The probes and the torture workload link the test library: a test may arm
# a fault-injection point in them (RPAGE_INJECT).
$(B)/tests/rpage-probe: $(B)/tests/obj/tests/torture/probe.o \
		$(B)/tests/obj/tests/torture/stranger.o $(T_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(B)/tests/rpage-torture: $(B)/tests/obj/tests/torture/torture.o \
		$(B)/tests/obj/tests/torture/stranger.o $(T_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(B)/tests/rpage-livepeer: $(B)/obj/tests/livepeer.o $(B)/lib/librpage.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(B)/tests/rpage-keyprobe: $(B)/obj/tests/rdma-keyprobe.o $(B)/lib/librpage.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

# Fuzzing (tests/fuzz/README.md): libFuzzer targets built with clang,
# ASan and UBSan, the library compiled with coverage instrumentation.
# `make fuzz` runs each target for FUZZ_SECONDS on a scratch copy of its
# seed corpus (tests/fuzz/corpus/TARGET) and stops at the first finding.
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FB := build/fuzz
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS := -g -O1 -std=gnu11 -pthread -fno-omit-frame-pointer \
	$(FUZZ_SAN) $(WARN) -DRP_FUZZ_QUIET
FUZZ_TARGETS := $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_LIB_OBJ := $(LIB_SRC:%.c=$(FB)/obj/%.o)

$(FB)/obj/%.o: %.c $(wildcard include/rpage/*.h common/*.h client/*.h server/*.h tests/fuzz/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FB)/bin/%: $(FB)/obj/tests/fuzz/%.o $(FUZZ_LIB_OBJ)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -pthread -o $@ $^ $(LIBS)

fuzz-build: $(FUZZ_TARGETS:%=$(FB)/bin/%)
.SECONDARY: $(FUZZ_LIB_OBJ) $(FUZZ_TARGETS:%=$(FB)/obj/tests/fuzz/%.o)

fuzz: deps-fuzz fuzz-build
	FB=$(FB) FUZZ_SECONDS=$(FUZZ_SECONDS) sh tests/fuzz/run.sh $(FUZZ_TARGETS)

deps-fuzz:
	@sh tests/deps.sh fuzz

# Regenerates the seed corpus in the repo from the real encoders.
fuzz-seeds: $(B)/tests/mkseeds
	$(B)/tests/mkseeds tests/fuzz/corpus

$(B)/tests/mkseeds: $(B)/obj/tests/fuzz/mkseeds.o $(B)/lib/librpage.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

OBJS := $(LIB_OBJ) $(T_LIB_OBJ) $(B)/obj/server/main.o $(B)/obj/client/main.o \
	$(BENCH_SRC:%.c=$(B)/obj/%.o) $(B)/tests/obj/server/main.o \
	$(B)/tests/obj/client/main.o $(BENCH_SRC:%.c=$(B)/tests/obj/%.o) \
	$(UNIT_SRC:%.c=$(B)/tests/obj/%.o) $(B)/obj/tests/badpeer.o \
	$(B)/obj/tests/rdma-keyprobe.o $(B)/obj/tests/livepeer.o \
	$(patsubst %.c,$(B)/tests/obj/%.o,$(wildcard tests/torture/*.c))
-include $(OBJS:.o=.d)

deps:
	@sh tests/deps.sh build

demo: deps-build
	$(MAKE) all
	B=$(B) sh tests/demo.sh

deps-build:
	@sh tests/deps.sh build
deps-test:
	@sh tests/deps.sh test

# Every test, or those named by T. The soft-RoCE guest tests run too
# (skipped, with the reason, only when QEMU cannot run at all).
check: deps-test
	$(MAKE) all
	B=$(B) sh tests/run.sh $(if $(T),-t "$(T)",all)

# The names T accepts.
list-tests: all
	@B=$(B) sh tests/run.sh -l

check-unit: all
	B=$(B) sh tests/run.sh unit
check-e2e: all
	B=$(B) sh tests/run.sh e2e
check-rdma: deps-test
	$(MAKE) all
	B=$(B) sh tests/run.sh rdma

# The torture test (tests/torture/run.sh): every host configuration for
# DURATION each (60s, 10m, 1h); `make torture DURATION=1h CONFIGS=tcp-anon`
# for one. The RDMA configurations run in the soft-RoCE guest (check-rdma,
# variant torture, TORTURE_DURATION).
DURATION ?= 60s
CONFIGS ?= host
torture: all
	BIN=$(B)/bin TBIN=$(B)/tests sh tests/torture/run.sh -d $(DURATION) $(CONFIGS)

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/pkgconfig \
		$(DESTDIR)$(INCLUDEDIR)/rpage $(DESTDIR)$(MANDIR)/man1 \
		$(DESTDIR)$(MANDIR)/man3
	install -m 755 $(PROGS) $(DESTDIR)$(BINDIR)/
	install -m 644 $(B)/lib/librpage.a $(DESTDIR)$(LIBDIR)/
	install -m 755 $(B)/lib/librpage.so $(DESTDIR)$(LIBDIR)/librpage.so.0
	ln -sf librpage.so.0 $(DESTDIR)$(LIBDIR)/librpage.so
	install -m 644 include/rpage/*.h $(DESTDIR)$(INCLUDEDIR)/rpage/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@LIBS@|$(LIBS)|' \
	    rpage.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/rpage.pc
	install -m 644 docs/man/*.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 644 docs/man/*.3 $(DESTDIR)$(MANDIR)/man3/

clean:
	rm -rf build/obj build/bin build/lib build/tests build/build-flags build/san-* \
		build/fuzz/obj build/fuzz/bin

FORCE:

.PHONY: all deps deps-build deps-test deps-fuzz demo check list-tests check-unit \
	check-e2e check-rdma torture install clean fuzz fuzz-build fuzz-seeds FORCE
