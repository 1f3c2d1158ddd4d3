// The doctest runner; the test cases live beside it in tests/core, tests/nn and tests/train.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
