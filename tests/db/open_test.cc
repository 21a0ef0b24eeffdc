// Opening bad database files: one-line bad-input error, and the file left byte-for-byte as it was.
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "db/database.h"
#include "db/schema.h"
#include "db/store.h"
#include "tests/db/db_test_util.h"
#include "tests/test_util.h"

namespace cdmoe::db {
namespace {

using cdmoe::testing::TempDir;
using cdmoe::testing::read_file;
using cdmoe::testing::write_file;

std::string open_error(const std::string& path, OpenMode mode) {
  try {
    open_database(path, mode);
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), 2) << e.what();
    std::string message = e.what();
    EXPECT_EQ(message.find('\n'), std::string::npos);
    EXPECT_NE(message.find(path), std::string::npos) << "names the file: " << message;
    return message;
  }
  ADD_FAILURE() << "opened " << path;
  return "";
}

void raw_sql(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  sqlite3_close(db);
}

void make_store_with_rows(const std::string& path, int candidates) {
  Store store(path);
  int64_t sweep = store.create_sweep(cdmoe::testing::test_sweep("s"));
  store.add_candidates(sweep, cdmoe::testing::numbered_candidates(0, candidates));
}

TEST(OpenDatabase, CreatesFreshAndReopens) {
  TempDir dir;
  { Connection c = open_database(dir.file("r.db"), OpenMode::kReadWrite); }
  Connection c = open_database(dir.file("r.db"), OpenMode::kReadOnly);
  Statement version(c, "PRAGMA user_version");
  ASSERT_TRUE(version.step());
  EXPECT_EQ(version.column_int(0), latest_schema_version());
  Statement mode(c, "PRAGMA journal_mode");
  ASSERT_TRUE(mode.step());
  EXPECT_EQ(mode.column_text(0), "wal");
}

TEST(OpenDatabase, RefusesDirectory) {
  TempDir dir;
  EXPECT_NE(open_error(dir.path(), OpenMode::kReadWrite).find("is a directory"), std::string::npos);
  EXPECT_NE(open_error(dir.path(), OpenMode::kReadOnly).find("is a directory"), std::string::npos);
}

TEST(OpenDatabase, RefusesMissingFileForReadingAndMissingDirectoryForWriting) {
  TempDir dir;
  EXPECT_NE(open_error(dir.file("none.db"), OpenMode::kReadOnly).find("does not exist"), std::string::npos);
  EXPECT_NE(open_error(dir.file("no/such/dir/r.db"), OpenMode::kReadWrite).find("does not exist"), std::string::npos);
  EXPECT_FALSE(access(dir.file("none.db").c_str(), F_OK) == 0) << "reading must not create the file";
}

TEST(OpenDatabase, RefusesNonSqliteFileUntouched) {
  TempDir dir;
  std::string path = dir.file("notes.db");
  std::string text = "these are my notes, not a database\n";
  for (int i = 0; i < 200; ++i) text += "line " + std::to_string(i) + "\n";
  write_file(path, text);
  EXPECT_NE(open_error(path, OpenMode::kReadWrite).find("is not a SQLite database"), std::string::npos);
  EXPECT_NE(open_error(path, OpenMode::kReadOnly).find("is not a SQLite database"), std::string::npos);
  EXPECT_EQ(read_file(path), text);
}

TEST(OpenDatabase, RefusesAnotherApplicationsDatabaseUntouched) {
  TempDir dir;
  std::string path = dir.file("other.db");
  raw_sql(path, "CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO photos VALUES (1, 'cat');");
  std::string before = read_file(path);
  EXPECT_NE(open_error(path, OpenMode::kReadWrite).find("another application"), std::string::npos);
  EXPECT_EQ(read_file(path), before);
}

TEST(OpenDatabase, RefusesNewerSchemaUntouched) {
  TempDir dir;
  std::string path = dir.file("future.db");
  make_store_with_rows(path, 3);
  raw_sql(path, "PRAGMA user_version = 99");
  std::string before = read_file(path);
  std::string message = open_error(path, OpenMode::kReadWrite);
  EXPECT_NE(message.find("schema version 99, newer than this cdmoe's " + std::to_string(latest_schema_version())),
            std::string::npos) << message;
  EXPECT_NE(open_error(path, OpenMode::kReadOnly).find("newer"), std::string::npos);
  EXPECT_EQ(read_file(path), before);
}

// A database as version 1 wrote it (its own DDL, not today's minus later tables): a sweep, a
// parent candidate and its child, metrics and a loss curve, all pointing at candidates, which
// version 5 rebuilds.
void make_version_one_database(const std::string& path) {
  raw_sql(path, migrations()[0] + "PRAGMA application_id = " + std::to_string(kApplicationId) + "; PRAGMA user_version = 1;" +
                    R"sql(
      INSERT INTO sweeps (id, name, strategy, config_json, config_hash, seed, git_commit, host, model_path, model_hash)
        VALUES (1, 's', 'cdmoe', '{}', 'h', 0, 'c', 'host', '/m', 'mh');
      INSERT INTO candidates (id, sweep_id, stage, method, plan_json, plan_hash, parent_id, budget, state)
        VALUES (1, 1, 'full_eval', 'cdmoe_s', '{"layers":{}}', 'p1', NULL, 'layers:1', 'DONE'),
               (2, 1, 'finetune', 'cdmoe_s_ft', '{"layers":{}}', 'p1', 1, 'layers:1', 'DONE'),
               (3, 1, 'full_eval', 'original', '{"layers":{}}', 'p0', NULL, NULL, 'WAITING');
      INSERT INTO metric_names (name, unit) VALUES ('perplexity', '');
      INSERT INTO metrics (candidate_id, name, value) VALUES (1, 'perplexity', 40.5), (2, 'perplexity', 39.5);
      INSERT INTO finetune_steps (candidate_id, step, loss, lr, tokens) VALUES (2, 0, 3.5, 1e-5, 100);
    )sql");
}

TEST(OpenDatabase, MigratesAVersionOneDatabaseKeepingItsRows) {
  TempDir dir;
  std::string path = dir.file("v1.db");
  make_version_one_database(path);
  std::string before = read_file(path);
  EXPECT_NE(open_error(path, OpenMode::kReadOnly).find("init"), std::string::npos) << "a reader never migrates";
  EXPECT_EQ(read_file(path), before);
  auto count = [](Connection& c, const std::string& sql) {
    Statement s(c, sql);
    EXPECT_TRUE(s.step()) << sql;
    return s.column_int(0);
  };
  {
    Store store(path);
    Connection& c = store.connection();
    EXPECT_EQ(count(c, "SELECT count(*) FROM candidates"), 3);
    EXPECT_EQ(count(c, "SELECT parent_id FROM candidates WHERE id = 2"), 1);
    EXPECT_EQ(count(c, "SELECT count(*) FROM metrics m JOIN candidates c ON c.id = m.candidate_id"), 2);
    EXPECT_EQ(count(c, "SELECT count(*) FROM finetune_steps"), 1);
    EXPECT_EQ(count(c, "SELECT count(*) FROM results WHERE sweep = 's'"), 3) << "the views read the rebuilt table";
    EXPECT_EQ(count(c, "SELECT count(*) FROM pragma_foreign_key_check"), 0);
    EXPECT_EQ(count(c, "SELECT count(*) FROM router_stats"), 0);
    EXPECT_EQ(count(c, "SELECT count(*) FROM sweep_leases"), 0);
    EXPECT_EQ(count(c, "SELECT count(*) FROM train_runs"), 0);
    EXPECT_EQ(count(c, "SELECT count(*) FROM finetune_held_out"), 0);  // version 6
    EXPECT_EQ(count(c, "SELECT count(*) FROM artifacts"), 0);          // version 7
    Statement front(c, "SELECT count(*), count(speed_low) FROM pareto");  // version 4's view
    ASSERT_TRUE(front.step());
    EXPECT_EQ(front.column_int(1), 0) << "old points have no speed interval";
    // Version 5's key: the sweep's own candidates stay unique by (stage, plan) ...
    EXPECT_EQ(store.add_candidates(1, {{"full_eval", "cdmoe_s", Plan(), {}, ""}}).front(),
              store.add_candidates(1, {{"full_eval", "cdmoe_s", Plan(), {}, ""}}).front());
    // ... while cdmoe-train's fine-tunes of one plan are candidates of their own.
    const int64_t first = store.add_candidates(1, {{kManualFinetuneStage, "cdmoe_s_ft", Plan(), 1, ""}}).front();
    EXPECT_NE(store.add_candidates(1, {{kManualFinetuneStage, "cdmoe_s_ft", Plan(), 1, ""}}).front(), first);
  }
  Connection c = open_database(path, OpenMode::kReadOnly);
  EXPECT_EQ(count(c, "PRAGMA user_version"), latest_schema_version());
  EXPECT_EQ(latest_schema_version(), 7);
}

// Two writers opening the same old file at once (two jobs of one array starting together): the
// second to take the write lock finds it migrated already instead of running the steps again.
TEST(OpenDatabase, TwoWritersOpeningAnOldFileAtOnceMigrateItOnce) {
  for (int round = 0; round < 5; ++round) {
    TempDir dir;
    std::string path = dir.file("v1.db");
    make_version_one_database(path);
    std::vector<std::string> errors(4);
    std::vector<std::thread> openers;
    for (size_t t = 0; t < errors.size(); ++t) {
      openers.emplace_back([&, t] {
        try {
          Store store(path);
        } catch (const std::exception& e) {
          errors[t] = e.what();
        }
      });
    }
    for (std::thread& t : openers) t.join();
    for (const std::string& e : errors) EXPECT_EQ(e, "") << "round " << round;
    Connection c = open_database(path, OpenMode::kReadOnly);
    Statement version(c, "PRAGMA user_version");
    ASSERT_TRUE(version.step());
    EXPECT_EQ(version.column_int(0), latest_schema_version());
    Statement rows(c, "SELECT count(*) FROM candidates");
    ASSERT_TRUE(rows.step());
    EXPECT_EQ(rows.column_int(0), 3);
  }
}

TEST(OpenDatabase, RefusesCorruptFileUntouched) {
  TempDir dir;
  std::string path = dir.file("corrupt.db");
  make_store_with_rows(path, 400);
  std::string bytes = read_file(path);
  ASSERT_GT(bytes.size(), 6u * 4096);
  // Scribble over the b-tree pages after the schema page; the header stays valid.
  for (size_t i = 4096; i < 6 * 4096; ++i) bytes[i] = char(0xA5 ^ (i * 31));
  write_file(path, bytes);
  EXPECT_NE(open_error(path, OpenMode::kReadWrite).find("corrupt"), std::string::npos);
  EXPECT_NE(open_error(path, OpenMode::kReadOnly).find("corrupt"), std::string::npos);
  EXPECT_EQ(read_file(path), bytes);
}

TEST(OpenDatabase, RefusesEmptyFileForReading) {
  TempDir dir;
  write_file(dir.file("empty.db"), "");
  EXPECT_NE(open_error(dir.file("empty.db"), OpenMode::kReadOnly).find("holds no cdmoe results"), std::string::npos);
}

}  // namespace
}  // namespace cdmoe::db
