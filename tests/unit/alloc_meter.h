// Counts the bytes a test program holds on the heap, so a test can assert that decoding
// hostile input stays within a memory bound.
//
// It replaces malloc and its relatives rather than operator new: msgpack's zone, where
// an unpacked message lives, allocates with malloc directly, and that is exactly the
// memory a lying length prefix would inflate. glibc supports this replacement (all of
// libc and libstdc++ call the program's malloc); the real allocator is reached through
// its __libc_* entry points. Under a sanitizer, which brings its own allocator, the meter
// is off and enabled() says so.
//
// Include this header in exactly one translation unit of a test program.
//
// Thread-safety: the counters are atomics; a peak window (PeakScope) counts every
// thread's allocations, so measure where no other thread is busy.
#pragma once

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || defined(__SANITIZE_MEMORY__)
#define ZPS_ALLOC_METER 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
#define ZPS_ALLOC_METER 0
#endif
#endif
#if !defined(ZPS_ALLOC_METER) && defined(__GLIBC__)
#define ZPS_ALLOC_METER 1
#endif
#if !defined(ZPS_ALLOC_METER)
#define ZPS_ALLOC_METER 0
#endif

#if ZPS_ALLOC_METER
#include <malloc.h>
#include <unistd.h>
#endif

namespace zps::alloc_meter {

inline std::atomic<int64_t> g_live{0};
inline std::atomic<int64_t> g_peak{0};

inline void note_alloc(int64_t n) {
  const int64_t now = g_live.fetch_add(n, std::memory_order_relaxed) + n;
  int64_t peak = g_peak.load(std::memory_order_relaxed);
  while (now > peak && !g_peak.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
}
inline void note_free(int64_t n) { g_live.fetch_sub(n, std::memory_order_relaxed); }

inline bool enabled() { return ZPS_ALLOC_METER != 0; }
inline int64_t live_bytes() { return g_live.load(std::memory_order_relaxed); }

// The most the heap grew above its size at construction, while the scope was open.
class PeakScope {
 public:
  PeakScope() : base_(live_bytes()) { g_peak.store(base_, std::memory_order_relaxed); }
  int64_t peak_growth() const { return g_peak.load(std::memory_order_relaxed) - base_; }

 private:
  int64_t base_;
};

}  // namespace zps::alloc_meter

#if ZPS_ALLOC_METER

extern "C" {
void* __libc_malloc(size_t size);
void __libc_free(void* p);
void* __libc_calloc(size_t n, size_t size);
void* __libc_realloc(void* p, size_t size);
void* __libc_memalign(size_t alignment, size_t size);
}  // extern "C"

namespace zps::alloc_meter::detail {
inline int64_t usable(void* p) { return p ? static_cast<int64_t>(malloc_usable_size(p)) : 0; }
inline void* counted(void* p) {
  if (p) note_alloc(usable(p));
  return p;
}
}  // namespace zps::alloc_meter::detail

extern "C" {
void* malloc(size_t size) noexcept {
  return zps::alloc_meter::detail::counted(__libc_malloc(size));
}
void free(void* p) noexcept {
  zps::alloc_meter::note_free(zps::alloc_meter::detail::usable(p));
  __libc_free(p);
}
void* calloc(size_t n, size_t size) noexcept {
  return zps::alloc_meter::detail::counted(__libc_calloc(n, size));
}
void* realloc(void* p, size_t size) noexcept {
  const int64_t before = zps::alloc_meter::detail::usable(p);
  void* q = __libc_realloc(p, size);
  // On failure the old block stays; realloc(p, 0) frees it and may return null.
  if (q == nullptr) {
    if (size == 0) zps::alloc_meter::note_free(before);
    return nullptr;
  }
  zps::alloc_meter::note_free(before);
  zps::alloc_meter::note_alloc(zps::alloc_meter::detail::usable(q));
  return q;
}
void* reallocarray(void* p, size_t n, size_t size) noexcept {
  size_t total = 0;
  if (__builtin_mul_overflow(n, size, &total)) {
    errno = ENOMEM;
    return nullptr;
  }
  return realloc(p, total);
}
void* memalign(size_t alignment, size_t size) noexcept {
  return zps::alloc_meter::detail::counted(__libc_memalign(alignment, size));
}
void* aligned_alloc(size_t alignment, size_t size) noexcept { return memalign(alignment, size); }
int posix_memalign(void** out, size_t alignment, size_t size) noexcept {
  if (alignment % sizeof(void*) != 0 || (alignment & (alignment - 1)) != 0) return EINVAL;
  void* p = memalign(alignment, size);
  if (p == nullptr) return ENOMEM;
  *out = p;
  return 0;
}
void* valloc(size_t size) noexcept {
  return memalign(static_cast<size_t>(sysconf(_SC_PAGESIZE)), size);
}
void* pvalloc(size_t size) noexcept {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return memalign(page, (size + page - 1) / page * page);
}
}  // extern "C"

#endif  // ZPS_ALLOC_METER
