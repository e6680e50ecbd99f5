# Shifter: build, test and install.
#   make bench     every benchmark side by side with the peers; writes BENCHMARKS.md (QUICK=1: short)
#   make soak      200 mixed jobs on the test bed; checks that nothing leaks (SOAK_JOBS=N)
#   make fuzz      the parsers' fuzz targets, FUZZ_RUNS iterations each
#   make demo      the seed's example end to end: pull, then 8 MPI ranks on a local four-node cluster
#   make deps      install the Debian packages the build and the tests need (idempotent)
#   make           build everything (release, Swift runtime linked statically)
#   make test      install what is missing, build, bring the test bed up, run every test, tear it down
#   make install   PREFIX=/usr DESTDIR= ENTRY_MODE=setuid  install binaries, plugin, header and
#                  example configs (shifter-admin, the administrators' node tool, goes to
#                  PREFIX/sbin); ENTRY_MODE=userns installs shifter without the setuid bit, for
#                  sites whose udiRoot.conf sets entryMode=userns
#   make deb       build build/shifter_VERSION_ARCH.deb (ENTRY_MODE as for install)
#   make rpm       build build/shifter-VERSION-1.x86_64.rpm (rpmbuild from Debian's rpm package;
#                  ENTRY_MODE as for install); both compress with xz at PACKAGE_XZ_LEVEL (default 6)
PREFIX ?= /usr
DESTDIR ?=
SYSCONFDIR ?= /etc/shifter
# How shifter enters a job's container: setuid root, or (userns) through the user namespace the
# prolog prepared, as an ordinary program.
ENTRY_MODE ?= setuid
SHIFTER_INSTALL_setuid = -m 4755 -o root -g root
SHIFTER_INSTALL_userns = -m 0755
SHIFTER_INSTALL = $(SHIFTER_INSTALL_$(ENTRY_MODE))
ifneq ($(filter install deb rpm,$(MAKECMDGOALS)),)
ifeq ($(SHIFTER_INSTALL),)
$(error ENTRY_MODE must be setuid or userns, not '$(ENTRY_MODE)')
endif
endif
SWIFT ?= $(shell command -v swift 2>/dev/null || echo /opt/swift/usr/bin/swift)
SWIFT_FLAGS = -c release -Xswiftc -static-stdlib --disable-local-rpath
SWIFT_BIN = .build/release
OUT = build
CC ?= cc
HARDENING = -O2 -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fstack-clash-protection -fPIC \
            -Wall -Wextra -Werror -Wformat -Wformat-security
HARDENING_LD = -Wl,-z,relro -Wl,-z,now -Wl,-z,noexecstack

BINARIES = $(OUT)/shifter $(OUT)/shifterimg $(OUT)/shifter-imagegw $(OUT)/shifter-admin $(OUT)/libshifter.so
PLUGIN = $(OUT)/shifter_spank.so

.PHONY: all deps swift test unit integration install deb rpm demo soak fuzz bench scale clean bed-up bed-down

all: $(BINARIES) $(PLUGIN)

deps:
	@tests/harness/install-deps

# The linker reads shifter's start-up order (Package.swift), which SwiftPM does not count as an
# input: a list newer than the binary makes it link again.
swift:
	@[ ! $(SWIFT_BIN)/shifter-command -ot Sources/shifter-command/startup.order ] || rm -f $(SWIFT_BIN)/shifter-command
	$(SWIFT) build $(SWIFT_FLAGS)

$(OUT)/shifter: swift
	@mkdir -p $(OUT)
	cp -f $(SWIFT_BIN)/shifter-command $@

$(filter-out $(OUT)/shifter,$(BINARIES)): swift
	@mkdir -p $(OUT)
	cp -f $(SWIFT_BIN)/$(notdir $@) $@

PLUGIN_SOURCES = spank/dispatch.c spank/args.c spank/submit.c spank/task.c spank/job.c

$(PLUGIN): $(PLUGIN_SOURCES) spank/shifter_spank.h spank/shifter_spank.map include/shifter.h $(OUT)/libshifter.so
	$(CC) $(HARDENING) -shared -Iinclude -o $@ $(PLUGIN_SOURCES) \
	    -Wl,--version-script=spank/shifter_spank.map $(HARDENING_LD) \
	    -L$(OUT) -lshifter -Wl,-rpath,'$$ORIGIN'

test:
	@tests/run

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/lib/shifter $(DESTDIR)$(PREFIX)/include \
	    $(DESTDIR)$(SYSCONFDIR)
	install -m 0755 $(OUT)/shifterimg $(OUT)/shifter-imagegw $(DESTDIR)$(PREFIX)/bin/
	install $(SHIFTER_INSTALL) $(OUT)/shifter $(DESTDIR)$(PREFIX)/bin/shifter
	install -m 0755 $(OUT)/shifter-admin $(DESTDIR)$(PREFIX)/sbin/shifter-admin
	install -m 0755 $(OUT)/libshifter.so $(OUT)/shifter_spank.so $(DESTDIR)$(PREFIX)/lib/shifter/
	install -m 0755 packaging/make-ssh-bundle $(DESTDIR)$(PREFIX)/lib/shifter/make-ssh-bundle
	install -m 0644 include/shifter.h $(DESTDIR)$(PREFIX)/include/
	install -m 0644 etc/udiRoot.conf.example etc/plugstack.conf.example $(DESTDIR)$(SYSCONFDIR)/
	install -m 0644 etc/imagegw.conf.example $(DESTDIR)$(SYSCONFDIR)/
	install -D -m 0644 etc/shifter-imagegw.service $(DESTDIR)$(PREFIX)/lib/systemd/system/shifter-imagegw.service
	install -D -m 0755 etc/modules/mpich/abi-check.sh $(DESTDIR)$(PREFIX)/lib/shifter/modules/mpich/abi-check.sh

demo:
	@demo/run

SOAK_JOBS ?= 200
FUZZ_RUNS ?= 200000

soak:
	tests/harness/bed up
	tests/soak/soak --jobs $(SOAK_JOBS)

fuzz:
	fuzz/run --runs $(FUZZ_RUNS)

QUICK ?= 0
bench:
	QUICK=$(QUICK) bench/run-all

scale:
	bench/scale/run.sh

deb: all
	ENTRY_MODE=$(ENTRY_MODE) packaging/build-deb

rpm: all
	ENTRY_MODE=$(ENTRY_MODE) packaging/build-rpm

bed-up:
	tests/harness/bed up

bed-down:
	tests/harness/bed down

clean:
	rm -rf $(OUT) .build fuzz/.build-fuzz
