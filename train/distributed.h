// Training across processes and machines with MPI. Under mpirun, the MPI
// build (make mpi: build/mpi/gpt) runs one rank per process: every rank draws
// the same batches and trains its own slices of each (train/data_parallel.h),
// the gradients are summed across ranks, and every rank takes the same AdamW
// step. Built without MPI, or started without mpirun, a process is rank 0 of
// 1 and every collective below returns at once.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/error.h"

namespace ember {

// Starts MPI when this is the MPI build and the environment says mpirun
// launched the process; otherwise does nothing. In a job of several ranks each
// rank runs min(its CPUs, cores / ranks on its machine) threads, unless
// EMBER_NUM_THREADS (or --threads, set later) says otherwise. Error when a
// build without MPI is launched as one of several ranks: each would train alone.
void init_distributed(int& argc, char**& argv);
bool built_with_mpi();
int world_rank();     // 0 outside MPI
int world_size();     // 1 outside MPI
bool is_main_rank();  // rank 0: the one that prints, logs metrics and writes checkpoints

// Collectives: every rank calls the same ones in the same order.
void allreduce_sum(std::span<float> data);  // in place
void allreduce_sum(std::span<double> data);
int allreduce_max(int value);
// Rank r's n values land at [r * n, (r + 1) * n).
std::vector<uint64_t> allgather(std::span<const uint64_t> values);
void broadcast(std::span<uint64_t> data);  // rank 0's values, to every rank

// How a gradient sum is cut into MPI calls: a parameter of at least
// kInPlaceFloats values goes alone and in place; runs of smaller ones are
// packed together into buckets of up to kBucketFloats (fewer, larger calls:
// on this machine 256 KB calls cost twice what 1-16 MB ones do a byte).
inline constexpr int64_t kInPlaceFloats = int64_t{1} << 16;  // 256 KB
inline constexpr int64_t kBucketFloats = int64_t{1} << 20;   // 4 MB
struct GradientBucket {
  size_t first = 0, last = 0;  // parameters [first, last)
  int64_t floats = 0;
  bool packed = false;  // copied into a staging buffer (else reduced in place)
};
std::vector<GradientBucket> gradient_buckets(const std::vector<int64_t>& sizes);

// 64-bit hashes (FNV-1a style over 8-byte words; not cryptographic) for the
// start check below.
uint64_t hash_bytes(const void* data, size_t n, uint64_t h = 0xcbf29ce484222325ull);
uint64_t executable_hash();  // of this program's file (/proc/self/exe)

// What every rank of a job must share before its first step, hashed.
struct StartFingerprint {
  uint64_t binary = 0;    // the program
  uint64_t settings = 0;  // the run's settings (flags)
  uint64_t data = 0;      // tokenizer and tokens
  uint64_t state = 0;     // weights, optimizer moments, step and random streams
};
// "" when every fingerprint equals rank 0's, else a message naming the first
// rank that differs and what differs.
std::string describe_mismatch(const std::vector<StartFingerprint>& ranks, const std::string& data,
                              const std::string& out);
// Collective: JobError when any rank's fingerprint differs from rank 0's.
void check_same_start(const StartFingerprint& mine, const std::string& data, const std::string& out);
// Collective: JobError when the ranks' weights differ (each sums the same
// gradients, so they never should); `step` goes in the message.
void check_same_weights(uint64_t weights_hash, int64_t step);

// An error every rank raises at the same point from the same data (ranks that
// disagree at the start, a batch with too few rows for the ranks): rank 0
// alone reports it and the ranks end together, without MPI_Abort.
struct JobError : Error {
  using Error::Error;
};

// What a rank's own "error: " line starts with: "rank 1 of 4: " in a job of
// several ranks, else "".
std::string rank_prefix();

// Ends this process's part of the job; returns `status` for main to exit
// with. `everywhere`: every rank ends with this status at the same point (a
// finished run, an agreed stop, a JobError): the ranks finalize MPI together
// (a rank still missing after a minute aborts the job). Otherwise a non-zero
// status is this rank's failure alone: MPI_Abort, after which mpirun stops
// every rank and exits non-zero, naming this one.
int finish_distributed(int status, bool everywhere);

}  // namespace ember
