// Shared definitions of the CUDA backend: dtype codes (same numbers as the TypeScript binding), per-element
// load/store with f32 arithmetic, and the launch bookkeeping every kernel file uses.
#pragma once

#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace paro {

// Storage types; the numbers are shared with src/engine/cuda/dtypes.ts.
enum DType : int { DT_F32 = 0, DT_BF16 = 1, DT_F16 = 2, DT_I32 = 3 };

inline size_t dtypeSize(int dt) { return dt == DT_BF16 || dt == DT_F16 ? 2 : 4; }

/** A CUDA or cuBLAS failure; the binding turns it into a JS exception with this message. */
struct CudaError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/** A caller error (bad shape, unsupported dtype): also a JS exception, never a crash. */
struct ArgError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// ---- runtime (runtime.cu) ----
cudaStream_t stream();
int smCount();
/** Throws CudaError naming the kernel if the launch failed (and, in debug mode, if it faulted). */
void checkLaunch(const char* kernel);
void checkCuda(cudaError_t e, const char* what);
void* devAlloc(size_t bytes);
void devFree(void* p);
/** Copy host bytes to device memory, ordered on the stream; the host buffer may be reused on return. */
void upload(void* dst, const void* src, size_t bytes);

/** A device scratch buffer returned to the cache when the scope ends (stream order keeps reuse safe). */
struct Scratch {
  void* p = nullptr;
  explicit Scratch(size_t bytes) : p(bytes ? devAlloc(bytes) : nullptr) {}
  ~Scratch() { if (p) devFree(p); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  template <typename T> T* as() const { return static_cast<T*>(p); }
};

/** Grid size for a grid-stride loop over n items. */
inline unsigned gridFor(size_t n, int block) {
  size_t want = (n + block - 1) / block;
  size_t cap = (size_t)smCount() * 16;
  if (want > cap) want = cap;
  return (unsigned)(want < 1 ? 1 : want);
}

// ---- element access: every kernel computes in f32 whatever the storage ----
__device__ __forceinline__ float ldf(const void* p, int dt, size_t i) {
  if (dt == DT_BF16) return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
  if (dt == DT_F32) return static_cast<const float*>(p)[i];
  if (dt == DT_F16) return __half2float(static_cast<const __half*>(p)[i]);
  return (float)static_cast<const int*>(p)[i];
}

__device__ __forceinline__ void stf(void* p, int dt, size_t i, float v) {
  if (dt == DT_BF16) static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v);
  else if (dt == DT_F32) static_cast<float*>(p)[i] = v;
  else if (dt == DT_F16) static_cast<__half*>(p)[i] = __float2half_rn(v);
  else static_cast<int*>(p)[i] = (int)truncf(v);
}

__device__ __forceinline__ float warpSum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ double warpSumD(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warpMax(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

__device__ __forceinline__ float warpMin(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fminf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

}  // namespace paro
