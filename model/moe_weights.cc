// Loading a checkpoint into MoeModel: the header is checked against the family's weight-name
// table first (model/weight_names.h), so nothing is allocated for a checkpoint that disagrees
// with its config.json; then each weight is copied from the mapped file straight to the device
// in the compute dtype.
#include <algorithm>
#include <atomic>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "core/error.h"
#include "model/checkpoint.h"
#include "model/fp8.h"
#include "model/moe_model_impl.h"
#include "model/weight_names.h"

namespace cdmoe::model {
namespace {

at::ScalarType torch_dtype_of(DType dtype) {
  switch (dtype) {
    case DType::kF32: return at::kFloat;
    case DType::kF16: return at::kHalf;
    case DType::kBF16: return at::kBFloat16;
    case DType::kF8E4M3: break;  // no torch dtype in libtorch 1.13: dequantised by model/fp8.h
  }
  throw_runtime("a safetensors dtype without a torch dtype");
}

// Reads tensors by name into the compute dtype; names and shapes were checked up front.
class WeightReader {
 public:
  WeightReader(const Checkpoint& checkpoint, const ModelConfig::Fp8Blocks& fp8, at::TensorOptions options)
      : checkpoint_(checkpoint), fp8_(fp8), options_(options) {}

  at::Tensor read(const std::string& name, std::vector<int64_t> shape) {
    at::Tensor out = at::empty(shape, options_);
    read_into(name, out);
    return out;
  }
  void read_into(const std::string& name, at::Tensor out) {
    Checkpoint::Located found = checkpoint_.find(name);
    if (!found.info || found.info->shape != out.sizes().vec()) {  // check_checkpoint_tensors ran first
      throw_runtime(checkpoint_.dir() + ": tensor '" + name + "' is not as the header check found it");
    }
    if (found.info->dtype == DType::kF8E4M3) {
      // Straight into a float32 host tensor; through one transient float32 copy otherwise.
      const bool direct = out.device().is_cpu() && out.scalar_type() == at::kFloat && out.is_contiguous();
      at::Tensor values = direct ? out : at::empty(out.sizes(), at::kFloat);
      dequantize_into(name, found, values);
      if (!direct) out.copy_(values);
    } else {
      void* data = const_cast<uint8_t*>(found.file->tensor_data(*found.info));
      out.copy_(at::from_blob(data, out.sizes(), at::TensorOptions().dtype(torch_dtype_of(found.info->dtype))));
    }
    found.file->release(*found.info);
  }
  Mlp read_mlp(const MlpNames& names, int64_t inner, int64_t D) {
    return Mlp{read(names.gate, {inner, D}), read(names.up, {inner, D}), read(names.down, {D, inner})};
  }

 private:
  // An F8_E4M3 weight (2-D, its scale checked by check_checkpoint_tensors) into `values`, a
  // contiguous float32 host tensor of its shape.
  void dequantize_into(const std::string& name, const Checkpoint::Located& weight, at::Tensor& values) const {
    const std::string scale_name = name + "_scale_inv";
    Checkpoint::Located scale = checkpoint_.find(scale_name);
    void* scale_data = const_cast<uint8_t*>(scale.file->tensor_data(*scale.info));
    at::Tensor scales = at::from_blob(scale_data, scale.info->shape, at::TensorOptions().dtype(torch_dtype_of(scale.info->dtype)))
                            .to(at::kFloat)
                            .contiguous();
    if (!at::isfinite(scales).all().item<bool>()) {  // it would make the weights, and every result, NaN or infinite
      throw_bad_input(scale.file->path() + ": scale '" + scale_name + "' holds a value that is not finite");
    }
    const int64_t rows = weight.info->shape[0], cols = weight.info->shape[1];
    std::atomic<bool> finite{true};
    at::parallel_for(0, rows, std::max<int64_t>(1, (int64_t(1) << 16) / cols), [&](int64_t begin, int64_t end) {
      if (!dequantize_fp8_blocks(weight.file->tensor_data(*weight.info), begin, end, cols, scales.data_ptr<float>(),
                                 fp8_.rows, fp8_.cols, values.data_ptr<float>())) {
        finite = false;
      }
    });
    if (!finite) {
      throw_bad_input(weight.file->path() + ": tensor '" + name + "' holds an F8_E4M3 NaN code (0x7F or 0xFF)");
    }
    scale.file->release(*scale.info);
  }

  const Checkpoint& checkpoint_;
  ModelConfig::Fp8Blocks fp8_;
  at::TensorOptions options_;  // the compute dtype, on the model's device
};

}  // namespace

std::unique_ptr<MoeModel> MoeModel::load(const std::string& dir, const at::Device& device, at::ScalarType dtype) {
  if (dtype != at::kFloat && dtype != at::kBFloat16) throw_runtime("MoeModel::load: compute dtype must be float32 or bfloat16");
  Checkpoint checkpoint(dir);
  std::unique_ptr<MoeModel> model(new MoeModel());
  Impl& m = *model->impl_;
  m.device = device;
  m.dtype = dtype;
  m.config = read_checkpoint_config(checkpoint);
  const ModelShape& s = m.config.shape;
  m.fixed = fixed_plan_of(checkpoint, s);
  check_checkpoint_tensors(checkpoint, m.config, m.fixed);

  WeightReader reader(checkpoint, m.config.fp8, m.weight_options());
  const int64_t D = s.hidden_size, V = s.vocab_size, I = s.expert_intermediate_size;
  m.embed_tokens = reader.read(kEmbedTokensName, {V, D});
  m.final_norm = reader.read(kFinalNormName, {D});
  m.lm_head = s.tie_word_embeddings ? m.embed_tokens : reader.read(kLmHeadName, {V, D});
  for (int layer = 0; layer < s.num_layers; ++layer) {
    auto fixed = m.fixed.layers().find(layer);
    const LayerNames n = layer_names(m.family(), layer, m.config.fused_experts && fixed == m.fixed.layers().end());
    const LayerPlan* fixed_op = fixed == m.fixed.layers().end() ? nullptr : &fixed->second;
    Layer L;
    if (fixed_op && fixed_op->op == LayerOp::kDropBlock) {
      L.block_dropped = true;
      m.layers.push_back(std::move(L));
      continue;
    }
    L.input_norm = reader.read(n.input_norm, {D});
    const auto slots = attention_slots(n, L);
    for (const TensorSpec& spec : attention_tensors(s, n)) {
      auto slot = std::find_if(slots.begin(), slots.end(), [&](const auto& named) { return *named.first == spec.name; });
      if (slot == slots.end()) throw_runtime("attention tensor '" + spec.name + "' has no slot in model::Layer");
      *slot->second = reader.read(spec.name, spec.shape);
    }
    if (fixed_op && fixed_op->op == LayerOp::kDrop) {
      L.dropped = true;
      m.layers.push_back(std::move(L));
      continue;
    }
    L.post_norm = reader.read(n.post_norm, {D});
    L.is_moe = s.is_moe_layer(layer);
    if (!L.is_moe) {
      L.dense = reader.read_mlp(n.mlp, s.dense_intermediate_size, D);
    } else if (fixed_op && fixed_op->op == LayerOp::kCondense) {
      L.is_moe = false;  // exported as its fused dense MLP
      L.dense = reader.read_mlp(n.mlp, s.shared_intermediate_size + int64_t(fixed_op->experts.size()) * I, D);
    } else {
      Moe& M = L.moe;
      const int64_t E = fixed_op ? int64_t(fixed_op->experts.size()) : s.num_routed_experts;  // pruned: renumbered
      M.router = reader.read(n.router, {E, D});
      if (s.router == RouterKind::kSigmoidGroups) {  // kept in float32, as transformers keeps it
        M.router_bias = reader.read(n.router_bias, {E}).to(at::kFloat);
      }
      M.expert_gate = at::empty({E, I, D}, m.weight_options());
      M.expert_up = at::empty({E, I, D}, m.weight_options());
      M.expert_down = at::empty({E, D, I}, m.weight_options());
      if (m.config.fused_experts && !fixed_op) {  // transformers 5: [E, 2I, D] gate rows then up rows
        at::Tensor gate_up = reader.read(n.fused_gate_up, {E, 2 * I, D});
        M.expert_gate.copy_(gate_up.narrow(1, 0, I));
        M.expert_up.copy_(gate_up.narrow(1, I, I));
        reader.read_into(n.fused_down, M.expert_down);
      } else {
        for (int64_t e = 0; e < E; ++e) {
          const MlpNames expert = n.expert(e);
          reader.read_into(expert.gate, M.expert_gate[e]);
          reader.read_into(expert.up, M.expert_up[e]);
          reader.read_into(expert.down, M.expert_down[e]);
        }
      }
      if (s.shared_intermediate_size > 0) M.shared = reader.read_mlp(n.shared, s.shared_intermediate_size, D);
      if (m.family().shared_expert_gate) M.shared_gate = reader.read(n.shared_gate, {1, D});
    }
    m.layers.push_back(std::move(L));
  }
  return model;
}

}  // namespace cdmoe::model
