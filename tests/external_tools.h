// The outside programs some tests drive: gdb (the debugging walkthrough), dot
// (rendering graph_dot's output) and xmllint (checking the SVG files parse as
// XML). `make test` installs them (TEST_PACKAGES in the Makefile); a test run
// elsewhere skips those checks with a message naming the missing program.
#pragma once

#include <doctest/doctest.h>

#include <string>

#include "tests/examples/process.h"

namespace ember::testing {

inline bool have_program(const std::string& name) { return run("command -v " + name).exit_code == 0; }

// "" when the file is well-formed XML, else xmllint's complaint.
inline std::string xml_problem(const std::string& path) {
  const Result r = run("xmllint --noout '" + path + "'");
  return r.exit_code == 0 ? "" : "xmllint exit " + std::to_string(r.exit_code) + ": " + r.err;
}

}  // namespace ember::testing
