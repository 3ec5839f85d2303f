// The warp reduce-scatter of 32 per-lane partial sums that the Givens v2 backward (k_paro.cu) and the fused
// transform (k_paro_fused.cu) use for their angle gradients. Included after common.cuh, inside namespace paro (no
// includes of its own, so the host emulation of test/cuda-emu can compile it too).
#pragma once

// c ? a : b through selp: written as a ternary on array elements, the compiler turns it into a load from a selected
// address, which puts the 32 partial sums in local memory instead of registers.
__device__ __forceinline__ float pickF(bool c, float a, float b) {
#ifdef __CUDA_ARCH__
  float r;
  asm("{\n .reg .pred p;\n setp.ne.s32 p, %3, 0;\n selp.f32 %0, %1, %2, p;\n}" : "=f"(r) : "f"(a), "f"(b), "r"((int)c));
  return r;
#else
  return c ? a : b;
#endif
}

// One butterfly stage over term[0, 2·O): lanes with bit O set keep the upper half, the others the lower, each adding
// the partner's copy of the half it keeps; after the stages 16, 8, 4, 2, 1 term[0] of lane L is the sum of slot L.
template <int O>
__device__ __forceinline__ void reduceScatterStage(float* term, int lane) {
  bool up = (lane & O) != 0;
#pragma unroll
  for (int k = 0; k < O; k++) {
    float send = pickF(up, term[k], term[k + O]);
    float keep = pickF(up, term[k + O], term[k]);
    term[k] = keep + __shfl_xor_sync(0xffffffffu, send, O);
  }
}
