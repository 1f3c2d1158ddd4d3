// build/mpi/gpt under mpirun (make test-mpi, after make mpi; not part of
// make test): 2 ranks train what one process trains, their checkpoints
// resume in one process and back, a killed rank ends the job naming it,
// ranks that disagree or fail stop with one clear line, and every byte of
// the job stays on this machine (tools/mpi_local.sh). Run from the
// repository root.
#include <dirent.h>
#include <fmt/format.h>
#include <sys/wait.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "tests/examples/process.h"

using namespace ember::testing;
namespace fs = std::filesystem;

namespace {

// mpirun with OpenMPI kept on this machine (shared memory, loopback TCP).
std::string mpi_local() {
  const fs::path script = fs::current_path() / "tools" / "mpi_local.sh";
  REQUIRE_MESSAGE(fs::exists(script), "run from the repository root (make test-mpi)");
  return script.string();
}

std::string mpirun(int ranks) { return fmt::format("{} mpirun -np {} ", mpi_local(), ranks); }

// A small model whose steps take milliseconds; threads and batch are given per run.
const std::string kModel = "--n-layer 2 --n-head 2 --n-embd 32 --block-size 32 --eval-iters 4";
const std::string kBatch = " --batch-size 8";

struct Logged {
  int64_t step;
  std::string key;  // train_loss, val_loss or train_loss_estimate
  double value;
};

// Every loss in a run's metrics.jsonl, in order (the timing field left out).
std::vector<Logged> losses(const std::string& run_dir) {
  std::vector<Logged> out;
  std::istringstream in(read_file(run_dir + "/metrics.jsonl"));
  for (std::string line; std::getline(in, line);) {
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object()) break;  // a line being written
    for (const char* key : {"train_loss", "val_loss", "train_loss_estimate"})
      if (j.contains(key)) out.push_back({j["step"].get<int64_t>(), key, j[key].get<double>()});
  }
  return out;
}

// The two runs logged the same losses at the same steps, each within
// `rel` of the other (0: the same bits).
void check_same_losses(const std::string& a, const std::string& b, double rel) {
  const std::vector<Logged> la = losses(a), lb = losses(b);
  REQUIRE(la.size() == lb.size());
  REQUIRE(!la.empty());
  for (size_t i = 0; i < la.size(); ++i) {
    CAPTURE(la[i].step);
    CAPTURE(la[i].key);
    REQUIRE(la[i].step == lb[i].step);
    REQUIRE(la[i].key == lb[i].key);
    if (rel == 0.0)
      CHECK(la[i].value == lb[i].value);
    else
      CHECK(std::fabs(la[i].value - lb[i].value) <= rel * std::fabs(lb[i].value));
  }
}

int64_t latest_step(const std::string& run_dir) {
  const std::string name = read_file(run_dir + "/latest");
  return name.starts_with("ckpt-") ? std::stoll(name.substr(5)) : -1;
}

// A shell command line run in the background (stdout and stderr to `log`),
// for jobs that are signalled mid-run. exec keeps the pid mpirun's.
class Job {
 public:
  Job(const std::string& command, const std::string& log) {
    pid_ = fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      execl("/bin/sh", "sh", "-c", ("exec " + command + " >" + log + " 2>&1").c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
  }
  ~Job() {
    if (!done_) {
      kill(pid_, SIGKILL);
      wait_within(60);
    }
  }
  pid_t pid() const { return pid_; }
  // The exit code (128 + n when killed by signal n), or -1 when still
  // running after `seconds`.
  int wait_within(double seconds) {
    int status = 0;
    const bool ended = wait_for([&] { return waitpid(pid_, &status, WNOHANG) == pid_; }, seconds);
    if (!ended) return -1;
    done_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  pid_t pid_ = -1;
  bool done_ = false;
};

// The environment of a process, one VAR=value a string.
std::vector<std::string> environment(pid_t pid) {
  std::vector<std::string> vars;
  std::istringstream in(read_file(fmt::format("/proc/{}/environ", pid)));
  for (std::string v; std::getline(in, v, '\0');) vars.push_back(v);
  return vars;
}

bool has(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

// The ranks mpirun started, by rank (children whose environment names one).
std::map<int, pid_t> ranks_of(pid_t mpirun) {
  std::map<int, pid_t> ranks;
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::string stat = read_file(e.path() / "stat");  // pid (comm) state ppid ...
    const size_t close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream fields(stat.substr(close + 2));
    std::string state;
    pid_t ppid = 0;
    fields >> state >> ppid;
    if (ppid != mpirun) continue;
    for (const std::string& v : environment(std::stoi(name)))
      if (v.starts_with("OMPI_COMM_WORLD_RANK=")) ranks[std::stoi(v.substr(21))] = std::stoi(name);
  }
  return ranks;
}

struct Connection {
  std::string local, remote, state;  // as /proc/net/tcp writes them (hex)
};

// The TCP sockets the processes hold, from /proc/PID/fd and /proc/net/tcp{,6}.
std::vector<Connection> tcp_sockets(const std::vector<pid_t>& pids) {
  std::set<std::string> inodes;
  for (pid_t pid : pids)
    for (const auto& fd : fs::directory_iterator(fmt::format("/proc/{}/fd", pid))) {
      std::error_code ec;
      const std::string target = fs::read_symlink(fd.path(), ec).string();
      if (target.starts_with("socket:[")) inodes.insert(target.substr(8, target.size() - 9));
    }
  std::vector<Connection> out;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::istringstream in(read_file(table));
    std::string line;
    std::getline(in, line);  // the header
    while (std::getline(in, line)) {
      std::istringstream f(line);
      std::string sl, local, remote, state, queues, timer, retr, uid, timeout, inode;
      f >> sl >> local >> remote >> state >> queues >> timer >> retr >> uid >> timeout >> inode;
      if (inodes.count(inode)) out.push_back({local, remote, state});
    }
  }
  return out;
}

// 127.0.0.0/8 (its first byte, last in /proc's host-order hex), ::1, or
// ::ffff:127.x.x.x.
bool loopback(const std::string& address) {
  const std::string ip = address.substr(0, address.find(':'));
  if (ip.size() == 8) return ip.substr(6) == "7F";
  return ip == "00000000000000000000000001000000" ||
         (ip.starts_with("0000000000000000FFFF0000") && ip.substr(30) == "7F");
}

}  // namespace

TEST_CASE("mpirun -np 2 trains what one process trains, and its checkpoints resume with any number of ranks") {
  ScratchDir dir("mpi_same");
  const std::string gpt = program("gpt"), text = write_small_text(dir / "text.txt");
  const std::string args =
      " train --data " + text + " " + kModel + kBatch + " --log-interval 1 --eval-interval 10 --out ";
  auto train = [&](const std::string& how, const std::string& extra, const std::string& out) {
    const Result r = run(how + gpt + args + (dir / out) + " " + extra);
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    return r;
  };
  train("", "--max-iters 20 --threads 1", "one1");
  train("", "--max-iters 20 --threads 2", "one2");
  const Result two = train(mpirun(2), "--max-iters 20 --threads 1", "two");
  // Rank 0 alone prints: one header line, one summary.
  CHECK(std::count(two.out.begin(), two.out.end(), '\n') > 20);
  CHECK(two.out.find("ember: ") == two.out.rfind("ember: "));
  CHECK(two.out.find("trained in ") == two.out.rfind("trained in "));
  // 1 thread runs the batch as one slice and 2 ranks as two: the same sums
  // in another order. float32 rounding in each step's sums, carried through
  // 20 AdamW steps, stays far below the 1e-5 (measured ~1e-7).
  check_same_losses(dir / "two", dir / "one1", 1e-5);
  // 2 ranks of 1 thread cut the batch into the slices of 1 process with 2
  // threads, and a sum of two terms is the same bits in either order.
  check_same_losses(dir / "two", dir / "one2", 0.0);
  // Started without mpirun, build/mpi/gpt is build/gpt.
  train("", "--max-iters 20 --threads 2", "plain");
  const std::string plain_gpt = program("../gpt");
  REQUIRE(run(plain_gpt + args + (dir / "plain2") + " --max-iters 20 --threads 2").exit_code == 0);
  check_same_losses(dir / "plain", dir / "plain2", 0.0);
  // The checkpoint holds no per-rank state: a 2-rank run resumed by one
  // process, and a 1-process run resumed by 2 ranks, repeat one2 exactly.
  train(mpirun(2), "--max-iters 10 --threads 1", "half_two");
  const Result resumed_one = run(gpt + " train --threads 2 --resume " + (dir / "half_two") + " --max-iters 20");
  REQUIRE_MESSAGE(resumed_one.exit_code == 0, resumed_one.err);
  check_same_losses(dir / "half_two", dir / "one2", 0.0);
  train("", "--max-iters 10 --threads 2", "half_one");
  const Result resumed_two =
      run(mpirun(2) + gpt + " train --threads 1 --resume " + (dir / "half_one") + " --max-iters 20");
  REQUIRE_MESSAGE(resumed_two.exit_code == 0, resumed_two.err);
  check_same_losses(dir / "half_one", dir / "one2", 0.0);
}

TEST_CASE("mpirun -np 2 with dropout draws one process's masks, with either random stream") {
  ScratchDir dir("mpi_dropout");
  const std::string gpt = program("gpt"), text = write_small_text(dir / "text.txt");
  for (const std::string rng : {"nanogpt", "ember"}) {
    CAPTURE(rng);
    const std::string args = " train --data " + text + " " + kModel + kBatch + " --dropout 0.2 --rng " + rng +
                             " --max-iters 12 --log-interval 1 --eval-interval 6 --out ";
    const Result one = run(gpt + args + (dir / ("one_" + rng)) + " --threads 2");
    REQUIRE_MESSAGE(one.exit_code == 0, one.err);
    const Result two = run(mpirun(2) + gpt + args + (dir / ("two_" + rng)) + " --threads 1");
    REQUIRE_MESSAGE(two.exit_code == 0, two.err);
    // Different masks would move the losses by far more than rounding; the
    // same masks on the same slices give the same bits (see above).
    check_same_losses(dir / ("two_" + rng), dir / ("one_" + rng), 0.0);
  }
}

TEST_CASE("mpirun: the job talks over loopback only; a killed rank ends it within 30 s, naming the rank") {
  ScratchDir dir("mpi_kill");
  const std::string gpt = program("gpt"), text = write_small_text(dir / "text.txt"), out = dir / "run";
  // The options tools/mpi_local.sh sets are the ones OpenMPI uses.
  const Result info = run(mpi_local() + " ompi_info --all --parsable");
  REQUIRE(info.exit_code == 0);
  for (const char* line :
       {"mca:btl:base:param:btl:value:self,vader", "mca:pml:base:param:pml:value:ob1",
        "mca:btl:tcp:param:btl_tcp_if_include:value:lo", "mca:oob:tcp:param:oob_tcp_if_include:value:lo"})
    CHECK_MESSAGE(info.out.find(line) != std::string::npos, line);
  Job job(mpirun(2) + gpt + " train --data " + text + " " + kModel + kBatch +
              " --threads 1 --max-iters 1000000 --lr-decay-iters 1000000 --eval-interval 20 --out " + out,
          dir / "run.log");
  REQUIRE(wait_for([&] { return latest_step(out) >= 40; }));
  const std::map<int, pid_t> ranks = ranks_of(job.pid());
  REQUIRE(ranks.size() == 2);
  std::vector<pid_t> pids = {job.pid()};
  for (const auto& [rank, pid] : ranks) {
    pids.push_back(pid);
    const std::vector<std::string> env = environment(pid);
    CHECK(has(env, "OMPI_MCA_btl=self,vader"));
    CHECK(has(env, "OMPI_MCA_pml=ob1"));
    CHECK(has(env, "OMPI_MCA_oob_tcp_if_include=lo"));
    CHECK(has(env, "OMPI_MCA_btl_tcp_if_include=lo"));
  }
  // Every TCP connection of mpirun and the ranks (each rank's to mpirun)
  // runs between loopback addresses. (OpenMPI 4.1 binds its listening
  // socket to the wildcard address; it only ever connects over lo.)
  int connected = 0;
  for (const Connection& c : tcp_sockets(pids)) {
    if (c.state == "0A") continue;  // listening
    CAPTURE(c.local);
    CAPTURE(c.remote);
    CHECK(loopback(c.local));
    CHECK(loopback(c.remote));
    ++connected;
  }
  CHECK(connected >= 2);
  const int64_t saved = latest_step(out);
  kill(ranks.at(1), SIGKILL);
  const int code = job.wait_within(30);
  CHECK(code > 0);
  const std::string log = read_file(dir / "run.log");
  CHECK_MESSAGE(log.find("process rank 1 ") != std::string::npos, log);
  // The newest checkpoint is whole: it evaluates and resumes in one process.
  CHECK(latest_step(out) >= saved);
  const Result eval = run(gpt + " eval --threads 1 --ckpt " + out);
  CHECK_MESSAGE(eval.exit_code == 0, eval.err);
  const Result resumed =
      run(gpt + " train --threads 2 --resume " + out + " --max-iters " + std::to_string(latest_step(out) + 2));
  CHECK_MESSAGE(resumed.exit_code == 0, resumed.err);
}

TEST_CASE("mpirun: SIGTERM to one rank stops every rank at the same step with a checkpoint, exit 143") {
  ScratchDir dir("mpi_term");
  const std::string gpt = program("gpt"), text = write_small_text(dir / "text.txt"), out = dir / "run";
  Job job(mpirun(2) + gpt + " train --data " + text + " " + kModel + kBatch +
              " --threads 1 --max-iters 1000000 --lr-decay-iters 1000000 --eval-interval 1000 --out " + out,
          dir / "run.log");
  REQUIRE(wait_for([&] { return fs::exists(out + "/metrics.jsonl") && losses(out).size() > 30; }));
  const std::map<int, pid_t> ranks = ranks_of(job.pid());
  REQUIRE(ranks.size() == 2);
  kill(ranks.at(1), SIGTERM);
  CHECK(job.wait_within(30) == 143);
  const std::string log = read_file(dir / "run.log");
  CHECK_MESSAGE(log.find("stopped by SIGTERM at step ") != std::string::npos, log);
  const int64_t step = latest_step(out);
  CHECK(step > 30);
  CHECK(step % 1000 != 0);  // saved at the stop, not on the schedule
  CHECK(run(gpt + " eval --threads 1 --ckpt " + out).exit_code == 0);
}

TEST_CASE("mpirun: ranks with other flags or another binary stop before training with one line naming the rank") {
  ScratchDir dir("mpi_mismatch");
  const std::string gpt = program("gpt"), text = write_small_text(dir / "text.txt");
  const std::string args =
      " train --data " + text + " " + kModel + kBatch + " --threads 1 --max-iters 5 --out " + (dir / "run");
  const std::string copy = dir / "gpt_copy";
  fs::copy_file(gpt, copy);
  std::ofstream(copy, std::ios::app) << '\n';  // one byte more: still runs, another binary
  fs::permissions(copy, fs::perms::owner_all);
  const std::string one = mpi_local() + " mpirun -np 1 ";
  struct Case {
    std::string rank1, says;
  };
  for (const Case& c : {Case{gpt + args + " --lr 0.002", "mpi: rank 1 was started with other settings than rank 0"},
                        Case{copy + args, "mpi: rank 1 runs another build of gpt than rank 0"}}) {
    CAPTURE(c.says);
    const Result r = run(one + gpt + args + " : -np 1 " + c.rank1);
    CHECK(r.exit_code == 2);
    CHECK_MESSAGE(r.err.find("error: " + c.says) != std::string::npos, r.err);
    CHECK(r.err.find(c.says) == r.err.rfind(c.says));  // rank 0 alone says it
    CHECK(!fs::exists(dir / "run"));                   // found before rank 0 touched the run directory
  }
}

TEST_CASE("mpirun: a rank that fails ends the job naming it; bad uses of ranks are one clear line") {
  ScratchDir dir("mpi_fail");
  const std::string gpt = program("gpt"), text = write_small_text(dir / "text.txt");
  const std::string common = " train " + kModel + " --threads 1 --max-iters 5 --out " + (dir / "run");
  // Rank 1 cannot read its --data: it names itself and mpirun ends rank 0.
  const auto start = std::chrono::steady_clock::now();
  const Result missing = run(mpi_local() + " mpirun -np 1 " + gpt + common + kBatch + " --data " + text + " : -np 1 " +
                             gpt + common + kBatch + " --data " + (dir / "missing.txt"));
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(30));
  CHECK(missing.exit_code != 0);
  CHECK_MESSAGE(missing.err.find("error: rank 1 of 2: ") != std::string::npos, missing.err);
  CHECK(missing.err.find("missing.txt") != std::string::npos);
  // A batch of 1 row for 2 ranks.
  const Result small = run(mpirun(2) + gpt + common + " --data " + text + " --batch-size 1");
  CHECK(small.exit_code == 2);
  CHECK_MESSAGE(small.err.find("error: train: a batch of 1 rows leaves rank 1 without rows") != std::string::npos,
                small.err);
  // Every rank diverges at the same step: rank 0 says so once, exit 3, as
  // one process with the same slices does.
  const std::string diverging = " train " + kModel + kBatch + " --data " + text +
                                " --max-iters 40 --lr 1e6 --grad-clip 0 --warmup-iters 0 --out " + (dir / "diverged");
  const Result alone = run(gpt + diverging + " --threads 2");
  const Result both = run(mpirun(2) + gpt + diverging + " --threads 1");
  REQUIRE(alone.exit_code == 3);
  CHECK(both.exit_code == 3);
  const std::string said = alone.err.substr(0, alone.err.find('\n'));
  CHECK(said.starts_with("error: train: step "));
  CHECK(both.err.find(said) != std::string::npos);
  CHECK(both.err.find("error: ") == both.err.rfind("error: "));
  // The program built without MPI refuses to run as one of several ranks.
  const Result plain = run(mpirun(2) + program("../gpt") + common + kBatch + " --data " + text);
  CHECK(plain.exit_code == 2);
  CHECK(plain.err.find("this gpt was built without MPI") != std::string::npos);
}
