#include "output.h"

#include <ATen/EmptyTensor.h>
#include <ATen/ops/empty.h>
#include <c10/core/Allocator.h>
#include <c10/util/accumulate.h>

#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "workspace.h"

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace fastconv {
namespace {

// Outputs from this size on come from the pool. glibc unmaps freed blocks past its mmap
// threshold (at most 32 MB), and trims the top of its heap once enough there is free, so
// in a model, where a step frees most of what it allocated, blocks of a few MB come back
// as fresh pages too: ResNet-50's channels_last training step at batch 8 faulted in 49,000
// pages with a 32 MB threshold and 2,900 with this one (torch's: 28,000).
constexpr size_t kPoolMinBytes = size_t{1} << 20;
// A pooled block serves a request this much smaller at most (the rest stays untouched).
constexpr size_t kPoolSlackDivisor = 4;

// FASTCONV_OUTPUT_POOL_MB (default 256; 0 turns the pool off): the most bytes of freed
// output blocks kept for reuse.
size_t pool_cap_bytes() {
  static const size_t cap = [] {
    const char* v = std::getenv("FASTCONV_OUTPUT_POOL_MB");
    const long long mb = v != nullptr ? std::atoll(v) : 256;
    return mb > 0 ? static_cast<size_t>(mb) << 20 : size_t{0};
  }();
  return cap;
}

void advise_huge_pages(void* p, size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  static const bool enabled = [] {
    const char* v = std::getenv("FASTCONV_HUGEPAGES");
    return v != nullptr && std::string(v) == "1";
  }();
  constexpr uintptr_t kHuge = uintptr_t{2} << 20;
  const auto begin = reinterpret_cast<uintptr_t>(p);
  const uintptr_t lo = (begin + kHuge - 1) & ~(kHuge - 1), hi = (begin + bytes) & ~(kHuge - 1);
  if (enabled && hi > lo) madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_HUGEPAGE);
#else
  (void)p, (void)bytes;
#endif
}

// The blocks of large outputs, kept when their tensors are freed (oldest dropped first past
// the cap) and handed to the next output of about their size. Never destroyed: a tensor
// may be freed after static destructors have run.
class OutputPool final : public c10::Allocator {
 public:
  struct Block {
    void* data;
    size_t bytes;
  };

  c10::DataPtr allocate(size_t n) override {
    Block* b = take(n);
    if (b == nullptr) {
      b = new Block{page_aligned_alloc(n), n};
      advise_huge_pages(b->data, n);
    }
    return {b->data, b, &OutputPool::give_back, c10::Device(c10::DeviceType::CPU)};
  }

  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }

  OutputPoolStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return {held_, reused_};
  }

  static OutputPool& get() {
    static OutputPool* pool = new OutputPool();
    return *pool;
  }

 private:
  // The smallest free block that fits n without wasting more than a quarter of itself.
  Block* take(size_t n) {
    std::lock_guard<std::mutex> lock(mutex_);
    size_t best = free_.size();
    for (size_t i = 0; i < free_.size(); ++i)
      if (free_[i]->bytes >= n && free_[i]->bytes - n <= free_[i]->bytes / kPoolSlackDivisor &&
          (best == free_.size() || free_[i]->bytes < free_[best]->bytes))
        best = i;
    if (best == free_.size()) return nullptr;
    Block* b = free_[best];
    free_.erase(free_.begin() + static_cast<std::ptrdiff_t>(best));
    held_ -= b->bytes;
    ++reused_;
    return b;
  }

  static void give_back(void* ctx) {
    OutputPool& pool = get();
    auto* b = static_cast<Block*>(ctx);
    std::vector<Block*> dropped;
    {
      std::lock_guard<std::mutex> lock(pool.mutex_);
      pool.free_.push_back(b);
      pool.held_ += b->bytes;
      while (pool.held_ > pool_cap_bytes()) {
        dropped.push_back(pool.free_.front());
        pool.held_ -= pool.free_.front()->bytes;
        pool.free_.erase(pool.free_.begin());
      }
    }
    for (Block* d : dropped) {
      std::free(d->data);
      delete d;
    }
  }

  std::mutex mutex_;
  std::vector<Block*> free_;  // oldest first
  size_t held_ = 0;
  int64_t reused_ = 0;
};

}  // namespace

at::Tensor empty_output(at::IntArrayRef sizes, const at::TensorOptions& options,
                        at::MemoryFormat format) {
  const int64_t bytes = c10::multiply_integers(sizes) * int64_t(options.dtype().itemsize());
  if (pool_cap_bytes() > 0 && bytes >= int64_t(kPoolMinBytes) && options.device().is_cpu())
    return at::Tensor(at::detail::empty_generic(sizes, &OutputPool::get(),
                                                c10::DispatchKeySet(c10::DispatchKey::CPU),
                                                options.dtype().toScalarType(), format));
  at::Tensor t = at::empty(sizes, options.memory_format(format));
  advise_huge_pages(t.data_ptr(), t.nbytes());
  return t;
}

OutputPoolStats output_pool_stats() { return OutputPool::get().stats(); }

}  // namespace fastconv
