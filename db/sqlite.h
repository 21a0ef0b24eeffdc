// RAII wrappers over the SQLite C API: Connection, Statement, Transaction. All SQL of cdmoe
// lives in db/, all values are bound as parameters. A Connection and its Statements belong to
// one thread at a time; readers on other threads or processes open their own Connection (WAL
// lets them read while the one writer writes). Errors throw cdmoe::Error carrying
// sqlite3_errmsg and the database path.
#pragma once

#include <cstdint>
#include <string>
#include <variant>

struct sqlite3;
struct sqlite3_stmt;

namespace cdmoe::db {

enum class OpenMode { kReadOnly, kReadWrite };

// A cell of a query result: NULL, integer, real or text.
using Value = std::variant<std::monostate, int64_t, double, std::string>;

class Connection {
 public:
  // Opens (kReadWrite: creating if absent) without any schema checks; see database.h for that.
  Connection(const std::string& path, OpenMode mode);
  ~Connection();
  Connection(Connection&& other) noexcept;
  Connection& operator=(Connection&& other) noexcept;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Runs statements that return no rows (DDL, PRAGMA assignments).
  void exec(const std::string& sql);
  int64_t last_insert_rowid() const;
  int changes() const;  // rows changed by the last statement
  bool read_only() const;

  sqlite3* handle() const { return db_; }
  const std::string& path() const { return path_; }

  // Throws Error with this connection's message for result code `rc` while doing `what`.
  [[noreturn]] void fail(int rc, const std::string& what) const;

 private:
  sqlite3* db_ = nullptr;
  std::string path_;
};

class Statement {
 public:
  Statement(Connection& connection, const std::string& sql);
  ~Statement();
  Statement(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // Parameters are 1-based, as in SQLite. Binding to a statement that was stepped resets it
  // first, so a statement reused after an exception or an early return is always usable.
  Statement& bind(int index, int64_t value);
  Statement& bind(int index, int value) { return bind(index, int64_t(value)); }
  Statement& bind(int index, double value);  // non-finite values are stored as NULL
  Statement& bind(int index, const std::string& value);
  Statement& bind(int index, const char* value) { return bind(index, std::string(value)); }
  Statement& bind_null(int index);

  // Binds every argument in order from parameter 1.
  template <typename... Args>
  Statement& bind_all(const Args&... args) {
    int index = 0;
    (bind(++index, args), ...);
    return *this;
  }

  bool step();  // true: a row is ready; false: done. Throws on error.
  void run();   // steps to completion, ignoring rows, then resets
  void reset();  // ready to run again; keeps bindings until rebound

  int column_count() const;
  std::string column_name(int index) const;
  bool column_is_null(int index) const;
  int64_t column_int(int index) const;
  double column_double(int index) const;
  std::string column_text(int index) const;
  Value column_value(int index) const;

 private:
  void reset_if_stepped();

  Connection* connection_;
  sqlite3_stmt* stmt_ = nullptr;
  bool stepped_ = false;
};

// BEGIN IMMEDIATE on construction (takes the write lock at once, so a busy DB fails here and
// not halfway through); ROLLBACK on destruction unless commit() returned. Inside another
// transaction it is a SAVEPOINT instead: commit() releases it into the outer one (nothing is
// durable until the outermost commits) and destruction without commit() undoes only its own
// changes. That lets a caller group several whole-unit writes into one commit.
class Transaction {
 public:
  explicit Transaction(Connection& connection);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  void commit();

 private:
  Connection& connection_;
  bool nested_ = false;
  bool done_ = false;
};

}  // namespace cdmoe::db
