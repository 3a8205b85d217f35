// A text table with a header row and columns padded to their widest cell, the way
// zpsctl prints agents, snapshots, jobs, hops and locks.
//
// Thread-safety: a plain value.
#pragma once

#include <string>
#include <vector>

namespace zps::ctl {

class Table {
 public:
  enum class Align { kLeft, kRight };
  struct Column {
    std::string header;
    Align align = Align::kLeft;
  };

  explicit Table(std::vector<Column> columns);

  // A row with fewer cells than columns is padded with empty cells; extra cells are
  // dropped.
  void add_row(std::vector<std::string> cells);
  size_t rows() const { return rows_.size(); }

  // Header and rows, two spaces between columns, no trailing blanks, '\n' after each.
  std::string render() const;

 private:
  std::vector<Column> columns_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace zps::ctl
