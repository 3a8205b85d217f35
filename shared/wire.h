// The msgpack codec for control messages: structs that list their fields once, in a
// `fields(V&)` member, are packed as msgpack maps and read back with every field's type
// checked. Decoding never trusts a peer: a pre-scan walks the bytes without allocating
// and refuses input that declares more elements than it could hold, nests too deep or
// carries oversized strings, and only then does msgpack unpack it (with unpack_limit
// as a second fence); the Reader then refuses vectors whose elements would take more than
// kMaxDecodedBytes. A wrong shape is an error value naming the field, never an
// exception.
//
//   struct Hello {
//     std::string agent;
//     std::vector<std::string> recv_roots;
//     template <class V> void fields(V& v) { v("agent", agent); v("recv_roots", recv_roots); }
//   };
//
// Supported field types: bool, integers, double, std::string, std::vector<T>,
// std::optional<T> (nil when empty) and nested structs with fields(). Unknown keys are
// ignored and missing keys keep their default, so peers of neighbouring versions still
// talk; validation of values (names, ranges) is the handlers' job.
//
// Thread-safety: plain functions and short-lived objects.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <msgpack.hpp>

#include "shared/status.h"

namespace zps::wire {

// Bounds every decoder applies. ZMQ_MAXMSGSIZE on control sockets is kMaxMessageBytes.
inline constexpr size_t kMaxMessageBytes = 8 * 1024 * 1024;
inline constexpr size_t kMaxElements = 1 << 20;    // declared array items + map entries
inline constexpr size_t kMaxDepth = 12;
inline constexpr size_t kMaxStringBytes = 1 << 20;
inline constexpr size_t kMaxMapEntries = 256;      // keys in one struct's map
// What the vectors of one decoded message may take in memory. An element costs
// sizeof(T) however little it took on the wire (an empty map is one byte, a JobInfo
// struct 256), so a vector is checked against this before it is built. Honest messages
// decode to less than twice their size. With the msgpack tree (up to 32 MiB at
// kMaxElements) the costliest acceptable message takes about 50 MiB.
inline constexpr size_t kMaxDecodedBytes = 2 * kMaxMessageBytes;

template <typename T>
concept HasFields = requires(T& t, int& v) { t.fields(v); };

// Packs a struct with fields() as a map (or any supported value) into a packer.
class Writer {
 public:
  explicit Writer(msgpack::packer<msgpack::sbuffer>& pk) : pk_(pk) {}

  template <typename T>
  void operator()(const char* key, const T& value) {
    pk_.pack(key);
    write(value);
  }

  void write(bool v) { v ? pk_.pack_true() : pk_.pack_false(); }
  void write(const std::string& v) { pk_.pack(v); }
  void write(double v) { pk_.pack_double(v); }
  template <typename T>
    requires std::is_integral_v<T>
  void write(T v) {
    pk_.pack(v);
  }
  template <typename T>
  void write(const std::vector<T>& v) {
    pk_.pack_array(static_cast<uint32_t>(v.size()));
    for (const auto& e : v) write(e);
  }
  template <typename T>
  void write(const std::optional<T>& v) {
    if (v) {
      write(*v);
    } else {
      pk_.pack_nil();
    }
  }
  template <HasFields T>
  void write(const T& v) {
    auto& m = const_cast<T&>(v);  // fields() only reads here
    Counter c;
    m.fields(c);
    pk_.pack_map(c.n);
    m.fields(*this);
  }

  // Starts a map of `n` entries, for envelopes that add keys around a struct's fields.
  void begin_map(uint32_t n) { pk_.pack_map(n); }
  template <HasFields T>
  void fields_of(const T& v) {
    const_cast<T&>(v).fields(*this);
  }
  template <HasFields T>
  static uint32_t count_fields(const T& v) {
    Counter c;
    const_cast<T&>(v).fields(c);
    return c.n;
  }

 private:
  struct Counter {
    uint32_t n = 0;
    template <typename T>
    void operator()(const char*, const T&) {
      ++n;
    }
  };
  msgpack::packer<msgpack::sbuffer>& pk_;
};

// Reads a struct's fields from a msgpack map, checking each value's type. The first
// error is kept; later fields are skipped.
class Reader {
 public:
  // `map` must outlive the Reader (it points into the decoder's zone).
  explicit Reader(const msgpack::object& map, std::string path = "");
  // Nested readers share their parent's budget by pointer, so a Reader stays put.
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  template <typename T>
  void operator()(const char* key, T& out) {
    if (!status_.ok()) return;
    const msgpack::object* v = find(key);
    if (v == nullptr) return;
    read(*v, out, path_.empty() ? std::string(key) : path_ + "." + key);
  }

  const Status& status() const { return status_; }

  // Reads one value of any supported type; `where` names it in errors.
  template <typename T>
  Status read_value(const msgpack::object& o, T& out, const std::string& where) {
    read(o, out, where);
    return status_;
  }

 private:
  Reader(const msgpack::object& map, std::string path, size_t* budget);

  const msgpack::object* find(std::string_view key) const;
  // Takes `count` elements of `size` bytes from the decoded-size budget, or fails.
  bool charge(uint32_t count, size_t size, const std::string& where);
  void fail(const std::string& where, std::string_view expected, const msgpack::object& got);

  void read(const msgpack::object& o, bool& out, const std::string& where);
  void read(const msgpack::object& o, std::string& out, const std::string& where);
  void read(const msgpack::object& o, double& out, const std::string& where);
  void read(const msgpack::object& o, uint64_t& out, const std::string& where);
  void read(const msgpack::object& o, int64_t& out, const std::string& where);

  template <typename T>
    requires(std::is_integral_v<T> && !std::is_same_v<T, bool> && !std::is_same_v<T, uint64_t> &&
             !std::is_same_v<T, int64_t>)
  void read(const msgpack::object& o, T& out, const std::string& where) {
    if constexpr (std::is_unsigned_v<T>) {
      uint64_t v = 0;
      read(o, v, where);
      if (!status_.ok()) return;
      if (v > static_cast<uint64_t>(std::numeric_limits<T>::max())) return range(where);
      out = static_cast<T>(v);
    } else {
      int64_t v = 0;
      read(o, v, where);
      if (!status_.ok()) return;
      if (v < std::numeric_limits<T>::min() || v > std::numeric_limits<T>::max()) return range(where);
      out = static_cast<T>(v);
    }
  }

  template <typename T>
  void read(const msgpack::object& o, std::vector<T>& out, const std::string& where) {
    if (o.type != msgpack::type::ARRAY) return fail(where, "an array", o);
    if (!charge(o.via.array.size, sizeof(T), where)) return;
    out.clear();
    out.reserve(o.via.array.size);
    for (uint32_t i = 0; i < o.via.array.size && status_.ok(); ++i) {
      T e{};
      read(o.via.array.ptr[i], e, where + "[" + std::to_string(i) + "]");
      out.push_back(std::move(e));
    }
  }

  template <typename T>
  void read(const msgpack::object& o, std::optional<T>& out, const std::string& where) {
    if (o.type == msgpack::type::NIL) {
      out.reset();
      return;
    }
    T v{};
    read(o, v, where);
    if (status_.ok()) out = std::move(v);
  }

  template <HasFields T>
  void read(const msgpack::object& o, T& out, const std::string& where) {
    Reader nested(o, where, budget_);
    if (nested.status_.ok()) out.fields(nested);
    if (!nested.status_.ok()) status_ = nested.status_;
  }

  void range(const std::string& where);

  const msgpack::object* map_ = nullptr;
  std::string path_;
  Status status_;
  size_t own_budget_ = kMaxDecodedBytes;  // used by the outermost Reader
  size_t* budget_ = &own_budget_;
};

// Checks raw bytes against the limits above without allocating: declared element
// counts, nesting depth, string sizes, and that the bytes hold exactly one value.
Status prescan(const char* data, size_t size);

// Unpacks one msgpack value after prescan(); the handle owns the memory.
Result<msgpack::object_handle> unpack_bounded(const char* data, size_t size);

// Packs a struct with fields() into a buffer.
template <HasFields T>
msgpack::sbuffer pack(const T& value) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  Writer(pk).write(value);
  return buf;
}

// Unpacks bytes into a struct with fields().
template <HasFields T>
Result<T> unpack_as(const char* data, size_t size) {
  auto handle = unpack_bounded(data, size);
  if (!handle.ok()) return handle.status();
  T out{};
  Reader r(handle->get());
  if (r.status().ok()) out.fields(r);
  if (!r.status().ok()) return r.status();
  return out;
}

}  // namespace zps::wire
