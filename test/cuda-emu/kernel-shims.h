// What a tensor-core kernel file needs of CUDA's declarations beyond test/cuda-emu/common.cuh, for the emulations
// that compile one whole kernel file (gram-emu.h, attention-emu.cuh): launch bounds and alignment ignored, static
// shared memory as statics (blocks run one after another), uint4, the bit casts.
#pragma once
#include <cstdint>
#include <cstring>

#define __launch_bounds__(...)
#define __align__(n)
#define __shared__ static

struct uint4 {
  uint32_t x, y, z, w;
};
inline uint4 make_uint4(uint32_t a, uint32_t b, uint32_t c, uint32_t d) { return {a, b, c, d}; }

// CUDA's bit-cast intrinsics (the Gram kernels' tf32/bf16 bits; version 4's row table keeps ints among floats).
inline float __uint_as_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint32_t __float_as_uint(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float __int_as_float(int i) { return __uint_as_float((uint32_t)i); }
