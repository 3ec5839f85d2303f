// ParoQuant kernels: the K Givens layers of a channel group fused in one kernel (v1: the group's row tile in shared
// memory, one thread per pair slot and row lane, a barrier between layers; v2, the default: one warp per 32-row strip,
// lane = row, no barriers), their backward with the exact angle gradient of spec §5.1 reduced in a fixed order, and
// the INT grid fake quantizer with its STE backward (spec §4).
#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "common.cuh"
#include "ops.h"

namespace paro {
namespace {

#include "givens_tables.cuh"
#include "slot_reduce.cuh"

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

// ---- Givens kernels v2 (default; PARO_GIVENS_KERNEL=v1 selects the kernels above) ----
// v1's pair indices are random, so the 32 threads of a warp (32 pair slots of one row) hit random shared-memory banks,
// and each of the K layers ends in a block barrier. In v2 one warp owns a strip of 32 rows of one group (lane = row),
// row-major in shared memory with an odd row stride gs + 1: all lanes apply the same pair slot at the same time, so
// the layer table entry is one broadcast and the 32 accesses row[i] hit 32 distinct banks; a lane only ever touches
// its own row, so the K layers need no barrier. Per element the arithmetic is v1's, written the same way (forward
// output and dx bit-identical); the loads of a batch of pair slots come before its stores, which is v1's result as
// the pairs of one layer are disjoint (a perfect matching, spec §3; v1's threads apply them concurrently too).
constexpr int kV2Rows = 32;         // rows per warp strip: one per lane
constexpr int kV2SlotAlign = 32;    // pair slots per layer padded to a multiple (backward reduces 32 slots at once)
constexpr int kV2FwdBatch = 8;      // pair slots whose loads are issued together
constexpr int kV2LoadBatch = 32;    // elements per lane whose global loads are in flight together (a strip fill)
constexpr int kV2MaxWarps = 8;
constexpr int kV2MaxChunksPerGroup = 64;
constexpr int kV2MinResidentWarps = 4;  // fewer per SM (wide groups): too little latency hiding, v1 runs instead

// One layer table entry: cos θ, the applied sine, the pair's channels (padding slots: c = 1, s = 0 on the row's pad
// column gs, which no global load or store touches).
struct __align__(16) GivensEntry {
  float c, s;
  int i, j;
};

struct GivensV2Geom {
  int P, Ppad, stride, warps;
  size_t tabBytes, extraBytes, tileBytes, smem;  // extra: per-warp angle-gradient sums (backward)
};

// Table of K·Ppad entries, built through loadGivensTables into scratch (the tile area, free at that time).
__device__ void buildV2Table(GivensEntry* tab, float* scratch, const int* pairs, const float* theta, int K, int I, int gs,
                             int g, bool inverse, int Ppad) {
  int P = gs / 2;
  float* cs = scratch;
  float* sn = cs + K * P;
  int* pi = (int*)(sn + K * P);
  int* pj = pi + K * P;
  loadGivensTables(cs, sn, nullptr, pi, pj, pairs, theta, K, I, gs, g, inverse);
  __syncthreads();
  for (int e = threadIdx.x; e < K * Ppad; e += blockDim.x) {
    int l = e / Ppad, t = e % Ppad;
    GivensEntry q;
    if (t < P) {
      q.c = cs[l * P + t];
      q.s = sn[l * P + t];
      q.i = pi[l * P + t];
      q.j = pj[l * P + t];
    } else {
      q.c = 1.0f;
      q.s = 0.0f;
      q.i = gs;
      q.j = gs;
    }
    tab[e] = q;
  }
  __syncthreads();
}

// Strip element f = lane + 32·k is (row f / gs, channel f % gs); walk it without divisions.
__device__ __forceinline__ void stripStep(int& r, int& i, int gs) {
  i += 32;
  while (i >= gs) {
    i -= gs;
    r++;
  }
}

// F32: every operand f32 (no dtype branches); else the dtype codes decide per element.
template <bool F32>
__device__ __forceinline__ float ldV2(const void* p, int dt, size_t k) {
  return F32 ? static_cast<const float*>(p)[k] : ldf(p, dt, k);
}
template <bool F32>
__device__ __forceinline__ void stV2(void* p, int dt, size_t k, float v) {
  if (F32) static_cast<float*>(p)[k] = v;
  else stf(p, dt, k, v);
}

// One batch of kV2FwdBatch pair slots on the lane's row: loads first, then stores (the slots' pairs are disjoint).
__device__ __forceinline__ void rotateBatch(float* row, const GivensEntry* tl) {
  GivensEntry q[kV2FwdBatch];
#pragma unroll
  for (int k = 0; k < kV2FwdBatch; k++) q[k] = tl[k];
  float a[kV2FwdBatch], b[kV2FwdBatch];
#pragma unroll
  for (int k = 0; k < kV2FwdBatch; k++) {
    a[k] = row[q[k].i];
    b[k] = row[q[k].j];
  }
#pragma unroll
  for (int k = 0; k < kV2FwdBatch; k++) {
    float c = q[k].c, s = q[k].s;
    row[q[k].i] = c * a[k] + s * b[k];
    row[q[k].j] = -s * a[k] + c * b[k];
  }
}

template <bool F32>
__global__ void givensFwdV2Kernel(const void* x, int xdt, void* y, int ydt, size_t rows, int I, const int* pairs,
                                  const float* theta, int K, int gs, bool inverse, int Ppad) {
  extern __shared__ float smem[];
  constexpr int SR = kV2Rows;  // rows per strip
  int stride = gs + 1;
  GivensEntry* tab = (GivensEntry*)smem;
  float* tiles = (float*)(tab + K * Ppad);
  int g = blockIdx.x;
  buildV2Table(tab, tiles, pairs, theta, K, I, gs, g, inverse, Ppad);
  int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  float* tile = tiles + (size_t)warp * SR * stride;
  float* rowBase = tile + lane * stride;
  size_t strips = (rows + SR - 1) / SR;
  for (size_t strip = (size_t)blockIdx.y * warps + warp; strip < strips; strip += (size_t)gridDim.y * warps) {
    size_t row0 = strip * SR;
    int nr = (int)min((size_t)SR, rows - row0);
    size_t base = row0 * I + (size_t)g * gs;
    int r = 0, i = lane;
    while (i >= gs) {
      i -= gs;
      r++;
    }
    while (r < nr) {
      float v[kV2LoadBatch];
      int r0 = r, i0 = i;
#pragma unroll
      for (int b = 0; b < kV2LoadBatch; b++) {
        if (r < nr) v[b] = ldV2<F32>(x, xdt, base + (size_t)r * I + i);
        stripStep(r, i, gs);
      }
      r = r0;
      i = i0;
#pragma unroll
      for (int b = 0; b < kV2LoadBatch; b++) {
        if (r < nr) tile[r * stride + i] = v[b];
        stripStep(r, i, gs);
      }
    }
    __syncwarp();
    // Lanes past the last row work on stale rows that are never stored.
    for (int step = 0; step < K; step++) {
      const GivensEntry* tl = tab + (inverse ? K - 1 - step : step) * Ppad;
      for (int t0 = 0; t0 < Ppad; t0 += kV2FwdBatch) rotateBatch(rowBase, tl + t0);
    }
    __syncwarp();
    r = 0;
    i = lane;
    while (i >= gs) {
      i -= gs;
      r++;
    }
    for (; r < nr; stripStep(r, i, gs)) stV2<F32>(y, ydt, base + (size_t)r * I + i, tile[r * stride + i]);
    __syncwarp();  // the next strip's loads overwrite rows other lanes are storing
  }
}

// Backward: per strip the tile holds {u, γ} per element (one 8-byte access for both); layers walk against their order
// of application as in v1. The angle gradient of 32 pair slots is reduced over the warp's 32 rows at once by a
// butterfly reduce-scatter (31 shuffles; lane L ends with slot L's sum), added per warp over its strips in order, then
// over the block's warps in order, then over row chunks by sumChunksKernel: a fixed order set by the shape alone.
template <bool F32>
__global__ void givensBwdV2Kernel(const void* dy, int dydt, const void* y, int ydt, void* dx, int dxdt, float* partial,
                                  size_t rows, int I, const int* pairs, const float* theta, int K, int gs, bool inverse,
                                  int Ppad, size_t stripsPerChunk) {
  extern __shared__ float smem[];
  int stride = gs + 1;
  int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  GivensEntry* tab = (GivensEntry*)smem;
  float* gsumAll = (float*)(tab + K * Ppad);  // [warps][K·Ppad]
  float2* tiles = (float2*)(gsumAll + (size_t)warps * K * Ppad);
  int g = blockIdx.x;
  buildV2Table(tab, (float*)tiles, pairs, theta, K, I, gs, g, inverse, Ppad);
  for (int e = threadIdx.x; e < warps * K * Ppad; e += blockDim.x) gsumAll[e] = 0.0f;
  __syncthreads();
  float* gsum = gsumAll + (size_t)warp * K * Ppad;
  float2* tile = tiles + (size_t)warp * kV2Rows * stride;
  float2* row = tile + lane * stride;
  size_t strips = (rows + kV2Rows - 1) / kV2Rows;
  size_t s0 = (size_t)blockIdx.y * stripsPerChunk, s1 = min(strips, s0 + stripsPerChunk);
  for (size_t strip = s0 + warp; strip < s1; strip += warps) {
    size_t row0 = strip * kV2Rows;
    int nr = (int)min((size_t)kV2Rows, rows - row0);
    size_t base = row0 * I + (size_t)g * gs;
    int r = 0, i = lane;
    while (i >= gs) {
      i -= gs;
      r++;
    }
    while (r < nr) {
      float u[kV2LoadBatch], d[kV2LoadBatch];
      int r0 = r, i0 = i;
#pragma unroll
      for (int b = 0; b < kV2LoadBatch; b++) {
        if (r < nr) {
          u[b] = ldV2<F32>(y, ydt, base + (size_t)r * I + i);
          d[b] = ldV2<F32>(dy, dydt, base + (size_t)r * I + i);
        }
        stripStep(r, i, gs);
      }
      r = r0;
      i = i0;
#pragma unroll
      for (int b = 0; b < kV2LoadBatch; b++) {
        if (r < nr) tile[r * stride + i] = make_float2(u[b], d[b]);
        stripStep(r, i, gs);
      }
    }
    __syncwarp();
    for (int step = 0; step < K; step++) {
      int l = inverse ? step : K - 1 - step;
      const GivensEntry* tl = tab + l * Ppad;
      for (int t0 = 0; t0 < Ppad; t0 += 32) {
        float term[32];
#pragma unroll
        for (int k0 = 0; k0 < 32; k0 += kV2FwdBatch) {
          GivensEntry q[kV2FwdBatch];
          float2 A[kV2FwdBatch], B[kV2FwdBatch];
#pragma unroll
          for (int k = 0; k < kV2FwdBatch; k++) q[k] = tl[t0 + k0 + k];
#pragma unroll
          for (int k = 0; k < kV2FwdBatch; k++) {
            A[k] = row[q[k].i];
            B[k] = row[q[k].j];
          }
#pragma unroll
          for (int k = 0; k < kV2FwdBatch; k++) {
            float c = q[k].c, s = q[k].s;
            float ui = A[k].x, uj = B[k].x;
            float gi = A[k].y, gj = B[k].y;
            float gin = c * gi - s * gj, gjn = s * gi + c * gj;  // input gradient
            term[k0 + k] = gi * uj - gj * ui;
            row[q[k].i] = make_float2(c * ui - s * uj, gin);
            row[q[k].j] = make_float2(s * ui + c * uj, gjn);
          }
        }
        if (lane >= nr) {
#pragma unroll
          for (int k = 0; k < 32; k++) term[k] = 0.0f;  // rows past the end (stale data)
        }
        reduceScatterStage<16>(term, lane);
        reduceScatterStage<8>(term, lane);
        reduceScatterStage<4>(term, lane);
        reduceScatterStage<2>(term, lane);
        reduceScatterStage<1>(term, lane);
        gsum[l * Ppad + t0 + lane] += term[0];
      }
    }
    __syncwarp();
    r = 0;
    i = lane;
    while (i >= gs) {
      i -= gs;
      r++;
    }
    for (; r < nr; stripStep(r, i, gs)) stV2<F32>(dx, dxdt, base + (size_t)r * I + i, tile[r * stride + i].y);
    __syncwarp();
  }
  __syncthreads();
  // The applied angle of an 'inverse' layer is −θ, so its θ-gradient changes sign.
  float sign = inverse ? -1.0f : 1.0f;
  size_t half = (size_t)I / 2;
  int P = gs / 2;
  for (int e = threadIdx.x; e < K * P; e += blockDim.x) {
    int l = e / P, t = e % P;
    float s = 0.0f;
    for (int w = 0; w < warps; w++) s += gsumAll[(size_t)w * K * Ppad + l * Ppad + t];
    partial[(size_t)blockIdx.y * K * half + (size_t)l * half + (size_t)g * P + t] = sign * s;
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

// PARO_GIVENS_KERNEL (read at every call, so one process can time and compare the versions): v1 the v1 kernels,
// v2 the v2 kernels. (A v2 forward with 2 rows per lane ran 0.75–0.81× v1 on an H100 on 2026-12-07 and was removed.)
// Unset: v2 for f32 operands, v1 for the others — on an H100 (docs/gpu-validation.md run 14) v2 ran 1.03–1.22× v1
// with f32 tensors but 0.52–0.59× with bf16 ones; PARO_GIVENS_KERNEL=v2 forces v2 for both.
int givensVersionSelected(int dt) {
  const char* v = std::getenv("PARO_GIVENS_KERNEL");
  if (v && std::strcmp(v, "v1") == 0) return 1;
  if (v && std::strcmp(v, "v2") == 0) return 2;
  return dt == DT_F32 ? 2 : 1;
}

bool v2Dtype(int dt) { return dt == DT_F32 || dt == DT_BF16; }

// v2 geometry: the warps per block that keep the most warps resident per SM within the device's shared memory
// (1 KiB reserved per block); false when fewer than kV2MinResidentWarps fit (v1 then runs).
bool v2Geometry(int gs, int K, bool bwd, GivensV2Geom& geo) {
  int dev = 0, perSm = 0, perBlock = 0;
  checkCuda(cudaGetDevice(&dev), "cudaGetDevice");
  checkCuda(cudaDeviceGetAttribute(&perSm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, dev), "cudaDeviceGetAttribute");
  checkCuda(cudaDeviceGetAttribute(&perBlock, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev), "cudaDeviceGetAttribute");
  geo.P = gs / 2;
  geo.Ppad = (geo.P + kV2SlotAlign - 1) / kV2SlotAlign * kV2SlotAlign;
  geo.stride = gs + 1;
  geo.tabBytes = (size_t)K * geo.Ppad * sizeof(GivensEntry);
  size_t warpTile = (size_t)kV2Rows * geo.stride * (bwd ? 8 : 4);
  size_t warpExtra = bwd ? (size_t)K * geo.Ppad * 4 : 0;
  size_t scratch = (size_t)K * geo.P * 16;  // loadGivensTables' four arrays, in the tile area
  geo.warps = 0;
  int bestResident = 0;
  for (int w = 1; w <= kV2MaxWarps; w++) {
    size_t smem = geo.tabBytes + w * warpExtra + std::max(w * warpTile, scratch);
    if (smem > (size_t)perBlock) break;
    int blocks = std::min((int)((size_t)perSm / (smem + 1024)), 64 / w);
    if (blocks * w > bestResident) {
      bestResident = blocks * w;
      geo.warps = w;
      geo.extraBytes = w * warpExtra;
      geo.tileBytes = std::max(w * warpTile, scratch);
      geo.smem = smem;
    }
  }
  return bestResident >= kV2MinResidentWarps;
}

template <bool F32>
void launchGivensV2(const void* x, int xdt, void* y, int ydt, size_t rows, int I, const int* pairs, const float* theta,
                    int K, int gs, bool inverse, const GivensV2Geom& geo) {
  size_t strips = (rows + kV2Rows - 1) / kV2Rows;
  size_t blocksY = std::min<size_t>((strips + geo.warps - 1) / geo.warps, 65535);
  dim3 grid((unsigned)(I / gs), (unsigned)blocksY);
  setSmem((const void*)givensFwdV2Kernel<F32>, geo.smem);
  givensFwdV2Kernel<F32><<<grid, geo.warps * 32, geo.smem, stream()>>>(x, xdt, y, ydt, rows, I, pairs, theta, K, gs,
                                                                       inverse, geo.Ppad);
  checkLaunch(inverse ? "givens(inverse, v2)" : "givens(forward, v2)");
}

void givensV2(const void* x, int xdt, void* y, int ydt, size_t rows, int I, const int* pairs, const float* theta,
              int K, int gs, bool inverse, const GivensV2Geom& geo) {
  if (xdt == DT_F32 && ydt == DT_F32) launchGivensV2<true>(x, xdt, y, ydt, rows, I, pairs, theta, K, gs, inverse, geo);
  else launchGivensV2<false>(x, xdt, y, ydt, rows, I, pairs, theta, K, gs, inverse, geo);
}

void givensBwdV2(const void* dy, int dydt, const void* y, int ydt, void* dx, int dxdt, float* dtheta, size_t rows,
                 int I, const int* pairs, const float* theta, int K, int gs, bool inverse, const GivensV2Geom& geo) {
  size_t nTheta = (size_t)K * (I / 2);
  // Row chunks per group: a shape-only choice (so the reduction order is fixed), whole strips per warp.
  size_t strips = (rows + kV2Rows - 1) / kV2Rows;
  size_t stripsPerChunk = (strips + kV2MaxChunksPerGroup - 1) / kV2MaxChunksPerGroup;
  stripsPerChunk = (stripsPerChunk + geo.warps - 1) / geo.warps * geo.warps;
  size_t chunks = (strips + stripsPerChunk - 1) / stripsPerChunk;
  Scratch partial(chunks * nTheta * sizeof(float));
  dim3 grid((unsigned)(I / gs), (unsigned)chunks);
  bool f32 = dydt == DT_F32 && ydt == DT_F32 && dxdt == DT_F32;
  if (f32) {
    setSmem((const void*)givensBwdV2Kernel<true>, geo.smem);
    givensBwdV2Kernel<true><<<grid, geo.warps * 32, geo.smem, stream()>>>(dy, dydt, y, ydt, dx, dxdt,
                                                                          partial.as<float>(), rows, I, pairs, theta,
                                                                          K, gs, inverse, geo.Ppad, stripsPerChunk);
  } else {
    setSmem((const void*)givensBwdV2Kernel<false>, geo.smem);
    givensBwdV2Kernel<false><<<grid, geo.warps * 32, geo.smem, stream()>>>(dy, dydt, y, ydt, dx, dxdt,
                                                                           partial.as<float>(), rows, I, pairs, theta,
                                                                           K, gs, inverse, geo.Ppad, stripsPerChunk);
  }
  checkLaunch(inverse ? "givensBackward(inverse, v2)" : "givensBackward(forward, v2)");
  sumChunksKernel<<<gridFor(nTheta, 256), 256, 0, stream()>>>(partial.as<float>(), chunks, nTheta, dtheta);
  checkLaunch("givensBackward.sumChunks");
}

}  // namespace

void givensK(const void* x, int xdt, void* y, int ydt, size_t rows, int I, const int* pairs, const float* theta, int K,
             int gs, bool inverse) {
  checkGivensArgs(I, gs);
  if (rows == 0 || I == 0) return;
  GivensV2Geom v2;
  if (givensVersionSelected(xdt) != 1 && v2Dtype(xdt) && v2Dtype(ydt) && v2Geometry(gs, K, false, v2)) {
    givensV2(x, xdt, y, ydt, rows, I, pairs, theta, K, gs, inverse, v2);
    return;
  }
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
  GivensV2Geom v2;
  if (givensVersionSelected(dydt) != 1 && v2Dtype(dydt) && v2Dtype(ydt) && v2Dtype(dxdt) && v2Geometry(gs, K, true, v2)) {
    givensBwdV2(dy, dydt, y, ydt, dx, dxdt, dtheta, rows, I, pairs, theta, K, gs, inverse, v2);
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
