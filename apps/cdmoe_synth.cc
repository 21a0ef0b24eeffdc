// cdmoe-synth: writes a random DeepSeekMoE-shaped checkpoint (config.json, model.safetensors
// and, with --tokenizer, a copy of a real tokenizer.json whose vocabulary it takes). For the
// demo sweep in the README and for tests; its accuracy is chance, its shapes are real.
#include <iostream>

#include <boost/program_options.hpp>

#include "apps/cli.h"
#include "core/error.h"
#include "model/synthetic_checkpoint.h"

namespace po = boost::program_options;
using namespace cdmoe;

int main(int argc, char** argv) {
  return run_cli("cdmoe-synth", [&] {
    model::SyntheticShape s;
    s.hidden = 64;
    s.heads = 4;
    s.layers = 6;
    s.experts = 16;
    s.expert_inner = 32;
    s.shared = 2;
    s.top_k = 4;
    s.dense_inner = 128;
    s.max_positions = 2048;
    std::string out, init = "random";
    po::options_description options("usage: cdmoe-synth --out DIR [--tokenizer FILE] [shape options]\n\noptions");
    options.add_options()
        ("help,h", "print this help")
        ("out", po::value(&out), "directory to write (created)")
        ("tokenizer", po::value(&s.tokenizer), "tokenizer.json to copy beside the weights (sets the vocabulary)")
        ("family", po::value(&s.family)->default_value(s.family),
         "model_type: deepseek, deepseek_v2, deepseek_v3, glm4_moe, qwen2_moe, qwen3_moe, mixtral or olmoe (mixtral and olmoe: every layer MoE)")
        ("hidden", po::value(&s.hidden)->default_value(s.hidden), "hidden size")
        ("heads", po::value(&s.heads)->default_value(s.heads), "attention heads")
        ("layers", po::value(&s.layers)->default_value(s.layers), "decoder layers (layer 0 dense, the rest MoE)")
        ("experts", po::value(&s.experts)->default_value(s.experts), "routed experts per MoE layer")
        ("expert-inner", po::value(&s.expert_inner)->default_value(s.expert_inner), "routed expert inner size")
        ("shared", po::value(&s.shared)->default_value(s.shared), "shared experts (inner size shared × expert-inner; deepseek*, glm4_moe and qwen2_moe only)")
        ("top-k", po::value(&s.top_k)->default_value(s.top_k), "experts per token")
        ("vocab", po::value(&s.vocab)->default_value(s.vocab), "vocabulary size (without --tokenizer)")
        ("dense-inner", po::value(&s.dense_inner)->default_value(s.dense_inner), "layer 0's dense MLP inner size")
        ("max-positions", po::value(&s.max_positions)->default_value(s.max_positions), "max_position_embeddings")
        ("init", po::value(&init)->default_value(init),
         "weights: random (every block moves the residual stream: tests, benchmarks) or pretrain "
         "(transformers' initialisation, N(0, 0.02) and norms of 1: where cdmoe-train --train all starts)")
        ("fp8", po::bool_switch(&s.fp8), "deepseek_v3: store the layers' projections as F8_E4M3 in 128 x 128 blocks with scale_inv, as DeepSeek-V3 ships them")
        ("seed", po::value(&s.seed)->default_value(0), "random seed");
    auto args = parse_options(argc, argv, options, false);
    if (!args) return 0;
    if (out.empty()) throw_bad_input("--out is required (see --help)");
    if (s.hidden % s.heads != 0) throw_bad_input("--hidden must be a multiple of --heads");
    if (s.layers < 2 || s.experts < 1 || s.top_k < 1 || s.top_k > s.experts) {
      throw_bad_input("need --layers >= 2 and 1 <= --top-k <= --experts");
    }
    if (init != "random" && init != "pretrain") throw_bad_input("--init: \"" + init + "\" is not one of random, pretrain");
    s.pretrain_init = init == "pretrain";
    s.bf16 = false;
    model::write_synthetic_checkpoint(out, s);
    std::cerr << "cdmoe-synth: wrote " << out << "\n";
    return 0;
  });
}
