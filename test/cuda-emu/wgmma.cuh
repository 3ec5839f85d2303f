// Host emulation of native/src/wgmma.cuh (same names; found first on the emulation's include path): the warpgroup
// MMA m64n128k16 bf16 → f32 with operands read from g_smem through K-major matrix descriptors, unswizzled (element
// (r, k) at start + (r/8)·SBO + (k/8)·LBO + (r%8)·16 + (k%8)·2 bytes, PTX ISA "Matrix Descriptor Format") or with the
// 128-byte swizzle, or MN-major (wgDescMn; the transpose flags), A also from the registers of the warp's lanes in
// mma.sync's A layout. Products are summed in double and computed at issue
// (the kernels leave operands and accumulators alone until wgWait); the fences are no-ops here.
#pragma once
#include <cstdint>
#include <stdexcept>

namespace paro {
namespace {

constexpr uint32_t kWgNoSwizzle = 0, kWgSwizzle128 = 1;
inline uint64_t wgDesc(uint32_t addr, uint32_t lbo, uint32_t sbo, uint32_t swizzle = kWgNoSwizzle) {
  return (uint64_t)((addr & 0x3FFFF) >> 4) | ((uint64_t)((lbo & 0x3FFFF) >> 4) << 16) |
         ((uint64_t)((sbo & 0x3FFFF) >> 4) << 32) | ((uint64_t)swizzle << 62);
}
inline void wgFence() {}
inline void wgCommit() {}
template <int N>
inline void wgWait() {}
inline void fenceProxyAsync() {}
template <int N>
inline void wgFenceAcc(float (&)[N][4]) {}

template <int N>
inline void wgFenceFrag(uint32_t (&)[N][4]) {}

// An MN-major B operand's descriptor as the device reads it (run 29's wgmma probe, form 5): LBO the step between
// 64-element atom columns along N, SBO (1024) the step between 8-row groups along K.
inline uint64_t wgDescMn(uint32_t addr, uint32_t mnStride) { return wgDesc(addr, mnStride, 1024, kWgSwizzle128); }

// Element (r, k) of a K-major operand whose descriptor is desc. 128-byte swizzle: the unswizzled address of 8-row
// atoms (rows 128 bytes apart, atoms SBO apart) with address bits 4–6 XORed with bits 7–9.
inline float emuDescElem(uint64_t desc, int r, int k) {
  const uint32_t mode = (uint32_t)(desc >> 62);
  if (mode != kWgNoSwizzle && mode != kWgSwizzle128) throw std::runtime_error("emu: wgmma swizzle mode not emulated");
  const uint32_t addr = (uint32_t)(desc & 0x3FFF) << 4, lbo = (uint32_t)((desc >> 16) & 0x3FFF) << 4,
                 sbo = (uint32_t)((desc >> 32) & 0x3FFF) << 4;
  uint32_t byte = addr + (r / 8) * sbo + (k / 8) * lbo + (r % 8) * 16 + (k % 8) * 2;
  if (mode == kWgSwizzle128) {
    // The XOR takes absolute address bits: a start past the first row of a 1024-byte aligned atom reads other rows.
    if ((addr & 0x380) != 0) throw std::runtime_error("emu: swizzled operand start not in the first row of an atom");
    byte = addr + (r / 8) * sbo + (r % 8) * 128 + k * 2;
    byte ^= ((byte >> 7) & 7) << 4;
  }
  if (byte + 2 > sizeof(g_smem)) throw std::runtime_error("emu: wgmma operand outside shared memory");
  return bf16ToF(reinterpret_cast<const uint16_t*>(reinterpret_cast<const char*>(g_smem) + byte)[0]);
}

// Element (n, k) of an MN-major operand (128-byte swizzle only: row k of 64 elements n, atoms of 8 rows × 128 bytes):
// atom column n / 64 at LBO, 8-row group k / 8 at SBO, then the same XOR of address bits 4–6 with bits 7–9.
inline float emuDescElemMn(uint64_t desc, int n, int k) {
  if ((uint32_t)(desc >> 62) != kWgSwizzle128) throw std::runtime_error("emu: MN-major operand without the 128-byte swizzle");
  const uint32_t addr = (uint32_t)(desc & 0x3FFF) << 4, lbo = (uint32_t)((desc >> 16) & 0x3FFF) << 4,
                 sbo = (uint32_t)((desc >> 32) & 0x3FFF) << 4;
  if ((addr & 0x380) != 0) throw std::runtime_error("emu: swizzled operand start not in the first row of an atom");
  uint32_t byte = addr + (n / 64) * lbo + (k / 8) * sbo + (k % 8) * 128 + (n % 64) * 2;
  byte ^= ((byte >> 7) & 7) << 4;
  if (byte + 2 > sizeof(g_smem)) throw std::runtime_error("emu: wgmma operand outside shared memory");
  return bf16ToF(reinterpret_cast<const uint16_t*>(reinterpret_cast<const char*>(g_smem) + byte)[0]);
}

// This thread's accumulators: d[j][e] at row 16·w + lane/4 + 8·(e/2) of the warpgroup's 64 (w: warp in the group),
// column 8j + 2·(lane%4) + e%2; A(row, k) and B(col, k) give the operands; N/8 = NJ column tiles.
template <int NJ, typename FA, typename FB>
inline void emuWgmma(float (&d)[NJ][4], bool accumulate, const FA& A, const FB& B) {
  const int w = (int)(threadIdx.x / 32) % 4, lane = (int)threadIdx.x % 32, g = lane / 4, q = lane % 4;
  for (int j = 0; j < NJ; j++) {
    for (int e = 0; e < 4; e++) {
      const int row = 16 * w + g + 8 * (e / 2), col = 8 * j + 2 * q + e % 2;
      double s = accumulate ? (double)d[j][e] : 0.0;
      for (int k = 0; k < 16; k++) s += (double)A(row, k) * (double)B(col, k);
      d[j][e] = (float)s;
    }
  }
}

// Operand element (row or column i, k) of a descriptor: K-major, or MN-major with trans.
inline float emuOperand(uint64_t desc, bool trans, int i, int k) {
  return trans ? emuDescElemMn(desc, i, k) : emuDescElem(desc, i, k);
}

template <int kTransA = 0, int kTransB = 0>
inline void wgmmaSS(float (&d)[16][4], uint64_t da, uint64_t db, int accumulate) {
  emuWgmma(d, accumulate != 0, [&](int r, int k) { return emuOperand(da, kTransA, r, k); },
           [&](int c, int k) { return emuOperand(db, kTransB, c, k); });
}

template <int kTransA = 0, int kTransB = 0>
inline void wgmmaSS64(float (&d)[8][4], uint64_t da, uint64_t db, int accumulate) {
  emuWgmma(d, accumulate != 0, [&](int r, int k) { return emuOperand(da, kTransA, r, k); },
           [&](int c, int k) { return emuOperand(db, kTransB, c, k); });
}

// A from the registers of the warp's 32 lanes: lane 4·(r%8) + (k%8)/2 holds row r (of the warp's 16) and column k in
// register (r ≥ 8) + 2·(k ≥ 8), low half for even k. B K-major, or MN-major with kTransB.
template <int kTransB = 0>
inline void wgmmaRS(float (&d)[16][4], const uint32_t (&a)[4], uint64_t db) {
  const int t = (int)threadIdx.x, w0 = t - t % 32, w = (t / 32) % 4;
  for (int i = 0; i < 4; i++) g_x[t][i] = a[i];
  __syncwarp();
  float A[16][16];
  for (int r = 0; r < 16; r++) {
    for (int k = 0; k < 16; k++) {
      const uint32_t v = g_x[w0 + 4 * (r % 8) + (k % 8) / 2][(r >= 8 ? 1 : 0) + (k >= 8 ? 2 : 0)];
      A[r][k] = bf16ToF((uint16_t)(k % 2 == 0 ? v & 0xffff : v >> 16));
    }
  }
  __syncwarp();
  emuWgmma(d, true, [&](int r, int k) { return A[r - 16 * w][k]; },
           [&](int c, int k) { return emuOperand(db, kTransB, c, k); });
}

}  // namespace
}  // namespace paro
