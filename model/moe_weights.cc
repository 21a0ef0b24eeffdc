// Loading a checkpoint into MoeModel: the header is checked against the tensor table, named by
// the family (model/weight_names.h), first, so nothing is allocated for a checkpoint that
// disagrees with its config.json; then the table is walked and each weight copied from the
// mapped file straight to its place on the device in the compute dtype.
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

std::unique_ptr<MoeModel> MoeModel::load(const std::string& dir, const at::Device& device, at::ScalarType dtype,
                                         Residency residency, int resident_layers) {
  if (dtype != at::kFloat && dtype != at::kBFloat16) throw_runtime("MoeModel::load: compute dtype must be float32 or bfloat16");
  if (resident_layers < 1) throw_runtime("MoeModel::load: at least one layer must be resident");
  auto checkpoint = std::make_unique<Checkpoint>(dir);
  std::unique_ptr<MoeModel> model(new MoeModel());
  Impl& m = *model->impl_;
  m.device = device;
  m.dtype = dtype;
  m.residency = residency;
  m.resident_cap = size_t(resident_layers);
  m.config = read_checkpoint_config(*checkpoint);
  m.fixed = fixed_plan_of(*checkpoint, m.config.shape);
  check_checkpoint_tensors(*checkpoint, m.config, m.fixed);

  const ModelShape& s = m.config.shape;
  m.layers.resize(size_t(s.num_layers));
  for (int layer = 0; layer < s.num_layers; ++layer) {  // what the table's entries do not say
    auto fixed = m.fixed.layers().find(layer);
    const LayerOp* fixed_op = fixed == m.fixed.layers().end() ? nullptr : &fixed->second.op;
    Layer& L = m.layers[size_t(layer)];
    L.block_dropped = fixed_op && *fixed_op == LayerOp::kDropBlock;
    L.dropped = fixed_op && *fixed_op == LayerOp::kDrop;
    L.is_moe = s.is_moe_layer(layer) && !L.dropped && !L.block_dropped &&
               !(fixed_op && *fixed_op == LayerOp::kCondense);  // an exported condensed layer is its fused dense MLP
  }
  std::vector<TensorEntry> global, layered;  // the table's order: the global tensors come first
  for (TensorEntry& entry : model_tensors(s, m.fixed, m.config.expert_layout)) {
    (entry.layer < 0 ? global : layered).push_back(std::move(entry));
  }
  m.read_tensors(*checkpoint, global);
  if (residency == Residency::kFull) {
    m.residency_counts.layer_reads = s.num_layers;
    m.residency_counts.bytes_read = m.read_tensors(*checkpoint, layered);
  } else {
    m.table = std::move(layered);
    m.checkpoint = std::move(checkpoint);
  }
  if (s.tie_word_embeddings) m.lm_head = m.embed_tokens;
  return model;
}

int64_t MoeModel::Impl::read_tensors(const Checkpoint& source, const std::vector<TensorEntry>& entries) {
  WeightReader reader(source, config.fp8, weight_options());
  int64_t bytes = 0;
  for_each_named_tensor(family(), entries, config.expert_layout, fixed,
                        [&](const TensorEntry& entry, int64_t expert, const std::string& name) {
    bytes += shape_numel(entry.shape) * int64_t(entry.role == TensorRole::kRouterBias ? sizeof(float) : at::elementSize(dtype));
    if (entry.layer < 0) {
      at::Tensor& global = entry.role == TensorRole::kEmbedding ? embed_tokens
                           : entry.role == TensorRole::kFinalNorm ? final_norm : lm_head;
      global = reader.read(name, entry.shape);
      return;
    }
    Layer& L = layers[size_t(entry.layer)];
    Moe& M = L.moe;
    auto stacked = [&](at::Tensor& stack, std::vector<int64_t> one) -> at::Tensor& {  // [E, ...] of the experts
      if (!stack.defined()) {
        one.insert(one.begin(), entry.per_expert);  // only per-expert roles come here
        stack = at::empty(one, weight_options());
      }
      return stack;
    };
    switch (entry.role) {
      case TensorRole::kExpertGate: reader.read_into(name, stacked(M.expert_gate, entry.shape)[expert]); break;
      case TensorRole::kExpertUp: reader.read_into(name, stacked(M.expert_up, entry.shape)[expert]); break;
      case TensorRole::kExpertDown: reader.read_into(name, stacked(M.expert_down, entry.shape)[expert]); break;
      case TensorRole::kFusedExpertGateUp: {  // transformers 5: [E, 2I, D], gate rows then up rows
        at::Tensor gate_up = reader.read(name, entry.shape);
        const int64_t I = entry.shape[1] / 2;
        M.expert_gate = gate_up.narrow(1, 0, I).contiguous();
        M.expert_up = gate_up.narrow(1, I, I).contiguous();
        break;
      }
      case TensorRole::kFusedExpertDown: M.expert_down = reader.read(name, entry.shape); break;
      case TensorRole::kRouterBias: M.router_bias = reader.read(name, entry.shape).to(at::kFloat); break;  // float32, as transformers keeps it
      default: {
        at::Tensor* slot = tensor_slot(L, entry.role);
        if (!slot) throw_runtime("tensor '" + name + "' has no place in model::Layer");
        *slot = reader.read(name, entry.shape);
      }
    }
  });
  return bytes;
}

const Layer& MoeModel::Impl::resident_layer(int index) const {
  Layer& L = layers.at(size_t(index));
  if (residency == Residency::kFull) return L;
  auto held = std::find(resident.begin(), resident.end(), index);
  if (held != resident.end()) {
    resident.splice(resident.begin(), resident, held);  // most recently used
    return L;
  }
  // Drop the least recently used unpinned layers until one more fits.
  size_t unpinned = 0;
  for (int r : resident) unpinned += !pinned.count(r);
  for (auto it = resident.end(); unpinned >= resident_cap && it != resident.begin();) {
    --it;
    if (pinned.count(*it)) continue;
    Layer& old = layers[size_t(*it)];
    Layer emptied;  // the flags stay; the tensors go
    emptied.is_moe = old.is_moe;
    emptied.dropped = old.dropped;
    emptied.block_dropped = old.block_dropped;
    old = std::move(emptied);
    it = resident.erase(it);
    --unpinned;
  }
  std::vector<TensorEntry> entries;
  for (const TensorEntry& entry : table) {
    if (entry.layer == index) entries.push_back(entry);
  }
  // A layer read is a cache fill of a const model (layers is mutable; the rest is untouched).
  residency_counts.bytes_read += const_cast<Impl*>(this)->read_tensors(*checkpoint, entries);
  residency_counts.layer_reads += 1;
  resident.push_front(index);
  return L;
}

const Layer& MoeModel::Impl::pinned_layer(int index) const {
  const Layer& L = resident_layer(index);
  if (residency == Residency::kLayers) pinned.insert(index);
  return L;
}

bool MoeModel::Impl::reads_tensor_alone(int layer, const LayerPlan* lp) const {
  return residency == Residency::kLayers && !lp && config.expert_layout == ExpertLayout::kPerExpert &&
         std::find(resident.begin(), resident.end(), layer) == resident.end();
}

at::Tensor MoeModel::Impl::read_tensor(const std::string& name, const TensorEntry& entry) const {
  WeightReader reader(*checkpoint, config.fp8, weight_options());
  at::Tensor tensor = reader.read(name, entry.shape);
  if (entry.role == TensorRole::kRouterBias) tensor = tensor.to(at::kFloat);  // as read_tensors keeps it
  residency_counts.bytes_read += int64_t(tensor.nbytes());
  return tensor;
}

Residency MoeModel::residency() const { return impl_->residency; }

MoeModel::ResidencyStats MoeModel::residency_stats() const {
  ResidencyStats out = impl_->residency_counts;
  out.resident = impl_->residency == Residency::kFull ? shape().num_layers : int64_t(impl_->resident.size());
  return out;
}

}  // namespace cdmoe::model
