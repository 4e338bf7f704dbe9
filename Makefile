# ntkhess -- GNU Makefile.  Targets: all (lib + CLI), check (quick tests,
# T=NAME filters by name), check-long (figures, Monte Carlo, installs, MPI,
# sanitizers, fuzzing), asan, tsan, bench, install, uninstall, clean.
# Options: NATIVE=1 (-march=native), MPI=0 (no MPI; default: OpenMPI when
# found, see docs/mpi.md), MPI=1 (require it), JOBS=N (tests run at once, 2),
# BLAS=openmp (OpenBLAS's OpenMP build; default: pkg-config's; see below).
PREFIX  ?= /usr/local
DESTDIR ?=
DOCDIR  ?= $(PREFIX)/share/doc/ntkhess
BUILD   ?= build
CC      ?= cc
# The version lives in include/ntkhess/core.h only; everything else reads it.
VERSION := $(shell sed -n 's/^\#define NH_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\)/\2/p' include/ntkhess/core.h | paste -sd.)
# Three libraries follow the layers (docs/architecture.md):
#   libntkhess       numerics: OpenBLAS, LAPACKE, OpenMP, libm
#   libntkhess-io    files: cJSON, zlib (+ libntkhess)
#   libntkhess-plot  PLplot (+ libntkhess)
CORE_PKGS := openblas lapacke
IO_PKGS   := libcjson zlib
PLOT_PKGS := plplot
# OpenBLAS: pkg-config's (Debian: the pthread build) by default.  BLAS=openmp
# links its OpenMP build instead (Debian: libopenblas-openmp-dev, beside the
# pthread one), so that its GEMMs and the engine's elementwise OpenMP loops
# share one pool of threads (src/finite/curv.c, nh__par; with the pthread
# build those loops stay serial).  Found by the pkg-config file in its folder
# and kept at run time by a RUNPATH (the system's libopenblas.so.0 stays the
# pthread build).  Opt-in, not the default: on 2 idle cores it makes a fig1
# trial 3.27 -> 2.59 s, but libgomp's waiting threads spin, and on a machine
# whose cores are shared it made H v 2x slower (docs/figures.md, "Cost of a
# trial"; OMP_WAIT_POLICY=passive avoids that).
BLAS ?= default
ifeq ($(BLAS),openmp)
BLAS_DIR := $(shell pkg-config --variable=libdir openblas 2>/dev/null)
OMPBLAS_DIR := $(subst /openblas-pthread,/openblas-openmp,$(BLAS_DIR))
ifeq ($(wildcard $(OMPBLAS_DIR)/pkgconfig/openblas.pc),)
$(error BLAS=openmp: OpenBLAS's OpenMP build not found in $(OMPBLAS_DIR) (Debian: apt-get install libopenblas-openmp-dev))
endif
BLAS_ENV := PKG_CONFIG_PATH=$(OMPBLAS_DIR)/pkgconfig
# liblapack/libblas from the same folder, ahead of LAPACKE's (the system's, pthread).
BLAS_RPATH := -Wl,-rpath,$(OMPBLAS_DIR) -L$(OMPBLAS_DIR) -Wl,--push-state,--no-as-needed -llapack -lblas -Wl,--pop-state
else ifneq ($(BLAS),default)
$(error BLAS must be default or openmp, got '$(BLAS)')
endif
PKG_CFLAGS := $(shell $(BLAS_ENV) pkg-config --cflags $(CORE_PKGS) $(IO_PKGS) $(PLOT_PKGS) 2>/dev/null)
CORE_LIBS  := $(shell $(BLAS_ENV) pkg-config --libs $(CORE_PKGS) 2>/dev/null) $(BLAS_RPATH)
IO_LIBS    := $(shell pkg-config --libs $(IO_PKGS) 2>/dev/null)
PLOT_LIBS  := $(shell pkg-config --libs $(PLOT_PKGS) 2>/dev/null)
ifeq ($(strip $(CORE_LIBS)),)
CORE_LIBS := -lopenblas -llapacke
IO_LIBS   := -lcjson -lz
PLOT_LIBS := -lplplot
endif

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-function
OPT     ?= -O2 -g
CFLAGS  ?=
ifeq ($(NATIVE),1)
OPT += -march=native
endif
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) -fopenmp -fPIC -fvisibility=hidden \
              -MMD -MP -Iinclude -Isrc $(PKG_CFLAGS) $(CFLAGS)
LDEXTRA ?=
LDCORE  := $(CORE_LIBS) -fopenmp -lm $(LDEXTRA)
# Everything (CLI, tests, benches): the three static libraries' dependencies.
LDLIBS  := $(IO_LIBS) $(PLOT_LIBS) $(LDCORE)

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

LIB_SRC  := $(wildcard src/core/*.c src/finite/*.c src/est/*.c src/theory/*.c)
IO_SRC   := $(wildcard src/io/*.c)
PLOT_SRC := $(wildcard src/plot/*.c)
CLI_SRC  := $(wildcard src/cli/*.c)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
IO_OBJ   := $(IO_SRC:%.c=$(BUILD)/%.o)
PLOT_OBJ := $(PLOT_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
STATIC_LIBS := $(BUILD)/libntkhess-plot.a $(BUILD)/libntkhess-io.a $(BUILD)/libntkhess.a
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
LONG_TEST_SRC := $(wildcard tests/long/test_*.c)
LONG_TEST_BIN := $(LONG_TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCH_SRC := $(wildcard bench/bench_*.c)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

.PHONY: all lib check check-long check-all bench install uninstall clean asan tsan
all: $(BUILD)/ntkhess lib $(BUILD)/ntkhess.1
LIBNAMES := ntkhess ntkhess-io ntkhess-plot
lib: $(foreach n,$(LIBNAMES),$(BUILD)/lib$(n).a $(BUILD)/lib$(n).so $(BUILD)/$(n).pc)

# Header dependencies come from -MMD -MP (the .d files beside the objects).
$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@
-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

$(BUILD)/src/cli/par.o: ALL_CFLAGS += $(PAR_CFLAGS)
$(BUILD)/src/cli/par.o: $(PAR_STAMP)
# The BLAS choice (BLAS=): a stamp relinks everything when it changes.
BLAS_STAMP := $(BUILD)/blas.flags
$(shell mkdir -p $(BUILD) && (echo '$(CORE_LIBS)' | cmp -s - $(BLAS_STAMP) || echo '$(CORE_LIBS)' > $(BLAS_STAMP)))
$(LIB_OBJ): $(BLAS_STAMP)

$(BUILD)/libntkhess.a: $(LIB_OBJ)
$(BUILD)/libntkhess-io.a: $(IO_OBJ)
$(BUILD)/libntkhess-plot.a: $(PLOT_OBJ)
$(BUILD)/%.a:
	@rm -f $@
	ar rcs $@ $^

# Shared libraries: the core links only BLAS/LAPACK/OpenMP/libm; io and plot
# link the core plus their own dependency, so `ldd libntkhess.so` shows no
# cJSON, zlib or PLplot.
# The io and plot libraries find libntkhess.so.0 beside themselves ($ORIGIN),
# in the build folder and in an installed lib folder alike.
$(BUILD)/libntkhess.so: $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,libntkhess.so.0 -Wl,--no-undefined -o $@ $^ $(LDCORE)
	ln -sf libntkhess.so $(BUILD)/libntkhess.so.0
$(BUILD)/libntkhess-io.so: $(IO_OBJ) $(BUILD)/libntkhess.so
	$(CC) -shared -Wl,-soname,libntkhess-io.so.0 -Wl,--no-undefined -Wl,-rpath,'$$ORIGIN' -o $@ $(IO_OBJ) -L$(BUILD) -lntkhess $(IO_LIBS) $(LDCORE)
$(BUILD)/libntkhess-plot.so: $(PLOT_OBJ) $(BUILD)/libntkhess.so
	$(CC) -shared -Wl,-soname,libntkhess-plot.so.0 -Wl,--no-undefined -Wl,-rpath,'$$ORIGIN' -o $@ $(PLOT_OBJ) -L$(BUILD) -lntkhess $(PLOT_LIBS) $(LDCORE)

$(BUILD)/ntkhess: $(CLI_OBJ) $(STATIC_LIBS)
	$(CC) $(ALL_CFLAGS) -o $@ $(CLI_OBJ) $(STATIC_LIBS) $(LDLIBS) $(MPI_LIBS)

$(BUILD)/tests/%: tests/%.c tests/nh_test.h $(STATIC_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests -o $@ $< $(STATIC_LIBS) $(LDLIBS)

$(BUILD)/bench/%: bench/%.c $(STATIC_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Ibench -o $@ $< $(STATIC_LIBS) $(LDLIBS)

# The man page is generated from the CLI's --help, so they cannot drift; it
# names the installed docs (DOCDIR), so `make install` writes it again.
$(BUILD)/ntkhess.1: $(BUILD)/ntkhess scripts/gen_man.sh
	bash scripts/gen_man.sh $(BUILD)/ntkhess $(DOCDIR) > $@.tmp && mv $@.tmp $@

# Remade every time: PREFIX may differ between `make` and `make install`.
PC_FILES := $(foreach n,$(LIBNAMES),$(BUILD)/$(n).pc)
.PHONY: $(PC_FILES)
$(PC_FILES):
	@mkdir -p $(BUILD)
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' $(notdir $@).in > $@

# Tests (tests/run): quick ones in parallel (JOBS, default 2), T=NAME keeps
# those whose name contains NAME.  check-long: tests/long/ (figures, Monte
# Carlo, kill loops, installs, MPI, make asan / make tsan, fuzzing, README).
JOBS ?= 2
T ?=
check: all $(TEST_BIN)
	BUILD=$(BUILD) JOBS=$(JOBS) bash tests/run quick '$(T)'
check-long: all $(TEST_BIN) $(LONG_TEST_BIN)
	BUILD=$(BUILD) JOBS=$(JOBS) bash tests/run long '$(T)'
check-all: all $(TEST_BIN) $(LONG_TEST_BIN)
	BUILD=$(BUILD) JOBS=$(JOBS) bash tests/run all '$(T)'

bench: all $(BENCH_BIN)

# The sanitizer runs do not start themselves again, nor the fresh-clone test.
SAN_EXCLUDE := test_asan.sh test_tsan.sh test_fuzz.sh test_readme.sh
# AddressSanitizer + UndefinedBehaviorSanitizer over the quick and long suites.
asan:
	LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 NH_TEST_EXCLUDE="$(SAN_EXCLUDE)" \
	$(MAKE) BUILD=build-asan OPT="-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer" \
	  LDEXTRA="-fsanitize=address,undefined" check-all

# ThreadSanitizer over the C tests (clang: its libomp with the Archer tool
# tells TSan about OpenMP's barriers and locks, which GCC's libgomp cannot).
# OpenBLAS is not instrumented: it runs single-threaded here
# (OPENBLAS_NUM_THREADS=1; its pthread build, BLAS=default, so that no
# libgomp comes with it) and races inside it are not seen.  Limits and
# suppressions: tests/tsan.supp.  About 7 minutes here.
TSAN_CC ?= clang
ARCHER ?= $(firstword $(wildcard /usr/lib/llvm-*/lib/libarcher.so))
tsan:
	@test -n "$(ARCHER)" || { echo 'make tsan: libarcher.so not found (Debian: clang libomp-14-dev)' >&2; exit 1; }
	$(MAKE) BUILD=build-tsan BLAS=default CC=$(TSAN_CC) OPT="-O1 -g -fsanitize=thread -fno-omit-frame-pointer" \
	  LDEXTRA="-fsanitize=thread" $(addprefix build-tsan/tests/,$(notdir $(TEST_BIN)))
	OMP_TOOL_LIBRARIES=$(ARCHER) OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=4 \
	TSAN_OPTIONS="halt_on_error=1 ignore_noninstrumented_modules=1 suppressions=$(CURDIR)/tests/tsan.supp" \
	  BUILD=build-tsan JOBS=$(JOBS) TEST_KINDS=c NH_TEST_EXCLUDE=test_theory_mc bash tests/run quick '$(T)'

install: all
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/bin \
	  $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(DOCDIR)/img
	install -d $(DESTDIR)$(PREFIX)/include/ntkhess
	for n in $(LIBNAMES); do \
	  install -m 644 $(BUILD)/lib$$n.a $(DESTDIR)$(PREFIX)/lib/ && \
	  install -m 755 $(BUILD)/lib$$n.so $(DESTDIR)$(PREFIX)/lib/lib$$n.so.0 && \
	  ln -sf lib$$n.so.0 $(DESTDIR)$(PREFIX)/lib/lib$$n.so && \
	  install -m 644 $(BUILD)/$$n.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/ || exit 1; done
	install -m 644 include/ntkhess.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 include/ntkhess/*.h $(DESTDIR)$(PREFIX)/include/ntkhess/
	install -m 755 $(BUILD)/ntkhess $(DESTDIR)$(PREFIX)/bin/
	bash scripts/gen_man.sh $(BUILD)/ntkhess $(DOCDIR) > $(BUILD)/ntkhess.1.install
	install -m 644 $(BUILD)/ntkhess.1.install $(DESTDIR)$(PREFIX)/share/man/man1/ntkhess.1
	install -m 644 docs/*.md $(DESTDIR)$(DOCDIR)/
	install -m 644 docs/img/* $(DESTDIR)$(DOCDIR)/img/

uninstall:
	for n in $(LIBNAMES); do rm -f $(DESTDIR)$(PREFIX)/lib/lib$$n.a $(DESTDIR)$(PREFIX)/lib/lib$$n.so \
	  $(DESTDIR)$(PREFIX)/lib/lib$$n.so.0 $(DESTDIR)$(PREFIX)/lib/pkgconfig/$$n.pc; done
	rm -rf $(DESTDIR)$(PREFIX)/include/ntkhess
	rm -f $(DESTDIR)$(PREFIX)/include/ntkhess.h $(DESTDIR)$(PREFIX)/bin/ntkhess \
	  $(DESTDIR)$(PREFIX)/share/man/man1/ntkhess.1
	rm -rf $(DESTDIR)$(DOCDIR)

clean:
	rm -rf $(BUILD) build-asan build-tsan build-ompblas
