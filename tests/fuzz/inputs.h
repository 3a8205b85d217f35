// What the fuzzers' inputs mean, shared by the fuzz targets and the seed generator
// (make_corpus.cc) so the committed corpus and the targets cannot drift apart.
//
// fuzz_control: one selector byte, then the frames of a control message.
//   selector < 0x80   signature "ZPS1"; the rest of the input is the body frame. The
//                     selector's low bits pick the id given to with_id() and the value
//                     with_field() stamps.
//   selector >= 0x80  the signature is the next (selector & 7) bytes, the rest the body.
//
// fuzz_pipe_frame: a sequence of data-pipe frames, each a 2-byte little-endian length
// and that many bytes (a last frame shorter than its length takes what is left). Every
// frame goes through parse_frame(); the sequence goes through a model of the receive
// loop whose session token is kToken.
//
// Thread-safety: constants and types only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "shared/protocol.h"

namespace zps::fuzz {

// ---- fuzz_control -------------------------------------------------------------------

inline constexpr unsigned char kForeignSignature = 0x80;

// Ids with_id() is asked to put in: small, large, and the edges of u32 and u64.
inline constexpr uint64_t kNewIds[] = {1, 2, 77, 12345, 0xffffffffull, 0x100000000ull,
                                       0xffffffffffffffffull, 0x7fffffffffffffffull};
// Values with_field() stamps as `sender` (the only field the broker stamps).
inline constexpr std::string_view kSenders[] = {"node1", "", "a-much-longer-agent-name.example",
                                                "\xff\xfe"};

// Every message and reply struct of shared/protocol.h. The fuzzer reads each decoded
// envelope as all of them; the generator writes a seed for each. Add new ones here.
template <class... Ms>
struct TypeList {};
using Catalogue = TypeList<
    proto::Hello, proto::HelloReply, proto::Heartbeat, proto::Reregister, proto::AgentsRequest,
    proto::AgentsReply, proto::SnapshotsRequest, proto::SnapshotsReply, proto::ReplicateRequest,
    proto::JobReply, proto::JobsRequest, proto::JobsReply, proto::JobRequest, proto::WatchRequest,
    proto::CancelRequest, proto::LocksRequest, proto::LocksReply, proto::JobEvent, proto::JobStart,
    proto::JobCancel, proto::JobUpdate, proto::JobEnd, proto::TargetStateRequest,
    proto::TargetStateReply, proto::PrepareRequest, proto::PrepareReply, proto::RecvResultRequest,
    proto::RecvResultReply, proto::AbortRequest, proto::Empty, proto::WireError>;

// ---- fuzz_pipe_frame ----------------------------------------------------------------

inline constexpr std::string_view kToken = "fuzz-token-0123!";  // 16 raw bytes
static_assert(kToken.size() == 16);
inline constexpr size_t kLengthPrefixBytes = 2;

}  // namespace zps::fuzz
