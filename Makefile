# ducky: `make` builds ducky.so; `make demo` and `make test` set everything up
# (they install missing Debian packages first when run as root); `make check`
# runs the suite with no apt-get and no network, for packagers. README "Building".
#
# LUA=lua5.1|lua5.2|lua5.3|lua5.4|luajit: the Lua to build and test for; each has
# its own build directory. The usual variables are honoured: CC, CPPFLAGS, CFLAGS,
# LDFLAGS, PKG_CONFIG, PREFIX, DESTDIR; WERROR=0 turns warnings back into warnings.
VERSION    := $(shell cat VERSION)
# the date of this version's CHANGELOG.md heading ("## 0.1.0 (2026-11-30)")
RELEASE_DATE := $(shell sed -n 's/^.. $(VERSION) (\(.*\))$$/\1/p' CHANGELOG.md)
LUA        ?= lua5.4
LUA_PC     ?= $(LUA)
LUA_ABI    ?= $(if $(filter luajit,$(LUA)),5.1,$(patsubst lua%,%,$(LUA)))
PKG_CONFIG ?= pkg-config
CFLAGS     ?= -O2 -g
WERROR     ?= 1
BUILD      ?= $(if $(filter lua5.4,$(LUA)),build,build-$(LUA))
SRCS        = $(sort $(wildcard src/*.c))
OBJS        = $(SRCS:src/%.c=$(BUILD)/%.o)

WARN        = -std=c11 -Wall -Wextra $(if $(filter 0,$(WERROR)),,-Werror) -Wshadow -Wstrict-prototypes
# TEST_HOOKS=1: ducky._test (a movable clock) for the suite's builds, never a release's
DEFS        = -D_POSIX_C_SOURCE=200809L -DDUCKY_VERSION='"$(VERSION)"' \
	$(if $(filter 1,$(TEST_HOOKS)),-DDUCKY_TEST_HOOKS)
ALL_CFLAGS  = $(WARN) -fPIC -fvisibility=hidden $(DEFS) $(LUA_CFLAGS) $(PKG_CFLAGS) $(CPPFLAGS) $(CFLAGS)
# -z nodelete: the module stays loaded after the last lua_State that required it
# closes, because the process points into it: the token cache (one per process,
# shared by every state and thread), the memory functions libcurl and OpenSSL
# were set up with (their cleanup at exit would call into unmapped code: a build
# without it crashes there), and the fork handler (pthread_atfork).
SO_LDFLAGS  = -shared -Wl,-z,nodelete $(LDFLAGS) $(PKG_LIBS) -lpthread -lm

# pkg-config is asked only when a recipe needs the flags (after `deps` has
# installed the packages), once per make, and says what to do when a .pc is missing.
need_pc     = $(if $(shell $(PKG_CONFIG) --exists $1 2>/dev/null && echo y),,$(error $(PKG_CONFIG) \
  finds no $1.pc. $2 Or give the flags yourself, as README "Building" shows))
LUA_HINT    = Install Lua's development files (Debian: $(or $(DEB_DEV_$(LUA)),lib$(LUA)-dev)), or name Lua's .pc file \
  with LUA_PC= (Fedora and Homebrew: make LUA_PC=lua), or give its headers with LUA_INCDIR=.
DEB_DEV_lua5.1 = liblua5.1-0-dev
DEB_DEV_luajit = libluajit2-5.1-dev
LIB_HINT    = Install libcurl's and OpenSSL's development files (Debian: libcurl4-openssl-dev libssl-dev).
pc_lua      = $(call need_pc,$(LUA_PC),$(LUA_HINT))$(shell $(PKG_CONFIG) $1 $(LUA_PC))
pc_libs     = $(call need_pc,libcurl,$(LIB_HINT))$(call need_pc,libcrypto,$(LIB_HINT))$(shell \
  $(PKG_CONFIG) $1 libcurl libcrypto)
LUA_CFLAGS  = $(eval LUA_CFLAGS := $(if $(LUA_INCDIR),-I$(LUA_INCDIR),$(call pc_lua,--cflags)))$(LUA_CFLAGS)
LUA_LIBS    = $(eval LUA_LIBS := $(call pc_lua,--libs))$(LUA_LIBS)
PKG_CFLAGS  = $(eval PKG_CFLAGS := $(call pc_libs,--cflags))$(PKG_CFLAGS)
PKG_LIBS    = $(eval PKG_LIBS := $(call pc_libs,--libs))$(PKG_LIBS)

# Where `make install` puts things: every path under PREFIX unless given.
PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
MANDIR      ?= $(PREFIX)/share/man
LUA_LIBDIR  ?= $(PREFIX)/lib/lua/$(LUA_ABI)
LUA_LMOD    ?= $(PREFIX)/share/lua/$(LUA_ABI)
INCDIR      ?= $(PREFIX)/include
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
LUA_BIN     ?= $(LUA)
# Every Lua module under lua/ducky, subfolders kept (ducky.ngx.*, ducky.cli.*, ...).
LUA_FILES   = $(sort $(shell find lua/ducky -name '*.lua'))
LUA_DIRS    = $(sort $(patsubst %/,%,$(dir $(LUA_FILES:lua/%=$(LUA_LMOD)/%))))

# Release tarballs and rockspecs go to DIST; the rockspec fetches from DIST_URL.
DIST        ?= dist
DIST_URL    ?= file://$(CURDIR)/$(DIST)
ROCKSPEC     = ducky-dev-1.rockspec
ROCKS_TREE  ?=

.PHONY: all check check-asan test test-lua demo standin valgrind asan tsan bench-cache bench \
	fuzz soak install uninstall rock dist clean deps lint version \
	_test _test-lua _demo _valgrind _bench _bench-cache _soak

all: $(BUILD)/ducky.so

$(BUILD)/%.o: src/%.c src/*.h $(BUILD)/flags
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

# The compiler and flags of the last build in $(BUILD): any change (CFLAGS, LUA_INCDIR,
# VERSION, ...) rebuilds everything, never a mix of objects built two ways. The file is
# rewritten only when they differ, compared by cmp (GNU make 4.3's $(file <) does not
# always drop the file's last newline: every LUA=luajit run rewrote it and rebuilt all).
BUILD_FLAGS = $(CC) $(ALL_CFLAGS) $(SO_LDFLAGS) $(LUA_LINK)
$(BUILD)/flags: FORCE | $(BUILD)
	@printf '%s\n' '$(subst ','\'',$(BUILD_FLAGS))' >$@.new; \
	if cmp -s $@.new $@; then rm -f $@.new; else mv -f $@.new $@; fi
FORCE:

$(BUILD)/ducky.so: $(OBJS) $(BUILD)/flags
	$(CC) $(CFLAGS) -o $@ $(OBJS) $(SO_LDFLAGS) $(LUA_LINK)

$(BUILD):
	mkdir -p $@

# The module as a static library, to link into a C application (README "Embedding").
$(BUILD)/libducky.a: $(OBJS)
	rm -f $@
	$(AR) rcs $@ $(OBJS)

# A C application embedding Lua with ducky linked in (examples/embed).
$(BUILD)/embed: examples/embed/embed.c src/ducky.h $(BUILD)/libducky.a
	$(CC) $(ALL_CFLAGS) -Isrc $(LDFLAGS) -o $@ $< $(BUILD)/libducky.a $(LUA_LIBS) $(PKG_LIBS) -lpthread -lm \
		$(LUA_LINK)

# The pthread host of the thread-safety spec.
$(BUILD)/threads: spec/support/hosts/threads.c | $(BUILD)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(LUA_LIBS) -lpthread $(LUA_LINK)

# The host that opens and closes three lua_States in turn (spec/build_spec.lua).
$(BUILD)/states: spec/support/hosts/states.c | $(BUILD)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(LUA_LIBS) $(LUA_LINK)

deps:
	@sh tools/deps.sh

version:
	@echo $(VERSION)

# Targets that install missing packages run deps, then a new make, which asks
# pkg-config only once the packages are there.
test test-lua demo valgrind bench bench-cache soak:
	@sh tools/deps.sh
	@$(MAKE) --no-print-directory _$@

# The suite for packagers: the build, its test twin (TEST_HOOKS=1: the same code
# and a clock specs can move, in $(BUILD)-test), its hosts, then every spec, with
# no apt-get and no network (the servers it talks to run on this machine).
TBUILD      = $(BUILD)-test
TEST_BUILD  = $(MAKE) BUILD=$(TBUILD) TEST_HOOKS=1
HAVE_LUAJIT = $(shell $(PKG_CONFIG) --exists luajit 2>/dev/null && echo y)
check: all host-builds
	$(TEST_BUILD) all $(TBUILD)/threads $(TBUILD)/embed
	$(if $(HAVE_LUAJIT),$(MAKE) LUA=luajit BUILD=build-luajit-test TEST_HOOKS=1 all) # nginx runs LuaJIT
	DUCKY_LUA=$(LUA) DUCKY_LUAJIT_BUILD=build-luajit-test tools/test.sh $(TBUILD)

# The builds the event-loop hosts of the suite and the demo run, for each of those
# Luas that is here: Neovim runs LuaJIT, HAProxy embeds Lua 5.3, Debian's copas is
# for Lua 5.1 and 5.2 (spec/hosts_spec.lua: a host whose build is missing is pending).
HOST_LUAS = luajit lua5.1 lua5.3
.PHONY: host-builds
host-builds:
	@$(foreach l,$(HOST_LUAS),$(if $(shell $(PKG_CONFIG) --exists $(l) 2>/dev/null && echo y),\
		$(MAKE) --no-print-directory LUA=$(l) all &&)) :

# Where there is no epoll (BSD, macOS) the engine polls libcurl's sockets with
# poll() and there is no descriptor for hosts: the blocking calls' specs, on a
# build that pretends so (DUCKY_NO_EPOLL), show they work the same.
NOEPOLL_SPECS = spec/ping_spec.lua spec/request_spec.lua spec/batch_spec.lua spec/retry_spec.lua \
	spec/token_spec.lua spec/availability_spec.lua spec/file_store_spec.lua
.PHONY: check-noepoll
check-noepoll:
	$(MAKE) BUILD=build-noepoll TEST_HOOKS=1 CFLAGS="$(CFLAGS) -DDUCKY_NO_EPOLL" all
	tools/test.sh build-noepoll $(NOEPOLL_SPECS)

# The suite under ASan+UBSan (clang).
check-asan: asan
	DUCKY_PRELOAD="$$(clang -print-file-name=libclang_rt.asan-x86_64.so)" \
		ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		LSAN_OPTIONS=suppressions=$(CURDIR)/tools/lsan.supp:print_suppressions=0 \
		UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 DUCKY_LUAJIT_BUILD=build-luajit-test \
		tools/test.sh build-asan

# The suite twice, plain and under ASan+UBSan; the last line sums both runs.
_test:
	rm -f $(BUILD)/counts
	$(MAKE) check DUCKY_COUNTS=$(CURDIR)/$(BUILD)/counts
	$(MAKE) check-asan DUCKY_COUNTS=$(CURDIR)/$(BUILD)/counts
	@lua5.4 tools/summary.lua --total $(BUILD)/counts

# The suite for one more Lua (make test-lua LUA=lua5.1), without the sanitizer run.
_test-lua:
	$(TEST_BUILD) all $(TBUILD)/threads
	DUCKY_LUA=$(LUA) tools/test.sh $(TBUILD)

asan:
	$(MAKE) BUILD=build-asan CC=clang TEST_HOOKS=1 \
		CFLAGS="-O1 -g -shared-libasan -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
		LUA_LINK="-shared-libasan -fsanitize=address,undefined" all build-asan/threads \
		build-asan/embed

# ThreadSanitizer: the module and the pthread host, run on the thread-safety spec.
tsan:
	$(MAKE) BUILD=build-tsan CC=clang TEST_HOOKS=1 CFLAGS="-O1 -g -fsanitize=thread -fno-omit-frame-pointer" \
		LUA_LINK="-fsanitize=thread" all build-tsan/threads
	TSAN_OPTIONS=halt_on_error=1 tools/test.sh build-tsan spec/threads_spec.lua

# Figures of the shared token cache (bench/README.md).
_bench-cache: all
	lua5.4 bench/token_cache.lua 1000

# Throughput, instructions, memory and start-up against peers (bench/README.md).
_bench: all
	$(MAKE) -C bench bench

# nginx: ducky.ngx beside lua-resty-http (../shared/peers) and proxy_pass, one worker,
# wrk (Debian package wrk), then instructions per request under callgrind (bench/README.md).
.PHONY: bench-nginx
bench-nginx: deps
	$(MAKE) LUA=luajit all
	bench/nginx/run.sh
	bench/nginx/ir.sh

# libFuzzer targets over the C that reads network data: 60 s each (FUZZ_SECONDS).
fuzz:
	$(MAKE) -C fuzz run

# Model-based random testing (spec/model_spec.lua) for longer than the suite does:
# `make model STEPS=20000 SEED=123`; `make model ASAN=1 ...` runs it on the ASan+UBSan
# build; WEIGHTS="batch=40,hostile=0" changes op weights (spec/support/model/model.lua).
STEPS ?= 20000
.PHONY: model _model
model:
	@sh tools/deps.sh
	@$(MAKE) --no-print-directory _model
_model: $(if $(ASAN),asan,)
	$(if $(ASAN),,$(TEST_BUILD) all)
	DUCKY_STEPS=$(STEPS) DUCKY_SEED=$(SEED) DUCKY_MODEL_WEIGHTS="$(WEIGHTS)" DUCKY_LUA=$(LUA) \
	$(if $(ASAN),DUCKY_PRELOAD="$$(clang -print-file-name=libclang_rt.asan-x86_64.so)" \
		ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		LSAN_OPTIONS=suppressions=$(CURDIR)/tools/lsan.supp:print_suppressions=0 \
		UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1) \
	tools/test.sh $(if $(ASAN),build-asan,$(TBUILD)) spec/model_spec.lua

# 200,000 requests with faults, RSS flat; `bench/soak.sh valgrind` for leaks.
_soak: all
	bench/soak.sh

_demo: all host-builds
	tools/demo.sh $(BUILD) $(LUA)

# The stand-in in the foreground, with the `export` lines for your own scripts and the CLI.
standin: all
	tools/standin.sh $(BUILD) $(LUA)

# The examples under valgrind: any definite or indirect leak or error fails.
_valgrind: all
	DUCKY_RUNNER="valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect \
		--show-leak-kinds=definite,indirect --error-exitcode=99" tools/demo.sh $(BUILD) $(LUA)

# The installed command: no checkout launcher, but #! the Lua it is built for, and
# the module and its Lua files where this install puts them, whatever PREFIX.
INSTALLED_PATHS = package.path, package.cpath = [==[$(LUA_LMOD)/?.lua;]==] .. package.path, \
  [==[$(LUA_LIBDIR)/?.so;]==] .. package.cpath -- where make install put the module

# DESTDIR stages the install (packagers); uninstall removes exactly these files.
INSTALLED = $(LUA_LIBDIR)/ducky.so $(LUA_FILES:lua/%=$(LUA_LMOD)/%) $(BINDIR)/ducky \
	$(MANDIR)/man1/ducky.1 $(BASHCOMPDIR)/ducky $(INCDIR)/ducky.h
install: all
	install -d $(DESTDIR)$(LUA_LIBDIR) $(addprefix $(DESTDIR),$(LUA_DIRS)) $(DESTDIR)$(BINDIR) \
		$(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(INCDIR)
	install -m 0644 src/ducky.h $(DESTDIR)$(INCDIR)/ducky.h
	install -m 0755 $(BUILD)/ducky.so $(DESTDIR)$(LUA_LIBDIR)/ducky.so
	for f in $(LUA_FILES:lua/%=%); do install -m 0644 lua/$$f $(DESTDIR)$(LUA_LMOD)/$$f || exit 1; done
	{ echo '$(if $(filter /%,$(LUA_BIN)),#!$(LUA_BIN),#!/usr/bin/env $(LUA_BIN))'; \
	  printf '%s\n' '$(subst ','\'',$(INSTALLED_PATHS))'; sed '1,/^]]/d' bin/ducky; } >$(DESTDIR)$(BINDIR)/ducky
	chmod 0755 $(DESTDIR)$(BINDIR)/ducky
	sed 's|^\.TH DUCKY 1 .*|.TH DUCKY 1 "$(RELEASE_DATE)" "ducky $(VERSION)" "User Commands"|' doc/ducky.1 \
		>$(DESTDIR)$(MANDIR)/man1/ducky.1
	chmod 0644 $(DESTDIR)$(MANDIR)/man1/ducky.1
	install -m 0644 completions/ducky.bash $(DESTDIR)$(BASHCOMPDIR)/ducky

uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	-printf '%s\n' $(addprefix $(DESTDIR),$(LUA_DIRS)) | sort -r | xargs rmdir 2>/dev/null # deepest first

lint:
	tools/lint_c.sh
	luacheck lua spec examples tools bench fuzz bin/ducky $(ROCKSPEC)
	clang-format --dry-run -Werror src/*.c src/*.h spec/support/hosts/*.c examples/embed/*.c \
		bench/*.c fuzz/*.c
	tools/lint_lua.sh

# `luarocks make` with the checkout's rockspec, whose build is this Makefile; lua-cjson
# counts as there when $(LUA) loads it, and LuaJIT's rock runs LuaJIT (tools/rock.sh).
rock:
	PKG_CONFIG='$(PKG_CONFIG)' tools/rock.sh $(LUA) $(LUA_ABI) $(ROCKSPEC) $(ROCKS_TREE)

# ducky-<version>.tar.gz (the tracked files), and the release rockspec that fetches it
# from DIST_URL, both in DIST; the .src.rock is `luarocks pack` of that rockspec.
dist:
	tools/dist.sh "$(VERSION)" "$(DIST)" "$(DIST_URL)" $(ROCKSPEC)

clean:
	rm -rf build build-* $(DIST)
