#include "model/residency.h"

#include <algorithm>
#include <map>

#include "core/error.h"

namespace cdmoe::model {
namespace {

std::string megabytes(int64_t bytes) { return std::to_string((bytes + 999'999) / 1'000'000) + " MB"; }

}  // namespace

ResidencyChoice choose_residency(const std::vector<TensorEntry>& table, int64_t element_bytes, const std::string& mode,
                                 int64_t limit_bytes, const std::string& option) {
  if (mode != "full" && mode != "layers" && mode != "auto") {
    throw_bad_input("--residency: \"" + mode + "\" is not one of full, layers, auto");
  }
  ResidencyChoice choice;
  std::map<int, int64_t> layer_bytes;
  for (const TensorEntry& entry : table) {
    const int64_t bytes = entry.numel() * element_bytes;
    choice.model_bytes += bytes;
    if (entry.layer < 0) choice.global_bytes += bytes;
    else layer_bytes[entry.layer] += bytes;
  }
  for (const auto& [layer, bytes] : layer_bytes) {
    if (bytes > choice.largest_layer_bytes) choice.largest_layer_bytes = bytes, choice.largest_layer = layer;
  }
  const bool fits = limit_bytes == 0 || choice.model_bytes <= limit_bytes;
  if (mode == "full" || (mode == "auto" && fits)) {
    if (!fits) {
      throw_bad_input(option + " " + megabytes(limit_bytes) + ": the model's weights are " + megabytes(choice.model_bytes) +
                      "; use --residency layers (or auto) to hold one layer at a time");
    }
    return choice;
  }
  choice.residency = Residency::kLayers;
  if (limit_bytes == 0) return choice;
  const int64_t least = choice.global_bytes + choice.largest_layer_bytes;
  if (least > limit_bytes) {
    throw_bad_input(option + " " + megabytes(limit_bytes) + ": layer " + std::to_string(choice.largest_layer) + " is " +
                    megabytes(choice.largest_layer_bytes) + " beside the embedding and head's " + megabytes(choice.global_bytes) +
                    "; give at least " + megabytes(least));
  }
  const int64_t fit = (limit_bytes - choice.global_bytes) / std::max<int64_t>(1, choice.largest_layer_bytes);
  choice.resident_layers = int(std::clamp<int64_t>(fit, 1, std::max<int64_t>(1, int64_t(layer_bytes.size()))));
  return choice;
}

}  // namespace cdmoe::model
