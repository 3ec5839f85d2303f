// What a tensor-core kernel file needs of CUDA's declarations beyond test/cuda-emu/common.cuh, for the emulations
// that compile one whole kernel file (gram-emu.h, attention-emu.cuh): launch bounds and alignment ignored, static
// shared memory as statics (blocks run one after another), uint4.
#pragma once
#include <cstdint>

#define __launch_bounds__(...)
#define __align__(n)
#define __shared__ static

struct uint4 {
  uint32_t x, y, z, w;
};
inline uint4 make_uint4(uint32_t a, uint32_t b, uint32_t c, uint32_t d) { return {a, b, c, d}; }
