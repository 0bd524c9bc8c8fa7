// The one workspace of the CPU kernels: named per-thread buffers, page-aligned, reused
// across calls and capped. Every driver and every kernel, on either side of the ISA
// boundary, takes its scratch memory here (never a per-call std::vector on a hot path).
//
// Why per thread and reused: a buffer allocated afresh each call lands in new mmap'ed pages
// whose first-touch faults can cost more than the work done in them. Why page-aligned:
// where a buffer sits relative to the cache sets must not depend on the heap's history,
// and a whole-vector access to a staged position must never straddle two cache lines. Why
// capped: a thread keeps at most kWorkspaceCachedBytes per slot; a larger request gets a
// buffer of its own, freed when the Workspace goes out of scope.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace fastconv {

// Buffers alive at the same time on one thread should have different slots (a second
// holder of a slot gets memory of its own, allocated per call). Drivers hold theirs across
// a parallel region on the calling thread, which also runs tasks, so driver slots and
// kernel slots never coincide.
enum class Slot : int {
  // Held by a driver (calling thread) across its parallel regions.
  kWeight,         // a packed or transformed weight
  kWeightPanels,   // a transformed weight repacked into panels
  kWeightTaps,     // a weight reordered tap-major ([R*S][K][C/groups]) on its way to panels
  kFlippedWeight,  // the flipped, transposed weight of grad-input as a forward pass
  kPartials,       // per-chunk partial sums of a reduction, added in a fixed order
  kGradTransform,  // Winograd's transformed grad-weight
  kPhaseIn,        // the dilated phase split: a split operand
  kPhaseIn2,       // the dilated phase split: a second split operand
  kPhaseOut,       // the dilated phase split: the result before the merge
  kSpread,         // a strided 1x1 grad-input on its own grid, before it is spread out
  kPositions,      // a few positions' rows, gathered from or for a strided layout (gemv/)
  kPositions2,     // a second such operand
  // Held by a kernel inside one task (worker thread).
  kStage,   // staged input rows or blocks
  kStage2,  // a second staged operand (grad_output)
  kTaps,    // per-tap offsets or weight vectors
  kPackA,   // GEMM operand A
  kPackB,   // GEMM operand B (packed micro-panels)
  kTile,    // a block of GEMM results
  kRow,     // one im2col or gather row
  kRow2,    // a second row
  kCount
};

// A thread keeps at most this many bytes per slot between calls.
constexpr size_t kWorkspaceCachedBytes = size_t{64} << 20;

// At least `bytes` of page-aligned memory, released with std::free; throws std::bad_alloc.
void* page_aligned_alloc(size_t bytes);

namespace detail {
struct FreeDeleter {
  void operator()(void* p) const;
};
// The thread's cached buffer of `slot`, grown to `bytes`, now held until
// workspace_release(slot); nullptr when bytes is above the cap or the slot is already held
// on this thread (a kernel and its driver picking the same slot: the second one gets a
// buffer of its own, where it had shared, or freed and regrown, the first one's).
void* workspace_acquire(Slot slot, size_t bytes);
void workspace_release(Slot slot);
}  // namespace detail

// How many times, process-wide, a Workspace found its slot already held on its thread (each
// a buffer allocated for one call; tests check that no pass does this).
int64_t workspace_slot_clashes();

// n elements of T (at least one), contents undefined, valid while this object lives. Made
// and destroyed on one thread (moves included).
template <typename T>
class Workspace {
 public:
  Workspace(Slot slot, int64_t n) : slot_(slot) {
    const size_t bytes = static_cast<size_t>(n > 1 ? n : 1) * sizeof(T);
    data_ = static_cast<T*>(detail::workspace_acquire(slot, bytes));
    held_ = data_ != nullptr;
    if (!held_) {
      owned_.reset(page_aligned_alloc(bytes));
      data_ = static_cast<T*>(owned_.get());
    }
  }
  Workspace(Workspace&& o) noexcept
      : owned_(std::move(o.owned_)), data_(o.data_), slot_(o.slot_), held_(o.held_) {
    o.held_ = false;
  }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  Workspace& operator=(Workspace&&) = delete;
  ~Workspace() {
    if (held_) detail::workspace_release(slot_);
  }
  T* data() const { return data_; }

 private:
  std::unique_ptr<void, detail::FreeDeleter> owned_;
  T* data_ = nullptr;
  Slot slot_;
  bool held_ = false;
};

}  // namespace fastconv
