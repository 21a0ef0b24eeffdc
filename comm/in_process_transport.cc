#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "comm/transport.h"

namespace cdmoe::comm {

namespace {

// A queue one thread fills and another drains, with a timed wait.
class Mailbox {
 public:
  void put(Message message) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      messages_.push_back(std::move(message));
    }
    ready_.notify_one();
  }
  std::optional<Message> take(double timeout_s) {
    std::unique_lock<std::mutex> lock(mutex_);
    auto wait = std::chrono::duration<double>(timeout_s < 0 ? 1e9 : timeout_s);
    if (!ready_.wait_for(lock, wait, [&] { return !messages_.empty(); })) return std::nullopt;
    Message message = std::move(messages_.front());
    messages_.pop_front();
    return message;
  }

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<Message> messages_;
};

class InProcessTransport : public Transport {
 public:
  InProcessTransport(std::function<Message()> start_worker, MessageHandler worker) {
    thread_ = std::thread([this, start = std::move(start_worker), handle = std::move(worker)] {
      Message hello = start();
      hello.source = 1;
      to_coordinator_.put(std::move(hello));
      for (;;) {
        std::optional<Message> message = to_worker_.take(-1);
        if (message->tag == Tag::kStop) return;
        if (std::optional<Message> reply = handle(*message)) {
          reply->source = 1;
          to_coordinator_.put(std::move(*reply));
        }
      }
    });
  }
  ~InProcessTransport() override {
    to_worker_.put({0, Tag::kStop, ""});
    thread_.join();
  }

  int rank() const override { return 0; }
  int size() const override { return 2; }
  void send(int, Tag tag, std::string payload) override { to_worker_.put({0, tag, std::move(payload)}); }
  std::optional<Message> receive(double timeout_s) override { return to_coordinator_.take(timeout_s); }

 private:
  Mailbox to_worker_, to_coordinator_;
  std::thread thread_;
};

}  // namespace

std::unique_ptr<Transport> make_in_process_transport(std::function<Message()> start_worker, MessageHandler worker) {
  return std::make_unique<InProcessTransport>(std::move(start_worker), std::move(worker));
}

}  // namespace cdmoe::comm
