// Shared definitions of the CUDA backend: dtype codes (same numbers as the TypeScript binding), per-element
// load/store with f32 arithmetic, and the launch bookkeeping every kernel file uses.
#pragma once

#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
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

// ---- 8 consecutive elements at once: 16-byte loads/stores of 16-bit storage, two of f32 ----
// Memory-bound kernels reach HBM bandwidth only with wide accesses; the conversions are ldf/stf's, element by
// element, so a vectorized kernel computes bit-identical results. i is a multiple of 8 and the pointer 16-byte
// aligned (vec8Ok on the host).
__device__ __forceinline__ void ld8(const void* p, int dt, size_t i, float v[8]) {
  if (dt == DT_BF16 || dt == DT_F16) {
    uint4 r = *reinterpret_cast<const uint4*>(static_cast<const uint16_t*>(p) + i);
    const uint32_t w[4] = {r.x, r.y, r.z, r.w};
#pragma unroll
    for (int k = 0; k < 4; k++) {
      if (dt == DT_BF16) {
        __nv_bfloat162 h = *reinterpret_cast<const __nv_bfloat162*>(&w[k]);
        v[2 * k] = __low2float(h);
        v[2 * k + 1] = __high2float(h);
      } else {
        __half2 h = *reinterpret_cast<const __half2*>(&w[k]);
        v[2 * k] = __low2float(h);
        v[2 * k + 1] = __high2float(h);
      }
    }
  } else if (dt == DT_F32) {
    const float4* q = reinterpret_cast<const float4*>(static_cast<const float*>(p) + i);
    float4 a = q[0], b = q[1];
    v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w;
    v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
  } else {
#pragma unroll
    for (int k = 0; k < 8; k++) v[k] = ldf(p, dt, i + k);
  }
}

__device__ __forceinline__ void st8(void* p, int dt, size_t i, const float v[8]) {
  if (dt == DT_BF16 || dt == DT_F16) {
    uint32_t w[4];
#pragma unroll
    for (int k = 0; k < 4; k++) {
      if (dt == DT_BF16) {
        __nv_bfloat162 h = __halves2bfloat162(__float2bfloat16_rn(v[2 * k]), __float2bfloat16_rn(v[2 * k + 1]));
        w[k] = *reinterpret_cast<uint32_t*>(&h);
      } else {
        __half2 h = __halves2half2(__float2half_rn(v[2 * k]), __float2half_rn(v[2 * k + 1]));
        w[k] = *reinterpret_cast<uint32_t*>(&h);
      }
    }
    *reinterpret_cast<uint4*>(static_cast<uint16_t*>(p) + i) = make_uint4(w[0], w[1], w[2], w[3]);
  } else if (dt == DT_F32) {
    float4* q = reinterpret_cast<float4*>(static_cast<float*>(p) + i);
    q[0] = make_float4(v[0], v[1], v[2], v[3]);
    q[1] = make_float4(v[4], v[5], v[6], v[7]);
  } else {
#pragma unroll
    for (int k = 0; k < 8; k++) stf(p, dt, i + k, v[k]);
  }
}

/** W = 1: ldf/stf; W = 8: ld8/st8. Lets one kernel body serve the scalar and the vectorized launch. */
template <int W>
__device__ __forceinline__ void ldw(const void* p, int dt, size_t i, float* v) {
  if constexpr (W == 8) ld8(p, dt, i, v);
  else v[0] = ldf(p, dt, i);
}
template <int W>
__device__ __forceinline__ void stw(void* p, int dt, size_t i, const float* v) {
  if constexpr (W == 8) st8(p, dt, i, v);
  else stf(p, dt, i, v[0]);
}

/** The 8-wide path applies: n a multiple of 8 and every operand 16-byte aligned (views may start anywhere). */
inline bool vec8Ok(size_t n, std::initializer_list<const void*> ptrs) {
  if (n % 8 != 0) return false;
  for (const void* p : ptrs)
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
  return true;
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
