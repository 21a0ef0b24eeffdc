// Time to draw the HTML report of a large sweep: reading its snapshot from the database and
// rendering the page, as `cdmoe-report html` does. One JSON line on stdout.
//   report_bench [--candidates N] [--dir DIR]
// The sweep is shaped like a real one of DeepSeekMoE-16B scale: N - 400 expert-selection
// candidates (27 layers x 64 experts per round, one search metric each), 300 layer-selection
// candidates and 100 full evaluations (8 methods) with task, memory, speed and perplexity
// metrics, and router statistics for 27 layers x 64 experts.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "bench/median_time.h"
#include "db/database.h"
#include "db/store.h"
#include "db/sweep_snapshot.h"
#include "report/html_report.h"

using namespace cdmoe;

int main(int argc, char** argv) {
  int total = 50000;
  std::string dir = std::filesystem::temp_directory_path().string();
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--candidates") total = std::atoi(argv[i + 1]);
    else if (flag == "--dir") dir = argv[i + 1];
  }
  std::string path = dir + "/report-bench-" + std::to_string(getpid()) + ".db";
  {
    db::Store store(path);
    db::SweepSpec spec;
    spec.name = "bench";
    spec.strategy = "cdmoe,drop";
    spec.config = {{"objective", "js-logits"}};
    int64_t sweep = store.create_sweep(spec);
    std::vector<db::CandidateSpec> specs;
    std::vector<Result> results;
    const int search = total - 400;
    for (int i = 0; i < total; ++i) {
      Plan plan;
      Result r;
      if (i < search) {  // expert selection: round i / 1728 keeps experts 0..round-1 plus one more
        int layer = 1 + i % 27, round = i / (27 * 64);
        std::vector<int> experts;
        for (int e = 0; e < round; ++e) experts.push_back(e);
        experts.push_back(round + (i / 27) % (64 - round));
        plan.set_layer(layer, LayerPlan{LayerOp::kCondense, experts, {}, {}});
        specs.push_back({"expert_select", "cdmoe", plan, {}, ""});
        r.metrics = {{"js_hidden_layer", 1.0 / (1 + i % 977), "nats"}};
      } else if (i < total - 100) {  // layer selection
        int n = i - search;
        for (int l = 0; l <= n % 27; ++l) plan.set_layer(1 + (l + n) % 27, LayerPlan{LayerOp::kCondense, {n % 64}, {}, {}});
        specs.push_back({"layer_select_k6", "cdmoe_sr_k6", plan, {}, "layers:" + std::to_string(1 + n % 27)});
        r.metrics = {{"js_logits_model", 0.01 * (1 + n % 27), "nats"}};
      } else {  // full evaluations, 8 methods
        int n = i - (total - 100);
        for (int l = 0; l <= n / 8; ++l) plan.set_layer(1 + l, LayerPlan{LayerOp::kDrop, {}, {}, {}});
        plan.set_layer(27, LayerPlan{LayerOp::kCondense, {n % 8}, {}, {}});
        specs.push_back({"full_eval", "method_" + std::to_string(n % 8), plan, {}, "layers:" + std::to_string(1 + n / 8)});
        r.metrics = {{"task_acc_mean", 0.6 - 0.01 * n / 8, "ratio"}, {"piqa_acc", 0.6, "ratio"},
                     {"piqa_acc_stderr", 0.011, "ratio"}, {"param_ratio", 1 - 0.02 * n / 8, "ratio"},
                     {"param_bytes", 3e10 * (1 - 0.02 * n / 8), "bytes"}, {"speedup", 1 + 0.02 * n / 8, "ratio"},
                     {"perplexity", 7 + 0.1 * n, ""}, {"js_logits_model", 0.01 * n, "nats"}};
      }
      results.push_back(r);
    }
    std::vector<int64_t> ids = store.add_candidates(sweep, specs);
    store.connection().exec("UPDATE candidates SET state = 'RUNNING', attempts = 1");
    for (size_t i = 0; i < results.size(); ++i) results[i].candidate_id = ids[i], results[i].worker_rank = 1;
    for (size_t at = 0; at < results.size(); at += 5000) {
      store.record_results(std::vector<Result>(results.begin() + long(at), results.begin() + long(std::min(results.size(), at + 5000))));
    }
    std::vector<ExpertRouting> routing;
    for (int l = 1; l <= 27; ++l) {
      for (int e = 0; e < 64; ++e) routing.push_back({l, e, double(100 + (l * e) % 90), 0.1});
    }
    store.record_routing(sweep, routing, 1);
    store.set_sweep_state(sweep, "DONE");
  }
  db::Connection connection = db::open_database(path, db::OpenMode::kReadOnly);
  size_t bytes = 0;
  double read_s = bench::median_seconds(3, [&] { db::read_sweep_snapshot(connection, "bench"); });
  db::SweepSnapshot snapshot = db::read_sweep_snapshot(connection, "bench");
  double render_s = bench::median_seconds(3, [&] {
    bytes = report::render_html_report({snapshot}, {path, "now", "report_bench"}).size();
  });
  double total_s = bench::median_seconds(3, [&] {
    report::render_html_report({db::read_sweep_snapshot(connection, "bench")}, {path, "now", "report_bench"});
  });
  std::printf("%s\n", nlohmann::json{{"bench", "report_html"}, {"candidates", total}, {"read_s", read_s},
                                     {"render_s", render_s}, {"total_s", total_s}, {"html_bytes", bytes}}
                          .dump().c_str());
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
  return 0;
}
