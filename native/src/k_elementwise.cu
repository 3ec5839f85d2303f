// Elementwise kernels: grid-stride loops over flat indices, f32 arithmetic, any storage dtype per operand. The
// memory-bound ones are templates on W, elements per thread and step: W = 8 (16-byte accesses, vec8Ok) where sizes
// and alignment allow, else W = 1; the arithmetic per element is the same, so both give bit-identical results.
#include "common.cuh"
#include "ops.h"

namespace paro {
namespace {

constexpr int kBlock = 256;

#define GRID_LOOP(i, n) for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

template <int W>
__global__ void castKernel(const void* src, int sdt, void* dst, int ddt, size_t n) {
  GRID_LOOP(c, n / W) {
    float v[W];
    ldw<W>(src, sdt, c * W, v);
    stw<W>(dst, ddt, c * W, v);
  }
}

__global__ void castIntKernel(const int* src, int* dst, size_t n) {
  GRID_LOOP(i, n) dst[i] = src[i];
}

__global__ void fillKernel(void* dst, int dt, size_t n, float value) {
  GRID_LOOP(i, n) stf(dst, dt, i, value);
}

__global__ void fillIntKernel(int* dst, size_t n, int value) {
  GRID_LOOP(i, n) dst[i] = value;
}

__device__ __forceinline__ uint32_t hash32(uint32_t x) {
  x ^= x >> 16; x *= 0x7feb352dU; x ^= x >> 15; x *= 0x846ca68bU; x ^= x >> 16;
  return x;
}

__global__ void randomKernel(void* dst, int dt, size_t n, uint32_t seed) {
  GRID_LOOP(i, n) {
    uint32_t h = hash32((uint32_t)i ^ hash32(seed + (uint32_t)(i >> 32) * 0x9e3779b9U));
    stf(dst, dt, i, (float)(h >> 8) * (2.0f / 16777216.0f) - 1.0f);
  }
}

// b broadcast over rows when C > 0 (C a multiple of W, so a W-run never crosses a row).
template <int W>
__global__ void addKernel(const void* a, int adt, const void* b, int bdt, void* out, int odt, size_t n, size_t C) {
  GRID_LOOP(c, n / W) {
    size_t i = c * W;
    float x[W], y[W];
    ldw<W>(a, adt, i, x);
    ldw<W>(b, bdt, C ? i % C : i, y);
#pragma unroll
    for (int k = 0; k < W; k++) x[k] += y[k];
    stw<W>(out, odt, i, x);
  }
}

template <int W>
__global__ void axpyKernel(void* a, int adt, const void* b, int bdt, size_t n, float alpha) {
  GRID_LOOP(c, n / W) {
    float x[W], y[W];
    ldw<W>(a, adt, c * W, x);
    ldw<W>(b, bdt, c * W, y);
#pragma unroll
    for (int k = 0; k < W; k++) x[k] = fmaf(alpha, y[k], x[k]);
    stw<W>(a, adt, c * W, x);
  }
}

template <int W>
__global__ void scaleKernel(const void* a, int adt, void* out, int odt, size_t n, float alpha) {
  GRID_LOOP(c, n / W) {
    float x[W];
    ldw<W>(a, adt, c * W, x);
#pragma unroll
    for (int k = 0; k < W; k++) x[k] *= alpha;
    stw<W>(out, odt, c * W, x);
  }
}

// C a multiple of W on the 8-wide path (a W-run stays in one row).
template <int W>
__global__ void colOpKernel(const void* a, int adt, const void* v, int vdt, void* out, int odt, size_t n, size_t C,
                            bool div) {
  GRID_LOOP(c, n / W) {
    size_t i = c * W;
    float x[W], s[W];
    ldw<W>(a, adt, i, x);
    ldw<W>(v, vdt, i % C, s);
#pragma unroll
    for (int k = 0; k < W; k++) x[k] = div ? x[k] / s[k] : x[k] * s[k];
    stw<W>(out, odt, i, x);
  }
}

__device__ __forceinline__ float sigmoid(float g) { return 1.0f / (1.0f + expf(-g)); }

template <int W>
__global__ void swigluKernel(const void* g, int gdt, const void* u, int udt, void* h, int hdt, size_t n) {
  GRID_LOOP(c, n / W) {
    float x[W], up[W];
    ldw<W>(g, gdt, c * W, x);
    ldw<W>(u, udt, c * W, up);
#pragma unroll
    for (int k = 0; k < W; k++) x[k] = x[k] * sigmoid(x[k]) * up[k];
    stw<W>(h, hdt, c * W, x);
  }
}

template <int W>
__global__ void swigluBwdKernel(const void* dh, int dhdt, const void* g, int gdt, const void* u, int udt, void* dg,
                                int dgdt, void* du, int dudt, size_t n) {
  GRID_LOOP(c, n / W) {
    float x[W], up[W], d[W], o1[W], o2[W];
    ldw<W>(g, gdt, c * W, x);
    ldw<W>(u, udt, c * W, up);
    ldw<W>(dh, dhdt, c * W, d);
#pragma unroll
    for (int k = 0; k < W; k++) {
      float s = sigmoid(x[k]);
      o1[k] = d[k] * x[k] * s;
      o2[k] = d[k] * up[k] * s * (1.0f + x[k] * (1.0f - s));
    }
    stw<W>(du, dudt, c * W, o1);
    stw<W>(dg, dgdt, c * W, o2);
  }
}

// W elements per thread and step (W = 8: 16-byte accesses where vec8Ok); the arithmetic per element is the same.
template <int W>
__global__ void adamwKernel(void* p, int pdt, const void* g, int gdt, void* m, int mdt, void* v, int vdt, size_t n,
                            float lr, float beta1, float beta2, float eps, float wd, float stepSize, float sqrtBc2) {
  GRID_LOOP(c, n / W) {
    float grad[W], pv[W], mv[W], vv[W];
    ldw<W>(g, gdt, c * W, grad);
    ldw<W>(p, pdt, c * W, pv);
    ldw<W>(m, mdt, c * W, mv);
    ldw<W>(v, vdt, c * W, vv);
#pragma unroll
    for (int k = 0; k < W; k++) {
      float pk = pv[k] * (1.0f - lr * wd);
      mv[k] = beta1 * mv[k] + (1.0f - beta1) * grad[k];
      vv[k] = vv[k] * beta2 + (1.0f - beta2) * grad[k] * grad[k];
      float denom = sqrtf(vv[k]) / sqrtBc2 + eps;
      pv[k] = pk - stepSize * (mv[k] / denom);
    }
    stw<W>(m, mdt, c * W, mv);
    stw<W>(v, vdt, c * W, vv);
    stw<W>(p, pdt, c * W, pv);
  }
}

__global__ void gather32Kernel(const uint32_t* table, const int* ids, uint32_t* out, size_t nIds, size_t units) {
  GRID_LOOP(i, nIds * units) {
    size_t r = i / units, u = i % units;
    out[i] = table[(size_t)ids[r] * units + u];
  }
}

__global__ void gather16Kernel(const uint16_t* table, const int* ids, uint16_t* out, size_t nIds, size_t units) {
  GRID_LOOP(i, nIds * units) {
    size_t r = i / units, u = i % units;
    out[i] = table[(size_t)ids[r] * units + u];
  }
}

// Row scatter: same dtype moves the storage units as they are (exact for i32 too); else through f32 (ldf/stf).
template <typename U>
__global__ void scatterSameKernel(const U* src, U* dst, const int* rows, size_t nRows, size_t units) {
  GRID_LOOP(i, nRows * units) {
    size_t r = i / units, u = i % units;
    dst[(size_t)rows[r] * units + u] = src[i];
  }
}

__global__ void scatterCastKernel(const void* src, int sdt, void* dst, int ddt, const int* rows, size_t nRows,
                                  size_t cols) {
  GRID_LOOP(i, nRows * cols) {
    size_t r = i / cols, c = i % cols;
    stf(dst, ddt, (size_t)rows[r] * cols + c, ldf(src, sdt, i));
  }
}

__global__ void cast2DKernel(const void* src, int sdt, size_t sPitch, void* dst, int ddt, size_t dPitch, size_t rows,
                             size_t cols) {
  GRID_LOOP(i, rows * cols) {
    size_t r = i / cols, c = i % cols;
    stf(dst, ddt, r * dPitch + c, ldf(src, sdt, r * sPitch + c));
  }
}

// One thread per (row, run of W consecutive m < headDim/2): the run's W angles are computed once and applied to the
// rotate-half pairs (m, m + headDim/2) of every head of the row (the angle depends on position and m only; one
// sincosf per element made the kernel compute-bound). The arithmetic per element is unchanged. In place is safe: each
// thread reads its elements before it writes them and no other thread touches them.
template <int W>
__global__ void ropeKernel(const void* x, int xdt, void* out, int odt, size_t rows, int width, const int* pos,
                           const float* invFreq, int headDim, bool inverse) {
  int half = headDim / 2;
  int runs = half / W;
  int heads = width / headDim;
  GRID_LOOP(i, rows * (size_t)runs) {
    int m0 = (int)(i % runs) * W;
    size_t r = i / runs;
    float s[W], c[W];
#pragma unroll
    for (int k = 0; k < W; k++) {
      // φ = pos·invFreq rounded to f32, as PyTorch computes it.
      float phi = (float)pos[r] * invFreq[m0 + k];
      sincosf(phi, &s[k], &c[k]);
      if (inverse) s[k] = -s[k];
    }
    size_t o = r * width + m0;
#pragma unroll 4
    for (int h = 0; h < heads; h++, o += headDim) {
      float a[W], b[W], ya[W], yb[W];
      ldw<W>(x, xdt, o, a);
      ldw<W>(x, xdt, o + half, b);
#pragma unroll
      for (int k = 0; k < W; k++) {
        ya[k] = a[k] * c[k] - b[k] * s[k];
        yb[k] = b[k] * c[k] + a[k] * s[k];
      }
      stw<W>(out, odt, o, ya);
      stw<W>(out, odt, o + half, yb);
    }
  }
}

}  // namespace

void castK(const void* src, int sdt, void* dst, int ddt, size_t n) {
  if (n == 0) return;
  if (sdt == DT_I32 && ddt == DT_I32) {
    castIntKernel<<<gridFor(n, kBlock), kBlock, 0, stream()>>>((const int*)src, (int*)dst, n);
    return checkLaunch("castInt");
  }
  if (vec8Ok(n, {src, dst})) castKernel<8><<<gridFor(n / 8, kBlock), kBlock, 0, stream()>>>(src, sdt, dst, ddt, n);
  else castKernel<1><<<gridFor(n, kBlock), kBlock, 0, stream()>>>(src, sdt, dst, ddt, n);
  checkLaunch("cast");
}

void fillK(void* dst, int dt, size_t n, float value) {
  if (n == 0) return;
  if (dt == DT_I32) {
    fillIntKernel<<<gridFor(n, kBlock), kBlock, 0, stream()>>>((int*)dst, n, (int)value);
    return checkLaunch("fillInt");
  }
  fillKernel<<<gridFor(n, kBlock), kBlock, 0, stream()>>>(dst, dt, n, value);
  checkLaunch("fill");
}

void randomK(void* dst, int dt, size_t n, uint32_t seed) {
  if (n == 0) return;
  randomKernel<<<gridFor(n, kBlock), kBlock, 0, stream()>>>(dst, dt, n, seed);
  checkLaunch("random");
}

void addK(const void* a, int adt, const void* b, int bdt, void* out, int odt, size_t n, size_t bcastC) {
  if (n == 0) return;
  if (vec8Ok(n, {a, b, out}) && bcastC % 8 == 0)
    addKernel<8><<<gridFor(n / 8, kBlock), kBlock, 0, stream()>>>(a, adt, b, bdt, out, odt, n, bcastC);
  else
    addKernel<1><<<gridFor(n, kBlock), kBlock, 0, stream()>>>(a, adt, b, bdt, out, odt, n, bcastC);
  checkLaunch("add");
}

void axpyK(void* a, int adt, const void* b, int bdt, size_t n, float alpha) {
  if (n == 0) return;
  if (vec8Ok(n, {a, b})) axpyKernel<8><<<gridFor(n / 8, kBlock), kBlock, 0, stream()>>>(a, adt, b, bdt, n, alpha);
  else axpyKernel<1><<<gridFor(n, kBlock), kBlock, 0, stream()>>>(a, adt, b, bdt, n, alpha);
  checkLaunch("axpy");
}

void scaleK(const void* a, int adt, void* out, int odt, size_t n, float alpha) {
  if (n == 0) return;
  if (vec8Ok(n, {a, out})) scaleKernel<8><<<gridFor(n / 8, kBlock), kBlock, 0, stream()>>>(a, adt, out, odt, n, alpha);
  else scaleKernel<1><<<gridFor(n, kBlock), kBlock, 0, stream()>>>(a, adt, out, odt, n, alpha);
  checkLaunch("scale");
}

void colOpK(const void* a, int adt, const void* v, int vdt, void* out, int odt, size_t n, size_t C, bool div) {
  if (n == 0) return;
  if (vec8Ok(n, {a, v, out}) && C % 8 == 0)
    colOpKernel<8><<<gridFor(n / 8, kBlock), kBlock, 0, stream()>>>(a, adt, v, vdt, out, odt, n, C, div);
  else
    colOpKernel<1><<<gridFor(n, kBlock), kBlock, 0, stream()>>>(a, adt, v, vdt, out, odt, n, C, div);
  checkLaunch(div ? "divCols" : "mulCols");
}

void swigluK(const void* g, int gdt, const void* u, int udt, void* h, int hdt, size_t n) {
  if (n == 0) return;
  if (vec8Ok(n, {g, u, h})) swigluKernel<8><<<gridFor(n / 8, kBlock), kBlock, 0, stream()>>>(g, gdt, u, udt, h, hdt, n);
  else swigluKernel<1><<<gridFor(n, kBlock), kBlock, 0, stream()>>>(g, gdt, u, udt, h, hdt, n);
  checkLaunch("swiglu");
}

void swigluBwdK(const void* dh, int dhdt, const void* g, int gdt, const void* u, int udt, void* dg, int dgdt,
                void* du, int dudt, size_t n) {
  if (n == 0) return;
  if (vec8Ok(n, {dh, g, u, dg, du}))
    swigluBwdKernel<8><<<gridFor(n / 8, kBlock), kBlock, 0, stream()>>>(dh, dhdt, g, gdt, u, udt, dg, dgdt, du, dudt, n);
  else
    swigluBwdKernel<1><<<gridFor(n, kBlock), kBlock, 0, stream()>>>(dh, dhdt, g, gdt, u, udt, dg, dgdt, du, dudt, n);
  checkLaunch("swigluBackward");
}

void adamwK(void* p, int pdt, const void* g, int gdt, void* m, int mdt, void* v, int vdt, size_t n, float lr,
            float beta1, float beta2, float eps, float weightDecay, float stepSize, float sqrtBc2) {
  if (n == 0) return;
  if (vec8Ok(n, {p, g, m, v}))
    adamwKernel<8><<<gridFor(n / 8, kBlock), kBlock, 0, stream()>>>(p, pdt, g, gdt, m, mdt, v, vdt, n, lr, beta1, beta2,
                                                                   eps, weightDecay, stepSize, sqrtBc2);
  else
    adamwKernel<1><<<gridFor(n, kBlock), kBlock, 0, stream()>>>(p, pdt, g, gdt, m, mdt, v, vdt, n, lr, beta1, beta2, eps,
                                                               weightDecay, stepSize, sqrtBc2);
  checkLaunch("adamw");
}

void gatherRowsK(const void* table, const int* ids, void* out, size_t nIds, size_t rowBytes) {
  if (nIds == 0 || rowBytes == 0) return;
  if (rowBytes % 4 == 0) {
    size_t units = rowBytes / 4;
    gather32Kernel<<<gridFor(nIds * units, kBlock), kBlock, 0, stream()>>>((const uint32_t*)table, ids,
                                                                           (uint32_t*)out, nIds, units);
  } else {
    size_t units = rowBytes / 2;
    gather16Kernel<<<gridFor(nIds * units, kBlock), kBlock, 0, stream()>>>((const uint16_t*)table, ids,
                                                                           (uint16_t*)out, nIds, units);
  }
  checkLaunch("gatherRows");
}

void scatterRowsK(const void* src, int sdt, void* dst, int ddt, const int* rows, size_t nRows, size_t cols) {
  if (nRows == 0 || cols == 0) return;
  size_t n = nRows * cols;
  if (sdt != ddt) {
    scatterCastKernel<<<gridFor(n, kBlock), kBlock, 0, stream()>>>(src, sdt, dst, ddt, rows, nRows, cols);
  } else if (sdt == DT_F32 || sdt == DT_I32) {
    scatterSameKernel<uint32_t><<<gridFor(n, kBlock), kBlock, 0, stream()>>>((const uint32_t*)src, (uint32_t*)dst, rows,
                                                                            nRows, cols);
  } else {
    scatterSameKernel<uint16_t><<<gridFor(n, kBlock), kBlock, 0, stream()>>>((const uint16_t*)src, (uint16_t*)dst, rows,
                                                                            nRows, cols);
  }
  checkLaunch("scatterRows");
}

void cast2DK(const void* src, int sdt, size_t sPitch, void* dst, int ddt, size_t dPitch, size_t rows, size_t cols) {
  if (rows == 0 || cols == 0) return;
  cast2DKernel<<<gridFor(rows * cols, kBlock), kBlock, 0, stream()>>>(src, sdt, sPitch, dst, ddt, dPitch, rows, cols);
  checkLaunch("cast2D");
}

void ropeK(const void* x, int xdt, void* out, int odt, size_t rows, int width, const int* pos, const float* invFreq,
           int headDim, bool inverse) {
  int half = headDim / 2;
  if (rows == 0 || width < headDim || half == 0) return;
  if (vec8Ok((size_t)half, {x, out}) && width % 8 == 0) {
    ropeKernel<8><<<gridFor(rows * (half / 8), kBlock), kBlock, 0, stream()>>>(x, xdt, out, odt, rows, width, pos,
                                                                             invFreq, headDim, inverse);
  } else {
    ropeKernel<1><<<gridFor(rows * half, kBlock), kBlock, 0, stream()>>>(x, xdt, out, odt, rows, width, pos, invFreq,
                                                                       headDim, inverse);
  }
  checkLaunch("rope");
}

}  // namespace paro
