// A fresh directory for one test under $TMPDIR (or /tmp), removed with everything in it
// when the object goes.
#pragma once

#include <string>

namespace zps::test {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  // Empty when the directory could not be made (the constructor also fails the test).
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  // Writes an executable shell script `name` ("#!/bin/sh" and then `body`): a stand-in
  // for a program such as zfs. Returns its path.
  std::string script(const std::string& name, const std::string& body) const;

 private:
  std::string path_;
};

}  // namespace zps::test
