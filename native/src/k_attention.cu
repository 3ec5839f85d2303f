// Flash-style GQA attention, forward and backward, on bf16 tensor cores (f32 accumulation): no T×T matrix in device
// memory, online softmax, the visible keys of query i are [0, e1) ∪ [s2, e2) (causal with qOffset, full/prefix, DFlash
// block mask). Backward: dQ by query tiles and dK/dV by key tiles, each accumulated in registers in a fixed order
// (deterministic, no atomics; version 6's dQ excepted). A scalar f32 kernel covers other head sizes.
// Six versions of the tensor-core kernels (attnVersion picks; PARO_ATTN_KERNEL=v1|v2|v3|v4|v4p|v5|v6 forces): version 1
// (mma.sync m16n8k16), 16 query rows per warp; version 2 (mma.sync), 32 rows per warp (half the shared-memory and L2
// traffic per FLOP) with dK/dV per query head; version 3 (head dim 128 on sm_90a: H100, H200), Hopper's warpgroup MMA
// (wgmma.cuh) with operands in swizzled shared memory, the forward's softmax overlapping the tensor cores; version 4,
// version 3 whose forward and dK/dV kernels take their tiles from the TMA unit (tma.cuh) with per-tile barriers
// instead of a CTA-wide one (the default since run 29: forward 1.55–1.62× version 3, dK/dV 1.08×), reading V, Q and
// dO in place as MN-major operands (no transposed copies) and overlapping each dK/dV item's element step with the
// previous item's products, and (v4p) the forward's two warpgroups ping-ponging on the tensor cores (no faster than
// v4 in run 29); version 5, version 4 with a persistent forward and dQ kernel (one CTA per SM, the next work item's
// tiles loading under the current one's last products; the dQ kernel's tiles by TMA); version 6, version 5 with dQ
// computed inside the dK/dV kernel (five products instead of seven; f32 atomics). Versions 3 and 4 share the
// cp.async dQ kernel; every dQ kernel reads K in place and runs a tile's element step beside the previous tile's dQ
// product.
// test/attention-emu.test.ts runs them all under a host emulation of ldmatrix/mma/wgmma/cp.async/TMA against a
// reference.
// Measured slower on an H100 on 2026-12-07 and removed: a variant with separate dK and dV kernels (run 15), one whose
// dK/dV kernel held each warp's K and V fragments in registers (v2r, run 18: 0.83–0.86× of v2; at the 255-register
// limit it could not also take the full-item shortcut of itemProb), and version 3 with unswizzled operands (runs 27–28:
// 0.74–0.78× of v2's forward) or without the asynchronous schedule (1.0×).
#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>

#include "common.cuh"
#include "ops.h"
#include "runtime.h"
#include "tma.cuh"
#include "wgmma.cuh"

namespace paro {
namespace {

typedef __nv_bfloat16 bf16;
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// ---- visibility ----
struct Vis {
  int e1, s2, e2;  // visible keys: [0, e1) ∪ [s2, e2)
};

__device__ __forceinline__ Vis rowVis(const AttnMask& m, int b, int i, int tq, int tk) {
  Vis v{0, 0, 0};
  if (i < 0 || i >= tq) return v;
  if (m.kind == MASK_CAUSAL) {
    int off = m.qOffsets ? m.qOffsets[b] : m.qOffset;  // per-entry offsets (batched decoding) or one for all
    v.e1 = min(tk, max(0, off + i + 1));
  } else if (m.kind == MASK_FULL) {
    v.e1 = tk;
  } else {
    int n = i / m.blockSize;
    int idx = b * m.nBlocks + n;
    if (m.keep[idx]) {
      v.e1 = max(0, min(min(m.anchors[idx], m.ctxLen), tk));  // context strictly before the anchor
      v.s2 = m.ctxLen + n * m.blockSize;
      v.e2 = min(tk, v.s2 + m.blockSize);
      if (v.e2 < v.s2) v.e2 = v.s2;
    }
  }
  return v;
}

__device__ __forceinline__ bool isVisible(const Vis& v, int j) { return j < v.e1 || (j >= v.s2 && j < v.e2); }

__device__ __forceinline__ bool allVisible(const Vis& v, int j0, int j1) {
  return j1 <= v.e1 || (j0 >= v.s2 && j1 <= v.e2);
}

__device__ __forceinline__ bool anyVisible(const Vis& v, int j0, int j1) {
  return j0 < v.e1 || (max(j0, v.s2) < min(j1, v.e2));
}

// ---- tensor-core helpers ----
__device__ __forceinline__ uint32_t smemAddr(const void* p) { return (uint32_t)__cvta_generic_to_shared(p); }

__device__ __forceinline__ void ldsm4(uint32_t r[4], const bf16* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smemAddr(p)));
}

__device__ __forceinline__ void ldsm4t(uint32_t r[4], const bf16* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smemAddr(p)));
}

__device__ __forceinline__ void mma(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}

// A operand (16×16) at rows r0.., cols c0.. of a row-major tile with row stride st.
__device__ __forceinline__ void ldA(uint32_t a[4], const bf16* tile, int st, int r0, int c0) {
  int lane = threadIdx.x % 32;
  ldsm4(a, tile + (r0 + (lane % 16)) * st + c0 + (lane / 16) * 8);
}

// B operands of two n8 tiles (n0, n0+8) for one k16 step, where B[k][n] = tile[n][k] (tile rows are n).
__device__ __forceinline__ void ldB_nt(uint32_t b[4], const bf16* tile, int st, int n0, int k0) {
  int lane = threadIdx.x % 32;
  ldsm4(b, tile + (n0 + (lane % 8) + (lane / 16) * 8) * st + k0 + ((lane / 8) % 2) * 8);
}

// B operands of two n8 tiles (n0, n0+8) for one k16 step, where B[k][n] = tile[k][n] (tile rows are k).
__device__ __forceinline__ void ldB_nn(uint32_t b[4], const bf16* tile, int st, int k0, int n0) {
  int lane = threadIdx.x % 32;
  ldsm4t(b, tile + (k0 + (lane % 8) + ((lane / 8) % 2) * 8) * st + n0 + (lane / 16) * 8);
}

// Version-2 kernels address ldmatrix as (one base per tile) + (compile-time offset): ptxas folds the offset into the
// instruction, whereas loop-invariant addresses (the Q fragments) would otherwise be hoisted by the compiler into
// one live register per fragment (16+ registers in a kernel at the 255 limit). `opaque` hides a base from hoisting.
__device__ __forceinline__ uint32_t opaque(uint32_t x) {
  asm volatile("" : "+r"(x));
  return x;
}
__device__ __forceinline__ void ldsm4a(uint32_t r[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void ldsm4ta(uint32_t r[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
// The lane parts (in elements) of the ldA, ldB_nt and ldB_nn addresses; the rest is (r0·st + c0) etc., per call.
__device__ __forceinline__ int laneA(int st) {
  const int lane = threadIdx.x % 32;
  return (lane % 16) * st + (lane / 16) * 8;
}
__device__ __forceinline__ int laneBnt(int st) {
  const int lane = threadIdx.x % 32;
  return ((lane % 8) + (lane / 16) * 8) * st + ((lane / 8) % 2) * 8;
}
__device__ __forceinline__ int laneBnn(int st) {
  const int lane = threadIdx.x % 32;
  return ((lane % 8) + ((lane / 8) % 2) * 8) * st + (lane / 16) * 8;
}

// Accumulators of n8 tiles 2kk and 2kk+1 (16 rows × 16 columns) as the A operand of the next product.
__device__ __forceinline__ void accToA(uint32_t a[4], const float c0[4], const float c1[4]) {
  a[0] = pack2(c0[0], c0[1]);
  a[1] = pack2(c0[2], c0[3]);
  a[2] = pack2(c1[0], c1[1]);
  a[3] = pack2(c1[2], c1[3]);
}

// dst = src for arrays of A fragments (the register copies ptxas may rename away).
template <int N>
__device__ __forceinline__ void copyFrags(uint32_t (&dst)[N][4], const uint32_t (&src)[N][4]) {
#pragma unroll
  for (int i = 0; i < N; i++) dst[i][0] = src[i][0], dst[i][1] = src[i][1], dst[i][2] = src[i][2], dst[i][3] = src[i][3];
}

// Copy `rows` rows of D bf16 (16-byte chunks) into a padded shared tile; rows at or past nValid are zeros.
template <int D>
__device__ __forceinline__ void loadTile(bf16* dst, const bf16* src, size_t rowStride, int rows, int nValid) {
  constexpr int CH = D / 8, ST = D + 8;
  for (int c = threadIdx.x; c < rows * CH; c += blockDim.x) {
    int r = c / CH, cc = c % CH;
    uint4 val = make_uint4(0, 0, 0, 0);
    if (r < nValid) val = *reinterpret_cast<const uint4*>(src + (size_t)r * rowStride + cc * 8);
    *reinterpret_cast<uint4*>(dst + r * ST + cc * 8) = val;
  }
}

// Asynchronous 16-byte copies global -> shared (sm_80 cp.async); an invalid chunk is filled with zeros.
__device__ __forceinline__ void cpAsync16(bf16* dst, const bf16* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smemAddr(dst)), "l"(src), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cpAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cpAsyncWait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

// As loadTile, asynchronously: complete after cpAsyncWait and a barrier. src row 0 must exist (nValid ≥ 1).
template <int D>
__device__ __forceinline__ void loadTileAsync(bf16* dst, const bf16* src, size_t rowStride, int rows, int nValid) {
  constexpr int CH = D / 8, ST = D + 8;
  for (int c = threadIdx.x; c < rows * CH; c += blockDim.x) {
    int r = c / CH, cc = c % CH;
    bool ok = r < nValid;
    cpAsync16(dst + r * ST + cc * 8, src + (size_t)(ok ? r : 0) * rowStride + cc * 8, ok);
  }
}

// Key-tile range of a query tile: tiles [0, n1) then [t2a, t2b).
struct TileRange {
  int n1, t2a, t2b;
  __device__ int count() const { return n1 + max(0, t2b - t2a); }
  __device__ int tile(int n) const { return n < n1 ? n : t2a + (n - n1); }
};

// Every thread passes the visibility of one or more rows; thread 0's shared result is the union's tile range.
__device__ TileRange blockTileRange(int* sh, const Vis* rows, int nRows, int BC) {
  if (threadIdx.x == 0) {
    sh[0] = 0;
    sh[1] = INT_MAX;
    sh[2] = 0;
  }
  __syncthreads();
  for (int r = 0; r < nRows; r++) {
    atomicMax(&sh[0], rows[r].e1);
    if (rows[r].e2 > rows[r].s2) {
      atomicMin(&sh[1], rows[r].s2);
      atomicMax(&sh[2], rows[r].e2);
    }
  }
  __syncthreads();
  TileRange t;
  t.n1 = (sh[0] + BC - 1) / BC;
  if (sh[2] > 0) {
    t.t2a = max(t.n1, sh[1] / BC);
    t.t2b = (sh[2] + BC - 1) / BC;
  } else {
    t.t2a = t.t2b = 0;
  }
  return t;
}

// The dK/dV kernels' work list: the query tiles of BQ rows with a row that sees a key of [j0, j1), ascending, into
// list (shared memory, one int per tile); returns their count. Every thread calls it (it holds two barriers).
template <int BQ>
__device__ __forceinline__ int visibleQueryTiles(int* list, int* count, const AttnMask& m, int b, int j0, int j1,
                                                 const AttnDims& d) {
  const int nQt = (d.tq + BQ - 1) / BQ;
  for (int t = threadIdx.x; t < nQt; t += blockDim.x) {
    int seen = 0;
    for (int r = 0; r < BQ && !seen; r++) seen = anyVisible(rowVis(m, b, t * BQ + r, d.tq, d.tk), j0, j1);
    list[t] = seen;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    int n = 0;
    for (int t = 0; t < nQt; t++)
      if (list[t]) list[n++] = t;
    *count = n;
  }
  __syncthreads();
  return *count;
}

// ---- pieces shared by the tensor-core kernels of versions 1 and 2 ----
// Force-inlined, with the arithmetic in the order the kernels had it in place: ptxas reports the same registers,
// spills and shared memory for every kernel as before they were factored out (checked on sm_80 and sm_90).

// Zeros in an accumulator array of n8 tiles (scores or outputs), so that each kernel states only which ones.
template <int N>
__device__ __forceinline__ void zeroAcc(float (&a)[N][4]) {
#pragma unroll
  for (int n = 0; n < N; n++) a[n][0] = a[n][1] = a[n][2] = a[n][3] = 0.0f;
}

// Queue key tile j (K and V rows j.., zeros past tk) into buffer buf of the double-buffered K/V tiles, as one copy
// group: the forward and dQ kernels of both versions stream their keys this way.
template <int D, int BC>
__device__ __forceinline__ void issueKeyTile(bf16* sKb, bf16* sVb, const bf16* kBase, const bf16* vBase,
                                             size_t kStride, int j, int buf, const AttnDims& d) {
  constexpr int ST = D + 8;
  loadTileAsync<D>(sKb + buf * BC * ST, kBase + (size_t)j * kStride, kStride, BC, d.tk - j);
  loadTileAsync<D>(sVb + buf * BC * ST, vBase + (size_t)j * kStride, kStride, BC, d.tk - j);
  cpAsyncCommit();
}

// Version 1's pipeline step (and dK/dV's): queue item it + 1 if there is one, then wait for item it and publish it
// (kAsyncProxy: to the warpgroup MMA's async proxy too, for versions 3 and 4).
template <bool kAsyncProxy = false, typename Issue>
__device__ __forceinline__ void issueNextAndWait(const Issue& issue, int it, int n) {
  if (it + 1 < n) {
    issue(it + 1);
    cpAsyncWait<1>();
  } else {
    cpAsyncWait<0>();
  }
  if (kAsyncProxy) fenceProxyAsync();
  __syncthreads();
}

// A warp is done reading a shared buffer in its fill `round` (0 for the first fill): lane 0 counts the release on
// `done`, and the result is true for lane 0 of the 8th warp to release it in that round (the CTAs of versions 4 to 6
// have 8 warps), which then refills the buffer (no producer warp, no blocking). Every lane of the warp calls it.
__device__ __forceinline__ bool lastWarpDone(int* done, int round) {
  __syncwarp();
  return threadIdx.x % 32 == 0 && atomicAdd(done, 1) == 8 * round + 7;
}

// Version 2's pipeline step: wait for item it and publish it (every warp is then done with item it - 1, whose buffer
// is free), then queue item it + 1 if there is one.
template <typename Issue>
__device__ __forceinline__ void waitAndIssueNext(const Issue& issue, int it, int n) {
  cpAsyncWait<0>();
  __syncthreads();
  if (it + 1 < n) issue(it + 1);
}

// Version 1, one k16 step: acc (16 rows × D) += a (16 rows × 16, step kk) · tile rows kk·16.. (B[k][n] = tile[k][n]).
template <int DT, int ST>
__device__ __forceinline__ void mmaStepNn(float (&acc)[DT][4], const uint32_t a[4], const bf16* tile, int kk) {
#pragma unroll
  for (int dp = 0; dp < DT / 2; dp++) {
    uint32_t b[4];
    ldB_nn(b, tile, ST, kk * 16, dp * 16);
    mma(acc[2 * dp], a, b[0], b[1]);
    mma(acc[2 * dp + 1], a, b[2], b[3]);
  }
}

// Version 1's dQ and the dK/dV kernel: two products at once over D (S and dP, or Sᵀ and dPᵀ), s = A·tileSᵀ and
// t = A2·tileTᵀ for the 16 rows of tileA and tileA2 from row r0, the two operands' fragments loaded side by side.
template <int D, int NT>
__device__ __forceinline__ void productsNtPair(float (&s)[NT][4], float (&t)[NT][4], const bf16* tileA,
                                               const bf16* tileA2, int r0, const bf16* tileS, const bf16* tileT) {
  constexpr int ST = D + 8;
  zeroAcc(s);
  zeroAcc(t);
#pragma unroll
  for (int kk = 0; kk < D / 16; kk++) {
    uint32_t a[4], a2[4];
    ldA(a, tileA, ST, r0, kk * 16);
    ldA(a2, tileA2, ST, r0, kk * 16);
#pragma unroll
    for (int np = 0; np < NT / 2; np++) {
      uint32_t sb[4], tb[4];
      ldB_nt(sb, tileS, ST, np * 16, kk * 16);
      ldB_nt(tb, tileT, ST, np * 16, kk * 16);
      mma(s[2 * np], a, sb[0], sb[1]);
      mma(s[2 * np + 1], a, sb[2], sb[3]);
      mma(t[2 * np], a2, tb[0], tb[1]);
      mma(t[2 * np + 1], a2, tb[2], tb[3]);
    }
  }
}

// Version 2, one k16 step for the warp's two m16 tiles: s += A·Bᵀ, A (32 rows) at aAddr, B's rows (NT n8 tiles) at
// bAddr; each B fragment pair (ldmatrix.x4: n8 tiles 2np and 2np + 1) feeds both m16 tiles.
template <int NT, int ST>
__device__ __forceinline__ void mmaStepNt2(float (&s)[2][NT][4], uint32_t aAddr, uint32_t bAddr, int kk) {
  uint32_t a[2][4];
  ldsm4a(a[0], aAddr + 2 * (kk * 16));            // ldA(tile, rows warp·32.., cols kk·16..)
  ldsm4a(a[1], aAddr + 2 * (16 * ST + kk * 16));  // ldA(tile, rows warp·32 + 16..)
#pragma unroll
  for (int np = 0; np < NT / 2; np++) {
    uint32_t b[4];
    ldsm4a(b, bAddr + 2 * (np * 16 * ST + kk * 16));  // ldB_nt(tile, n0 = np·16, k0 = kk·16)
    mma(s[0][2 * np], a[0], b[0], b[1]);
    mma(s[0][2 * np + 1], a[0], b[2], b[3]);
    mma(s[1][2 * np], a[1], b[0], b[1]);
    mma(s[1][2 * np + 1], a[1], b[2], b[3]);
  }
}

// Version 2, one k16 step: acc (two m16 tiles × D) += (a0; a1) · tile rows kk·16.. at bAddr (ldmatrix.x4.trans: n8
// tiles 2dp and 2dp + 1 of D), each fragment pair feeding both m16 tiles.
template <int DT, int ST>
__device__ __forceinline__ void mmaStepNn2(float (&acc)[2][DT][4], const uint32_t a0[4], const uint32_t a1[4],
                                           uint32_t bAddr, int kk) {
#pragma unroll
  for (int dp = 0; dp < DT / 2; dp++) {
    uint32_t b[4];
    ldsm4ta(b, bAddr + 2 * (kk * 16 * ST + dp * 16));  // ldB_nn(tile, k0 = kk·16, n0 = dp·16)
    mma(acc[0][2 * dp], a0, b[0], b[1]);
    mma(acc[0][2 * dp + 1], a0, b[2], b[3]);
    mma(acc[1][2 * dp], a1, b[0], b[1]);
    mma(acc[1][2 * dp + 1], a1, b[2], b[3]);
  }
}

// Version 2: whether any row of the warp (4 per thread, myVis as in the kernels) sees a key of [j0, j1).
__device__ __forceinline__ bool warpAnySees(const Vis* myVis, int j0, int j1) {
  bool anySee = false;
#pragma unroll
  for (int r = 0; r < 4; r++) anySee = anySee || anyVisible(myVis[(r >> 1) * 16 + (r & 1) * 8], j0, j1);
  return __any_sync(0xffffffffu, anySee);
}

// Version 2: whether every row of the warp sees every key of [j0, j1) (then no element needs masking).
__device__ __forceinline__ bool warpAllSee(const Vis* myVis, int j0, int j1) {
  bool allSee = true;
#pragma unroll
  for (int r = 0; r < 4; r++) allSee = allSee && allVisible(myVis[(r >> 1) * 16 + (r & 1) * 8], j0, j1);
  return __all_sync(0xffffffffu, allSee);
}

// 2^x by the special-function unit, subnormal results flushed to zero (exp2f without fast math adds a range fix-up
// around the same instruction); a softmax weight below 2^-126 of the row's maximum is 0 either way in bf16 P.
__device__ __forceinline__ float ex2Ftz(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// Online softmax, one row: the quad's maximum mx (the 4 lanes of a quad hold the row's columns) joins the running
// maximum m; returns the offset u of the exponents (0 for a row with nothing visible yet: exp2(-inf - 0) = 0, no NaN)
// and sets c, the factor that rescales l (here) and the row's outputs (the caller).
__device__ __forceinline__ float softmaxStep(float mx, float& m, float& l, float& c) {
  mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
  mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
  const float nm = fmaxf(m, mx);
  const float u = nm == -INFINITY ? 0.0f : nm;
  c = exp2f(m - u);
  m = nm;
  l *= c;
  return u;
}

// P = exp2(S − u) in place for rows A (elements 0, 1; uA) and B (2, 3; uB) of a score tile; lA, lB add the f32 values.
template <int NT>
__device__ __forceinline__ void expRows(float (&s)[NT][4], float uA, float uB, float& lA, float& lB) {
#pragma unroll
  for (int n = 0; n < NT; n++) {
    s[n][0] = exp2f(s[n][0] - uA);
    s[n][1] = exp2f(s[n][1] - uA);
    s[n][2] = exp2f(s[n][2] - uB);
    s[n][3] = exp2f(s[n][3] - uB);
    lA += s[n][0] + s[n][1];
    lB += s[n][2] + s[n][3];
  }
}

// Version 1 (dQ, and dK/dV of both versions): the probability of a score, exp2(s·scale·log2e − lse·log2e), 0 where
// the row is fully masked (l2 = −inf) or key j is not visible to it (tested only when l2 is finite, as written inline).
__device__ __forceinline__ float probOf(float s, float sl2, float l2, const Vis& v, int j) {
  return (l2 != -INFINITY && isVisible(v, j)) ? exp2f(s * sl2 - l2) : 0.0f;
}

// The dK/dV kernel's probOf for query column qc and key j of a work item: on a full item (every row sees every key
// of the CTA, every lse finite) the value without the tests, so the column's visibility is never read from shared
// memory; otherwise probOf's tests. Either way exp2(s·scale·log2e − lse·log2e) or 0, as probOf, as one FMA and one
// ex2Ftz (the forward's weights too: a weight below 2^-126 is 0; exp2f adds a range fix-up to every element).
__device__ __forceinline__ float itemProb(float s, float sl2, float l2, bool full, const int* e1, const int* s2,
                                          const int* e2, int qc, int j) {
  bool ok = full;
  if (!ok) ok = l2 != -INFINITY && isVisible(Vis{e1[qc], s2[qc], e2[qc]}, j);
  return ok ? ex2Ftz(fmaf(s, sl2, -l2)) : 0.0f;
}

// Version 1's output rows A and B (accumulator halves) times fA, fB, at (rowBase + row)·stride + col0 + n·8 + 2·tig
// (+1), as dtype dt; rows at or past nRows are not stored.
template <int DT>
__device__ __forceinline__ void storeRowsAB(void* out, int dt, const float (&acc)[DT][4], int rowA, int rowB,
                                            int nRows, size_t rowBase, size_t stride, int col0, int tig, float fA,
                                            float fB) {
#pragma unroll
  for (int n = 0; n < DT; n++) {
    const int col = col0 + n * 8 + tig * 2;
    if (rowA < nRows) {
      size_t o0 = (rowBase + rowA) * stride + col;
      stf(out, dt, o0, acc[n][0] * fA);
      stf(out, dt, o0 + 1, acc[n][1] * fA);
    }
    if (rowB < nRows) {
      size_t o0 = (rowBase + rowB) * stride + col;
      stf(out, dt, o0, acc[n][2] * fB);
      stf(out, dt, o0 + 1, acc[n][3] * fB);
    }
  }
}

// Version 2's output row (accumulator half `half` of one m16 tile) times f at rowOff + n·8 (+1): bf16 as one 4-byte
// store per column pair (rowOff + n·8 is even), other dtypes by element.
template <int DT>
__device__ __forceinline__ void storeRow2(void* out, int dt, const float (&acc)[DT][4], int half, size_t rowOff,
                                          float f) {
  bf16* ob = dt == DT_BF16 ? static_cast<bf16*>(out) : nullptr;
#pragma unroll
  for (int n = 0; n < DT; n++) {
    const float x0 = acc[n][half * 2] * f, x1 = acc[n][half * 2 + 1] * f;
    if (ob) {
      *reinterpret_cast<uint32_t*>(ob + rowOff + n * 8) = pack2(x0, x1);
    } else {
      stf(out, dt, rowOff + n * 8, x0);
      stf(out, dt, rowOff + n * 8 + 1, x1);
    }
  }
}

// ---- forward ----
template <int D>
__global__ void __launch_bounds__(128) attnFwdMma(const bf16* __restrict__ q, const bf16* __restrict__ k,
                                                  const bf16* __restrict__ v, void* out, int odt, float* lse,
                                                  AttnDims d, AttnMask m) {
  constexpr int BR = 64, BC = 64, ST = D + 8, NT = BC / 8, DT = D / 8;
  extern __shared__ __align__(16) unsigned char smRaw[];
  bf16* sQ = reinterpret_cast<bf16*>(smRaw);
  bf16* sKb = sQ + BR * ST;      // two K tiles (double buffer)
  bf16* sVb = sKb + 2 * BC * ST;  // two V tiles
  __shared__ int sRange[3];

  const int qt = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int hk = h / (d.heads / d.kvHeads);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, tig = lane % 4;
  const int i0 = qt * BR;
  const size_t qStride = (size_t)d.heads * D, kStride = (size_t)d.kvHeads * D;
  const bf16* qBase = q + ((size_t)b * d.tq + i0) * qStride + (size_t)h * D;
  const bf16* kBase = k + (size_t)b * d.kvStride * kStride + (size_t)hk * D;
  const bf16* vBase = v + (size_t)b * d.kvStride * kStride + (size_t)hk * D;

  loadTile<D>(sQ, qBase, qStride, BR, d.tq - i0);
  const int rowA = i0 + warp * 16 + g, rowB = rowA + 8;
  Vis vis[2] = {rowVis(m, b, rowA, d.tq, d.tk), rowVis(m, b, rowB, d.tq, d.tk)};
  TileRange tr = blockTileRange(sRange, vis, 2, BC);  // includes the barrier that publishes sQ

  uint32_t qf[D / 16][4];
#pragma unroll
  for (int kk = 0; kk < D / 16; kk++) ldA(qf[kk], sQ, ST, warp * 16, kk * 16);

  float o[DT][4];
  zeroAcc(o);
  float mA = -INFINITY, mB = -INFINITY, lA = 0.0f, lB = 0.0f;
  const float sl2 = d.scale * kLog2e;

  const int nTiles = tr.count();
  // K/V tiles are double-buffered: tile it+1 is in flight while tile it is used.
  auto issue = [&](int it) { issueKeyTile<D, BC>(sKb, sVb, kBase, vBase, kStride, tr.tile(it) * BC, it & 1, d); };
  if (nTiles > 0) issue(0);
  for (int it = 0; it < nTiles; it++) {
    const int j0 = tr.tile(it) * BC;
    issueNextAndWait(issue, it, nTiles);
    const bf16* sK = sKb + (it & 1) * BC * ST;
    const bf16* sV = sVb + (it & 1) * BC * ST;

    float s[NT][4];
    zeroAcc(s);
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
#pragma unroll
      for (int np = 0; np < NT / 2; np++) {
        uint32_t kb[4];
        ldB_nt(kb, sK, ST, np * 16, kk * 16);
        mma(s[2 * np], qf[kk], kb[0], kb[1]);
        mma(s[2 * np + 1], qf[kk], kb[2], kb[3]);
      }
    }

    const bool full = __all_sync(0xffffffffu, allVisible(vis[0], j0, j0 + BC) && allVisible(vis[1], j0, j0 + BC));
    float mxA = -INFINITY, mxB = -INFINITY;
#pragma unroll
    for (int n = 0; n < NT; n++) {
#pragma unroll
      for (int e = 0; e < 4; e++) {
        float val = s[n][e] * sl2;
        if (!full && !isVisible(vis[e / 2], j0 + n * 8 + tig * 2 + (e & 1))) val = -INFINITY;
        s[n][e] = val;
      }
      mxA = fmaxf(mxA, fmaxf(s[n][0], s[n][1]));
      mxB = fmaxf(mxB, fmaxf(s[n][2], s[n][3]));
    }
    float cA, cB;
    const float uA = softmaxStep(mxA, mA, lA, cA);
    const float uB = softmaxStep(mxB, mB, lB, cB);
#pragma unroll
    for (int n = 0; n < DT; n++) {
      o[n][0] *= cA;
      o[n][1] *= cA;
      o[n][2] *= cB;
      o[n][3] *= cB;
    }
    expRows(s, uA, uB, lA, lB);
#pragma unroll
    for (int kk = 0; kk < BC / 16; kk++) {
      uint32_t pa[4];
      accToA(pa, s[2 * kk], s[2 * kk + 1]);
      mmaStepNn<DT, ST>(o, pa, sV, kk);
    }
    __syncthreads();  // this buffer is refilled two tiles later
  }

  lA += __shfl_xor_sync(0xffffffffu, lA, 1);
  lA += __shfl_xor_sync(0xffffffffu, lA, 2);
  lB += __shfl_xor_sync(0xffffffffu, lB, 1);
  lB += __shfl_xor_sync(0xffffffffu, lB, 2);
  // l is 0 only for a fully masked row; a NaN l (NaN scores, which fmaxf skips) must reach the output and lse.
  const float iA = lA != 0.0f ? 1.0f / lA : 0.0f, iB = lB != 0.0f ? 1.0f / lB : 0.0f;
  storeRowsAB(out, odt, o, rowA, rowB, d.tq, (size_t)b * d.tq, qStride, h * D, tig, iA, iB);
  if (tig == 0) {
    if (rowA < d.tq) lse[((size_t)b * d.heads + h) * d.tq + rowA] = lA != 0.0f ? (mA + log2f(lA)) * kLn2 : -INFINITY;
    if (rowB < d.tq) lse[((size_t)b * d.heads + h) * d.tq + rowB] = lB != 0.0f ? (mB + log2f(lB)) * kLn2 : -INFINITY;
  }
}

// ---- forward, version 2 (the default above 64 queries: attnVersion) ----
// Each warp owns 32 query rows, two m16 tiles (BR = 128 per CTA of 4 warps): every K or V fragment that ldmatrix
// brings from shared memory feeds four mma instead of two. Version 1 (16 rows per warp) issues one ldmatrix.x4
// (512 B, ~4 clk of the SM's 128 B/clk) per two mma (~1.5 clk each per SM), so it is bound by shared-memory bandwidth
// on Hopper; here it is 1 ldmatrix per 2.7 mma (D 128, BC 32) or 3.2 (D 64, BC 64). The Q fragments are re-read
// from shared memory at each k16 step (holding them, 64 registers at D 128, beside 128 output accumulators would
// exceed 255 registers). BC (keys per tile) is 32 at D 128 for the same reason (fwdMma2), 64 at D 64.
// Per row the arithmetic is version 1's (k order, masking, online rescaling per key tile, exp2 with the scale
// folded in); with the same BC (D 64) the results equal attnFwdMma's for finite inputs up to the compiler's fused
// multiply-add choices (the extra key tiles a 128-row CTA visits are fully masked for such a row and add exact
// zeros); at D 128 the rescaling happens every 32 keys instead of 64, a rounding-level difference.
template <int D, int BC>
__global__ void __launch_bounds__(128, 2) attnFwdMma2(const bf16* __restrict__ q, const bf16* __restrict__ k,
                                                      const bf16* __restrict__ v, void* out, int odt, float* lse,
                                                      AttnDims d, AttnMask m) {
  constexpr int BR = 128, ST = D + 8, NT = BC / 8, DT = D / 8, KT = BC / 16;
  extern __shared__ __align__(16) unsigned char smRaw[];
  bf16* sQ = reinterpret_cast<bf16*>(smRaw);  // [BR][ST]
  bf16* sKb = sQ + BR * ST;                     // two K tiles [BC][ST] (double buffer)
  bf16* sVb = sKb + 2 * BC * ST;                // two V tiles [BC][ST]
  __shared__ int sRange[3];
  __shared__ Vis sVis[BR];  // row visibility, read per tile from shared memory: 12 registers fewer (no spills)

  // Grid (heads, query tiles, batch), query tiles in reverse: the CTAs launched first are the last query tiles, which
  // see the most keys under a causal mask, so the short ones fill the tail of the grid instead of the long ones.
  const int h = blockIdx.x, qt = gridDim.y - 1 - blockIdx.y, b = blockIdx.z;
  const int hk = h / (d.heads / d.kvHeads);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, tig = lane % 4;
  const int i0 = qt * BR;
  const size_t qStride = (size_t)d.heads * D, kStride = (size_t)d.kvHeads * D;
  const bf16* qBase = q + ((size_t)b * d.tq + i0) * qStride + (size_t)h * D;
  const bf16* kBase = k + (size_t)b * d.kvStride * kStride + (size_t)hk * D;
  const bf16* vBase = v + (size_t)b * d.kvStride * kStride + (size_t)hk * D;

  // This thread's 4 rows, r = 2·mt + half: m16 tile mt of the warp, accumulator half (row g or g + 8).
  const int rowBase = i0 + warp * 32 + g;
  Vis vis[4];
#pragma unroll
  for (int r = 0; r < 4; r++) {
    vis[r] = rowVis(m, b, rowBase + (r >> 1) * 16 + (r & 1) * 8, d.tq, d.tk);
    if (tig == 0) sVis[warp * 32 + (r >> 1) * 16 + (r & 1) * 8 + g] = vis[r];
  }
  const TileRange tr = blockTileRange(sRange, vis, 4, BC);  // its barriers also publish sVis
  const Vis* myVis = sVis + warp * 32 + g;  // row r of this thread: myVis[(r >> 1) * 16 + (r & 1) * 8]
  // Shared byte addresses of this lane's ldmatrix rows: Q (the warp's 32 rows), K and V of buffer 0.
  const uint32_t qAddr0 = smemAddr(sQ) + 2 * (warp * 32 * ST + laneA(ST));
  const uint32_t kAddr0 = smemAddr(sKb) + 2 * laneBnt(ST);
  const uint32_t vAddr0 = smemAddr(sVb) + 2 * laneBnn(ST);

  float o[2][DT][4];
  zeroAcc(o[0]);
  zeroAcc(o[1]);
  float mr[4], lr[4];
#pragma unroll
  for (int r = 0; r < 4; r++) {
    mr[r] = -INFINITY;
    lr[r] = 0.0f;
  }
  const float sl2 = d.scale * kLog2e;

  const int nTiles = tr.count();
  auto issue = [&](int it) { issueKeyTile<D, BC>(sKb, sVb, kBase, vBase, kStride, tr.tile(it) * BC, it & 1, d); };
  // Q travels in the same copy group as the first K/V tile (row i0 exists: i0 < tq); rows past tq are zeros.
  if (nTiles > 0) {
    loadTileAsync<D>(sQ, qBase, qStride, BR, d.tq - i0);
    issue(0);
  }
  for (int it = 0; it < nTiles; it++) {
    const int j0 = tr.tile(it) * BC;
    // One barrier per tile: after it, tile it (and Q) is visible to all, and every warp has finished tile it - 1,
    // whose buffer the prefetch of tile it + 1 then refills while tile it is computed.
    waitAndIssueNext(issue, it, nTiles);
    // A warp none of whose 32 rows sees this tile (the causal diagonal of a 128-row CTA: up to 3 tiles for the first
    // warp) skips it: it would leave the running maxima, sums and outputs exactly as they are.
    if (!warpAnySees(myVis, j0, j0 + BC)) continue;
    const uint32_t qA = opaque(qAddr0);
    const uint32_t kA = kAddr0 + (it & 1) * (BC * ST * 2), vA = vAddr0 + (it & 1) * (BC * ST * 2);

    // S = Q·Kᵀ for the warp's 32 rows × BC keys: per k16 step the two Q fragments, then each K fragment pair
    // (ldmatrix.x4: n8 tiles 2np and 2np + 1) feeds both m16 tiles.
    float s[2][NT][4];
    zeroAcc(s[0]);
    zeroAcc(s[1]);
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) mmaStepNt2<NT, ST>(s, qA, kA, kk);

    // Scale into the exp2 domain and mask (skipped when every row of the warp sees the whole tile).
    const bool full = warpAllSee(myVis, j0, j0 + BC);
    // Row by row, so that one row's visibility (3 registers) is live at a time.
    float mx[4];
#pragma unroll
    for (int r = 0; r < 4; r++) {
      const int mt = r >> 1, e0 = (r & 1) * 2;
      const Vis vr = myVis[mt * 16 + (r & 1) * 8];
      mx[r] = -INFINITY;
#pragma unroll
      for (int n = 0; n < NT; n++) {
#pragma unroll
        for (int e = e0; e < e0 + 2; e++) {
          float val = s[mt][n][e] * sl2;
          if (!full && !isVisible(vr, j0 + n * 8 + tig * 2 + (e & 1))) val = -INFINITY;
          s[mt][n][e] = val;
        }
        mx[r] = fmaxf(mx[r], fmaxf(s[mt][n][e0], s[mt][n][e0 + 1]));
      }
    }
    // Online softmax per row.
    float u[4], c[4];
    bool rescale = false;
#pragma unroll
    for (int r = 0; r < 4; r++) {
      u[r] = softmaxStep(mx[r], mr[r], lr[r], c[r]);
      rescale = rescale || c[r] != 1.0f;
    }
    // Once the running maxima settle (most key tiles of a long row) every factor is exactly 1: the 64 (D 64) or 128
    // multiplications of the output accumulators would change nothing, so the warp skips them.
    if (__any_sync(0xffffffffu, rescale)) {
#pragma unroll
      for (int r = 0; r < 4; r++) {
#pragma unroll
        for (int n = 0; n < DT; n++) {
          o[r >> 1][n][(r & 1) * 2] *= c[r];
          o[r >> 1][n][(r & 1) * 2 + 1] *= c[r];
        }
      }
    }
    // P = exp2(S - m) as bf16 A fragments (16 rows × 16 keys per m16 tile and k16 step); l sums the f32 values.
    uint32_t pa[2][KT][4];
#pragma unroll
    for (int mt = 0; mt < 2; mt++) {
      expRows(s[mt], u[mt * 2], u[mt * 2 + 1], lr[mt * 2], lr[mt * 2 + 1]);
#pragma unroll
      for (int kk = 0; kk < KT; kk++) accToA(pa[mt][kk], s[mt][2 * kk], s[mt][2 * kk + 1]);
    }
    // O += P·V.
#pragma unroll
    for (int kk = 0; kk < KT; kk++) mmaStepNn2<DT, ST>(o, pa[0][kk], pa[1][kk], vA, kk);
  }

#pragma unroll
  for (int r = 0; r < 4; r++) {
    lr[r] += __shfl_xor_sync(0xffffffffu, lr[r], 1);
    lr[r] += __shfl_xor_sync(0xffffffffu, lr[r], 2);
  }
#pragma unroll
  for (int r = 0; r < 4; r++) {
    const int row = rowBase + (r >> 1) * 16 + (r & 1) * 8;
    if (row >= d.tq) continue;
    // l is 0 only for a fully masked row; a NaN l (NaN scores, which fmaxf skips) must reach the output and lse.
    const float inv = lr[r] != 0.0f ? 1.0f / lr[r] : 0.0f;
    const size_t rowOff = ((size_t)b * d.tq + row) * qStride + (size_t)h * D + tig * 2;
    storeRow2(out, odt, o[r >> 1], r & 1, rowOff, inv);
    if (tig == 0)
      lse[((size_t)b * d.heads + h) * d.tq + row] = lr[r] != 0.0f ? (mr[r] + log2f(lr[r])) * kLn2 : -INFINITY;
  }
}

// ---- forward, version 3: Hopper warpgroup MMA (sm_90a, head dim 128) ----
// Two warpgroups per CTA, 64 query rows each (128 per CTA), 128 keys per tile: S = Q·Kᵀ (64 × 128 per warpgroup) and
// O += P·V as wgmma.mma_async, 8 steps of k16 each, with the online softmax of version 2 on the accumulators in
// between. Q, K and Vᵀ tiles (128 rows × 128 elements) are K-major wgmma operands in shared memory (wgmma.cuh) in the
// 128-byte swizzle layout: two columns of 16 atoms of 8 rows × 64 elements, chunk c of row r at (c/8)·16384 +
// (r/8)·1024 + (r%8)·128 + ((c%8) ^ (r%8))·16. Measured on an H100 (2026-12-07, runs 27–28): unswizzled core
// matrices (row r, chunk c at (r/8)·2048 + c·128 + (r%8)·16) made the same kernel 0.74–0.78× of version 2, the
// swizzle 1.0×, and the asynchronous schedule of attnFwdWg 1.14–1.24×. V enters transposed (Vᵀ [batch, kvHeads, 128,
// ldT], keys contiguous, zeros past tk: attnTransposeHeads) so that P·V's B operand is K-major too. A warpgroup none
// of whose rows sees a tile (hull of its rows' visible ranges) skips its products; rows and masking as version 2
// (rowVis, the same lse).
constexpr int kWgRows = 128, kWgKeys = 128, kWgD = 128;
constexpr uint32_t kWgTileBytes = 128 * kWgD * 2;  // one 128-row tile: 32 KB
// Q, two K tiles and three Vᵀ tiles: 192 KB, and 1 KB to align the tiles to the swizzle atoms.
constexpr size_t kWgSmem = (size_t)6 * kWgTileBytes + 1024;

// Byte offset of chunk c (8 elements) of row r in a tile of ROWS rows (see above: 64-element atom columns of ROWS/8
// atoms each).
template <int ROWS = 128>
__device__ __forceinline__ uint32_t wgChunkOffset(int r, int c) {
  return (c >> 3) * (ROWS * 128) + (r >> 3) * 1024 + (r & 7) * 128 + (((c & 7) ^ (r & 7)) << 4);
}

// The descriptor of k16 step kk (elements 16·kk..) of the rows of a tile of ROWS rows, from byte address rows0 (that
// of a row that is a multiple of 8): within an atom column a step is 32 bytes, then the next column.
template <int ROWS = 128>
__device__ __forceinline__ uint64_t wgStepDesc(uint32_t rows0, int kk) {
  return wgDesc(rows0 + (kk >> 2) * (ROWS * 128) + (kk & 3) * 32, 16, 1024, kWgSwizzle128);
}

// ROWS rows × 8·CH elements (CH 16-byte chunks) from src (row r at src + r·rowStride) into a tile at dst; rows at or
// past nValid are zeros. Thread t copies chunks t, t + 256, ...: CH consecutive threads read one row, and each 8 of
// them fill one 128-byte row of an atom (all banks, no conflict).
template <int ROWS = 128, int CH = 16>
__device__ __forceinline__ void loadTileWg(bf16* dst, const bf16* src, size_t rowStride, int nValid) {
#pragma unroll
  for (int i = 0; i < ROWS * CH / 256; i++) {
    const int idx = threadIdx.x + 256 * i;
    const int row = idx / CH, chunk = idx % CH;
    const bool ok = row < nValid;
    cpAsync16(dst + wgChunkOffset<ROWS>(row, chunk) / 2, src + (size_t)(ok ? row : 0) * rowStride + chunk * 8, ok);
  }
}

// Per-head transpose for version 3: dst [batch, heads, 128, ldT] from src [batch·rowsPerBatch, heads·128] (rows
// t < nValid of each batch entry; zeros for t in nValid..ldT: a zero probability times a NaN of a spare cache row
// would poison a product). Vᵀ for the forward's P·V, Qᵀ and dOᵀ for the dK/dV products. One 32 × 32 tile of
// (rows, channels) per block of 256 threads.
__global__ void attnTransposeHeads(const bf16* __restrict__ src, bf16* __restrict__ dst, int rowsPerBatch, int nValid,
                                   int heads, int ldT) {
  constexpr int D = kWgD;
  __shared__ bf16 t[32][33];
  const int tx = threadIdx.x % 32, ty = threadIdx.x / 32;
  const int j0 = blockIdx.x * 32, c0 = (blockIdx.y % (D / 32)) * 32, hh = blockIdx.y / (D / 32), b = blockIdx.z;
  const size_t stride = (size_t)heads * D;
  for (int r = ty; r < 32; r += 8) {
    const int j = j0 + r;
    t[r][tx] = j < nValid ? src[((size_t)b * rowsPerBatch + j) * stride + (size_t)hh * D + c0 + tx] : bf16{};
  }
  __syncthreads();
  for (int r = ty; r < 32; r += 8) dst[(((size_t)b * heads + hh) * D + c0 + r) * ldT + j0 + tx] = t[tx][r];
}

// A version-3 CTA's key-tile range (blockTileRange over its threads' rows) with the hull of each warpgroup's rows'
// visible keys (largest e1, smallest s2, largest e2: wgHull, through part[wg]); sees(it, BC) tells whether any row of
// the warpgroup sees a key of tile it (uniform over the warpgroup, whose products are collective). Every thread calls
// wgTileRange (two CTA barriers, then its warpgroup's named barrier 3 + wg).
struct WgTiles {
  TileRange tr;
  int e1, s2, e2;
  __device__ bool sees(int it, int BC) const {
    const int j0 = tr.tile(it) * BC;
    return j0 < e1 || max(j0, s2) < min(j0 + BC, e2);
  }
};
// The hull of a warpgroup's rows' visible keys (largest e1; smallest s2 and largest e2 over rows with a second range)
// into t's e1, s2, e2: shuffles within each warp, then the warpgroup's 4 warps through part (this item's slot: the
// caller alternates two) and named barrier `bar` over the warpgroup's 128 threads. No CTA-wide barrier, so that the
// warpgroups keep drifting apart from item to item.
__device__ __forceinline__ void wgHull(WgTiles& t, const Vis (&vis)[2], int (*part)[3], int bar) {
  int e1 = max(vis[0].e1, vis[1].e1), s2 = INT_MAX, e2 = 0;
#pragma unroll
  for (int r = 0; r < 2; r++) {
    if (vis[r].e2 > vis[r].s2) {
      s2 = min(s2, vis[r].s2);
      e2 = max(e2, vis[r].e2);
    }
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    e1 = max(e1, __shfl_xor_sync(0xffffffffu, e1, o));
    s2 = min(s2, __shfl_xor_sync(0xffffffffu, s2, o));
    e2 = max(e2, __shfl_xor_sync(0xffffffffu, e2, o));
  }
  const int warp = (threadIdx.x / 32) % 4;
  if (threadIdx.x % 32 == 0) {
    part[warp][0] = e1;
    part[warp][1] = s2;
    part[warp][2] = e2;
  }
  namedBarSync(bar, 128);
  t.e1 = max(max(part[0][0], part[1][0]), max(part[2][0], part[3][0]));
  t.s2 = min(min(part[0][1], part[1][1]), min(part[2][1], part[3][1]));
  t.e2 = max(max(part[0][2], part[1][2]), max(part[2][2], part[3][2]));
}

__device__ __forceinline__ WgTiles wgTileRange(int* sRange, int (*part)[4][3], const Vis (&vis)[2], int wg, int BC) {
  WgTiles t;
  t.tr = blockTileRange(sRange, vis, 2, BC);
  wgHull(t, vis, part[wg], 3 + wg);
  return t;
}

// Version 3's softmax step on one tile's scores s (the warpgroup accumulator of S = Q·Kᵀ for keys j0..j0+127):
// scale into the exp2 domain, mask (skipped where a row sees the whole tile), fold the row maxima into mr (lr
// rescaled), P = exp2(S − max) in place with lr adding it; c gets the factors the outputs must be rescaled by.
__device__ __forceinline__ void wgSoftmax(float (&s)[16][4], const Vis (&vis)[2], int j0, float sl2, int tig,
                                          float (&mr)[2], float (&lr)[2], float (&c)[2]) {
  float mx[2];
#pragma unroll
  for (int r = 0; r < 2; r++) {
    const bool full = allVisible(vis[r], j0, j0 + kWgKeys);
    mx[r] = -INFINITY;
#pragma unroll
    for (int n = 0; n < 16; n++) {
#pragma unroll
      for (int e = 2 * r; e < 2 * r + 2; e++) {
        float val = s[n][e] * sl2;
        if (!full && !isVisible(vis[r], j0 + n * 8 + tig * 2 + (e & 1))) val = -INFINITY;
        s[n][e] = val;
      }
      mx[r] = fmaxf(mx[r], fmaxf(s[n][2 * r], s[n][2 * r + 1]));
    }
  }
  float u[2];
#pragma unroll
  for (int r = 0; r < 2; r++) u[r] = softmaxStep(mx[r], mr[r], lr[r], c[r]);
  expRows(s, u[0], u[1], lr[0], lr[1]);
}

// O rows A, B times c (skipped once the maxima settle: factors of exactly 1), then P as bf16 A fragments.
__device__ __forceinline__ void wgRescaleAndPack(float (&o)[16][4], const float (&c)[2], uint32_t (&pa)[8][4],
                                                 const float (&s)[16][4]) {
  if (c[0] != 1.0f || c[1] != 1.0f) {
#pragma unroll
    for (int n = 0; n < 16; n++) {
      o[n][0] *= c[0];
      o[n][1] *= c[0];
      o[n][2] *= c[1];
      o[n][3] *= c[1];
    }
  }
#pragma unroll
  for (int kk = 0; kk < 8; kk++) accToA(pa[kk], s[2 * kk], s[2 * kk + 1]);
}

// A version-3/4 forward's outputs: this thread's rows rowA, rowA + 8 of O (divided by the quad-summed l; 0 for a
// fully masked row, whose l is 0, as version 2) and their lse.
__device__ __forceinline__ void wgStoreOut(const float (&o)[16][4], const float (&mr)[2], float (&lr)[2], void* out,
                                           int odt, float* lse, const AttnDims& d, int b, int h, int rowA, int tig) {
#pragma unroll
  for (int r = 0; r < 2; r++) {
    lr[r] += __shfl_xor_sync(0xffffffffu, lr[r], 1);
    lr[r] += __shfl_xor_sync(0xffffffffu, lr[r], 2);
  }
#pragma unroll
  for (int r = 0; r < 2; r++) {
    const int row = rowA + 8 * r;
    if (row >= d.tq) continue;
    const float inv = lr[r] != 0.0f ? 1.0f / lr[r] : 0.0f;
    const size_t rowOff = ((size_t)b * d.tq + row) * ((size_t)d.heads * kWgD) + (size_t)h * kWgD + tig * 2;
    storeRow2(out, odt, o, r, rowOff, inv);
    if (tig == 0)
      lse[((size_t)b * d.heads + h) * d.tq + row] = lr[r] != 0.0f ? (mr[r] + log2f(lr[r])) * kLn2 : -INFINITY;
  }
}

// The asynchronous schedule: S of tile it + 1 and P·V of tile it are issued together, S first, so that the softmax of
// tile it + 1 runs on the CUDA cores while the tensor cores still compute P·V of tile it; the outputs are rescaled once
// that product is complete. Vᵀ tiles therefore live for two iterations: three Vᵀ buffers, two K buffers.
__global__ void __launch_bounds__(256, 1) attnFwdWg(const bf16* __restrict__ q, const bf16* __restrict__ k,
                                                    const bf16* __restrict__ vt, int ldT, void* out, int odt,
                                                    float* lse, AttnDims d, AttnMask m) {
#if !defined(__CUDA_ARCH__) || defined(__CUDA_ARCH_FEAT_SM90_ALL)
  constexpr int D = kWgD, BC = kWgKeys, NV = 3;
  constexpr int TILE = kWgTileBytes / 2;  // elements of one tile
  extern __shared__ __align__(16) unsigned char smRaw[];
  // The swizzle XORs absolute address bits: tiles start on 1024-byte boundaries.
  bf16* sQ = reinterpret_cast<bf16*>(smRaw + ((1024 - smemAddr(smRaw) % 1024) % 1024));
  bf16* sK = sQ + TILE;      // two K tiles
  bf16* sV = sK + 2 * TILE;  // three Vᵀ tiles (rows: channels; K: keys)
  __shared__ int sRange[3];
  __shared__ int sPart[2][4][3];  // wgHull's per-warp values: [warpgroup][warp]

  const int h = blockIdx.x, qt = gridDim.y - 1 - blockIdx.y, b = blockIdx.z;  // last query tiles first (see v2)
  const int hk = h / (d.heads / d.kvHeads);
  const int wg = threadIdx.x / 128, warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32, g = lane / 4,
            tig = lane % 4;
  const int i0 = qt * kWgRows;
  const size_t qStride = (size_t)d.heads * D, kStride = (size_t)d.kvHeads * D;
  const bf16* qBase = q + ((size_t)b * d.tq + i0) * qStride + (size_t)h * D;
  const bf16* kBase = k + (size_t)b * d.kvStride * kStride + (size_t)hk * D;
  const bf16* vBase = vt + ((size_t)b * d.kvHeads + hk) * D * ldT;

  // This thread's rows: A (accumulator elements 0, 1) and B = A + 8 (elements 2, 3).
  const int rowA = i0 + wg * 64 + warp * 16 + g;
  const Vis vis[2] = {rowVis(m, b, rowA, d.tq, d.tk), rowVis(m, b, rowA + 8, d.tq, d.tk)};
  const WgTiles wt = wgTileRange(sRange, sPart, vis, wg, BC);
  const TileRange tr = wt.tr;
  auto sees = [&](int it) { return wt.sees(it, BC); };

  float o[16][4];
  zeroAcc(o);
  float mr[2] = {-INFINITY, -INFINITY}, lr[2] = {0.0f, 0.0f};
  const float sl2 = d.scale * kLog2e;
  const uint32_t qAddr = smemAddr(sQ) + wgChunkOffset(wg * 64, 0);  // this warpgroup's 64 rows
  const uint32_t kAddr = smemAddr(sK), vAddr = smemAddr(sV);
  auto kTile = [&](int it) { return kAddr + (it & 1) * kWgTileBytes; };
  auto vTile = [&](int it) { return vAddr + (it % NV) * kWgTileBytes; };
  // S = Q·Kᵀ of tile it into s: 8 k16 steps over the head dimension, committed as one group.
  auto issueS = [&](float (&s)[16][4], int it) {
    wgFence();
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) wgmmaSS(s, wgStepDesc(qAddr, kk), wgStepDesc(kTile(it), kk), kk);
    wgCommit();
  };
  // O += P·V of tile it: 8 k16 steps over its keys, B = Vᵀ rows (channels) × keys, committed as one group.
  auto issuePV = [&](const uint32_t (&pa)[8][4], int it) {
    wgFence();
#pragma unroll
    for (int kk = 0; kk < BC / 16; kk++) wgmmaRS(o, pa[kk], wgStepDesc(vTile(it), kk));
    wgCommit();
  };

  const int nTiles = tr.count();
  auto issue = [&](int it) {
    const int j = tr.tile(it) * BC;
    loadTileWg(sK + (it & 1) * TILE, kBase + (size_t)j * kStride, kStride, d.tk - j);
    loadTileWg(sV + (it % NV) * TILE, vBase + j, ldT, D);
    cpAsyncCommit();
  };
  if (nTiles > 0) {
    loadTileWg(sQ, qBase, qStride, d.tq - i0);
    issue(0);
  }
  float s[16][4], c[2];
  uint32_t pa[8][4];
  // Prologue: tile 0's scores and P; tile 1 in flight.
  bool act = false;
  if (nTiles > 0) {
    issueNextAndWait<true>(issue, 0, nTiles);
    act = sees(0);
    if (act) {
      issueS(s, 0);
      wgWait<0>();
      wgFenceAcc(s);
      wgSoftmax(s, vis, tr.tile(0) * BC, sl2, tig, mr, lr, c);
      wgRescaleAndPack(o, c, pa, s);
    }
  }
  // Iteration it: P of tile it is in pa (if act); tile it + 1 is the copy group in flight.
  for (int it = 0; it < nTiles; it++) {
    bool actNext = false;
    if (it + 1 < nTiles) {
      // Tile it + 1 arrives; every thread is past iteration it − 1, so tile it − 1's Vᵀ buffer and tile it's K
      // buffer (its S is done) take tile it + 2.
      cpAsyncWait<0>();
      fenceProxyAsync();
      __syncthreads();
      if (it + 2 < nTiles) issue(it + 2);
      actNext = sees(it + 1);
    }
    // One straight path per case: ptxas serialises the products if a path could read s before its S completed.
    if (act && actNext) {
      issueS(s, it + 1);
      issuePV(pa, it);
      wgWait<1>();  // S of tile it + 1 (the older group) is complete; P·V of tile it may still run
      wgFenceAcc(s);
      wgSoftmax(s, vis, tr.tile(it + 1) * BC, sl2, tig, mr, lr, c);
      wgWait<0>();
    } else if (actNext) {
      issueS(s, it + 1);
      wgWait<0>();
      wgFenceAcc(s);
      wgSoftmax(s, vis, tr.tile(it + 1) * BC, sl2, tig, mr, lr, c);
    } else if (act) {
      issuePV(pa, it);
      wgWait<0>();
    }
    wgFenceAcc(o);
    wgFenceFrag(pa);  // pa stays allocated until P·V has read it
    if (actNext) wgRescaleAndPack(o, c, pa, s);
    wgFenceAcc(o);  // the rescaled outputs are written before the next P·V reads them
    act = actNext;
  }

  wgStoreOut(o, mr, lr, out, odt, lse, d, b, h, rowA, tig);
#endif
}


// The maximum (kMax) or sum of this thread's 32 values of row r (0: elements 0, 1; 1: elements 2, 3) of a 64 × 128
// tile, as a tree of depth 5 rather than a chain of 32 dependent instructions (the weights wait for the maximum).
template <bool kMax>
__device__ __forceinline__ float rowTree(const float (&s)[16][4], int r) {
  float t[16];
#pragma unroll
  for (int n = 0; n < 16; n++) t[n] = kMax ? fmaxf(s[n][2 * r], s[n][2 * r + 1]) : s[n][2 * r] + s[n][2 * r + 1];
#pragma unroll
  for (int n = 0; n < 8; n++) t[n] = kMax ? fmaxf(t[n], t[n + 8]) : t[n] + t[n + 8];
#pragma unroll
  for (int n = 0; n < 4; n++) t[n] = kMax ? fmaxf(t[n], t[n + 4]) : t[n] + t[n + 4];
#pragma unroll
  for (int n = 0; n < 2; n++) t[n] = kMax ? fmaxf(t[n], t[n + 2]) : t[n] + t[n + 2];
  return kMax ? fmaxf(t[0], t[1]) : t[0] + t[1];
}

// Version 4's softmax step: as wgSoftmax, with fewer instructions per score (the kernels are issue-bound: run 17's
// Nsight): the row maxima are taken on the raw scores (sl2 > 0 commutes with the maximum) and each weight is one
// FMA and one ex2Ftz, exp2(s·sl2 − u), instead of a scaling pass, a subtraction and exp2f.
__device__ __forceinline__ void wgSoftmaxFma(float (&s)[16][4], const Vis (&vis)[2], int j0, float sl2, int tig,
                                             float (&mr)[2], float (&lr)[2], float (&c)[2]) {
  float mx[2];
#pragma unroll
  for (int r = 0; r < 2; r++) {
    if (!allVisible(vis[r], j0, j0 + kWgKeys)) {
#pragma unroll
      for (int n = 0; n < 16; n++)
#pragma unroll
        for (int e = 2 * r; e < 2 * r + 2; e++)
          if (!isVisible(vis[r], j0 + n * 8 + tig * 2 + (e & 1))) s[n][e] = -INFINITY;
    }
    mx[r] = rowTree<true>(s, r);
  }
  float u[2];
#pragma unroll
  for (int r = 0; r < 2; r++) u[r] = softmaxStep(mx[r] * sl2, mr[r], lr[r], c[r]);
#pragma unroll
  for (int n = 0; n < 16; n++)
#pragma unroll
    for (int e = 0; e < 4; e++) s[n][e] = ex2Ftz(fmaf(s[n][e], sl2, -u[e >> 1]));
  lr[0] += rowTree<false>(s, 0);
  lr[1] += rowTree<false>(s, 1);
}

// ---- forward, versions 4 and 5: version 3's warpgroup products with tiles loaded by the TMA unit (sm_90a, d 128) ----
// Version 3 has every thread copy its share of each K and Vᵀ tile (cp.async, 16 per thread per tile) and the whole CTA
// meet at a barrier per tile, so the two warpgroups run in lockstep and their softmaxes coincide. Here one thread asks
// the TMA unit (tma.cuh) for whole tiles, three stages deep, each stage's K and V tile counted against its own
// mbarrier; a warpgroup waits only for the tile it is about to read, so the two drift apart and one's softmax can run
// beside the other's products. A buffer is refilled once all 8 warps have finished reading it: each warp's lane 0
// counts its release on the buffer's counter, and the warp whose count completes a round issues the copy of the tile
// NS later (no producer warp, no blocking). Every warpgroup waits for every tile, including those its rows do not
// see, so that no warp can release a buffer a round early. V is read in place as the MN-major B operand of P·V
// (wgDescMn; version 3 reads a transposed copy). Products, softmax, masking and outputs as version 3.
// A CTA takes one work item per round of gridDim.x items (QueryItems: heaviest causal query tiles first over the whole
// batch, snake order over the CTAs): version 4 launches one CTA per item, version 5 (persistent) one per SM. The K/V
// stages run on over the CTA's items as one stream of tiles, and the Q tile of the next item is loaded once every
// warp has issued its last S product of the current one, so that a CTA's next item starts on tiles already in shared
// memory while the current item's last products and output stores run (version 4: a fresh CTA's first copies wait in
// DRAM latency, its last stores beside no product). The tile range of an item is known to any thread from the mask
// alone (itemTileRange; no barrier), so the thread that refills a buffer can reach into the next items.
constexpr int kTmaStages = 3;
// Q, three K and three V tiles (224 KB) and 1 KB to align them to the swizzle atoms.
constexpr size_t kTmaSmem = (size_t)(1 + 2 * kTmaStages) * kWgTileBytes + 1024;

// Work item w of the query-tile kernels of versions 4 and 5 (forward; version 5's dQ): query head h, 128-row query
// tile qt, batch entry b; the query tiles with the most keys under a causal mask (the last) come first, over every
// head and batch entry.
struct QItem {
  int h, qt, b;
};
__host__ __device__ __forceinline__ int queryItemCount(const AttnDims& d) {
  return ((d.tq + kWgRows - 1) / kWgRows) * d.heads * d.batch;
}
__device__ __forceinline__ QItem queryItem(int w, const AttnDims& d) {
  const int nQt = (d.tq + kWgRows - 1) / kWgRows, hb = d.heads * d.batch, rem = w % hb;
  return {rem % d.heads, nQt - 1 - w / hb, rem / d.heads};
}

// The key tiles of BC keys that the query rows i0..i0+127 (those below tq) of batch entry b may see, from the mask
// alone: exact for the causal and full masks (a row's e1 grows with the row), a superset for the DFlash mask (every
// row's context ends by ctxLen; the block keys of the tile's blocks). Tiles no row of a warpgroup sees are skipped by
// its hull (WgTiles::sees); the others are masked per element as always.
__device__ __forceinline__ TileRange itemTileRange(const AttnMask& m, int b, int i0, const AttnDims& d, int BC) {
  TileRange t{0, 0, 0};
  const int last = min(i0 + kWgRows, d.tq) - 1;
  if (last < i0) return t;
  if (m.kind != MASK_DFLASH) {
    t.n1 = (rowVis(m, b, last, d.tq, d.tk).e1 + BC - 1) / BC;
    return t;
  }
  const int e1 = max(0, min(m.ctxLen, d.tk));
  const int s2 = m.ctxLen + (i0 / m.blockSize) * m.blockSize;
  const int e2 = min(d.tk, m.ctxLen + (last / m.blockSize + 1) * m.blockSize);
  t.n1 = (e1 + BC - 1) / BC;
  if (e2 > s2) {
    t.t2a = max(t.n1, s2 / BC);
    t.t2b = (e2 + BC - 1) / BC;
  }
  return t;
}

// A CTA's work items: one per round of gridDim.x items, in snake order (forward in even rounds, backward in odd ones,
// so that the CTA with the heaviest item of one round has the lightest of the next: a static balance), and their key
// tiles of bc keys as one stream (itemTileRange), which any thread can walk without a barrier.
struct QueryItems {
  const AttnDims& d;
  const AttnMask& m;
  int bc;
  __device__ int index(int n) const {
    return n * (int)gridDim.x + ((n & 1) ? (int)(gridDim.x - 1 - blockIdx.x) : (int)blockIdx.x);
  }
  __device__ bool exists(int n) const { return index(n) < queryItemCount(d); }  // only the last round is partial
  __device__ QItem item(int n) const { return queryItem(index(n), d); }
  __device__ TileRange range(const QItem& it) const { return itemTileRange(m, it.b, it.qt * kWgRows, d, bc); }
  // From item n (its first tile is tile `first` of the stream, its range r) on to the item holding stream tile gt,
  // updating n, first and r; false past the last item.
  __device__ bool locate(int gt, int& n, int& first, TileRange& r) const {
    while (gt >= first + r.count()) {
      first += r.count();
      if (!exists(++n)) return false;
      r = range(item(n));
    }
    return true;
  }
};

template <bool kPingPong>
__global__ void __launch_bounds__(256, 1) attnFwdTma(const __grid_constant__ CUtensorMap qMap,
                                                     const __grid_constant__ CUtensorMap kMap,
                                                     const __grid_constant__ CUtensorMap vMap, void* out, int odt,
                                                     float* lse, AttnDims d, AttnMask m) {
#if !defined(__CUDA_ARCH__) || defined(__CUDA_ARCH_FEAT_SM90_ALL)
  constexpr int D = kWgD, BC = kWgKeys, NS = kTmaStages;
  constexpr int TILE = kWgTileBytes / 2, HALF = TILE / 2;  // elements of a tile, of one 64-column atom column
  extern __shared__ __align__(16) unsigned char smRaw[];
  bf16* sQ = reinterpret_cast<bf16*>(smRaw + ((1024 - smemAddr(smRaw) % 1024) % 1024));
  bf16* sK = sQ + TILE;        // NS K tiles
  bf16* sV = sK + NS * TILE;   // NS V tiles
  __shared__ uint64_t qFull, kFull[NS], vFull[NS];  // mbarriers: a tile has landed
  __shared__ int qDone, kDone[NS], vDone[NS];       // warps done with a buffer, counted over its rounds
  __shared__ int sPart[2][2][4][3];                 // wgHull's per-warp values: [item parity][warpgroup][warp]

  const int wg = threadIdx.x / 128, warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32, g = lane / 4,
            tig = lane % 4;
  const QueryItems qi{d, m, BC};

  // Tile gt of the CTA's stream into buffer gt % NS (two boxes of 64 channels × 128 keys), found by walking on from
  // item n, whose first tile is tile `first` of the stream and whose range is r; nothing past the last item. One
  // thread issues it.
  auto load = [&](bf16* buf, const CUtensorMap* map, uint64_t* full, int gt, int n, int first, TileRange r) {
    if (!qi.locate(gt, n, first, r)) return;
    const QItem it = qi.item(n);
    const int s = gt % NS, j = r.tile(gt - first) * BC, hk = it.h / (d.heads / d.kvHeads);
    mbarExpectTx(&full[s], kWgTileBytes);
    tmaLoad4(buf + s * TILE, map, &full[s], 0, hk, j, it.b);
    tmaLoad4(buf + s * TILE + HALF, map, &full[s], 64, hk, j, it.b);
  };
  // Item n's Q tile (128 rows; rows past tq arrive as zeros).
  auto loadQ = [&](int n) {
    if (!qi.exists(n)) return;
    const QItem it = qi.item(n);
    mbarExpectTx(&qFull, kWgTileBytes);
    tmaLoad4(sQ, &qMap, &qFull, 0, it.h, it.qt * kWgRows, it.b);
    tmaLoad4(sQ + HALF, &qMap, &qFull, 64, it.h, it.qt * kWgRows, it.b);
  };
  if (threadIdx.x == 0) {
    mbarInit(&qFull, 1);
    for (int s = 0; s < NS; s++) {
      mbarInit(&kFull[s], 1);
      mbarInit(&vFull[s], 1);
      kDone[s] = vDone[s] = 0;
    }
    qDone = 0;
    mbarInitFence();
    tmaPrefetch(&qMap);
    tmaPrefetch(&kMap);
    tmaPrefetch(&vMap);
    if (qi.exists(0)) {
      const TileRange r0 = qi.range(qi.item(0));
      loadQ(0);
      for (int t = 0; t < NS; t++) {
        load(sK, &kMap, kFull, t, 0, 0, r0);
        load(sV, &vMap, vFull, t, 0, 0, r0);
      }
    }
  }
  __syncthreads();  // the mbarriers' initialisation, to every thread

  const float sl2 = d.scale * kLog2e;
  const uint32_t qAddr = smemAddr(sQ) + wgChunkOffset(wg * 64, 0);
  const uint32_t kAddr = smemAddr(sK), vAddr = smemAddr(sV);
  float o[16][4], s[16][4], c[2];
  uint32_t pa[8][4];
  int base = 0;  // the current item's first tile in the CTA's stream
  for (int n = 0; qi.exists(n); n++) {
    const QItem item = qi.item(n);
    const int h = item.h, b = item.b, i0 = item.qt * kWgRows;
    const int rowA = i0 + wg * 64 + warp * 16 + g;
    const Vis vis[2] = {rowVis(m, b, rowA, d.tq, d.tk), rowVis(m, b, rowA + 8, d.tq, d.tk)};
    WgTiles wt;
    wt.tr = qi.range(item);
    wgHull(wt, vis, sPart[n & 1][wg], 3 + wg);
    const TileRange tr = wt.tr;
    auto sees = [&](int it) { return wt.sees(it, BC); };
    const int nTiles = tr.count();

    // This warp is done with item tile t's K (or V) buffer: the 8th warp to say so for this round refills it with the
    // stream's tile NS later. Its last K tile also ends the item's reads of Q: the 8th warp done loads the next Q.
    auto releaseQ = [&] {
      if (lastWarpDone(&qDone, n)) loadQ(n + 1);
    };
    auto releaseK = [&](int t) {
      const int gt = base + t;
      if (lastWarpDone(&kDone[gt % NS], gt / NS)) load(sK, &kMap, kFull, gt + NS, n, base, tr);
      if (t == nTiles - 1) releaseQ();
    };
    auto releaseV = [&](int t) {
      const int gt = base + t;
      if (lastWarpDone(&vDone[gt % NS], gt / NS)) load(sV, &vMap, vFull, gt + NS, n, base, tr);
    };
    auto waitK = [&](int t) { mbarWait(&kFull[(base + t) % NS], (uint32_t)((base + t) / NS) & 1); };
    auto waitV = [&](int t) { mbarWait(&vFull[(base + t) % NS], (uint32_t)((base + t) / NS) & 1); };
    auto issueS = [&](float (&sc)[16][4], int it) {
      wgFence();
#pragma unroll
      for (int kk = 0; kk < D / 16; kk++)
        wgmmaSS(sc, wgStepDesc(qAddr, kk), wgStepDesc(kAddr + ((base + it) % NS) * kWgTileBytes, kk), kk);
      wgCommit();
    };
    // V read MN-major in place (B (n = channel, k = key) at row k): a k16 step is 16 rows (2048 bytes) on.
    auto issuePV = [&](const uint32_t (&p)[8][4], int it) {
      wgFence();
#pragma unroll
      for (int kk = 0; kk < BC / 16; kk++)
        wgmmaRS<1>(o, p[kk], wgDescMn(vAddr + ((base + it) % NS) * kWgTileBytes + kk * 2048, HALF * 2));
      wgCommit();
    };

    // Ping-pong (kPingPong, FlashAttention-3's warpgroup schedule): the two warpgroups take turns issuing their
    // products, named barrier 1 + wg marking this one's turn, so that one's softmax runs while the other's products
    // own the tensor cores. Warpgroup 1 opens warpgroup 0's first turn of an item; a warpgroup hands the turn over
    // after issuing, except warpgroup 1 after the item's last iteration (every arrival is consumed within the item).
    auto pingPongHandOver = [&](int it) {
      if (kPingPong && (wg == 0 || it + 1 < nTiles)) namedBarArrive(2 - wg, 256);
    };
    if (kPingPong && wg == 1 && nTiles > 0) namedBarArrive(1, 256);
    zeroAcc(o);
    float mr[2] = {-INFINITY, -INFINITY}, lr[2] = {0.0f, 0.0f};
    bool act = false;
    mbarWait(&qFull, (uint32_t)n & 1);  // every warp, so that the next Q is loaded only after this one has landed
    if (nTiles > 0) {
      waitK(0);
      act = sees(0);
      if (act) {
        issueS(s, 0);
        wgWait<0>();
        wgFenceAcc(s);
        releaseK(0);
        wgSoftmaxFma(s, vis, tr.tile(0) * BC, sl2, tig, mr, lr, c);
        wgRescaleAndPack(o, c, pa, s);
      } else {
        releaseK(0);
      }
    } else {
      releaseQ();
    }
    // Iteration it: P of tile it is in pa (if act); S of tile it + 1 and P·V of tile it are issued together (as v3).
    for (int it = 0; it < nTiles; it++) {
      const bool more = it + 1 < nTiles;
      bool actNext = false;
      if (more) {
        waitK(it + 1);
        actNext = sees(it + 1);
      }
      waitV(it);
      if (kPingPong) namedBarSync(1 + wg, 256);  // this warpgroup's turn on the tensor cores
      if (act && actNext) {
        issueS(s, it + 1);
        issuePV(pa, it);
        pingPongHandOver(it);
        wgWait<1>();
        wgFenceAcc(s);
        releaseK(it + 1);
        wgSoftmaxFma(s, vis, tr.tile(it + 1) * BC, sl2, tig, mr, lr, c);
        wgWait<0>();
        wgFenceAcc(o);
        releaseV(it);
      } else if (actNext) {
        releaseV(it);
        issueS(s, it + 1);
        pingPongHandOver(it);
        wgWait<0>();
        wgFenceAcc(s);
        releaseK(it + 1);
        wgSoftmaxFma(s, vis, tr.tile(it + 1) * BC, sl2, tig, mr, lr, c);
      } else if (act) {
        if (more) releaseK(it + 1);
        issuePV(pa, it);
        pingPongHandOver(it);
        wgWait<0>();
        wgFenceAcc(o);
        releaseV(it);
      } else {
        pingPongHandOver(it);
        if (more) releaseK(it + 1);
        releaseV(it);
      }
      wgFenceAcc(o);
      wgFenceFrag(pa);
      if (actNext) wgRescaleAndPack(o, c, pa, s);
      wgFenceAcc(o);
      act = actNext;
    }

    wgStoreOut(o, mr, lr, out, odt, lse, d, b, h, rowA, tig);
    base += nTiles;
  }
#endif
}

// ---- backward dK/dV, version 3: Hopper warpgroup MMA (sm_90a, head dim 128) ----
// One CTA per (128-key tile, KV head, batch), two warpgroups of 64 keys each; work items are (query head of the group,
// 64-query tile that sees a key of the CTA: visibleQueryTiles). Per item, with Sᵀ and dPᵀ
// (64 keys × 64 queries per warpgroup) as wgmma accumulators:
//   Sᵀ = K·Qᵀ, dPᵀ = V·dOᵀ          (A: the K or V rows, B: the Q or dO tile, K-major over the head dimension)
//   Pᵀ = exp2(Sᵀ·scale·log2e − lse·log2e), dSᵀ = Pᵀ ⊙ (dPᵀ − D)   (itemProb: masking skipped on full items)
//   dV += Pᵀ·dO, dK += dSᵀ·Q          (A: Pᵀ, dSᵀ from registers; B: dOᵀ, Qᵀ tiles, K-major over the queries)
// Q, dO (64 rows × 128) and Qᵀ, dOᵀ (128 channels × 64 queries; attnTransposeHeads) are double-buffered through
// cp.async, each item's row data (lse, D, visibility) published to shared memory with its copies. dK (× scale) and dV
// go straight to the outputs: each key belongs to one CTA, whose items run in a fixed order (deterministic).
constexpr int kWgBq = 64;  // queries per work item
constexpr uint32_t kWgItemTile = kWgBq * kWgD * 2;  // one 64 × 128 tile: 16 KB
// K and V (32 KB each) + two buffers of Q, dO, Qᵀ, dOᵀ (16 KB each): 192 KB, 1 KB of alignment; then the query-tile
// list (one int per 64-query tile).
constexpr size_t wgDkvSmem(int nQt) {
  return (size_t)2 * kWgTileBytes + 8 * (size_t)kWgItemTile + 1024 + (size_t)nQt * 4;
}

// Issues the two score-like products of a warpgroup (dK/dV items and dQ tiles, versions 3 and 4): x = A·Bᵀ and
// y = A'·Bᵀ', 64 × 64 each over the head dimension, A and A' the warpgroup's 64 rows of 128-row tiles (byte addresses
// xa, ya), B and B' 64-row tiles (xb, yb); the caller commits and waits.
__device__ __forceinline__ void wgIssuePair64(float (&x)[8][4], float (&y)[8][4], uint32_t xa, uint32_t xb, uint32_t ya,
                                              uint32_t yb) {
  wgFence();
#pragma unroll
  for (int kk = 0; kk < kWgD / 16; kk++) wgmmaSS64(x, wgStepDesc(xa, kk), wgStepDesc<64>(xb, kk), kk);
#pragma unroll
  for (int kk = 0; kk < kWgD / 16; kk++) wgmmaSS64(y, wgStepDesc(ya, kk), wgStepDesc<64>(yb, kk), kk);
}

// The B operand of k16 step kk of a product over the 64 rows of a 64 × 128 tile at byte address tile (Q, dO, K): read
// in place, MN-major (element (channel, row)): atom columns of 64 channels 8 KB apart, 16 rows (2048 bytes) a step.
__device__ __forceinline__ uint64_t wgRowsMnDesc(uint32_t tile, int kk) { return wgDescMn(tile + kk * 2048, 8192); }

// A dK/dV work item's element step (versions 3 and 4) from the warpgroup's Sᵀ (st) and dPᵀ (dpt): per element (key
// row, query column qc) Pᵀ = itemProb and dSᵀ = Pᵀ ⊙ (dPᵀ − D[qc]) from the item's row data (l2, D, e1, s2, e2 per
// query column), as the bf16 A fragments of the dV and dK products (pa, da). The accumulators are only read: a
// non-wgmma write to the accumulator registers of a product while another product is in flight (version 4 runs this
// step beside the previous item's dV/dK products) makes ptxas serialize every wgmma of the kernel (its C7515).
__device__ __forceinline__ void dkvFragments(uint32_t (&pa)[4][4], uint32_t (&da)[4][4], const float (&st)[8][4],
                                             const float (&dpt)[8][4], bool full, float sl2, const float* l2,
                                             const float* D, const int* e1, const int* s2, const int* e2, int keyA,
                                             int keyB, int tig) {
#pragma unroll
  for (int kk = 0; kk < 4; kk++) {
    float p[2][4], ds[2][4];  // n8 tiles 2·kk and 2·kk + 1
#pragma unroll
    for (int h = 0; h < 2; h++) {
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int n = 2 * kk + h, qc = n * 8 + tig * 2 + (e & 1);
        p[h][e] = itemProb(st[n][e], sl2, l2[qc], full, e1, s2, e2, qc, e < 2 ? keyA : keyB);
        ds[h][e] = p[h][e] * (dpt[n][e] - D[qc]);
      }
    }
    accToA(pa[kk], p[0], p[1]);
    accToA(da[kk], ds[0], ds[1]);
  }
}

// One dK/dV work item of a warpgroup of version 3: Sᵀ = K·Qᵀ and dPᵀ = V·dOᵀ from its 64 key rows (kRows, vRows) and
// the item's Q and dO tiles (itemAddr, + one tile), the element step, then dV += Pᵀ·dO and dK += dSᵀ·Q against the
// dOᵀ and Qᵀ tiles (itemAddr + 3, 2 tiles); complete on return.
__device__ __forceinline__ void dkvItem(float (&ak)[16][4], float (&av)[16][4], uint32_t kRows, uint32_t vRows,
                                        uint32_t itemAddr, bool full, float sl2, const float* l2, const float* D,
                                        const int* e1, const int* s2, const int* e2, int keyA, int keyB, int tig) {
  float st[8][4], dpt[8][4];
  wgIssuePair64(st, dpt, kRows, itemAddr, vRows, itemAddr + kWgItemTile);
  wgCommit();
  wgWait<0>();
  wgFenceAcc(st);
  wgFenceAcc(dpt);
  uint32_t pa[4][4], da[4][4];
  dkvFragments(pa, da, st, dpt, full, sl2, l2, D, e1, s2, e2, keyA, keyB, tig);
  wgFenceAcc(av);
  wgFenceAcc(ak);
  wgFence();
#pragma unroll
  for (int kk = 0; kk < kWgBq / 16; kk++) wgmmaRS(av, pa[kk], wgStepDesc(itemAddr + 3 * kWgItemTile, kk));
#pragma unroll
  for (int kk = 0; kk < kWgBq / 16; kk++) wgmmaRS(ak, da[kk], wgStepDesc(itemAddr + 2 * kWgItemTile, kk));
  wgCommit();
  wgWait<0>();
  wgFenceAcc(av);
  wgFenceAcc(ak);
  wgFenceFrag(pa);
  wgFenceFrag(da);
}

// dK (× scale) and dV of a warpgroup's key rows keyA, keyB (= keyA + 8) of KV head hk, batch entry b: the outputs.
__device__ __forceinline__ void storeDkv(const float (&ak)[16][4], const float (&av)[16][4], void* dk, int dkdt,
                                         void* dv, int dvdt, const AttnDims& d, int b, int hk, int keyA, int keyB,
                                         int tig) {
  const size_t kStride = (size_t)d.kvHeads * kWgD;
#pragma unroll
  for (int n = 0; n < 16; n++) {
    const int col = hk * kWgD + n * 8 + tig * 2;
#pragma unroll
    for (int r = 0; r < 2; r++) {
      const int key = r == 0 ? keyA : keyB;
      if (key >= d.tk) continue;
      const size_t o0 = ((size_t)b * d.kvStride + key) * kStride + col;
      stf(dk, dkdt, o0, ak[n][2 * r] * d.scale);
      stf(dk, dkdt, o0 + 1, ak[n][2 * r + 1] * d.scale);
      stf(dv, dvdt, o0, av[n][2 * r]);
      stf(dv, dvdt, o0 + 1, av[n][2 * r + 1]);
    }
  }
}

// Version 5's per-query-head dK/dV: a warpgroup's unscaled sums for query head h as f32 partials pk, pv [batch, heads,
// tk, 128] at its key rows keyA, keyB (attnDkvReduce adds them over the group and scales dK).
__device__ __forceinline__ void storeDkvPartial(const float (&ak)[16][4], const float (&av)[16][4], float* pk, float* pv,
                                                const AttnDims& d, int b, int h, int keyA, int keyB, int tig) {
#pragma unroll
  for (int r = 0; r < 2; r++) {
    const int key = r == 0 ? keyA : keyB;
    if (key >= d.tk) continue;
    const size_t row = (((size_t)b * d.heads + h) * d.tk + key) * kWgD + tig * 2;
#pragma unroll
    for (int n = 0; n < 16; n++) {
      *reinterpret_cast<float2*>(pk + row + n * 8) = make_float2(ak[n][2 * r], ak[n][2 * r + 1]);
      *reinterpret_cast<float2*>(pv + row + n * 8) = make_float2(av[n][2 * r], av[n][2 * r + 1]);
    }
  }
}

__global__ void __launch_bounds__(256, 1) attnBwdDkvWg(const bf16* __restrict__ q, const bf16* __restrict__ qT,
                                                       const bf16* __restrict__ dout, const bf16* __restrict__ doT,
                                                       const bf16* __restrict__ k, const bf16* __restrict__ v,
                                                       const float* __restrict__ lse, const float* __restrict__ Dv,
                                                       int ldT, void* dk, int dkdt, void* dv, int dvdt, AttnDims d,
                                                       AttnMask m) {
#if !defined(__CUDA_ARCH__) || defined(__CUDA_ARCH_FEAT_SM90_ALL)
  constexpr int D = kWgD, BK = kWgKeys, BQ = kWgBq;
  constexpr int TILE = kWgTileBytes / 2, ITEM = kWgItemTile / 2;  // elements
  extern __shared__ __align__(16) unsigned char smRaw[];
  bf16* sK = reinterpret_cast<bf16*>(smRaw + ((1024 - smemAddr(smRaw) % 1024) % 1024));  // swizzle atoms: aligned
  bf16* sV = sK + TILE;
  bf16* sItem = sV + TILE;  // buffer b: Q, dO, Qᵀ, dOᵀ at sItem + (4·b + 0..3)·ITEM
  int* sList = reinterpret_cast<int*>(sItem + 8 * ITEM);  // visible query tiles, ascending
  __shared__ float sL2[2][BQ], sD[2][BQ];
  __shared__ int sE1[2][BQ], sS2[2][BQ], sE2[2][BQ];
  __shared__ int sFull[2][2];  // per buffer and half of the item's rows: every row sees every key, finite lse
  __shared__ int sCount;

  const int kt = blockIdx.z, hk = blockIdx.x, b = blockIdx.y;  // key tiles slowest: dkvGrid
  const int group = d.heads / d.kvHeads, head0 = hk * group;
  const int wg = threadIdx.x / 128, warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32, g = lane / 4,
            tig = lane % 4;
  const int j0 = kt * BK, j1 = min(j0 + BK, d.tk);
  const size_t qStride = (size_t)d.heads * D, kStride = (size_t)d.kvHeads * D;
  loadTileWg(sK, k + ((size_t)b * d.kvStride + j0) * kStride + (size_t)hk * D, kStride, d.tk - j0);
  loadTileWg(sV, v + ((size_t)b * d.kvStride + j0) * kStride + (size_t)hk * D, kStride, d.tk - j0);
  cpAsyncCommit();
  const float sl2 = d.scale * kLog2e;

  const int nList = visibleQueryTiles<BQ>(sList, &sCount, m, b, j0, j1, d), nItems = group * nList;

  // Queue the tiles and publish the row data of item w (head head0 + w / nList, query tile sList[w % nList]) into
  // buffer w & 1, whose previous item every thread finished before the barrier that precedes this call.
  auto issue = [&](int w) {
    const int buf = w & 1, h = head0 + w / nList, i0 = sList[w % nList] * BQ;
    bf16* it = sItem + 4 * buf * ITEM;
    loadTileWg<64>(it, q + ((size_t)b * d.tq + i0) * qStride + (size_t)h * D, qStride, d.tq - i0);
    loadTileWg<64>(it + ITEM, dout + ((size_t)b * d.tq + i0) * qStride + (size_t)h * D, qStride, d.tq - i0);
    const size_t tOff = ((size_t)b * d.heads + h) * D * ldT + i0;
    loadTileWg<128, 8>(it + 2 * ITEM, qT + tOff, ldT, D);
    loadTileWg<128, 8>(it + 3 * ITEM, doT + tOff, ldT, D);
    cpAsyncCommit();
    if (threadIdx.x < BQ) {  // warps 0 and 1: one query row per lane
      const int i = i0 + threadIdx.x;
      const size_t lrow = ((size_t)b * d.heads + h) * d.tq;
      const Vis vr = rowVis(m, b, i, d.tq, d.tk);
      const float L = i < d.tq ? lse[lrow + i] : -INFINITY;
      const bool all = __all_sync(0xffffffffu, L != -INFINITY && allVisible(vr, j0, j1));
      if (lane == 0) sFull[buf][threadIdx.x / 32] = all;
      sE1[buf][threadIdx.x] = vr.e1;
      sS2[buf][threadIdx.x] = vr.s2;
      sE2[buf][threadIdx.x] = vr.e2;
      sL2[buf][threadIdx.x] = L == -INFINITY ? -INFINITY : L * kLog2e;
      sD[buf][threadIdx.x] = i < d.tq ? Dv[lrow + i] : 0.0f;
    }
  };

  float ak[16][4], av[16][4];
  zeroAcc(ak);
  zeroAcc(av);
  const int keyA = j0 + wg * 64 + warp * 16 + g, keyB = keyA + 8;
  const uint32_t kRows = smemAddr(sK) + wgChunkOffset(wg * 64, 0), vRows = smemAddr(sV) + wgChunkOffset(wg * 64, 0);
  if (nItems > 0) issue(0);
  else cpAsyncWait<0>();  // no query sees these keys: the K and V copies land before the CTA leaves
  for (int w = 0; w < nItems; w++) {
    const int buf = w & 1;
    cpAsyncWait<0>();
    fenceProxyAsync();
    __syncthreads();
    if (w + 1 < nItems) issue(w + 1);
    const uint32_t itemAddr = smemAddr(sItem) + 4 * buf * kWgItemTile;
    const bool full = sFull[buf][0] != 0 && sFull[buf][1] != 0;

    dkvItem(ak, av, kRows, vRows, itemAddr, full, sl2, sL2[buf], sD[buf], sE1[buf], sS2[buf], sE2[buf], keyA, keyB,
            tig);
  }
  storeDkv(ak, av, dk, dkdt, dv, dvdt, d, b, hk, keyA, keyB, tig);
#endif
}

// ---- backward dK/dV, version 4: version 3's products with the item tiles loaded by the TMA unit ----
// As attnFwdTma does for the forward: version 3's dK/dV kernel has every thread copy its share of each item's four
// tiles and publish the item's row data, then the CTA meets at a barrier, so its two warpgroups run in lockstep. Here
// an item's Q and dO tiles (64 × 128; read in place for dK and dV too: MN-major, no transposed copies) and its row
// data (lse·log2e, D, and the visibility e1, s2, e2 of its 64 query rows: a table attnRowTable writes once per call)
// arrive by TMA, three stages deep, each stage counted against one mbarrier and refilled by the last of the 8 warps
// to release it. Whether an item is full (every row sees every key of the CTA: itemProb skips the masking) is found
// once, with the item list. Products, masking and outputs as version 3; deterministic as it (each key belongs to one
// CTA, items in a fixed order).
constexpr int kRowFields = 5;  // row table fields: l2 (f32), D (f32), e1, s2, e2 (i32)
constexpr uint32_t kRowTableBytes = kRowFields * kWgBq * 4;
constexpr int kDkvStages = 3;
// One stage: Q, dO (16 KB each) and the row data (1.25 KB, counted as such: kStageTx), padded to 1 KB so that the
// next stage's tiles start on a swizzle atom.
constexpr uint32_t kStageTx = 2 * kWgItemTile + kRowTableBytes, kStageBytes = 2 * kWgItemTile + 2048;
// K and V (32 KB each), the stages, (fused dQ: two dSᵀ tiles of 128 keys × 64 queries, 16 KB each,) 1 KB of alignment;
// then the item list (one int per 64-query tile).
constexpr size_t tmaDkvSmem(int nQt, bool fusedDq = false) {
  return (size_t)2 * kWgTileBytes + kDkvStages * (size_t)kStageBytes + (fusedDq ? kWgTileBytes : 0) + 1024 +
         (size_t)nQt * 4;
}

// The row table of version 4's dK/dV kernel: for row i of (batch b, head h), at [(b·heads + h)·5 + field]·ldR + i,
// lse·log2e (−inf for a fully masked row), D (Σ dO·O) and the row's visible keys [0, e1) ∪ [s2, e2) as int bits.
__global__ void attnRowTable(const float* __restrict__ lse, const float* __restrict__ Dv, float* table, int ldR,
                             AttnDims d, AttnMask m) {
  const size_t r = blockIdx.x * (size_t)blockDim.x + threadIdx.x, total = (size_t)d.batch * d.heads * d.tq;
  if (r >= total) return;
  const int i = (int)(r % d.tq), bh = (int)(r / d.tq), b = bh / d.heads;
  const Vis v = rowVis(m, b, i, d.tq, d.tk);
  float* t = table + (size_t)bh * kRowFields * ldR + i;
  t[0] = lse[r] == -INFINITY ? -INFINITY : lse[r] * kLog2e;
  t[ldR] = Dv[r];
  t[2 * ldR] = __int_as_float(v.e1);
  t[3 * ldR] = __int_as_float(v.s2);
  t[4 * ldR] = __int_as_float(v.e2);
}

// The dK/dV kernels' work list with each item's fullness: entry 2·t + full for every query tile t of BQ rows with a
// row that sees a key of [j0, j1), full when every row of the tile sees all of them. Every thread calls it (two
// barriers).
template <int BQ>
__device__ __forceinline__ int visibleQueryTilesFull(int* list, int* count, const AttnMask& m, int b, int j0, int j1,
                                                     const AttnDims& d) {
  const int nQt = (d.tq + BQ - 1) / BQ;
  for (int t = threadIdx.x; t < nQt; t += blockDim.x) {
    bool seen = false, full = true;
    for (int r = 0; r < BQ; r++) {
      const Vis v = rowVis(m, b, t * BQ + r, d.tq, d.tk);
      seen = seen || anyVisible(v, j0, j1);
      full = full && allVisible(v, j0, j1);
    }
    list[t] = seen ? 2 + (full ? 1 : 0) : 0;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    int n = 0;
    for (int t = 0; t < nQt; t++)
      if (list[t]) list[n++] = 2 * t + (list[t] & 1);
    *count = n;
  }
  __syncthreads();
  return *count;
}

// kOverlap (the default; false under PARO_ATTN_SERIAL=dkv): item w + 1's score products are queued with item w's
// dV/dK products (one wait for both); otherwise each product is waited for before the next is issued.
// kPerHead (version 5 on grids short of attnBwdWaves() waves per KV head): one CTA per (key tile, query head), its
// items that head's only, writing unscaled f32 partial sums pk, pv [batch, heads, tk, 128] that attnDkvReduce adds
// over the group in head order (as version 2's per-query-head kernel): group× more CTAs to spread over the SMs.
// kFusedDq (version 6, with kOverlap false): dQ in this kernel too, so that the backward computes five products
// instead of seven (no dQ kernel recomputing S and dP): each warpgroup writes its dSᵀ rows into the CTA's dSᵀ tile of
// the item (128 keys × 64 queries, double-buffered), the CTA meets at named barrier 5, and warpgroup wg computes
// dQ[:, 64·wg..] of the item's 64 queries = dS·K over the CTA's 128 keys (A and B read MN-major from shared memory)
// beside the dV/dK products, then adds it into the f32 buffer dqAcc [batch, tq, heads, 128] with atomics. The sums'
// order then varies from run to run (not bit-reproducible, unlike every other version).
template <bool kOverlap, bool kPerHead, bool kFusedDq = false>
__global__ void __launch_bounds__(256, 1) attnBwdDkvTma(const __grid_constant__ CUtensorMap kMap,
                                                        const __grid_constant__ CUtensorMap vMap,
                                                        const __grid_constant__ CUtensorMap qMap,
                                                        const __grid_constant__ CUtensorMap oMap,
                                                        const __grid_constant__ CUtensorMap rowMap, void* dk, int dkdt,
                                                        void* dv, int dvdt, float* pk, float* pv, float* dqAcc,
                                                        AttnDims d, AttnMask m) {
#if !defined(__CUDA_ARCH__) || defined(__CUDA_ARCH_FEAT_SM90_ALL)
  constexpr int BK = kWgKeys, BQ = kWgBq, NS = kDkvStages;
  constexpr int TILE = kWgTileBytes / 2;  // elements
  constexpr uint32_t STAGE = kStageBytes;
  extern __shared__ __align__(16) unsigned char smRaw[];
  unsigned char* base = smRaw + ((1024 - smemAddr(smRaw) % 1024) % 1024);  // swizzle atoms: aligned
  bf16* sK = reinterpret_cast<bf16*>(base);
  bf16* sV = sK + TILE;
  unsigned char* sStage = base + 2 * kWgTileBytes;  // stage s at sStage + s·STAGE: Q, dO, row table
  unsigned char* sDs = sStage + NS * STAGE;         // kFusedDq: dSᵀ tiles of items w, w + 1 at sDs + (w % 2)·16 KB
  int* sList = reinterpret_cast<int*>(sDs + (kFusedDq ? kWgTileBytes : 0));
  __shared__ uint64_t kvFull, itemFull[NS];  // mbarriers
  __shared__ int itemDone[NS];               // warps done with a stage, counted over its rounds
  __shared__ int sCount;

  const int kt = blockIdx.z, hy = blockIdx.x, b = blockIdx.y;  // key tiles slowest: dkvGrid; hy: KV or query head
  const int group = d.heads / d.kvHeads, hk = kPerHead ? hy / group : hy;
  const int head0 = kPerHead ? hy : hk * group, nHeads = kPerHead ? 1 : group;  // the query heads covered
  const int wg = threadIdx.x / 128, warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32, g = lane / 4,
            tig = lane % 4;
  const int j0 = kt * BK, j1 = min(j0 + BK, d.tk);
  if (threadIdx.x == 0) {
    mbarInit(&kvFull, 1);
    for (int s = 0; s < NS; s++) {
      mbarInit(&itemFull[s], 1);
      itemDone[s] = 0;
    }
    mbarInitFence();
    mbarExpectTx(&kvFull, 2 * kWgTileBytes);
    tmaLoad4(sK, &kMap, &kvFull, 0, hk, j0, b);
    tmaLoad4(sK + TILE / 2, &kMap, &kvFull, 64, hk, j0, b);
    tmaLoad4(sV, &vMap, &kvFull, 0, hk, j0, b);
    tmaLoad4(sV + TILE / 2, &vMap, &kvFull, 64, hk, j0, b);
  }
  const float sl2 = d.scale * kLog2e;
  // Its barriers also publish the mbarriers' initialisation.
  const int nList = visibleQueryTilesFull<BQ>(sList, &sCount, m, b, j0, j1, d), nItems = nHeads * nList;

  // Item w (head head0 + w / nList, query tile sList[w % nList] / 2) into stage w % NS.
  auto load = [&](int w) {
    const int s = w % NS, h = head0 + w / nList, i0 = (sList[w % nList] >> 1) * BQ;
    unsigned char* st = sStage + s * STAGE;
    mbarExpectTx(&itemFull[s], kStageTx);
    tmaLoad4(st, &qMap, &itemFull[s], 0, h, i0, b);
    tmaLoad4(st + kWgItemTile / 2, &qMap, &itemFull[s], 64, h, i0, b);
    tmaLoad4(st + kWgItemTile, &oMap, &itemFull[s], 0, h, i0, b);
    tmaLoad4(st + 3 * kWgItemTile / 2, &oMap, &itemFull[s], 64, h, i0, b);
    tmaLoad4(st + 2 * kWgItemTile, &rowMap, &itemFull[s], i0, 0, b * d.heads + h, 0);
  };
  if (threadIdx.x == 0)
    for (int w = 0; w < min(NS, nItems); w++) load(w);
  // This warp is done with item w's stage: the 8th warp to say so for this round refills it with item w + NS.
  auto release = [&](int w) {
    if (lastWarpDone(&itemDone[w % NS], w / NS) && w + NS < nItems) load(w + NS);
  };

  float ak[16][4], av[16][4];
  zeroAcc(ak);
  zeroAcc(av);
  const int keyA = j0 + wg * 64 + warp * 16 + g, keyB = keyA + 8;
  const uint32_t kRows = smemAddr(sK) + wgChunkOffset(wg * 64, 0), vRows = smemAddr(sV) + wgChunkOffset(wg * 64, 0);
  auto itemAddr = [&](int w) { return smemAddr(sStage) + (w % NS) * STAGE; };
  // Sᵀ and dPᵀ of item w, once its stage has landed (the caller commits and waits).
  auto issueScores = [&](float (&st)[8][4], float (&dpt)[8][4], int w) {
    mbarWait(&itemFull[w % NS], (uint32_t)(w / NS) & 1);
    wgIssuePair64(st, dpt, kRows, itemAddr(w), vRows, itemAddr(w) + kWgItemTile);
  };
  float st[8][4], dpt[8][4];  // Sᵀ, dPᵀ of item w
  uint32_t pa[4][4], da[4][4];  // Pᵀ, dSᵀ of item w: the A fragments of its dV, dK products
  mbarWait(&kvFull, 0);  // also where no query sees these keys: the copies land before the CTA leaves
  if (nItems > 0) {
    issueScores(st, dpt, 0);
    wgCommit();
    wgWait<0>();
    wgFenceAcc(st);
    wgFenceAcc(dpt);
  }
  // Iteration w: Sᵀ, dPᵀ of item w are in st, dpt and no product is in flight. With kOverlap the scores of item w + 1
  // are queued with dV, dK of item w, so that the tensor cores go from one to the other without draining; each path
  // waits for all it issued before the next element step. (Running that step beside item w's products, as the dQ
  // kernel does, needs Sᵀ, dPᵀ, both fragment sets and dK, dV live at once: ptxas then serializes every wgmma of the
  // kernel, its warning C7515, as it also does for products still in flight where the loop exits.)
  for (int w = 0; w < nItems; w++) {
    const float* rows = reinterpret_cast<const float*>(sStage + (w % NS) * STAGE + 2 * kWgItemTile);
    const int* rVis = reinterpret_cast<const int*>(rows + 2 * BQ);  // e1, s2, e2: BQ each
    const bool full = (sList[w % nList] & 1) != 0;
    dkvFragments(pa, da, st, dpt, full, sl2, rows, rows + BQ, rVis, rVis + BQ, rVis + 2 * BQ, keyA, keyB, tig);
    const bool more = w + 1 < nItems;
    unsigned char* ds = sDs + (w & 1) * (kWgTileBytes / 2);  // kFusedDq: item w's dSᵀ tile
    if (kFusedDq) {
      // This warpgroup's dSᵀ rows (keys keyA − j0, keyB − j0) into the item's dSᵀ tile: fragment kk holds query
      // columns 16·kk + 2·tig (+1) (words 0, 1) and 16·kk + 8 + 2·tig (words 2, 3) of rows keyA, keyB.
      const int rA = keyA - j0, rB = keyB - j0;
#pragma unroll
      for (int kk = 0; kk < 4; kk++) {
        const int c0 = 16 * kk + 2 * tig, c1 = c0 + 8;
        *reinterpret_cast<uint32_t*>(ds + wgChunkOffset(rA, c0 / 8) + (c0 % 8) * 2) = da[kk][0];
        *reinterpret_cast<uint32_t*>(ds + wgChunkOffset(rB, c0 / 8) + (c0 % 8) * 2) = da[kk][1];
        *reinterpret_cast<uint32_t*>(ds + wgChunkOffset(rA, c1 / 8) + (c1 % 8) * 2) = da[kk][2];
        *reinterpret_cast<uint32_t*>(ds + wgChunkOffset(rB, c1 / 8) + (c1 % 8) * 2) = da[kk][3];
      }
      fenceProxyAsync();        // the generic-proxy writes, before the products read them
      namedBarSync(5, 256);     // both warpgroups' rows (the other's dQ of item w − 1 is complete: its own wait)
    }
    if (kOverlap && more) {
      issueScores(st, dpt, w + 1);
      wgCommit();
    }
    // dV += Pᵀ·dO and dK += dSᵀ·Q, reading item w's dO and Q tiles in place (MN-major).
    wgFence();
#pragma unroll
    for (int kk = 0; kk < BQ / 16; kk++) wgmmaRS<1>(av, pa[kk], wgRowsMnDesc(itemAddr(w) + kWgItemTile, kk));
#pragma unroll
    for (int kk = 0; kk < BQ / 16; kk++) wgmmaRS<1>(ak, da[kk], wgRowsMnDesc(itemAddr(w), kk));
    float dqa[8][4];  // kFusedDq: dQ of the item's 64 queries, channels 64·wg..64·wg + 63, over the CTA's keys
    if (kFusedDq) {
      // A: dS (query m, key k) from the dSᵀ tile, MN-major (a k16 step: 16 key rows, 2048 bytes); B: K (key k,
      // channel n) from the K tile's atom column wg, MN-major.
#pragma unroll
      for (int kk = 0; kk < BK / 16; kk++)
        wgmmaSS64<1, 1>(dqa, wgDescMn(smemAddr(ds) + kk * 2048, 16384),
                        wgDescMn(smemAddr(sK) + wg * (kWgTileBytes / 2) + kk * 2048, 16384), kk);
    }
    wgCommit();
    wgWait<0>();
    wgFenceAcc(ak);
    wgFenceAcc(av);
    wgFenceFrag(pa);
    wgFenceFrag(da);
    if (kFusedDq) {
      wgFenceAcc(dqa);
      const int h = head0 + w / nList, i0 = (sList[w % nList] >> 1) * BQ;
#pragma unroll
      for (int r = 0; r < 2; r++) {
        const int i = i0 + warp * 16 + g + 8 * r;
        if (i >= d.tq) continue;
        float* row = dqAcc + (((size_t)b * d.tq + i) * d.heads + h) * kWgD + wg * 64 + tig * 2;
#pragma unroll
        for (int n = 0; n < 8; n++) {
          atomicAdd(row + n * 8, dqa[n][2 * r]);
          atomicAdd(row + n * 8 + 1, dqa[n][2 * r + 1]);
        }
      }
    }
    release(w);  // every product reading item w's stage is complete
    if (kOverlap && more) {
      wgFenceAcc(st);
      wgFenceAcc(dpt);
    } else if (more) {
      issueScores(st, dpt, w + 1);
      wgCommit();
      wgWait<0>();
      wgFenceAcc(st);
      wgFenceAcc(dpt);
    }
  }
  if (kPerHead) storeDkvPartial(ak, av, pk, pv, d, b, head0, keyA, keyB, tig);
  else storeDkv(ak, av, dk, dkdt, dv, dvdt, d, b, hk, keyA, keyB, tig);
#endif
}

// A dQ kernel's row data for this thread's rows rowA, rowA + 8 of (batch b, head h): lse in the exp2 domain (−inf for
// a fully masked row or one past tq: P = 0) and D_i = Σ dO·O.
__device__ __forceinline__ void dqRowData(float (&l2)[2], float (&Dr)[2], const float* lse, const float* Dv,
                                          const AttnDims& d, int b, int h, int rowA) {
  const size_t lrow = ((size_t)b * d.heads + h) * d.tq;
#pragma unroll
  for (int r = 0; r < 2; r++) {
    const int row = rowA + 8 * r;
    l2[r] = row < d.tq ? lse[lrow + row] * kLog2e : -INFINITY;
    Dr[r] = row < d.tq ? Dv[lrow + row] : 0.0f;
  }
}

// dQ (× scale) of this thread's rows rowA, rowA + 8 of (batch b, head h) from a warpgroup accumulator: the output.
__device__ __forceinline__ void storeDq(const float (&acc)[16][4], void* dq, int dqdt, const AttnDims& d, int b, int h,
                                        int rowA, int tig) {
#pragma unroll
  for (int r = 0; r < 2; r++) {
    const int row = rowA + 8 * r;
    if (row >= d.tq) continue;
    const size_t rowOff = ((size_t)b * d.tq + row) * d.heads * kWgD + (size_t)h * kWgD + tig * 2;
    storeRow2(dq, dqdt, acc, r, rowOff, d.scale);
  }
}

// A dQ tile's element step (versions 3 to 5) from the warpgroup's S and dP (s, dp; keys j0..j0+63): per element
// P = exp2(S·scale·log2e − lse·log2e) (0 where the row is fully masked or the key not visible to it) and
// dS = P ⊙ (dP − D), as the bf16 A fragments of the dQ product (dn). S and dP are only read (see dkvFragments).
__device__ __forceinline__ void dqFragments(uint32_t (&dn)[4][4], const float (&s)[8][4], const float (&dp)[8][4],
                                            const Vis (&vis)[2], int j0, float sl2, const float (&l2)[2],
                                            const float (&Dr)[2], int tig) {
#pragma unroll
  for (int kk = 0; kk < 4; kk++) {
    float ds[2][4];  // n8 tiles 2·kk and 2·kk + 1
#pragma unroll
    for (int h = 0; h < 2; h++) {
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int n = 2 * kk + h, r = e / 2;
        const bool seen = allVisible(vis[r], j0, j0 + kWgBq) || isVisible(vis[r], j0 + n * 8 + tig * 2 + (e & 1));
        const float p = (l2[r] != -INFINITY && seen) ? ex2Ftz(fmaf(s[n][e], sl2, -l2[r])) : 0.0f;
        ds[h][e] = p * (dp[n][e] - Dr[r]);
      }
    }
    accToA(dn[kk], ds[0], ds[1]);
  }
}

// A dQ kernel's products after tile it's element step (da holds its dS, dQ of tile it − 1 complete): dQ += dS·K of
// tile it (if act; K read in place, MN-major, at cur) and S, dP of tile it + 1 (if actNext; K, V at next) into s, dp,
// complete on return. kOverlap: the two are issued together (S and dP first) and only S, dP waited for, so that tile
// it + 1's element step runs beside the dQ product (the caller's next wgWait<0> completes it); otherwise one by one.
template <bool kOverlap>
__device__ __forceinline__ void dqProducts(float (&acc)[16][4], float (&s)[8][4], float (&dp)[8][4],
                                           uint32_t (&da)[4][4], bool act, bool actNext, uint32_t qRows,
                                           uint32_t oRows, uint32_t cur, uint32_t next) {
  if (kOverlap && actNext) {
    wgIssuePair64(s, dp, qRows, next, oRows, next + kWgItemTile);
    wgCommit();
  }
  if (act) {
    wgFence();
#pragma unroll
    for (int kk = 0; kk < kWgBq / 16; kk++) wgmmaRS<1>(acc, da[kk], wgRowsMnDesc(cur, kk));
    wgCommit();
  }
  if (!kOverlap) {
    wgWait<0>();
    wgFenceAcc(acc);
    wgFenceFrag(da);
    if (actNext) {
      wgIssuePair64(s, dp, qRows, next, oRows, next + kWgItemTile);
      wgCommit();
      wgWait<0>();
      wgFenceAcc(s);
      wgFenceAcc(dp);
    }
  }
  if (kOverlap && actNext) {
    if (act) wgWait<1>();
    else wgWait<0>();
    wgFenceAcc(s);
    wgFenceAcc(dp);
  }
}

// ---- backward dQ, version 3: Hopper warpgroup MMA (sm_90a, head dim 128) ----
// One CTA per (query head, 128-query tile, batch) as version 2's dQ, two warpgroups of 64 rows; key tiles of 64:
//   S = Q·Kᵀ, dP = dO·Vᵀ (64 × 64 per warpgroup; A: the Q or dO rows, B: the K or V tile, K-major over the head dim),
//   dS = P ⊙ (dP − D), P = exp2(S·scale·log2e − lse·log2e), dQ += dS·K (A: dS from registers, B: the K tile read
//   in place, MN-major: wgRowsMnDesc). K and V tiles in three buffers through cp.async: a tile's S and dP products
//   are issued with the previous tile's dQ product, whose buffer the copy of the tile after next may only overwrite
//   once every warpgroup has waited for that product.
// 32 KB Q + 32 KB dO + three buffers of K and V (64 × 128, 16 KB each): 160 KB, 1 KB of alignment.
constexpr int kWgDqBuffers = 3;
constexpr size_t kWgDqSmem = (size_t)2 * kWgTileBytes + 2 * kWgDqBuffers * (size_t)kWgItemTile + 1024;

// kOverlap (the default; false under PARO_ATTN_SERIAL=dq): tile it + 1's S and dP products are issued with tile it's
// dQ product; otherwise each product is waited for before the next is issued.
template <bool kOverlap>
__global__ void __launch_bounds__(256, 1) attnBwdDqWg(const bf16* __restrict__ dout, const bf16* __restrict__ q,
                                                      const bf16* __restrict__ k, const bf16* __restrict__ v,
                                                      const float* __restrict__ lse, const float* __restrict__ Dv,
                                                      void* dq, int dqdt,
                                                      AttnDims d, AttnMask m) {
#if !defined(__CUDA_ARCH__) || defined(__CUDA_ARCH_FEAT_SM90_ALL)
  constexpr int D = kWgD, BC = kWgBq, NB = kWgDqBuffers;  // 64 keys per tile
  constexpr int TILE = kWgTileBytes / 2, ITEM = kWgItemTile / 2;  // elements
  extern __shared__ __align__(16) unsigned char smRaw[];
  bf16* sQ = reinterpret_cast<bf16*>(smRaw + ((1024 - smemAddr(smRaw) % 1024) % 1024));  // swizzle atoms: aligned
  bf16* sO = sQ + TILE;
  bf16* sKey = sO + TILE;  // buffer b: K, V at sKey + (2·b + 0..1)·ITEM
  __shared__ int sRange[3];
  __shared__ int sPart[2][4][3];  // wgHull's per-warp values: [warpgroup][warp]

  const int h = blockIdx.x, qt = gridDim.y - 1 - blockIdx.y, b = blockIdx.z;  // the heaviest causal tiles first
  const int hk = h / (d.heads / d.kvHeads);
  const int wg = threadIdx.x / 128, warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32, g = lane / 4,
            tig = lane % 4;
  const int i0 = qt * kWgRows;
  const size_t qStride = (size_t)d.heads * D, kStride = (size_t)d.kvHeads * D;
  const bf16* kBase = k + (size_t)b * d.kvStride * kStride + (size_t)hk * D;
  const bf16* vBase = v + (size_t)b * d.kvStride * kStride + (size_t)hk * D;

  const int rowA = i0 + wg * 64 + warp * 16 + g;
  const Vis vis[2] = {rowVis(m, b, rowA, d.tq, d.tk), rowVis(m, b, rowA + 8, d.tq, d.tk)};
  float l2[2], Dr[2];
  dqRowData(l2, Dr, lse, Dv, d, b, h, rowA);
  const WgTiles wt = wgTileRange(sRange, sPart, vis, wg, BC);
  const TileRange tr = wt.tr;
  const float sl2 = d.scale * kLog2e;
  const uint32_t qRows = smemAddr(sQ) + wgChunkOffset(wg * 64, 0), oRows = smemAddr(sO) + wgChunkOffset(wg * 64, 0);

  float acc[16][4];
  zeroAcc(acc);
  const int nTiles = tr.count();
  // Tile t's K and V into buffer t % NB, one cp.async group.
  auto issue = [&](int t) {
    const int j = tr.tile(t) * BC;
    bf16* buf = sKey + 2 * (t % NB) * ITEM;
    loadTileWg<64>(buf, kBase + (size_t)j * kStride, kStride, d.tk - j);
    loadTileWg<64>(buf + ITEM, vBase + (size_t)j * kStride, kStride, d.tk - j);
    cpAsyncCommit();
  };
  auto tileAddr = [&](int t) { return smemAddr(sKey) + 2 * (t % NB) * kWgItemTile; };
  auto sees = [&](int t) { return wt.sees(t, BC); };  // uniform over the warpgroup
  float s[8][4], dp[8][4];  // S and dP of tile it, then dS (f32)
  uint32_t da[4][4];        // dS of tile it − 1 as A fragments, read by its dQ product until the next wgWait<0>
  if (nTiles > 0) {
    loadTileWg(sQ, q + ((size_t)b * d.tq + i0) * qStride + (size_t)h * D, qStride, d.tq - i0);
    loadTileWg(sO, dout + ((size_t)b * d.tq + i0) * qStride + (size_t)h * D, qStride, d.tq - i0);
    issue(0);
    issueNextAndWait<true>(issue, 0, nTiles);
    if (sees(0)) {
      wgIssuePair64(s, dp, qRows, tileAddr(0), oRows, tileAddr(0) + kWgItemTile);
      wgCommit();
      wgWait<0>();
      wgFenceAcc(s);
      wgFenceAcc(dp);
    }
  }
  // Iteration it: S and dP of tile it are in s, dp (if the warpgroup sees it); dQ of tile it − 1 may still run. The
  // products of tile it + 1 and dQ of tile it are issued together, so that tile it + 1's element step runs beside
  // tile it's dQ product.
  for (int it = 0; it < nTiles; it++) {
    const int j0 = tr.tile(it) * BC;
    const bool act = sees(it), more = it + 1 < nTiles;
    uint32_t dn[4][4];  // dS of tile it; da is still read by dQ of tile it − 1
    if (act) dqFragments(dn, s, dp, vis, j0, sl2, l2, Dr, tig);
    // dQ of tile it − 1 is complete: its A fragments and (once every warpgroup is past the barrier) its buffer free.
    wgWait<0>();
    wgFenceAcc(acc);
    wgFenceFrag(da);
    if (act) copyFrags(da, dn);
    bool actNext = false;
    if (more) {
      cpAsyncWait<0>();  // tile it + 1 (the only group in flight)
      fenceProxyAsync();
      __syncthreads();
      if (it + 2 < nTiles) issue(it + 2);  // into tile it − 1's buffer
      actNext = sees(it + 1);
    }
    dqProducts<kOverlap>(acc, s, dp, da, act, actNext, qRows, oRows, tileAddr(it), more ? tileAddr(it + 1) : 0);
  }
  wgWait<0>();
  wgFenceAcc(acc);
  wgFenceFrag(da);
  storeDq(acc, dq, dqdt, d, b, h, rowA, tig);
#endif
}

// ---- backward dQ, version 5: the dQ kernel's products with tiles loaded by the TMA unit, persistent ----
// As the version-4/5 forward does for the forward: work items (query head, 128-query tile, batch entry) per CTA from
// QueryItems (one CTA per SM, snake order), their K and V tiles of 64 keys as one stream through four stages (a
// stage's K and V counted against one mbarrier, refilled by the last of the 8 warps to release it), and the next
// item's Q and dO tiles loaded once every warp's last S and dP products of the current item are complete. A stage is
// released once the tile's dQ product, which reads K in place, is complete too. Products, element step and outputs
// as version 3's dQ kernel (attnBwdDqWg), whose cp.async copies and CTA-wide barrier per tile this replaces.
// A stage is released one iteration after its tile's products are issued (once its dQ product is complete), so with
// four stages the copy of a tile starts two iterations before its products (about 1 µs each at the 8B shape).
constexpr int kDqStages = 4;
// Q and dO (32 KB each), four stages of a K and a V tile of 64 keys (16 KB each): 192 KB, 1 KB of alignment.
constexpr size_t kTmaDqSmem = (size_t)2 * kWgTileBytes + 2 * kDqStages * (size_t)kWgItemTile + 1024;

// kOverlap (the default; false under PARO_ATTN_SERIAL=dq): tile it + 1's S and dP products are issued with tile it's
// dQ product; otherwise each product is waited for before the next is issued.
template <bool kOverlap>
__global__ void __launch_bounds__(256, 1) attnBwdDqTma(const __grid_constant__ CUtensorMap qMap,
                                                       const __grid_constant__ CUtensorMap oMap,
                                                       const __grid_constant__ CUtensorMap kMap,
                                                       const __grid_constant__ CUtensorMap vMap,
                                                       const float* __restrict__ lse, const float* __restrict__ Dv,
                                                       void* dq, int dqdt, AttnDims d, AttnMask m) {
#if !defined(__CUDA_ARCH__) || defined(__CUDA_ARCH_FEAT_SM90_ALL)
  constexpr int D = kWgD, BC = kWgBq, NS = kDqStages;  // 64 keys per tile
  constexpr int TILE = kWgTileBytes / 2, ITEM = kWgItemTile / 2;  // elements
  extern __shared__ __align__(16) unsigned char smRaw[];
  bf16* sQ = reinterpret_cast<bf16*>(smRaw + ((1024 - smemAddr(smRaw) % 1024) % 1024));  // swizzle atoms: aligned
  bf16* sO = sQ + TILE;
  bf16* sKey = sO + TILE;  // stage s: K, V at sKey + (2·s + 0..1)·ITEM
  __shared__ uint64_t qFull, tFull[NS];  // mbarriers: Q and dO, a stage's K and V have landed
  __shared__ int qDone, tDone[NS];       // warps done with Q/dO, with a stage, counted over the rounds
  __shared__ int sPart[2][2][4][3];      // wgHull's per-warp values: [item parity][warpgroup][warp]

  const int wg = threadIdx.x / 128, warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32, g = lane / 4,
            tig = lane % 4;
  const QueryItems qi{d, m, BC};
  // Stream tile gt into stage gt % NS: K and V, each two boxes of 64 channels × 64 keys; found by walking on from item
  // n (first stream tile `first`, range r); nothing past the last item. One thread issues it.
  auto loadTile = [&](int gt, int n, int first, TileRange r) {
    if (!qi.locate(gt, n, first, r)) return;
    const QItem it = qi.item(n);
    const int st = gt % NS, j = r.tile(gt - first) * BC, hk = it.h / (d.heads / d.kvHeads);
    bf16* buf = sKey + 2 * st * ITEM;
    mbarExpectTx(&tFull[st], 2 * kWgItemTile);
    tmaLoad4(buf, &kMap, &tFull[st], 0, hk, j, it.b);
    tmaLoad4(buf + ITEM / 2, &kMap, &tFull[st], 64, hk, j, it.b);
    tmaLoad4(buf + ITEM, &vMap, &tFull[st], 0, hk, j, it.b);
    tmaLoad4(buf + ITEM + ITEM / 2, &vMap, &tFull[st], 64, hk, j, it.b);
  };
  // Item n's Q and dO tiles (128 rows; rows past tq arrive as zeros).
  auto loadQ = [&](int n) {
    if (!qi.exists(n)) return;
    const QItem it = qi.item(n);
    const int i0 = it.qt * kWgRows;
    mbarExpectTx(&qFull, 2 * kWgTileBytes);
    tmaLoad4(sQ, &qMap, &qFull, 0, it.h, i0, it.b);
    tmaLoad4(sQ + TILE / 2, &qMap, &qFull, 64, it.h, i0, it.b);
    tmaLoad4(sO, &oMap, &qFull, 0, it.h, i0, it.b);
    tmaLoad4(sO + TILE / 2, &oMap, &qFull, 64, it.h, i0, it.b);
  };
  if (threadIdx.x == 0) {
    mbarInit(&qFull, 1);
    for (int st = 0; st < NS; st++) {
      mbarInit(&tFull[st], 1);
      tDone[st] = 0;
    }
    qDone = 0;
    mbarInitFence();
    tmaPrefetch(&qMap);
    tmaPrefetch(&oMap);
    tmaPrefetch(&kMap);
    tmaPrefetch(&vMap);
    if (qi.exists(0)) {
      const TileRange r0 = qi.range(qi.item(0));
      loadQ(0);
      for (int t = 0; t < NS; t++) loadTile(t, 0, 0, r0);
    }
  }
  __syncthreads();  // the mbarriers' initialisation, to every thread

  const float sl2 = d.scale * kLog2e;
  const uint32_t qRows = smemAddr(sQ) + wgChunkOffset(wg * 64, 0), oRows = smemAddr(sO) + wgChunkOffset(wg * 64, 0);
  float acc[16][4];
  float s[8][4], dp[8][4];  // S and dP of a tile
  uint32_t da[4][4];        // dS of tile it − 1 as A fragments, read by its dQ product until the next wgWait<0>
  int base = 0;             // the current item's first tile in the CTA's stream
  for (int n = 0; qi.exists(n); n++) {
    const QItem item = qi.item(n);
    const int h = item.h, b = item.b;
    const int rowA = item.qt * kWgRows + wg * 64 + warp * 16 + g;
    const Vis vis[2] = {rowVis(m, b, rowA, d.tq, d.tk), rowVis(m, b, rowA + 8, d.tq, d.tk)};
    float l2[2], Dr[2];
    dqRowData(l2, Dr, lse, Dv, d, b, h, rowA);
    WgTiles wt;
    wt.tr = qi.range(item);
    wgHull(wt, vis, sPart[n & 1][wg], 3 + wg);
    const TileRange tr = wt.tr;
    auto sees = [&](int t) { return wt.sees(t, BC); };  // uniform over the warpgroup
    const int nTiles = tr.count();

    // This warp is done with Q and dO (its last S and dP products of the item are complete): the 8th loads the next.
    auto releaseQ = [&] {
      if (lastWarpDone(&qDone, n)) loadQ(n + 1);
    };
    auto scoresDone = [&](int t) {
      if (t == nTiles - 1) releaseQ();
    };
    // This warp is done with item tile t's stage (its dQ product is complete): the 8th refills it, NS tiles on.
    auto releaseT = [&](int t) {
      const int gt = base + t;
      if (lastWarpDone(&tDone[gt % NS], gt / NS)) loadTile(gt + NS, n, base, tr);
    };
    auto waitT = [&](int t) { mbarWait(&tFull[(base + t) % NS], (uint32_t)((base + t) / NS) & 1); };
    auto tileAddr = [&](int t) { return smemAddr(sKey) + 2 * ((base + t) % NS) * kWgItemTile; };
    auto issueScores = [&](int t) {
      wgIssuePair64(s, dp, qRows, tileAddr(t), oRows, tileAddr(t) + kWgItemTile);
      wgCommit();
    };

    zeroAcc(acc);
    mbarWait(&qFull, (uint32_t)n & 1);  // every warp, so that the next Q and dO load only after these have landed
    if (nTiles > 0) {
      waitT(0);
      if (sees(0)) {
        issueScores(0);
        wgWait<0>();
        wgFenceAcc(s);
        wgFenceAcc(dp);
      }
      scoresDone(0);
    } else {
      releaseQ();
    }
    // Iteration it: S and dP of tile it are in s, dp (if the warpgroup sees it); dQ of tile it − 1 may still run. The
    // products of tile it + 1 and dQ of tile it are issued together, so that tile it + 1's element step runs beside
    // tile it's dQ product.
    for (int it = 0; it < nTiles; it++) {
      const int j0 = tr.tile(it) * BC;
      const bool act = sees(it), more = it + 1 < nTiles;
      uint32_t dn[4][4];  // dS of tile it; da is still read by dQ of tile it − 1
      if (act) dqFragments(dn, s, dp, vis, j0, sl2, l2, Dr, tig);
      wgWait<0>();  // dQ of tile it − 1: its fragments and stage are free
      wgFenceAcc(acc);
      wgFenceFrag(da);
      if (it > 0) releaseT(it - 1);
      if (act) copyFrags(da, dn);
      bool actNext = false;
      if (more) {
        waitT(it + 1);
        actNext = sees(it + 1);
      }
      dqProducts<kOverlap>(acc, s, dp, da, act, actNext, qRows, oRows, tileAddr(it), more ? tileAddr(it + 1) : 0);
      if (more) scoresDone(it + 1);
    }
    wgWait<0>();
    wgFenceAcc(acc);
    wgFenceFrag(da);
    if (nTiles > 0) releaseT(nTiles - 1);
    storeDq(acc, dq, dqdt, d, b, h, rowA, tig);
    base += nTiles;
  }
#endif
}

// ---- backward: D_i = Σ_d dO·O per (row, head) ----
__global__ void attnRowDotKernel(const void* dout, int dodt, const void* out, int odt, float* Dv, AttnDims d) {
  size_t w = blockIdx.x * (size_t)(blockDim.x / 32) + threadIdx.x / 32;
  int lane = threadIdx.x % 32;
  size_t total = (size_t)d.batch * d.heads * d.tq;
  if (w >= total) return;
  int i = (int)(w % d.tq);
  int h = (int)((w / d.tq) % d.heads);
  int b = (int)(w / ((size_t)d.tq * d.heads));
  size_t base = ((size_t)b * d.tq + i) * ((size_t)d.heads * d.headDim) + (size_t)h * d.headDim;
  float s = 0.0f;
  for (int c = lane; c < d.headDim; c += 32) s += ldf(dout, dodt, base + c) * ldf(out, odt, base + c);
  s = warpSum(s);
  if (lane == 0) Dv[w] = s;
}

// dQ = scale · Σ_keys dS·K with dS = P ⊙ (dO·Vᵀ − D); one CTA per (query tile, head, batch).
template <int D>
__global__ void __launch_bounds__(128) attnBwdDqMma(const bf16* __restrict__ dout, const bf16* __restrict__ q,
                                                    const bf16* __restrict__ k, const bf16* __restrict__ v,
                                                    const float* __restrict__ lse, const float* __restrict__ Dv,
                                                    void* dq, int dqdt, AttnDims d, AttnMask m) {
  constexpr int BR = 64, BC = 32, ST = D + 8, NT = BC / 8, DT = D / 8;
  extern __shared__ __align__(16) unsigned char smRaw[];
  bf16* sQ = reinterpret_cast<bf16*>(smRaw);
  bf16* sO = sQ + BR * ST;
  bf16* sKb = sO + BR * ST;       // two K tiles (double buffer)
  bf16* sVb = sKb + 2 * BC * ST;  // two V tiles
  __shared__ int sRange[3];

  const int qt = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int hk = h / (d.heads / d.kvHeads);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, tig = lane % 4;
  const int i0 = qt * BR;
  const size_t qStride = (size_t)d.heads * D, kStride = (size_t)d.kvHeads * D;
  const bf16* kBase = k + (size_t)b * d.kvStride * kStride + (size_t)hk * D;
  const bf16* vBase = v + (size_t)b * d.kvStride * kStride + (size_t)hk * D;
  loadTile<D>(sQ, q + ((size_t)b * d.tq + i0) * qStride + (size_t)h * D, qStride, BR, d.tq - i0);
  loadTile<D>(sO, dout + ((size_t)b * d.tq + i0) * qStride + (size_t)h * D, qStride, BR, d.tq - i0);

  const int rowA = i0 + warp * 16 + g, rowB = rowA + 8;
  Vis vis[2] = {rowVis(m, b, rowA, d.tq, d.tk), rowVis(m, b, rowB, d.tq, d.tk)};
  TileRange tr = blockTileRange(sRange, vis, 2, BC);
  const size_t lrow = ((size_t)b * d.heads + h) * d.tq;
  float lseA = -INFINITY, lseB = -INFINITY, DA = 0.0f, DB = 0.0f;
  if (rowA < d.tq) { lseA = lse[lrow + rowA] * kLog2e; DA = Dv[lrow + rowA]; }
  if (rowB < d.tq) { lseB = lse[lrow + rowB] * kLog2e; DB = Dv[lrow + rowB]; }
  const float sl2 = d.scale * kLog2e;

  float acc[DT][4];
  zeroAcc(acc);

  const int nTiles = tr.count();
  auto issue = [&](int it) { issueKeyTile<D, BC>(sKb, sVb, kBase, vBase, kStride, tr.tile(it) * BC, it & 1, d); };
  if (nTiles > 0) issue(0);
  for (int it = 0; it < nTiles; it++) {
    const int j0 = tr.tile(it) * BC;
    issueNextAndWait(issue, it, nTiles);
    const bf16* sK = sKb + (it & 1) * BC * ST;
    const bf16* sV = sVb + (it & 1) * BC * ST;
    float s[NT][4], dp[NT][4];
    productsNtPair<D>(s, dp, sQ, sO, warp * 16, sK, sV);
#pragma unroll
    for (int n = 0; n < NT; n++) {
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const bool upper = e < 2;
        const int j = j0 + n * 8 + tig * 2 + (e & 1);
        const float p = probOf(s[n][e], sl2, upper ? lseA : lseB, vis[upper ? 0 : 1], j);
        dp[n][e] = p * (dp[n][e] - (upper ? DA : DB));
      }
    }
#pragma unroll
    for (int kk = 0; kk < BC / 16; kk++) {
      uint32_t da[4];
      accToA(da, dp[2 * kk], dp[2 * kk + 1]);
      mmaStepNn<DT, ST>(acc, da, sK, kk);
    }
    __syncthreads();  // this buffer is refilled two tiles later
  }
  storeRowsAB(dq, dqdt, acc, rowA, rowB, d.tq, (size_t)b * d.tq, qStride, h * D, tig, d.scale, d.scale);
}

// dQ, version 2 (the default above 64 queries: attnVersion): as attnFwdMma2, each warp owns 32
// query rows (two m16 tiles, BR = 128), so each K or V fragment read by ldmatrix feeds four mma instead of two; the
// Q and dO fragments are re-read from shared memory at each k16 step (128 dQ accumulators at D 128 leave no room to
// hold them). Shared-memory reads per mma: 1 per 2.4 (version 1: 1 per 1.5). BC = 32 keys per tile as in version 1,
// and the same per-row arithmetic, so dQ equals version 1's up to the compiler's choices of fused multiply-adds.
template <int D>
__global__ void __launch_bounds__(128, 2) attnBwdDqMma2(const bf16* __restrict__ dout, const bf16* __restrict__ q,
                                                        const bf16* __restrict__ k, const bf16* __restrict__ v,
                                                        const float* __restrict__ lse, const float* __restrict__ Dv,
                                                        void* dq, int dqdt, AttnDims d, AttnMask m) {
  constexpr int BR = 128, BC = 32, ST = D + 8, NT = BC / 8, DT = D / 8, KT = BC / 16;
  extern __shared__ __align__(16) unsigned char smRaw[];
  bf16* sQ = reinterpret_cast<bf16*>(smRaw);  // [BR][ST]
  bf16* sO = sQ + BR * ST;                      // dO [BR][ST]
  bf16* sKb = sO + BR * ST;                     // two K tiles [BC][ST] (double buffer)
  bf16* sVb = sKb + 2 * BC * ST;                // two V tiles [BC][ST]
  __shared__ int sRange[3];
  __shared__ Vis sVis[BR];  // row visibility, read per tile from shared memory (registers are at the limit)

  // Grid (heads, query tiles, batch), query tiles in reverse: the heaviest causal tiles start first.
  const int h = blockIdx.x, qt = gridDim.y - 1 - blockIdx.y, b = blockIdx.z;
  const int hk = h / (d.heads / d.kvHeads);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, tig = lane % 4;
  const int i0 = qt * BR;
  const size_t qStride = (size_t)d.heads * D, kStride = (size_t)d.kvHeads * D;
  const bf16* kBase = k + (size_t)b * d.kvStride * kStride + (size_t)hk * D;
  const bf16* vBase = v + (size_t)b * d.kvStride * kStride + (size_t)hk * D;

  // This thread's 4 rows, r = 2·mt + half: m16 tile mt of the warp, accumulator half (row g or g + 8).
  const int rowBase = i0 + warp * 32 + g;
  const size_t lrow = ((size_t)b * d.heads + h) * d.tq;
  float l2[4], Dr[4];  // lse in the exp2 domain (−inf: fully masked row, P = 0) and D_i = Σ dO·O
  Vis vis[4];
#pragma unroll
  for (int r = 0; r < 4; r++) {
    const int row = rowBase + (r >> 1) * 16 + (r & 1) * 8;
    vis[r] = rowVis(m, b, row, d.tq, d.tk);
    if (tig == 0) sVis[warp * 32 + (r >> 1) * 16 + (r & 1) * 8 + g] = vis[r];
    l2[r] = row < d.tq ? lse[lrow + row] * kLog2e : -INFINITY;
    Dr[r] = row < d.tq ? Dv[lrow + row] : 0.0f;
  }
  const TileRange tr = blockTileRange(sRange, vis, 4, BC);  // its barriers also publish sVis
  const Vis* myVis = sVis + warp * 32 + g;  // row r of this thread: myVis[(r >> 1) * 16 + (r & 1) * 8]
  const float sl2 = d.scale * kLog2e;
  // Shared byte addresses of this lane's ldmatrix rows: Q and dO (the warp's 32 rows), K (both layouts), V.
  const uint32_t qAddr0 = smemAddr(sQ) + 2 * (warp * 32 * ST + laneA(ST));
  const uint32_t oAddr0 = smemAddr(sO) + 2 * (warp * 32 * ST + laneA(ST));
  const uint32_t kAddr0 = smemAddr(sKb) + 2 * laneBnt(ST);
  const uint32_t kAddrT0 = smemAddr(sKb) + 2 * laneBnn(ST);
  const uint32_t vAddr0 = smemAddr(sVb) + 2 * laneBnt(ST);

  float acc[2][DT][4];
  zeroAcc(acc[0]);
  zeroAcc(acc[1]);

  const int nTiles = tr.count();
  auto issue = [&](int it) { issueKeyTile<D, BC>(sKb, sVb, kBase, vBase, kStride, tr.tile(it) * BC, it & 1, d); };
  // Q and dO travel in the same copy group as the first K/V tile (row i0 exists: i0 < tq); rows past tq are zeros.
  if (nTiles > 0) {
    loadTileAsync<D>(sQ, q + ((size_t)b * d.tq + i0) * qStride + (size_t)h * D, qStride, BR, d.tq - i0);
    loadTileAsync<D>(sO, dout + ((size_t)b * d.tq + i0) * qStride + (size_t)h * D, qStride, BR, d.tq - i0);
    issue(0);
  }
  for (int it = 0; it < nTiles; it++) {
    const int j0 = tr.tile(it) * BC;
    // One barrier per tile (see attnFwdMma2): tile it is visible, tile it - 1's buffer is free for tile it + 1.
    waitAndIssueNext(issue, it, nTiles);
    // A warp none of whose rows sees this tile skips it (its dS would be all zeros).
    if (!warpAnySees(myVis, j0, j0 + BC)) continue;
    const uint32_t qA = opaque(qAddr0), oA = opaque(oAddr0);
    const uint32_t boff = (it & 1) * (BC * ST * 2);
    const uint32_t kA = kAddr0 + boff, kAT = kAddrT0 + boff, vA = vAddr0 + boff;

    // S = Q·Kᵀ and dP = dO·Vᵀ for the warp's 32 rows × BC keys.
    float s[2][NT][4], dp[2][NT][4];
    zeroAcc(s[0]);
    zeroAcc(s[1]);
    zeroAcc(dp[0]);
    zeroAcc(dp[1]);
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
      mmaStepNt2<NT, ST>(s, qA, kA, kk);
      mmaStepNt2<NT, ST>(dp, oA, vA, kk);
    }

    // dS = P ⊙ (dP − D_i), P = exp2(S·scale·log2e − lse·log2e); 0 where masked or the row is fully masked.
    const bool full = warpAllSee(myVis, j0, j0 + BC);
#pragma unroll
    for (int r = 0; r < 4; r++) {
      const int mt = r >> 1, e0 = (r & 1) * 2;
      const Vis vr = myVis[mt * 16 + (r & 1) * 8];
#pragma unroll
      for (int n = 0; n < NT; n++) {
#pragma unroll
        for (int e = e0; e < e0 + 2; e++) {
          const bool seen = full || isVisible(vr, j0 + n * 8 + tig * 2 + (e & 1));
          const float p = (l2[r] != -INFINITY && seen) ? exp2f(s[mt][n][e] * sl2 - l2[r]) : 0.0f;
          dp[mt][n][e] = p * (dp[mt][n][e] - Dr[r]);
        }
      }
    }
    // dQ += dS·K.
#pragma unroll
    for (int kk = 0; kk < KT; kk++) {
      uint32_t da[2][4];
      accToA(da[0], dp[0][2 * kk], dp[0][2 * kk + 1]);
      accToA(da[1], dp[1][2 * kk], dp[1][2 * kk + 1]);
      mmaStepNn2<DT, ST>(acc, da[0], da[1], kAT, kk);
    }
  }

#pragma unroll
  for (int r = 0; r < 4; r++) {
    const int row = rowBase + (r >> 1) * 16 + (r & 1) * 8;
    if (row >= d.tq) continue;
    const size_t rowOff = ((size_t)b * d.tq + row) * qStride + (size_t)h * D + tig * 2;
    storeRow2(dq, dqdt, acc[r >> 1], r & 1, rowOff, d.scale);
  }
}

// dK = scale · Σ dSᵀ·Q and dV = Σ Pᵀ·dO over every query head of the KV group and every query tile that sees the
// key tile; one CTA per (key tile, KV head, batch), each warp owning 16 keys. The visible query tiles are listed
// first (visibility does not depend on the head); their Q/dO tiles are then streamed double-buffered.
// kPerHead (version 2): one CTA per (key tile, query head, batch) instead, covering that head only and writing f32
// partial sums pk, pv [batch, heads, tk, D] (unscaled) that attnDkvReduce adds over the group in head order. With 8
// KV heads at T 2048 the per-KV-head grid is 256 CTAs for 264 CTA slots of an H100, the first (causal) key tiles
// doing ~2× the average work, so half the machine idles while they finish; per query head there are group× more,
// shorter CTAs to balance.
template <int D, bool kPerHead = false>
__global__ void __launch_bounds__(128) attnBwdDkvMma(const bf16* __restrict__ dout, const bf16* __restrict__ q,
                                                     const bf16* __restrict__ k, const bf16* __restrict__ v,
                                                     const float* __restrict__ lse, const float* __restrict__ Dv,
                                                     void* dk, int dkdt, void* dv, int dvdt, AttnDims d, AttnMask m,
                                                     float* pk, float* pv) {
  constexpr int BCK = 64, BRQ = 32, ST = D + 8, NQ = BRQ / 8, DT = D / 8;
  extern __shared__ __align__(16) unsigned char smRaw[];
  bf16* sK = reinterpret_cast<bf16*>(smRaw);
  bf16* sV = sK + BCK * ST;
  bf16* sQb = sV + BCK * ST;        // two Q tiles
  bf16* sOb = sQb + 2 * BRQ * ST;   // two dO tiles
  int* sList = reinterpret_cast<int*>(sOb + 2 * BRQ * ST);  // visible query tiles, ascending
  __shared__ float sL2[2][BRQ], sD[2][BRQ];
  __shared__ int sE1[2][BRQ], sS2[2][BRQ], sE2[2][BRQ];
  __shared__ int sFull[2];  // per item: every row sees every key of the CTA and has a finite lse (no masking needed)
  __shared__ int sCount;

  // The key tile slowest (as dkvGrid): blocks dispatch in order of decreasing work under a causal mask.
  const int kt = blockIdx.z, hy = blockIdx.x, b = blockIdx.y;  // hy: the query head (kPerHead) or the KV head
  const int group = d.heads / d.kvHeads;
  const int hk = kPerHead ? hy / group : hy;
  const int head0 = kPerHead ? hy : hk * group, nHeads = kPerHead ? 1 : group;  // the query heads covered
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, tig = lane % 4;
  const int j0 = kt * BCK, j1 = min(j0 + BCK, d.tk);
  const size_t qStride = (size_t)d.heads * D, kStride = (size_t)d.kvHeads * D;
  loadTile<D>(sK, k + ((size_t)b * d.kvStride + j0) * kStride + (size_t)hk * D, kStride, BCK, d.tk - j0);
  loadTile<D>(sV, v + ((size_t)b * d.kvStride + j0) * kStride + (size_t)hk * D, kStride, BCK, d.tk - j0);
  const float sl2 = d.scale * kLog2e;

  const int nList = visibleQueryTiles<BRQ>(sList, &sCount, m, b, j0, j1, d);
  const int nItems = nHeads * nList;

  // Row data of the next item, loaded by threads 0..31 at issue and stored to shared memory by publish: at once
  // (version 1), or, per query head (version 2), only after the current item's products, so that the global loads'
  // latency hides behind them instead of stalling warp 0 (and the barrier, hence every warp) before each item.
  Vis pVis{0, 0, 0};
  float pL = -INFINITY, pD = 0.0f;
  // Called by all 32 lanes of warp 0 together (BRQ = 32 rows, one per lane).
  auto publish = [&](int buf) {
    const bool all = __all_sync(0xffffffffu, pL != -INFINITY && allVisible(pVis, j0, j1));
    if (threadIdx.x == 0) sFull[buf] = all;
    sE1[buf][threadIdx.x] = pVis.e1;
    sS2[buf][threadIdx.x] = pVis.s2;
    sE2[buf][threadIdx.x] = pVis.e2;
    sL2[buf][threadIdx.x] = pL == -INFINITY ? -INFINITY : pL * kLog2e;
    sD[buf][threadIdx.x] = pD;
  };
  // Queue the Q/dO tiles and the row data of work item w (head head0 + w / nList, query tile sList[w % nList]).
  auto issue = [&](int w) {
    const int buf = w & 1;
    const int h = head0 + w / nList;
    const int i0 = sList[w % nList] * BRQ;
    loadTileAsync<D>(sQb + buf * BRQ * ST, q + ((size_t)b * d.tq + i0) * qStride + (size_t)h * D, qStride, BRQ,
                     d.tq - i0);
    loadTileAsync<D>(sOb + buf * BRQ * ST, dout + ((size_t)b * d.tq + i0) * qStride + (size_t)h * D, qStride, BRQ,
                     d.tq - i0);
    cpAsyncCommit();
    if (threadIdx.x < BRQ) {
      const int i = i0 + threadIdx.x;
      const size_t lrow = ((size_t)b * d.heads + h) * d.tq;
      pVis = rowVis(m, b, i, d.tq, d.tk);
      pL = i < d.tq ? lse[lrow + i] : -INFINITY;
      pD = i < d.tq ? Dv[lrow + i] : 0.0f;
      if (!kPerHead) publish(buf);
    }
  };

  float ak[DT][4], av[DT][4];
  zeroAcc(ak);
  zeroAcc(av);
  const int keyA = j0 + warp * 16 + g, keyB = keyA + 8;

  if (nItems > 0) {
    issue(0);
    if (kPerHead && threadIdx.x < BRQ) publish(0);
  }
  for (int w = 0; w < nItems; w++) {
    const int buf = w & 1;
    issueNextAndWait(issue, w, nItems);
    const bf16* sQ = sQb + buf * BRQ * ST;
    const bf16* sO = sOb + buf * BRQ * ST;
    // Most items of a long causal row range are fully visible: their softmax terms need no masking (≈ 3× fewer
    // instructions per element; Nsight Compute showed this kernel issue-bound, its per-element work the largest part).
    const bool full = sFull[buf] != 0;

    float st[NQ][4], dpt[NQ][4];
    productsNtPair<D>(st, dpt, sK, sV, warp * 16, sQ, sO);
    // Element (key row, query column): Pᵀ into st, dSᵀ into dpt.
#pragma unroll
    for (int n = 0; n < NQ; n++) {
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int qc = n * 8 + tig * 2 + (e & 1);
        const float p = itemProb(st[n][e], sl2, sL2[buf][qc], full, sE1[buf], sS2[buf], sE2[buf], qc,
                                 e < 2 ? keyA : keyB);
        st[n][e] = p;
        dpt[n][e] = p * (dpt[n][e] - sD[buf][qc]);
      }
    }
#pragma unroll
    for (int kk = 0; kk < BRQ / 16; kk++) {
      uint32_t pa[4], da[4];
      accToA(pa, st[2 * kk], st[2 * kk + 1]);
      accToA(da, dpt[2 * kk], dpt[2 * kk + 1]);
#pragma unroll
      for (int dn = 0; dn < DT / 2; dn++) {
        uint32_t ob[4], qb[4];
        ldB_nn(ob, sO, ST, kk * 16, dn * 16);
        ldB_nn(qb, sQ, ST, kk * 16, dn * 16);
        mma(av[2 * dn], pa, ob[0], ob[1]);
        mma(av[2 * dn + 1], pa, ob[2], ob[3]);
        mma(ak[2 * dn], da, qb[0], qb[1]);
        mma(ak[2 * dn + 1], da, qb[2], qb[3]);
      }
    }
    if (kPerHead && threadIdx.x < BRQ && w + 1 < nItems) publish((w + 1) & 1);  // item w + 1's rows (see pVis)
    __syncthreads();  // this buffer is refilled two items later
  }
  if (kPerHead) {
    float* pkb = pk + ((size_t)b * d.heads + hy) * d.tk * D;
    float* pvb = pv + ((size_t)b * d.heads + hy) * d.tk * D;
#pragma unroll
    for (int n = 0; n < DT; n++) {
      const int col = n * 8 + tig * 2;
      if (keyA < d.tk) {
        *reinterpret_cast<float2*>(pkb + (size_t)keyA * D + col) = make_float2(ak[n][0], ak[n][1]);
        *reinterpret_cast<float2*>(pvb + (size_t)keyA * D + col) = make_float2(av[n][0], av[n][1]);
      }
      if (keyB < d.tk) {
        *reinterpret_cast<float2*>(pkb + (size_t)keyB * D + col) = make_float2(ak[n][2], ak[n][3]);
        *reinterpret_cast<float2*>(pvb + (size_t)keyB * D + col) = make_float2(av[n][2], av[n][3]);
      }
    }
    return;
  }
#pragma unroll
  for (int n = 0; n < DT; n++) {
    const int col = hk * D + n * 8 + tig * 2;
    if (keyA < d.tk) {
      size_t o0 = ((size_t)b * d.kvStride + keyA) * kStride + col;
      stf(dk, dkdt, o0, ak[n][0] * d.scale);
      stf(dk, dkdt, o0 + 1, ak[n][1] * d.scale);
      stf(dv, dvdt, o0, av[n][0]);
      stf(dv, dvdt, o0 + 1, av[n][1]);
    }
    if (keyB < d.tk) {
      size_t o0 = ((size_t)b * d.kvStride + keyB) * kStride + col;
      stf(dk, dkdt, o0, ak[n][2] * d.scale);
      stf(dk, dkdt, o0 + 1, ak[n][3] * d.scale);
      stf(dv, dvdt, o0, av[n][2]);
      stf(dv, dvdt, o0 + 1, av[n][3]);
    }
  }
}

// dK = scale · Σ over the group's query heads (ascending: deterministic) of attnBwdDkvMma<D, true>'s partial sums,
// dV likewise, into [batch·kvStride, kvHeads·D]; rows tk..kvStride were zeroed by attentionBwdK.
__global__ void attnDkvReduce(const float* __restrict__ pk, const float* __restrict__ pv, void* dk, int dkdt, void* dv,
                              int dvdt, AttnDims d) {
  const int D = d.headDim, group = d.heads / d.kvHeads;
  const size_t total = (size_t)d.batch * d.tk * d.kvHeads * D;
  for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < total; e += (size_t)gridDim.x * blockDim.x) {
    // e runs over (b, key, hk, c), c fastest: the output's own order.
    const int c = (int)(e % D);
    const int hk = (int)((e / D) % d.kvHeads);
    const int key = (int)((e / ((size_t)D * d.kvHeads)) % d.tk);
    const int b = (int)(e / ((size_t)D * d.kvHeads * d.tk));
    float sk = 0.0f, sv = 0.0f;
    for (int hh = 0; hh < group; hh++) {
      const size_t p = (((size_t)b * d.heads + hk * group + hh) * d.tk + key) * D + c;
      sk += pk[p];
      sv += pv[p];
    }
    const size_t o = ((size_t)b * d.kvStride + key) * ((size_t)d.kvHeads * D) + (size_t)hk * D + c;
    stf(dk, dkdt, o, sk * d.scale);
    stf(dv, dvdt, o, sv);
  }
}

// ---- scalar kernels: one warp per query row (or key row), any head size up to 256, f32 arithmetic ----
constexpr int kMaxPerLane = 8;

__global__ void attnFwdScalar(const void* q, int qdt, const void* k, int kdt, const void* v, int vdt, void* out,
                              int odt, float* lse, AttnDims d, AttnMask m) {
  size_t w = blockIdx.x * (size_t)(blockDim.x / 32) + threadIdx.x / 32;
  int lane = threadIdx.x % 32;
  if (w >= (size_t)d.batch * d.heads * d.tq) return;
  const int D = d.headDim;
  int i = (int)(w % d.tq), h = (int)((w / d.tq) % d.heads), b = (int)(w / ((size_t)d.tq * d.heads));
  int hk = h / (d.heads / d.kvHeads);
  size_t qb = ((size_t)b * d.tq + i) * ((size_t)d.heads * D) + (size_t)h * D;
  size_t kStride = (size_t)d.kvHeads * D;
  float qv[kMaxPerLane], o[kMaxPerLane];
#pragma unroll
  for (int t = 0; t < kMaxPerLane; t++) {
    int c = lane + 32 * t;
    qv[t] = c < D ? ldf(q, qdt, qb + c) : 0.0f;
    o[t] = 0.0f;
  }
  Vis vi = rowVis(m, b, i, d.tq, d.tk);
  float mx = -INFINITY, l = 0.0f;
  for (int part = 0; part < 2; part++) {
    int ja = part == 0 ? 0 : max(vi.s2, vi.e1), jb = part == 0 ? vi.e1 : vi.e2;
    for (int j = ja; j < jb; j++) {
      size_t kb = ((size_t)b * d.kvStride + j) * kStride + (size_t)hk * D;
      float s = 0.0f;
#pragma unroll
      for (int t = 0; t < kMaxPerLane; t++) {
        int c = lane + 32 * t;
        if (c < D) s += qv[t] * ldf(k, kdt, kb + c);
      }
      s = warpSum(s) * d.scale;
      float nm = fmaxf(mx, s);
      float corr = expf(mx - nm), p = expf(s - nm);
      l = l * corr + p;
#pragma unroll
      for (int t = 0; t < kMaxPerLane; t++) {
        int c = lane + 32 * t;
        if (c < D) o[t] = o[t] * corr + p * ldf(v, vdt, kb + c);
      }
      mx = nm;
    }
  }
  float inv = l != 0.0f ? 1.0f / l : 0.0f;  // 0 only when fully masked; NaN passes
#pragma unroll
  for (int t = 0; t < kMaxPerLane; t++) {
    int c = lane + 32 * t;
    if (c < D) stf(out, odt, qb + c, o[t] * inv);
  }
  if (lane == 0) lse[((size_t)b * d.heads + h) * d.tq + i] = l != 0.0f ? mx + logf(l) : -INFINITY;
}

__global__ void attnBwdDqScalar(const void* dout, int dodt, const void* q, int qdt, const void* k, int kdt,
                                const void* v, int vdt, const float* lse, const float* Dv, void* dq, int dqdt,
                                AttnDims d, AttnMask m) {
  size_t w = blockIdx.x * (size_t)(blockDim.x / 32) + threadIdx.x / 32;
  int lane = threadIdx.x % 32;
  if (w >= (size_t)d.batch * d.heads * d.tq) return;
  const int D = d.headDim;
  int i = (int)(w % d.tq), h = (int)((w / d.tq) % d.heads), b = (int)(w / ((size_t)d.tq * d.heads));
  int hk = h / (d.heads / d.kvHeads);
  size_t qb = ((size_t)b * d.tq + i) * ((size_t)d.heads * D) + (size_t)h * D;
  size_t kStride = (size_t)d.kvHeads * D;
  size_t lrow = ((size_t)b * d.heads + h) * d.tq + i;
  float L = lse[lrow], Di = Dv[lrow];
  float qv[kMaxPerLane], gv[kMaxPerLane], acc[kMaxPerLane];
#pragma unroll
  for (int t = 0; t < kMaxPerLane; t++) {
    int c = lane + 32 * t;
    qv[t] = c < D ? ldf(q, qdt, qb + c) : 0.0f;
    gv[t] = c < D ? ldf(dout, dodt, qb + c) : 0.0f;
    acc[t] = 0.0f;
  }
  Vis vi = rowVis(m, b, i, d.tq, d.tk);
  if (L != -INFINITY) {
    for (int part = 0; part < 2; part++) {
      int ja = part == 0 ? 0 : max(vi.s2, vi.e1), jb = part == 0 ? vi.e1 : vi.e2;
      for (int j = ja; j < jb; j++) {
        size_t kb = ((size_t)b * d.kvStride + j) * kStride + (size_t)hk * D;
        float s = 0.0f, dpv = 0.0f;
#pragma unroll
        for (int t = 0; t < kMaxPerLane; t++) {
          int c = lane + 32 * t;
          if (c < D) {
            s += qv[t] * ldf(k, kdt, kb + c);
            dpv += gv[t] * ldf(v, vdt, kb + c);
          }
        }
        s = warpSum(s);
        dpv = warpSum(dpv);
        float p = expf(s * d.scale - L);
        float ds = p * (dpv - Di);
#pragma unroll
        for (int t = 0; t < kMaxPerLane; t++) {
          int c = lane + 32 * t;
          if (c < D) acc[t] += ds * ldf(k, kdt, kb + c);
        }
      }
    }
  }
#pragma unroll
  for (int t = 0; t < kMaxPerLane; t++) {
    int c = lane + 32 * t;
    if (c < D) stf(dq, dqdt, qb + c, acc[t] * d.scale);
  }
}

__global__ void attnBwdDkvScalar(const void* dout, int dodt, const void* q, int qdt, const void* k, int kdt,
                                 const void* v, int vdt, const float* lse, const float* Dv, void* dk, int dkdt,
                                 void* dv, int dvdt, AttnDims d, AttnMask m) {
  size_t w = blockIdx.x * (size_t)(blockDim.x / 32) + threadIdx.x / 32;
  int lane = threadIdx.x % 32;
  if (w >= (size_t)d.batch * d.kvHeads * d.tk) return;
  const int D = d.headDim;
  int j = (int)(w % d.tk), hk = (int)((w / d.tk) % d.kvHeads), b = (int)(w / ((size_t)d.tk * d.kvHeads));
  int group = d.heads / d.kvHeads;
  size_t kStride = (size_t)d.kvHeads * D, qStride = (size_t)d.heads * D;
  size_t kb = ((size_t)b * d.kvStride + j) * kStride + (size_t)hk * D;
  float kv[kMaxPerLane], vv[kMaxPerLane], gk[kMaxPerLane], gvv[kMaxPerLane];
#pragma unroll
  for (int t = 0; t < kMaxPerLane; t++) {
    int c = lane + 32 * t;
    kv[t] = c < D ? ldf(k, kdt, kb + c) : 0.0f;
    vv[t] = c < D ? ldf(v, vdt, kb + c) : 0.0f;
    gk[t] = gvv[t] = 0.0f;
  }
  for (int hh = 0; hh < group; hh++) {
    int h = hk * group + hh;
    for (int i = 0; i < d.tq; i++) {
      Vis vi = rowVis(m, b, i, d.tq, d.tk);
      if (!isVisible(vi, j)) continue;
      size_t lrow = ((size_t)b * d.heads + h) * d.tq + i;
      float L = lse[lrow];
      if (L == -INFINITY) continue;
      size_t qb = ((size_t)b * d.tq + i) * qStride + (size_t)h * D;
      float s = 0.0f, dpv = 0.0f;
#pragma unroll
      for (int t = 0; t < kMaxPerLane; t++) {
        int c = lane + 32 * t;
        if (c < D) {
          s += ldf(q, qdt, qb + c) * kv[t];
          dpv += ldf(dout, dodt, qb + c) * vv[t];
        }
      }
      s = warpSum(s);
      dpv = warpSum(dpv);
      float p = expf(s * d.scale - L);
      float ds = p * (dpv - Dv[lrow]);
#pragma unroll
      for (int t = 0; t < kMaxPerLane; t++) {
        int c = lane + 32 * t;
        if (c < D) {
          gvv[t] += p * ldf(dout, dodt, qb + c);
          gk[t] += ds * ldf(q, qdt, qb + c);
        }
      }
    }
  }
#pragma unroll
  for (int t = 0; t < kMaxPerLane; t++) {
    int c = lane + 32 * t;
    if (c < D) {
      stf(dk, dkdt, kb + c, gk[t] * d.scale);
      stf(dv, dvdt, kb + c, gvv[t]);
    }
  }
}

// ---- host side ----
template <typename K>
void allowSmem(K kernel, size_t bytes) {
  if (bytes > 48 * 1024)
    checkCuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes),
              "cudaFuncSetAttribute(attention shared memory)");
}

// A/B switches for timing the overlapped backward steps against serial ones on a GPU (run 31 left open which part of
// the dQ kernel's change cost ≈ 3 %): PARO_ATTN_SERIAL=dq, dkv or dq,dkv makes the dQ kernel, version 4's dK/dV
// kernel or both wait for each product before issuing the next (same buffers, same in-place operands); bit 1 dQ,
// bit 2 dK/dV. Read at each call, as PARO_ATTN_KERNEL.
int attnSerial() {
  const char* e = std::getenv("PARO_ATTN_SERIAL");
  if (e == nullptr) return 0;
  return (std::strstr(e, "dq") ? 1 : 0) | (std::strstr(e, "dkv") ? 2 : 0);
}

// The fewest waves of CTAs (per SM) for which versions 3 and 4 run the backward (default 4; PARO_ATTN_BWD_WAVES: to
// time version 4's backward on short grids, where version 2's runs by default).
int attnBwdWaves() {
  const char* e = std::getenv("PARO_ATTN_BWD_WAVES");
  return e ? std::max(0, std::atoi(e)) : 4;
}

// Whether a block may have `bytes` of dynamic shared memory on this device (the opt-in per-block limit), with 2 KiB to
// spare for the kernels' static arrays.
bool smemFits(size_t bytes) {
  int dev = 0, perBlock = 0;
  checkCuda(cudaGetDevice(&dev), "cudaGetDevice");
  checkCuda(cudaDeviceGetAttribute(&perBlock, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev), "cudaDeviceGetAttribute");
  return bytes + 2048 <= (size_t)perBlock;
}

/** A bf16 view of a tensor: the tensor itself, or a bf16 copy in scratch memory. */
struct Bf16View {
  const bf16* p;
  Scratch copy;
  Bf16View(const void* src, int dt, size_t n) : p(nullptr), copy(dt == DT_BF16 ? 0 : n * 2) {
    if (dt == DT_BF16) {
      p = static_cast<const bf16*>(src);
    } else {
      castK(src, dt, copy.p, DT_BF16, n);
      p = copy.as<bf16>();
    }
  }
};

bool mmaPath(const AttnDims& d, bool forceScalar) {
  return !forceScalar && (d.headDim == 64 || d.headDim == 128);
}

void checkDims(const AttnDims& d) {
  if (d.headDim <= 0 || d.headDim > 32 * kMaxPerLane) throw ArgError("attention: headDim must be in 1..256");
  if (d.kvHeads <= 0 || d.heads % d.kvHeads != 0) throw ArgError("attention: heads must be a multiple of kvHeads");
  if (d.kvStride < d.tk) throw ArgError("attention: kvStride must be at least tk");
}

template <int D>
void fwdMma(const bf16* q, const bf16* k, const bf16* v, void* out, int odt, float* lse, const AttnDims& d,
            const AttnMask& m) {
  size_t smem = (size_t)(64 + 4 * 64) * (D + 8) * 2;  // Q + double-buffered K and V
  allowSmem(attnFwdMma<D>, smem);
  dim3 grid((unsigned)((d.tq + 63) / 64), (unsigned)d.heads, (unsigned)d.batch);
  attnFwdMma<D><<<grid, 128, smem, stream()>>>(q, k, v, out, odt, lse, d, m);
  checkLaunch("attention.forward(mma)");
}

// Version-2 tile sizes and dynamic shared memory. Forward: 32 keys per tile at D 128 (64, i.e. 64 score registers,
// spills at the 255-register limit of 2 CTAs per SM); Q (128 rows) + double-buffered K and V (BC rows each).
constexpr int fwd2Keys(int D) { return D == 128 ? 32 : 64; }
constexpr size_t fwd2Smem(int D) { return (size_t)(128 + 4 * fwd2Keys(D)) * (D + 8) * 2; }
// dQ: Q and dO (128 rows each) + double-buffered K and V (32 rows each); 104 KB at D 128, above the 99 KB a block
// may have on sm_86/sm_89 (attnVersion then keeps version 1).
constexpr size_t dq2Smem(int D) { return (size_t)(128 + 128 + 4 * 32) * (D + 8) * 2; }

template <int D>
void fwdMma2(const bf16* q, const bf16* k, const bf16* v, void* out, int odt, float* lse, const AttnDims& d,
             const AttnMask& m) {
  constexpr int BC = fwd2Keys(D);
  const size_t smem = fwd2Smem(D);
  allowSmem(attnFwdMma2<D, BC>, smem);
  dim3 grid((unsigned)d.heads, (unsigned)((d.tq + 127) / 128), (unsigned)d.batch);  // see attnFwdMma2: heads in x
  attnFwdMma2<D, BC><<<grid, 128, smem, stream()>>>(q, k, v, out, odt, lse, d, m);
  checkLaunch("attention.forward(mma v2)");
}

// Version 3 (attnFwdWg): Vᵀ in scratch memory, then the warpgroup kernel; grid as version 2's.
void fwdWg(const bf16* q, const bf16* k, const bf16* v, void* out, int odt, float* lse, const AttnDims& d,
           const AttnMask& m) {
  const int ldT = (d.tk + kWgKeys - 1) / kWgKeys * kWgKeys;  // whole key tiles: the kernel reads them unguarded
  Scratch vt((size_t)d.batch * d.kvHeads * kWgD * ldT * sizeof(bf16));
  dim3 tg((unsigned)(ldT / 32), (unsigned)(d.kvHeads * (kWgD / 32)), (unsigned)d.batch);
  attnTransposeHeads<<<tg, 256, 0, stream()>>>(v, vt.as<bf16>(), d.kvStride, d.tk, d.kvHeads, ldT);
  checkLaunch("attention.forward(transpose V)");
  allowSmem(attnFwdWg, kWgSmem);
  dim3 grid((unsigned)d.heads, (unsigned)((d.tq + kWgRows - 1) / kWgRows), (unsigned)d.batch);
  attnFwdWg<<<grid, 256, kWgSmem, stream()>>>(q, k, vt.as<bf16>(), ldT, out, odt, lse, d, m);
  checkLaunch("attention.forward(wgmma v3)");
}

// Version 4 (attnFwdTma): tensor maps of Q [batch, tq, heads, 128] and K, V [batch, tk (rows of kvStride), kvHeads,
// 128] (innermost last here; tma.cuh lists them innermost first) whose boxes are 128 rows of 64 elements. Keys past
// tk and queries past tq arrive as zeros. False, before any launch, where a map cannot be made (driver without
// cuTensorMapEncodeTiled, a base not 16-byte aligned): version 3 runs.
bool fwdTma(const bf16* q, const bf16* k, const bf16* v, void* out, int odt, float* lse, const AttnDims& d,
            const AttnMask& m, bool pingPong, bool persistent) {
  constexpr uint64_t D = kWgD, E = sizeof(bf16);
  if (!smemFits(kTmaSmem) || !(d.scale > 0.0f)) return false;  // wgSoftmaxFma needs scale > 0
  const uint64_t B = (uint64_t)d.batch, H = (uint64_t)d.heads, Hk = (uint64_t)d.kvHeads;
  CUtensorMap qMap, kMap, vMap;
  const uint64_t qDims[4] = {D, H, (uint64_t)d.tq, B}, qStrides[3] = {D * E, H * D * E, (uint64_t)d.tq * H * D * E};
  const uint64_t kDims[4] = {D, Hk, (uint64_t)d.tk, B};
  const uint64_t kStrides[3] = {D * E, Hk * D * E, (uint64_t)d.kvStride * Hk * D * E};
  if (!tmaMapBf16(&qMap, q, qDims, qStrides, {64, 1, 128, 1}) ||
      !tmaMapBf16(&kMap, k, kDims, kStrides, {64, 1, 128, 1}) ||
      !tmaMapBf16(&vMap, v, kDims, kStrides, {64, 1, 128, 1}))
    return false;
  // Version 4: a CTA per work item; version 5: one per SM (1 CTA fits an SM), each taking every gridDim-th item.
  const int items = queryItemCount(d);
  const unsigned grid = (unsigned)(persistent ? std::min(items, smCount()) : items);
  auto kernel = pingPong ? attnFwdTma<true> : attnFwdTma<false>;
  allowSmem(kernel, kTmaSmem);
  kernel<<<grid, 256, kTmaSmem, stream()>>>(qMap, kMap, vMap, out, odt, lse, d, m);
  checkLaunch("attention.forward(tma v4)");
  return true;
}

// The grid of the version-3/4 dK/dV kernels: (KV head, batch entry, 128-key tile), the key tile slowest, so that the
// blocks dispatch in order of decreasing work under a causal mask (the first key tiles are seen by the most queries).
// With the key tile fastest, each (KV head, batch entry)'s heavy first tiles came after the previous one's light last
// ones and the heaviest started in the last wave: a list schedule of batch 16 at T 2048 on 132 SMs (per-CTA work ∝
// its items) ends 7.3 % after the ideal, against 0.1 % in this order (version 2's per-query-head dK/dV at batch 1,
// 264 slots: 29.6 % against 1.7 %). perHead: a block per query head instead of per KV head.
dim3 dkvGrid(const AttnDims& d, bool perHead = false) {
  return dim3((unsigned)(perHead ? d.heads : d.kvHeads), (unsigned)d.batch, (unsigned)((d.tk + kWgKeys - 1) / kWgKeys));
}

// Version 4's dK/dV (attnBwdDkvTma): the row table, then tensor maps of K, V [batch, tk (rows of kvStride), kvHeads,
// 128], Q, dO [batch, tq, heads, 128] and the table [batch·heads, 5, ldR] (innermost last), whose boxes are 128 or 64
// rows of 64 elements (the table's: 5 × 64 values, unswizzled). False, before any launch, where a map cannot be made:
// version 3's kernel runs. perHead: a CTA per query head with partial sums, then attnDkvReduce (version 5 on short
// grids: wgmmaBackwardSplit). dqAcc (version 6, per KV head): dQ in the same kernel, added into this zeroed f32
// buffer [batch, tq, heads, 128] (unscaled).
bool dkvTma(const bf16* dout, const bf16* q, const bf16* k, const bf16* v, const float* lse, const float* Dv, void* dk,
            int dkdt, void* dv, int dvdt, const AttnDims& d, const AttnMask& m, bool perHead,
            float* dqAcc = nullptr) {
  constexpr uint64_t D = kWgD, E = sizeof(bf16);
  const bool fused = dqAcc != nullptr && !perHead;
  const size_t smem = tmaDkvSmem((d.tq + kWgBq - 1) / kWgBq, fused);
  if (!smemFits(smem)) return false;
  const uint64_t B = (uint64_t)d.batch, H = (uint64_t)d.heads, Hk = (uint64_t)d.kvHeads, T = (uint64_t)d.tq;
  const int ldR = (d.tq + 3) / 4 * 4;  // table rows: 16-byte strides
  Scratch table((size_t)d.batch * d.heads * kRowFields * ldR * sizeof(float));
  CUtensorMap kMap, vMap, qMap, oMap, rowMap;
  const uint64_t kDims[4] = {D, Hk, (uint64_t)d.tk, B};
  const uint64_t kStrides[3] = {D * E, Hk * D * E, (uint64_t)d.kvStride * Hk * D * E};
  const uint64_t qDims[4] = {D, H, T, B}, qStrides[3] = {D * E, H * D * E, T * H * D * E};
  const uint64_t rDims[4] = {T, kRowFields, B * H, 1};
  const uint64_t rStrides[3] = {(uint64_t)ldR * 4, (uint64_t)kRowFields * ldR * 4, B * H * kRowFields * ldR * 4};
  if (!tmaMapBf16(&kMap, k, kDims, kStrides, {64, 1, 128, 1}) ||
      !tmaMapBf16(&vMap, v, kDims, kStrides, {64, 1, 128, 1}) ||
      !tmaMapBf16(&qMap, q, qDims, qStrides, {64, 1, 64, 1}) ||
      !tmaMapBf16(&oMap, dout, qDims, qStrides, {64, 1, 64, 1}) ||
      !tmaMapF32(&rowMap, table.as<float>(), rDims, rStrides, {64, kRowFields, 1, 1}))
    return false;
  const size_t rows = (size_t)d.batch * d.heads * d.tq;
  attnRowTable<<<gridFor(rows, 256), 256, 0, stream()>>>(lse, Dv, table.as<float>(), ldR, d, m);
  checkLaunch("attention.backward(row table)");
  const dim3 gk = dkvGrid(d, perHead);
  const size_t nPart = perHead ? (size_t)d.batch * d.heads * d.tk * kWgD : 0;
  Scratch pk(nPart * sizeof(float)), pv(nPart * sizeof(float));
  const bool serial = (attnSerial() & 2) != 0;
  auto kernel = fused     ? attnBwdDkvTma<false, false, true>
                : perHead ? (serial ? attnBwdDkvTma<false, true> : attnBwdDkvTma<true, true>)
                          : (serial ? attnBwdDkvTma<false, false> : attnBwdDkvTma<true, false>);
  allowSmem(kernel, smem);
  kernel<<<gk, 256, smem, stream()>>>(kMap, vMap, qMap, oMap, rowMap, dk, dkdt, dv, dvdt, pk.as<float>(),
                                      pv.as<float>(), dqAcc, d, m);
  checkLaunch("attention.backward.dkv(tma v4)");
  if (perHead) {
    const size_t total = (size_t)d.batch * d.tk * d.kvHeads * kWgD;
    attnDkvReduce<<<gridFor(total, 256), 256, 0, stream()>>>(pk.as<float>(), pv.as<float>(), dk, dkdt, dv, dvdt, d);
    checkLaunch("attention.backward.dkv reduce");
  }
  return true;
}

// Version 6's dQ: the f32 sums the dK/dV kernel's atomics made, times the scale, in dq's dtype (same layout).
__global__ void attnDqFromAcc(const float* __restrict__ acc, void* dq, int dqdt, size_t n, float scale) {
  for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < n; e += (size_t)gridDim.x * blockDim.x)
    stf(dq, dqdt, e, acc[e] * scale);
}

// Version 5's dQ (attnBwdDqTma): tensor maps of Q, dO [batch, tq, heads, 128] (boxes of 128 rows) and K, V [batch,
// tk (rows of kvStride), kvHeads, 128] (boxes of 64 rows) of 64 elements; one CTA per SM. False, before any launch,
// where a map cannot be made: version 3's dQ kernel runs.
bool dqTma(const bf16* dout, const bf16* q, const bf16* k, const bf16* v, const float* lse, const float* Dv, void* dq,
           int dqdt, const AttnDims& d, const AttnMask& m) {
  constexpr uint64_t D = kWgD, E = sizeof(bf16);
  if (!smemFits(kTmaDqSmem)) return false;
  const uint64_t B = (uint64_t)d.batch, H = (uint64_t)d.heads, Hk = (uint64_t)d.kvHeads, T = (uint64_t)d.tq;
  CUtensorMap qMap, oMap, kMap, vMap;
  const uint64_t qDims[4] = {D, H, T, B}, qStrides[3] = {D * E, H * D * E, T * H * D * E};
  const uint64_t kDims[4] = {D, Hk, (uint64_t)d.tk, B};
  const uint64_t kStrides[3] = {D * E, Hk * D * E, (uint64_t)d.kvStride * Hk * D * E};
  if (!tmaMapBf16(&qMap, q, qDims, qStrides, {64, 1, 128, 1}) ||
      !tmaMapBf16(&oMap, dout, qDims, qStrides, {64, 1, 128, 1}) ||
      !tmaMapBf16(&kMap, k, kDims, kStrides, {64, 1, 64, 1}) || !tmaMapBf16(&vMap, v, kDims, kStrides, {64, 1, 64, 1}))
    return false;
  const unsigned grid = (unsigned)std::min(queryItemCount(d), smCount());
  auto kernel = (attnSerial() & 1) ? attnBwdDqTma<false> : attnBwdDqTma<true>;
  allowSmem(kernel, kTmaDqSmem);
  kernel<<<grid, 256, kTmaDqSmem, stream()>>>(qMap, oMap, kMap, vMap, lse, Dv, dq, dqdt, d, m);
  checkLaunch("attention.backward.dq(tma v5)");
  return true;
}

// Version 3's backward: dQ by attnBwdDqWg, dK/dV by attnBwdDkvWg on Qᵀ and dOᵀ copies (scratch memory); with tma
// (version 4) dK/dV by attnBwdDkvTma (no copies) where dkvTma can make its maps, per query head with dkvPerHead; with
// dqPersistent (version 5) dQ by attnBwdDqTma where dqTma can make its maps.
void bwdWg(const bf16* dout, const bf16* q, const bf16* k, const bf16* v, const float* lse, const float* Dv, void* dq,
           int dqdt, void* dk, int dkdt, void* dv, int dvdt, const AttnDims& d, const AttnMask& m, bool tma,
           bool dqPersistent, bool dkvPerHead, bool fusedDq) {
  constexpr int D = kWgD;
  if (tma && fusedDq && !dkvPerHead) {  // version 6: dQ inside the dK/dV kernel, then scaled into dq's dtype
    const size_t nq = (size_t)d.batch * d.tq * d.heads * D;
    Scratch acc(nq * sizeof(float));
    memsetD(acc.p, 0, nq * sizeof(float));
    if (dkvTma(dout, q, k, v, lse, Dv, dk, dkdt, dv, dvdt, d, m, false, acc.as<float>())) {
      attnDqFromAcc<<<gridFor(nq, 256), 256, 0, stream()>>>(acc.as<float>(), dq, dqdt, nq, d.scale);
      checkLaunch("attention.backward.dq(from the fused sums)");
      return;
    }
  }
  if (!dqPersistent || !dqTma(dout, q, k, v, lse, Dv, dq, dqdt, d, m)) {
    dim3 gq((unsigned)d.heads, (unsigned)((d.tq + kWgRows - 1) / kWgRows), (unsigned)d.batch);
    auto kernel = (attnSerial() & 1) ? attnBwdDqWg<false> : attnBwdDqWg<true>;
    allowSmem(kernel, kWgDqSmem);
    kernel<<<gq, 256, kWgDqSmem, stream()>>>(dout, q, k, v, lse, Dv, dq, dqdt, d, m);
    checkLaunch("attention.backward.dq(wgmma v3)");
  }
  if (tma && dkvTma(dout, q, k, v, lse, Dv, dk, dkdt, dv, dvdt, d, m, dkvPerHead)) return;
  const int ldT = (d.tq + kWgBq - 1) / kWgBq * kWgBq;  // whole 64-query tiles: the kernel reads them unguarded
  const size_t nT = (size_t)d.batch * d.heads * D * ldT;
  Scratch qT(nT * sizeof(bf16)), doT(nT * sizeof(bf16));
  dim3 tg((unsigned)(ldT / 32), (unsigned)(d.heads * (D / 32)), (unsigned)d.batch);
  attnTransposeHeads<<<tg, 256, 0, stream()>>>(q, qT.as<bf16>(), d.tq, d.tq, d.heads, ldT);
  attnTransposeHeads<<<tg, 256, 0, stream()>>>(dout, doT.as<bf16>(), d.tq, d.tq, d.heads, ldT);
  checkLaunch("attention.backward(transpose Q, dO)");
  const size_t smem = wgDkvSmem((d.tq + kWgBq - 1) / kWgBq);
  allowSmem(attnBwdDkvWg, smem);
  const dim3 gk = dkvGrid(d);
  attnBwdDkvWg<<<gk, 256, smem, stream()>>>(q, qT.as<bf16>(), dout, doT.as<bf16>(), k, v, lse, Dv, ldT, dk, dkdt, dv,
                                            dvdt, d, m);
  checkLaunch("attention.backward.dkv(wgmma v3)");
}

// dK, dV by key tiles (one version).
template <int D>
void launchDkv(const bf16* dout, const bf16* q, const bf16* k, const bf16* v, const float* lse, const float* Dv,
               void* dk, int dkdt, void* dv, int dvdt, const AttnDims& d, const AttnMask& m) {
  const int nQt = (d.tq + 31) / 32;
  size_t smemK = (size_t)(64 + 64 + 4 * 32) * (D + 8) * 2 + (size_t)nQt * 4;  // K, V + double-buffered Q, dO + list
  allowSmem(attnBwdDkvMma<D>, smemK);
  dim3 gk((unsigned)d.kvHeads, (unsigned)d.batch, (unsigned)((d.tk + 63) / 64));
  attnBwdDkvMma<D><<<gk, 128, smemK, stream()>>>(dout, q, k, v, lse, Dv, dk, dkdt, dv, dvdt, d, m, nullptr, nullptr);
  checkLaunch("attention.backward.dkv(mma)");
}

template <int D>
void bwdMma(const bf16* dout, const bf16* q, const bf16* k, const bf16* v, const float* lse, const float* Dv, void* dq,
            int dqdt, void* dk, int dkdt, void* dv, int dvdt, const AttnDims& d, const AttnMask& m) {
  size_t smemQ = (size_t)(64 + 64 + 4 * 32) * (D + 8) * 2;  // Q, dO + double-buffered K and V
  allowSmem(attnBwdDqMma<D>, smemQ);
  dim3 gq((unsigned)((d.tq + 63) / 64), (unsigned)d.heads, (unsigned)d.batch);
  attnBwdDqMma<D><<<gq, 128, smemQ, stream()>>>(dout, q, k, v, lse, Dv, dq, dqdt, d, m);
  checkLaunch("attention.backward.dq(mma)");
  launchDkv<D>(dout, q, k, v, lse, Dv, dk, dkdt, dv, dvdt, d, m);
}

// Whether dK/dV run per query head with partial sums and attnDkvReduce (GQA only): when one CTA per (key tile of
// keysPerCta, KV head, batch) gives fewer than 4 waves of 2 CTAs per SM. With the causal mask the first key tiles
// carry twice the average work, so a grid of about one wave (8 KV heads, T 2048, batch 1: 256 CTAs of 64 keys for an
// H100's 264 slots) leaves half the machine idle at its end; from a few waves the heaviest-first order balances it,
// and the partial sums (2 × 4 bytes × D per key and query head, written and read) would only cost.
bool dkvSplit(const AttnDims& d, int keysPerCta) {
  if (d.heads == d.kvHeads) return false;
  const size_t ctas = (size_t)d.batch * d.kvHeads * ((d.tk + keysPerCta - 1) / keysPerCta);
  return ctas < (size_t)8 * smCount();
}

// dQ by version 2, dK/dV by version 2 (per query head or per KV head: dkvSplit).
template <int D>
void bwdMma2(const bf16* dout, const bf16* q, const bf16* k, const bf16* v, const float* lse, const float* Dv,
             void* dq, int dqdt, void* dk, int dkdt, void* dv, int dvdt, const AttnDims& d, const AttnMask& m) {
  const size_t smemQ = dq2Smem(D);
  allowSmem(attnBwdDqMma2<D>, smemQ);
  dim3 gq((unsigned)d.heads, (unsigned)((d.tq + 127) / 128), (unsigned)d.batch);  // see attnBwdDqMma2: heads in x
  attnBwdDqMma2<D><<<gq, 128, smemQ, stream()>>>(dout, q, k, v, lse, Dv, dq, dqdt, d, m);
  checkLaunch("attention.backward.dq(mma v2)");
  const size_t total = (size_t)d.batch * d.tk * d.kvHeads * D;
  if (!dkvSplit(d, 64)) {
    launchDkv<D>(dout, q, k, v, lse, Dv, dk, dkdt, dv, dvdt, d, m);
    return;
  }
  // One CTA per query head (see attnBwdDkvMma's kPerHead), then the group sums in head order.
  const size_t nPart = (size_t)d.batch * d.heads * d.tk * D;
  Scratch pk(nPart * sizeof(float)), pv(nPart * sizeof(float));
  const int nQt = (d.tq + 31) / 32;
  const size_t smemK = (size_t)(64 + 64 + 4 * 32) * (D + 8) * 2 + (size_t)nQt * 4;  // as launchDkv
  allowSmem(attnBwdDkvMma<D, true>, smemK);
  dim3 gk((unsigned)d.heads, (unsigned)d.batch, (unsigned)((d.tk + 63) / 64));
  attnBwdDkvMma<D, true><<<gk, 128, smemK, stream()>>>(dout, q, k, v, lse, Dv, dk, dkdt, dv, dvdt, d, m,
                                                        pk.as<float>(), pv.as<float>());
  checkLaunch("attention.backward.dkv(mma v2, per head)");
  if (total == 0) return;
  attnDkvReduce<<<gridFor(total, 256), 256, 0, stream()>>>(pk.as<float>(), pv.as<float>(), dk, dkdt, dv, dvdt, d);
  checkLaunch("attention.backward.dkv reduce");
}

// Which tensor-core kernels run: PARO_ATTN_KERNEL=v1 the first versions (attnFwdMma; attnBwdDqMma and attnBwdDkvMma
// per KV head), =v2 version 2 (attnFwdMma2; attnBwdDqMma2 and, with GQA, attnBwdDkvMma per query head +
// attnDkvReduce), =v3 version 3 (attnFwdWg where wgmmaForward allows it, attnBwdDqWg + attnBwdDkvWg where
// wgmmaBackwardSplit allows; version 2's kernels elsewhere), =v4 (attnFwdTma<false> where fwdTma can make its tensor
// maps, else as v3; attnBwdDkvTma where dkvTma can make its maps), =v4p (attnFwdTma<true>: ping-pong; run 29: no
// faster than v4), =v5 (attnFwdTma<false> on one CTA per SM; backward as v4 with dQ by attnBwdDqTma and, on grids
// short of 4 waves per KV head, dK/dV per query head), =v6 (as v5, with dQ inside the per-KV-head dK/dV kernel:
// attnBwdDkvTma's kFusedDq; atomics, not bit-reproducible); unset or anything
// else: version 4 when the query count is above 64, else version 1. A version-2 or -3 CTA takes 128 query rows, so at
// tq ≤ 64 (decode, draft steps) three of its warps (or more) would compute masked rows, twice as long as version 1's.
// Read at each call (one getenv, well under a microsecond beside a launch) rather than once, so that one process can
// time and check every version by setting process.env.PARO_ATTN_KERNEL (scripts/gpu-check.ts --bench,
// scripts/backend-ops.ts).
// Version 1 also runs where the device cannot give a block version 2's shared memory (smem2: dynamic bytes; 2 KiB
// more for the static arrays).
int attnVersion(const AttnDims& d, size_t smem2) {
  if (!smemFits(smem2)) return 1;
  const char* e = std::getenv("PARO_ATTN_KERNEL");
  if (e != nullptr && std::strcmp(e, "v1") == 0) return 1;
  if (e != nullptr && std::strcmp(e, "v2") == 0) return 2;
  if (e != nullptr && std::strcmp(e, "v3") == 0) return 3;
  if (e != nullptr && std::strcmp(e, "v4") == 0) return 4;
  if (e != nullptr && std::strcmp(e, "v4p") == 0) return 5;
  if (e != nullptr && std::strcmp(e, "v5") == 0) return 6;
  if (e != nullptr && std::strcmp(e, "v6") == 0) return 7;
  return d.tq > 64 ? 4 : 1;
}

// Whether the version-3 forward can run: head dim 128, the addon built with sm_90a machine code (PARO_HAVE_SM90A,
// native/build.mjs), a device of compute capability 9.0 (H100, H200: the only one sm_90a code runs on) and its
// shared memory.
bool wgmmaForward(const AttnDims& d) {
#ifdef PARO_HAVE_SM90A
  if (d.headDim != kWgD) return false;
  int dev = 0, major = 0, minor = 0;
  checkCuda(cudaGetDevice(&dev), "cudaGetDevice");
  checkCuda(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev), "cudaDeviceGetAttribute");
  checkCuda(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev), "cudaDeviceGetAttribute");
  return major == 9 && minor == 0 && smemFits(kWgSmem);
#else
  (void)d;
  return false;
#endif
}

// Whether the wgmma backward (versions 3 to 5) runs and how its dK/dV kernel splits the work: 0 not (version 2's
// kernels), 1 a CTA per (key tile, KV head), 2 per (key tile, query head) with partial sums (headSplit: version 5).
// As wgmmaForward, the dK/dV kernel's shared memory (with the query-tile list), and a grid of at least attnBwdWaves()
// (4) waves of its one-CTA-per-SM blocks, per KV head or else (headSplit) per query head. With a causal mask the first
// key tiles carry most of the work: on a grid of under a wave the heaviest CTA sets the time, so version 2's
// per-query-head split (2 CTAs per SM, 64-key tiles) balances better there; see dkvSplit.
int wgmmaBackwardSplit(const AttnDims& d, bool headSplit) {
  if (!wgmmaForward(d)) return 0;
  if (!smemFits(wgDkvSmem((d.tq + kWgBq - 1) / kWgBq))) return 0;
  const size_t tiles = (size_t)d.batch * ((d.tk + kWgKeys - 1) / kWgKeys), need = (size_t)attnBwdWaves() * smCount();
  if (tiles * d.kvHeads >= need) return 1;
  return headSplit && d.heads > d.kvHeads && tiles * d.heads >= need ? 2 : 0;
}

}  // namespace

void attentionFwdK(const void* q, int qdt, const void* k, int kdt, const void* v, int vdt, void* out, int odt,
                   float* lse, const AttnDims& d, const AttnMask& m, bool forceScalar) {
  checkDims(d);
  if (d.batch == 0 || d.tq == 0 || d.heads == 0) return;
  if (mmaPath(d, forceScalar)) {
    size_t nq = (size_t)d.batch * d.tq * d.heads * d.headDim;
    size_t nk = (size_t)d.batch * d.kvStride * d.kvHeads * d.headDim;
    Bf16View Q(q, qdt, nq), Kv(k, kdt, nk), V(v, vdt, nk);
    const int ver = attnVersion(d, fwd2Smem(d.headDim));
    if (ver >= 4 && wgmmaForward(d) && fwdTma(Q.p, Kv.p, V.p, out, odt, lse, d, m, ver == 5, ver >= 6)) return;
    if (ver >= 3 && wgmmaForward(d)) {
      fwdWg(Q.p, Kv.p, V.p, out, odt, lse, d, m);
      return;
    }
    const bool v2 = ver >= 2;
    if (d.headDim == 64) (v2 ? fwdMma2<64> : fwdMma<64>)(Q.p, Kv.p, V.p, out, odt, lse, d, m);
    else (v2 ? fwdMma2<128> : fwdMma<128>)(Q.p, Kv.p, V.p, out, odt, lse, d, m);
    return;
  }
  size_t rows = (size_t)d.batch * d.heads * d.tq;
  attnFwdScalar<<<(unsigned)((rows + 3) / 4), 128, 0, stream()>>>(q, qdt, k, kdt, v, vdt, out, odt, lse, d, m);
  checkLaunch("attention.forward(scalar)");
}

void attentionBwdK(const void* dout, int dodt, const void* q, int qdt, const void* k, int kdt, const void* v, int vdt,
                   const void* out, int odt, const float* lse, void* dq, int dqdt, void* dk, int dkdt, void* dv,
                   int dvdt, const AttnDims& d, const AttnMask& m, bool forceScalar) {
  checkDims(d);
  size_t nk = (size_t)d.batch * d.kvStride * d.kvHeads * d.headDim;
  // Rows tk..kvStride of dK/dV (spare cache capacity) get zeros.
  memsetD(dk, 0, nk * dtypeSize(dkdt));
  memsetD(dv, 0, nk * dtypeSize(dvdt));
  if (d.batch == 0 || d.tq == 0 || d.heads == 0) return;
  size_t rows = (size_t)d.batch * d.heads * d.tq;
  Scratch Dv(rows * sizeof(float));
  attnRowDotKernel<<<(unsigned)((rows + 7) / 8), 256, 0, stream()>>>(dout, dodt, out, odt, Dv.as<float>(), d);
  checkLaunch("attention.backward.rowdot");
  if (mmaPath(d, forceScalar)) {
    size_t nq = rows * d.headDim;
    Bf16View dO(dout, dodt, nq), Q(q, qdt, nq), Kv(k, kdt, nk), V(v, vdt, nk);
    const int ver = attnVersion(d, dq2Smem(d.headDim));
    const float* Dp = Dv.as<float>();
    if (ver == 1 && d.headDim == 64) bwdMma<64>(dO.p, Q.p, Kv.p, V.p, lse, Dp, dq, dqdt, dk, dkdt, dv, dvdt, d, m);
    else if (ver == 1) bwdMma<128>(dO.p, Q.p, Kv.p, V.p, lse, Dp, dq, dqdt, dk, dkdt, dv, dvdt, d, m);
    else if (const int split = ver >= 3 ? wgmmaBackwardSplit(d, ver >= 6) : 0)
      bwdWg(dO.p, Q.p, Kv.p, V.p, lse, Dp, dq, dqdt, dk, dkdt, dv, dvdt, d, m, ver >= 4, ver >= 6, split == 2,
            ver == 7);
    else if (d.headDim == 64) bwdMma2<64>(dO.p, Q.p, Kv.p, V.p, lse, Dp, dq, dqdt, dk, dkdt, dv, dvdt, d, m);
    else bwdMma2<128>(dO.p, Q.p, Kv.p, V.p, lse, Dp, dq, dqdt, dk, dkdt, dv, dvdt, d, m);
    return;
  }
  attnBwdDqScalar<<<(unsigned)((rows + 3) / 4), 128, 0, stream()>>>(dout, dodt, q, qdt, k, kdt, v, vdt, lse,
                                                                   Dv.as<float>(), dq, dqdt, d, m);
  checkLaunch("attention.backward.dq(scalar)");
  size_t krows = (size_t)d.batch * d.kvHeads * d.tk;
  if (krows == 0) return;
  attnBwdDkvScalar<<<(unsigned)((krows + 3) / 4), 128, 0, stream()>>>(dout, dodt, q, qdt, k, kdt, v, vdt, lse,
                                                                     Dv.as<float>(), dk, dkdt, dv, dvdt, d, m);
  checkLaunch("attention.backward.dkv(scalar)");
}

}  // namespace paro
