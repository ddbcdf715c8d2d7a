# Makefile: builds libloam, the Lua module loam.core, the 'loam' host and
# the tests (GNU make).
#
#   make                 libraries, Lua module, host, tests, benchmarks and
#                        examples under build/
#   make test            C tests, busted specs, the rockspec and a staged
#                        install, against real SQLite and a throwaway
#                        PostgreSQL cluster
#   make asan            the same tests under AddressSanitizer/UBSan (build-asan/)
#   make tsan            the C tests and examples/host_threads under
#                        ThreadSanitizer (build-tsan/)
#   make fuzz            each libFuzzer target of fuzz/ for FUZZ_SECONDS (clang,
#                        build-fuzz/)
#   make bench           W1-W4 and M1 at full size on an SQLite file and a
#                        throwaway PostgreSQL: hand-written C, loam's models
#                        and raw SQL, LuaDBI, LuaSQL (bench/RESULTS.md); W5,
#                        threads over one pool, against pthreads and libpq
#   make bench-quick     the same at 1/10 size, in under a minute
#   make demo            builds everything, then runs the examples
#   make install         PREFIX (default /usr/local) and DESTDIR are honoured
#   make uninstall       removes what 'make install' put there
#   make env             eval "$(make -s env)": plain lua5.4 finds this checkout
#   make check-rockspec  the rockspec lists every C source of loam.core
#   make check-layers    no file of core/src/ includes a header of a higher layer
#   make clean
#
# Missing Debian packages are installed (as root) or named (otherwise) by
# scripts/deps before anything is built.  CFLAGS is yours to set; the flags
# the code needs are added with 'override' and survive it.

PREFIX       ?= /usr/local
BINDIR       ?= $(PREFIX)/bin
LIBDIR       ?= $(PREFIX)/lib
INCLUDEDIR   ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
LUA_VERSION  := 5.4
LUADIR       ?= $(PREFIX)/share/lua/$(LUA_VERSION)
LUACDIR      ?= $(PREFIX)/lib/lua/$(LUA_VERSION)

CFLAGS     ?= -O2 -g
LDFLAGS    ?=
INSTALL    ?= install
PKG_CONFIG ?= pkg-config
LUA_PC     ?= lua5.4
LUA        ?= lua5.4
BUILD      ?= build
# Extra compile and link flags, e.g. sanitizers ('make asan' sets them).
SANITIZE   ?=

VERSION := $(shell sed -n 's/.*define LOAM_VERSION "\(.*\)".*/\1/p' core/include/loam.h)
SOMAJOR := $(firstword $(subst ., ,$(VERSION)))

WARNINGS = -Wall -Wextra -Werror -Wshadow -Wmissing-prototypes -Wstrict-prototypes \
           -Wmissing-declarations -Wundef -Wwrite-strings -Wpointer-arith \
           -Wformat=2 -Wvla -Wold-style-definition
override CFLAGS += -std=c11 $(WARNINGS) -D_POSIX_C_SOURCE=200809L -fPIC -pthread \
                   -fvisibility=hidden $(SANITIZE)
override LDFLAGS += -pthread $(SANITIZE)
DEPFLAGS = -MMD -MP

# pkg-config is asked lazily, once, and only from recipes: those run after
# the 'deps' prerequisite, so a fresh machine gets the packages first.
DB_CFLAGS = $(eval DB_CFLAGS := $$(shell $(PKG_CONFIG) --cflags sqlite3 libpq 2>/dev/null \
              || echo "-I$$$$(pg_config --includedir)"))$(DB_CFLAGS)
DB_LIBS   = $(eval DB_LIBS := $$(shell $(PKG_CONFIG) --libs sqlite3 libpq 2>/dev/null \
              || echo "-lsqlite3 -L$$$$(pg_config --libdir) -lpq"))$(DB_LIBS)
LUA_CFLAGS = $(eval LUA_CFLAGS := $$(shell $(PKG_CONFIG) --cflags $(LUA_PC)))$(LUA_CFLAGS)
LUA_LIBS   = $(eval LUA_LIBS := $$(shell $(PKG_CONFIG) --libs $(LUA_PC)))$(LUA_LIBS)
# Line editing in 'loam console' when pkg-config finds GNU readline
# (scripts/deps installs Debian's libreadline-dev); without it the console
# reads plain lines.  Only the host uses it.
READLINE_CFLAGS = $(eval READLINE_CFLAGS := $$(shell $(PKG_CONFIG) --exists readline 2>/dev/null \
                    && echo "-DLOAM_HAVE_READLINE $$$$($(PKG_CONFIG) --cflags readline)"))$(READLINE_CFLAGS)
READLINE_LIBS   = $(eval READLINE_LIBS := $$(shell $(PKG_CONFIG) --exists readline 2>/dev/null \
                    && $(PKG_CONFIG) --libs readline))$(READLINE_LIBS)

# The core's folders are its layers, lowest first; a file includes
# headers of its own layer or lower ones only (scripts/check-layers).
CORE_LAYERS := base sql conn pool load migrate
CORE_SRC  := $(foreach l,$(CORE_LAYERS),$(wildcard core/src/$(l)/*.c))
BIND_SRC  := $(filter-out bindings/loam_main.c,$(wildcard bindings/*.c))
HOST_SRC  := bindings/loam_main.c
CTEST_SRC := $(wildcard spec/c/*.c)
BENCH_SRC := $(wildcard bench/peer_*.c)
EXAMPLE_SRC := $(wildcard examples/*.c)
LUA_SRC   := $(shell find lua -name '*.lua' 2>/dev/null | sort)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
CORE_OBJ  := $(call obj,$(CORE_SRC))
BIND_OBJ  := $(call obj,$(BIND_SRC))
HOST_OBJ  := $(call obj,$(HOST_SRC))
CTEST_OBJ := $(call obj,$(CTEST_SRC))
BENCH_OBJ := $(call obj,$(BENCH_SRC))
BENCH_BIN := $(patsubst bench/%.c,$(BUILD)/bin/%,$(BENCH_SRC))
BENCH_CLOCK := $(BUILD)/lib/bench/bench_clock.so
POOL_BENCH := $(BUILD)/bin/bench_pool
EXAMPLE_OBJ := $(call obj,$(EXAMPLE_SRC))
EXAMPLE_BIN := $(patsubst examples/%.c,$(BUILD)/examples/%,$(EXAMPLE_SRC))

LIBA   := $(BUILD)/lib/libloam.a
LIBSO  := $(BUILD)/lib/libloam.so
LUAMOD := $(BUILD)/lib/loam/core.so
HOST   := $(BUILD)/bin/loam
CTEST  := $(BUILD)/bin/loam-ctest
LUALIBA  := $(BUILD)/lib/libloam-lua.a
LUALIBSO := $(BUILD)/lib/libloam-lua.so
PCFILES  := $(BUILD)/loam.pc $(BUILD)/loam-lua.pc

ASAN_DIR   := build-asan
ASAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer \
              -fno-sanitize-recover=undefined
# Any sanitizer report fails the run.  A suppressions file, if there is
# one, names only leaks inside code that is not loam's.
LSAN_SUPP := $(wildcard spec/support/lsan.supp)
ASAN_ENV := ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 \
            UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
            LSAN_OPTIONS=print_suppressions=0$(if $(LSAN_SUPP),:suppressions=$(CURDIR)/$(LSAN_SUPP))

# ThreadSanitizer takes the C tests, whose pool tests run real threads
# (the specs run one Lua state in one thread), and examples/host_threads,
# whose threads each run a Lua state over one pool.  Any report fails the run.
TSAN_DIR   := build-tsan
TSAN_FLAGS := -fsanitize=thread -fno-omit-frame-pointer
TSAN_ENV   := TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1

# The fuzz targets: one per file of fuzz/, built with clang's libFuzzer
# and the same sanitizers; the library objects get only the coverage
# instrumentation ('fuzzer-no-link'), the targets bring libFuzzer's main.
# gcc's -Werror build is the one that guards warnings; clang's own extra
# warnings (format strings through va_list, say) are shown, not fatal.
FUZZ_DIR     := build-fuzz
FUZZ_CC      ?= clang
FUZZ_SRC     := $(wildcard fuzz/*.c)
FUZZ_BIN     := $(patsubst fuzz/%.c,$(FUZZ_DIR)/bin/%,$(FUZZ_SRC))
FUZZ_SECONDS ?= 20

# What scripts/deps checks: the build packages, plus those of the goals.
DEPSETS = build $(filter test asan tsan fuzz bench demo,$(MAKECMDGOALS)) \
          $(if $(filter bench-quick,$(MAKECMDGOALS)),bench)

.DEFAULT_GOAL := all
.PHONY: all deps test asan tsan fuzz fuzz-build bench bench-quick demo install uninstall clean env \
        check-rockspec \
        check-layers \
        FORCE
.DELETE_ON_ERROR:

# The benchmarks and C examples are built too, so they keep compiling.
all: $(LIBA) $(LIBSO) $(LUALIBA) $(LUALIBSO) $(LUAMOD) $(HOST) $(CTEST) $(PCFILES) \
     $(BENCH_BIN) $(BENCH_CLOCK) $(POOL_BENCH) $(EXAMPLE_BIN)

deps:
	@bash scripts/deps $(DEPSETS)

# {==================================================================
# Compiling
# ===================================================================

# Everything is rebuilt when the compiler flags change, and what has an
# install path built in (the host, the .pc files) when those change.  Each
# file is rewritten only when its contents differ.
FLAGS_SIG = $(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) $(DB_CFLAGS) $(LUA_CFLAGS) $(READLINE_CFLAGS)
PATHS_SIG = $(PREFIX) $(BINDIR) $(LIBDIR) $(INCLUDEDIR) $(LUADIR) $(abspath $(BUILD)) $(CURDIR)
$(BUILD)/flags: FORCE | deps
	@mkdir -p $(@D)
	@printf '%s\n' '$(FLAGS_SIG)' | cmp -s - $@ || printf '%s\n' '$(FLAGS_SIG)' > $@
$(BUILD)/paths: FORCE
	@mkdir -p $(@D)
	@printf '%s\n' '$(PATHS_SIG)' | cmp -s - $@ || printf '%s\n' '$(PATHS_SIG)' > $@
$(HOST_OBJ): $(BUILD)/paths

$(CORE_OBJ): $(BUILD)/obj/%.o: %.c $(BUILD)/flags | deps
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(DEPFLAGS) -Icore/include -Icore/src $(DB_CFLAGS) -c $< -o $@

# The host finds loam's Lua files from where it runs (bindings/loam_main.c):
# the checkout's lua/ from the build's bin/, the installed LUADIR from
# BINDIR (both relative, so either tree may move as a whole), else LUADIR.
HOST_PATHS = $(eval HOST_PATHS := \
  -DLOAM_LUADIR='"$(LUADIR)"' \
  -DLOAM_BIN_TO_LUADIR='"$(shell realpath -m --relative-to='$(BINDIR)' '$(LUADIR)')"' \
  -DLOAM_BUILD_TO_SRC='"$(shell realpath -m --relative-to='$(abspath $(BUILD)/bin)' '$(CURDIR)')"')$(HOST_PATHS)

$(BIND_OBJ) $(HOST_OBJ) $(EXAMPLE_OBJ): $(BUILD)/obj/%.o: %.c $(BUILD)/flags | deps
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(DEPFLAGS) -Icore/include -Ibindings $(LUA_CFLAGS) \
	  $(if $(filter $@,$(HOST_OBJ)),$(DB_CFLAGS) $(HOST_PATHS) $(READLINE_CFLAGS)) -c $< -o $@

$(CTEST_OBJ): $(BUILD)/obj/%.o: %.c $(BUILD)/flags | deps
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(DEPFLAGS) -Icore/include -Icore/src -Ispec/c $(DB_CFLAGS) -c $< -o $@

$(BENCH_OBJ): $(BUILD)/obj/%.o: %.c $(BUILD)/flags | deps
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(DEPFLAGS) $(DB_CFLAGS) -c $< -o $@

-include $(patsubst %.o,%.d,$(CORE_OBJ) $(BIND_OBJ) $(HOST_OBJ) $(CTEST_OBJ) $(BENCH_OBJ) \
           $(EXAMPLE_OBJ))

# }==================================================================

# {==================================================================
# Linking
# ===================================================================

$(LIBA): $(CORE_OBJ)
	@mkdir -p $(@D)
	rm -f $@
	$(AR) rcs $@ $^

# The shared library exports only the 'loam_' API (-fvisibility=hidden
# plus LOAM_API on the public declarations).
$(LIBSO): $(CORE_OBJ)
	@mkdir -p $(@D)
	$(CC) -shared -Wl,-soname,libloam.so.$(SOMAJOR) -Wl,--no-undefined -o $@ $^ \
	  $(LDFLAGS) $(DB_LIBS)

# The binding as a library of its own, for host programs that embed Lua
# and call 'loam_lua_open' (bindings/loam_lua.h).  libloam stays free of Lua.
$(LUALIBA): $(BIND_OBJ)
	@mkdir -p $(@D)
	rm -f $@
	$(AR) rcs $@ $^

# Its runpath '$ORIGIN' finds libloam beside it wherever the two are
# installed, so a program needs a runpath (or the system's) for one only.
$(LUALIBSO): $(BIND_OBJ) $(LIBSO)
	@mkdir -p $(@D)
	$(CC) -shared -Wl,-soname,libloam-lua.so.$(SOMAJOR) -Wl,--no-undefined -o $@ $(BIND_OBJ) \
	  -L$(BUILD)/lib -lloam -Wl,-rpath,'$$ORIGIN' $(LDFLAGS) $(LUA_LIBS)

# A Lua module is not linked with liblua: the interpreter that loads it
# provides the 'lua_' symbols.  libloam is linked in whole but keeps its
# symbols to itself, so the module exports only 'luaopen_loam_core'.
$(LUAMOD): $(BIND_OBJ) $(LIBA)
	@mkdir -p $(@D)
	$(CC) -shared -o $@ $(BIND_OBJ) $(LIBA) -Wl,--exclude-libs,ALL $(LDFLAGS) $(DB_LIBS)

# The host exports its symbols (-E) so that C modules it loads resolve
# the Lua API against it, as lua.c does.
$(HOST): $(HOST_OBJ) $(BIND_OBJ) $(LIBA)
	@mkdir -p $(@D)
	$(CC) -o $@ $(HOST_OBJ) $(BIND_OBJ) $(LIBA) -Wl,-E $(LDFLAGS) $(LUA_LIBS) $(DB_LIBS) \
	  $(READLINE_LIBS) -lm -ldl

$(CTEST): $(CTEST_OBJ) $(LIBA)
	@mkdir -p $(@D)
	$(CC) -o $@ $(CTEST_OBJ) $(LIBA) $(LDFLAGS) $(DB_LIBS) -lm

# The C peers of the benchmark stand on the raw driver APIs only.
$(BENCH_BIN): $(BUILD)/bin/%: $(BUILD)/obj/bench/%.o
	@mkdir -p $(@D)
	$(CC) -o $@ $< $(LDFLAGS) $(DB_LIBS)

# The cost of a pool checkout, through libloam.
$(POOL_BENCH): bench/bench_pool.c $(LIBA) $(BUILD)/flags | deps
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -Icore/include -o $@ $< $(LIBA) $(LDFLAGS) $(DB_LIBS) -lm

# The wall clock of the benchmark's Lua peers, a Lua module of its own.
$(BENCH_CLOCK): bench/lua_clock.c $(BUILD)/flags | deps
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LUA_CFLAGS) -shared -o $@ $< $(LDFLAGS)

$(EXAMPLE_BIN): $(BUILD)/examples/%: $(BUILD)/obj/examples/%.o $(LUALIBA) $(LIBA)
	@mkdir -p $(@D)
	$(CC) -o $@ $< $(LUALIBA) $(LIBA) -Wl,-E $(LDFLAGS) $(LUA_LIBS) $(DB_LIBS) -lm -ldl

# Paths under PREFIX are written relative to it, so 'pkg-config
# --define-prefix' can relocate a DESTDIR install.
$(PCFILES): $(BUILD)/%.pc: %.pc.in $(BUILD)/paths
	@mkdir -p $(@D)
	sed -e 's|@PREFIX@|$(PREFIX)|' \
	    -e 's|@LIBDIR@|$(patsubst $(PREFIX)/%,$${prefix}/%,$(LIBDIR))|' \
	    -e 's|@INCLUDEDIR@|$(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))|' \
	    -e 's|@VERSION@|$(VERSION)|' -e 's|@LUA_PC@|$(LUA_PC)|' $< > $@

# }==================================================================

# {==================================================================
# Running
# ===================================================================

# An installation is staged under $(BUILD)/stage for the tests to run as a
# user would.
STAGE := $(BUILD)/stage
test: all | deps
	@bash scripts/check-layers $(CORE_LAYERS)
	@rm -rf '$(STAGE)'
	@$(MAKE) --no-print-directory install DESTDIR='$(CURDIR)/$(STAGE)' >/dev/null
	bash spec/support/run-tests --installed '$(STAGE)$(PREFIX)' $(HOST) $(CTEST)

# The host and the C tests are built instrumented; busted runs inside
# the instrumented host (an instrumented module loaded into an
# uninstrumented lua5.4 would abort).  The rockspec part is left out:
# luarocks builds with its own flags.
asan: | deps
	$(MAKE) --no-print-directory BUILD=$(ASAN_DIR) CFLAGS='-O1 -g' \
	  SANITIZE='$(ASAN_FLAGS)' $(ASAN_DIR)/bin/loam $(ASAN_DIR)/bin/loam-ctest \
	  $(ASAN_DIR)/examples/host_threads
	$(ASAN_ENV) bash spec/support/run-tests --no-rockspec \
	  $(ASAN_DIR)/bin/loam $(ASAN_DIR)/bin/loam-ctest

tsan: | deps
	$(MAKE) --no-print-directory BUILD=$(TSAN_DIR) CFLAGS='-O1 -g' \
	  SANITIZE='$(TSAN_FLAGS)' $(TSAN_DIR)/bin/loam-ctest $(TSAN_DIR)/examples/host_threads
	$(TSAN_ENV) bash spec/support/run-tests --c-only \
	  --host-threads $(TSAN_DIR)/examples/host_threads $(TSAN_DIR)/bin/loam-ctest

# Each target runs FUZZ_SECONDS from its seeds in fuzz/corpus/<target>/
# (new inputs go to a scratch directory, the tree's seeds stay as they are).
fuzz: | deps
	$(MAKE) --no-print-directory BUILD=$(FUZZ_DIR) CC=$(FUZZ_CC) CFLAGS='-O1 -g' \
	  SANITIZE='$(ASAN_FLAGS) -fsanitize=fuzzer-no-link -Wno-error' fuzz-build
	bash fuzz/run $(FUZZ_DIR) $(FUZZ_SECONDS)

# Called by 'fuzz' with BUILD set to $(FUZZ_DIR) and the flags above.
fuzz-build: $(FUZZ_BIN)

$(FUZZ_BIN): $(FUZZ_DIR)/bin/%: fuzz/%.c $(LUALIBA) $(LIBA) $(BUILD)/flags | deps
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -Icore/include -Icore/src -Ibindings $(LUA_CFLAGS) \
	  $(DB_CFLAGS) -fsanitize=fuzzer $< -o $@ $(LUALIBA) $(LIBA) $(LDFLAGS) $(LUA_LIBS) \
	  $(DB_LIBS) -lm -ldl

# The benchmark (bench/run, results in bench/RESULTS.md): full size, and
# the same at 1/10 in under a minute.
bench: all | deps
	bash bench/run $(BUILD) full

bench-quick: all | deps
	bash bench/run $(BUILD) quick

# The shop (examples/shop/demo.sh): migrate, seed twice (the second run
# changes nothing), then the N+1 incident and its fixes, on the SQLite file
# build/shop.db or on DB=URL (PostgreSQL too).  Safe to run again on the
# same database.  Everything is built first, so that what 'make env'
# points at exists afterwards.
DEMO_DB = $(or $(DB),sqlite:$(abspath $(BUILD))/shop.db)

demo: all | deps
	@bash examples/shop/demo.sh '$(abspath $(HOST))' '$(DEMO_DB)' \
	  '$(if $(DB),the database of DB,the SQLite file $(BUILD)/shop.db)'

check-rockspec:
	$(LUA) scripts/check-rockspec.lua loam-scm-1.rockspec

check-layers:
	bash scripts/check-layers $(CORE_LAYERS)

env:
	@echo 'export LUA_PATH="$(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;$${LUA_PATH:-;}"'
	@echo 'export LUA_CPATH="$(CURDIR)/$(BUILD)/lib/?.so;$${LUA_CPATH:-;}"'

# }==================================================================

# {==================================================================
# Installing
# ===================================================================

install: all
	$(INSTALL) -d '$(DESTDIR)$(INCLUDEDIR)' '$(DESTDIR)$(LIBDIR)' '$(DESTDIR)$(PKGCONFIGDIR)' \
	  '$(DESTDIR)$(LUACDIR)/loam' '$(DESTDIR)$(BINDIR)'
	$(INSTALL) -m 644 core/include/loam.h $(wildcard bindings/loam_lua.h) '$(DESTDIR)$(INCLUDEDIR)'
	$(INSTALL) -m 644 $(LIBA) $(LUALIBA) '$(DESTDIR)$(LIBDIR)'
	$(foreach l,libloam libloam-lua,\
	  $(INSTALL) -m 755 $(BUILD)/lib/$(l).so '$(DESTDIR)$(LIBDIR)/$(l).so.$(VERSION)' && \
	  ln -sf $(l).so.$(VERSION) '$(DESTDIR)$(LIBDIR)/$(l).so.$(SOMAJOR)' && \
	  ln -sf $(l).so.$(SOMAJOR) '$(DESTDIR)$(LIBDIR)/$(l).so' &&) true
	$(INSTALL) -m 644 $(PCFILES) '$(DESTDIR)$(PKGCONFIGDIR)'
	$(foreach f,$(LUA_SRC),$(INSTALL) -D -m 644 $(f) '$(DESTDIR)$(LUADIR)/$(patsubst lua/%,%,$(f))' &&) true
	$(INSTALL) -m 755 $(LUAMOD) '$(DESTDIR)$(LUACDIR)/loam/core.so'
	$(INSTALL) -m 755 $(HOST) '$(DESTDIR)$(BINDIR)/loam'

uninstall:
	rm -f '$(DESTDIR)$(INCLUDEDIR)/loam.h' '$(DESTDIR)$(INCLUDEDIR)/loam_lua.h' \
	  $(foreach l,libloam libloam-lua,'$(DESTDIR)$(LIBDIR)/$(l).a' '$(DESTDIR)$(LIBDIR)/$(l).so' \
	    '$(DESTDIR)$(LIBDIR)/$(l).so.$(SOMAJOR)' '$(DESTDIR)$(LIBDIR)/$(l).so.$(VERSION)') \
	  '$(DESTDIR)$(PKGCONFIGDIR)/loam.pc' '$(DESTDIR)$(PKGCONFIGDIR)/loam-lua.pc' \
	  '$(DESTDIR)$(LUACDIR)/loam/core.so' \
	  '$(DESTDIR)$(BINDIR)/loam'
	rm -rf '$(DESTDIR)$(LUADIR)/loam'
	-rmdir '$(DESTDIR)$(LUACDIR)/loam' 2>/dev/null

clean:
	rm -rf $(BUILD) $(ASAN_DIR) $(TSAN_DIR) $(FUZZ_DIR)

# }==================================================================
