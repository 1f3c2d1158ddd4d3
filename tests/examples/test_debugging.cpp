// docs/debugging.md, run as written: every ```gdb block of the guide is one gdb
// session. Its `(gdb) ` lines are fed to gdb in batch mode on the debug
// programs (-O0 -g3, $(BUILD)/debug, built by `make test`), and each other line
// must appear in gdb's output, in order: "..." in a line matches any text, a
// line of "..." alone marks output left out, and numbers may differ in their
// last printed digit (the matmul kernel changes rounding). Then the editor's
// launch configurations (.vscode/) are checked to name real programs and tasks.
#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "tests/examples/process.h"
#include "tests/external_tools.h"

namespace fs = std::filesystem;
using namespace ember::testing;

namespace {

// The checkout: the first directory above the test binary holding the guide.
fs::path repo_root() {
  for (fs::path d = fs::read_symlink("/proc/self/exe").parent_path(); d != d.parent_path(); d = d.parent_path())
    if (fs::exists(d / "docs/debugging.md") && fs::exists(d / "tools/gdb/ember.py")) return d;
  return {};
}

// Where the debug programs are: $EMBER_DEBUG_PROGRAMS (set by make test, which
// builds them), else debug/ beside the test binary, else the binary's own
// directory when it is a debug build itself. "" when they are not there.
std::string debug_programs(bool& required) {
  const auto has_programs = [](const fs::path& d) { return fs::exists(d / "embeddings") && fs::exists(d / "gpt"); };
  const char* env = std::getenv("EMBER_DEBUG_PROGRAMS");
  required = env != nullptr;
  if (env) return has_programs(env) ? fs::absolute(env).string() : "";
  const fs::path exe_dir = fs::read_symlink("/proc/self/exe").parent_path();
  if (has_programs(exe_dir / "debug")) return (exe_dir / "debug").string();
  if (exe_dir.filename() == "debug" && has_programs(exe_dir)) return exe_dir.string();
  return "";
}

struct Session {
  std::string command_line;  // "$ gdb ..." without the "$ "
  std::vector<std::string> commands, expected;
};

std::vector<Session> sessions_in(const std::string& guide) {
  std::vector<Session> sessions;
  std::istringstream in(guide);
  bool inside = false;
  for (std::string line; std::getline(in, line);) {
    if (!inside) {
      inside = line == "```gdb";
      if (inside) sessions.emplace_back();
      continue;
    }
    if (line == "```") {
      inside = false;
    } else if (line.starts_with("$ gdb")) {
      sessions.back().command_line = line.substr(2);
    } else if (line.starts_with("(gdb) ")) {
      std::string cmd = line.substr(6);
      if (const size_t note = cmd.find("  #"); note != std::string::npos) cmd.erase(note);  // the guide's remarks
      while (!cmd.empty() && cmd.back() == ' ') cmd.pop_back();
      sessions.back().commands.push_back(cmd);
    } else if (line != "...") {
      sessions.back().expected.push_back(line);
    }
  }
  return sessions;
}

// A line as tokens: numbers, single characters, and (in the guide's lines) "..." wildcards.
struct Token {
  enum Kind { Char, Number, Any } kind;
  char c = 0;
  double value = 0;
};

std::vector<Token> tokens(const std::string& s, bool wildcards) {
  std::vector<Token> out;
  for (size_t i = 0; i < s.size();) {
    const auto digit = [&](size_t k) { return k < s.size() && std::isdigit(static_cast<unsigned char>(s[k])); };
    const bool after_word = i > 0 && (std::isalnum(static_cast<unsigned char>(s[i - 1])) || s[i - 1] == '_');
    if (wildcards && s.compare(i, 3, "...") == 0) {
      out.push_back({Token::Any});
      i += 3;
    } else if (!after_word && (digit(i) || (s[i] == '-' && digit(i + 1)))) {
      char* end = nullptr;
      out.push_back({Token::Number, 0, std::strtod(s.c_str() + i, &end)});
      i = static_cast<size_t>(end - s.c_str());
    } else {
      out.push_back({Token::Char, s[i++]});
    }
  }
  return out;
}

// Characters equal; numbers within the last printed digit of %.4g (2e-3 relative).
bool same(const Token& a, const Token& b) {
  if (a.kind != b.kind) return false;
  if (a.kind == Token::Char) return a.c == b.c;
  return std::abs(a.value - b.value) <= 2e-3 * std::max(std::abs(a.value), std::abs(b.value)) + 1e-6;
}

// Whether a line of gdb's output matches one of the guide's: "..." stands for
// any text, numbers may differ by rounding. Glob matching with backtracking.
bool line_matches(const std::string& want_line, const std::string& got_line) {
  const std::vector<Token> want = tokens(want_line, true), got = tokens(got_line, false);
  size_t w = 0, g = 0, star = std::string::npos, resume = 0;
  while (g < got.size()) {
    if (w < want.size() && want[w].kind == Token::Any) {
      star = w++;
      resume = g;
    } else if (w < want.size() && same(want[w], got[g])) {
      ++w, ++g;
    } else if (star != std::string::npos) {
      w = star + 1;
      g = ++resume;
    } else {
      return false;
    }
  }
  while (w < want.size() && want[w].kind == Token::Any) ++w;
  return w == want.size();
}

// The gdb command line for a session: build/debug/ names the debug programs,
// tools/ the checkout's; the commands go in just before the program. Without
// -x in the guide's line the printers come through auto-load, which the
// session allows for the checkout.
std::string gdb_command(const Session& s, const fs::path& root, const std::string& debug_dir, const std::string& cmds) {
  std::istringstream words(s.command_line);
  std::string word, out = "gdb -nx -batch";
  bool explicit_script = false, commands_added = false;
  words >> word;  // gdb
  while (words >> word) {
    if (word == "-q") continue;
    if (!commands_added && (word == "--args" || word.starts_with("build/debug/"))) {
      out += " -x '" + cmds + "'";
      commands_added = true;
    }
    if (word.starts_with("build/debug/")) word = debug_dir + "/" + word.substr(12);
    if (word.starts_with("tools/")) word = (root / word).string();
    explicit_script = explicit_script || word == "-x";
    out += " '" + word + "'";
  }
  if (!explicit_script) out.insert(14, " -iex 'add-auto-load-safe-path " + root.string() + "'");
  return out;
}

}  // namespace

TEST_CASE("debugging guide: each gdb session in docs/debugging.md prints what the guide shows") {
  const fs::path root = repo_root();
  REQUIRE_MESSAGE(!root.empty(), "docs/debugging.md not found above the test binary");
  bool required = false;
  const std::string debug_dir = debug_programs(required);
  if (!have_program("gdb") || (debug_dir.empty() && !required)) {
    const std::string missing =
        debug_dir.empty() ? "no debug programs beside the test binary (make debug-programs)" : "gdb is not installed";
    MESSAGE("skipped: " << missing << "; make test builds and installs what this test needs");
    return;
  }
  REQUIRE_MESSAGE(!debug_dir.empty(), "EMBER_DEBUG_PROGRAMS names a directory without the debug programs");
  const std::vector<Session> sessions = sessions_in(read_file(root / "docs/debugging.md"));
  REQUIRE(sessions.size() >= 4);
  ScratchDir dir("gdb_sessions");  // shared: one session may read the core file another wrote
  for (const Session& s : sessions) {
    CAPTURE(s.command_line);
    REQUIRE(s.command_line.starts_with("gdb "));
    REQUIRE(!s.commands.empty());
    std::string script;
    for (const std::string& c : s.commands) script += c + "\n";
    std::ofstream(dir / "commands.gdb") << script;
    // One OpenBLAS thread keeps a core file written by a session small.
    const Result r = run("cd '" + dir.path.string() + "' && OPENBLAS_NUM_THREADS=1 " +
                         gdb_command(s, root, debug_dir, dir / "commands.gdb") + " 2>&1");
    std::vector<std::string> lines;
    std::istringstream out(r.out);
    for (std::string line; std::getline(out, line);) lines.push_back(line);
    size_t next = 0;
    for (const std::string& want : s.expected) {
      size_t i = next;
      while (i < lines.size() && !line_matches(want, lines[i])) ++i;
      CHECK_MESSAGE(i < lines.size(), "gdb did not print (after the lines matched so far):\n  ", want,
                    "\n--- gdb's output ---\n", r.out);
      if (i == lines.size()) break;
      next = i + 1;
    }
  }
}

TEST_CASE("debugging guide: the line matcher accepts rounding and ... but not other text") {
  CHECK(line_matches("values [0.1424, -2.4e-05, ... (32 in all)]", "values [0.1425, -2.4e-05, 7, 8, ... (32 in all)]"));
  CHECK(!line_matches("values [0.1424, 0.1768]", "values [0.1434, 0.1768]"));  // a real difference
  CHECK(!line_matches("Tensor [4, 256]", "Tensor [4, 255]"));
  CHECK(!line_matches("from add #2", "from mul #2"));
  CHECK(line_matches("...hit Breakpoint 1, f (this=..., T=4) at a.cpp:...",
                     "Thread 1 hit Breakpoint 1, f (this=0x7f, T=4) at a.cpp:42"));
  CHECK(!line_matches("...hit Breakpoint 1, f (this=..., T=4) at a.cpp:...",
                      "Thread 1 hit Breakpoint 1, f (this=0x7f, T=93824992975672) at a.cpp:42"));
}

TEST_CASE("editor: .vscode launches the debug programs with ember's printers, built by a task that exists") {
  const fs::path root = repo_root();
  REQUIRE(!root.empty());
  const nlohmann::json launch = nlohmann::json::parse(read_file(root / ".vscode/launch.json"));
  const nlohmann::json tasks = nlohmann::json::parse(read_file(root / ".vscode/tasks.json"));
  std::vector<std::string> labels;
  for (const auto& t : tasks.at("tasks")) labels.push_back(t.at("label"));
  const std::string makefile = read_file(root / "Makefile");
  for (const auto& t : tasks.at("tasks")) {
    const std::string command = t.at("command");  // make TARGET: the target exists
    REQUIRE(command.starts_with("make "));
    const std::string rule = command.substr(5).append(":");
    CHECK(makefile.find(rule) != std::string::npos);
  }
  std::vector<std::string> programs;
  for (const auto& c : launch.at("configurations")) {
    CAPTURE(c.dump());
    CHECK(c.at("type") == "cppdbg");
    CHECK(c.at("MIMode") == "gdb");
    CHECK(std::find(labels.begin(), labels.end(), c.at("preLaunchTask").get<std::string>()) != labels.end());
    const std::string program = c.at("program");
    REQUIRE(program.starts_with("${workspaceFolder}/build/debug/"));
    CHECK(fs::exists(root / "examples" / (program.substr(program.rfind('/') + 1) + ".cpp")));
    programs.push_back(program.substr(program.rfind('/') + 1));
    bool sources_printers = false;
    for (const auto& setup : c.at("setupCommands"))
      sources_printers |= setup.at("text") == "source ${workspaceFolder}/tools/gdb/ember.py";
    CHECK(sources_printers);
  }
  CHECK(std::find(programs.begin(), programs.end(), "embeddings") != programs.end());
  CHECK(std::find(programs.begin(), programs.end(), "gpt") != programs.end());
}
