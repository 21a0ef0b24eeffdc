// Result-write throughput of the results store, with a concurrent reader polling the `pareto`
// view on its own connection. One JSON line per measurement on stdout.
//   db_write_bench [--results N] [--metrics M] [--repeat R] [--reader on|off] [--dir DIR]
// Each result carries M metrics; 1 in 100 carries the three Pareto axes (a full evaluation),
// the rest search metrics, as in a real sweep. Candidates are added and set RUNNING beforehand;
// the timed part is Store::record_results in batches of B results per transaction.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include <sqlite3.h>
#include <nlohmann/json.hpp>

#include "db/database.h"
#include "db/store.h"

using namespace cdmoe;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::vector<db::CandidateSpec> candidate_specs(int count) {
  std::vector<db::CandidateSpec> specs;
  for (int i = 0; i < count; ++i) {
    // Unique (stage, plan) pairs, shaped like expert-selection candidates.
    Plan plan;
    plan.set_layer(1 + i % 27, LayerPlan{LayerOp::kCondense, {i % 64}, {}, {}});
    specs.push_back({"round_" + std::to_string(i / (27 * 64)), "bench", plan, {}, ""});
  }
  return specs;
}

Result make_result(int64_t id, int index, int metric_count) {
  Result r;
  r.candidate_id = id;
  r.worker_rank = 1 + index % 2;
  r.worker_host = "node1";
  r.elapsed_s = 0.01;
  int m = 0;
  if (index % 100 == 0) {
    r.metrics = {{"task_acc_mean", 0.5 + (index % 997) / 2000.0, "ratio"},
                 {"param_bytes", 1e10 - (index % 991) * 1e6, "bytes"},
                 {"speedup", 1.0 + (index % 983) / 1000.0, "ratio"}};
    m = 3;
  }
  for (; m < metric_count; ++m) r.metrics.push_back({"search_metric_" + std::to_string(m), 1.0 / (1 + index + m), ""});
  return r;
}

// A fresh database file at `path` with one sweep.
std::pair<std::unique_ptr<db::Store>, int64_t> fresh_store(const std::string& path) {
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
  auto store = std::make_unique<db::Store>(path);
  db::SweepSpec spec;
  spec.name = "bench";
  spec.strategy = "bench";
  int64_t sweep = store->create_sweep(spec);
  return {std::move(store), sweep};
}

nlohmann::json measure(const std::string& dir, int total, int batch, int metric_count, bool with_reader) {
  std::string path = dir + "/bench-" + std::to_string(batch) + ".db";
  auto [store_ptr, sweep] = fresh_store(path);
  db::Store& store = *store_ptr;
  std::vector<int64_t> ids = store.add_candidates(sweep, candidate_specs(total));
  store.connection().exec("UPDATE candidates SET state = 'RUNNING', attempts = 1");

  std::atomic<bool> writing{true};
  std::atomic<long> reader_queries{0};
  std::atomic<long> last_front{0};
  std::thread reader([&] {
    db::Connection c = db::open_database(path, db::OpenMode::kReadOnly);
    db::Statement front(c, "SELECT count(*) FROM pareto WHERE sweep = 'bench'");
    while (writing && with_reader) {
      front.step();
      last_front = long(front.column_int(0));
      front.reset();
      ++reader_queries;
    }
  });

  auto start = Clock::now();
  std::vector<Result> results;
  for (int i = 0; i < total; ++i) {
    results.push_back(make_result(ids[size_t(i)], i, metric_count));
    if (int(results.size()) == batch || i == total - 1) {
      store.record_results(results);
      results.clear();
    }
  }
  double elapsed = seconds_since(start);
  writing = false;
  reader.join();
  return {{"bench", "db_write"},
          {"results", total},
          {"metrics_per_result", metric_count},
          {"batch", batch},
          {"seconds", elapsed},
          {"results_per_s", total / elapsed},
          {"metric_rows_per_s", double(total) * metric_count / elapsed},
          {"reader_pareto_queries", reader_queries.load()},
          {"reader_pareto_queries_per_s", reader_queries.load() / elapsed},
          {"final_front_size", last_front.load()},
          {"concurrent_reader", with_reader},
          {"sqlite", sqlite3_libversion()}};
}

// The coordinator's per-task path: add, dispatch (one transaction each), record one result.
nlohmann::json measure_lifecycle(const std::string& dir, int total, int metric_count) {
  auto [store_ptr, sweep] = fresh_store(dir + "/bench-lifecycle.db");
  db::Store& store = *store_ptr;
  auto specs = candidate_specs(total);
  auto start = Clock::now();
  for (int i = 0; i < total; ++i) {
    int64_t id = store.add_candidates(sweep, {specs[size_t(i)]})[0];
    store.mark_dispatched(id, 1, "node1");
    store.record_result(make_result(id, i, metric_count));
  }
  double elapsed = seconds_since(start);
  return {{"bench", "db_task_lifecycle"}, {"tasks", total}, {"metrics_per_result", metric_count},
          {"seconds", elapsed}, {"tasks_per_s", total / elapsed}, {"transactions_per_task", 3}};
}

}  // namespace

int main(int argc, char** argv) {
  int total = 100000, metric_count = 10, repeat = 3;
  bool with_reader = true;
  std::string dir = std::filesystem::temp_directory_path().string();
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--results") total = std::atoi(argv[i + 1]);
    else if (flag == "--metrics") metric_count = std::atoi(argv[i + 1]);
    else if (flag == "--dir") dir = argv[i + 1];
    else if (flag == "--repeat") repeat = std::max(1, std::atoi(argv[i + 1]));
    else if (flag == "--reader") with_reader = std::string(argv[i + 1]) != "off";
    else {
      std::fprintf(stderr, "db_write_bench: error: unknown option %s\n", flag.c_str());
      return 2;
    }
  }
  // The machine is shared and noisy: repeat each configuration, report the median run with
  // the spread.
  for (int batch : {1, 16, 256}) {
    std::vector<nlohmann::json> runs;
    for (int r = 0; r < repeat; ++r) runs.push_back(measure(dir, total, batch, metric_count, with_reader));
    std::sort(runs.begin(), runs.end(), [](const auto& a, const auto& b) {
      return a["results_per_s"].template get<double>() < b["results_per_s"].template get<double>();
    });
    nlohmann::json median = runs[runs.size() / 2];
    median["repeats"] = repeat;
    median["results_per_s_min"] = runs.front()["results_per_s"];
    median["results_per_s_max"] = runs.back()["results_per_s"];
    std::printf("%s\n", median.dump().c_str());
  }
  std::printf("%s\n", measure_lifecycle(dir, std::min(total, 20000), metric_count).dump().c_str());
  for (const char* name : {"bench-1.db", "bench-16.db", "bench-256.db", "bench-lifecycle.db"}) {
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(dir + "/" + name + suffix);
  }
  return 0;
}
