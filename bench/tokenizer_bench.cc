// Tokenizer encode throughput (MB of UTF-8 text per second, one thread) on the real benchmark
// text (PIQA goals and solutions, ARC-Easy questions and choices), cold (first pass, empty
// word cache) and warm (second pass); then the same words as one long line against lines of
// 100 words (a reader given one huge line must cost what the same text in lines costs). One
// JSON line per tokenizer and measurement.
//   tokenizer_bench [TOKENIZERS_DIR] [BENCHMARKS_DIR] [--long-words N]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/tokenizer.h"

using namespace cdmoe;

int main(int argc, char** argv) {
  std::vector<std::string> positional;
  int64_t long_words = 40000;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--long-words" && i + 1 < argc) long_words = std::atoll(argv[++i]);
    else positional.push_back(argv[i]);
  }
  std::string tokenizers = positional.size() > 0 ? positional[0] : std::string(CDMOE_SOURCE_DIR) + "/third_party/tokenizers";
  std::string benchmarks = positional.size() > 1 ? positional[1] : std::string(CDMOE_SOURCE_DIR) + "/data/benchmarks";
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
    // The benchmark text's words, `long_words` of them, as one line and as lines of 100 words.
    std::vector<std::string> words;
    for (const std::string& t : texts) {
      std::istringstream split(t);
      for (std::string w; split >> w;) words.push_back(w);
    }
    std::string one_line;
    std::vector<std::string> lines(1);
    for (int64_t i = 0; i < long_words; ++i) {
      const std::string& w = words[size_t(i) % words.size()];
      one_line += (i ? " " : "") + w;
      if (i % 100 == 0 && i > 0) lines.emplace_back();
      lines.back() += (lines.back().empty() ? "" : " ") + w;
    }
    auto timed = [&](const std::function<void()>& work) {
      auto start = std::chrono::steady_clock::now();
      work();
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    };
    size_t long_tokens = 0, lines_tokens = 0;
    double long_s = timed([&] { long_tokens = tokenizer->encode(one_line).size(); });
    double lines_s = timed([&] {
      for (const std::string& line : lines) lines_tokens += tokenizer->encode(line).size();
    });
    std::printf("%s\n", nlohmann::json{{"bench", "tokenizer_long_line"}, {"tokenizer", name}, {"words", long_words},
                                       {"bytes", one_line.size()}, {"one_line_s", long_s}, {"one_line_mb_per_s", one_line.size() / long_s / 1e6},
                                       {"one_line_tokens", long_tokens}, {"lines", lines.size()}, {"lines_s", lines_s},
                                       {"lines_mb_per_s", one_line.size() / lines_s / 1e6}, {"lines_tokens", lines_tokens}}
                            .dump().c_str());
  }
  return 0;
}
