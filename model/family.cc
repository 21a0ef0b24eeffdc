#include "model/family.h"

#include <sys/stat.h>

#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/families/families.h"

namespace cdmoe::model {
namespace {

// The one table of families (ARCHITECTURE.md §4), and those register_family added.
std::vector<const Family*>& families() {
  static std::vector<const Family*> table = {&kDeepseekFamily, &kQwen2MoeFamily, &kQwen3MoeFamily, &kMixtralFamily,
                                             &kOlmoeFamily, &kDeepseekV2Family, &kDeepseekV3Family,
                                             &kGlm4MoeFamily};
  return table;
}

}  // namespace

void register_family(const Family& family) {
  for (const Family* known : families()) {
    if (std::string(known->model_type) == family.model_type) {
      throw_runtime(std::string("register_family: model_type \"") + family.model_type + "\" is registered already");
    }
  }
  families().push_back(&family);
}

std::string supported_model_types() {
  std::string names;
  for (const Family* family : families()) names += (names.empty() ? "" : ", ") + std::string(family->model_type);
  return names;
}

const Family& find_family(const std::string& model_type, const std::string& where) {
  for (const Family* family : families()) {
    if (model_type == family->model_type) return *family;
  }
  throw_bad_input(where + ": model_type \"" + model_type + "\" is not supported (supported: " + supported_model_types() + ")");
}

int reference_experts_kept(const ModelShape& shape) {
  int k = find_family(shape.model_type, "config.json").reference_experts_kept;
  return k == kExpertsPerToken ? int(shape.experts_per_token) : k;
}

ModelShape model_shape_from_config(const Json& config, const std::string& where) {
  return with_json_errors(where, [&] {
    const Family& family = find_family(require_string(config, "model_type", where), where);
    ModelShape shape = family.read_shape(config, where);
    shape.model_type = family.model_type;
    shape.shared_expert_gate = family.shared_expert_gate;
    return shape;
  });
}

ModelShape read_model_shape(const std::string& model_dir_or_config) {
  std::string path = model_dir_or_config;
  struct stat info {};
  if (stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode)) path += "/config.json";
  return model_shape_from_config(read_json_file(path), path);
}

}  // namespace cdmoe::model
