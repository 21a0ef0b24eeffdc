#include "worker/worker_loop.h"

#include <nlohmann/json.hpp>

#include "core/host_name.h"

namespace cdmoe::worker {

comm::MessageHandler as_handler(TaskRunner run) {
  return [run = std::move(run)](const comm::Message& message) -> std::optional<comm::Message> {
    if (message.tag != comm::Tag::kTask) return std::nullopt;
    Result result;
    try {
      Json json = parse_json_text(message.payload, "task message");
      result = run(task_from_json(json, "task message"));
    } catch (const std::exception& e) {  // a task we cannot even read fails like any other
      result.ok = false;
      result.error = e.what();
      try {
        result.candidate_id = nlohmann::json::parse(message.payload).at("candidate_id").get<int64_t>();
      } catch (...) {
      }
    }
    return comm::Message{0, comm::Tag::kResult, result_to_json(result).dump()};
  };
}

comm::Message hello_message(const Starter& start) {
  Hello hello;
  hello.host = host_name();
  try {
    start(hello);
  } catch (const std::exception& e) {
    hello.ok = false;
    hello.error = e.what();
    hello.routing.clear();
  }
  return comm::Message{0, comm::Tag::kHello, hello_to_json(hello).dump()};
}

void serve(comm::Transport& transport, const Starter& start, const TaskRunner& run) {
  comm::Message hello = hello_message(start);
  transport.send(0, comm::Tag::kHello, hello.payload);
  comm::MessageHandler handle = as_handler(run);
  for (;;) {
    std::optional<comm::Message> message = transport.receive(1.0);
    if (!message) continue;
    if (message->tag == comm::Tag::kStop) return;
    if (std::optional<comm::Message> reply = handle(*message)) transport.send(0, reply->tag, reply->payload);
  }
}

}  // namespace cdmoe::worker
