// ParoQuant kernels: the K Givens layers of a channel group fused in one kernel (the group's row tile in shared
// memory, one thread per pair slot and row lane, a barrier between layers), their backward with the exact angle
// gradient of spec §5.1 reduced in a fixed order, and the INT grid fake quantizer with its STE backward (spec §4).
#include <algorithm>

#include "common.cuh"
#include "ops.h"

namespace paro {
namespace {

#include "givens_tables.cuh"

constexpr int kThreads = 256;
constexpr int kTileFloats = 4096;  // rows per tile = 4096 / groupSize (16 KiB of f32 per tile)
constexpr int kMaxChunksPerGroup = 64;

struct GivensGeom {
  int P, lanes, threads, RT;
};

GivensGeom geometry(int gs) {
  GivensGeom g;
  g.P = gs / 2;
  g.lanes = std::max(1, kThreads / g.P);
  g.threads = g.P * g.lanes;
  g.RT = std::max(1, kTileFloats / gs);
  return g;
}

__global__ void givensFwdKernel(const void* x, int xdt, void* y, int ydt, size_t rows, int I, const int* pairs,
                                const float* theta, int K, int gs, bool inverse, int RT) {
  extern __shared__ float smem[];
  int P = gs / 2;
  float* tile = smem;
  float* cs = tile + RT * gs;
  float* sn = cs + K * P;
  int* pi = (int*)(sn + K * P);
  int* pj = pi + K * P;
  int g = blockIdx.x;
  size_t row0 = (size_t)blockIdx.y * RT;
  int nr = (int)min((size_t)RT, rows - row0);
  loadGivensTables(cs, sn, nullptr, pi, pj, pairs, theta, K, I, gs, g, inverse);
  for (int e = threadIdx.x; e < nr * gs; e += blockDim.x)
    tile[e] = ldf(x, xdt, (row0 + e / gs) * I + (size_t)g * gs + e % gs);
  __syncthreads();
  int t = threadIdx.x % P, lane = threadIdx.x / P, lanes = blockDim.x / P;
  for (int step = 0; step < K; step++) {
    int e = (inverse ? K - 1 - step : step) * P + t;
    float c = cs[e], s = sn[e];
    int i = pi[e], j = pj[e];
    for (int r = lane; r < nr; r += lanes) {
      float a = tile[r * gs + i], b = tile[r * gs + j];
      tile[r * gs + i] = c * a + s * b;
      tile[r * gs + j] = -s * a + c * b;
    }
    __syncthreads();
  }
  for (int e = threadIdx.x; e < nr * gs; e += blockDim.x)
    stf(y, ydt, (row0 + e / gs) * I + (size_t)g * gs + e % gs, tile[e]);
}

// Backward: walk the layers against their order of application; per layer, the angle gradient uses the layer's
// output u and output gradient γ (Σ γ_i·u_j − γ_j·u_i), then u and γ are rotated back to the layer's input.
__global__ void givensBwdKernel(const void* dy, int dydt, const void* y, int ydt, void* dx, int dxdt, float* partial,
                                size_t rows, int I, const int* pairs, const float* theta, int K, int gs, bool inverse,
                                int RT, size_t rowsPerChunk) {
  extern __shared__ float smem[];
  int P = gs / 2;
  int lanes = blockDim.x / P;
  float* U = smem;
  float* Gm = U + RT * gs;
  float* cs = Gm + RT * gs;
  float* sn = cs + K * P;
  int* pi = (int*)(sn + K * P);
  int* pj = pi + K * P;
  float* gsum = (float*)(pj + K * P);  // [K][lanes][P]
  int g = blockIdx.x;
  loadGivensTables(cs, sn, nullptr, pi, pj, pairs, theta, K, I, gs, g, inverse);
  for (int e = threadIdx.x; e < K * lanes * P; e += blockDim.x) gsum[e] = 0.0f;
  int t = threadIdx.x % P, lane = threadIdx.x / P;
  size_t c0 = (size_t)blockIdx.y * rowsPerChunk;
  size_t c1 = min(rows, c0 + rowsPerChunk);
  for (size_t row0 = c0; row0 < c1; row0 += RT) {
    int nr = (int)min((size_t)RT, c1 - row0);
    __syncthreads();  // the previous tile is stored before the buffers are refilled
    for (int e = threadIdx.x; e < nr * gs; e += blockDim.x) {
      size_t gi = (row0 + e / gs) * I + (size_t)g * gs + e % gs;
      U[e] = ldf(y, ydt, gi);
      Gm[e] = ldf(dy, dydt, gi);
    }
    __syncthreads();
    for (int step = 0; step < K; step++) {
      int l = inverse ? step : K - 1 - step;
      int e = l * P + t;
      float c = cs[e], s = sn[e];
      int i = pi[e], j = pj[e];
      float acc = 0.0f;
      for (int r = lane; r < nr; r += lanes) {
        float ui = U[r * gs + i], uj = U[r * gs + j];
        float gi = Gm[r * gs + i], gj = Gm[r * gs + j];
        float gin = c * gi - s * gj, gjn = s * gi + c * gj;  // input gradient
        acc += gi * uj - gj * ui;
        U[r * gs + i] = c * ui - s * uj;
        U[r * gs + j] = s * ui + c * uj;
        Gm[r * gs + i] = gin;
        Gm[r * gs + j] = gjn;
      }
      gsum[(l * lanes + lane) * P + t] += acc;
      __syncthreads();
    }
    for (int e = threadIdx.x; e < nr * gs; e += blockDim.x)
      stf(dx, dxdt, (row0 + e / gs) * I + (size_t)g * gs + e % gs, Gm[e]);
  }
  __syncthreads();
  // The applied angle of an 'inverse' layer is −θ, so its θ-gradient changes sign.
  float sign = inverse ? -1.0f : 1.0f;
  size_t half = (size_t)I / 2;
  for (int e = threadIdx.x; e < K * P; e += blockDim.x) {
    int l = e / P, tt = e % P;
    float s = 0.0f;
    for (int ln = 0; ln < lanes; ln++) s += gsum[(l * lanes + ln) * P + tt];
    partial[(size_t)blockIdx.y * K * half + (size_t)l * half + (size_t)g * P + tt] = sign * s;
  }
}

__global__ void sumChunksKernel(const float* partial, size_t chunks, size_t n, float* out) {
  for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < n; k += (size_t)gridDim.x * blockDim.x) {
    double s = 0;
    for (size_t c = 0; c < chunks; c++) s += partial[c * n + k];
    out[k] = (float)s;
  }
}

// ---- fake quantization: one warp per group of gs consecutive elements ----
__device__ __forceinline__ float clampScale(float s) { return fminf(fmaxf(s, 1e-5f), 1e5f); }

__device__ __forceinline__ float zeroPoint(float zpf, int qmax) {
  return fminf(fmaxf(-rintf(zpf), 0.0f), (float)qmax);
}

__device__ __forceinline__ float quantLevel(float r, float sc, float z, int qmax) {
  return fminf(fmaxf(rintf(r / sc) + z, 0.0f), (float)qmax);
}

__global__ void fqMinMaxKernel(const void* r, int rdt, void* rq, int rqdt, float* scale, float* zpf, size_t nGroups,
                               int gs, int qmax) {
  size_t grp = blockIdx.x * (size_t)(blockDim.x / 32) + threadIdx.x / 32;
  int lane = threadIdx.x % 32;
  if (grp >= nGroups) return;
  size_t base = grp * gs;
  float mx = -INFINITY, mn = INFINITY;
  for (int e = lane; e < gs; e += 32) {
    float v = ldf(r, rdt, base + e);
    mx = fmaxf(mx, v);
    mn = fminf(mn, v);
  }
  mx = warpMax(mx);
  mn = warpMin(mn);
  float s = fmaxf(mx - mn, 1e-5f) / (float)qmax;
  float zf = mn / s;
  if (lane == 0) {
    scale[grp] = s;
    zpf[grp] = zf;
  }
  float sc = clampScale(s), z = zeroPoint(zf, qmax);
  for (int e = lane; e < gs; e += 32) {
    float q = quantLevel(ldf(r, rdt, base + e), sc, z, qmax);
    stf(rq, rqdt, base + e, (q - z) * sc);
  }
}

// dr = dr̂ + (∂s/∂max, ∂s/∂min = ±1/qmax, shared by ties) · Σ_group dr̂·((q − z) − r/s).
__global__ void fqMinMaxBwdKernel(const void* drq, int ddt, const void* r, int rdt, const float* scale,
                                  const float* zpf, void* dr, int drdt, size_t nGroups, int gs, int qmax) {
  size_t grp = blockIdx.x * (size_t)(blockDim.x / 32) + threadIdx.x / 32;
  int lane = threadIdx.x % 32;
  if (grp >= nGroups) return;
  size_t base = grp * gs;
  float mx = -INFINITY, mn = INFINITY;
  for (int e = lane; e < gs; e += 32) {
    float v = ldf(r, rdt, base + e);
    mx = fmaxf(mx, v);
    mn = fminf(mn, v);
  }
  mx = warpMax(mx);
  mn = warpMin(mn);
  float sc = clampScale(scale[grp]), z = zeroPoint(zpf[grp], qmax);
  float S = 0.0f, nmx = 0.0f, nmn = 0.0f;
  for (int e = lane; e < gs; e += 32) {
    float v = ldf(r, rdt, base + e);
    float q = quantLevel(v, sc, z, qmax);
    S += ldf(drq, ddt, base + e) * ((q - z) - v / sc);
    nmx += v == mx ? 1.0f : 0.0f;
    nmn += v == mn ? 1.0f : 0.0f;
  }
  S = warpSum(S);
  nmx = warpSum(nmx);
  nmn = warpSum(nmn);
  float gMax = S / ((float)qmax * nmx), gMin = S / ((float)qmax * nmn);
  for (int e = lane; e < gs; e += 32) {
    float v = ldf(r, rdt, base + e);
    float d = ldf(drq, ddt, base + e);
    if (v == mx) d += gMax;
    if (v == mn) d -= gMin;
    stf(dr, drdt, base + e, d);
  }
}

__global__ void fqParamsKernel(const void* r, int rdt, const float* scale, const float* zpf, void* rq, int rqdt,
                               size_t nGroups, int gs, int qmax) {
  size_t n = nGroups * gs;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    size_t grp = i / gs;
    float sc = clampScale(scale[grp]), z = zeroPoint(zpf[grp], qmax);
    float q = quantLevel(ldf(r, rdt, i), sc, z, qmax);
    stf(rq, rqdt, i, (q - z) * sc);
  }
}

__global__ void fqParamsBwdKernel(const void* drq, int ddt, const void* r, int rdt, const float* scale,
                                  const float* zpf, void* dr, int drdt, float* dscale, size_t nGroups, int gs,
                                  int qmax) {
  size_t grp = blockIdx.x * (size_t)(blockDim.x / 32) + threadIdx.x / 32;
  int lane = threadIdx.x % 32;
  if (grp >= nGroups) return;
  size_t base = grp * gs;
  float sc = clampScale(scale[grp]), z = zeroPoint(zpf[grp], qmax);
  float S = 0.0f;
  for (int e = lane; e < gs; e += 32) {
    float v = ldf(r, rdt, base + e);
    float d = ldf(drq, ddt, base + e);
    float q = quantLevel(v, sc, z, qmax);
    S += d * ((q - z) - v / sc);
    stf(dr, drdt, base + e, d);
  }
  S = warpSum(S);
  if (lane == 0) dscale[grp] = S;
}

// ---- export codes (Backend.quantizePacked): numerics/int-quant.ts quantizeCodes operation for operation ----
// One thread per output word (i, b); i runs fastest across threads so the 8 row reads of a word are coalesced.
// z = clamp(−round(zpf)) with a NaN zpf kept NaN (as the JS ternaries do), q = clamp(rint(r/s) + z); a NaN q is 0 (what
// a Uint8Array stores). __fdiv_rn: the IEEE f32 quotient even under fast-math flags (JS divides in f64 and rounds to
// f32 once, which is the same number: f64 has more than 2·24 + 2 bits).
__device__ __forceinline__ int exportCode(float v, float s, float zpf, int qmax) {
  float fq = (float)qmax;
  float z = -rintf(zpf);
  z = z < 0.0f ? 0.0f : (z > fq ? fq : z);
  float q = rintf(__fdiv_rn(v, s)) + z;
  if (isnan(q)) return 0;
  return q < 0.0f ? 0 : (q > fq ? qmax : (int)q);
}

__global__ void quantizePackedKernel(const void* r, int rdt, const float* scale, const float* zpf, int* words, int O,
                                     int I, int gs, int qmax, unsigned order) {
  size_t wordsPerCol = (size_t)O / 8;
  size_t n = wordsPerCol * I;
  int G = I / gs;
  for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < n; t += (size_t)gridDim.x * blockDim.x) {
    size_t b = t / I;
    int i = (int)(t % I);
    unsigned word = 0;
    for (int k = 0; k < 8; k++) {
      size_t o = b * 8 + ((order >> (4 * k)) & 7u);
      size_t grp = o * G + i / gs;
      word |= (unsigned)exportCode(ldf(r, rdt, o * I + i), scale[grp], zpf[grp], qmax) << (4 * k);
    }
    words[(size_t)i * wordsPerCol + b] = (int)word;
  }
}

// Backend.dequantizePacked: ŵ = (q − z)·s, one f32 rounding of the exact product (as dequantizeCodes' f64 product
// stored to f32: |q − z| ≤ 15 times a 24-bit significand is exact in both).
__global__ void dequantizePackedKernel(const int* words, const int* zeros, const float* scale, float* out, int O,
                                       int I, int gs, unsigned order) {
  size_t wordsPerCol = (size_t)O / 8;
  size_t n = wordsPerCol * I;
  int G = I / gs;
  for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < n; t += (size_t)gridDim.x * blockDim.x) {
    size_t b = t / I;
    int i = (int)(t % I);
    unsigned word = (unsigned)words[(size_t)i * wordsPerCol + b];
    for (int k = 0; k < 8; k++) {
      size_t o = b * 8 + ((order >> (4 * k)) & 7u);
      size_t grp = o * G + i / gs;
      int q = (int)((word >> (4 * k)) & 0xfu);
      out[o * I + i] = __fmul_rn((float)(q - zeros[grp]), scale[grp]);
    }
  }
}

void setSmem(const void* kernel, size_t bytes) {
  if (bytes > 48 * 1024)
    checkCuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes),
              "cudaFuncSetAttribute(shared memory)");
}

void checkGivensArgs(int I, int gs) {
  if (gs < 2 || gs % 2 != 0 || gs > 1024) throw ArgError("givens: groupSize must be even and at most 1024");
  if (I % gs != 0) throw ArgError("givens: the width must be a multiple of groupSize");
}

}  // namespace

void givensK(const void* x, int xdt, void* y, int ydt, size_t rows, int I, const int* pairs, const float* theta, int K,
             int gs, bool inverse) {
  checkGivensArgs(I, gs);
  if (rows == 0 || I == 0) return;
  GivensGeom geo = geometry(gs);
  size_t smem = (size_t)geo.RT * gs * 4 + (size_t)K * geo.P * 16;
  setSmem((const void*)givensFwdKernel, smem);
  dim3 grid((unsigned)(I / gs), (unsigned)((rows + geo.RT - 1) / geo.RT));
  givensFwdKernel<<<grid, geo.threads, smem, stream()>>>(x, xdt, y, ydt, rows, I, pairs, theta, K, gs, inverse, geo.RT);
  checkLaunch(inverse ? "givens(inverse)" : "givens(forward)");
}

void givensBwdK(const void* dy, int dydt, const void* y, int ydt, void* dx, int dxdt, float* dtheta, size_t rows, int I,
                const int* pairs, const float* theta, int K, int gs, bool inverse) {
  checkGivensArgs(I, gs);
  size_t nTheta = (size_t)K * (I / 2);
  if (rows == 0 || I == 0 || K == 0) {
    if (nTheta) fillK(dtheta, DT_F32, nTheta, 0.0f);
    if (rows && I) castK(dy, dydt, dx, dxdt, rows * (size_t)I);
    return;
  }
  GivensGeom geo = geometry(gs);
  // Row chunks per group: a shape-only choice, so the reduction order is fixed.
  size_t tiles = (rows + geo.RT - 1) / geo.RT;
  size_t tilesPerChunk = (tiles + kMaxChunksPerGroup - 1) / kMaxChunksPerGroup;
  size_t rowsPerChunk = tilesPerChunk * geo.RT;
  size_t chunks = (rows + rowsPerChunk - 1) / rowsPerChunk;
  size_t smem = (size_t)geo.RT * gs * 8 + (size_t)K * geo.P * 16 + (size_t)K * geo.lanes * geo.P * 4;
  setSmem((const void*)givensBwdKernel, smem);
  Scratch partial(chunks * nTheta * sizeof(float));
  dim3 grid((unsigned)(I / gs), (unsigned)chunks);
  givensBwdKernel<<<grid, geo.threads, smem, stream()>>>(dy, dydt, y, ydt, dx, dxdt, partial.as<float>(), rows, I,
                                                         pairs, theta, K, gs, inverse, geo.RT, rowsPerChunk);
  checkLaunch(inverse ? "givensBackward(inverse)" : "givensBackward(forward)");
  sumChunksKernel<<<gridFor(nTheta, 256), 256, 0, stream()>>>(partial.as<float>(), chunks, nTheta, dtheta);
  checkLaunch("givensBackward.sumChunks");
}

void fqMinMaxK(const void* r, int rdt, void* rq, int rqdt, float* scale, float* zpf, size_t nGroups, int gs, int qmax) {
  if (nGroups == 0) return;
  fqMinMaxKernel<<<(unsigned)((nGroups + 7) / 8), 256, 0, stream()>>>(r, rdt, rq, rqdt, scale, zpf, nGroups, gs, qmax);
  checkLaunch("fakeQuantMinMax");
}

void fqMinMaxBwdK(const void* drq, int ddt, const void* r, int rdt, const float* scale, const float* zpf, void* dr,
                  int drdt, size_t nGroups, int gs, int qmax) {
  if (nGroups == 0) return;
  fqMinMaxBwdKernel<<<(unsigned)((nGroups + 7) / 8), 256, 0, stream()>>>(drq, ddt, r, rdt, scale, zpf, dr, drdt,
                                                                        nGroups, gs, qmax);
  checkLaunch("fakeQuantMinMaxBackward");
}

void fqParamsK(const void* r, int rdt, const float* scale, const float* zpf, void* rq, int rqdt, size_t nGroups, int gs,
               int qmax) {
  size_t n = nGroups * gs;
  if (n == 0) return;
  fqParamsKernel<<<gridFor(n, 256), 256, 0, stream()>>>(r, rdt, scale, zpf, rq, rqdt, nGroups, gs, qmax);
  checkLaunch("fakeQuantParams");
}

void fqParamsBwdK(const void* drq, int ddt, const void* r, int rdt, const float* scale, const float* zpf, void* dr,
                  int drdt, float* dscale, size_t nGroups, int gs, int qmax) {
  if (nGroups == 0) return;
  fqParamsBwdKernel<<<(unsigned)((nGroups + 7) / 8), 256, 0, stream()>>>(drq, ddt, r, rdt, scale, zpf, dr, drdt, dscale,
                                                                        nGroups, gs, qmax);
  checkLaunch("fakeQuantParamsBackward");
}

void quantizePackedK(const void* r, int rdt, const float* scale, const float* zpf, int* words, int O, int I, int gs,
                      int qmax, unsigned nibbleOrder) {
  if (O % 8 != 0 || gs < 1 || I % gs != 0 || qmax < 1 || qmax > 15) throw ArgError("quantizePacked: bad shape or bits");
  size_t n = (size_t)O / 8 * I;
  if (n == 0) return;
  quantizePackedKernel<<<gridFor(n, 256), 256, 0, stream()>>>(r, rdt, scale, zpf, words, O, I, gs, qmax, nibbleOrder);
  checkLaunch("quantizePacked");
}

void dequantizePackedK(const int* words, const int* zeros, const float* scale, float* out, int O, int I, int gs,
                        unsigned nibbleOrder) {
  if (O % 8 != 0 || gs < 1 || I % gs != 0) throw ArgError("dequantizePacked: bad shape");
  size_t n = (size_t)O / 8 * I;
  if (n == 0) return;
  dequantizePackedKernel<<<gridFor(n, 256), 256, 0, stream()>>>(words, zeros, scale, out, O, I, gs, nibbleOrder);
  checkLaunch("dequantizePacked");
}

}  // namespace paro
