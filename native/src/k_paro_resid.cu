// The residual ops of the Gram backward of the ParoQuant transform (/work/notes/gram-spec.md; Backend.paroScaleGrad,
// Backend.paroMinMaxGram): with E = Ŵ − W and the max/min masks that paroTransform writes (k_paro_fused.cu, RESID),
// the quantizer's scale gradient is a dot product per group (the rotations are orthogonal) and the min/max path of
// the stage-1 quantizer becomes a sparse per-group Gram matrix in "virtual rows" f32 [gs, I].
// Both sums run in a fixed order that depends on the shape only (no float atomics): reruns are bit-identical.
// paroMinMaxGram writes the path's coefficients as dense rows α·c and hands them to groupGram's TF32 tensor-core
// product (k_gram.cu), so it takes groupGram's group sizes only (32, 64, 96, 128: the only ones the cuda backend
// asks a residual for). It replaced a shared-memory scatter (a thread per column adding c·W into a gs × gs block),
// which measured slower on an H100 (2026-12-07, one process, bench/gpu.ts per-linear table): stage-1 transform
// forward + backward of a step's seven linears 8.175 → 7.668 ms (q 0.911 → 0.824, k 0.484 → 0.452, gate 1.799 →
// 1.685, down 1.824 → 1.716 ms); the price is TF32 rounding of α·c and of f32 W (2e-3 in gpu-check).
#include <algorithm>

#include "common.cuh"
#include "ops.h"

namespace paro {
namespace {

constexpr int kScaleGradWarps = 8;  // warps per block of paroScaleGradKernel

__device__ __forceinline__ float clampQuantScale(float s) { return fminf(fmaxf(s, 1e-5f), 1e5f); }

// ---- paroScaleGrad ----
// L lanes per group (a power of two, L·8 ≥ gs up to 32 lanes), 32/L groups per warp. Lane l of its segment sums the
// 8-element chunks l, l + L, ... of its group in element order; then an xor butterfly over the segment (L/2, ..., 1),
// the same for every lane. The order depends on gs only, so the 16-byte path (V = 8) and the scalar one (V = 1, for
// unaligned views) give the same bits.
template <int V>
__global__ void paroScaleGradKernel(const void* dWhat, int ddt, const void* E, int edt, const float* scale, float* S,
                                    size_t nGroups, int gs, int L) {
  int lane = threadIdx.x % 32;
  int seg = lane / L, sl = lane % L;
  int perWarp = 32 / L;
  size_t warpId = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) / 32;
  size_t warps = (size_t)gridDim.x * blockDim.x / 32;
  int chunks = (gs + 7) / 8;
  // Every lane runs the same number of iterations: the butterfly's shuffles need the whole warp.
  size_t rounds = (nGroups + perWarp - 1) / perWarp;
  for (size_t w = warpId; w < rounds; w += warps) {
    size_t grp = w * perWarp + seg;
    bool on = grp < nGroups;
    float p = 0.0f;
    if (on) {
      size_t base = grp * (size_t)gs;
      for (int c = sl; c < chunks; c += L) {
        int e0 = c * 8;
        if constexpr (V == 8) {
          float d[8], r[8];
          ldw<8>(dWhat, ddt, base + e0, d);
          ldw<8>(E, edt, base + e0, r);
#pragma unroll
          for (int k = 0; k < 8; k++) p += d[k] * r[k];
        } else {
          for (int k = 0; k < 8 && e0 + k < gs; k++) p += ldf(dWhat, ddt, base + e0 + k) * ldf(E, edt, base + e0 + k);
        }
      }
    }
    for (int o = L / 2; o > 0; o >>= 1) p += __shfl_xor_sync(0xffffffffu, p, o);
    if (on && sl == 0) S[grp] = p / clampQuantScale(scale[grp]);
  }
}

// ---- paroMinMaxGram: the min/max path as dense rows, then groupGram's tensor cores ----
// c'[o, g·gs + i] = α[g·gs + i]·c[o, g·gs + i] with c[o, i] = (max bit i ? gMax : 0) + (min bit i ? gMin : 0) and
// gMax = S/qmax/nMax, gMin = −S/qmax/nMin (fakeQuantMinMaxBackward's order), so that groupGram(c', W, α) =
// α_k·Σ_o c'_i·W_k/α_i = α_k·Σ_o c_i·W_k (to the TF32 rounding of c' and of an f32 W).
// One warp per flat group (warp-stride loop): every lane reads the group's mask words (a broadcast) and counts them,
// then lane l writes elements l, l + 32, ... (coalesced).
__global__ void paroMinMaxRowsKernel(const float* S, const int* extremes, const float* alpha, float* c, size_t nGroups,
                                     int G, int gs, int qmax) {
  const unsigned* ext = reinterpret_cast<const unsigned*>(extremes);
  int lane = threadIdx.x % 32;
  int words = (gs + 31) / 32, rowWords = 2 * words;
  unsigned lastMask = gs % 32 == 0 ? 0xffffffffu : (1u << (gs % 32)) - 1;  // bits past gs are ignored
  size_t warps = (size_t)gridDim.x * blockDim.x / 32;
  for (size_t grp = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) / 32; grp < nGroups; grp += warps) {
    const unsigned* src = ext + grp * rowWords;
    int nMax = 0, nMin = 0;
    for (int q = 0; q < words; q++) {
      unsigned m = q == words - 1 ? lastMask : 0xffffffffu;
      nMax += __popc(src[q] & m);
      nMin += __popc(src[words + q] & m);
    }
    float sv = S[grp];
    float gMax = sv / (float)qmax / (float)nMax, gMin = -sv / (float)qmax / (float)nMin;
    const float* al = alpha + (grp % G) * gs;
    for (int e = lane; e < gs; e += 32) {
      unsigned mx = src[e / 32], mn = src[words + e / 32];
      float v = ((mx >> (e % 32)) & 1u ? gMax : 0.0f) + ((mn >> (e % 32)) & 1u ? gMin : 0.0f);
      c[grp * gs + e] = v * al[e];
    }
  }
}

}  // namespace

void paroScaleGradK(const void* dWhat, int ddt, const void* E, int edt, const float* scale, float* S, size_t nGroups,
                    int gs) {
  if (gs < 1) throw ArgError("paroScaleGrad: groupSize must be positive");
  if (nGroups == 0) return;
  int chunks = (gs + 7) / 8;
  int L = 1;
  while (L < 32 && L < chunks) L *= 2;
  size_t perBlock = (size_t)kScaleGradWarps * (32 / L);
  unsigned blocks = (unsigned)std::min<size_t>((nGroups + perBlock - 1) / perBlock, (size_t)1 << 20);
  int threads = kScaleGradWarps * 32;
  if (gs % 8 == 0 && vec8Ok(nGroups * (size_t)gs, {dWhat, E}))
    paroScaleGradKernel<8><<<blocks, threads, 0, stream()>>>(dWhat, ddt, E, edt, scale, S, nGroups, gs, L);
  else
    paroScaleGradKernel<1><<<blocks, threads, 0, stream()>>>(dWhat, ddt, E, edt, scale, S, nGroups, gs, L);
  checkLaunch("paroScaleGrad");
}

void paroMinMaxRowsK(const float* S, const int* extremes, const float* alpha, float* c, int O, int I, int gs, int qmax) {
  if (gs < 1 || gs > kParoMinMaxGramMaxGroup || I % gs != 0)
    throw ArgError("paroMinMaxRows: groupSize must be in [1, 128] and divide the columns");
  size_t nGroups = (size_t)std::max(O, 0) * (I / gs);
  if (nGroups == 0) return;
  paroMinMaxRowsKernel<<<gridFor(nGroups * 32, 256), 256, 0, stream()>>>(S, extremes, alpha, c, nGroups, I / gs, gs,
                                                                         qmax);
  checkLaunch("paroMinMaxRows");
}

void paroMinMaxGramK(const float* S, const int* extremes, const void* W, int wdt, const float* alpha, float* out, int O,
                     int I, int gs, int qmax) {
  if (gs != 32 && gs != 64 && gs != 96 && gs != 128)
    throw ArgError("paroMinMaxGram: groupSize must be 32, 64, 96 or 128 (those groupGram takes)");
  if (I < 0 || I % gs != 0) throw ArgError("paroMinMaxGram: cols must be a multiple of groupSize");
  size_t n = (size_t)gs * I;
  if (n == 0) return;
  if (O <= 0) {
    fillK(out, DT_F32, n, 0.0f);
    return;
  }
  Scratch rows((size_t)O * I * sizeof(float));
  paroMinMaxRowsK(S, extremes, alpha, rows.as<float>(), O, I, gs, qmax);
  groupGramK(rows.as<float>(), DT_F32, W, wdt, alpha, out, O, I, gs);
}

}  // namespace paro
