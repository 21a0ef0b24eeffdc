#include "model/device.h"

#include <ATen/Context.h>
#include <torch/cuda.h>

#include <cstdlib>
#include <string>

#include "core/error.h"

namespace cdmoe::model {

std::string choose_device(const std::string& requested, int local_rank, int gpus) {
  if (requested != "auto" && requested != "cpu" && requested != "cuda") {
    throw_bad_input("--device \"" + requested + "\" is not one of auto, cpu, cuda");
  }
  if (local_rank < 0) throw_runtime("choose_device: negative local rank");
  if (requested == "cpu" || (requested == "auto" && gpus <= 0)) return "cpu";
  if (gpus <= 0) throw_bad_input("--device cuda: this process sees no CUDA device");
  return "cuda:" + std::to_string(local_rank % gpus);
}

int visible_cuda_devices() { return torch::cuda::is_available() ? int(torch::cuda::device_count()) : 0; }

std::string device_for_this_process(const std::string& requested, int local_rank) {
  int gpus = visible_cuda_devices();
  if (requested == "cuda" && gpus == 0) {
    throw_bad_input(at::hasCUDA() ? "--device cuda: this process sees no CUDA device (check CUDA_VISIBLE_DEVICES, "
                                    "or sbatch --gpus-per-task)"
                                  : "--device cuda: this build's libtorch has no CUDA (it is CPU-only); use --device "
                                    "cpu or auto, or build against a CUDA libtorch");
  }
  return choose_device(requested, local_rank, gpus);
}

std::string compute_dtype_for(const std::string& requested, const std::string& device) {
  if (requested == "float32" || requested == "bfloat16") return requested;
  if (requested != "auto") throw_bad_input("--dtype \"" + requested + "\" is not one of auto, float32, bfloat16");
  return device.rfind("cuda", 0) == 0 ? "bfloat16" : "float32";
}

void flush_denormals_unless_kept() {
  const char* choice = std::getenv("CDMOE_DENORMALS");
  if (choice && std::string(choice) == "keep") return;
  at::globalContext().setFlushDenormal(true);
}

}  // namespace cdmoe::model
