// Stopping a training run cleanly. After install_stop_handlers(), the first
// SIGINT (Ctrl-C) or SIGTERM only records a request: the trainer finishes the
// step it is in, saves a checkpoint and returns, and the program exits 130
// (SIGINT) or 143 (SIGTERM). A second SIGINT exits at once (status 130)
// without touching what is saved: a checkpoint being written is left as a
// .tmp directory that the next save removes, and `latest` still names the
// previous complete one.
#pragma once

namespace ember {

void install_stop_handlers();
int stop_requested();        // the signal number of a pending request, or 0
void request_stop(int sig);  // what the handler does (for tests and embedders)
void clear_stop_request();

}  // namespace ember
