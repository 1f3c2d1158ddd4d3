// Ranks without MPI: the ranks of a job played one after another in this
// process (DataParallel with a SliceLayout) add up to one process with all
// their threads, dropout masks included; the gradient buckets, the start
// check's messages, and the single-process stand-ins for MPI.
#include <cstdlib>
#include <numeric>

#include "tests/core/test_helpers.h"
#include "tests/nn/tiny_gpt.h"
#include "train/data_parallel.h"
#include "train/distributed.h"

using namespace ember;

namespace {

Batch random_batch(int64_t B, uint64_t seed) {
  Generator g(seed);
  std::vector<int64_t> x(static_cast<size_t>(B * 8)), y(x.size());
  for (auto& v : x) v = g.randint(0, 13);
  for (auto& v : y) v = g.randint(0, 13);
  return {IntTensor({B, 8}, x), IntTensor({B, 8}, y)};
}

GPTConfig with_dropout() {
  GPTConfig c = ember::testing::tiny_gpt();
  c.dropout = 0.3f;
  return c;
}

}  // namespace

TEST_CASE("DataParallel: the ranks of a layout, played in turn, add up to one process with all their threads") {
  struct Case {
    std::vector<int> threads;
    int64_t B;
  };
  // Unequal thread counts, more slices than rows per rank, passes of one row.
  for (const Case& c : {Case{{1, 1}, 4}, Case{{1, 2}, 5}, Case{{2, 1, 2}, 7}, Case{{3, 2}, 5}})
    for (int64_t pass_tokens : {8, 512}) {
      CAPTURE(c.threads.size());
      CAPTURE(c.B);
      CAPTURE(pass_tokens);
      const Batch batch = random_batch(c.B, 6);
      GPT whole(with_dropout(), 5);
      const int all_threads = std::accumulate(c.threads.begin(), c.threads.end(), 0);
      DataParallel one(whole, SliceLayout{{all_threads}, 0}, pass_tokens);
      const float expected = one.forward_backward(batch);
      const std::vector<Tensor> expected_grads = whole.parameters();
      // Each rank's model starts as the whole one did; its forward_backward
      // leaves that rank's share (MPI would sum them).
      float loss = 0.0f;
      std::vector<std::vector<float>> sums;
      for (int r = 0; r < static_cast<int>(c.threads.size()); ++r) {
        GPT rank_model(with_dropout(), 5);
        DataParallel rank(rank_model, SliceLayout{c.threads, r}, pass_tokens);
        loss += rank.forward_backward(batch);
        const std::vector<Tensor> params = rank_model.parameters();
        if (sums.empty()) sums.resize(params.size());
        for (size_t i = 0; i < params.size(); ++i) {
          const std::vector<float> g = params[i].grad().to_vector();
          sums[i].resize(g.size());
          for (size_t j = 0; j < g.size(); ++j) sums[i][j] += g[j];
        }
        // Rank 0 drew the seeds and slice 0's masks from its own generator,
        // as the whole process did: the state every rank then takes.
        if (r == 0) CHECK(rank_model.dropout_generator().state().words == whole.dropout_generator().state().words);
      }
      // The same terms summed in another grouping: float rounding only.
      // Masks drawn for the wrong slice would move the loss by ~1e-2.
      CHECK(loss == doctest::Approx(expected).epsilon(1e-6));
      for (size_t i = 0; i < sums.size(); ++i) ember::testing::check_values(expected_grads[i].grad(), sums[i], 1e-6f);
    }
}

TEST_CASE("DataParallel: a batch that leaves a rank without rows is a JobError on every rank") {
  const Batch batch = random_batch(3, 2);
  for (int r = 0; r < 3; ++r) {
    CAPTURE(r);
    GPT model(ember::testing::tiny_gpt(), 5);
    DataParallel rank(model, SliceLayout{{2, 1, 1}, r});  // rank 2's first slice would be the batch's fourth
    CHECK_THROWS_WITH_AS(rank.forward_backward(batch),
                         "train: a batch of 3 rows leaves rank 2 without rows (3 ranks with 4 threads in all cut it "
                         "into one slice per thread); use a larger --batch-size or fewer ranks",
                         JobError);
  }
  GPT model(ember::testing::tiny_gpt(), 5);
  CHECK_THROWS_WITH_AS(DataParallel(model, SliceLayout{{1, 0}, 0}), "DataParallel: every rank needs a thread, got 0",
                       Error);
  CHECK_THROWS_WITH_AS(DataParallel(model, SliceLayout{{1, 1}, 2}), "DataParallel: rank 2 of a layout of 2 ranks",
                       Error);
}

TEST_CASE("gradient_buckets: large parameters alone and in place, runs of small ones packed, all in order") {
  const int64_t big = kInPlaceFloats;
  // Sizes under kInPlaceFloats are packed together; a large parameter closes
  // the open bucket and goes alone.
  const std::vector<int64_t> sizes = {3, big - 1, big, 10, 20, big * 20, 7};
  const std::vector<GradientBucket> b = gradient_buckets(sizes);
  REQUIRE(b.size() == 5);
  CHECK((b[0].first == 0 && b[0].last == 2 && b[0].packed && b[0].floats == big + 2));
  CHECK((b[1].first == 2 && b[1].last == 3 && !b[1].packed && b[1].floats == big));
  CHECK((b[2].first == 3 && b[2].last == 5 && b[2].packed && b[2].floats == 30));
  CHECK((b[3].first == 5 && b[3].last == 6 && !b[3].packed && b[3].floats == big * 20));
  CHECK((b[4].first == 6 && b[4].last == 7 && b[4].packed && b[4].floats == 7));
  // A run of small parameters longer than a bucket is cut at the bucket size.
  const std::vector<int64_t> many(40, big - 1);  // 40 x 65535 > 2 x 2^20
  const std::vector<GradientBucket> m = gradient_buckets(many);
  REQUIRE(m.size() == 3);
  CHECK((m[0].last == 16 && m[1].first == 16 && m[1].last == 32 && m[2].last == 40));  // 16 x 65535 <= 2^20 < 17 x
  for (const GradientBucket& g : m) CHECK((g.packed && g.floats <= kBucketFloats));
  CHECK(gradient_buckets({}).empty());
}

TEST_CASE("describe_mismatch: names the first rank that differs from rank 0 and what differs") {
  const StartFingerprint a{1, 2, 3, 4};
  CHECK(describe_mismatch({a, a, a}, "x.txt", "out") == "");
  StartFingerprint other_settings = a, other_state = a, other_binary = a, other_data = a;
  other_settings.settings = 9, other_state.state = 9, other_binary.binary = 9, other_data.data = 9;
  CHECK(describe_mismatch({a, a, other_state, other_settings}, "x.txt", "out") ==
        "mpi: rank 2 starts from other weights or random streams than rank 0; when resuming, every machine must see "
        "the same run directory 'out'");
  CHECK(describe_mismatch({a, other_binary}, "", "out").starts_with("mpi: rank 1 runs another build of gpt"));
  CHECK(describe_mismatch({a, other_data}, "", "out") ==
        "mpi: rank 1 read other training data than rank 0 (the built-in corpus); every machine needs the same file "
        "at the same path");
  CHECK(describe_mismatch({a, other_data}, "x.txt", "out").find("(--data 'x.txt')") != std::string::npos);
}

TEST_CASE("hash_bytes: equal bytes hash equal; a changed byte or length changes the hash") {
  const std::string s = "the quick brown fox jumps over";
  std::string t = s;
  t[13] ^= 1;
  CHECK(hash_bytes(s.data(), s.size()) == hash_bytes(std::string(s).data(), s.size()));
  CHECK(hash_bytes(s.data(), s.size()) != hash_bytes(t.data(), t.size()));
  const std::vector<char> zeros(16, 0);
  CHECK(hash_bytes(zeros.data(), 8) != hash_bytes(zeros.data(), 16));
  CHECK(executable_hash() == executable_hash());
}

TEST_CASE("distributed: without MPI a process is rank 0 of 1 and refuses to be one of several ranks") {
  CHECK_FALSE(built_with_mpi());
  CHECK(world_rank() == 0);
  CHECK(world_size() == 1);
  CHECK(rank_prefix() == "");
  std::vector<float> v = {1.0f, 2.0f};
  allreduce_sum(v);
  CHECK(v == std::vector<float>{1.0f, 2.0f});
  CHECK(allreduce_max(7) == 7);
  const uint64_t words[2] = {3, 4};
  CHECK(allgather(words) == std::vector<uint64_t>{3, 4});
  CHECK(finish_distributed(3, false) == 3);
  int argc = 1;
  char name[] = "gpt";
  char* args[] = {name, nullptr};
  char** argv = args;
  setenv("OMPI_COMM_WORLD_SIZE", "3", 1);
  CHECK_THROWS_WITH_AS(init_distributed(argc, argv),
                       "mpi: this gpt was built without MPI but mpirun started it as one of 3 ranks, so each would "
                       "train alone; build the MPI program with `make mpi` and run build/mpi/gpt",
                       Error);
  setenv("OMPI_COMM_WORLD_SIZE", "1", 1);  // mpirun -np 1: one process, as without mpirun
  CHECK_NOTHROW(init_distributed(argc, argv));
  unsetenv("OMPI_COMM_WORLD_SIZE");
}
