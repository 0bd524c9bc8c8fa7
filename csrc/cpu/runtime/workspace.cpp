#include "workspace.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <new>

namespace fastconv {

void* page_aligned_alloc(size_t bytes) {
  void* p = std::aligned_alloc(4096, (std::max<size_t>(bytes, 1) + 4095) / 4096 * 4096);
  if (!p) throw std::bad_alloc();
  return p;
}

namespace detail {

void FreeDeleter::operator()(void* p) const { std::free(p); }

namespace {
struct Cache {
  void* p[static_cast<int>(Slot::kCount)] = {};
  size_t bytes[static_cast<int>(Slot::kCount)] = {};
  bool held[static_cast<int>(Slot::kCount)] = {};
  ~Cache() {
    for (void* q : p) std::free(q);
  }
};
thread_local Cache cache;
std::atomic<int64_t> slot_clashes{0};
}  // namespace

void* workspace_acquire(Slot slot, size_t bytes) {
  const int i = static_cast<int>(slot);
  if (cache.held[i]) {
    slot_clashes.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  if (bytes > kWorkspaceCachedBytes) return nullptr;
  if (cache.bytes[i] < bytes) {
    std::free(cache.p[i]);
    cache.p[i] = nullptr, cache.bytes[i] = 0;  // empty, should the allocation below throw
    const size_t rounded = (bytes + 4095) / 4096 * 4096;
    cache.p[i] = page_aligned_alloc(rounded);
    cache.bytes[i] = rounded;
  }
  cache.held[i] = true;
  return cache.p[i];
}

void workspace_release(Slot slot) { cache.held[static_cast<int>(slot)] = false; }

}  // namespace detail

int64_t workspace_slot_clashes() { return detail::slot_clashes.load(std::memory_order_relaxed); }

}  // namespace fastconv
