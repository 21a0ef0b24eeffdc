#include "core/model_shape.h"

namespace cdmoe {

int64_t ModelShape::query_key_width() const {
  return num_attention_heads * (latent_attention ? latent.qk_nope_head_dim + latent.qk_rope_head_dim : head_dim);
}

int64_t ModelShape::value_width() const {
  return num_attention_heads * (latent_attention ? latent.v_head_dim : head_dim);
}

bool ModelShape::is_moe_layer(int64_t layer) const {
  return layer >= 0 && layer < int64_t(layer_kinds.size()) && layer_kinds[size_t(layer)] == LayerKind::kMoe;
}

std::vector<int> ModelShape::moe_layers() const {
  std::vector<int> layers;
  for (size_t i = 0; i < layer_kinds.size(); ++i) {
    if (layer_kinds[i] == LayerKind::kMoe) layers.push_back(int(i));
  }
  return layers;
}

}  // namespace cdmoe
