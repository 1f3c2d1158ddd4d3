// The stop handlers in a child process, where signals are raised one at a
// time (two SIGINTs sent to a running program may merge into one): the first
// only records a request, a second SIGINT exits at once with status 130.
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <string>
#include <utility>

#include "train/interrupt.h"

using namespace ember;

namespace {

// Runs `child` in a forked process (it may call only async-signal-safe
// functions and must end in _exit); returns what it wrote to the pipe and its
// exit status (-1 if a signal ended it).
std::pair<std::string, int> in_child(void (*child)(int write_fd)) {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    child(fds[1]);
    _exit(99);  // child() must not return
  }
  close(fds[1]);
  std::string out;
  char buf[64];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  return {out, WIFEXITED(status) ? WEXITSTATUS(status) : -1};
}

}  // namespace

TEST_CASE("interrupt: the first SIGINT records a request; a second one exits at once with 130") {
  const auto result = in_child([](int fd) {
    install_stop_handlers();
    raise(SIGINT);  // delivered before raise returns (one thread)
    if (stop_requested() == SIGINT) (void)!write(fd, "requested;", 10);
    raise(SIGINT);
    (void)!write(fd, "survived;", 9);
    _exit(0);
  });
  CHECK(result.first == "requested;");
  CHECK(result.second == 130);
}

TEST_CASE("interrupt: SIGTERM only records a request, even after another one") {
  const auto result = in_child([](int fd) {
    install_stop_handlers();
    raise(SIGTERM);
    if (stop_requested() == SIGTERM) (void)!write(fd, "requested;", 10);
    raise(SIGTERM);
    if (stop_requested() == SIGTERM) (void)!write(fd, "still running;", 14);
    _exit(0);
  });
  CHECK(result.first == "requested;still running;");
  CHECK(result.second == 0);
}
