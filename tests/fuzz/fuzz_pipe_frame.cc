// libFuzzer target for the data-pipe frame parser (shared/pipe.h).
//
// Every frame of the input goes through parse_frame(), which must refuse it with
// kProtocol or return views that lie inside the frame and agree with its header (the
// header write_header() makes from them is the frame's own). The sequence then runs
// through a model of PipeListener::receive_to's loop (which needs a socket, so it is
// mirrored here rather than called): frames with a bad header or a foreign token are
// refused, an abort or a gap ends the stream, and a final frame is accepted only when
// its byte count and XXH3-64 hash match what arrived.
// Input format: tests/fuzz/inputs.h.
#include <xxhash.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>

#include "shared/pipe.h"
#include "tests/fuzz/inputs.h"

namespace zps::fuzz {
namespace {

[[noreturn]] void fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz_pipe_frame: %s: %s\n", what, detail.c_str());
  std::abort();
}

bool inside(std::string_view view, const char* data, size_t size) {
  return view.data() >= data && view.data() + view.size() <= data + size;
}

// Parses one frame and checks what parse_frame promises; nullopt when it is refused.
std::optional<pipe::FrameView> parse_checked(const char* data, size_t size) {
  Result<pipe::FrameView> f = pipe::parse_frame(data, size);
  if (!f.ok()) {
    if (f.status().code() != Code::kProtocol) fail("parse_frame", f.status().to_string());
    return std::nullopt;
  }
  if (size < pipe::kHeaderBytes) fail("parse_frame", "accepted a frame shorter than a header");
  if (f->token.size() != pipe::kTokenBytes || !inside(f->token, data, size) ||
      !inside(f->payload, data, size) || f->payload.size() != size - pipe::kHeaderBytes) {
    fail("parse_frame", "views outside the frame");
  }
  switch (f->kind) {
    case pipe::FrameKind::kData: break;
    case pipe::FrameKind::kFinal:
      if (f->payload.size() != 16) fail("parse_frame", "final frame without 16-byte payload");
      break;
    case pipe::FrameKind::kAbort:
      if (f->payload.size() > pipe::kMaxAbortReasonBytes) fail("parse_frame", "long abort reason");
      break;
    default: fail("parse_frame", "unknown kind accepted");
  }
  char header[pipe::kHeaderBytes];
  pipe::write_header(header, f->kind, f->token, f->seq);
  if (std::memcmp(header, data, pipe::kHeaderBytes) != 0) {
    fail("write_header", "does not rebuild the header parse_frame accepted");
  }
  return *f;
}

// The receive loop of shared/pipe.cc (ReceiveSession::handle) without the socket.
class StreamModel {
 public:
  StreamModel() : hash_(XXH3_createState()) { XXH3_64bits_reset(hash_); }
  ~StreamModel() { XXH3_freeState(hash_); }
  StreamModel(const StreamModel&) = delete;
  StreamModel& operator=(const StreamModel&) = delete;

  // False once the stream has ended (final, abort or gap).
  bool feed(const char* data, size_t size) {
    std::optional<pipe::FrameView> f = parse_checked(data, size);
    if (!f || f->token != kToken) {
      ++refused_;
      return true;
    }
    if (f->kind == pipe::FrameKind::kAbort) return false;
    if (f->seq != frames_) return false;
    if (f->kind == pipe::FrameKind::kFinal) {
      const bool good = f->total_bytes == received_.size() && f->hash == XXH3_64bits_digest(hash_);
      // The streaming hash and the count must describe exactly what was passed on.
      if (good && XXH3_64bits(received_.data(), received_.size()) != f->hash) {
        fail("stream model", "streamed hash differs from the hash of the received bytes");
      }
      return false;
    }
    XXH3_64bits_update(hash_, f->payload.data(), f->payload.size());
    received_.append(f->payload);
    ++frames_;
    return true;
  }

 private:
  XXH3_state_t* hash_;
  std::string received_;
  uint64_t frames_ = 0;
  uint64_t refused_ = 0;
};

}  // namespace
}  // namespace zps::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace zps;
  const char* p = reinterpret_cast<const char*>(data);
  fuzz::StreamModel model;
  bool open = true;
  while (size >= fuzz::kLengthPrefixBytes) {
    size_t n = static_cast<unsigned char>(p[0]) |
               static_cast<size_t>(static_cast<unsigned char>(p[1])) << 8;
    p += fuzz::kLengthPrefixBytes;
    size -= fuzz::kLengthPrefixBytes;
    n = std::min(n, size);
    if (open) {
      open = model.feed(p, n);
    } else {
      (void)fuzz::parse_checked(p, n);  // what arrives after the end is still parsed
    }
    p += n;
    size -= n;
  }
  // The real parser is also handed empty and null messages.
  if (pipe::parse_frame(nullptr, 0).ok()) fuzz::fail("parse_frame", "accepted null");
  return 0;
}
