// Host emulation of what native/src/k_gram.cu needs beyond test/cuda-emu/common.cuh: static shared memory, uint4,
// the bit casts and f16 decoding, vec8Ok, and its two inline-PTX helpers (test/group-gram-emu.test.ts strips the
// kernel file's own): cvt.rna.tf32.f32 (round to nearest, ties away from zero, 10 mantissa bits kept) and
// mma.sync m16n8k8 row.col TF32 → f32 with the PTX fragment layout (per call the 8 products of an output element
// summed in double onto it, then rounded to f32). The mma refuses operands that are not TF32 patterns (low 13 bits
// set): the kernel must convert before it multiplies.
#pragma once
#include <initializer_list>
#include "kernel-shims.h"

struct __half {
  uint16_t bits;
};

inline __half __ushort_as_half(unsigned short v) { return {v}; }
// IEEE binary16 to f32 (subnormals, infinities and NaN included).
inline float __half2float(__half h) {
  const uint32_t sign = (uint32_t)(h.bits >> 15) << 31, e = (h.bits >> 10) & 0x1f, m = h.bits & 0x3ff;
  float v;
  if (e == 0) v = std::ldexp((float)m, -24);
  else if (e == 31) v = m ? NAN : INFINITY;
  else v = std::ldexp((float)(m | 0x400), (int)e - 25);
  uint32_t u;
  std::memcpy(&u, &v, 4);
  return __uint_as_float(u | sign);
}

namespace paro {
inline bool vec8Ok(size_t n, std::initializer_list<const void*> ptrs) {
  if (n % 8 != 0) return false;
  for (const void* p : ptrs)
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
  return true;
}

namespace {
inline uint32_t tf32Bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;  // magnitude + half an ulp, truncated
  return u;
}

// Exchange slots of the lanes' fragments, two in turn: a lane can be at most one call ahead of the slowest lane of
// its warp (the call's barrier), so one barrier per call suffices.
inline uint32_t g_mmaX[2][1024][6];
// Each thread's count of its calls (per-thread state: common.cuh's EmuLocal, 0 at the start of a block).
inline EmuLocal<unsigned> t_mmaCalls;

inline void mmaTf32(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
  const int t = threadIdx.x, w0 = t - t % 32, lane = t % 32;
  uint32_t(*x)[6] = g_mmaX[(*t_mmaCalls)++ % 2];
  const uint32_t mine[6] = {a[0], a[1], a[2], a[3], b0, b1};
  for (int r = 0; r < 6; r++) {
    if ((mine[r] & 0x1fffu) != 0) throw std::runtime_error("emu: mma operand is not a TF32 pattern");
    x[t][r] = mine[r];
  }
  __syncwarp();
  double A[16][8], B[8][8];
  for (int l = 0; l < 32; l++) {
    const int g = l / 4, q = l % 4;
    const uint32_t* v = x[w0 + l];
    A[g][q] = __uint_as_float(v[0]);
    A[g + 8][q] = __uint_as_float(v[1]);
    A[g][q + 4] = __uint_as_float(v[2]);
    A[g + 8][q + 4] = __uint_as_float(v[3]);
    B[q][g] = __uint_as_float(v[4]);
    B[q + 4][g] = __uint_as_float(v[5]);
  }
  const int g = lane / 4, q = lane % 4;
  for (int e = 0; e < 4; e++) {
    const int row = g + (e / 2) * 8, col = 2 * q + e % 2;
    double s = c[e];
    for (int k = 0; k < 8; k++) s += A[row][k] * B[k][col];
    c[e] = (float)s;
  }
}
}  // namespace
}  // namespace paro
