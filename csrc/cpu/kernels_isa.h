// Body of each per-ISA translation unit: instantiates the kernel families for float and
// double and exposes them as one KernelTable. The including file has already set FC_ISA,
// FC_VEC_BYTES and the target pragma.
#include "vec.h"
#include "direct.h"
#include "dense.h"

namespace fastconv {
namespace FC_ISA {

#define FC_STR2(x) #x
#define FC_STR(x) FC_STR2(x)

template <typename T>
const KernelTable<T>* table() {
  static const KernelTable<T> t{
      FC_STR(FC_ISA),        &direct_fwd_rows<T>,   &direct_dgrad_plane<T>,
      &direct_wgrad_rows<T>, &dense_pack_weight<T>, &dense_fwd_tile<T>,
      &dense_wgrad_tile<T>,  &dense_dgrad_tile<T>,  &sum<T>,
  };
  return &t;
}
template const KernelTable<float>* table<float>();
template const KernelTable<double>* table<double>();

}  // namespace FC_ISA
}  // namespace fastconv
