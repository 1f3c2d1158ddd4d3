// A scratch directory for one test: made under the system's temp directory
// with a name no other test or process shares (label, process id, a random
// number), and removed with everything in it when it goes out of scope.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>

namespace ember::testing {

struct TempDir {
  std::filesystem::path path;

  explicit TempDir(const std::string& label = "test")
      : path(std::filesystem::temp_directory_path() / ("ember_" + label + "_" + std::to_string(getpid()) + "_" +
                                                       std::to_string(std::random_device{}()))) {
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;  // a destructor must not throw; a leftover scratch directory is harmless
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  // The path of `child` inside the directory (the directory itself for "").
  std::string str(const std::string& child = "") const { return (path / child).string(); }
  std::string operator/(const std::string& child) const { return str(child); }
  // Writes `text` to the file `name` inside the directory and returns its path.
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name, std::ios::binary) << text;
    return str(name);
  }
};

}  // namespace ember::testing
