// The worker side of the protocol: hello once started, then a Result for every Task, until
// kStop. serve() runs it over MPI on a worker rank; as_handler() is the same translation for
// the in-process transport of a one-rank sweep.
#pragma once

#include <functional>

#include "comm/transport.h"
#include "core/messages.h"

namespace cdmoe::worker {

using TaskRunner = std::function<Result(const Task&)>;

// Turns a Task message into its Result message (a malformed task is a FAILED result).
comm::MessageHandler as_handler(TaskRunner run);
// Starts a worker (e.g. loads the model) and adds what it measured to its hello.
using Starter = std::function<void(Hello&)>;

// The hello `start` earns: ok with the host, or the exception's message.
comm::Message hello_message(const Starter& start);

// Calls start, says hello, serves tasks until kStop. A worker that failed to start still waits
// for kStop (the coordinator reports the failure and ends the job).
void serve(comm::Transport& transport, const Starter& start, const TaskRunner& run);

}  // namespace cdmoe::worker
