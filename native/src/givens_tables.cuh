// The per-group layer tables of the Givens kernels (k_paro.cu, k_paro_fused.cu): cos θ, the applied sine, pair indices
// clamped into the group. Included after common.cuh, inside namespace paro (no includes of its own, so the host
// emulation of test/cuda-emu can compile it too).
#pragma once

// Tables of group g for all K layers, one entry per (layer, pair slot): cs = cos θ, sn = the applied sine (−sin θ for
// 'inverse'), and, when snNeg is given, its negation (what an inverse pass over the same tables multiplies by).
__device__ inline void loadGivensTables(float* cs, float* sn, float* snNeg, int* pi, int* pj, const int* pairs,
                                        const float* theta, int K, int I, int gs, int g, bool inverse) {
  int P = gs / 2;
  for (int e = threadIdx.x; e < K * P; e += blockDim.x) {
    int l = e / P, t = e % P;
    float s, c;
    sincosf(theta[(size_t)l * (I / 2) + (size_t)g * P + t], &s, &c);
    cs[e] = c;
    sn[e] = inverse ? -s : s;
    if (snNeg) snNeg[e] = inverse ? s : -s;
    size_t pb = (size_t)l * I + (size_t)g * gs + 2 * t;
    pi[e] = min(max(pairs[pb], 0), gs - 1);
    pj[e] = min(max(pairs[pb + 1], 0), gs - 1);
  }
}
