// The tensor maps of the version-4 attention kernels (host code): on the driver's encode function that tma.cuh
// reaches (tmaEncodeFn), or on the host emulation's (test/cuda-emu/tma.cuh includes this file too).
#pragma once
#include <cstdint>

namespace paro {
namespace {

// A 4-dimensional tensor map of elements of `bytes` bytes (type dt): dims[0..3] elements (innermost first),
// strides[0..2] bytes between steps of dimensions 1..3 (multiples of 16), box[0..3] elements per copy, with the
// 128-byte swizzle (box[0] · bytes = 128: one swizzle row) or none (the box lands densely, innermost first), zeros
// outside the tensor. False where the driver or the operands do not allow it (base not 16-byte aligned, a stride not
// a multiple of 16): the caller then takes another kernel.
inline bool tmaMap4(CUtensorMap* map, CUtensorMapDataType dt, const void* base, const uint64_t (&dims)[4],
                    const uint64_t (&strides)[3], const uint32_t (&box)[4], bool swizzle128) {
  const TmaEncodeFn fn = tmaEncodeFn();
  if (fn == nullptr || reinterpret_cast<uintptr_t>(base) % 16 != 0) return false;
  for (uint64_t s : strides)
    if (s % 16 != 0 || s >= (1ull << 40)) return false;
  const cuuint32_t unit[4] = {1, 1, 1, 1};
  const CUresult r = fn(map, dt, 4, const_cast<void*>(base), reinterpret_cast<const cuuint64_t*>(dims),
                        reinterpret_cast<const cuuint64_t*>(strides), box, unit, CU_TENSOR_MAP_INTERLEAVE_NONE,
                        swizzle128 ? CU_TENSOR_MAP_SWIZZLE_128B : CU_TENSOR_MAP_SWIZZLE_NONE,
                        CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  return r == CUDA_SUCCESS;
}
// bf16 tiles for wgmma (box[0] = 64: the 128-byte swizzle) and f32 rows (unswizzled).
inline bool tmaMapBf16(CUtensorMap* map, const void* base, const uint64_t (&dims)[4], const uint64_t (&strides)[3],
                       const uint32_t (&box)[4]) {
  return tmaMap4(map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, base, dims, strides, box, true);
}
inline bool tmaMapF32(CUtensorMap* map, const void* base, const uint64_t (&dims)[4], const uint64_t (&strides)[3],
                      const uint32_t (&box)[4]) {
  return tmaMap4(map, CU_TENSOR_MAP_DATA_TYPE_FLOAT32, base, dims, strides, box, false);
}

}  // namespace
}  // namespace paro
