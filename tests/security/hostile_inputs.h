// The table of hostile names the security tests send to the broker and, bypassing it,
// to a receiving agent: path traversal, option injection, shell metacharacters, NUL
// bytes, control characters, over-long names and bytes that are not ASCII (or not even
// UTF-8). Each row carries a fragment of the refusal that says what is wrong.
#pragma once

#include <string>
#include <vector>

namespace zps::test {

struct HostileName {
  std::string name;  // "@@" at the start stands for the dataset it is placed under
  std::string why;   // a fragment of the refusal
};

inline std::vector<HostileName> hostile_names() {
  using namespace std::string_literals;
  return {
      {"../x", "'..' component"},
      {"@@/../x", "'..' component"},
      {"@@/./x", "'.' component"},
      {"@@/x/../../etc", "'..' component"},
      {"-o", "starting with '-'"},
      {"@@/-o", "starting with '-'"},
      {"@@/--force", "starting with '-'"},
      {"@@/a b", "a space"},
      {"@@/a;b", "the character ';'"},
      {"@@/x;rm -rf ~", "the character ';'"},
      {"@@/$(reboot)", "the character '$'"},
      {"@@/`id`", "the character '`'"},
      {"@@/a|b", "the character '|'"},
      {"@@/a&b", "the character '&'"},
      {"@@/a>b", "the character '>'"},
      {"@@/*", "the character '*'"},
      {"@@/a\nb", "\\x0a"},
      {"@@/a\x1b[2Jb", "\\x1b"},
      {"@@/a\0b"s, "a NUL byte"},
      {"@@/" + std::string(300, 'a'), "bytes long"},
      {"@@/caf\xc3\xa9", "\\xc3"},  // UTF-8, but not ASCII
      {"@@/\xff\xfe", "\\xff"},       // not UTF-8 at all
      {"@@//x", "empty component"},
      {"@@/x/", "empty component"},
      {"@@/a@b", "'@'"},
      {"@@/a%b", "'%'"},
      {"@@/a#b", "'#'"},
  };
}

// The row's name placed under `base` ("@@/x" -> "base/x"); others as they are.
inline std::string place_under(const std::string& name, const std::string& base) {
  return name.rfind("@@", 0) == 0 ? base + name.substr(2) : name;
}

}  // namespace zps::test
