#include "apps/table_format.h"

#include <algorithm>
#include <cstdio>

#include <nlohmann/json.hpp>

namespace cdmoe {
namespace {

constexpr size_t kMaxAlignedWidth = 60;

std::string format_double(double value, int digits) {
  char buffer[40];
  std::snprintf(buffer, sizeof buffer, "%.*g", digits, value);
  return buffer;
}

std::string cell_text(const db::Value& value, bool full_precision) {
  if (std::holds_alternative<std::monostate>(value)) return full_precision ? "" : "-";
  if (auto* i = std::get_if<int64_t>(&value)) return std::to_string(*i);
  if (auto* d = std::get_if<double>(&value)) return format_double(*d, full_precision ? 17 : 6);
  return std::get<std::string>(value);
}

std::string csv_escape(const std::string& text) {
  if (text.find_first_of(",\"\n\r") == std::string::npos) return text;
  std::string out = "\"";
  for (char c : text) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

nlohmann::ordered_json cell_json(const db::Value& value) {
  if (std::holds_alternative<std::monostate>(value)) return nullptr;
  if (auto* i = std::get_if<int64_t>(&value)) return *i;
  if (auto* d = std::get_if<double>(&value)) return *d;
  return std::get<std::string>(value);
}

void write_aligned(const db::Table& table, std::ostream& out) {
  std::vector<std::vector<std::string>> cells;
  std::vector<size_t> widths;
  for (const std::string& column : table.columns) widths.push_back(column.size());
  for (const auto& row : table.rows) {
    std::vector<std::string> texts;
    for (size_t i = 0; i < row.size(); ++i) {
      std::string text = cell_text(row[i], false);
      std::replace(text.begin(), text.end(), '\n', ' ');
      if (text.size() > kMaxAlignedWidth) text = text.substr(0, kMaxAlignedWidth - 3) + "...";
      widths[i] = std::max(widths[i], text.size());
      texts.push_back(std::move(text));
    }
    cells.push_back(std::move(texts));
  }
  auto write_row = [&](const std::vector<std::string>& texts) {
    std::string line;
    for (size_t i = 0; i < texts.size(); ++i) {
      if (i) line += "  ";
      line += texts[i] + std::string(widths[i] - texts[i].size(), ' ');
    }
    line.erase(line.find_last_not_of(' ') + 1);
    out << line << "\n";
  };
  write_row(table.columns);
  std::vector<std::string> rule;
  for (size_t width : widths) rule.push_back(std::string(width, '-'));
  write_row(rule);
  for (const auto& texts : cells) write_row(texts);
  out << "(" << table.rows.size() << (table.rows.size() == 1 ? " row" : " rows") << ")\n";
}

}  // namespace

void write_table(const db::Table& table, TableFormat format, std::ostream& out) {
  switch (format) {
    case TableFormat::kAligned:
      write_aligned(table, out);
      return;
    case TableFormat::kCsv: {
      for (size_t i = 0; i < table.columns.size(); ++i) out << (i ? "," : "") << csv_escape(table.columns[i]);
      out << "\n";
      for (const auto& row : table.rows) {
        for (size_t i = 0; i < row.size(); ++i) out << (i ? "," : "") << csv_escape(cell_text(row[i], true));
        out << "\n";
      }
      return;
    }
    case TableFormat::kJson: {
      // ordered_json keeps the table's column order in every object.
      nlohmann::ordered_json rows = nlohmann::ordered_json::array();
      for (const auto& row : table.rows) {
        nlohmann::ordered_json object = nlohmann::ordered_json::object();
        for (size_t i = 0; i < row.size(); ++i) object[table.columns[i]] = cell_json(row[i]);
        rows.push_back(std::move(object));
      }
      out << rows.dump(2) << "\n";
      return;
    }
  }
}

}  // namespace cdmoe
