// Tokenizer encode throughput (MB of UTF-8 text per second, one thread) on the real benchmark
// text (PIQA goals and solutions, ARC-Easy questions and choices), cold (first pass, empty
// word cache) and warm (second pass). One JSON line per tokenizer.
//   tokenizer_bench [TOKENIZERS_DIR] [BENCHMARKS_DIR]
#include <chrono>
#include <cstdio>
#include <fstream>

#include <nlohmann/json.hpp>

#include "model/tokenizer.h"

using namespace cdmoe;

int main(int argc, char** argv) {
  std::string tokenizers = argc > 1 ? argv[1] : std::string(CDMOE_SOURCE_DIR) + "/third_party/tokenizers";
  std::string benchmarks = argc > 2 ? argv[2] : std::string(CDMOE_SOURCE_DIR) + "/data/benchmarks";
  std::vector<std::string> texts;
  size_t bytes = 0;
  for (const char* file : {"piqa_valid.jsonl", "arc_easy_test.jsonl"}) {
    std::ifstream in(benchmarks + "/" + file);
    std::string line;
    while (std::getline(in, line)) {
      nlohmann::json item = nlohmann::json::parse(line);
      for (auto it = item.begin(); it != item.end(); ++it) {
        if (it->is_string()) texts.push_back(it->get<std::string>());
        if (it->is_object()) for (auto& c : *it) texts.push_back(c.get<std::string>());
      }
    }
  }
  for (const std::string& t : texts) bytes += t.size();
  for (const char* name : {"qwen3", "llama2", "deepseek_v3"}) {
    auto tokenizer = model::Tokenizer::load(tokenizers + "/" + name);
    double seconds[2];
    size_t tokens = 0;
    for (int pass = 0; pass < 2; ++pass) {
      auto start = std::chrono::steady_clock::now();
      tokens = 0;
      for (const std::string& t : texts) tokens += tokenizer->encode(t).size();
      seconds[pass] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
    std::printf("%s\n", nlohmann::json{{"bench", "tokenizer_encode"}, {"tokenizer", name}, {"texts", texts.size()},
                                       {"bytes", bytes}, {"tokens", tokens}, {"cold_mb_per_s", bytes / seconds[0] / 1e6},
                                       {"warm_mb_per_s", bytes / seconds[1] / 1e6}}
                            .dump().c_str());
  }
  return 0;
}
