// The stop request is one lock-free atomic, the only kind of state a signal
// handler may touch; _exit is async-signal-safe, exit() is not.
#include "train/interrupt.h"

#include <unistd.h>

#include <atomic>
#include <csignal>

namespace ember {
namespace {

std::atomic<int> pending{0};
static_assert(std::atomic<int>::is_always_lock_free);

void on_signal(int sig) {
  if (pending.load() != 0 && sig == SIGINT) _exit(128 + SIGINT);  // the second Ctrl-C: quit now
  pending.store(sig);
}

}  // namespace

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // system calls in progress (a read, a write) carry on
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

int stop_requested() { return pending.load(); }
void request_stop(int sig) { pending.store(sig); }
void clear_stop_request() { pending.store(0); }

}  // namespace ember
