// Opening a cdmoe results database: the checks every opener makes and the schema migrations.
// A file is refused untouched (bad-input Error, exit 2) when it is a directory, not a SQLite
// file, another application's database, corrupt (PRAGMA quick_check, O(file size) once per
// open), of a newer schema than this binary, or not writable when writing was asked for.
// kReadWrite creates the file if absent, switches it to WAL (synchronous=NORMAL: a crashed
// process loses nothing committed; a power cut may lose the last commits) and applies the
// pending migrations in one transaction. kReadOnly never writes.
#pragma once

#include <string>

#include "db/sqlite.h"

namespace cdmoe::db {

constexpr int kApplicationId = 0x63644d65;  // "cdMe" in PRAGMA application_id

// The schema version this binary writes (the number of migrations).
int latest_schema_version();

Connection open_database(const std::string& path, OpenMode mode);

// SQLite's full integrity check (PRAGMA integrity_check, O(file size)): "ok", or the first
// problem it reports.
std::string integrity_check(Connection& connection);

}  // namespace cdmoe::db
