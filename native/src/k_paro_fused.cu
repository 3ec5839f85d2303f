// The ParoQuant transform of one linear in one pass (Backend.paroTransform / paroTransformBackward; paroquant-spec
// §2.2, §4, §5.3): rotation groups and quantizer groups coincide, so W ⊙ α → K Givens layers → fake quantizer → K
// inverse layers → ÷ α runs on one tile in shared memory, reading W once and writing Ŵ once. The backward recomputes
// that forward, then walks transformBackward's chain (src/paroquant/transform.ts) on the tile; dθ and dα, sums over
// rows, go through per-block partial sums and a second kernel that adds them in a fixed order (no float atomics:
// reruns are bit-identical). For the Gram backward (k_paro_resid.cu) a second instance of the forward (RESID) also
// stores the residual E = Ŵ − W and, in stage 1, the max/min masks of each row's R; the plain instance's PTX is the
// same as before it (142 registers on sm_90; RESID 140).
//
// Layout (that of k_paro.cu's Givens v2 kernels): one warp owns a strip of 32 rows of one channel group, lane = row.
// The strip sits row-major in shared memory with the odd row stride gs + 1, so when all lanes apply the same pair slot
// (i, j) to their own rows the 32 accesses row[i] hit 32 distinct banks; the layer tables are read as broadcasts (per
// slot 10 bytes: {cos, applied sine} and the channels i | j << 8, see Tables); a lane only ever touches its own row,
// so the 2K layers and the quantizer (whose group is the lane's own row: min/max and sums without shuffles) need no
// barrier at all. Global traffic runs column-major over the strip (lane = channel, rows in flight per lane): every
// warp access is one row's 32 consecutive channels, and the dα column sums over the strip's rows are per-lane register
// sums in row order.
// Global latency against the rotations: shared memory, not DRAM, bounds these kernels (the forward makes ≈ 45
// shared-memory wavefronts per element against 6–8 bytes of DRAM traffic, the stage-1 backward ≈ 125 against 12), so
// the aim is that a warp's loads never leave the SM's shared-memory pipe idle: the forward keeps up to 12 warps per SM
// (three blocks of four at gs 128, 142 registers), each taking two strips in turn and loading the first 32-channel
// column block of its next strip into registers before it rotates the current one; the backward (4 warps per SM in
// stage 1 at gs 128: its three planes fill shared memory) issues all loads of a strip's W and dŴ at once (128 per
// lane), so each of its three global phases costs one latency.
// Per element the arithmetic is the composition's (mulCols, givens v1/v2, fqMinMax / fqParams and their backwards,
// divCols), written the same way, and the quantizer backward's group sum S is formed in fqMinMaxBwdKernel's order
// (lane-strided partial sums, then warpSum's butterfly), so Ŵ, the grid, stage 2's dW and dscale equal the
// composition's bit for bit; dθ and dα are sums over rows in another (fixed) order.
//
// Shared memory per warp: forward one f32 plane [32][gs + 1] (16.5 KiB at gs 128); backward stage 1 three planes
// (A: the forward states, R at the end; B: the inverse states, U at the end; C: the gradient) and the warp's dθ sums
// [K][Ppad], stage 2 two planes (A, C). Per block the tables, K·Ppad·18 bytes (Ppad: slots per layer padded to 32).
//
// Tried and removed (H100, docs/gpu-validation.md run 20): a stage-1 backward with two planes per warp (R recomputed
// from W ⊙ α after the inverse walk: 215 registers, 6 warps per SM instead of 4) and that with pipelined walks. Qwen3-8B
// block of 7 linears, stage 1 fwd + bwd: this kernel 14.781 ms, two planes 14.794, pipelined 15.628; Nsight on gate_proj
// (12288×4096, K 8, g128): this backward 3.24 ms (243 registers, 0.28 issued warps per scheduler, 904 M instructions),
// two planes 3.17 ms (0.42 of 1.49 warps eligible, 1.05 G instructions). More resident warps did not help: the kernel
// is not simply latency-bound, and the recomputation's extra work cancels the gain. Also tried (run 22): the backward
// specialised for the operand dtypes at compile time (bf16 or f32 dŴ, f32 W), which cut the stage-1 machine code from
// 474 to 341 KB (Nsight: ≈ 16 % of the warps' cycles wait on instruction fetch) but used 255 registers with 76 bytes
// of spills: the block step's seven backwards 15.0 → 18.1 ms (stage 2 7.6 → 9.5). The run-time dtype stays.
#include <algorithm>

#include "common.cuh"
#include "ops.h"

namespace paro {
namespace {

#include "slot_reduce.cuh"

constexpr int kRows = 32;        // rows per warp strip: one per lane
constexpr int kSlotAlign = 32;   // pair slots per layer padded to a multiple (the backward reduces 32 slots at once)
constexpr int kBatch = 8;        // pair slots whose shared-memory loads are issued together (channels: 16 bytes)
static_assert(kBatch == 8, "a batch's channel entries are one 16-byte load");
static_assert(kParoFusedMaxGroup < 256, "channel indices (and the pad column) fit 8 bits");
constexpr int kMaxWarps = 8;     // warps per block (several blocks per SM drift apart: their load phases overlap)
constexpr int kMaxResidentWarps = 32;
constexpr int kMaxChunksPerGroup = 64;
constexpr int kStripsPerWarp = 2;  // strips a warp takes in turn (fewer where the shape has fewer)
constexpr int kMaxColBlocks = kParoFusedMaxGroup / 32;

__device__ __forceinline__ float fClampScale(float s) { return fminf(fmaxf(s, 1e-5f), 1e5f); }

__device__ __forceinline__ float fZeroPoint(float zpf, int qmax) { return fminf(fmaxf(-rintf(zpf), 0.0f), (float)qmax); }

__device__ __forceinline__ float fQuantLevel(float r, float sc, float z, int qmax) {
  return fminf(fmaxf(rintf(r / sc) + z, 0.0f), (float)qmax);
}

// The layer tables of a group, entry e = l·Ppad + t: cs[e] = {cos θ, +sin θ, cos θ, −sin θ} (a forward layer reads the
// first half, an inverse layer the second: one 8-byte broadcast), ij[e] = i | j << 8 (a batch of 8 slots' channels in
// one 16-byte broadcast). Padding slots: c = 1, s = 0 on the row's pad column gs, which no global access touches.
// Shared memory returns 4 bytes per lane and cycle even for a broadcast, so the 10 bytes a slot needs cost less than
// one 16-byte entry {c, s, i, j}.
struct __align__(16) RotCS {
  float c, s, cInv, sInv;
};

struct Tables {
  RotCS* cs;
  unsigned short* ij;
};

// The tables in shared memory at p (16-byte aligned); their bytes.
__host__ __device__ inline size_t tableBytes(int K, int Ppad) { return (size_t)K * Ppad * (sizeof(RotCS) + 2); }
__device__ inline Tables tablesAt(void* p, int K, int Ppad) {
  Tables t;
  t.cs = (RotCS*)p;
  t.ij = (unsigned short*)(t.cs + K * Ppad);
  return t;
}

// Tables of group g; the sines as loadGivensTables (givens_tables.cuh) forms them.
__device__ void buildTable(Tables tab, const int* pairs, const float* theta, int K, int I, int gs, int g, int Ppad) {
  int P = gs / 2;
  for (int e = threadIdx.x; e < K * Ppad; e += blockDim.x) {
    int l = e / Ppad, t = e % Ppad;
    RotCS q;
    int i = gs, j = gs;
    if (t < P) {
      float s, c;
      sincosf(theta[(size_t)l * (I / 2) + (size_t)g * P + t], &s, &c);
      size_t pb = (size_t)l * I + (size_t)g * gs + 2 * t;
      i = min(max(pairs[pb], 0), gs - 1);
      j = min(max(pairs[pb + 1], 0), gs - 1);
      q.c = q.cInv = c;
      q.s = s;
      q.sInv = -s;
    } else {
      q.c = q.cInv = 1.0f;
      q.s = q.sInv = 0.0f;
    }
    tab.cs[e] = q;
    tab.ij[e] = (unsigned short)(i | (j << 8));
  }
}

// A batch of kBatch slots' table entries (from entry e, a multiple of kBatch): cos and applied sine, channels.
template <bool INV>
__device__ __forceinline__ void batchEntries(Tables tab, int e, float2 q[kBatch], int ii[kBatch], int jj[kBatch]) {
  const float2* h = reinterpret_cast<const float2*>(tab.cs + e) + (INV ? 1 : 0);
#pragma unroll
  for (int k = 0; k < kBatch; k++) q[k] = h[2 * k];
  uint4 pk = *reinterpret_cast<const uint4*>(tab.ij + e);
  unsigned w[4] = {pk.x, pk.y, pk.z, pk.w};
#pragma unroll
  for (int k = 0; k < kBatch; k++) {
    unsigned v = w[k / 2] >> (16 * (k % 2));
    ii[k] = v & 0xff;
    jj[k] = (v >> 8) & 0xff;
  }
}

// One batch of kBatch pair slots on the lane's row: loads first, then stores (the slots' pairs are disjoint), the
// expressions of givensFwdV2Kernel's rotateBatch; INV: the inverse layer's applied sine.
template <bool INV>
__device__ __forceinline__ void rotateBatch(float* row, Tables tab, int e) {
  float2 q[kBatch];
  int ii[kBatch], jj[kBatch];
  batchEntries<INV>(tab, e, q, ii, jj);
  float a[kBatch], b[kBatch];
#pragma unroll
  for (int k = 0; k < kBatch; k++) {
    a[k] = row[ii[k]];
    b[k] = row[jj[k]];
  }
#pragma unroll
  for (int k = 0; k < kBatch; k++) {
    float c = q[k].x, s = q[k].y;
    row[ii[k]] = c * a[k] + s * b[k];
    row[jj[k]] = -s * a[k] + c * b[k];
  }
}

// The K forward layers (0 first) or the K inverse layers (K − 1 first) on the lane's row; Pb: slots per layer rounded
// up to kBatch.
template <bool INV>
__device__ __forceinline__ void rotateLayers(float* row, Tables tab, int K, int Ppad, int Pb) {
  for (int step = 0; step < K; step++) {
    int e0 = (INV ? K - 1 - step : step) * Ppad;
    for (int t0 = 0; t0 < Pb; t0 += kBatch) rotateBatch<INV>(row, tab, e0 + t0);
  }
}

// Column i of the strip (rows 0..nr−1 from base): the 32 global loads issued together.
__device__ __forceinline__ void loadColumn(float v[kRows], const void* p, int dt, size_t base, int I, int nr, int i,
                                           bool on) {
#pragma unroll
  for (int r = 0; r < kRows; r++) v[r] = on && r < nr ? ldf(p, dt, base + (size_t)r * I + i) : 0.0f;
}

// tile[r][i] = W·α (mulCols' product).
__device__ __forceinline__ void putColumn(float* tile, int stride, const float v[kRows], int nr, int i, bool on,
                                          float a) {
#pragma unroll
  for (int r = 0; r < kRows; r++)
    if (on && r < nr) tile[r * stride + i] = v[r] * a;
}

// p[l] += p[l + O] for l < O: lane 0's step O of warpSum's butterfly (register indices fixed at compile time).
template <int O>
__device__ __forceinline__ void foldHalf(float* p) {
#pragma unroll
  for (int l = 0; l < O; l++) p[l] = p[l] + p[l + O];
}

// The group sum of fq*BwdKernel, Σ_e γ_e·((q_e − z) − R_e/sc), for the lane's row in that kernel's order: lane l of
// its warp sums e = l, l + 32, ... in order, then warpSum adds the 32 partials by the xor butterfly 16, 8, 4, 2, 1
// (every lane ends with lane 0's tree). Stage 1 also counts the row's maxima and minima.
__device__ __forceinline__ float groupSum(const float* R, const float* gam, int gs, float sc, float z, int qmax,
                                          float mx, float mn, float& nmx, float& nmn) {
  float p[32];
#pragma unroll
  for (int l = 0; l < 32; l++) p[l] = 0.0f;
  nmx = 0.0f;
  nmn = 0.0f;
  for (int e0 = 0; e0 < gs; e0 += 32) {
#pragma unroll
    for (int l = 0; l < 32; l++) {
      int e = e0 + l;
      if (e < gs) {
        float v = R[e];
        float q = fQuantLevel(v, sc, z, qmax);
        p[l] += gam[e] * ((q - z) - v / sc);
        nmx += v == mx ? 1.0f : 0.0f;
        nmn += v == mn ? 1.0f : 0.0f;
      }
    }
  }
  foldHalf<16>(p);
  foldHalf<8>(p);
  foldHalf<4>(p);
  foldHalf<2>(p);
  foldHalf<1>(p);
  return p[0];
}

// Masks of the lane's row R against its max and min (stage 1 with RESID): bit b of word w where R[32w + b] equals mx
// (words 0..words−1 at ext) or mn (words words..2·words−1), the same values the grid was formed from.
__device__ __forceinline__ void writeExtremes(const float* row, int gs, float mx, float mn, int* ext) {
  int words = (gs + 31) / 32;
  for (int w = 0; w < words; w++) {
    unsigned bMax = 0, bMin = 0;
#pragma unroll 1  // unrolled, the shared loads in flight cost the kernel registers (146 against 140)
    for (int b = 0; b < 32; b++) {
      int e = 32 * w + b;
      if (e < gs) {
        float v = row[e];
        bMax |= (v == mx ? 1u : 0u) << b;
        bMin |= (v == mn ? 1u : 0u) << b;
      }
    }
    ext[w] = (int)bMax;
    ext[words + w] = (int)bMin;
  }
}

// Rows of a column the RESID store loop handles at once: their W loads issued together (W re-read, L2-hot).
constexpr int kResidBatch = 8;

// ---- forward ----
// pScale/pZpf: stage-2 parameters (null: stage 1, the grid from the group's min/max, written to gScale/gZpf).
// RESID (Backend.paroResidualDtype): also E = Ŵ − W in f32 (Ŵ before its rounding to odt), stored in rdt at resid, and
// in stage 1, where extremes is not null, the max/min masks of each row's R (i32 [O·G, 2·⌈gs/32⌉]). A template, so the
// kernel without them stays the machine code it was.
template <bool RESID>
__global__ void paroFusedFwdKernel(const void* W, int wdt, const float* alpha, const int* pairs, const float* theta,
                                   const float* pScale, const float* pZpf, void* out, int odt, float* gScale,
                                   float* gZpf, int O, int I, int K, int gs, int qmax, int Ppad, void* resid, int rdt,
                                   int* extremes) {
  extern __shared__ float smem[];
  int stride = gs + 1;
  Tables tab = tablesAt(smem, K, Ppad);
  float* tiles = (float*)((char*)smem + tableBytes(K, Ppad));
  int g = blockIdx.x;
  int G = I / gs;
  buildTable(tab, pairs, theta, K, I, gs, g, Ppad);
  __syncthreads();
  int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  float* tile = tiles + (size_t)warp * kRows * stride;
  float* row = tile + lane * stride;
  int Pb = (gs / 2 + kBatch - 1) / kBatch * kBatch;
  const float* al = alpha + (size_t)g * gs;
  int strips = (O + kRows - 1) / kRows;
  int step = gridDim.y * warps;
  int strip = blockIdx.y * warps + warp;
  // Column block 0 of the first strip; later ones are prefetched during the previous strip's rotations.
  float pre[kRows];
  if (strip < strips)
    loadColumn(pre, W, wdt, (size_t)strip * kRows * I + (size_t)g * gs, I, min(kRows, O - strip * kRows), lane,
               lane < gs);
  for (; strip < strips; strip += step) {
    int row0 = strip * kRows;
    int nr = min(kRows, O - row0);
    size_t base = (size_t)row0 * I + (size_t)g * gs;
    putColumn(tile, stride, pre, nr, lane, lane < gs, lane < gs ? al[lane] : 0.0f);
    for (int i = 32 + lane; i - lane < gs; i += 32) {
      float v[kRows];
      loadColumn(v, W, wdt, base, I, nr, i, i < gs);
      putColumn(tile, stride, v, nr, i, i < gs, i < gs ? al[i] : 0.0f);
    }
    __syncwarp();
    int next = strip + step;
    if (next < strips)
      loadColumn(pre, W, wdt, (size_t)next * kRows * I + (size_t)g * gs, I, min(kRows, O - next * kRows), lane,
                 lane < gs);
    // Lanes past the last row work on stale rows that are never stored.
    rotateLayers<false>(row, tab, K, Ppad, Pb);
    float sc, z;
    size_t grp = (size_t)(row0 + lane) * G + g;
    if (pScale) {
      sc = lane < nr ? fClampScale(pScale[grp]) : 1.0f;
      z = lane < nr ? fZeroPoint(pZpf[grp], qmax) : 0.0f;
    } else {
      float mx = -INFINITY, mn = INFINITY;
      for (int e = 0; e < gs; e++) {
        mx = fmaxf(mx, row[e]);
        mn = fminf(mn, row[e]);
      }
      float s = fmaxf(mx - mn, 1e-5f) / (float)qmax;
      float zf = mn / s;
      if (lane < nr) {
        gScale[grp] = s;
        gZpf[grp] = zf;
        if (RESID && extremes) writeExtremes(row, gs, mx, mn, extremes + grp * 2 * ((gs + 31) / 32));
      }
      sc = fClampScale(s);
      z = fZeroPoint(zf, qmax);
    }
    for (int e = 0; e < gs; e++) {
      float q = fQuantLevel(row[e], sc, z, qmax);
      row[e] = (q - z) * sc;
    }
    rotateLayers<true>(row, tab, K, Ppad, Pb);
    __syncwarp();
    for (int i = lane; i - lane < gs; i += 32) {
      if (i >= gs) continue;
      float a = al[i];
      if (RESID) {
        for (int r0 = 0; r0 < nr; r0 += kResidBatch) {
          float w[kResidBatch];
#pragma unroll
          for (int k = 0; k < kResidBatch; k++)
            w[k] = r0 + k < nr ? ldf(W, wdt, base + (size_t)(r0 + k) * I + i) : 0.0f;
#pragma unroll
          for (int k = 0; k < kResidBatch; k++) {
            int r = r0 + k;
            if (r < nr) {
              size_t idx = base + (size_t)r * I + i;
              float v = tile[r * stride + i] / a;
              stf(out, odt, idx, v);
              stf(resid, rdt, idx, v - w[k]);
            }
          }
        }
      } else {
#pragma unroll 8
        for (int r = 0; r < nr; r++) stf(out, odt, base + (size_t)r * I + i, tile[r * stride + i] / a);
      }
    }
    __syncwarp();  // every lane has read the tile before the next strip overwrites it
  }
}

// ---- backward ----
// Backward of one batch of pair slots of a layer on the lane's row: γ (output gradient in, input gradient out) in gam,
// and with THETA the layer's output u in uRow, turned back into its input (givensBwdV2Kernel's expressions), and the
// angle terms γ_i·u_j − γ_j·u_i in term. INV: the inverse layer's applied sine.
template <bool INV, bool THETA>
__device__ __forceinline__ void layerBackwardBatch(float* uRow, float* gam, Tables tab, int e, float* term) {
  float2 q[kBatch];
  int ii[kBatch], jj[kBatch];
  batchEntries<INV>(tab, e, q, ii, jj);
  float ui[kBatch], uj[kBatch], gi[kBatch], gj[kBatch];
#pragma unroll
  for (int k = 0; k < kBatch; k++) {
    gi[k] = gam[ii[k]];
    gj[k] = gam[jj[k]];
    if (THETA) {
      ui[k] = uRow[ii[k]];
      uj[k] = uRow[jj[k]];
    }
  }
#pragma unroll
  for (int k = 0; k < kBatch; k++) {
    float c = q[k].x, s = q[k].y;
    float gin = c * gi[k] - s * gj[k], gjn = s * gi[k] + c * gj[k];  // input gradient
    if (THETA) {
      term[k] = gi[k] * uj[k] - gj[k] * ui[k];
      uRow[ii[k]] = c * ui[k] - s * uj[k];
      uRow[jj[k]] = s * ui[k] + c * uj[k];
    }
    gam[ii[k]] = gin;
    gam[jj[k]] = gjn;
  }
}

// One layer's backward with the angle terms: per 32 slots, reduced over the warp's rows (rows ≥ nr hold stale data:
// their terms are 0) and added to the warp's sums gl [Ppad] of the layer with the sign of the applied angle.
template <bool INV>
__device__ __forceinline__ void layersBackwardTheta(float* uRow, float* gam, Tables tab, int e0, float* gl, int Ppad,
                                                    int lane, int nr) {
  for (int t0 = 0; t0 < Ppad; t0 += 32) {
    float term[32];
#pragma unroll
    for (int k0 = 0; k0 < 32; k0 += kBatch) layerBackwardBatch<INV, true>(uRow, gam, tab, e0 + t0 + k0, term + k0);
    if (lane >= nr) {
#pragma unroll
      for (int k = 0; k < 32; k++) term[k] = 0.0f;
    }
    reduceScatterStage<16>(term, lane);
    reduceScatterStage<8>(term, lane);
    reduceScatterStage<4>(term, lane);
    reduceScatterStage<2>(term, lane);
    reduceScatterStage<1>(term, lane);
    // The applied angle of an inverse layer is −θ, so its θ-gradient changes sign.
    if (INV) gl[t0 + lane] -= term[0];
    else gl[t0 + lane] += term[0];
  }
}

// Backward of the K forward layers (K − 1 first) or of the K inverse layers (the last applied, layer 0, first); with
// THETA the angle terms go to the warp's sums gsum [K][Ppad].
template <bool INV, bool THETA>
__device__ __forceinline__ void layersBackward(float* uRow, float* gam, Tables tab, float* gsum, int K,
                                               int Ppad, int Pb, int lane, int nr) {
  for (int step = 0; step < K; step++) {
    int l = INV ? step : K - 1 - step;
    if (!THETA) {
      for (int t0 = 0; t0 < Pb; t0 += kBatch) layerBackwardBatch<INV, false>(uRow, gam, tab, l * Ppad + t0, nullptr);
    } else {
      layersBackwardTheta<INV>(uRow, gam, tab, l * Ppad, gsum + l * Ppad, Ppad, lane, nr);
    }
  }
}

// The end of the stage-1 backward: this block's sums, the warps' in warp order (a1, a2 through each warp's plane A,
// free now), to row chunk blockIdx.y of the partial sums.
__device__ __forceinline__ void blockSums(const float* a1, const float* a2, float* A, const float* all,
                                          size_t warpFloats, float* partTheta, float* partA1, float* partA2, int I,
                                          int K, int gs, int g, int Ppad, int lane, int warps) {
#pragma unroll
  for (int cb = 0; cb < kMaxColBlocks; cb++) {
    int i = cb * 32 + lane;
    if (i < gs) {
      A[i] = a1[cb];
      A[gs + i] = a2[cb];
    }
  }
  __syncthreads();
  size_t chunk = blockIdx.y;
  size_t half = (size_t)I / 2;
  size_t nTheta = (size_t)K * half;
  int P = gs / 2;
  for (int e = threadIdx.x; e < K * P; e += blockDim.x) {
    int l = e / P, t = e % P;
    float s = 0.0f;
    for (int w = 0; w < warps; w++) s += all[(size_t)w * warpFloats + l * Ppad + t];
    partTheta[chunk * nTheta + (size_t)l * half + (size_t)g * P + t] = s;
  }
  size_t aOff = (size_t)K * Ppad;  // plane A of each warp
  for (int e = threadIdx.x; e < gs; e += blockDim.x) {
    float s1v = 0.0f, s2v = 0.0f;
    for (int w = 0; w < warps; w++) {
      const float* wa = all + (size_t)w * warpFloats + aOff;
      s1v += wa[e];
      s2v += wa[gs + e];
    }
    partA1[chunk * I + (size_t)g * gs + e] = s1v;
    partA2[chunk * I + (size_t)g * gs + e] = s2v;
  }
}

// Stage 1 (THETA): planes A, B, C per warp and the warp's dθ sums; partTheta/partA1/partA2 per row chunk (blockIdx.y).
// Stage 2: planes A, C; dW and dscale.
template <bool S1>
__global__ void paroFusedBwdKernel(const void* dWhat, int ddt, const void* W, int wdt, const float* alpha,
                                   const int* pairs, const float* theta, const float* scale, const float* zpf, void* dW,
                                   int dwdt, float* dscale, float* partTheta, float* partA1, float* partA2, int O,
                                   int I, int K, int gs, int qmax, int Ppad, int stripsPerChunk) {
  extern __shared__ float smem[];
  int stride = gs + 1;
  int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  Tables tab = tablesAt(smem, K, Ppad);
  float* all = (float*)((char*)smem + tableBytes(K, Ppad));  // the warps' areas
  size_t plane = (size_t)kRows * stride;
  size_t warpFloats = (S1 ? 3 : 2) * plane + (S1 ? (size_t)K * Ppad : 0);
  float* wbase = all + warp * warpFloats;
  float* gsum = wbase;  // stage 1: [K][Ppad]
  float* A = wbase + (S1 ? (size_t)K * Ppad : 0);
  float* B = A + plane;  // stage 1 only
  float* C = S1 ? B + plane : A + plane;
  float* aRow = A + lane * stride;
  float* bRow = B + lane * stride;
  float* cRow = C + lane * stride;
  int g = blockIdx.x;
  int G = I / gs;
  buildTable(tab, pairs, theta, K, I, gs, g, Ppad);
  if (S1)
    for (int e = lane; e < K * Ppad; e += 32) gsum[e] = 0.0f;
  __syncthreads();
  int Pb = (gs / 2 + kBatch - 1) / kBatch * kBatch;
  const float* al = alpha + (size_t)g * gs;
  float a1[kMaxColBlocks], a2[kMaxColBlocks];  // stage 1: this lane's channels' Σ W·d(W⊙α) and Σ U·dŴ
#pragma unroll
  for (int cb = 0; cb < kMaxColBlocks; cb++) a1[cb] = a2[cb] = 0.0f;
  int strips = (O + kRows - 1) / kRows;
  int s0 = blockIdx.y * stripsPerChunk, s1 = min(strips, s0 + stripsPerChunk);
  for (int strip = s0 + warp; strip < s1; strip += warps) {
    int row0 = strip * kRows;
    int nr = min(kRows, O - row0);
    size_t base = (size_t)row0 * I + (size_t)g * gs;
    size_t grp = (size_t)(row0 + lane) * G + g;
    // Forward: A = W ⊙ α, the K forward layers (A = R); stage 1: B = Q(R), the K inverse layers (B = U).
    {
      float v[kMaxColBlocks][kRows];  // all loads of the strip in flight together
#pragma unroll
      for (int c = 0; c < kMaxColBlocks; c++) loadColumn(v[c], W, wdt, base, I, nr, c * 32 + lane, c * 32 + lane < gs);
#pragma unroll
      for (int c = 0; c < kMaxColBlocks; c++) {
        int i = c * 32 + lane;
        putColumn(A, stride, v[c], nr, i, i < gs, i < gs ? al[i] : 0.0f);
      }
    }
    __syncwarp();
    rotateLayers<false>(aRow, tab, K, Ppad, Pb);
    float sc = lane < nr ? fClampScale(scale[grp]) : 1.0f;
    float z = lane < nr ? fZeroPoint(zpf[grp], qmax) : 0.0f;
    float mx = -INFINITY, mn = INFINITY;
    if (S1) {
      for (int e = 0; e < gs; e++) {
        float v = aRow[e];
        mx = fmaxf(mx, v);
        mn = fminf(mn, v);
        float q = fQuantLevel(v, sc, z, qmax);
        bRow[e] = (q - z) * sc;
      }
      rotateLayers<true>(bRow, tab, K, Ppad, Pb);
    }
    __syncwarp();
    // Ŵ = U ⊘ α: C = dŴ ⊘ α; stage 1: Σ U·dŴ per channel, over the strip's rows in order.
    float d[kMaxColBlocks][kRows];  // all loads of the strip in flight together
#pragma unroll
    for (int cb = 0; cb < kMaxColBlocks; cb++)
      loadColumn(d[cb], dWhat, ddt, base, I, nr, cb * 32 + lane, cb * 32 + lane < gs);
#pragma unroll
    for (int cb = 0; cb < kMaxColBlocks; cb++) {
      int i = cb * 32 + lane;
      if (i < gs) {
        float a = al[i];
        float acc = a2[cb];
#pragma unroll
        for (int r = 0; r < kRows; r++) {
          if (r < nr) {
            C[r * stride + i] = d[cb][r] / a;
            if (S1) acc += B[r * stride + i] * d[cb][r];
          }
        }
        a2[cb] = acc;
      }
    }
    __syncwarp();
    // Inverse layers (stage 1 rebuilds their states from U as givensBackward does; stage 2 needs γ only).
    layersBackward<true, S1>(bRow, cRow, tab, gsum, K, Ppad, Pb, lane, nr);
    // STE quantizer: dR = dQ plus the scale path (stage 1 through the max/min, ties share; stage 2: dscale).
    float nmx, nmn;
    float S = groupSum(aRow, cRow, gs, sc, z, qmax, mx, mn, nmx, nmn);
    if (S1) {
      float gMax = S / ((float)qmax * nmx), gMin = S / ((float)qmax * nmn);
      for (int e = 0; e < gs; e++) {
        float v = aRow[e];
        if (v == mx || v == mn) {
          float d = cRow[e];
          if (v == mx) d += gMax;
          if (v == mn) d -= gMin;
          cRow[e] = d;
        }
      }
    } else if (lane < nr) {
      dscale[grp] = S;
    }
    // Forward layers, K − 1 down to 0 (their states rebuilt from R).
    layersBackward<false, S1>(aRow, cRow, tab, gsum, K, Ppad, Pb, lane, nr);
    __syncwarp();
    // W ⊙ α: stage 1 Σ W·d(W⊙α) per channel; stage 2 dW = d(W⊙α)·α.
    if (S1) {
      float w[kMaxColBlocks][kRows];  // all loads of the strip in flight together
#pragma unroll
      for (int cb = 0; cb < kMaxColBlocks; cb++)
        loadColumn(w[cb], W, wdt, base, I, nr, cb * 32 + lane, cb * 32 + lane < gs);
#pragma unroll
      for (int cb = 0; cb < kMaxColBlocks; cb++) {
        int i = cb * 32 + lane;
        if (i < gs) {
          float acc = a1[cb];
#pragma unroll
          for (int r = 0; r < kRows; r++)
            if (r < nr) acc += w[cb][r] * C[r * stride + i];
          a1[cb] = acc;
        }
      }
    } else {
      for (int i = lane; i - lane < gs; i += 32) {
        if (i >= gs) continue;
        float a = al[i];
#pragma unroll 8
        for (int r = 0; r < nr; r++) stf(dW, dwdt, base + (size_t)r * I + i, C[r * stride + i] * a);
      }
    }
    __syncwarp();  // every lane is done with the planes before the next strip overwrites them
  }
  if (S1) blockSums(a1, a2, A, all, warpFloats, partTheta, partA1, partA2, I, K, gs, g, Ppad,
                    lane, warps);
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

struct StripGeom {
  int Ppad = 0, warps = 0;
  size_t smem = 0;
};

// Warps per block that keep the most warps of kernel resident per SM within the device's shared memory (1 KiB
// reserved per block) and registers; warpFloats: a warp's floats beyond the table. warps = 0 where not even one warp
// fits.
StripGeom stripGeometry(const void* kernel, int K, int gs, size_t warpFloats) {
  int dev = 0, perSm = 0, perBlock = 0, regsPerSm = 0;
  checkCuda(cudaGetDevice(&dev), "cudaGetDevice");
  checkCuda(cudaDeviceGetAttribute(&perSm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, dev), "cudaDeviceGetAttribute");
  checkCuda(cudaDeviceGetAttribute(&perBlock, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev), "cudaDeviceGetAttribute");
  checkCuda(cudaDeviceGetAttribute(&regsPerSm, cudaDevAttrMaxRegistersPerMultiprocessor, dev), "cudaDeviceGetAttribute");
  cudaFuncAttributes fa;
  checkCuda(cudaFuncGetAttributes(&fa, kernel), "cudaFuncGetAttributes");
  // Registers are allocated per warp in units of 256.
  int regsPerWarp = std::max(256, (fa.numRegs * 32 + 255) / 256 * 256);
  int cap = std::min(kMaxResidentWarps, regsPerSm / regsPerWarp);
  int maxWarps = std::min({kMaxWarps, cap, fa.maxThreadsPerBlock / 32});
  StripGeom geo;
  geo.Ppad = (gs / 2 + kSlotAlign - 1) / kSlotAlign * kSlotAlign;
  size_t tab = tableBytes(K, geo.Ppad);
  int best = 0;
  for (int w = 1; w <= maxWarps; w++) {
    size_t smem = tab + (size_t)w * warpFloats * 4;
    if (smem > (size_t)perBlock) break;
    int blocks = std::min((int)((size_t)perSm / (smem + 1024)), cap / w);
    if (blocks * w > best) {
      best = blocks * w;
      geo.warps = w;
      geo.smem = smem;
    }
  }
  return geo;
}

size_t planeFloats(int gs) { return (size_t)kRows * (gs + 1); }

}  // namespace

bool paroFusedSupported(int I, int K, int gs) {
  return gs >= kParoFusedMinGroup && gs <= kParoFusedMaxGroup && gs % 2 == 0 && I > 0 && I % gs == 0 && K >= 1 &&
         K <= kParoFusedMaxK;
}

void paroTransformK(const void* W, int wdt, const float* alpha, const int* pairs, const float* theta,
                    const float* pScale, const float* pZpf, void* out, int odt, float* gScale, float* gZpf, int O,
                    int I, int K, int gs, int qmax, void* resid, int rdt, int* extremes) {
  if (!paroFusedSupported(I, K, gs)) throw ArgError("paroTransform: unsupported groupSize or K (2..128 even, 1..16)");
  if (!pScale != !pZpf) throw ArgError("paroTransform: scale and zpf go together");
  if (!pScale && (!gScale || !gZpf)) throw ArgError("paroTransform: stage 1 needs the grid outputs");
  if (extremes && (pScale || !resid)) throw ArgError("paroTransform: extremes come with the residual, in stage 1");
  if (O <= 0) return;
  bool withResid = resid != nullptr;
  const void* kernel = withResid ? (const void*)paroFusedFwdKernel<true> : (const void*)paroFusedFwdKernel<false>;
  StripGeom geo = stripGeometry(kernel, K, gs, planeFloats(gs));
  if (geo.warps == 0) throw ArgError("paroTransform: the group does not fit in shared memory");
  setFusedSmem(kernel, geo.smem);
  // kStripsPerWarp strips per warp, so that a warp's prefetch of its next strip has one to fetch.
  int strips = (O + kRows - 1) / kRows;
  int perBlock = geo.warps * kStripsPerWarp;
  dim3 grid((unsigned)(I / gs), (unsigned)std::min((strips + perBlock - 1) / perBlock, 65535));
  if (withResid)
    paroFusedFwdKernel<true><<<grid, geo.warps * 32, geo.smem, stream()>>>(
        W, wdt, alpha, pairs, theta, pScale, pZpf, out, odt, gScale, gZpf, O, I, K, gs, qmax, geo.Ppad, resid, rdt,
        extremes);
  else
    paroFusedFwdKernel<false><<<grid, geo.warps * 32, geo.smem, stream()>>>(
        W, wdt, alpha, pairs, theta, pScale, pZpf, out, odt, gScale, gZpf, O, I, K, gs, qmax, geo.Ppad, nullptr, 0,
        nullptr);
  checkLaunch("paroTransform");
}

void paroTransformBwdK(const void* dWhat, int ddt, const void* W, int wdt, const float* alpha, const int* pairs,
                       const float* theta, const float* scale, const float* zpf, int stage, float* dtheta,
                       float* dalpha, void* dW, int dwdt, float* dscale, int O, int I, int K, int gs, int qmax) {
  if (!paroFusedSupported(I, K, gs))
    throw ArgError("paroTransformBackward: unsupported groupSize or K (2..128 even, 1..16)");
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
  int Ppad = (gs / 2 + kSlotAlign - 1) / kSlotAlign * kSlotAlign;
  size_t warpFloats = stage == 1 ? 3 * planeFloats(gs) + (size_t)K * Ppad : 2 * planeFloats(gs);
  const void* kernel = stage == 1 ? (const void*)paroFusedBwdKernel<true> : (const void*)paroFusedBwdKernel<false>;
  StripGeom geo = stripGeometry(kernel, K, gs, warpFloats);
  if (geo.warps == 0) throw ArgError("paroTransformBackward: the group does not fit in shared memory");
  int G = I / gs;
  int strips = (O + kRows - 1) / kRows;
  if (stage == 2) {
    int stripsPerBlock = geo.warps * kStripsPerWarp;
    dim3 grid((unsigned)G, (unsigned)((strips + stripsPerBlock - 1) / stripsPerBlock));
    setFusedSmem((const void*)paroFusedBwdKernel<false>, geo.smem);
    paroFusedBwdKernel<false><<<grid, geo.warps * 32, geo.smem, stream()>>>(
        dWhat, ddt, W, wdt, alpha, pairs, theta, scale, zpf, dW, dwdt, dscale, nullptr, nullptr, nullptr, O, I, K, gs,
        qmax, geo.Ppad, stripsPerBlock);
    checkLaunch("paroTransformBackward(stage 2)");
    return;
  }
  // Row chunks per group: at most kMaxChunksPerGroup, whole strips per warp and at least kStripsPerWarp each; a
  // shape-only choice, so the sum order is fixed.
  int stripsPerChunk = (strips + kMaxChunksPerGroup - 1) / kMaxChunksPerGroup;
  stripsPerChunk = std::max((stripsPerChunk + geo.warps - 1) / geo.warps, kStripsPerWarp) * geo.warps;
  int chunks = (strips + stripsPerChunk - 1) / stripsPerChunk;
  Scratch partTheta((size_t)chunks * nTheta * sizeof(float));
  Scratch partA((size_t)chunks * 2 * I * sizeof(float));
  float* partA1 = partA.as<float>();
  float* partA2 = partA1 + (size_t)chunks * I;
  dim3 grid((unsigned)G, (unsigned)chunks);
  setFusedSmem((const void*)paroFusedBwdKernel<true>, geo.smem);
  paroFusedBwdKernel<true><<<grid, geo.warps * 32, geo.smem, stream()>>>(
      dWhat, ddt, W, wdt, alpha, pairs, theta, scale, zpf, nullptr, dwdt, nullptr, partTheta.as<float>(), partA1,
      partA2, O, I, K, gs, qmax, geo.Ppad, stripsPerChunk);
  checkLaunch("paroTransformBackward(stage 1)");
  size_t n = nTheta + (size_t)I;
  paroFusedReduceKernel<<<gridFor(n, 256), 256, 0, stream()>>>(partTheta.as<float>(), partA1, partA2, alpha,
                                                               (size_t)chunks, nTheta, (size_t)I, dtheta, dalpha);
  checkLaunch("paroTransformBackward.reduce");
}

}  // namespace paro
