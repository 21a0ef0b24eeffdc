#include "db/database.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

#include <sqlite3.h>

#include "core/error.h"
#include "db/schema.h"

namespace cdmoe::db {
namespace {

std::string parent_directory(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// Filesystem checks that SQLite would report vaguely ("unable to open database file") or,
// for an unwritable file, not at all (it silently opens read-only).
bool check_path(const std::string& path, OpenMode mode) {
  struct stat info {};
  bool exists = stat(path.c_str(), &info) == 0;
  std::string where = "results DB '" + path + "'";
  if (exists && S_ISDIR(info.st_mode)) throw_bad_input(where + " is a directory, not a database file");
  if (exists && !S_ISREG(info.st_mode)) throw_bad_input(where + " is not a regular file");
  if (mode == OpenMode::kReadOnly) {
    if (!exists) throw_bad_input(where + " does not exist");
    if (access(path.c_str(), R_OK) != 0) throw_bad_input(where + " is not readable (permission denied)");
    return true;
  }
  std::string directory = parent_directory(path);
  struct stat dir_info {};
  if (stat(directory.c_str(), &dir_info) != 0 || !S_ISDIR(dir_info.st_mode)) {
    throw_bad_input(where + ": directory '" + directory + "' does not exist");
  }
  if (exists && access(path.c_str(), R_OK | W_OK) != 0) {
    throw_bad_input(where + " is not writable (permission denied)");
  }
  // WAL needs its -wal and -shm files beside the database.
  if (access(directory.c_str(), W_OK | X_OK) != 0) {
    throw_bad_input(where + ": directory '" + directory + "' is not writable (permission denied)");
  }
  return exists;
}

int64_t pragma_int(Connection& connection, const std::string& pragma) {
  Statement statement(connection, "PRAGMA " + pragma);
  return statement.step() ? statement.column_int(0) : 0;
}

// First problem quick_check reports, on one line ("ok" when none).
std::string quick_check(Connection& connection) {
  Statement statement(connection, "PRAGMA quick_check(1)");
  std::string answer = statement.step() ? statement.column_text(0) : std::string("no answer");
  for (char& c : answer) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return answer;
}

void migrate(Connection& connection) {
  const std::vector<std::string>& steps = migrations();
  Transaction transaction(connection);  // BEGIN IMMEDIATE: one migrating writer at a time
  // Read again under the write lock: another process that opened the same old file at the same
  // moment may have migrated it while this one waited for the lock.
  const int64_t from_version = pragma_int(connection, "user_version");
  if (from_version >= int64_t(steps.size())) return;
  for (size_t version = size_t(from_version); version < steps.size(); ++version) {
    connection.exec(steps[version]);
  }
  connection.exec("PRAGMA application_id = " + std::to_string(kApplicationId));
  connection.exec("PRAGMA user_version = " + std::to_string(steps.size()));
  transaction.commit();
}

}  // namespace

int latest_schema_version() { return int(migrations().size()); }

Connection open_database(const std::string& path, OpenMode mode) {
  check_path(path, mode);
  std::string where = "results DB '" + path + "'";
  Connection connection(path, mode);

  int64_t application_id = 0, version = 0, tables = 0;
  try {
    application_id = pragma_int(connection, "application_id");
    version = pragma_int(connection, "user_version");
    Statement count(connection, "SELECT count(*) FROM sqlite_master");
    tables = count.step() ? count.column_int(0) : 0;
  } catch (const Error&) {
    throw_bad_input(where + " is not a SQLite database (" + sqlite3_errmsg(connection.handle()) + ")");
  }

  bool fresh = application_id == 0 && version == 0 && tables == 0;
  if (!fresh && application_id != kApplicationId) {
    char id[16];
    std::snprintf(id, sizeof id, "0x%08llx", static_cast<unsigned long long>(application_id));
    throw_bad_input(where + " is a SQLite database of another application (application_id " + id + ", " +
                    std::to_string(tables) + " schema objects), not a cdmoe results database");
  }
  if (version > latest_schema_version()) {
    throw_bad_input(where + " has schema version " + std::to_string(version) + ", newer than this cdmoe's " +
                    std::to_string(latest_schema_version()) + "; use a newer cdmoe build");
  }
  if (!fresh) {
    std::string check;
    try {
      check = quick_check(connection);
    } catch (const Error&) {
      throw_bad_input(where + " is corrupt (" + sqlite3_errmsg(connection.handle()) + ")");
    }
    if (check != "ok") throw_bad_input(where + " is corrupt (quick_check: " + check + ")");
  }

  if (mode == OpenMode::kReadOnly) {
    if (fresh) throw_bad_input(where + " is empty: it holds no cdmoe results");
    if (version < latest_schema_version()) {
      throw_bad_input(where + " has schema version " + std::to_string(version) + ", older than " +
                      std::to_string(latest_schema_version()) + "; run `cdmoe-db --db " + path + " init` to migrate it");
    }
    return connection;
  }
  if (connection.read_only()) throw_bad_input(where + " is not writable");
  connection.exec("PRAGMA journal_mode = WAL");
  connection.exec("PRAGMA synchronous = NORMAL");
  // A 64 MiB page cache and a checkpoint every ~40 MB of WAL (not 4 MB) let hot index pages be
  // written back once per checkpoint instead of many times (BENCHMARKS.md).
  connection.exec("PRAGMA cache_size = -65536");
  connection.exec("PRAGMA wal_autocheckpoint = 10000");
  connection.exec("PRAGMA foreign_keys = ON");
  if (version < latest_schema_version()) migrate(connection);
  return connection;
}

std::string integrity_check(Connection& connection) {
  Statement check(connection, "PRAGMA integrity_check");
  return check.step() ? check.column_text(0) : "no answer";
}

}  // namespace cdmoe::db
