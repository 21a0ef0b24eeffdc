#include "coordinator/sweep_setup.h"

#include <set>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace cdmoe::coordinator {

namespace {

// Appends "path: stored A, now B" for each differing leaf, descending into objects both sides
// have (data_hashes.finetune rather than two long excerpts of data_hashes).
void describe_difference(const Json& stored, const Json& now, const std::string& path, std::string& text) {
  if (stored.is_object() && now.is_object()) {
    std::set<std::string> keys;
    for (auto it = stored.begin(); it != stored.end(); ++it) keys.insert(it.key());
    for (auto it = now.begin(); it != now.end(); ++it) keys.insert(it.key());
    for (const std::string& key : keys) {
      Json a = stored.contains(key) ? stored[key] : Json("(absent)");
      Json b = now.contains(key) ? now[key] : Json("(absent)");
      if (a != b) describe_difference(a, b, path.empty() ? key : path + "." + key, text);
    }
    return;
  }
  text += (text.empty() ? "" : "; ") + path + ": stored " + describe_json(stored) + ", now " + describe_json(now);
}

}  // namespace

std::string describe_config_difference(const Json& stored, const Json& now) {
  std::string text;
  describe_difference(stored, now, "", text);
  return text;
}

namespace {

// Config keys added after sweeps were first stored, with the value every earlier binary used:
// a sweep stored without the key resumes under a config that gives that value (and a config
// without the key, from a caller that predates it, means that value too).
const std::pair<const char*, const char*> kKeysAddedLater[] = {{"dtype", "float32"},
                                                                    {"task_average", "acc"},
                                                                    {"routing_tokens", "calibration"},
                                                                    {"divergence_mean", "token"},
                                                                    {"special_tokens", "none"}};

// Fingerprints added after sweeps were first stored: no earlier value can be assumed, so a sweep
// stored without one resumes without comparing it (the file was not recorded then).
const char* const kFingerprintsAddedLater[] = {"tokenizer_hash"};

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
  for (const char* key : kFingerprintsAddedLater) {
    if (stored.is_object() && !stored.contains(key) && now.is_object()) now.erase(key);
  }
  if (stored != now) {
    throw_bad_input("sweep \"" + spec.name + "\" exists with a different config (" +
                    describe_config_difference(stored, now) + "); use another --sweep name to start anew");
  }
  if (existing->state != "DONE") store.set_sweep_state(existing->id, "RUNNING");
  return SweepStart{existing->id, true, existing->state};
}

}  // namespace cdmoe::coordinator
