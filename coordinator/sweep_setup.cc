#include "coordinator/sweep_setup.h"

#include <set>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace cdmoe::coordinator {

std::string describe_config_difference(const Json& stored, const Json& now) {
  std::set<std::string> keys;
  for (auto it = stored.begin(); it != stored.end(); ++it) keys.insert(it.key());
  for (auto it = now.begin(); it != now.end(); ++it) keys.insert(it.key());
  std::string text;
  for (const std::string& key : keys) {
    Json a = stored.contains(key) ? stored[key] : Json("(absent)");
    Json b = now.contains(key) ? now[key] : Json("(absent)");
    if (a == b) continue;
    text += (text.empty() ? "" : "; ") + key + ": stored " + describe_json(a) + ", now " + describe_json(b);
  }
  return text;
}

namespace {

// Config keys added after sweeps were first stored, with the value every earlier binary used:
// a sweep stored without the key resumes under a config that gives that value (and a config
// without the key, from a caller that predates it, means that value too).
const std::pair<const char*, const char*> kKeysAddedLater[] = {{"dtype", "float32"},
                                                                    {"task_average", "acc"},
                                                                    {"routing_tokens", "calibration"},
                                                                    {"divergence_mean", "token"}};

}  // namespace

SweepStart start_or_resume_sweep(db::Store& store, const db::SweepSpec& spec) {
  std::optional<db::SweepRow> existing = store.find_sweep(spec.name);
  if (!existing) return SweepStart{store.create_sweep(spec), false, ""};
  Json stored = parse_json_text(existing->config_json, "sweep \"" + spec.name + "\" config");
  Json now = spec.config;
  for (const auto& [key, earlier_value] : kKeysAddedLater) {
    if (stored.is_object() && !stored.contains(key)) stored[key] = earlier_value;
    if (now.is_object() && !now.contains(key)) now[key] = earlier_value;
  }
  if (stored != now) {
    throw_bad_input("sweep \"" + spec.name + "\" exists with a different config (" +
                    describe_config_difference(stored, now) + "); use another --sweep name to start anew");
  }
  if (existing->state != "DONE") store.set_sweep_state(existing->id, "RUNNING");
  return SweepStart{existing->id, true, existing->state};
}

}  // namespace cdmoe::coordinator
