// build/gpt on large texts and on its token cache, as a user meets them: a
// short run on a 64 MB text stays within the memory budget (peak
// resident memory of the gpt process, from wait4), and the cache is reused,
// rebuilt when the text changes or is damaged, and found again by --resume.
#include <sys/ptrace.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "tests/examples/process.h"

using namespace ember::testing;
namespace fs = std::filesystem;

namespace {

// VmHWM (bytes) from /proc/PID/status: the peak resident memory of PID's current program.
int64_t vm_hwm(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);)
    if (line.starts_with("VmHWM:")) return std::stoll(line.substr(6)) * 1024;  // "VmHWM:   23360 kB"
  return -1;
}

// Peak resident memory (bytes) of the program `command` runs, its output thrown
// away, or -1 where ptrace is not permitted; REQUIREs exit code 0. The peak is read from /proc as the program stops
// at its exit under ptrace: wait4's ru_maxrss would also count the memory of
// this test process, which a forked child starts out sharing.
int64_t peak_rss(const std::string& command) {
  std::istringstream in(command);
  std::vector<std::string> args;
  for (std::string a; in >> a;) args.push_back(a);
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    if (!freopen("/dev/null", "w", stdout) || ptrace(PTRACE_TRACEME, 0, nullptr, nullptr) != 0) _exit(126);
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());  // stops with SIGTRAP once the program is loaded
    _exit(127);
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 126) return -1;  // no ptrace here (a sandbox)
  REQUIRE_MESSAGE(WIFSTOPPED(status), command, " did not start (exit code ", WEXITSTATUS(status), ")");
  REQUIRE(ptrace(PTRACE_SETOPTIONS, pid, nullptr, PTRACE_O_TRACEEXIT) == 0);
  int64_t peak = -1;
  for (int pass_on = 0;;) {
    REQUIRE(ptrace(PTRACE_CONT, pid, nullptr, pass_on) == 0);
    REQUIRE(waitpid(pid, &status, 0) == pid);
    if (!WIFSTOPPED(status)) break;
    const bool exiting = status >> 8 == (SIGTRAP | (PTRACE_EVENT_EXIT << 8));
    if (exiting) peak = vm_hwm(pid);  // its memory is still mapped here
    pass_on = exiting ? 0 : WSTOPSIG(status);
  }
  REQUIRE_MESSAGE((WIFEXITED(status) && WEXITSTATUS(status) == 0), command);
  REQUIRE(peak > 0);
  return peak;
}

// `bytes` of seeded sentences (a small char vocabulary), written a megabyte at a time.
void write_large_text(const std::string& path, int64_t bytes) {
  const char* words[] = {"the", "fox", "hen", "owl", "saw", "chased", "found", "over", "and", "then", "its", "den"};
  std::ofstream out(path, std::ios::binary);
  uint32_t x = 2024;
  std::string block;
  for (int64_t written = 0; written < bytes; written += static_cast<int64_t>(block.size())) {
    block.clear();
    while (block.size() < (1 << 20)) {
      for (int w = 0; w < 8; ++w) {
        x = x * 1103515245u + 12345u;
        block += words[(x >> 16) % 12];
        block += w == 7 ? ".\n" : " ";
      }
    }
    out << block;
  }
}

const std::string kShortRun = std::string(kTinyModel) + " --max-iters 4 --eval-interval 4 --eval-iters 2";

}  // namespace

// The bound is the goal, 2.5 bytes a character; reading the text whole
// and keeping int64 ids cost 9. The growth over a run on a 20 KB text must
// stay under 0.5 bytes a character: holding the text alone would cost 1.
// 64 MB keeps the run near a second and dwarfs the process's fixed ~10 MB.
TEST_CASE("gpt train: a short run on a 64 MB text peaks under 2.5 bytes a character; eval on a text too") {
#if defined(__SANITIZE_ADDRESS__)
  MESSAGE("skipped under AddressSanitizer: its shadow memory and quarantine are not the program's");
  return;
#endif
  ScratchDir dir("memory");
  const std::string gpt = program("gpt"), big = dir / "big.txt", small = write_small_text(dir / "small.txt");
  constexpr int64_t kBytes = int64_t{64} << 20;
  write_large_text(big, kBytes);
  const int64_t chars = static_cast<int64_t>(fs::file_size(big));  // ASCII: one byte a character
  const int64_t base = peak_rss(gpt + " train --data " + small + " --out " + (dir / "small_run") + " " + kShortRun);
  if (base < 0) {
    MESSAGE("skipped: ptrace is not permitted here, so the peak cannot be read");
    return;
  }
  const int64_t peak = peak_rss(gpt + " train --data " + big + " --out " + (dir / "run") + " " + kShortRun);
  MESSAGE("peak " << peak / 1e6 << " MB on " << chars / 1e6 << " MB of text: " << double(peak) / chars
                  << " bytes/char; " << double(peak - base) / chars << " over a 20 KB text's run");
  CHECK(peak <= chars * 5 / 2);
  CHECK(peak - base <= chars / 2);
  CHECK(fs::file_size(dir / "run/tokens/tokens.bin") == static_cast<uintmax_t>(chars));  // one uint8 id a character
  // gpt eval on a text that is not cached keeps uint8 ids in memory, 1 byte a
  // character: checked on a 16 MB prefix, since eval's forward passes over the
  // whole val split cost a second for every 16 MB.
  const int64_t part = int64_t{16} << 20;
  {
    std::ifstream in(big, std::ios::binary);
    std::string head(static_cast<size_t>(part), '\0');
    in.read(head.data(), part);
    std::ofstream(dir / "part.txt", std::ios::binary) << head;
  }
  CHECK(peak_rss(gpt + " eval --threads 1 --ckpt " + (dir / "run") + " --data " + (dir / "part.txt")) <= part * 5 / 2);
}

TEST_CASE("gpt train: the token cache is reused, rebuilt when the text changes or is damaged, kept by --resume") {
  ScratchDir dir("cache");
  const std::string gpt = program("gpt"), text = write_small_text(dir / "text.txt"), out = dir / "run";
  const std::string train = gpt + " train --data " + text + " --out " + out + " " + kShortRun;
  const std::string tokens = out + "/tokens/tokens.bin";
  Result r = run(train);
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.find("ids in ") != std::string::npos);  // "tokens: 0.0 MB of text -> 20010 uint8 ids in ..."
  CHECK(r.out.find(", cached in " + out + "/tokens\n") != std::string::npos);
  const std::string first_sample = r.out.substr(r.out.find("sample:"));
  const auto written = fs::last_write_time(tokens);

  r = run(train + " --overwrite");
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.find("from " + tokens + " ('" + text + "' is unchanged)") != std::string::npos);
  CHECK(fs::last_write_time(tokens) == written);
  CHECK(r.out.substr(r.out.find("sample:")) == first_sample);  // the same tokens train the same model

  r = run(gpt + " train --resume " + out + " --max-iters 6");
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.find("is unchanged)") != std::string::npos);
  CHECK(fs::last_write_time(tokens) == written);

  fs::last_write_time(text, fs::last_write_time(text) + std::chrono::seconds(3));
  r = run(train + " --overwrite");
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.find("tokens: rebuilding the cache in " + out +
                   "/tokens: the text changed since (its size or modification time differ)\n") != std::string::npos);

  std::fstream(tokens, std::ios::in | std::ios::out | std::ios::binary).put('\x7F');
  r = run(train + " --overwrite");
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.find("tokens.bin does not match its checksum (corrupt)\n") != std::string::npos);
  CHECK(r.out.substr(r.out.find("sample:")) == first_sample);
}
