#include "core/finetune_task.h"

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace cdmoe {

Json FinetuneTask::to_params() const {
  return {{"data", data}, {"data_hash", data_hash}, {"train", train}, {"layers", layers}, {"steps", steps}, {"lr", lr},
          {"warmup", warmup}, {"decay", decay}, {"lr_floor", lr_floor}, {"weight_decay", weight_decay}, {"clip", clip},
          {"batch_size", batch_size}, {"seq_len", seq_len}, {"checkpoint_every", checkpoint_every}, {"seed", seed},
          {"state_dir", state_dir}, {"artifact_dir", artifact_dir}};
}

Json FinetuneTask::run_identity() const {
  Json identity = to_params();
  for (const char* where : {"data", "state_dir", "artifact_dir", "checkpoint_every"}) identity.erase(where);
  return identity;
}

FinetuneTask FinetuneTask::from_params(const Json& params, const std::string& where) {
  FinetuneTask t = with_json_errors(where, [&] {
    FinetuneTask t;
    t.data = params.at("data").get<std::string>();
    t.data_hash = params.at("data_hash").get<std::string>();
    t.train = params.at("train").get<std::string>();
    t.layers = params.at("layers").get<std::vector<int>>();
    t.steps = params.at("steps").get<int64_t>();
    t.lr = params.at("lr").get<double>();
    t.warmup = params.at("warmup").get<int64_t>();
    t.decay = params.at("decay").get<std::string>();
    t.lr_floor = params.at("lr_floor").get<double>();
    t.weight_decay = params.at("weight_decay").get<double>();
    t.clip = params.at("clip").get<double>();
    t.batch_size = params.at("batch_size").get<int64_t>();
    t.seq_len = params.at("seq_len").get<int64_t>();
    t.checkpoint_every = params.at("checkpoint_every").get<int64_t>();
    t.seed = params.at("seed").get<uint64_t>();
    t.state_dir = params.at("state_dir").get<std::string>();
    t.artifact_dir = params.at("artifact_dir").get<std::string>();
    return t;
  });
  if (t.steps < 1 || t.batch_size < 1 || t.seq_len < 2 || !(t.lr > 0) || !(t.lr_floor >= 0 && t.lr_floor <= 1) ||
      !(t.weight_decay >= 0 && t.weight_decay < 1) || !(t.clip >= 0)) {
    throw_bad_input(where + ": finetune parameters out of range");
  }
  return t;
}

}  // namespace cdmoe
