#include "core/messages.h"

#include <cmath>
#include <limits>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace cdmoe {
namespace {

constexpr const char* kStateNames[] = {"WAITING", "RUNNING", "DONE", "FAILED", "PREEMPTED"};

Json number_or_null(double value) { return std::isfinite(value) ? Json(value) : Json(nullptr); }

double number_or_nan(const Json& object, const std::string& key, const std::string& where) {
  const Json& value = object.contains(key) ? object[key] : Json(nullptr);
  if (value.is_null()) return std::numeric_limits<double>::quiet_NaN();
  return require_number(object, key, where);
}

const Json& require_array(const Json& object, const std::string& key, const std::string& where) {
  const Json& value = require_field(object, key, where);
  if (!value.is_array()) throw_bad_input(where + ": field '" + key + "' must be an array");
  return value;
}

}  // namespace

const char* candidate_state_name(CandidateState state) { return kStateNames[int(state)]; }

CandidateState parse_candidate_state(const std::string& name, const std::string& where) {
  for (int i = 0; i < 5; ++i) {
    if (name == kStateNames[i]) return CandidateState(i);
  }
  throw_bad_input(where + ": state \"" + name + "\" is not one of WAITING, RUNNING, DONE, FAILED, PREEMPTED");
}

bool run_dependent_metric(const std::string& name) {
  for (const char* measured : {"tokens_per_s", "speedup", "speedup_ci_low", "speedup_ci_high", "speed_pairs", "peak_rss_bytes",
                               "peak_cuda_allocated_bytes"}) {
    if (name == measured) return true;
  }
  return false;
}

bool is_valid_metric_name(const std::string& name) {
  if (name.empty() || name.size() > 64 || name[0] < 'a' || name[0] > 'z') return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    if (!ok) return false;
  }
  return true;
}

Json hello_to_json(const Hello& hello) {
  Json routing = Json::array();  // [layer, expert, tokens, average_weight] rows: compact on the wire
  for (const ExpertRouting& r : hello.routing) routing.push_back(Json::array({r.layer, r.expert, r.tokens, r.average_weight}));
  return Json{{"ok", hello.ok},         {"host", hello.host},       {"error", hello.error},
              {"routing", routing},      {"device", hello.device},   {"threads", hello.threads},
              {"dtype", hello.dtype},    {"rank", hello.rank}};
}

Hello hello_from_json(const Json& json, const std::string& where) {
  Hello hello;
  hello.ok = bool_or(json, "ok", false, where);
  hello.host = string_or(json, "host", "", where);
  hello.error = string_or(json, "error", "", where);
  hello.device = string_or(json, "device", "", where);
  hello.dtype = string_or(json, "dtype", "", where);
  hello.rank = int(int_or(json, "rank", -1, where));
  hello.threads = int(int_or(json, "threads", 0, where));
  if (!json.contains("routing")) return hello;
  const Json& rows = json["routing"];
  if (!rows.is_array()) throw_bad_input(where + ": field 'routing' must be an array");
  for (const Json& row : rows) {
    bool well_formed = row.is_array() && row.size() == 4 && row[0].is_number_integer() && row[1].is_number_integer() &&
                       row[2].is_number() && row[3].is_number();
    if (!well_formed) throw_bad_input(where + ": a 'routing' row is not [layer, expert, tokens, average_weight]");
    hello.routing.push_back({row[0].get<int>(), row[1].get<int>(), row[2].get<double>(), row[3].get<double>()});
  }
  return hello;
}

Json task_to_json(const Task& task) {
  return Json{{"candidate_id", task.candidate_id}, {"kind", task.kind}, {"plan", task.plan.to_json()},
              {"params", task.params}, {"attempt", task.attempt}};
}

Task task_from_json(const Json& json, const std::string& where) {
  Task task;
  task.candidate_id = require_int(json, "candidate_id", where);
  task.kind = require_string(json, "kind", where);
  task.plan = Plan::from_json(require_field(json, "plan", where), where + ": plan");
  task.params = json.contains("params") ? json["params"] : Json::object();
  if (!task.params.is_object()) throw_bad_input(where + ": field 'params' must be an object");
  task.attempt = int(int_or(json, "attempt", 1, where));
  return task;
}

Json result_to_json(const Result& result) {
  Json metrics = Json::array();
  for (const Metric& m : result.metrics) {
    metrics.push_back({{"name", m.name}, {"value", number_or_null(m.value)}, {"unit", m.unit}});
  }
  Json steps = Json::array();
  for (const FinetuneStep& s : result.finetune_steps) {
    steps.push_back({{"step", s.step}, {"loss", number_or_null(s.loss)}, {"lr", s.learning_rate},
                     {"tokens", s.tokens}});
  }
  Json held_out = Json::array();
  for (const HeldOutLoss& h : result.held_out_losses) {
    held_out.push_back({{"after_steps", h.after_steps}, {"loss", number_or_null(h.loss)}, {"tokens", h.tokens},
                        {"data_hash", h.data_hash}});
  }
  Json artifacts = Json::array();
  for (const Artifact& a : result.artifacts) {
    artifacts.push_back({{"kind", a.kind}, {"path", a.path}, {"sha256", a.sha256}, {"bytes", a.bytes}});
  }
  return Json{{"candidate_id", result.candidate_id}, {"ok", result.ok},     {"metrics", metrics},
              {"finetune_steps", steps},              {"held_out_losses", held_out}, {"artifacts", artifacts},
              {"error", result.error}, {"worker_rank", result.worker_rank},
              {"worker_host", result.worker_host},    {"elapsed_s", result.elapsed_s}};
}

Result result_from_json(const Json& json, const std::string& where) {
  Result result;
  result.candidate_id = require_int(json, "candidate_id", where);
  result.ok = bool_or(json, "ok", true, where);
  for (const Json& m : require_array(json, "metrics", where)) {
    std::string at = where + ": metric";
    Metric metric{require_string(m, "name", at), number_or_nan(m, "value", at), string_or(m, "unit", "", at)};
    if (!is_valid_metric_name(metric.name)) {
      throw_bad_input(where + ": metric name \"" + metric.name + "\" is not lower_snake_case ([a-z][a-z0-9_]*)");
    }
    result.metrics.push_back(std::move(metric));
  }
  if (json.contains("finetune_steps")) {
    for (const Json& s : require_array(json, "finetune_steps", where)) {
      std::string at = where + ": finetune step";
      result.finetune_steps.push_back(FinetuneStep{require_int(s, "step", at), number_or_nan(s, "loss", at),
                                                   number_or(s, "lr", 0, at), int_or(s, "tokens", 0, at)});
    }
  }
  if (json.contains("held_out_losses")) {
    for (const Json& h : require_array(json, "held_out_losses", where)) {
      std::string at = where + ": held-out loss";
      result.held_out_losses.push_back(HeldOutLoss{require_int(h, "after_steps", at), number_or_nan(h, "loss", at),
                                                   int_or(h, "tokens", 0, at), string_or(h, "data_hash", "", at)});
    }
  }
  if (json.contains("artifacts")) {
    for (const Json& a : require_array(json, "artifacts", where)) {
      std::string at = where + ": artifact";
      result.artifacts.push_back(Artifact{require_string(a, "kind", at), require_string(a, "path", at),
                                          require_string(a, "sha256", at), require_int(a, "bytes", at)});
    }
  }
  result.error = string_or(json, "error", "", where);
  result.worker_rank = int(int_or(json, "worker_rank", 0, where));
  result.worker_host = string_or(json, "worker_host", "", where);
  result.elapsed_s = number_or(json, "elapsed_s", 0, where);
  return result;
}

}  // namespace cdmoe
