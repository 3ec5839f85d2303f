// Hopper warpgroup matrix multiply (wgmma.mma_async, sm_90a only): the few forms attention version 3 of
// k_attention.cu uses — D (64 × N, f32, N 128 or 64) = or += A (64 × 16, bf16) · Bᵀ (N × 16, bf16) with B, and A too
// or A from registers, read from shared memory through matrix descriptors — plus the fences around them.
// Shared-memory operands are K-major, unswizzled or with the 128-byte swizzle (wgDesc). Unswizzled, 8 rows × 16 bytes
// (8 elements of K) form a 128-byte core matrix; a descriptor names the first core matrix, LBO (bytes between core
// matrices adjacent in K) and SBO (bytes between core matrices adjacent in M or N) — PTX ISA, "Matrix Descriptor
// Format"; native/tools/wgmma-probe.cu checks both forms on a device.
// Register fragments are those of mma.sync m16n8k16 per warp of the warpgroup (warp w of the group: rows 16w..16w+15):
// accumulator d[j][e] is row 16w + lane/4 + 8·(e/2), column 8j + 2·(lane%4) + e%2; A from registers as mma.sync's A.
// test/cuda-emu/wgmma.cuh emulates these functions (same names) for the host emulation test of the kernels.
#pragma once
#include <cstdint>

// Device passes without sm_90a's features (sm_80, sm_89, the compute_90 PTX) see empty bodies; the host never launches
// a kernel that uses these there (attnVersion in k_attention.cu asks the device and the build for sm_90a).
#if defined(__CUDA_ARCH__) && !defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define PARO_WGMMA_BODY(...)
#else
#define PARO_WGMMA_BODY(...) __VA_ARGS__
#endif

namespace paro {
namespace {

// Swizzle modes of a descriptor (bits 62–63).
constexpr uint32_t kWgNoSwizzle = 0, kWgSwizzle128 = 1;

// A K-major shared-memory matrix descriptor: start byte address, LBO, SBO (bytes, multiples of 16), swizzle mode.
// With kWgSwizzle128 the operand is stored in 1024-byte atoms of 8 rows × 128 bytes (64 elements of K) whose 16-byte
// chunk c of row r sits at chunk position c ^ (r % 8) — the hardware XORs address bits 4–6 with bits 7–9, so atoms
// must be 1024-byte aligned; SBO is then the step between 8-row atoms, LBO unused, and a k16 step within an atom
// advances the start address by 32 bytes.
__device__ __forceinline__ uint64_t wgDesc(uint32_t addr, uint32_t lbo, uint32_t sbo, uint32_t swizzle = kWgNoSwizzle) {
  return (uint64_t)((addr & 0x3FFFF) >> 4) | ((uint64_t)((lbo & 0x3FFFF) >> 4) << 16) |
         ((uint64_t)((sbo & 0x3FFFF) >> 4) << 32) | ((uint64_t)swizzle << 62);
}

// Which descriptor field an MN-major swizzled operand's strides go in (wgDescMn): PTX ISA and CUTLASS describe LBO as
// the step between 64-element atom columns along M/N and SBO as the step between 8-row groups along K;
// native/tools/wgmma-probe.cu tests both on a device: this reading matched on an H100, the other did not (run 29)
// (the host emulation, test/cuda-emu/wgmma.cuh, has its own wgDescMn, written as the device reads it).
constexpr bool kWgMnLboAlongMn = true;

// A B operand stored MN-major (element (n, k) in row k, n contiguous) in 128-byte swizzle atoms of 8 rows × 64
// elements — the atoms of a K-major tile read the other way, so one tile [rows][128] serves as the K-major operand of
// one product and the MN-major one of another: mnStride bytes between 64-element atom columns along N, 1024 between
// 8-row groups along K (a k16 step: start + 2048).
__device__ __forceinline__ uint64_t wgDescMn(uint32_t addr, uint32_t mnStride) {
  return kWgMnLboAlongMn ? wgDesc(addr, mnStride, 1024, kWgSwizzle128) : wgDesc(addr, 1024, mnStride, kWgSwizzle128);
}

// Orders this thread's register writes (accumulators, A fragments) before the next wgmma reads them.
__device__ __forceinline__ void wgFence() { PARO_WGMMA_BODY(asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");) }
__device__ __forceinline__ void wgCommit() {
  PARO_WGMMA_BODY(asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");)
}
// Waits until at most N committed groups of this warpgroup are still running.
template <int N>
__device__ __forceinline__ void wgWait() {
  PARO_WGMMA_BODY(asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");)
}
// Makes this thread's shared-memory writes (st.shared, cp.async) visible to the async proxy that wgmma reads through;
// then a barrier publishes them to the warpgroup.
__device__ __forceinline__ void fenceProxyAsync() {
  PARO_WGMMA_BODY(asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");)
}
// Pins an accumulator's registers (N column tiles of 8) at this point: the compiler may neither read them before (a
// wgmma still writes them until wgWait) nor keep writes to them after (a wgmma issued next reads them).
template <int N>
__device__ __forceinline__ void wgFenceAcc(float (&d)[N][4]) {
#pragma unroll
  for (int j = 0; j < N; j++)
    asm volatile("" : "+f"(d[j][0]), "+f"(d[j][1]), "+f"(d[j][2]), "+f"(d[j][3])::"memory");
}

// Keeps A fragments (N k16 steps) allocated until here: a wgmma reads its register operands asynchronously, until
// wgWait.
template <int N>
__device__ __forceinline__ void wgFenceFrag(uint32_t (&a)[N][4]) {
#pragma unroll
  for (int j = 0; j < N; j++) asm volatile("" : "+r"(a[j][0]), "+r"(a[j][1]), "+r"(a[j][2]), "+r"(a[j][3])::"memory");
}

#define PARO_WG_ACC(j) "+f"(d[j][0]), "+f"(d[j][1]), "+f"(d[j][2]), "+f"(d[j][3])
#define PARO_WG_ACC_ALL                                                                                            \
  PARO_WG_ACC(0), PARO_WG_ACC(1), PARO_WG_ACC(2), PARO_WG_ACC(3), PARO_WG_ACC(4), PARO_WG_ACC(5), PARO_WG_ACC(6),   \
      PARO_WG_ACC(7), PARO_WG_ACC(8), PARO_WG_ACC(9), PARO_WG_ACC(10), PARO_WG_ACC(11), PARO_WG_ACC(12),            \
      PARO_WG_ACC(13), PARO_WG_ACC(14), PARO_WG_ACC(15)
#define PARO_WG_D                                                                                                   \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, " \
  "%24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, "  \
  "%46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}"

// d (= or +=, accumulate ≠ 0) A·Bᵀ, A 64 × 16 at descriptor da, B 128 × 16 at db: K-major, or MN-major (a wgDescMn
// descriptor) with kTransA / kTransB.
template <int kTransA = 0, int kTransB = 0>
__device__ __forceinline__ void wgmmaSS(float (&d)[16][4], uint64_t da, uint64_t db, int accumulate) {
  PARO_WGMMA_BODY(asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " PARO_WG_D ", %64, %65, p, 1, 1, %67, %68;\n}\n"
      : PARO_WG_ACC_ALL
      : "l"(da), "l"(db), "r"(accumulate), "n"(kTransA), "n"(kTransB));)
}

// d += A·Bᵀ with A (64 × 16) from registers (a: this thread's mma.sync A fragment) and B 128 × 16 at db: K-major, or
// MN-major with kTransB (a wgDescMn descriptor).
template <int kTransB = 0>
__device__ __forceinline__ void wgmmaRS(float (&d)[16][4], const uint32_t (&a)[4], uint64_t db) {
  PARO_WGMMA_BODY(asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " PARO_WG_D
      ", {%64, %65, %66, %67}, %68, p, 1, 1, %70;\n}\n"
      : PARO_WG_ACC_ALL
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1), "n"(kTransB));)
}

#define PARO_WG_ACC8                                                                                               \
  PARO_WG_ACC(0), PARO_WG_ACC(1), PARO_WG_ACC(2), PARO_WG_ACC(3), PARO_WG_ACC(4), PARO_WG_ACC(5), PARO_WG_ACC(6),   \
      PARO_WG_ACC(7)
#define PARO_WG_D32                                                                                                 \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, " \
  "%24, %25, %26, %27, %28, %29, %30, %31}"

// d (64 × 64, = or += as wgmmaSS) A·Bᵀ, A 64 × 16 at da, B 64 × 16 at db: K-major, or MN-major with kTransA / kTransB.
template <int kTransA = 0, int kTransB = 0>
__device__ __forceinline__ void wgmmaSS64(float (&d)[8][4], uint64_t da, uint64_t db, int accumulate) {
  PARO_WGMMA_BODY(asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " PARO_WG_D32 ", %32, %33, p, 1, 1, %35, %36;\n}\n"
      : PARO_WG_ACC8
      : "l"(da), "l"(db), "r"(accumulate), "n"(kTransA), "n"(kTransB));)
}

#undef PARO_WG_D32
#undef PARO_WG_ACC8
#undef PARO_WG_D
#undef PARO_WG_ACC_ALL
#undef PARO_WG_ACC

}  // namespace
}  // namespace paro
