// Ranks and collectives: MPI's when compiled with EMBER_MPI (make mpi builds
// this one file so, into build/mpi), else a single process's; then what both
// share: the gradient buckets, the hashes and checks that every rank starts
// alike, and how a rank ends its part of the job.
#include "train/distributed.h"

#ifdef EMBER_MPI
#include <mpi.h>
#endif
#include <fmt/format.h>
#include <sched.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <thread>

#include "core/parallel.h"

namespace ember {
namespace {

int rank_ = 0, size_ = 1;

// The rank count a launcher (OpenMPI's mpirun, or a PMI one) put in the
// environment: 0 when the process was started some other way.
int launched_ranks() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"})
    if (const char* v = std::getenv(var)) return std::max(1, std::atoi(v));
  return std::getenv("PMIX_RANK") != nullptr ? 1 : 0;
}

// Threads for one of `local_ranks` ranks on this machine: the CPUs mpirun
// bound it to, and no more than its share of the cores (2 ranks on 2 cores
// run a thread each, not two threads each on a shared pair).
[[maybe_unused]] int threads_per_rank(int local_ranks) {
  cpu_set_t set;
  CPU_ZERO(&set);
  const int bound = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : INT_MAX;
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return std::clamp(std::min(bound, cores / std::max(1, local_ranks)), 1, kMaxThreads);
}

#ifdef EMBER_MPI
bool mpi_running = false;

// MPI counts are ints: longer buffers go in pieces.
template <typename T>
void allreduce_pieces(T* data, size_t n, MPI_Datatype type) {
  constexpr size_t kMaxCount = size_t{1} << 30;
  for (size_t at = 0; at < n; at += kMaxCount)
    MPI_Allreduce(MPI_IN_PLACE, data + at, static_cast<int>(std::min(kMaxCount, n - at)), type, MPI_SUM,
                  MPI_COMM_WORLD);
}

// Waits for every rank at a barrier, polling (so a waiting rank leaves its
// core to the others), for at most `limit_s` seconds (<= 0: no limit); false
// on time-out.
bool barrier_within(double limit_s) {
  MPI_Request request;
  MPI_Ibarrier(MPI_COMM_WORLD, &request);
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(limit_s);
  for (int done = 0;;) {
    MPI_Test(&request, &done, MPI_STATUS_IGNORE);
    if (done) return true;
    if (limit_s > 0 && std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}
#endif

}  // namespace

#ifdef EMBER_MPI

void init_distributed(int& argc, char**& argv) {
  if (mpi_running || launched_ranks() == 0) return;
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);  // only the main thread calls MPI
  mpi_running = true;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  MPI_Comm local;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local);
  int local_ranks = 1;
  MPI_Comm_size(local, &local_ranks);
  MPI_Comm_free(&local);
  if (size_ > 1 && std::getenv("EMBER_NUM_THREADS") == nullptr) set_num_threads(threads_per_rank(local_ranks));
}

bool built_with_mpi() { return true; }

void allreduce_sum(std::span<float> data) {
  if (size_ > 1) allreduce_pieces(data.data(), data.size(), MPI_FLOAT);
}
void allreduce_sum(std::span<double> data) {
  if (size_ > 1) allreduce_pieces(data.data(), data.size(), MPI_DOUBLE);
}
int allreduce_max(int value) {
  int out = value;
  if (size_ > 1) MPI_Allreduce(&value, &out, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  return out;
}
std::vector<uint64_t> allgather(std::span<const uint64_t> values) {
  std::vector<uint64_t> out(values.size() * static_cast<size_t>(size_));
  if (size_ == 1) return {values.begin(), values.end()};
  const int n = static_cast<int>(values.size());
  MPI_Allgather(values.data(), n, MPI_UINT64_T, out.data(), n, MPI_UINT64_T, MPI_COMM_WORLD);
  return out;
}
void broadcast(std::span<uint64_t> data) {
  if (size_ > 1) MPI_Bcast(data.data(), static_cast<int>(data.size()), MPI_UINT64_T, 0, MPI_COMM_WORLD);
}

int finish_distributed(int status, bool everywhere) {
  if (!mpi_running) return status;
  std::fflush(stdout);
  std::fflush(stderr);
  if (size_ > 1 && status != 0 && !everywhere) MPI_Abort(MPI_COMM_WORLD, status);
  // The others may still be at work (rank 0 samples after training): wait
  // without a limit for a finished run, a minute for an agreed failure.
  if (size_ > 1 && !barrier_within(status == 0 ? 0.0 : 60.0)) {
    std::fprintf(stderr, "error: %sthe other ranks did not end with this one within a minute; aborting the job\n",
                 rank_prefix().c_str());
    MPI_Abort(MPI_COMM_WORLD, status);
  }
  MPI_Finalize();
  mpi_running = false;
  return status;
}

#else  // a single process

void init_distributed(int&, char**&) {
  const int ranks = launched_ranks();
  EMBER_CHECK(ranks <= 1,
              "mpi: this gpt was built without MPI but mpirun started it as one of {} ranks, so each would train "
              "alone; build the MPI program with `make mpi` and run build/mpi/gpt",
              ranks);
}
bool built_with_mpi() { return false; }
void allreduce_sum(std::span<float>) {}
void allreduce_sum(std::span<double>) {}
int allreduce_max(int value) { return value; }
std::vector<uint64_t> allgather(std::span<const uint64_t> values) { return {values.begin(), values.end()}; }
void broadcast(std::span<uint64_t>) {}
int finish_distributed(int status, bool) { return status; }

#endif

int world_rank() { return rank_; }
int world_size() { return size_; }
bool is_main_rank() { return rank_ == 0; }

std::string rank_prefix() { return size_ > 1 ? fmt::format("rank {} of {}: ", rank_, size_) : std::string(); }

std::vector<GradientBucket> gradient_buckets(const std::vector<int64_t>& sizes) {
  std::vector<GradientBucket> buckets;
  GradientBucket open{0, 0, 0, true};  // the packed bucket being filled
  auto close = [&] {
    if (open.last > open.first) buckets.push_back(open);
  };
  for (size_t i = 0; i < sizes.size(); ++i) {
    if (sizes[i] >= kInPlaceFloats) {
      close();
      buckets.push_back({i, i + 1, sizes[i], false});
      open = {i + 1, i + 1, 0, true};
      continue;
    }
    if (open.floats + sizes[i] > kBucketFloats) {
      close();
      open = {i, i, 0, true};
    }
    open.last = i + 1;
    open.floats += sizes[i];
  }
  close();
  return buckets;
}

uint64_t hash_bytes(const void* data, size_t n, uint64_t h) {
  constexpr uint64_t kPrime = 0x100000001b3ull;
  const auto* p = static_cast<const unsigned char*>(data);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    h = (h ^ w) * kPrime;
  }
  for (; i < n; ++i) h = (h ^ p[i]) * kPrime;
  return (h ^ (h >> 29)) * kPrime;  // the length's last word still moves every output bit
}

uint64_t executable_hash() {
  std::ifstream in("/proc/self/exe", std::ios::binary);
  EMBER_CHECK(in.good(), "mpi: cannot read this program's file (/proc/self/exe) to compare it across ranks");
  std::vector<char> buffer(size_t{1} << 20);
  uint64_t h = hash_bytes(nullptr, 0);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    h = hash_bytes(buffer.data(), static_cast<size_t>(in.gcount()), h);
  }
  return h;
}

std::string describe_mismatch(const std::vector<StartFingerprint>& ranks, const std::string& data,
                              const std::string& out) {
  for (size_t r = 1; r < ranks.size(); ++r) {
    const StartFingerprint &a = ranks[0], &b = ranks[r];
    if (a.binary != b.binary)
      return fmt::format(
          "mpi: rank {} runs another build of gpt than rank 0; every rank must run the same program "
          "(the same build/mpi/gpt at the same path on every machine)",
          r);
    if (a.settings != b.settings)
      return fmt::format("mpi: rank {} was started with other settings than rank 0; every rank needs the same flags",
                         r);
    if (a.data != b.data)
      return fmt::format(
          "mpi: rank {} read other training data than rank 0 ({}); every machine needs the same file "
          "at the same path",
          r, data.empty() ? std::string("the built-in corpus") : "--data '" + data + "'");
    if (a.state != b.state)
      return fmt::format(
          "mpi: rank {} starts from other weights or random streams than rank 0; when resuming, every "
          "machine must see the same run directory '{}'",
          r, out);
  }
  return "";
}

void check_same_start(const StartFingerprint& mine, const std::string& data, const std::string& out) {
  const uint64_t words[4] = {mine.binary, mine.settings, mine.data, mine.state};
  const std::vector<uint64_t> all = allgather(words);
  std::vector<StartFingerprint> ranks;
  for (size_t at = 0; at + 4 <= all.size(); at += 4) ranks.push_back({all[at], all[at + 1], all[at + 2], all[at + 3]});
  if (const std::string why = describe_mismatch(ranks, data, out); !why.empty()) throw JobError(why);
}

void check_same_weights(uint64_t weights_hash, int64_t step) {
  const std::vector<uint64_t> all = allgather(std::span<const uint64_t>(&weights_hash, 1));
  for (size_t r = 1; r < all.size(); ++r)
    if (all[r] != all[0])
      throw JobError(
          fmt::format("mpi: after step {} the weights of rank {} differ from rank 0's, though every rank "
                      "applies the same summed gradients; stopping (the last checkpoint is intact)",
                      step, r));
}

}  // namespace ember
