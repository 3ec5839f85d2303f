// What native/src/k_paro.cu and k_paro_fused.cu need beyond test/cuda-emu/common.cuh under the host emulation
// (included after common.cuh by fused-main.cc and paro-composition.cc).
#pragma once
#include <cmath>

#define __align__(n) alignas(n)
using std::isnan;

struct float2 {
  float x, y;
};
inline float2 make_float2(float x, float y) { return {x, y}; }
struct alignas(16) uint4 {
  unsigned x, y, z, w;
};

inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fmul_rn(float a, float b) { return a * b; }

enum {
  cudaDevAttrMaxSharedMemoryPerMultiprocessor = 1,
  cudaDevAttrMaxSharedMemoryPerBlockOptin = 2,
  cudaDevAttrMaxRegistersPerMultiprocessor = 3
};
inline int cudaGetDevice(int* d) {
  *d = 0;
  return 0;
}
// An H100's limits (228 KiB per SM, 227 KiB per block, 64 Ki registers per SM), so the emulation picks the device's
// geometry.
inline int cudaDeviceGetAttribute(int* v, int attr, int) {
  *v = attr == cudaDevAttrMaxSharedMemoryPerMultiprocessor ? 233472
       : attr == cudaDevAttrMaxSharedMemoryPerBlockOptin   ? 232448
                                                           : 65536;
  return 0;
}
// Every kernel as one of 128 registers per thread (the fused kernels use 124 to 243 on sm_90) and at most
// g_emuMaxThreadsPerBlock threads a block (fused-main.cc sets 32 to give every kernel blocks of one warp, so that two
// versions of a kernel get the same launch geometry and their sums the same order).
inline int g_emuMaxThreadsPerBlock = 512;
struct cudaFuncAttributes {
  int numRegs, maxThreadsPerBlock;
};
inline int cudaFuncGetAttributes(cudaFuncAttributes* a, const void*) {
  a->numRegs = 128;
  a->maxThreadsPerBlock = g_emuMaxThreadsPerBlock;
  return 0;
}

namespace paro {
inline void castK(const void* src, int sdt, void* dst, int ddt, size_t n) {
  for (size_t i = 0; i < n; i++) stf(dst, ddt, i, ldf(src, sdt, i));
}
}  // namespace paro
