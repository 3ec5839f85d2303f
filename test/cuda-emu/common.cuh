// Host emulation of native/src/common.cuh, for running CUDA kernel sources on the cpu in tests (test/paro-fused-reference
// .test.ts): one std::thread per CUDA thread, std::barrier for __syncthreads/__syncwarp, shuffles through a per-warp
// exchange array, shared memory as one host array (blocks run one after another), bf16 stored round-to-nearest-even.
// Launches are rewritten by the test: kernel<<<grid, block, smem, stream()>>>(args) → emuLaunch(kernel, grid, block, smem)(args).
#pragma once
#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
inline thread_local dim3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;
inline float g_smem[256 * 1024 / 4];

struct BlockSync {
  std::unique_ptr<std::barrier<>> block;
  std::vector<std::unique_ptr<std::barrier<>>> warps;
  std::vector<double> xchg;  // [threads]
};
inline BlockSync* g_sync = nullptr;

inline void __syncthreads() { g_sync->block->arrive_and_wait(); }
inline void __syncwarp(unsigned = 0xffffffffu) { g_sync->warps[threadIdx.x / 32]->arrive_and_wait(); }

template <typename T>
inline T __shfl_xor_sync(unsigned, T v, int o) {
  int t = threadIdx.x, w0 = t - t % 32;
  g_sync->xchg[t] = (double)v;
  __syncwarp();
  T r = (T)g_sync->xchg[w0 + ((t % 32) ^ o)];
  __syncwarp();
  return r;
}

using std::max;
using std::min;
typedef int cudaError_t;
typedef void* cudaStream_t;
enum { cudaFuncAttributeMaxDynamicSharedMemorySize = 0 };
inline int cudaFuncSetAttribute(const void*, int, int) { return 0; }

namespace paro {
enum DType : int { DT_F32 = 0, DT_BF16 = 1, DT_F16 = 2, DT_I32 = 3 };
struct CudaError : std::runtime_error { using std::runtime_error::runtime_error; };
struct ArgError : std::runtime_error { using std::runtime_error::runtime_error; };
inline cudaStream_t stream() { return nullptr; }
inline void checkLaunch(const char*) {}
inline void checkCuda(cudaError_t, const char*) {}
inline void* devAlloc(size_t b) { return std::calloc(b ? b : 1, 1); }
inline void devFree(void* p) { std::free(p); }
struct Scratch {
  void* p = nullptr;
  explicit Scratch(size_t bytes) : p(bytes ? devAlloc(bytes) : nullptr) {}
  ~Scratch() { if (p) devFree(p); }
  template <typename T> T* as() const { return static_cast<T*>(p); }
};
inline unsigned gridFor(size_t n, int block) { size_t w = (n + block - 1) / block; return (unsigned)std::min<size_t>(std::max<size_t>(w, 1), 64); }

inline float bf16ToF(uint16_t b) { uint32_t u = (uint32_t)b << 16; float f; std::memcpy(&f, &u, 4); return f; }
inline uint16_t fToBf16(float f) { uint32_t u; std::memcpy(&u, &f, 4); if (std::isnan(f)) return 0x7fc0; u += 0x7fff + ((u >> 16) & 1); return (uint16_t)(u >> 16); }

inline float ldf(const void* p, int dt, size_t i) {
  if (dt == DT_BF16) return bf16ToF(static_cast<const uint16_t*>(p)[i]);
  if (dt == DT_F32) return static_cast<const float*>(p)[i];
  throw std::runtime_error("emu: dtype");
}
inline void stf(void* p, int dt, size_t i, float v) {
  if (dt == DT_BF16) static_cast<uint16_t*>(p)[i] = fToBf16(v);
  else if (dt == DT_F32) static_cast<float*>(p)[i] = v;
  else throw std::runtime_error("emu: dtype");
}
inline float warpSum(float v) { for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o); return v; }
inline float warpMax(float v) { for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o)); return v; }
inline float warpMin(float v) { for (int o = 16; o > 0; o >>= 1) v = fminf(v, __shfl_xor_sync(0xffffffffu, v, o)); return v; }
inline void fillK(void* dst, int dt, size_t n, float value) { for (size_t i = 0; i < n; i++) stf(dst, dt, i, value); }

// kernel<<<grid, block, smem, stream>>>(args) → emuLaunch(kernel, grid, block, smem)(args): the blocks of the grid
// (x, y, z) one after another. reserve: bytes g_smem must hold beyond smem (a caller's margin); afterThread runs in
// each thread once the kernel returned (attention-emu.cuh checks that no cp.async was left pending).
template <typename K>
auto emuLaunch(K kernel, dim3 grid, dim3 block, size_t smem, size_t reserve = 0,
               std::function<void()> afterThread = {}) {
  return [=](auto... args) {
    if (smem + reserve > sizeof(g_smem)) throw std::runtime_error("emu: shared memory " + std::to_string(smem));
    gridDim = grid;
    blockDim = block;
    for (unsigned bz = 0; bz < grid.z; bz++) {
      for (unsigned by = 0; by < grid.y; by++) {
        for (unsigned bx = 0; bx < grid.x; bx++) {
          std::memset(g_smem, 0xff, sizeof(g_smem));  // garbage (bf16 NaN), as on the device
          BlockSync s;
          s.block = std::make_unique<std::barrier<>>(block.x);
          for (unsigned w = 0; w < (block.x + 31) / 32; w++) s.warps.push_back(std::make_unique<std::barrier<>>(32));
          s.xchg.assign(block.x, 0.0);
          g_sync = &s;
          std::vector<std::thread> ts;
          for (unsigned t = 0; t < block.x; t++) {
            ts.emplace_back([=]() {
              threadIdx = dim3(t);
              blockIdx = dim3(bx, by, bz);
              kernel(args...);
              if (afterThread) afterThread();
            });
          }
          for (auto& th : ts) th.join();
        }
      }
    }
  };
}
}  // namespace paro
