// libFuzzer entry point for one target of tests/fuzz/fuzz_targets.h, chosen
// at compile time: clang++ -fsanitize=fuzzer -DEMBER_FUZZ_TARGET=safetensors.
// Built and run by `make fuzz`.
#include "tests/fuzz/fuzz_targets.h"

#ifndef EMBER_FUZZ_TARGET
#error "define EMBER_FUZZ_TARGET as one of the functions in tests/fuzz/fuzz_targets.h"
#endif

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return ember::fuzz::EMBER_FUZZ_TARGET(data, size);
}
