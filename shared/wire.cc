#include "shared/wire.h"

#include <limits>

namespace zps::wire {
namespace {

std::string_view type_name(const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::NIL: return "nil";
    case msgpack::type::BOOLEAN: return "a boolean";
    case msgpack::type::POSITIVE_INTEGER: return "an unsigned integer";
    case msgpack::type::NEGATIVE_INTEGER: return "a negative integer";
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64: return "a float";
    case msgpack::type::STR: return "a string";
    case msgpack::type::BIN: return "binary";
    case msgpack::type::ARRAY: return "an array";
    case msgpack::type::MAP: return "a map";
    case msgpack::type::EXT: return "an extension";
  }
  return "an unknown type";
}

// Walks the bytes without building objects. Every declared element needs at least one
// byte of input, so a running total of declared elements larger than the input means
// the input lies about its size (the "map of 2^32 entries in 5 bytes" attack); the
// parser stops at the first violation.
class ScanVisitor : public msgpack::null_visitor {
 public:
  explicit ScanVisitor(size_t size) : size_(size) {}

  bool visit_str(const char*, uint32_t n) { return check_bytes(n, "string"); }
  bool visit_bin(const char*, uint32_t n) { return check_bytes(n, "binary"); }
  bool visit_ext(const char*, uint32_t n) { return check_bytes(n, "extension"); }
  bool start_array(uint32_t n) { return open(n, n, "array", "elements"); }
  bool end_array() {
    --depth_;
    return true;
  }
  bool start_map(uint32_t n) { return open(static_cast<uint64_t>(n) * 2, n, "map", "entries"); }
  bool end_map() {
    --depth_;
    return true;
  }
  void parse_error(size_t, size_t off) { set("malformed msgpack at byte " + std::to_string(off)); }
  void insufficient_bytes(size_t, size_t off) {
    set("truncated msgpack: input ends at byte " + std::to_string(off));
  }

  const std::string& error() const { return error_; }

 private:
  // `elements` counts a map's keys and values; `n` is what the header declared.
  bool open(uint64_t elements, uint32_t n, std::string_view what, std::string_view unit) {
    if (++depth_ > kMaxDepth) {
      return set("nesting deeper than " + std::to_string(kMaxDepth) + " levels");
    }
    declared_ += elements;
    const std::string declares =
        std::string(what) + " declares " + std::to_string(n) + " " + std::string(unit);
    if (declared_ > size_) {
      return set(declares + ", more than the " + std::to_string(size_) + "-byte input can hold");
    }
    if (declared_ > kMaxElements) {
      return set(declares + ", more than the limit of " + std::to_string(kMaxElements) +
                 " elements in one message");
    }
    return true;
  }
  bool check_bytes(uint32_t n, std::string_view what) {
    if (n > kMaxStringBytes) {
      return set(std::string(what) + " of " + std::to_string(n) + " bytes exceeds the limit of " +
                 std::to_string(kMaxStringBytes));
    }
    return true;
  }
  bool set(std::string e) {
    if (error_.empty()) error_ = std::move(e);
    return false;
  }

  size_t size_;
  size_t depth_ = 0;
  uint64_t declared_ = 0;
  std::string error_;
};

}  // namespace

Reader::Reader(const msgpack::object& map, std::string path)
    : Reader(map, std::move(path), nullptr) {}

Reader::Reader(const msgpack::object& map, std::string path, size_t* budget)
    : path_(std::move(path)) {
  if (budget != nullptr) budget_ = budget;
  const std::string where = path_.empty() ? "message" : path_;
  if (map.type != msgpack::type::MAP) {
    fail(where, "a map", map);
  } else if (map.via.map.size > kMaxMapEntries) {
    status_ = Status(Code::kProtocol, where + " has " + std::to_string(map.via.map.size) +
                                          " keys, more than the limit of " +
                                          std::to_string(kMaxMapEntries));
  } else {
    map_ = &map;
  }
}

const msgpack::object* Reader::find(std::string_view key) const {
  if (map_ == nullptr) return nullptr;
  const auto& m = map_->via.map;
  for (uint32_t i = 0; i < m.size; ++i) {
    const auto& k = m.ptr[i].key;
    if (k.type == msgpack::type::STR && std::string_view(k.via.str.ptr, k.via.str.size) == key) {
      return &m.ptr[i].val;
    }
  }
  return nullptr;
}

bool Reader::charge(uint32_t count, size_t size, const std::string& where) {
  const uint64_t bytes = static_cast<uint64_t>(count) * size;
  if (bytes > *budget_) {
    if (status_.ok()) {
      status_ = Status(Code::kProtocol,
                       "field '" + where + "' has " + std::to_string(count) +
                           " elements, more than fit in the " +
                           std::to_string(kMaxDecodedBytes >> 20) + " MiB a decoded message may use");
    }
    return false;
  }
  *budget_ -= bytes;
  return true;
}

void Reader::fail(const std::string& where, std::string_view expected, const msgpack::object& got) {
  if (!status_.ok()) return;
  status_ = Status(Code::kProtocol, "field '" + where + "' should be " + std::string(expected) +
                                        " but is " + std::string(type_name(got)));
}

void Reader::range(const std::string& where) {
  if (!status_.ok()) return;
  status_ = Status(Code::kProtocol, "field '" + where + "' is out of range");
}

void Reader::read(const msgpack::object& o, bool& out, const std::string& where) {
  if (o.type != msgpack::type::BOOLEAN) return fail(where, "a boolean", o);
  out = o.via.boolean;
}

void Reader::read(const msgpack::object& o, std::string& out, const std::string& where) {
  if (o.type != msgpack::type::STR) return fail(where, "a string", o);
  out.assign(o.via.str.ptr, o.via.str.size);
}

void Reader::read(const msgpack::object& o, double& out, const std::string& where) {
  switch (o.type) {
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64: out = o.via.f64; return;
    case msgpack::type::POSITIVE_INTEGER: out = static_cast<double>(o.via.u64); return;
    case msgpack::type::NEGATIVE_INTEGER: out = static_cast<double>(o.via.i64); return;
    default: return fail(where, "a number", o);
  }
}

void Reader::read(const msgpack::object& o, uint64_t& out, const std::string& where) {
  if (o.type != msgpack::type::POSITIVE_INTEGER) return fail(where, "an unsigned integer", o);
  out = o.via.u64;
}

void Reader::read(const msgpack::object& o, int64_t& out, const std::string& where) {
  if (o.type == msgpack::type::NEGATIVE_INTEGER) {
    out = o.via.i64;
  } else if (o.type == msgpack::type::POSITIVE_INTEGER) {
    if (o.via.u64 > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return range(where);
    out = static_cast<int64_t>(o.via.u64);
  } else {
    fail(where, "an integer", o);
  }
}

Status prescan(const char* data, size_t size) {
  if (size == 0) return Status(Code::kProtocol, "empty message body");
  if (size > kMaxMessageBytes) {
    return Status(Code::kProtocol, "message of " + std::to_string(size) +
                                       " bytes exceeds the limit of " +
                                       std::to_string(kMaxMessageBytes));
  }
  ScanVisitor v(size);
  size_t off = 0;
  bool ok = false;
  try {
    ok = msgpack::parse(data, size, off, v);
  } catch (const std::exception& e) {
    return Status(Code::kProtocol, std::string("malformed msgpack: ") + e.what());
  }
  if (!ok) {
    return Status(Code::kProtocol, v.error().empty() ? "malformed msgpack" : v.error());
  }
  if (off != size) {
    return Status(Code::kProtocol, "trailing " + std::to_string(size - off) +
                                       " bytes after the msgpack value");
  }
  return Status::Ok();
}

Result<msgpack::object_handle> unpack_bounded(const char* data, size_t size) {
  ZPS_RETURN_IF_ERROR(prescan(data, size));
  const msgpack::unpack_limit limit(kMaxElements, kMaxElements, kMaxStringBytes, kMaxStringBytes,
                                    kMaxStringBytes, kMaxDepth);
  try {
    size_t off = 0;
    return msgpack::unpack(data, size, off, nullptr, nullptr, limit);
  } catch (const std::exception& e) {
    return Status(Code::kProtocol, std::string("malformed msgpack: ") + e.what());
  }
}

}  // namespace zps::wire
