// The ParoQuant transform of one linear in one pass (Backend.paroTransform / paroTransformBackward; paroquant-spec
// §2.2, §4, §5.3): rotation groups and quantizer groups coincide, so one warp takes one row's group through
// W ⊙ α → K Givens layers → fake quantizer → K inverse layers → ÷ α in shared memory, reading W once and writing Ŵ
// once. The backward recomputes that forward keeping every layer's state, then walks transformBackward's chain
// (src/paroquant/transform.ts) on it; dθ and dα, sums over rows, go through per-block partial sums and a second
// kernel that adds them in a fixed order (no float atomics: reruns are bit-identical).
//
// Layout: block = (group g, a range of rows); warp w of the block takes rows w, w + warps, ...; lane l owns the
// elements e ≡ l (mod 32) of the group and the pair slots t ≡ l (mod 32) of every layer. The rotation and quantizer
// expressions are those of k_paro.cu (givensFwdKernel, givensBwdKernel, fq*Kernel), written the same way so the
// compiler forms the same products: the fused Ŵ equals the composition's where the arithmetic is the same.
#include <algorithm>

#include "common.cuh"
#include "ops.h"

namespace paro {
namespace {

#include "givens_tables.cuh"

constexpr int kFwdWarps = 8;
constexpr int kFwdRowsPerBlock = 64;
constexpr int kBwdWarps = 4;
constexpr int kBwdMaxChunks = 64;  // row chunks per group (stage 1): a shape-only choice, so the sum order is fixed
constexpr int kStage2RowsPerBlock = 32;

__device__ __forceinline__ float fClampScale(float s) { return fminf(fmaxf(s, 1e-5f), 1e5f); }

__device__ __forceinline__ float fZeroPoint(float zpf, int qmax) { return fminf(fmaxf(-rintf(zpf), 0.0f), (float)qmax); }

__device__ __forceinline__ float fQuantLevel(float r, float sc, float z, int qmax) {
  return fminf(fmaxf(rintf(r / sc) + z, 0.0f), (float)qmax);
}

// One Givens layer in place on the warp's group vector v; sn: the applied sines (+sin θ forward, −sin θ inverse).
__device__ __forceinline__ void rotateLayer(float* v, const float* cs, const float* sn, const int* pi, const int* pj,
                                            int l, int P, int lane) {
  for (int t = lane; t < P; t += 32) {
    int e = l * P + t;
    float c = cs[e], s = sn[e];
    int i = pi[e], j = pj[e];
    float a = v[i], b = v[j];
    v[i] = c * a + s * b;
    v[j] = -s * a + c * b;
  }
}

// ---- forward ----
// pScale/pZpf: stage-2 parameters (null: stage 1, the grid from the group's min/max, written to gScale/gZpf).
__global__ void paroFusedFwdKernel(const void* W, int wdt, const float* alpha, const int* pairs, const float* theta,
                                   const float* pScale, const float* pZpf, void* out, int odt, float* gScale,
                                   float* gZpf, int O, int I, int K, int gs, int qmax) {
  extern __shared__ float smem[];
  int P = gs / 2;
  float* cs = smem;
  float* sn = cs + K * P;
  float* snNeg = sn + K * P;
  int* pi = (int*)(snNeg + K * P);
  int* pj = pi + K * P;
  int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  float* v = (float*)(pj + K * P) + warp * gs;
  int g = blockIdx.x;
  int G = I / gs;
  loadGivensTables(cs, sn, snNeg, pi, pj, pairs, theta, K, I, gs, g, false);  // +sin θ, and −sin θ for the inverse layers
  __syncthreads();
  const float* al = alpha + (size_t)g * gs;
  int r1 = min(O, (int)(blockIdx.y + 1) * kFwdRowsPerBlock);
  for (int o = blockIdx.y * kFwdRowsPerBlock + warp; o < r1; o += warps) {
    size_t base = (size_t)o * I + (size_t)g * gs;
    size_t grp = (size_t)o * G + g;
    for (int e = lane; e < gs; e += 32) v[e] = ldf(W, wdt, base + e) * al[e];
    __syncwarp();
    for (int l = 0; l < K; l++) {
      rotateLayer(v, cs, sn, pi, pj, l, P, lane);
      __syncwarp();
    }
    float sc, z;
    if (pScale) {
      sc = fClampScale(pScale[grp]);
      z = fZeroPoint(pZpf[grp], qmax);
    } else {
      float mx = -INFINITY, mn = INFINITY;
      for (int e = lane; e < gs; e += 32) {
        mx = fmaxf(mx, v[e]);
        mn = fminf(mn, v[e]);
      }
      mx = warpMax(mx);
      mn = warpMin(mn);
      float s = fmaxf(mx - mn, 1e-5f) / (float)qmax;
      float zf = mn / s;
      if (lane == 0) {
        gScale[grp] = s;
        gZpf[grp] = zf;
      }
      sc = fClampScale(s);
      z = fZeroPoint(zf, qmax);
    }
    for (int e = lane; e < gs; e += 32) {
      float q = fQuantLevel(v[e], sc, z, qmax);
      v[e] = (q - z) * sc;
    }
    __syncwarp();
    for (int l = K - 1; l >= 0; l--) {
      rotateLayer(v, cs, snNeg, pi, pj, l, P, lane);
      __syncwarp();
    }
    for (int e = lane; e < gs; e += 32) stf(out, odt, base + e, v[e] / al[e]);
    __syncwarp();  // every lane has read v before the next row overwrites it
  }
}

// ---- backward ----
// Shared memory: the tables, then per warp X[K+1][gs] (forward-layer states, X[0] = W⊙α, X[K] = R), Y[K+1][gs]
// (inverse-layer states, Y[0] = Q(R), Y[K] = U), the gradient gam[gs], and (stage 1) the warp's sums over its rows:
// accT[K·P] (dθ), a1[gs] (Σ W·d(W⊙α)), a2[gs] (Σ U·dŴ).
__host__ __device__ inline size_t bwdWarpFloats(int K, int gs) {
  return (size_t)(2 * (K + 1) + 3) * gs + (size_t)K * (gs / 2);
}

// v_{l+1} = layer l applied to a copy of v_l (copy first, then in place: exactly the in-place kernels' arithmetic).
__device__ __forceinline__ void rotateInto(float* dst, const float* src, const float* cs, const float* sn, const int* pi,
                                           const int* pj, int l, int gs, int P, int lane) {
  for (int e = lane; e < gs; e += 32) dst[e] = src[e];
  __syncwarp();
  rotateLayer(dst, cs, sn, pi, pj, l, P, lane);
  __syncwarp();
}

// Backward of one layer on the warp's gradient gam (output gradient in, input gradient out), u the layer's output,
// sn the applied sines; stage 1 adds sign·Σ(γ_i·u_j − γ_j·u_i) to the angle sums (sign −1 for an inverse layer: its
// applied angle is −θ).
__device__ __forceinline__ void layerBackward(float* gam, const float* u, float* accT, const float* cs, const float* sn,
                                              const int* pi, const int* pj, int l, int P, int lane, bool inverse,
                                              bool wantTheta) {
  for (int t = lane; t < P; t += 32) {
    int e = l * P + t;
    float c = cs[e], s = sn[e];
    int i = pi[e], j = pj[e];
    float ui = u[i], uj = u[j];
    float gi = gam[i], gj = gam[j];
    float gin = c * gi - s * gj, gjn = s * gi + c * gj;  // input gradient
    if (wantTheta) {
      float d = gi * uj - gj * ui;
      accT[e] += inverse ? -d : d;
    }
    gam[i] = gin;
    gam[j] = gjn;
  }
  __syncwarp();
}

__global__ void paroFusedBwdKernel(const void* dWhat, int ddt, const void* W, int wdt, const float* alpha,
                                   const int* pairs, const float* theta, const float* scale, const float* zpf,
                                   int stage, void* dW, int dwdt, float* dscale, float* partTheta, float* partA1,
                                   float* partA2, int O, int I, int K, int gs, int qmax, int rowsPerBlock) {
  extern __shared__ float smem[];
  int P = gs / 2;
  float* cs = smem;
  float* sn = cs + K * P;
  float* snNeg = sn + K * P;
  int* pi = (int*)(snNeg + K * P);
  int* pj = pi + K * P;
  float* warpBase = (float*)(pj + K * P);
  int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  size_t wf = bwdWarpFloats(K, gs);
  float* X = warpBase + warp * wf;      // [K+1][gs]
  float* Y = X + (size_t)(K + 1) * gs;  // [K+1][gs]
  float* gam = Y + (size_t)(K + 1) * gs;
  float* a1 = gam + gs;
  float* a2 = a1 + gs;
  float* accT = a2 + gs;  // [K][P]
  bool s1 = stage == 1;
  int g = blockIdx.x;
  int G = I / gs;
  loadGivensTables(cs, sn, snNeg, pi, pj, pairs, theta, K, I, gs, g, false);  // +sin θ, and −sin θ for the inverse layers
  for (int e = lane; e < gs; e += 32) a1[e] = a2[e] = 0.0f;
  for (int e = lane; e < K * P; e += 32) accT[e] = 0.0f;
  __syncthreads();
  const float* al = alpha + (size_t)g * gs;
  int r1 = min(O, (int)(blockIdx.y + 1) * rowsPerBlock);
  for (int o = blockIdx.y * rowsPerBlock + warp; o < r1; o += warps) {
    size_t base = (size_t)o * I + (size_t)g * gs;
    size_t grp = (size_t)o * G + g;
    // Forward, every state kept.
    for (int e = lane; e < gs; e += 32) X[e] = ldf(W, wdt, base + e) * al[e];
    __syncwarp();
    for (int l = 0; l < K; l++) rotateInto(X + (size_t)(l + 1) * gs, X + (size_t)l * gs, cs, sn, pi, pj, l, gs, P, lane);
    const float* R = X + (size_t)K * gs;
    float sc = fClampScale(scale[grp]), z = fZeroPoint(zpf[grp], qmax);
    for (int e = lane; e < gs; e += 32) {
      float q = fQuantLevel(R[e], sc, z, qmax);
      Y[e] = (q - z) * sc;
    }
    __syncwarp();
    for (int k = 0; k < K; k++) {
      int l = K - 1 - k;  // the inverse applies layer K−1 first
      rotateInto(Y + (size_t)(k + 1) * gs, Y + (size_t)k * gs, cs, snNeg, pi, pj, l, gs, P, lane);
    }
    const float* U = Y + (size_t)K * gs;
    // Ŵ = U ⊘ α: dU = dŴ ⊘ α; Σ U·dŴ for dα.
    for (int e = lane; e < gs; e += 32) {
      float d = ldf(dWhat, ddt, base + e);
      gam[e] = d / al[e];
      if (s1) a2[e] += U[e] * d;
    }
    __syncwarp();
    // Inverse layers, from the last applied (layer 0, output Y[K]) back to the first (layer K−1, output Y[1]).
    for (int l = 0; l < K; l++) layerBackward(gam, Y + (size_t)(K - l) * gs, accT, cs, snNeg, pi, pj, l, P, lane, true, s1);
    // STE quantizer: dR = dQ plus the scale path (stage 1 through the max/min, ties share; stage 2: dscale).
    float S = 0.0f;
    for (int e = lane; e < gs; e += 32) {
      float v = R[e];
      float q = fQuantLevel(v, sc, z, qmax);
      S += gam[e] * ((q - z) - v / sc);
    }
    S = warpSum(S);
    if (s1) {
      float mx = -INFINITY, mn = INFINITY;
      for (int e = lane; e < gs; e += 32) {
        mx = fmaxf(mx, R[e]);
        mn = fminf(mn, R[e]);
      }
      mx = warpMax(mx);
      mn = warpMin(mn);
      float nmx = 0.0f, nmn = 0.0f;
      for (int e = lane; e < gs; e += 32) {
        nmx += R[e] == mx ? 1.0f : 0.0f;
        nmn += R[e] == mn ? 1.0f : 0.0f;
      }
      nmx = warpSum(nmx);
      nmn = warpSum(nmn);
      float gMax = S / ((float)qmax * nmx), gMin = S / ((float)qmax * nmn);
      for (int e = lane; e < gs; e += 32) {
        float d = gam[e];
        if (R[e] == mx) d += gMax;
        if (R[e] == mn) d -= gMin;
        gam[e] = d;
      }
    } else if (lane == 0) {
      dscale[grp] = S;
    }
    __syncwarp();
    // Forward layers, K−1 down to 0 (output X[l+1]).
    for (int l = K - 1; l >= 0; l--) layerBackward(gam, X + (size_t)(l + 1) * gs, accT, cs, sn, pi, pj, l, P, lane, false, s1);
    // W ⊙ α: dα += W·d(W⊙α) (stage 1); dW = d(W⊙α)·α (stage 2).
    for (int e = lane; e < gs; e += 32) {
      if (s1) a1[e] += ldf(W, wdt, base + e) * gam[e];
      else stf(dW, dwdt, base + e, gam[e] * al[e]);
    }
    __syncwarp();  // every lane is done with X, Y and gam before the next row overwrites them
  }
  if (!s1) return;
  // This block's sums: the warps' in warp order.
  __syncthreads();
  size_t chunk = blockIdx.y;
  size_t half = (size_t)I / 2;
  size_t nTheta = (size_t)K * half;
  for (int e = threadIdx.x; e < K * P; e += blockDim.x) {
    float s = 0.0f;
    for (int w = 0; w < warps; w++) s += (warpBase + w * wf + (size_t)(2 * (K + 1) + 3) * gs)[e];
    int l = e / P, t = e % P;
    partTheta[chunk * nTheta + (size_t)l * half + (size_t)g * P + t] = s;
  }
  for (int e = threadIdx.x; e < gs; e += blockDim.x) {
    float s1v = 0.0f, s2v = 0.0f;
    for (int w = 0; w < warps; w++) {
      const float* wb = warpBase + w * wf + (size_t)2 * (K + 1) * gs;  // gam, then a1, a2
      s1v += wb[gs + e];
      s2v += wb[2 * gs + e];
    }
    partA1[chunk * I + (size_t)g * gs + e] = s1v;
    partA2[chunk * I + (size_t)g * gs + e] = s2v;
  }
}

// dθ = Σ_chunks partTheta; dα = Σ W·d(W⊙α) − (Σ U·dŴ)/α/α (the composition's order: two divisions, then the difference).
__global__ void paroFusedReduceKernel(const float* partTheta, const float* partA1, const float* partA2,
                                      const float* alpha, size_t chunks, size_t nTheta, size_t I, float* dtheta,
                                      float* dalpha) {
  size_t n = nTheta + I;
  for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < n; k += (size_t)gridDim.x * blockDim.x) {
    if (k < nTheta) {
      double s = 0;
      for (size_t c = 0; c < chunks; c++) s += partTheta[c * nTheta + k];
      dtheta[k] = (float)s;
    } else {
      size_t i = k - nTheta;
      double s1 = 0, s2 = 0;
      for (size_t c = 0; c < chunks; c++) {
        s1 += partA1[c * I + i];
        s2 += partA2[c * I + i];
      }
      float a = alpha[i];
      float t = (float)s2 / a;
      t = t / a;
      dalpha[i] = (float)s1 - t;
    }
  }
}

void setFusedSmem(const void* kernel, size_t bytes) {
  if (bytes > 48 * 1024)
    checkCuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes),
              "cudaFuncSetAttribute(shared memory)");
}

size_t tableBytes(int K, int gs) { return (size_t)K * (gs / 2) * 20; }  // cos, sin, −sin, i, j per slot

}  // namespace

bool paroFusedSupported(int I, int K, int gs) {
  return gs >= kParoFusedMinGroup && gs <= kParoFusedMaxGroup && gs % 2 == 0 && I > 0 && I % gs == 0 && K >= 1 &&
         K <= kParoFusedMaxK;
}

void paroTransformK(const void* W, int wdt, const float* alpha, const int* pairs, const float* theta,
                    const float* pScale, const float* pZpf, void* out, int odt, float* gScale, float* gZpf, int O,
                    int I, int K, int gs, int qmax) {
  if (!paroFusedSupported(I, K, gs)) throw ArgError("paroTransform: unsupported groupSize or K (32..128, 1..16)");
  if (!pScale != !pZpf) throw ArgError("paroTransform: scale and zpf go together");
  if (!pScale && (!gScale || !gZpf)) throw ArgError("paroTransform: stage 1 needs the grid outputs");
  if (O <= 0) return;
  size_t smem = tableBytes(K, gs) + (size_t)kFwdWarps * gs * 4;
  setFusedSmem((const void*)paroFusedFwdKernel, smem);
  dim3 grid((unsigned)(I / gs), (unsigned)((O + kFwdRowsPerBlock - 1) / kFwdRowsPerBlock));
  paroFusedFwdKernel<<<grid, kFwdWarps * 32, smem, stream()>>>(W, wdt, alpha, pairs, theta, pScale, pZpf, out, odt,
                                                               gScale, gZpf, O, I, K, gs, qmax);
  checkLaunch("paroTransform");
}

void paroTransformBwdK(const void* dWhat, int ddt, const void* W, int wdt, const float* alpha, const int* pairs,
                       const float* theta, const float* scale, const float* zpf, int stage, float* dtheta,
                       float* dalpha, void* dW, int dwdt, float* dscale, int O, int I, int K, int gs, int qmax) {
  if (!paroFusedSupported(I, K, gs)) throw ArgError("paroTransformBackward: unsupported groupSize or K (32..128, 1..16)");
  if (stage != 1 && stage != 2) throw ArgError("paroTransformBackward: stage must be 1 or 2");
  if (stage == 1 && (!dtheta || !dalpha)) throw ArgError("paroTransformBackward: stage 1 needs dtheta and dalpha");
  if (stage == 2 && (!dW || !dscale)) throw ArgError("paroTransformBackward: stage 2 needs dW and dscale");
  size_t nTheta = (size_t)K * (I / 2);
  if (O <= 0) {
    if (stage == 1) {
      fillK(dtheta, DT_F32, nTheta, 0.0f);
      fillK(dalpha, DT_F32, (size_t)I, 0.0f);
    }
    return;
  }
  size_t smem = tableBytes(K, gs) + (size_t)kBwdWarps * bwdWarpFloats(K, gs) * 4;
  setFusedSmem((const void*)paroFusedBwdKernel, smem);
  int G = I / gs;
  if (stage == 2) {
    dim3 grid((unsigned)G, (unsigned)((O + kStage2RowsPerBlock - 1) / kStage2RowsPerBlock));
    paroFusedBwdKernel<<<grid, kBwdWarps * 32, smem, stream()>>>(dWhat, ddt, W, wdt, alpha, pairs, theta, scale, zpf, 2,
                                                                 dW, dwdt, dscale, nullptr, nullptr, nullptr, O, I, K,
                                                                 gs, qmax, kStage2RowsPerBlock);
    checkLaunch("paroTransformBackward(stage 2)");
    return;
  }
  // Row chunks of at least 32 rows, at most kBwdMaxChunks per group (fixed by O: the sum order does not vary).
  int chunks = std::min(kBwdMaxChunks, (O + 31) / 32);
  int rowsPerChunk = (O + chunks - 1) / chunks;
  chunks = (O + rowsPerChunk - 1) / rowsPerChunk;
  Scratch partTheta((size_t)chunks * nTheta * sizeof(float));
  Scratch partA((size_t)chunks * 2 * I * sizeof(float));
  float* partA1 = partA.as<float>();
  float* partA2 = partA1 + (size_t)chunks * I;
  dim3 grid((unsigned)G, (unsigned)chunks);
  paroFusedBwdKernel<<<grid, kBwdWarps * 32, smem, stream()>>>(dWhat, ddt, W, wdt, alpha, pairs, theta, scale, zpf, 1,
                                                               nullptr, dwdt, nullptr, partTheta.as<float>(), partA1,
                                                               partA2, O, I, K, gs, qmax, rowsPerChunk);
  checkLaunch("paroTransformBackward(stage 1)");
  size_t n = nTheta + (size_t)I;
  paroFusedReduceKernel<<<gridFor(n, 256), 256, 0, stream()>>>(partTheta.as<float>(), partA1, partA2, alpha,
                                                               (size_t)chunks, nTheta, (size_t)I, dtheta, dalpha);
  checkLaunch("paroTransformBackward.reduce");
}

}  // namespace paro
