// The residual ops of the Gram backward of the ParoQuant transform (/work/notes/gram-spec.md; Backend.paroScaleGrad,
// Backend.paroMinMaxGram): with E = Ŵ − W and the max/min masks that paroTransform writes (k_paro_fused.cu, RESID),
// the quantizer's scale gradient is a dot product per group (the rotations are orthogonal) and the min/max path of
// the stage-1 quantizer becomes a sparse per-group Gram matrix in "virtual rows" f32 [gs, I].
// Both sums run in a fixed order that depends on the shape only (no float atomics): reruns are bit-identical.
#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "common.cuh"
#include "ops.h"

namespace paro {
namespace {

constexpr int kScaleGradWarps = 8;        // warps per block of paroScaleGradKernel
constexpr int kGramRowBatch = 64;         // rows whose loads paroMinMaxGramKernel issues together (run 24; 16: run 23, as fast)
constexpr int kGramMinRowsPerChunk = 64;  // row chunks of paroMinMaxGram: at least this many rows ...
constexpr int kGramTargetBlocks = 1024;   // ... and about this many blocks over all groups

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

// ---- paroMinMaxGram ----
// Grid (G, row chunks), block of gs threads: thread k owns column k of its group. acc[i][k] (stride gs + 1) sums
// c[o, i]·W[o, k] over the chunk's rows in order; thread k only ever touches column k, so there are no races and the
// order is fixed. c[o, i] = (max bit i ? gMax : 0) + (min bit i ? gMin : 0), the same for every thread of the row.
// Per batch of kGramRowBatch rows the block stages the rows' masks and coefficients in shared memory (one load
// latency per batch, a thread per row) while each thread's W loads are in flight. Partial sums go to part
// [chunk][k][g·gs + i] (the +1 stride makes that transposed read conflict-free).
// H100 (docs/gpu-validation.md runs 23–25): ≈ 0.35 ms per call in a profile with a sync after every op, the same with
// 16 or 64 rows per batch; decoding each row's masks once into a staged (position, c) list instead of in every
// thread measured slower (3.2 vs 2.5 ms for a step's seven calls) and was removed.
__global__ void paroMinMaxGramKernel(const float* S, const int* extremes, const void* W, int wdt, float* part, int O,
                                     int I, int gs, int qmax, int rowsPerChunk) {
  extern __shared__ float smem[];
  int stride = gs + 1;
  int k = threadIdx.x;
  int g = blockIdx.x;
  int G = I / gs;
  int words = (gs + 31) / 32, rowWords = 2 * words;
  unsigned lastMask = gs % 32 == 0 ? 0xffffffffu : (1u << (gs % 32)) - 1;  // bits past gs are ignored
  float* acc = smem;
  float* sG = acc + (size_t)gs * stride;  // [batch][2]: gMax, gMin
  unsigned* sE = reinterpret_cast<unsigned*>(sG + 2 * kGramRowBatch);
  const unsigned* ext = reinterpret_cast<const unsigned*>(extremes);
  for (int i = 0; i < gs; i++) acc[i * stride + k] = 0.0f;
  int o0 = blockIdx.y * rowsPerChunk, o1 = min(O, o0 + rowsPerChunk);
  for (int r0 = o0; r0 < o1; r0 += kGramRowBatch) {
    int nb = min(kGramRowBatch, o1 - r0);
    float w[kGramRowBatch];  // issued first: in flight while the stage waits for its loads
#pragma unroll
    for (int b = 0; b < kGramRowBatch; b++) w[b] = b < nb ? ldf(W, wdt, (size_t)(r0 + b) * I + (size_t)g * gs + k) : 0.0f;
    // Thread b stages row r0 + b: its masks and the coefficients gMax, gMin (fakeQuantMinMaxBackward's: S/qmax/n,
    // in that order).
    for (int b = k; b < nb; b += blockDim.x) {
      size_t grp = (size_t)(r0 + b) * G + g;
      const unsigned* src = ext + grp * rowWords;
      unsigned* e = sE + b * rowWords;
      int nMax = 0, nMin = 0;
      for (int q = 0; q < words; q++) {
        unsigned m = q == words - 1 ? lastMask : 0xffffffffu;
        unsigned mx = src[q] & m, mn = src[words + q] & m;
        e[q] = mx;
        e[words + q] = mn;
        nMax += __popc(mx);
        nMin += __popc(mn);
      }
      float sv = S[grp];
      sG[2 * b] = sv / (float)qmax / (float)nMax;
      sG[2 * b + 1] = -sv / (float)qmax / (float)nMin;
    }
    __syncthreads();
#pragma unroll
    for (int b = 0; b < kGramRowBatch; b++) {
      if (b < nb) {
        const unsigned* e = sE + b * rowWords;
        float gMax = sG[2 * b], gMin = sG[2 * b + 1];
        for (int q = 0; q < words; q++) {
          unsigned mx = e[q], mn = e[words + q];
          unsigned u = mx | mn;
          while (u) {
            int bit = __ffs(u) - 1;
            u &= u - 1;
            float c = ((mx >> bit) & 1u ? gMax : 0.0f) + ((mn >> bit) & 1u ? gMin : 0.0f);
            float* a = acc + (32 * q + bit) * stride + k;
            *a = *a + c * w[b];
          }
        }
      }
    }
    __syncthreads();  // the stage is read before the next batch overwrites it
  }
  // part[chunk][kk][g·gs + k] = acc[k][kk]: thread k writes column g·gs + k of every row kk (coalesced).
  float* dst = part + (size_t)blockIdx.y * gs * I + (size_t)g * gs + k;
  for (int kk = 0; kk < gs; kk++) dst[(size_t)kk * I] = acc[k * stride + kk];
}

// out[k][j] = α[(j/gs)·gs + k]·Σ_chunks part[c][k][j], the chunks added in order in f64.
__global__ void paroMinMaxGramReduceKernel(const float* part, const float* alpha, float* out, int chunks, int I,
                                           int gs) {
  size_t n = (size_t)gs * I;
  for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < n; t += (size_t)gridDim.x * blockDim.x) {
    double s = 0;
    for (int c = 0; c < chunks; c++) s += part[(size_t)c * n + t];
    size_t k = t / I, j = t % I;
    out[t] = (float)s * alpha[j / gs * gs + k];
  }
}

// ---- paroMinMaxGram, version 2: the min/max path as dense rows, then groupGram's tensor cores ----
// c'[o, g·gs + i] = α[g·gs + i]·c[o, g·gs + i] with c as paroMinMaxGramKernel forms it (gMax, gMin in the same f32
// order), so that groupGram(c', W, α) = α_k·Σ_o c'_i·W_k/α_i gives the same Gram matrix (to the TF32 rounding of c').
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

// PARO_MINMAX_GRAM=v2 (read at each call) runs version 2 for the group sizes groupGram takes; v1 (the shared-memory
// scatter above) is the default until a GPU run has timed both (docs/gpu-validation.md "Pending").
bool minMaxGramV2(int gs) {
  const char* e = std::getenv("PARO_MINMAX_GRAM");
  return e && std::strcmp(e, "v2") == 0 && (gs == 32 || gs == 64 || gs == 96 || gs == 128);
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
  if (gs < 1 || gs > kParoMinMaxGramMaxGroup || I % gs != 0)
    throw ArgError("paroMinMaxGram: groupSize must be in [1, 128] and divide the columns");
  size_t n = (size_t)gs * I;
  if (n == 0) return;
  if (O <= 0) {
    fillK(out, DT_F32, n, 0.0f);
    return;
  }
  int G = I / gs;
  if (minMaxGramV2(gs)) {
    Scratch rows((size_t)O * I * sizeof(float));
    paroMinMaxRowsK(S, extremes, alpha, rows.as<float>(), O, I, gs, qmax);
    groupGramK(rows.as<float>(), DT_F32, W, wdt, alpha, out, O, I, gs);
    return;
  }
  // Row chunks from the shape only (so the sum order is fixed): about kGramTargetBlocks blocks, whole row batches.
  int want = std::max(1, (kGramTargetBlocks + G - 1) / G);
  int rowsPerChunk = std::max(kGramMinRowsPerChunk, (O + want - 1) / want);
  rowsPerChunk = (rowsPerChunk + kGramRowBatch - 1) / kGramRowBatch * kGramRowBatch;
  int chunks = (O + rowsPerChunk - 1) / rowsPerChunk;
  // acc [gs][gs + 1], then a batch's coefficients and mask words.
  size_t smem = ((size_t)gs * (gs + 1) + 2 * kGramRowBatch) * sizeof(float) +
                (size_t)kGramRowBatch * 2 * ((gs + 31) / 32) * sizeof(unsigned);
  if (smem > 48 * 1024)
    checkCuda(cudaFuncSetAttribute((const void*)paroMinMaxGramKernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                   (int)smem),
              "cudaFuncSetAttribute(shared memory)");
  Scratch part((size_t)chunks * n * sizeof(float));
  dim3 grid((unsigned)G, (unsigned)chunks);
  paroMinMaxGramKernel<<<grid, gs, smem, stream()>>>(S, extremes, W, wdt, part.as<float>(), O, I, gs, qmax,
                                                     rowsPerChunk);
  checkLaunch("paroMinMaxGram");
  paroMinMaxGramReduceKernel<<<gridFor(n, 256), 256, 0, stream()>>>(part.as<float>(), alpha, out, chunks, I, gs);
  checkLaunch("paroMinMaxGram.reduce");
}

}  // namespace paro
