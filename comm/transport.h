// Transport: point-to-point messages between the coordinator (rank 0) and the workers
// (ARCHITECTURE.md §3). Payloads are opaque strings (core/messages.h's JSON); a tag says what a
// payload is. Two implementations: MPI (one rank per process, mpirun/srun) and in-process
// (one rank: the coordinator drives a worker thread through the same messages).
// Contract: messages between a pair of ranks arrive in the order sent; send() never waits for
// the receiver (it queues); receive() waits up to a timeout and sleeps while waiting instead
// of spinning a core the workers need. One thread per process calls a Transport.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace cdmoe::comm {

enum class Tag : int {
  kHello = 1,   // worker -> coordinator once, when its model and data are loaded: {"ok", "host", "error"}
  kTask = 2,    // coordinator -> worker: a Task
  kResult = 3,  // worker -> coordinator: a Result
  kStop = 4,    // coordinator -> worker: finish and exit
};

struct Message {
  int source = 0;
  Tag tag = Tag::kTask;
  std::string payload;
};

class Transport {
 public:
  virtual ~Transport() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;  // ranks taking part, the coordinator included
  virtual void send(int destination, Tag tag, std::string payload) = 0;
  // The next message from any rank, or nullopt after `timeout_s` (0: just look).
  virtual std::optional<Message> receive(double timeout_s) = 0;
};

// What a worker does with a message: the replies it sends back to the coordinator.
using MessageHandler = std::function<std::optional<Message>(const Message&)>;

// One-rank transport for the coordinator: rank 0 of size 2, whose rank 1 is `worker` running on
// a thread of its own: `start_worker` runs on that thread first (load the model there) and
// returns the hello; it must not throw. The thread exits on kStop; the destructor sends kStop
// and joins.
std::unique_ptr<Transport> make_in_process_transport(std::function<Message()> start_worker, MessageHandler worker);

}  // namespace cdmoe::comm
