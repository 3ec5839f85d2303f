// What native/src/k_elementwise.cu and k_reduce.cu need beyond test/cuda-emu/common.cuh under the host emulation
// (test/elementwise-kernels-emu.test.ts): the 8-wide accesses (element by element, but checking the 16-byte alignment
// and the multiple-of-8 index the device's uint4/float4 accesses need, and counting the accesses of each width so the
// test sees which path ran), vec8Ok, warpSumD, static shared memory, and gridFor with an emulated SM count (common
// .cuh's emulated gridFor caps every grid at 64 blocks; the real one at smCount()·16), so that small problems already
// need the grid-stride loops.
#pragma once
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>

#include "common.cuh"

// A function's __shared__ array: one static per function (blocks run one after another), as attention-emu.cuh does.
#define __shared__ static
using std::isfinite;

namespace paro {

inline std::atomic<long> g_emuAccess8{0}, g_emuAccess1{0};
inline int g_emuSmCount = 1;
inline int smCount() { return g_emuSmCount; }

/** native/src/common.cuh's gridFor, with the emulated SM count. */
inline unsigned gridForEmu(size_t n, int block) {
  size_t want = (n + block - 1) / block;
  size_t cap = (size_t)smCount() * 16;
  if (want > cap) want = cap;
  return (unsigned)(want < 1 ? 1 : want);
}

inline void download(void* dstHost, const void* srcDev, size_t bytes) { std::memcpy(dstHost, srcDev, bytes); }
inline void memsetD(void* dst, int byte, size_t bytes) { std::memset(dst, byte, bytes); }

inline size_t emuDtypeSize(int dt) { return dt == DT_BF16 || dt == DT_F16 ? 2 : 4; }

// The device's 16-byte accesses fault (or read the wrong bytes) unless the element index is a multiple of 8 and the
// address 16-byte aligned: abort, so that an indexing mistake on the 8-wide path cannot pass unseen.
inline void emuCheck8(const void* p, int dt, size_t i, const char* what) {
  uintptr_t a = reinterpret_cast<uintptr_t>(p) + i * emuDtypeSize(dt);
  if (i % 8 != 0 || a % 16 != 0) {
    std::fprintf(stderr, "emu: %s of 8 elements at index %zu, address %% 16 = %u\n", what, i, (unsigned)(a % 16));
    std::abort();
  }
}

template <int W>
inline void ldw(const void* p, int dt, size_t i, float* v) {
  if constexpr (W == 8) {
    emuCheck8(p, dt, i, "load");
    g_emuAccess8.fetch_add(1, std::memory_order_relaxed);
    for (int k = 0; k < 8; k++) v[k] = ldf(p, dt, i + k);
  } else {
    static_assert(W == 1, "W is 1 or 8");
    g_emuAccess1.fetch_add(1, std::memory_order_relaxed);
    v[0] = ldf(p, dt, i);
  }
}

template <int W>
inline void stw(void* p, int dt, size_t i, const float* v) {
  if constexpr (W == 8) {
    emuCheck8(p, dt, i, "store");
    g_emuAccess8.fetch_add(1, std::memory_order_relaxed);
    for (int k = 0; k < 8; k++) stf(p, dt, i + k, v[k]);
  } else {
    static_assert(W == 1, "W is 1 or 8");
    g_emuAccess1.fetch_add(1, std::memory_order_relaxed);
    stf(p, dt, i, v[0]);
  }
}

/** native/src/common.cuh's vec8Ok: n a multiple of 8 and every operand 16-byte aligned. */
inline bool vec8Ok(size_t n, std::initializer_list<const void*> ptrs) {
  if (n % 8 != 0) return false;
  for (const void* p : ptrs)
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
  return true;
}

inline double warpSumD(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

}  // namespace paro

// The kernel files' launches size their grids with this (defined after common.cuh, whose own gridFor stays as it is).
#define gridFor gridForEmu
