// Running the example programs from tests as a user would: a command line
// with its exit code, stdout and stderr; a process started in the background
// to be signalled; scratch directories and a small text file to train on.
// The programs are found beside the test binary (build/, build/asan/, ...).
#pragma once

#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

namespace ember::testing {

inline std::string program(const std::string& name) {
  return (std::filesystem::read_symlink("/proc/self/exe").parent_path() / name).string();
}

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// A fresh empty directory under the system temp dir, removed at scope exit.
struct ScratchDir {
  std::filesystem::path path;
  explicit ScratchDir(const std::string& name)
      : path(std::filesystem::temp_directory_path() / ("ember_cli_" + name + "_" + std::to_string(getpid()))) {
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~ScratchDir() { std::filesystem::remove_all(path); }
  std::string operator/(const std::string& child) const { return (path / child).string(); }
};

struct Result {
  int exit_code = -1;  // 128 + n when killed by signal n
  std::string out, err;
};

// Runs a shell command line with stdout and stderr captured separately.
inline Result run(const std::string& command) {
  static int counter = 0;
  const std::string base =
      (std::filesystem::temp_directory_path() / ("ember_cli_io_" + std::to_string(getpid()) + "_" +
                                                 std::to_string(counter++)))
          .string();
  const int status = std::system(("(" + command + ") >" + base + ".out 2>" + base + ".err").c_str());
  Result r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_file(base + ".out");
  r.err = read_file(base + ".err");
  std::filesystem::remove(base + ".out");
  std::filesystem::remove(base + ".err");
  return r;
}

// A program started in the background (stdout and stderr to files), for tests
// that signal it mid-run.
class Background {
 public:
  Background(const std::vector<std::string>& args, const std::string& out_file) {
    pid_ = fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      if (!freopen(out_file.c_str(), "w", stdout) || !freopen((out_file + ".err").c_str(), "w", stderr)) _exit(126);
      std::vector<char*> argv;
      for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
  }
  ~Background() {
    if (pid_ > 0 && !waited_) {
      kill(pid_, SIGKILL);
      wait();
    }
  }
  void signal(int sig) const { kill(pid_, sig); }
  // The exit code (128 + n when killed by signal n).
  int wait() {
    int status = 0;
    waitpid(pid_, &status, 0);
    waited_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  bool running() const {
    int status = 0;
    return waitpid(pid_, &status, WNOHANG) == 0;
  }

 private:
  pid_t pid_ = -1;
  bool waited_ = false;
};

// Polls `done` every 2 ms for up to `seconds`; false on time-out.
template <typename F>
bool wait_for(F&& done, double seconds = 60.0) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (!done()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

// About 20 KB of seeded sentences, a small char vocabulary: quick to train on.
inline std::string write_small_text(const std::string& path) {
  std::string text;
  const char* nouns[] = {"fox", "hen", "owl", "cat", "dog", "cow"};
  const char* verbs[] = {"saw", "chased", "found", "helped"};
  uint32_t x = 12345;
  auto next = [&] { return (x = x * 1103515245u + 12345u) >> 16; };
  while (text.size() < 20000)
    text += std::string("the ") + nouns[next() % 6] + " " + verbs[next() % 4] + " the " + nouns[next() % 6] + ".\n";
  std::ofstream(path) << text;
  return path;
}

// A tiny model that trains in a few milliseconds a step.
inline const char* kTinyModel = "--n-layer 1 --n-head 2 --n-embd 16 --block-size 16 --batch-size 4 --threads 1";

}  // namespace ember::testing
