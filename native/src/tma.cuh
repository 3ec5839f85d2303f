// Hopper's tensor memory accelerator (TMA, sm_90) and the shared-memory barriers that track it: the few forms the
// version-4 attention kernels of k_attention.cu use. A tensor map (CUtensorMap, made on the host by tmaMap4 below
// through the driver's cuTensorMapEncodeTiled) describes a tensor of up to 4 dimensions in device memory; one thread
// asks the TMA unit for a box of it (tmaLoad4), which lands in shared memory in the 128-byte swizzle layout wgmma
// reads (wgmma.cuh: rows 128 bytes apart, 16-byte chunk c of row r at c ^ (r % 8)) or unswizzled, elements outside
// the tensor as zeros, and counts its bytes against an mbarrier (mbarExpectTx/mbarWait) — PTX ISA
// "cp.async.bulk.tensor" and "mbarrier" — plus the named barriers that order two warpgroups. test/cuda-emu/tma.cuh
// emulates these functions (same names).
#pragma once
#include <cuda.h>  // CUtensorMap and the encode function's types only: the function comes from the runtime (below)
#include <cuda_runtime.h>

#include <cstdint>

// Device passes without sm_90's features see empty bodies (the host launches the kernels that use these only on
// compute capability 9.0: wgmmaForward in k_attention.cu).
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
#define PARO_TMA_BODY(...)
#else
#define PARO_TMA_BODY(...) __VA_ARGS__
#endif

namespace paro {
namespace {

__device__ __forceinline__ uint32_t tmaSmem(const void* p) { return (uint32_t)__cvta_generic_to_shared(p); }

// An mbarrier (8 bytes of shared memory) expecting `count` arrivals per phase.
__device__ __forceinline__ void mbarInit(uint64_t* bar, int count) {
  PARO_TMA_BODY(asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(tmaSmem(bar)), "r"(count) : "memory");)
}
// Makes initialised mbarriers visible to the other threads and to the TMA unit (then a __syncthreads).
__device__ __forceinline__ void mbarInitFence() {
  PARO_TMA_BODY(asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");)
}
// One arrival that also tells the barrier to expect `bytes` more from TMA copies in this phase.
__device__ __forceinline__ void mbarExpectTx(uint64_t* bar, uint32_t bytes) {
  PARO_TMA_BODY(asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(tmaSmem(bar)),
                             "r"(bytes) : "memory");)
}
// Waits until the phase of parity `parity` (0 for the first phase, then 1, 0, ...) is complete: its arrivals made and
// its expected bytes landed, which also makes those bytes visible to this thread and to its wgmma reads.
__device__ __forceinline__ void mbarWait(uint64_t* bar, uint32_t parity) {
  PARO_TMA_BODY(uint32_t done = 0; do {
    asm volatile(
        "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(tmaSmem(bar)), "r"(parity)
        : "memory");
  } while (!done);)
}

// The box of `map` at element coordinates (c0 innermost .. c3) into shared memory at dst (1024-byte aligned for the
// 128-byte swizzle), its bytes counted against bar. One thread issues it; the copy runs asynchronously.
__device__ __forceinline__ void tmaLoad4(void* dst, const CUtensorMap* map, uint64_t* bar, int c0, int c1, int c2,
                                         int c3) {
  PARO_TMA_BODY(asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4, %5}], "
      "[%6];\n" ::"r"(tmaSmem(dst)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(tmaSmem(bar))
      : "memory");)
}

// Fetches a tensor map (a __grid_constant__ kernel parameter) into the TMA unit's cache ahead of its first use.
__device__ __forceinline__ void tmaPrefetch(const CUtensorMap* map) {
  PARO_TMA_BODY(asm volatile("prefetch.tensormap [%0];\n" ::"l"(reinterpret_cast<uint64_t>(map)) : "memory");)
}

// Named barriers 1..15 (0 is __syncthreads'): bar.sync waits until `threads` threads (a multiple of 32, this one's
// warp included) have arrived at barrier id; bar.arrive counts this warp's threads without waiting.
__device__ __forceinline__ void namedBarSync(int id, int threads) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}
__device__ __forceinline__ void namedBarArrive(int id, int threads) {
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

// ---- host ----
typedef CUresult (*TmaEncodeFn)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*,
                                const cuuint64_t*, const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave,
                                CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);

// The driver's cuTensorMapEncodeTiled, through the runtime (the addon does not link libcuda); null when the driver
// lacks it.
inline TmaEncodeFn tmaEncodeFn() {
  static TmaEncodeFn fn = [] {
    void* p = nullptr;
    cudaDriverEntryPointQueryResult q{};
#if CUDART_VERSION >= 12050
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault, &q) != cudaSuccess)
      p = nullptr;
#else
    if (cudaGetDriverEntryPoint("cuTensorMapEncodeTiled", &p, cudaEnableDefault, &q) != cudaSuccess) p = nullptr;
#endif
    if (q != cudaDriverEntryPointSuccess) p = nullptr;
    (void)cudaGetLastError();  // a failed query must not surface at the next launch check
    return reinterpret_cast<TmaEncodeFn>(p);
  }();
  return fn;
}

}  // namespace
}  // namespace paro

#include "tma-map.h"
