# ntkhess -- GNU Makefile.  Targets: all (lib + CLI), check, bench, install,
# uninstall, asan, clean.  Options: NATIVE=1 (-march=native), MPI=0 (no MPI;
# default: OpenMPI when found, see docs/mpi.md), MPI=1 (require it).
PREFIX  ?= /usr/local
DESTDIR ?=
BUILD   ?= build
CC      ?= cc
PKGS    := openblas lapacke libcjson plplot zlib
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
ifeq ($(strip $(PKG_LIBS)),)
PKG_LIBS := -lopenblas -llapacke -lcjson -lplplot -lz
endif

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-function
OPT     ?= -O2 -g
CFLAGS  ?=
ifeq ($(NATIVE),1)
OPT += -march=native
endif
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) -fopenmp -fPIC -fvisibility=hidden \
              -Iinclude -Isrc $(PKG_CFLAGS) $(CFLAGS)
LDEXTRA ?=
LDLIBS  := $(PKG_LIBS) -fopenmp -lm $(LDEXTRA)

# MPI for the CLI only (src/cli/par.c; libntkhess stays MPI-free): OpenMPI is
# found by pkg-config (ompi-c) or mpicc --showme; MPI=0 builds without it, MPI=1
# insists on it.  A stamp recompiles par.o when the choice changes.
MPI ?=
ifneq ($(MPI),0)
MPI_CFLAGS := $(shell pkg-config --cflags ompi-c 2>/dev/null || mpicc --showme:compile 2>/dev/null)
MPI_LIBS   := $(shell pkg-config --libs ompi-c 2>/dev/null || mpicc --showme:link 2>/dev/null)
endif
ifneq ($(strip $(MPI_LIBS)),)
PAR_CFLAGS := -DNH_USE_MPI $(patsubst -I%,-isystem %,$(MPI_CFLAGS))
else ifeq ($(MPI),1)
$(error MPI=1, but OpenMPI was not found (apt-get install openmpi-bin libopenmpi-dev))
endif
PAR_STAMP := $(BUILD)/par.flags
$(shell mkdir -p $(BUILD) && (echo '$(PAR_CFLAGS) $(MPI_LIBS)' | cmp -s - $(PAR_STAMP) || echo '$(PAR_CFLAGS) $(MPI_LIBS)' > $(PAR_STAMP)))

LIB_SRC := $(wildcard src/*.c) $(wildcard src/io/*.c)
CLI_SRC := $(wildcard src/cli/*.c)
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCH_SRC := $(wildcard bench/bench_*.c)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

.PHONY: all lib check bench install uninstall clean asan
all: $(BUILD)/ntkhess lib $(BUILD)/ntkhess.1
lib: $(BUILD)/libntkhess.a $(BUILD)/libntkhess.so $(BUILD)/ntkhess.pc

$(BUILD)/%.o: %.c include/ntkhess.h $(wildcard src/*.h) $(wildcard src/io/*.h) $(wildcard src/cli/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/src/cli/par.o: ALL_CFLAGS += $(PAR_CFLAGS)
$(BUILD)/src/cli/par.o: $(PAR_STAMP)

$(BUILD)/libntkhess.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libntkhess.so: $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,libntkhess.so.0 -o $@ $^ $(LDLIBS)

$(BUILD)/ntkhess: $(CLI_OBJ) $(BUILD)/libntkhess.a
	$(CC) $(ALL_CFLAGS) -o $@ $(CLI_OBJ) $(BUILD)/libntkhess.a $(LDLIBS) $(MPI_LIBS)

$(BUILD)/tests/%: tests/%.c tests/nh_test.h $(BUILD)/libntkhess.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests -o $@ $< $(BUILD)/libntkhess.a $(LDLIBS)

$(BUILD)/bench/%: bench/%.c $(BUILD)/libntkhess.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Ibench -o $@ $< $(BUILD)/libntkhess.a $(LDLIBS)

# The man page is generated from the CLI's --help, so they cannot drift.
$(BUILD)/ntkhess.1: $(BUILD)/ntkhess scripts/gen_man.sh
	bash scripts/gen_man.sh $(BUILD)/ntkhess > $@.tmp && mv $@.tmp $@

.PHONY: $(BUILD)/ntkhess.pc
$(BUILD)/ntkhess.pc: ntkhess.pc.in
	@mkdir -p $(BUILD)
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|0.1.0|g' $< > $@

check: all $(TEST_BIN)
	BUILD=$(BUILD) bash tests/run

bench: all $(BENCH_BIN)

asan:
	LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	$(MAKE) BUILD=build-asan OPT="-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer" \
	  LDEXTRA="-fsanitize=address,undefined" check

install: all
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/bin \
	  $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 644 $(BUILD)/libntkhess.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(BUILD)/libntkhess.so $(DESTDIR)$(PREFIX)/lib/libntkhess.so.0
	ln -sf libntkhess.so.0 $(DESTDIR)$(PREFIX)/lib/libntkhess.so
	install -m 644 include/ntkhess.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 $(BUILD)/ntkhess.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/
	install -m 755 $(BUILD)/ntkhess $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(BUILD)/ntkhess.1 $(DESTDIR)$(PREFIX)/share/man/man1/

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/lib/libntkhess.a $(DESTDIR)$(PREFIX)/lib/libntkhess.so \
	  $(DESTDIR)$(PREFIX)/lib/libntkhess.so.0 $(DESTDIR)$(PREFIX)/include/ntkhess.h \
	  $(DESTDIR)$(PREFIX)/lib/pkgconfig/ntkhess.pc $(DESTDIR)$(PREFIX)/bin/ntkhess \
	  $(DESTDIR)$(PREFIX)/share/man/man1/ntkhess.1

clean:
	rm -rf $(BUILD) build-asan
