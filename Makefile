# ember's one build entry point. `make help` lists the targets.
#   make              library build/libember.a, the example programs and the test binary
#   make test         build and run the doctest suite (gdb replays docs/debugging.md), then check `make install`
#   make debug        library and programs at -O0 -g3 into build/debug (one thread, the naive matmul)
#   make debug-tests  the same plus the test binary, build/debug/tests
#   make asan         the whole suite under AddressSanitizer + UBSan
#   make demo         train the toy GPT on the built-in corpus, then sample
#   make bench        ember vs PyTorch training speed and memory, side by side
#   make parity       checkpoints round-trip between ember and PyTorch (same logits, same loss)
#   make install      libember.a, the headers and ember.pc (pkg-config) under PREFIX=/usr/local
#   make fuzz         libFuzzer (clang-14) on every reader of untrusted bytes, FUZZ_SECONDS each
# Variables: CXX=clang++-14 (or g++, the default), BUILD=build/clang (where it all goes),
# EMBER_GEMM=naive|openblas|ember (the matmul kernel compiled in as the default; the
# EMBER_GEMM environment variable still overrides it when a program runs).
# Missing Debian packages are installed with apt-get first (as root or via sudo).

CXX      ?= g++
BUILD    ?= build
OPT      ?= -O3 -march=native
CXXFLAGS ?= $(OPT)
CXXFLAGS += -std=c++20 -Wall -Wextra -pthread -I. -MMD -MP
# ember never enables floating-point traps nor reads errno after maths calls;
# telling GCC so lets it if-convert and vectorise loops with selects (exp,
# GELU) and use vector sqrt (Adam). Results are unchanged.
CXXFLAGS += -fno-trapping-math -fno-math-errno
# clang takes the same flags but GCC's own warning switches. The compiler's
# Debian package comes with the others: clang++-14 is in clang-14 (it uses
# GCC's libstdc++, so g++ stays on the list).
ifeq ($(findstring clang,$(CXX)),)
# GCC 12 at -O3 reports a false stringop-overflow inside fmt 9's own header (fill_t::operator=).
CXXFLAGS += -Wno-stringop-overflow
# At -O1 with the sanitizers GCC 12 reports maybe-uninitialized inside
# libstdc++'s own std::regex (a false positive of the instrumented build).
ASAN_WARN := -Wno-maybe-uninitialized
else
CXX_PACKAGE := $(patsubst clang++%,clang%,$(notdir $(lastword $(CXX))))
endif
LDLIBS   += -lopenblas -lfmt -pthread
MAKEFLAGS += --no-print-directory
ifeq ($(MAKELEVEL),0)
ifeq (,$(filter -j%,$(MAKEFLAGS)))
MAKEFLAGS += -j$(shell nproc)
endif
endif

DEB_PACKAGES := g++ $(CXX_PACKAGE) make libopenblas-dev libfmt-dev doctest-dev libcli11-dev nlohmann-json3-dev \
                pkg-config
TORCH_PACKAGES := python3-torch
# make test drives gdb through docs/debugging.md, renders a graph with dot and checks SVG with xmllint.
TEST_PACKAGES := gdb graphviz libxml2-utils
# Debug builds: fmt's headers compile themselves at -Og by a pragma; their
# location lists make gdb trust every function's entry in those files and stop
# on opening lines with unset arguments, so the pragma is turned off.
DEBUG_OPT := -O0 -g3 -DEMBER_DEBUG '-DFMT_GCC_PRAGMA(x)='

# `make EMBER_GEMM=naive` compiles that default kernel into core/ops/blas.o;
# set only in the environment, EMBER_GEMM is left to the programs at run time.
# blas.o depends on a stamp file that changes with the setting, so switching
# rebuilds it.
GEMM_KERNELS := naive openblas ember
ifeq ($(origin EMBER_GEMM),command line)
ifneq ($(EMBER_GEMM),$(filter $(GEMM_KERNELS),$(firstword $(EMBER_GEMM))))
$(error EMBER_GEMM=$(EMBER_GEMM): unknown matmul kernel (expected naive, openblas or ember))
endif
GEMM_DEFAULT := $(EMBER_GEMM)
endif
GEMM_STAMP := $(BUILD)/obj/gemm_default

# make install: the static library, the public headers (core/, nn/, train/;
# core/ops/ is internal) and a pkg-config file. Headers keep their folders
# under include/ember, so `#include "core/ember.h"` works as it does here.
PREFIX  ?= /usr/local
VERSION := 0.1.0
PUBLIC_HEADERS := $(wildcard core/*.h nn/*.h train/*.h)

LIB_SRC  := $(wildcard core/*.cpp core/ops/*.cpp nn/*.cpp train/*.cpp)
TEST_SRC := $(wildcard tests/*.cpp tests/core/*.cpp tests/nn/*.cpp tests/train/*.cpp tests/examples/*.cpp)
EXAMPLES := $(patsubst examples/%.cpp,%,$(wildcard examples/*.cpp))
BENCHES  := $(patsubst bench/%.cpp,%,$(wildcard bench/*.cpp))

LIB_OBJ  := $(LIB_SRC:%.cpp=$(BUILD)/obj/%.o)
TEST_OBJ := $(TEST_SRC:%.cpp=$(BUILD)/obj/%.o)
LIB      := $(BUILD)/libember.a
BINS     := $(EXAMPLES:%=$(BUILD)/%)

.PHONY: all programs test debug debug-programs debug-tests asan deps demo bench parity install install-check help clean fuzz FORCE
.SECONDARY:  # keep object files that make would otherwise treat as intermediate and delete
.DEFAULT_GOAL := all

all: programs $(BUILD)/tests

programs: $(LIB) $(BINS)

deps:
	@tools/install_deps.sh $(DEB_PACKAGES)

# The suite also replays docs/debugging.md in gdb on the debug programs in $(BUILD)/debug.
test: all debug-programs
	@tools/install_deps.sh $(TEST_PACKAGES)
	EMBER_DEBUG_PROGRAMS=$(BUILD)/debug $(BUILD)/tests $(TEST_ARGS)
	@$(MAKE) install-check

debug:
	@$(MAKE) BUILD=build/debug OPT="$(DEBUG_OPT)" programs

# What make debug builds, beside the current BUILD (build/debug, build/clang/debug, ...).
debug-programs:
	@$(MAKE) BUILD=$(BUILD)/debug OPT="$(DEBUG_OPT)" programs

debug-tests:
	@$(MAKE) BUILD=build/debug OPT="$(DEBUG_OPT)" all

asan:
	@$(MAKE) BUILD=build/asan OPT="-O1 -g -march=native -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined -DEMBER_NO_STORAGE_CACHE $(ASAN_WARN)" LDFLAGS="-fsanitize=address,undefined" all
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 build/asan/tests $(TEST_ARGS)

demo: all
	$(BUILD)/gpt train --overwrite

bench: all $(BENCHES:%=$(BUILD)/bench/%)
	@tools/install_deps.sh $(TORCH_PACKAGES)
	/usr/bin/python3 bench/run_bench.py --build $(BUILD) $(BENCH_ARGS)

parity: all
	@tools/install_deps.sh $(TORCH_PACKAGES)
	/usr/bin/python3 tests/reference/interop.py --build $(BUILD)

install: $(LIB)
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig $(addprefix $(DESTDIR)$(PREFIX)/include/ember/,core nn train)
	install -m 644 $(LIB) $(DESTDIR)$(PREFIX)/lib/libember.a
	$(foreach d,core nn train,install -m 644 $(filter $(d)/%,$(PUBLIC_HEADERS)) $(DESTDIR)$(PREFIX)/include/ember/$(d) &&) true
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' tools/ember.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/ember.pc

# Installs into a temporary prefix and builds an out-of-tree program with
# pkg-config's flags alone; reruns only when what it installs has changed.
install-check: $(BUILD)/install-check.ok

$(BUILD)/install-check.ok: $(LIB) $(PUBLIC_HEADERS) tools/ember.pc.in tools/check_install.sh tests/install/xor_mlp.cpp | deps
	tools/check_install.sh "$(MAKE)" "$(BUILD)" "$(CXX)"
	@touch $@

help:
	@sed -n '1,15p' Makefile

clean:
	rm -rf build

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/tests: $(TEST_OBJ) $(LIB)
	$(CXX) $(LDFLAGS) -o $@ $(TEST_OBJ) $(LIB) $(LDLIBS)

$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

$(BUILD)/%: $(BUILD)/obj/examples/%.o $(LIB)
	$(CXX) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

$(BUILD)/obj/%.o: %.cpp | deps
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -c $< -o $@

$(BUILD)/obj/core/ops/blas.o: CXXFLAGS += $(if $(GEMM_DEFAULT),-DEMBER_GEMM_DEFAULT='"$(GEMM_DEFAULT)"')
$(BUILD)/obj/core/ops/blas.o: $(GEMM_STAMP)

$(GEMM_STAMP): FORCE
	@mkdir -p $(dir $@)
	@echo '$(GEMM_DEFAULT)' | cmp -s - $@ || echo '$(GEMM_DEFAULT)' > $@

-include $(LIB_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(EXAMPLES:%=$(BUILD)/obj/examples/%.d) $(BENCHES:%=$(BUILD)/obj/bench/%.d)

# `make fuzz`: libFuzzer (clang-14) on every reader of untrusted bytes, each
# target for FUZZ_SECONDS; tests/fuzz/fuzz_targets.h lists them.
FUZZ_TARGETS := safetensors tokenizer_json config_json trainer_json bpe_encode
FUZZ_SECONDS ?= 60
FUZZ_FLAGS := -O1 -g -march=native -fsanitize=address,undefined -fno-sanitize-recover=undefined \
              -DEMBER_NO_STORAGE_CACHE -Wno-unknown-warning-option

fuzz:
	@tools/install_deps.sh clang-14 libclang-rt-14-dev $(DEB_PACKAGES)
	@$(MAKE) BUILD=build/fuzz CXX=clang++-14 OPT="$(FUZZ_FLAGS) -fsanitize=fuzzer-no-link" build/fuzz/libember.a
	@$(MAKE) $(FUZZ_TARGETS:%=build/fuzz/fuzz_%)
	tools/run_fuzz.sh build/fuzz $(FUZZ_SECONDS) $(FUZZ_TARGETS)

build/fuzz/fuzz_%: tests/fuzz/fuzz_main.cpp tests/fuzz/fuzz_targets.h build/fuzz/libember.a
	clang++-14 -std=c++20 -I. $(FUZZ_FLAGS) -fsanitize=fuzzer -DEMBER_FUZZ_TARGET=$* $< build/fuzz/libember.a \
	  -o $@ $(LDLIBS)

# ---- MPI (issue #13) -------------------------------------------------------
# `make mpi` installs OpenMPI and builds build/mpi/gpt: the same program, able
# to train across processes under mpirun (README.md). Only
# train/distributed.cpp differs (compiled with -DEMBER_MPI into a copy of
# libember.a); every other object is the default build's. The default build
# and `make test` need no MPI.
#   make test-mpi    2-rank runs against one process, a killed rank, mismatched ranks (tests/mpi)
#   make bench-mpi   2 ranks x 1 thread against 1 process x 2 threads, and MPI_Allreduce against size
MPI_PACKAGES := openmpi-bin libopenmpi-dev
MPI_BUILD    := $(BUILD)/mpi
MPI_CFLAGS    = $(shell mpicc --showme:compile) -DOMPI_SKIP_MPICXX -DMPICH_SKIP_MPICXX
MPI_LIBS      = $(shell mpicc --showme:link)
MPI_TEST_OBJ := $(patsubst %.cpp,$(BUILD)/obj/%.o,tests/main.cpp $(wildcard tests/mpi/*.cpp))
MPI_BENCHES  := bench_gpt bench_allreduce

.PHONY: mpi test-mpi bench-mpi
mpi:
	@tools/install_deps.sh $(MPI_PACKAGES)
	@$(MAKE) $(BUILD)/gpt $(MPI_BUILD)/gpt $(MPI_BUILD)/tests_mpi $(MPI_BENCHES:%=$(MPI_BUILD)/bench/%)

test-mpi: mpi
	$(MPI_BUILD)/tests_mpi $(TEST_ARGS)

bench-mpi: mpi
	/usr/bin/python3 bench/run_bench_mpi.py --build $(BUILD) $(BENCH_ARGS)

$(MPI_BUILD)/obj/train/distributed.o: train/distributed.cpp | deps
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -DEMBER_MPI $(MPI_CFLAGS) -c $< -o $@

$(MPI_BUILD)/libember.a: $(LIB) $(MPI_BUILD)/obj/train/distributed.o
	cp $(LIB) $@.tmp
	ar rs $@.tmp $(MPI_BUILD)/obj/train/distributed.o
	mv $@.tmp $@

$(MPI_BUILD)/gpt: $(BUILD)/obj/examples/gpt.o $(MPI_BUILD)/libember.a
	$(CXX) $(LDFLAGS) -o $@ $< $(MPI_BUILD)/libember.a $(LDLIBS) $(MPI_LIBS)

$(MPI_BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(MPI_BUILD)/libember.a
	@mkdir -p $(dir $@)
	$(CXX) $(LDFLAGS) -o $@ $< $(MPI_BUILD)/libember.a $(LDLIBS) $(MPI_LIBS)

$(MPI_BUILD)/tests_mpi: $(MPI_TEST_OBJ) $(LIB)
	$(CXX) $(LDFLAGS) -o $@ $(MPI_TEST_OBJ) $(LIB) $(LDLIBS)

-include $(MPI_BUILD)/obj/train/distributed.d $(MPI_TEST_OBJ:.o=.d)
