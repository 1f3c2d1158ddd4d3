# ember's one build entry point. `make help` lists the targets.
#   make            library build/libember.a and the example programs
#   make test       build and run the doctest suite
#   make debug      everything at -O0 -g3 into build/debug (OpenBLAS on one thread)
#   make asan       the whole suite under AddressSanitizer + UBSan
#   make demo       train the toy GPT on the built-in corpus, then sample
#   make bench      ember vs PyTorch training speed and memory, side by side
#   make parity     checkpoints round-trip between ember and PyTorch (same logits, same loss)
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
# GCC 12 at -O3 reports a false stringop-overflow inside fmt 9's own header (fill_t::operator=).
CXXFLAGS += -Wno-stringop-overflow
LDLIBS   += -lopenblas -lfmt -pthread
MAKEFLAGS += --no-print-directory
ifeq ($(MAKELEVEL),0)
ifeq (,$(filter -j%,$(MAKEFLAGS)))
MAKEFLAGS += -j$(shell nproc)
endif
endif

DEB_PACKAGES := g++ make libopenblas-dev libfmt-dev doctest-dev libcli11-dev nlohmann-json3-dev
TORCH_PACKAGES := python3-torch

LIB_SRC  := $(wildcard core/*.cpp core/ops/*.cpp nn/*.cpp train/*.cpp)
TEST_SRC := $(wildcard tests/*.cpp tests/core/*.cpp tests/nn/*.cpp tests/train/*.cpp tests/examples/*.cpp)
EXAMPLES := $(patsubst examples/%.cpp,%,$(wildcard examples/*.cpp))
BENCHES  := $(patsubst bench/%.cpp,%,$(wildcard bench/*.cpp))

LIB_OBJ  := $(LIB_SRC:%.cpp=$(BUILD)/obj/%.o)
TEST_OBJ := $(TEST_SRC:%.cpp=$(BUILD)/obj/%.o)
LIB      := $(BUILD)/libember.a
BINS     := $(EXAMPLES:%=$(BUILD)/%)

.PHONY: all test debug asan deps demo bench parity help clean fuzz
.SECONDARY:  # keep object files that make would otherwise treat as intermediate and delete
.DEFAULT_GOAL := all

all: $(LIB) $(BINS) $(BUILD)/tests

deps:
	@tools/install_deps.sh $(DEB_PACKAGES)

test: all
	$(BUILD)/tests $(TEST_ARGS)

debug:
	@$(MAKE) BUILD=build/debug OPT="-O0 -g3 -DEMBER_DEBUG" all

asan:
	@$(MAKE) BUILD=build/asan OPT="-O1 -g -march=native -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined -DEMBER_NO_STORAGE_CACHE" LDFLAGS="-fsanitize=address,undefined" all
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 build/asan/tests $(TEST_ARGS)

demo: all
	$(BUILD)/gpt train --overwrite

bench: all $(BENCHES:%=$(BUILD)/bench/%)
	@tools/install_deps.sh $(TORCH_PACKAGES)
	/usr/bin/python3 bench/run_bench.py --build $(BUILD) $(BENCH_ARGS)

parity: all
	@tools/install_deps.sh $(TORCH_PACKAGES)
	/usr/bin/python3 tests/reference/interop.py --build $(BUILD)

help:
	@sed -n '1,11p' Makefile

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
