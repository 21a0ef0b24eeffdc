// The loaders behind load_task (eval/tasks.h): the built-in lm-evaluation-harness tasks read
// from a --benchmarks folder in the forms users have (Hugging Face `datasets` JSONL exports and
// the original distributions), and generic FILE.jsonl tasks. Internal to eval/. Torch-free.
#pragma once

#include <cstdint>
#include <string>

#include "eval/tasks.h"

namespace cdmoe::eval {

Task load_builtin_task(const std::string& name, const std::string& benchmarks_dir, int64_t limit);
Task load_jsonl_task(const std::string& path, int64_t limit);

// lm-eval's hellaswag preprocess(): strip, " [title]" -> ". ", drop "[...]", "  " -> " ".
std::string hellaswag_preprocess(const std::string& text);

}  // namespace cdmoe::eval
