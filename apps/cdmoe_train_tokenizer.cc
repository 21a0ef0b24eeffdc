// cdmoe-train-tokenizer: trains a byte-level BPE tokenizer (model/bpe_trainer.h) on text and
// writes DIR/tokenizer.json and DIR/tokenizer_config.json, each atomically.
//   cdmoe-train-tokenizer --data FILE --out DIR [--vocab-size 4096] [--min-frequency 2]
// FILE: JSONL {"text"} (the name ends in .jsonl) or a document a line.
#include <filesystem>
#include <iostream>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include "apps/cli.h"
#include "core/error.h"
#include "eval/text_data.h"
#include "model/bpe_trainer.h"

namespace po = boost::program_options;
using namespace cdmoe;

namespace {

int train_tokenizer_main(int argc, char** argv) {
  po::options_description options("usage: cdmoe-train-tokenizer --data FILE --out DIR [options]\n\noptions");
  options.add_options()
      ("help,h", "print this help")
      ("data", po::value<std::string>(), "training text: JSONL {\"text\"} (name ends in .jsonl) or a document a line")
      ("out", po::value<std::string>(), "directory for tokenizer.json and tokenizer_config.json (created)")
      ("vocab-size", po::value<int64_t>()->default_value(4096), "tokens in all: 256 bytes, merges, <|endoftext|>")
      ("min-frequency", po::value<int64_t>()->default_value(2), "a pair merges only if it occurs this often");
  auto parsed = parse_options(argc, argv, options, /*with_command=*/false);
  if (!parsed) return 0;
  const po::variables_map& args = *parsed;
  if (!args.count("data") || !args.count("out")) throw_bad_input("--data and --out are required (see --help)");
  model::BpeTrainingOptions training;
  training.vocab_size = args["vocab-size"].as<int64_t>();
  training.min_frequency = args["min-frequency"].as<int64_t>();
  if (training.vocab_size < 258 || training.vocab_size > (1 << 24)) throw_bad_input("--vocab-size must lie in [258, 2^24]");
  if (training.min_frequency < 1) throw_bad_input("--min-frequency must be at least 1");
  eval::Documents documents = eval::read_documents(args["data"].as<std::string>());

  const std::string out = args["out"].as<std::string>();
  std::filesystem::create_directories(out);
  const std::string skeleton = out + "/.skeleton-tokenizer.json";
  write_file_atomically(skeleton, model::byte_level_skeleton(training).dump(), "--out");
  model::BpeTrainingStats stats;
  Json tokenizer;
  try {
    tokenizer = model::train_byte_level_bpe(skeleton, documents.texts, training, &stats);
  } catch (...) {
    std::filesystem::remove(skeleton);
    throw;
  }
  std::filesystem::remove(skeleton);
  write_file_atomically(out + "/tokenizer.json", tokenizer.dump(1) + "\n", "--out");
  Json config = {{"tokenizer_class", "PreTrainedTokenizerFast"}, {"eos_token", training.end_of_text},
                 {"bos_token", nullptr}, {"unk_token", nullptr}, {"model_max_length", 1 << 20},
                 {"clean_up_tokenization_spaces", false}};
  write_file_atomically(out + "/tokenizer_config.json", config.dump(2) + "\n", "--out");
  std::cout << "wrote " << out << "/tokenizer.json: " << tokenizer["model"]["vocab"].size() << " tokens ("
            << stats.merges << " merges) from " << stats.words << " words (" << stats.distinct_words << " distinct), "
            << "sha256 of the text " << documents.content_hash << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return run_cli("cdmoe-train-tokenizer", [&] { return train_tokenizer_main(argc, argv); });
}
