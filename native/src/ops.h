// Host-side launchers of every kernel, called by the Node-API glue (addon.cc). Pointers are device pointers;
// dt arguments are DType codes; all work is enqueued on the one stream (no synchronisation unless stated).
#pragma once

#include <cstddef>
#include <cstdint>

namespace paro {

// ---- elementwise (k_elementwise.cu) ----
void castK(const void* src, int sdt, void* dst, int ddt, size_t n);
void fillK(void* dst, int dt, size_t n, float value);
/** Uniform values in [-1, 1) from a hash of (seed, index): benchmark inputs that are not zeros. */
void randomK(void* dst, int dt, size_t n, uint32_t seed);
/** out = a + b; b broadcast over rows when bcastC > 0 (b has bcastC elements). */
void addK(const void* a, int adt, const void* b, int bdt, void* out, int odt, size_t n, size_t bcastC);
/** a += alpha·b. */
void axpyK(void* a, int adt, const void* b, int bdt, size_t n, float alpha);
void scaleK(const void* a, int adt, void* out, int odt, size_t n, float alpha);
/** out[r, c] = a[r, c]·v[c] (div = false) or a[r, c]/v[c] (div = true). */
void colOpK(const void* a, int adt, const void* v, int vdt, void* out, int odt, size_t n, size_t C, bool div);
void swigluK(const void* g, int gdt, const void* u, int udt, void* h, int hdt, size_t n);
void swigluBwdK(const void* dh, int dhdt, const void* g, int gdt, const void* u, int udt, void* dg, int dgdt,
                void* du, int dudt, size_t n);
/** PyTorch AdamW: p·(1 − lr·wd), m = β1·m + (1−β1)·g, v = β2·v + (1−β2)·g², p −= stepSize·m/(sqrt(v)/sqrtBc2 + eps). */
void adamwK(void* p, int pdt, const void* g, int gdt, void* m, int mdt, void* v, int vdt, size_t n, float lr,
            float beta1, float beta2, float eps, float weightDecay, float stepSize, float sqrtBc2);
/** out[i] = table[ids[i]] (rowBytes bytes per row; ids on the device). */
void gatherRowsK(const void* table, const int* ids, void* out, size_t nIds, size_t rowBytes);
/** dst[rows[i], c] = src[i, c] for i < nRows, c < cols (rows on the device, distinct), converted to dst's dtype. */
void scatterRowsK(const void* src, int sdt, void* dst, int ddt, const int* rows, size_t nRows, size_t cols);
/** Strided 2-D cast copy: dst[r·dPitch + c] = src[r·sPitch + c] for c < cols (pitches in elements). */
void cast2DK(const void* src, int sdt, size_t sPitch, void* dst, int ddt, size_t dPitch, size_t rows, size_t cols);
void ropeK(const void* x, int xdt, void* out, int odt, size_t rows, int width, const int* pos, const float* invFreq,
           int headDim, bool inverse);

// ---- reductions and row ops (k_reduce.cu) ----
/** out[c] = Σ_r a[r,c] (b null) or Σ_r a[r,c]·b[r,c]·(rowScale ? rowScale[r] : 1); deterministic. */
void colReduceK(const void* a, int adt, const void* b, int bdt, const float* rowScale, size_t rows, size_t C,
                float* out);
/** Σ x² in f64 (synchronises). */
double sumSquaresK(const void* x, int dt, size_t n);
/** Any NaN/±Inf (synchronises). */
bool nonFiniteK(const void* x, int dt, size_t n);
/** Σ SmoothL1(pred − target) in f64 (synchronises); dpred = ℓ'(d)/n when dpred is not null. */
double smoothL1K(const void* pred, int pdt, const void* target, int tdt, size_t n, void* dpred, int ddt);
void rmsnormK(const void* x, int xdt, const void* w, int wdt, void* y, int ydt, float* rstd, size_t rows, int C,
              float eps);
void rmsnormBwdK(const void* dy, int dydt, const void* x, int xdt, const void* w, int wdt, const float* rstd, void* dx,
                 int dxdt, float* dw, size_t rows, int C);
void crossEntropyK(const void* logits, int ldt, size_t rows, size_t V, const int* labels, const float* weights,
                   float* loss, float* lse, void* dlogits, int ddt);
void argmaxK(const void* x, int dt, size_t rows, size_t V, int* out);

// ---- ParoQuant transform (k_paro.cu) ----
void givensK(const void* x, int xdt, void* y, int ydt, size_t rows, int I, const int* pairs, const float* theta, int K,
             int gs, bool inverse);
void givensBwdK(const void* dy, int dydt, const void* y, int ydt, void* dx, int dxdt, float* dtheta, size_t rows, int I,
                const int* pairs, const float* theta, int K, int gs, bool inverse);
void fqMinMaxK(const void* r, int rdt, void* rq, int rqdt, float* scale, float* zpf, size_t nGroups, int gs, int qmax);
void fqMinMaxBwdK(const void* drq, int ddt, const void* r, int rdt, const float* scale, const float* zpf, void* dr,
                  int drdt, size_t nGroups, int gs, int qmax);
void fqParamsK(const void* r, int rdt, const float* scale, const float* zpf, void* rq, int rqdt, size_t nGroups, int gs,
               int qmax);
void fqParamsBwdK(const void* drq, int ddt, const void* r, int rdt, const float* scale, const float* zpf, void* dr,
                  int drdt, float* dscale, size_t nGroups, int gs, int qmax);
/** Export codes of r [O, I] (scale/zpf f32 per flat group o·G + g) packed to words [I, O/8]: nibble k of word (i, b)
 *  = q[b·8 + ((nibbleOrder >> 4k) & 7), i] (Backend.quantizePacked). */
void quantizePackedK(const void* r, int rdt, const float* scale, const float* zpf, int* words, int O, int I, int gs,
                     int qmax, unsigned nibbleOrder);
/** The inverse: out [O, I] f32 = (q − zeros[grp])·scale[grp] from words [I, O/8] (Backend.dequantizePacked). */
void dequantizePackedK(const int* words, const int* zeros, const float* scale, float* out, int O, int I, int gs,
                       unsigned nibbleOrder);

// ---- the fused ParoQuant transform (k_paro_fused.cu; Backend.paroTransform / paroTransformBackward) ----
constexpr int kParoFusedMinGroup = 2;
constexpr int kParoFusedMaxGroup = 128;
constexpr int kParoFusedMaxK = 16;
/** Shapes the fused kernels take: 2 ≤ gs ≤ 128 even, I % gs = 0, 1 ≤ K ≤ 16. */
bool paroFusedSupported(int I, int K, int gs);
/** Ŵ [O, I] (odt) of W [O, I] (wdt); stage 2 with pScale/pZpf [O·G], stage 1 (both null) writes gScale/gZpf [O·G].
 *  resid (not null): also E = Ŵ − W [O, I] (rdt, f32 before the rounding); extremes (stage 1, with resid): the max/min
 *  masks of each group's R, i32 [O·G, 2·⌈gs/32⌉] (Backend.paroResidualDtype). */
void paroTransformK(const void* W, int wdt, const float* alpha, const int* pairs, const float* theta,
                    const float* pScale, const float* pZpf, void* out, int odt, float* gScale, float* gZpf, int O,
                    int I, int K, int gs, int qmax, void* resid = nullptr, int rdt = 0, int* extremes = nullptr);
/** Backward from dŴ: stage 1 dtheta f32 [K, I/2] (unmasked) and dalpha f32 [I]; stage 2 dW [O, I] (dwdt) and dscale [O·G]. */
void paroTransformBwdK(const void* dWhat, int ddt, const void* W, int wdt, const float* alpha, const int* pairs,
                       const float* theta, const float* scale, const float* zpf, int stage, float* dtheta,
                       float* dalpha, void* dW, int dwdt, float* dscale, int O, int I, int K, int gs, int qmax);

// ---- the Gram backward's residual ops (k_paro_resid.cu; Backend.paroScaleGrad / paroMinMaxGram) ----
constexpr int kParoMinMaxGramMaxGroup = 128;
/** S[grp] = (Σ_e dWhat·E over flat group grp of gs elements) / clamp(scale[grp], 1e-5, 1e5), f32 [nGroups]. */
void paroScaleGradK(const void* dWhat, int ddt, const void* E, int edt, const float* scale, float* S, size_t nGroups,
                    int gs);
/** paroMinMaxGram's dense rows f32 [O, I]: c'[o, g·gs + i] = α[g·gs + i]·c[o, g·gs + i] (k_paro_resid.cu); 1 ≤ gs ≤ 128. */
void paroMinMaxRowsK(const float* S, const int* extremes, const float* alpha, float* c, int O, int I, int gs, int qmax);
/** out f32 [gs, I]: out[k][g·gs + i] = α[g·gs + k]·Σ_o c[o, g·gs + i]·W[o, g·gs + k], c from S and the extremes masks
 *  (Backend.paroMinMaxGram): groupGramK (TF32) on paroMinMaxRowsK's rows, so gs 32, 64, 96 or 128; sums over rows
 *  in a fixed order. */
void paroMinMaxGramK(const float* S, const int* extremes, const void* W, int wdt, const float* alpha, float* out, int O,
                     int I, int gs, int qmax);

// ---- per-group Gram matrices (k_gram.cu; Backend.groupGram) ----
/** out f32 [gs, I]: out[k][g·gs + i] = (Σ_o a[o, g·gs + i]·b[o, g·gs + k])·α[g·gs + k]/α[g·gs + i] (alpha null: the
 *  sum); a, b [O, I] f32/bf16/f16; gs ∈ {32, 64, 96, 128}; TF32 tensor cores, sums over rows in a fixed order. */
void groupGramK(const void* a, int adt, const void* b, int bdt, const float* alpha, float* out, int O, int I, int gs);
/** The row chunking groupGramK picks from the shape (rows per partial sum, a multiple of 32). */
int gramRowsPerChunk(int O, int I, int gs);
/** groupGramK with the rows per chunk given (tests exercise the multi-chunk path on small shapes). */
void groupGramChunkedK(const void* a, int adt, const void* b, int bdt, const float* alpha, float* out, int O, int I,
                       int gs, int rowsPerChunk);

// ---- attention (k_attention.cu) ----
enum MaskKind : int { MASK_CAUSAL = 0, MASK_FULL = 1, MASK_DFLASH = 2 };

struct AttnMask {
  int kind;
  int qOffset;               // causal
  const int* qOffsets;       // causal: device [batch], entry b's offset (per-entry mask), or null: qOffset for all
  int ctxLen, blockSize, nBlocks;  // dflash
  const int* anchors;        // dflash: device [batch·nBlocks]
  const int* keep;           // dflash: device [batch·nBlocks]
};

struct AttnDims {
  int batch, tq, tk, kvStride, heads, kvHeads, headDim;
  float scale;
};

/** out [batch·tq, heads·D] (odt), lse f32 [batch, heads, tq]. forceScalar selects the reference-style kernel. */
void attentionFwdK(const void* q, int qdt, const void* k, int kdt, const void* v, int vdt, void* out, int odt,
                   float* lse, const AttnDims& d, const AttnMask& m, bool forceScalar);
void attentionBwdK(const void* dout, int dodt, const void* q, int qdt, const void* k, int kdt, const void* v, int vdt,
                   const void* out, int odt, const float* lse, void* dq, int dqdt, void* dk, int dkdt, void* dv,
                   int dvdt, const AttnDims& d, const AttnMask& m, bool forceScalar);

// ---- GEMM through cuBLAS (gemm.cu) ----
/** Row-major C[M,N] = alpha·op(A)·op(B) + beta·C. */
void gemm(const void* a, int adt, const void* b, int bdt, void* c, int cdt, int M, int N, int K, bool transA,
          bool transB, float alpha, float beta);
/** Direct cuBLAS BF16 GEMM (no Backend in between), random inputs: median over 5 back-to-back batches of ms per call. */
double benchCublasBf16(int M, int N, int K, int iters);

}  // namespace paro
