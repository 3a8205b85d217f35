#include "ctl/table.h"

#include <algorithm>

namespace zps::ctl {
namespace {

constexpr const char* kGap = "  ";

std::string render_row(const std::vector<std::string>& cells,
                       const std::vector<Table::Column>& columns,
                       const std::vector<size_t>& widths) {
  std::string line;
  for (size_t i = 0; i < cells.size(); ++i) {
    if (i > 0) line += kGap;
    const size_t pad = widths[i] - cells[i].size();
    if (columns[i].align == Table::Align::kRight) line.append(pad, ' ');
    line += cells[i];
    if (columns[i].align == Table::Align::kLeft) line.append(pad, ' ');
  }
  while (!line.empty() && line.back() == ' ') line.pop_back();
  return line + "\n";
}

}  // namespace

Table::Table(std::vector<Column> columns) : columns_(std::move(columns)) {}

void Table::add_row(std::vector<std::string> cells) {
  cells.resize(columns_.size());
  rows_.push_back(std::move(cells));
}

std::string Table::render() const {
  std::vector<size_t> widths;
  std::vector<std::string> header;
  for (const auto& c : columns_) {
    widths.push_back(c.header.size());
    header.push_back(c.header);
  }
  for (const auto& row : rows_) {
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  std::string out = render_row(header, columns_, widths);
  for (const auto& row : rows_) out += render_row(row, columns_, widths);
  return out;
}

}  // namespace zps::ctl
