// The flags every model benchmark takes: --threads N (ATen's intra-op threads, default 2),
// --repeats R (timed runs, median taken, default 3) and --dir DIR (where its synthetic
// checkpoints are written once and reused, default $TMPDIR/<default_dir_name>).
#pragma once

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace cdmoe::bench {

struct BenchArgs {
  int threads = 2, repeats = 3;
  std::string dir;
};

inline BenchArgs parse_bench_args(int argc, char** argv, const std::string& default_dir_name) {
  BenchArgs args;
  args.dir = std::filesystem::temp_directory_path().string() + "/" + default_dir_name;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--threads") args.threads = std::max(1, std::atoi(argv[i + 1]));
    else if (flag == "--dir") args.dir = argv[i + 1];
    else if (flag == "--repeats") args.repeats = std::max(1, std::atoi(argv[i + 1]));
  }
  return args;
}

}  // namespace cdmoe::bench
