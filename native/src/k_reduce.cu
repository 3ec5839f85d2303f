// Reductions and row-wise kernels. Every reduction has a fixed order for a given shape (two passes, no float
// atomics), so results are bit-identical run to run.
#include <algorithm>
#include <cmath>
#include <vector>

#include "common.cuh"
#include "ops.h"
#include "runtime.h"

namespace paro {
namespace {

constexpr int kBlock = 256;

// ---- column reduction: out[c] = Σ_r a[r,c]·(b ? b[r,c] : 1)·(rs ? rs[r] : 1) ----
constexpr int kColTile = 32, kRowLanes = 8;

__global__ void colPartialKernel(const void* a, int adt, const void* b, int bdt, const float* rs, size_t rows, size_t C,
                                 size_t rowsPerChunk, double* partial) {
  __shared__ double sh[kRowLanes][kColTile];
  size_t c = blockIdx.x * (size_t)kColTile + threadIdx.x;
  size_t r0 = blockIdx.y * rowsPerChunk;
  size_t r1 = min(rows, r0 + rowsPerChunk);
  double acc = 0;
  if (c < C) {
    for (size_t r = r0 + threadIdx.y; r < r1; r += kRowLanes) {
      double v = ldf(a, adt, r * C + c);
      if (b) v *= (double)ldf(b, bdt, r * C + c) * (rs ? (double)rs[r] : 1.0);
      acc += v;
    }
  }
  sh[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    double s = 0;
    for (int k = 0; k < kRowLanes; k++) s += sh[k][threadIdx.x];
    partial[blockIdx.y * C + c] = s;
  }
}

__global__ void colFinalKernel(const double* partial, size_t chunks, size_t C, float* out) {
  for (size_t c = blockIdx.x * (size_t)blockDim.x + threadIdx.x; c < C; c += (size_t)gridDim.x * blockDim.x) {
    double s = 0;
    for (size_t k = 0; k < chunks; k++) s += partial[k * C + c];
    out[c] = (float)s;
  }
}

// ---- whole-tensor sums in f64: per-block partials, summed on the host in block order ----
__device__ void blockPartial(double v, double* partial) {
  __shared__ double sh[32];
  v = warpSumD(v);
  int w = threadIdx.x / 32, l = threadIdx.x % 32;
  if (l == 0) sh[w] = v;
  __syncthreads();
  if (w == 0) {
    double s = l < blockDim.x / 32 ? sh[l] : 0.0;
    s = warpSumD(s);
    if (l == 0) partial[blockIdx.x] = s;
  }
}

__global__ void sumSquaresKernel(const void* x, int dt, size_t n, double* partial) {
  double acc = 0;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    double v = ldf(x, dt, i);
    acc += v * v;
  }
  blockPartial(acc, partial);
}

// W elements per thread and step (W = 8: 16-byte accesses where vec8Ok; the per-element values are the same, the
// f64 partial sums add in another order).
template <int W>
__global__ void smoothL1Kernel(const void* pred, int pdt, const void* target, int tdt, size_t n, void* dpred, int ddt,
                               double* partial) {
  double acc = 0;
  float invN = 1.0f / (float)n;
  for (size_t c = blockIdx.x * (size_t)blockDim.x + threadIdx.x; c < n / W; c += (size_t)gridDim.x * blockDim.x) {
    float p[W], t[W], g[W];
    ldw<W>(pred, pdt, c * W, p);
    ldw<W>(target, tdt, c * W, t);
#pragma unroll
    for (int k = 0; k < W; k++) {
      float d = p[k] - t[k];
      float ad = fabsf(d);
      acc += ad < 1.0f ? 0.5 * (double)d * d : (double)ad - 0.5;
      g[k] = (ad < 1.0f ? d : copysignf(1.0f, d)) * invN;
    }
    if (dpred) stw<W>(dpred, ddt, c * W, g);
  }
  blockPartial(acc, partial);
}

__global__ void nonFiniteKernel(const void* x, int dt, size_t n, int* flag) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    if (!isfinite(ldf(x, dt, i))) *flag = 1;
}

size_t partialBlocks(size_t n) {
  size_t b = (n + 2047) / 2048;
  return b < 1 ? 1 : (b > 1024 ? 1024 : b);
}

double hostSum(const Scratch& partial, size_t blocks) {
  std::vector<double> h(blocks);
  download(h.data(), partial.p, blocks * sizeof(double));
  double s = 0;
  for (double v : h) s += v;
  return s;
}

// ---- RMSNorm: L lanes per row (32: one warp; 16 or 8 for rows of at most L·W channels, such as Qwen3's per-head
// q/k norms of 128, which would leave half a warp idle); each lane takes W consecutive channels per step (W = 8:
// 16-byte accesses where C % 8 == 0 and the operands are aligned; the lanes' partial sums then add in another order
// than with W = 1). With L < 32 the row's lanes reduce by the last steps of warpSum's butterfly, whose first steps
// would only have added the idle lanes' zeros: the same sums. ----

/** Sum over the L-lane group of this lane (xor butterfly; L = 32 is warpSum). */
template <int L>
__device__ __forceinline__ float groupSum(float v) {
#pragma unroll
  for (int o = L / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

template <int W, int L>
__global__ void rmsnormKernel(const void* x, int xdt, const void* w, int wdt, void* y, int ydt, float* rstd, size_t rows,
                              int C, float eps) {
  size_t row = (blockIdx.x * (size_t)(blockDim.x / 32) + threadIdx.x / 32) * (32 / L) + (threadIdx.x % 32) / L;
  int lane = threadIdx.x % L;
  // Lanes of a row past the end take part in the shuffles with zeros (no early return inside a warp).
  bool valid = row < rows;
  size_t o = valid ? row * C : 0;
  int end = valid ? C : 0;
  float ss = 0;
  for (int c = lane * W; c < end; c += L * W) {
    float v[W];
    ldw<W>(x, xdt, o + c, v);
#pragma unroll
    for (int k = 0; k < W; k++) ss += v[k] * v[k];
  }
  ss = groupSum<L>(ss);
  float rs = 1.0f / sqrtf(ss / (float)C + eps);
  if (valid && lane == 0) rstd[row] = rs;
  for (int c = lane * W; c < end; c += L * W) {
    float v[W], g[W];
    ldw<W>(x, xdt, o + c, v);
    ldw<W>(w, wdt, c, g);
#pragma unroll
    for (int k = 0; k < W; k++) v[k] = g[k] * (v[k] * rs);
    stw<W>(y, ydt, o + c, v);
  }
}

template <int W, int L>
__global__ void rmsnormBwdKernel(const void* dy, int dydt, const void* x, int xdt, const void* w, int wdt,
                                 const float* rstd, void* dx, int dxdt, size_t rows, int C) {
  size_t row = (blockIdx.x * (size_t)(blockDim.x / 32) + threadIdx.x / 32) * (32 / L) + (threadIdx.x % 32) / L;
  int lane = threadIdx.x % L;
  bool valid = row < rows;
  size_t o = valid ? row * C : 0;
  int end = valid ? C : 0;
  float rs = valid ? rstd[row] : 0.0f;
  float dot = 0;
  for (int c = lane * W; c < end; c += L * W) {
    float d[W], g[W], v[W];
    ldw<W>(dy, dydt, o + c, d);
    ldw<W>(w, wdt, c, g);
    ldw<W>(x, xdt, o + c, v);
#pragma unroll
    for (int k = 0; k < W; k++) dot += d[k] * g[k] * (v[k] * rs);
  }
  float m = groupSum<L>(dot) / (float)C;
  for (int c = lane * W; c < end; c += L * W) {
    float d[W], g[W], v[W];
    ldw<W>(dy, dydt, o + c, d);
    ldw<W>(w, wdt, c, g);
    ldw<W>(x, xdt, o + c, v);
#pragma unroll
    for (int k = 0; k < W; k++) {
      float gk = d[k] * g[k];  // a statement of its own, as before vectorizing: the same FMA contraction
      d[k] = rs * (gk - v[k] * rs * m);
    }
    stw<W>(dx, dxdt, o + c, d);
  }
}

/** Launch an RMSNorm kernel family member for C channels: the widest access the operands allow (W), and the fewest
 *  lanes per row (L) that still give each lane at most one step, for short rows. */
template <template <int, int> class Launch, typename... A>
void rmsnormDispatch(bool vec8, int C, size_t rows, A... args) {
  const int warps = 8;
  auto grid = [&](int L) { size_t perBlock = (size_t)warps * (32 / L); return (unsigned)((rows + perBlock - 1) / perBlock); };
  if (vec8) {
    if (C <= 8 * 8) Launch<8, 8>::run(grid(8), warps * 32, args...);
    else if (C <= 16 * 8) Launch<8, 16>::run(grid(16), warps * 32, args...);
    else Launch<8, 32>::run(grid(32), warps * 32, args...);
  } else {
    Launch<1, 32>::run(grid(32), warps * 32, args...);
  }
}

template <int W, int L>
struct RmsnormFwd {
  template <typename... A>
  static void run(unsigned grid, int block, A... args) { rmsnormKernel<W, L><<<grid, block, 0, stream()>>>(args...); }
};
template <int W, int L>
struct RmsnormBwd {
  template <typename... A>
  static void run(unsigned grid, int block, A... args) { rmsnormBwdKernel<W, L><<<grid, block, 0, stream()>>>(args...); }
};

// ---- block-wide reductions for one row per block ----
__device__ float blockMax(float v, float* sh) {
  v = warpMax(v);
  int w = threadIdx.x / 32, l = threadIdx.x % 32;
  __syncthreads();
  if (l == 0) sh[w] = v;
  __syncthreads();
  float r = l < blockDim.x / 32 ? sh[l] : -INFINITY;
  return warpMax(r);
}

__device__ float blockSum(float v, float* sh) {
  v = warpSum(v);
  int w = threadIdx.x / 32, l = threadIdx.x % 32;
  __syncthreads();
  if (l == 0) sh[w] = v;
  __syncthreads();
  float r = l < blockDim.x / 32 ? sh[l] : 0.0f;
  return warpSum(r);
}

__global__ void crossEntropyKernel(const void* logits, int ldt, size_t V, const int* labels, const float* weights,
                                   float* loss, float* lse, void* dlogits, int ddt) {
  __shared__ float sh[32];
  size_t row = blockIdx.x;
  size_t o = row * V;
  // One pass: running (max, Σ exp(x − max)) per thread, then merged across the block in a fixed order.
  float m = -INFINITY, s = 0.0f;
  for (size_t v = threadIdx.x; v < V; v += blockDim.x) {
    float x = ldf(logits, ldt, o + v);
    if (x > m) {
      s = s * expf(m - x) + 1.0f;
      m = x;
    } else if (x != -INFINITY) {
      s += expf(x - m);
    }
  }
  float mx = blockMax(m, sh);
  s = blockSum(m == -INFINITY ? 0.0f : s * expf(m - mx), sh);
  float l = mx + logf(s);
  int lab = labels[row];
  if (threadIdx.x == 0) {
    lse[row] = l;
    loss[row] = lab >= 0 ? l - ldf(logits, ldt, o + lab) : 0.0f;
  }
  if (!dlogits) return;
  float w = lab >= 0 ? weights[row] : 0.0f;
  for (size_t v = threadIdx.x; v < V; v += blockDim.x) {
    float d = 0.0f;
    if (w != 0.0f) {
      d = w * expf(ldf(logits, ldt, o + v) - l);
      if ((int)v == lab) d -= w;
    }
    stf(dlogits, ddt, o + v, d);
  }
}

__global__ void argmaxKernel(const void* x, int dt, size_t V, int* out) {
  __shared__ float shv[32];
  __shared__ int shi[32];
  size_t o = blockIdx.x * V;
  float best = -INFINITY;
  int bi = 0x7fffffff;
  for (size_t v = threadIdx.x; v < V; v += blockDim.x) {
    float val = ldf(x, dt, o + v);
    if (val > best || (bi == 0x7fffffff && !(val < best))) {
      best = val;
      bi = (int)v;
    }
  }
  // Larger value wins; equal values keep the lower index.
  for (int off = 16; off > 0; off >>= 1) {
    float ov = __shfl_xor_sync(0xffffffffu, best, off);
    int oi = __shfl_xor_sync(0xffffffffu, bi, off);
    if (ov > best || (ov == best && oi < bi)) { best = ov; bi = oi; }
  }
  int w = threadIdx.x / 32, l = threadIdx.x % 32;
  if (l == 0) { shv[w] = best; shi[w] = bi; }
  __syncthreads();
  if (w == 0) {
    best = l < blockDim.x / 32 ? shv[l] : -INFINITY;
    bi = l < blockDim.x / 32 ? shi[l] : 0x7fffffff;
    for (int off = 16; off > 0; off >>= 1) {
      float ov = __shfl_xor_sync(0xffffffffu, best, off);
      int oi = __shfl_xor_sync(0xffffffffu, bi, off);
      if (ov > best || (ov == best && oi < bi)) { best = ov; bi = oi; }
    }
    if (l == 0) out[blockIdx.x] = bi == 0x7fffffff ? 0 : bi;
  }
}

}  // namespace

void colReduceK(const void* a, int adt, const void* b, int bdt, const float* rowScale, size_t rows, size_t C,
                float* out) {
  if (C == 0) return;
  if (rows == 0) return fillK(out, DT_F32, C, 0.0f);
  // The chunking depends on the shape only, so the summation order does too.
  size_t rowsPerChunk = std::max<size_t>(128, (rows + 511) / 512);
  size_t chunks = (rows + rowsPerChunk - 1) / rowsPerChunk;
  Scratch partial(chunks * C * sizeof(double));
  dim3 grid((unsigned)((C + kColTile - 1) / kColTile), (unsigned)chunks);
  colPartialKernel<<<grid, dim3(kColTile, kRowLanes), 0, stream()>>>(a, adt, b, bdt, rowScale, rows, C, rowsPerChunk,
                                                                    partial.as<double>());
  checkLaunch("colReduce.partial");
  colFinalKernel<<<gridFor(C, kBlock), kBlock, 0, stream()>>>(partial.as<double>(), chunks, C, out);
  checkLaunch("colReduce.final");
}

double sumSquaresK(const void* x, int dt, size_t n) {
  if (n == 0) return 0;
  size_t blocks = partialBlocks(n);
  Scratch partial(blocks * sizeof(double));
  sumSquaresKernel<<<(unsigned)blocks, kBlock, 0, stream()>>>(x, dt, n, partial.as<double>());
  checkLaunch("sumSquares");
  return hostSum(partial, blocks);
}

bool nonFiniteK(const void* x, int dt, size_t n) {
  if (n == 0) return false;
  Scratch flag(sizeof(int));
  memsetD(flag.p, 0, sizeof(int));
  nonFiniteKernel<<<gridFor(n, kBlock), kBlock, 0, stream()>>>(x, dt, n, flag.as<int>());
  checkLaunch("hasNonFinite");
  int h = 0;
  download(&h, flag.p, sizeof(int));
  return h != 0;
}

double smoothL1K(const void* pred, int pdt, const void* target, int tdt, size_t n, void* dpred, int ddt) {
  if (n == 0) return 0;
  size_t blocks = partialBlocks(n);
  Scratch partial(blocks * sizeof(double));
  if (vec8Ok(n, {pred, target, dpred}))
    smoothL1Kernel<8><<<(unsigned)blocks, kBlock, 0, stream()>>>(pred, pdt, target, tdt, n, dpred, ddt, partial.as<double>());
  else
    smoothL1Kernel<1><<<(unsigned)blocks, kBlock, 0, stream()>>>(pred, pdt, target, tdt, n, dpred, ddt, partial.as<double>());
  checkLaunch("smoothL1");
  return hostSum(partial, blocks);
}

void rmsnormK(const void* x, int xdt, const void* w, int wdt, void* y, int ydt, float* rstd, size_t rows, int C,
              float eps) {
  if (rows == 0) return;
  rmsnormDispatch<RmsnormFwd>(vec8Ok((size_t)C, {x, w, y}), C, rows, x, xdt, w, wdt, y, ydt, rstd, rows, C, eps);
  checkLaunch("rmsnorm");
}

void rmsnormBwdK(const void* dy, int dydt, const void* x, int xdt, const void* w, int wdt, const float* rstd, void* dx,
                 int dxdt, float* dw, size_t rows, int C) {
  if (rows > 0) {
    rmsnormDispatch<RmsnormBwd>(vec8Ok((size_t)C, {dy, x, w, dx}), C, rows, dy, dydt, x, xdt, w, wdt, rstd, dx, dxdt,
                                rows, C);
    checkLaunch("rmsnormBackward");
  }
  // dw[c] = Σ_r dy[r,c]·x[r,c]·rstd[r]; a null dw: the caller discards it (a whole second pass over dy and x saved)
  if (dw) colReduceK(dy, dydt, x, xdt, rstd, rows, C, dw);
}

void crossEntropyK(const void* logits, int ldt, size_t rows, size_t V, const int* labels, const float* weights,
                   float* loss, float* lse, void* dlogits, int ddt) {
  if (rows == 0) return;
  crossEntropyKernel<<<(unsigned)rows, kBlock, 0, stream()>>>(logits, ldt, V, labels, weights, loss, lse, dlogits, ddt);
  checkLaunch("crossEntropy");
}

void argmaxK(const void* x, int dt, size_t rows, size_t V, int* out) {
  if (rows == 0) return;
  argmaxKernel<<<(unsigned)rows, kBlock, 0, stream()>>>(x, dt, V, out);
  checkLaunch("argmaxRows");
}

}  // namespace paro
