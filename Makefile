# ducky: `make` builds ducky.so; `make demo` and `make test` set everything up.
# LUA=lua5.1|lua5.2|lua5.3|lua5.4|luajit: the interpreter (and pkg-config name)
# to build and test for; each has its own build directory.
LUA        ?= lua5.4
LUA_PC     ?= $(LUA)
CC         ?= cc
PKGS        = $(LUA_PC) libcurl libcrypto
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs libcurl libcrypto 2>/dev/null)
CFLAGS     ?= -O2 -g
WARN        = -std=c11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes
ALL_CFLAGS  = $(WARN) -fPIC -fvisibility=hidden -D_POSIX_C_SOURCE=200809L $(PKG_CFLAGS) $(CFLAGS)
# -z nodelete: the token cache outlives a lua_State's close (one cache per process).
LDFLAGS_SO  = -shared -Wl,-z,nodelete $(PKG_LIBS) -lpthread -lm
BUILD      ?= $(if $(filter lua5.4,$(LUA)),build,build-$(LUA))
SRCS        = src/batch.c src/client_batch.c src/client_token.c src/ducky.c src/error.c \
              src/http.c src/store.c src/token.c
OBJS        = $(SRCS:src/%.c=$(BUILD)/%.o)
VERSION     = 0.1.0

LUA_LIBDIR ?= $(shell pkg-config --variable=INSTALL_CMOD $(LUA_PC) 2>/dev/null || echo /usr/local/lib/lua/5.4)
LUA_LMOD   ?= $(shell pkg-config --variable=INSTALL_LMOD $(LUA_PC) 2>/dev/null || echo /usr/local/share/lua/5.4)
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
MANDIR     ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(shell pkg-config --variable=completionsdir bash-completion 2>/dev/null || \
		echo $(PREFIX)/share/bash-completion/completions)

.PHONY: all test test-lua demo valgrind asan tsan bench-cache bench fuzz soak install rock clean deps check-format lint
all: $(BUILD)/ducky.so

$(BUILD)/%.o: src/%.c src/*.h | $(BUILD)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/ducky.so: $(OBJS)
	$(CC) $(CFLAGS) -o $@ $(OBJS) $(LDFLAGS_SO) $(LUA_LINK)

$(BUILD):
	mkdir -p $@

# A C application embedding Lua with ducky linked in (examples/embed).
$(BUILD)/embed: examples/embed/embed.c $(OBJS) | $(BUILD)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(OBJS) $(shell pkg-config --libs $(LUA_PC)) $(PKG_LIBS) \
		-lpthread -lm $(LUA_LINK)

# The pthread host of the thread-safety spec.
$(BUILD)/threads: spec/support/threads.c | $(BUILD)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(shell pkg-config --libs $(LUA_PC)) -lpthread $(LUA_LINK)

deps:
	@sh tools/deps.sh

# The suite twice, plain and under ASan+UBSan; the last line sums both runs.
test: deps all $(BUILD)/threads $(BUILD)/embed
	$(MAKE) LUA=luajit all # for the nginx spec (nginx runs LuaJIT)
	rm -f $(BUILD)/counts
	DUCKY_COUNTS=$(BUILD)/counts DUCKY_LUA=$(LUA) tools/test.sh $(BUILD)
	$(MAKE) asan
	DUCKY_COUNTS=$(BUILD)/counts DUCKY_PRELOAD="$$(clang -print-file-name=libclang_rt.asan-x86_64.so)" \
		ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		LSAN_OPTIONS=suppressions=$(CURDIR)/tools/lsan.supp:print_suppressions=0 \
		UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 tools/test.sh build-asan
	@lua5.4 tools/summary.lua --total $(BUILD)/counts

# The suite for one more Lua (LUA=lua5.1 make test-lua), without the sanitizer run.
test-lua: deps all $(BUILD)/threads
	DUCKY_LUA=$(LUA) tools/test.sh $(BUILD)

asan:
	$(MAKE) BUILD=build-asan CC=clang \
		CFLAGS="-O1 -g -shared-libasan -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
		LUA_LINK="-shared-libasan -fsanitize=address,undefined" all build-asan/threads \
		build-asan/embed

# ThreadSanitizer: the module and the pthread host, run on the thread-safety spec.
tsan:
	$(MAKE) BUILD=build-tsan CC=clang CFLAGS="-O1 -g -fsanitize=thread -fno-omit-frame-pointer" \
		LUA_LINK="-fsanitize=thread" all build-tsan/threads
	TSAN_OPTIONS=halt_on_error=1 tools/test.sh build-tsan spec/threads_spec.lua

# Figures of the shared token cache (bench/README.md).
bench-cache: deps all
	lua5.4 bench/token_cache.lua 1000

# Throughput, instructions, memory and start-up against peers (bench/README.md).
bench: deps all
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

# 200,000 requests with faults, RSS flat; `bench/soak.sh valgrind` for leaks.
soak: deps all
	bench/soak.sh

demo: deps all
	tools/demo.sh $(BUILD)

# The examples under valgrind: any definite or indirect leak or error fails.
valgrind: deps all
	DUCKY_RUNNER="valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect \
		--show-leak-kinds=definite,indirect --error-exitcode=99" tools/demo.sh $(BUILD)

install: all
	install -d $(DESTDIR)$(LUA_LIBDIR)
	install -m 0755 $(BUILD)/ducky.so $(DESTDIR)$(LUA_LIBDIR)/ducky.so
	install -d $(DESTDIR)$(LUA_LMOD)/ducky
	install -m 0644 lua/ducky/redis_store.lua lua/ducky/ngx.lua $(DESTDIR)$(LUA_LMOD)/ducky/
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(BASHCOMPDIR)
	sed '1s|^#!.*|#!/usr/bin/env $(LUA)|' bin/ducky >$(DESTDIR)$(BINDIR)/ducky
	chmod 0755 $(DESTDIR)$(BINDIR)/ducky
	install -m 0644 doc/ducky.1 $(DESTDIR)$(MANDIR)/man1/ducky.1
	install -m 0644 completions/ducky.bash $(DESTDIR)$(BASHCOMPDIR)/ducky

lint:
	luacheck lua spec examples tools bench fuzz bin/ducky
	clang-format --dry-run -Werror src/*.c src/*.h spec/support/*.c examples/embed/*.c \
		bench/*.c fuzz/*.c

# luarocks cannot see Debian's lua-cjson package as a rock: it is there, so skip the check.
rock:
	luarocks --lua-version=$(patsubst lua%,%,$(LUA)) $(if $(ROCKS_TREE),--tree $(ROCKS_TREE)) \
		make --deps-mode=none ducky-$(VERSION)-1.rockspec

clean:
	rm -rf build build-*
