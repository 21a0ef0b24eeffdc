// Writes a db::Table as an aligned text table (for people), CSV (RFC 4180, full precision) or
// JSON (an array of objects, one per row).
#pragma once

#include <ostream>

#include "db/report_queries.h"

namespace cdmoe {

enum class TableFormat { kAligned, kCsv, kJson };

void write_table(const db::Table& table, TableFormat format, std::ostream& out);

}  // namespace cdmoe
