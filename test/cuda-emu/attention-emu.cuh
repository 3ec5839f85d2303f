// Host emulation of the tensor-core pieces native/src/k_attention.cu uses, on top of test/cuda-emu/common.cuh (one
// fiber per CUDA thread, blocks one after another): ldmatrix (.x4, .trans), mma.sync m16n8k16 bf16 → f32
// (products summed in double), cp.async (copied at issue or, with EMU_LATE_COPIES=1, only at the wait that must
// complete them: a read before its wait then sees the 0xff fill), warp votes and shared-memory atomics. The test
// (test/attention-emu.test.ts) strips the kernel file's own inline-PTX helpers and includes this instead.
#pragma once
#include <vector>

#include "kernel-shims.h"

#define __restrict__ __restrict

struct float2 {
  float x, y;
};
inline float2 make_float2(float a, float b) { return {a, b}; }
struct __nv_bfloat16 {
  uint16_t bits;
};
struct __nv_bfloat162 {
  __nv_bfloat16 lo, hi;
};
inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b) { return {{paro::fToBf16(a)}, {paro::fToBf16(b)}}; }

enum { cudaDevAttrMaxSharedMemoryPerBlockOptin = 1, cudaDevAttrComputeCapabilityMajor, cudaDevAttrComputeCapabilityMinor };
inline int cudaGetDevice(int* d) {
  *d = 0;
  return 0;
}
// An H100: compute capability 9.0, 227 KB of shared memory per block (opt-in maximum).
inline int cudaDeviceGetAttribute(int* v, int attr, int) {
  *v = attr == cudaDevAttrComputeCapabilityMajor ? 9 : attr == cudaDevAttrComputeCapabilityMinor ? 0 : 227 * 1024;
  return 0;
}
// The addon as built for sm_90a (native/build.mjs): the version-3 forward (wgmma, emulated by wgmma.cuh) can run.
#define PARO_HAVE_SM90A 1

// Per-thread exchange slots (blocks run one after another, at most 1024 threads).
inline uint32_t g_x[1024][8];

// The atomics need no lock: the fibers share one OS thread and none is switched out inside one of these.
inline int atomicMax(int* p, int v) {
  int old = *p;
  if (v > old) *p = v;
  return old;
}
// Shared-memory counters (version 4's buffer releases): the old value, as the device's.
inline int atomicAdd(int* p, int v) {
  int old = *p;
  *p += v;
  return old;
}
// Version 6's dQ sums in global memory (the device's red.global.add.f32).
inline float atomicAdd(float* p, float v) {
  float old = *p;
  *p += v;
  return old;
}
inline int atomicMin(int* p, int v) {
  int old = *p;
  if (v < old) *p = v;
  return old;
}
inline bool emuVote(bool v, bool all) {
  const int t = threadIdx.x, w0 = t - t % 32;
  g_x[t][0] = v ? 1u : 0u;
  __syncwarp();
  bool r = all;
  for (int i = 0; i < 32; i++) r = all ? (r && g_x[w0 + i][0] != 0) : (r || g_x[w0 + i][0] != 0);
  __syncwarp();
  return r;
}
inline bool __all_sync(unsigned, bool v) { return emuVote(v, true); }
inline bool __any_sync(unsigned, bool v) { return emuVote(v, false); }

namespace paro {
inline size_t dtypeSize(int dt) { return dt == DT_BF16 || dt == DT_F16 ? 2 : 4; }
// An H100's 132 SMs, or EMU_SM_COUNT (a small count makes the launchers pick their long-grid paths).
inline int smCount() {
  const char* e = std::getenv("EMU_SM_COUNT");
  return e != nullptr ? std::atoi(e) : 132;
}

namespace {
inline uint32_t smemAddr(const void* p) { return (uint32_t)((const char*)p - (const char*)g_smem); }

// ldmatrix .x4: lanes 8i..8i+7 give the row addresses of 8×8 matrix i; lane t receives in r[i] the pair
// (row t/4, cols 2(t%4), 2(t%4)+1) of matrix i, or with .trans (rows 2(t%4), 2(t%4)+1, col t/4).
inline void emuLdsm(uint32_t r[4], uint32_t addr, bool trans) {
  const int t = threadIdx.x, w0 = t - t % 32, lane = t % 32;
  if (addr % 16 != 0) throw std::runtime_error("emu: ldmatrix row address not 16-byte aligned");
  g_x[t][0] = addr;
  __syncwarp();
  const uint16_t* sm = reinterpret_cast<const uint16_t*>(g_smem);
  for (int i = 0; i < 4; i++) {
    uint16_t lo, hi;
    if (!trans) {
      const uint32_t row = g_x[w0 + 8 * i + lane / 4][0] / 2;
      lo = sm[row + 2 * (lane % 4)];
      hi = sm[row + 2 * (lane % 4) + 1];
    } else {
      lo = sm[g_x[w0 + 8 * i + 2 * (lane % 4)][0] / 2 + lane / 4];
      hi = sm[g_x[w0 + 8 * i + 2 * (lane % 4) + 1][0] / 2 + lane / 4];
    }
    r[i] = (uint32_t)lo | ((uint32_t)hi << 16);
  }
  __syncwarp();
}
inline void ldsm4(uint32_t r[4], const __nv_bfloat16* p) { emuLdsm(r, smemAddr(p), false); }
inline void ldsm4t(uint32_t r[4], const __nv_bfloat16* p) { emuLdsm(r, smemAddr(p), true); }
inline void ldsm4a(uint32_t r[4], uint32_t addr) { emuLdsm(r, addr, false); }
inline void ldsm4ta(uint32_t r[4], uint32_t addr) { emuLdsm(r, addr, true); }
inline uint32_t opaque(uint32_t x) { return x; }

// ex2.approx.ftz.f32: 2^x with a subnormal argument or result flushed to zero (exp2f for the approximation).
inline float ex2Ftz(float x) {
  if (std::fpclassify(x) == FP_SUBNORMAL) x = 0.0f;
  const float y = std::exp2(x);
  return std::fpclassify(y) == FP_SUBNORMAL ? 0.0f : y;
}

inline float lo16(uint32_t v) { return bf16ToF((uint16_t)(v & 0xffff)); }
inline float hi16(uint32_t v) { return bf16ToF((uint16_t)(v >> 16)); }

// mma.sync m16n8k16 row.col: lane t (g = t/4, c = t%4) holds A (rows g, g+8; k 2c.., 2c+8..), B (k 2c.., 2c+8..;
// column g) and C (rows g, g+8; columns 2c, 2c+1).
inline void mma(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
  const int t = threadIdx.x, w0 = t - t % 32, lane = t % 32;
  for (int i = 0; i < 4; i++) g_x[t][i] = a[i];
  g_x[t][4] = b0;
  g_x[t][5] = b1;
  __syncwarp();
  float A[16][16], B[16][8];
  for (int l = 0; l < 32; l++) {
    const int g = l / 4, q = l % 4;
    const uint32_t* x = g_x[w0 + l];
    A[g][2 * q] = lo16(x[0]);
    A[g][2 * q + 1] = hi16(x[0]);
    A[g + 8][2 * q] = lo16(x[1]);
    A[g + 8][2 * q + 1] = hi16(x[1]);
    A[g][2 * q + 8] = lo16(x[2]);
    A[g][2 * q + 9] = hi16(x[2]);
    A[g + 8][2 * q + 8] = lo16(x[3]);
    A[g + 8][2 * q + 9] = hi16(x[3]);
    B[2 * q][g] = lo16(x[4]);
    B[2 * q + 1][g] = hi16(x[4]);
    B[2 * q + 8][g] = lo16(x[5]);
    B[2 * q + 9][g] = hi16(x[5]);
  }
  __syncwarp();
  const int g = lane / 4, q = lane % 4;
  for (int e = 0; e < 4; e++) {
    const int row = g + (e / 2) * 8, col = 2 * q + (e % 2);
    double s = c[e];
    for (int k = 0; k < 16; k++) s += (double)A[row][k] * (double)B[k][col];
    c[e] = (float)s;
  }
}

// cp.async: copied at issue, or queued per thread and done at the wait that must complete it (EMU_LATE_COPIES).
struct EmuCopy {
  void* dst;
  const void* src;
  bool valid;
};
// Each thread's committed groups and its open group (per-thread state: common.cuh's EmuLocal).
inline EmuLocal<std::vector<std::vector<EmuCopy>>> t_groups;
inline EmuLocal<std::vector<EmuCopy>> t_open;
inline bool emuLate() {
  const char* e = std::getenv("EMU_LATE_COPIES");
  return e != nullptr && e[0] == '1';
}
inline void emuDo(const EmuCopy& c) {
  if (c.valid) std::memcpy(c.dst, c.src, 16);
  else std::memset(c.dst, 0, 16);
}
inline void cpAsync16(__nv_bfloat16* dst, const __nv_bfloat16* src, bool valid) {
  if (smemAddr(dst) % 16 != 0) throw std::runtime_error("emu: cp.async destination not 16-byte aligned");
  if (emuLate()) t_open->push_back({dst, src, valid});
  else emuDo({dst, src, valid});
}
inline void cpAsyncCommit() {
  t_groups->push_back(*t_open);
  t_open->clear();
}
template <int N>
inline void cpAsyncWait() {
  std::vector<std::vector<EmuCopy>>& groups = *t_groups;
  while (groups.size() > (size_t)N) {
    for (const EmuCopy& c : groups.front()) emuDo(c);
    groups.erase(groups.begin());
  }
}
}  // namespace

// kernel<<<grid, block, smem, stream()>>>(args) → emuLaunch3(kernel, grid, block, smem)(args): grid x, y and z.
template <typename K>
auto emuLaunch3(K kernel, dim3 grid, dim3 block, size_t smem) {
  return emuLaunch(kernel, grid, block, smem, 4096, [] {
    if (!t_groups->empty() || !t_open->empty()) throw std::runtime_error("emu: cp.async left pending");
  });
}
}  // namespace paro
