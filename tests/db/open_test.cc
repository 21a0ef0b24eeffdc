// Opening bad database files: one-line bad-input error, and the file left byte-for-byte as it was.
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "core/error.h"
#include "db/database.h"
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

TEST(OpenDatabase, MigratesAVersionOneDatabaseKeepingItsRows) {
  TempDir dir;
  std::string path = dir.file("v1.db");
  make_store_with_rows(path, 3);
  raw_sql(path, "DROP TABLE router_stats; DROP TABLE sweep_leases; DROP VIEW pareto; "  // what version 1 wrote
                "ALTER TABLE pareto_points DROP COLUMN speed_low; ALTER TABLE pareto_points DROP COLUMN speed_high; "
                "PRAGMA user_version = 1");
  std::string before = read_file(path);
  EXPECT_NE(open_error(path, OpenMode::kReadOnly).find("init"), std::string::npos) << "a reader never migrates";
  EXPECT_EQ(read_file(path), before);
  {
    Store store(path);
    Statement candidates(store.connection(), "SELECT count(*) FROM candidates");
    ASSERT_TRUE(candidates.step());
    EXPECT_EQ(candidates.column_int(0), 3);
    Statement routing(store.connection(), "SELECT count(*) FROM router_stats");
    ASSERT_TRUE(routing.step());
    EXPECT_EQ(routing.column_int(0), 0);
    Statement leases(store.connection(), "SELECT count(*) FROM sweep_leases");
    ASSERT_TRUE(leases.step());
    EXPECT_EQ(leases.column_int(0), 0);
    Statement front(store.connection(), "SELECT count(*), count(speed_low) FROM pareto");  // version 4's view
    ASSERT_TRUE(front.step());
    EXPECT_EQ(front.column_int(1), 0) << "old points have no speed interval";
  }
  Connection c = open_database(path, OpenMode::kReadOnly);
  Statement version(c, "PRAGMA user_version");
  ASSERT_TRUE(version.step());
  EXPECT_EQ(version.column_int(0), 4);
  EXPECT_EQ(latest_schema_version(), 4);
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
