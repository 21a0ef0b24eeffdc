// Helper for crash_test: writes a stream of results (10 metrics each) into DB_PATH forever,
// printing each candidate id on stdout only after the commit that holds it has returned.
// The test SIGKILLs it at random points.
#include <cstdio>
#include <cstdlib>

#include "core/error.h"
#include "db/store.h"
#include "tests/db/db_test_util.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: crash_writer DB_PATH\n");
    return 2;
  }
  try {
    cdmoe::db::Store store(argv[1]);
    auto sweep = store.find_sweep("crash");
    int64_t sweep_id = sweep ? sweep->id : store.create_sweep(cdmoe::testing::test_sweep("crash"));
    int next = int(store.candidates(sweep_id).size());
    std::printf("ready\n");
    std::fflush(stdout);
    for (;;) {
      auto ids = store.add_candidates(sweep_id, cdmoe::testing::numbered_candidates(next, 4));
      next += 4;
      std::vector<cdmoe::Result> results;
      for (int64_t id : ids) {
        store.mark_dispatched(id, 1, "crash-host");
        results.push_back(cdmoe::testing::result_with_metrics(id));
      }
      store.record_results(results);
      for (int64_t id : ids) std::printf("%lld\n", static_cast<long long>(id));
      std::fflush(stdout);
    }
  } catch (const cdmoe::Error& e) {
    std::fprintf(stderr, "crash_writer: error: %s\n", e.what());
    return e.exit_code();
  }
}
