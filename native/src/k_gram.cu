// Per-group Gram matrices of two [O, I] matrices (Backend.groupGram; the "virtual rows" of the Gram backward of the
// ParoQuant transform, /work/notes/gram-spec.md): out f32 [gs, I], out[k][g·gs + i] = (Σ_o a[o, g·gs + i]·
// b[o, g·gs + k])·α[g·gs + k]/α[g·gs + i] in f32 (the sum, then ·α_k, then /α_i; alpha null: the sum). It runs on
// every linear of every training step, so it aims at HBM bandwidth: each element of a and b is read once.
//
// Per group g the product is M = aᵀb over the rows o (M[i][k], i, k < gs), on the tensor cores as
// mma.sync m16n8k8 TF32 (A[m = i][k = o] = a[o, g·gs + i], B[k = o][n = k] = b[o, g·gs + k]). bf16 and f16 values
// are TF32 values already (7 and 10 mantissa bits), so their products are exact in f32 and only the f32 accumulation
// rounds; f32 inputs are rounded by cvt.rna to 10 mantissa bits (relative error ≤ 2⁻¹¹ per factor).
// Fragment layout (g = lane/4, t = lane%4): A a0 = A[g][t], a1 = A[g+8][t], a2 = A[g][t+4], a3 = A[g+8][t+4];
// B b0 = B[t][g], b1 = B[t+4][g]; C c0 = C[g][2t], c1 = C[g][2t+1], c2 = C[g+8][2t], c3 = C[g+8][2t+1].
//
// Grid (G groups, row chunks); a block of gs/16 warps in a (gs/32) × 2 grid: warp (wm, wn) owns the output rows
// i ∈ [32·wm, 32·wm + 32) (two m-tiles) × the columns k ∈ [wn·gs/2, (wn + 1)·gs/2) (gs/16 n-tiles), 2·4·gs/16 f32
// accumulators per lane (64 at gs 128). Per iteration a tile of 32 rows o of the group's gs columns of a and of b sits
// in shared memory as TF32 bit patterns, row-major with the row stride gs + 8 ≡ 8 (mod 32) words: a fragment load
// reads word t·stride + g (+ const), 32 distinct banks. While the tensor cores work on a tile, the raw bits of the
// next one are already loading into registers (each thread: rows lr and lr + 16 of its 8-column chunk of a and b,
// 16-byte loads). The stores to shared memory go 16 bytes at a time: 4 consecutive lanes hold 4 consecutive chunks
// of a row, and lanes 4..7 of every 8 write their two 4-word halves in the swapped order, so each quarter warp covers
// the 32 banks once.
// Why the 32 × gs/2 warp tile: shared memory, not DRAM, is the tighter limit for bf16 inputs. At gs 128 a 32-row
// tile (16 KiB of bf16 a and b) costs 256 store wavefronts and, per warp and k-step, 8 A + 16 B fragment words for 16
// mma (768 wavefronts for the block): ≈ 1024 shared-memory cycles, ≈ 16 B/clk per SM, ≈ 3.7 TB/s on 132 SMs at
// 1.75 GHz, just above HBM bandwidth. A warp owning 16 rows × all gs columns would load 4 + 32 words per 16 mma
// (every warp all of B's fragments): 1408 cycles per tile, ≈ 2.7 TB/s.
//
// Rows past O are zeros. The row chunks are chosen from the shape alone (gramRowsPerChunk), so the summation order
// is fixed: each block writes its chunk's partial sums [chunk][gs][I] (the output orientation) to a scratch buffer,
// then groupGramReduceKernel adds the chunks in order in double, rounds once to f32 and applies α. No float atomics:
// reruns are bit-identical. The chunking trades parallelism against the partials' traffic (per chunk 2·gs·4 bytes
// written and read per column, against chunkRows·(bytes of an a and a b element) read): at least 4·gs rows per chunk
// keep it within half the input traffic of bf16 inputs, except where so few chunks would leave SMs idle (small O), and
// the block count is chosen near whole waves (gramRowsPerChunk). Qwen3-8B's linears at gs 128: 8 chunks of 512 rows
// (q, o: 256 blocks), 24 (gate, up: 768), 8 (down: 768), k and v 8 chunks of 128 rows (256 blocks; partials twice
// the input, mostly in L2).
#include <algorithm>

#include "common.cuh"
#include "ops.h"

namespace paro {
namespace {

constexpr int kTileRows = 32;  // rows o per shared-memory tile: 4 k-steps of 8
// The chunking assumes an H100 (132 SMs) and this build's residency (constants: the chunking, and so the summation
// order, depends on the shape only, never on the device): blocks per SM at gs 128, 96, 64, 32 from ptxas's 127, 142,
// 118 and 94 registers per thread.
constexpr int kSms = 132;
constexpr int kMaxWaves = 4;
constexpr int kMinChunkRowsPerGroupCol = 4;  // rows per chunk ≥ 4·gs (unless that leaves SMs idle): small partials

int residentBlocks(int gs) { return gs == 128 || gs == 96 ? 2 : gs == 64 ? 4 : 10; }

// cvt.rna: f32 to TF32 (round to nearest, ties away from zero; the low 13 bits zero), as the mma operand's bits.
__device__ __forceinline__ uint32_t tf32Bits(float x) {
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(x));
  return r;
}

// c += A·B on a 16×8×8 TF32 tile (fragments as in the header).
__device__ __forceinline__ void mmaTf32(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Raw bits of 8 consecutive elements from element idx. VEC (16-byte aligned, idx a multiple of 8): 16-bit storage in
// r[0..3] (two elements per word, the low half first), f32 in r[0..7]; otherwise element e's bits in r[e]. on = false:
// zeros (rows past the chunk), which every dtype reads as 0.
template <bool VEC>
__device__ __forceinline__ void loadRaw(const void* p, int dt, size_t idx, bool on, uint32_t r[8]) {
#pragma unroll
  for (int e = 0; e < 8; e++) r[e] = 0;
  if (!on) return;
  if (dt == DT_F32) {
    const uint32_t* q = static_cast<const uint32_t*>(p) + idx;
    if (VEC) {
      uint4 x = reinterpret_cast<const uint4*>(q)[0], y = reinterpret_cast<const uint4*>(q)[1];
      r[0] = x.x; r[1] = x.y; r[2] = x.z; r[3] = x.w;
      r[4] = y.x; r[5] = y.y; r[6] = y.z; r[7] = y.w;
    } else {
#pragma unroll
      for (int e = 0; e < 8; e++) r[e] = q[e];
    }
  } else {
    const uint16_t* q = static_cast<const uint16_t*>(p) + idx;
    if (VEC) {
      uint4 x = *reinterpret_cast<const uint4*>(q);
      r[0] = x.x; r[1] = x.y; r[2] = x.z; r[3] = x.w;
    } else {
#pragma unroll
      for (int e = 0; e < 8; e++) r[e] = q[e];
    }
  }
}

// One 16-bit element (the low 16 bits of h) as f32.
__device__ __forceinline__ float decode16(uint32_t h, int dt) {
  if (dt == DT_BF16) return __uint_as_float((h & 0xffffu) << 16);
  return __half2float(__ushort_as_half((unsigned short)(h & 0xffffu)));
}

// loadRaw's bits as the 8 elements' TF32 patterns. A bf16 or f16 value's f32 pattern already is one (its low 13
// bits are zero), so only f32 inputs are rounded.
template <bool VEC>
__device__ __forceinline__ void toTf32(const uint32_t r[8], int dt, uint32_t u[8]) {
  if (dt == DT_F32) {
#pragma unroll
    for (int e = 0; e < 8; e++) u[e] = tf32Bits(__uint_as_float(r[e]));
  } else if (VEC) {
#pragma unroll
    for (int e = 0; e < 4; e++) {
      u[2 * e] = __float_as_uint(decode16(r[e], dt));
      u[2 * e + 1] = __float_as_uint(decode16(r[e] >> 16, dt));
    }
  } else {
#pragma unroll
    for (int e = 0; e < 8; e++) u[e] = __float_as_uint(decode16(r[e], dt));
  }
}

// The 8 patterns to row[0..7] (16-byte aligned) as two 16-byte stores, the upper half first where swap.
__device__ __forceinline__ void store8(uint32_t* row, const uint32_t u[8], bool swap) {
  uint4 lo = make_uint4(u[0], u[1], u[2], u[3]), hi = make_uint4(u[4], u[5], u[6], u[7]);
  *reinterpret_cast<uint4*>(row + (swap ? 4 : 0)) = swap ? hi : lo;
  *reinterpret_cast<uint4*>(row + (swap ? 0 : 4)) = swap ? lo : hi;
}

// Partial sums of rows [chunk·rowsPerChunk, +rowsPerChunk) ∩ [0, O) of group blockIdx.x, chunk blockIdx.y:
// part[chunk][k][g·GS + i] = Σ_o a[o, g·GS + i]·b[o, g·GS + k] (TF32 products, f32 accumulation in a fixed order).
// At least 16 warps per SM (256 / GS blocks): 128 registers at gs 128.
template <int GS, bool VEC>
__global__ void __launch_bounds__(GS * 2, 256 / GS) groupGramKernel(const void* a, int adt, const void* b, int bdt, float* part,
                                                          int O, int I, int rowsPerChunk) {
  constexpr int kStride = GS + 8;      // ≡ 8 (mod 32) words: conflict-free fragment loads
  constexpr int kWarpsM = GS / 32;     // warps along i (32 rows each); 2 along k (gs/2 columns each)
  constexpr int kNTiles = GS / 16;     // n-tiles of 8 columns k per warp
  constexpr int kRowChunks = GS / 8;   // 8-column chunks of a tile row
  constexpr int kThreads = GS * 2;     // gs/16 warps
  static_assert(kThreads / kRowChunks * 2 == kTileRows, "each thread loads two rows of one chunk");
  static_assert(kRowChunks % 4 == 0, "4 consecutive lanes hold 4 chunks of one row (the swapped stores)");
  __shared__ __align__(16) uint32_t sA[kTileRows * kStride];
  __shared__ __align__(16) uint32_t sB[kTileRows * kStride];
  const int g = blockIdx.x;
  const int chunk = blockIdx.y;
  const int r0 = chunk * rowsPerChunk, r1 = min(O, r0 + rowsPerChunk);
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, gq = lane / 4, tq = lane % 4;
  // The loader's share of a tile: rows lr and lr + 16, columns 8·lc .. 8·lc + 7 of the group.
  const int lc = tid % kRowChunks, lr = tid / kRowChunks;
  const bool swap = (lane / 4) % 2 == 1;
  const size_t col = (size_t)g * GS + (size_t)lc * 8;
  uint32_t ra[2][8], rb[2][8];
  const int wm = warp % kWarpsM, wn = warp / kWarpsM;
  float acc[2][kNTiles][4];
#pragma unroll
  for (int m = 0; m < 2; m++)
#pragma unroll
    for (int j = 0; j < kNTiles; j++) acc[m][j][0] = acc[m][j][1] = acc[m][j][2] = acc[m][j][3] = 0.0f;
#pragma unroll
  for (int h = 0; h < 2; h++) {
    int r = r0 + lr + 16 * h;
    loadRaw<VEC>(a, adt, (size_t)r * I + col, r < r1, ra[h]);
    loadRaw<VEC>(b, bdt, (size_t)r * I + col, r < r1, rb[h]);
  }
  for (int t0 = r0; t0 < r1; t0 += kTileRows) {
    __syncthreads();  // every warp has read the previous tile's fragments
#pragma unroll
    for (int h = 0; h < 2; h++) {
      uint32_t u[8];
      toTf32<VEC>(ra[h], adt, u);
      store8(sA + (lr + 16 * h) * kStride + lc * 8, u, swap);
      toTf32<VEC>(rb[h], bdt, u);
      store8(sB + (lr + 16 * h) * kStride + lc * 8, u, swap);
    }
    __syncthreads();
    // The next tile's loads fly while this one is multiplied.
    if (t0 + kTileRows < r1) {
#pragma unroll
      for (int h = 0; h < 2; h++) {
        int r = t0 + kTileRows + lr + 16 * h;
        loadRaw<VEC>(a, adt, (size_t)r * I + col, r < r1, ra[h]);
        loadRaw<VEC>(b, bdt, (size_t)r * I + col, r < r1, rb[h]);
      }
    }
#pragma unroll
    for (int ks = 0; ks < kTileRows / 8; ks++) {
      const uint32_t* pa = sA + (ks * 8 + tq) * kStride + wm * 32 + gq;
      uint32_t af[2][4];
#pragma unroll
      for (int m = 0; m < 2; m++) {
        af[m][0] = pa[16 * m];
        af[m][1] = pa[16 * m + 8];
        af[m][2] = pa[16 * m + 4 * kStride];
        af[m][3] = pa[16 * m + 4 * kStride + 8];
      }
      const uint32_t* pb = sB + (ks * 8 + tq) * kStride + wn * (GS / 2) + gq;
#pragma unroll
      for (int j = 0; j < kNTiles; j++) {
        uint32_t b0 = pb[8 * j], b1 = pb[4 * kStride + 8 * j];
        mmaTf32(acc[0][j], af[0], b0, b1);
        mmaTf32(acc[1][j], af[1], b0, b1);
      }
    }
  }
  // C[i][k] to part[chunk][k][g·GS + i]: per store, 4 rows k of 8 consecutive i.
  float* p = part + (size_t)chunk * GS * I + (size_t)g * GS + wm * 32 + gq;
#pragma unroll
  for (int m = 0; m < 2; m++)
#pragma unroll
    for (int j = 0; j < kNTiles; j++) {
      size_t k = (size_t)(wn * (GS / 2) + 8 * j + 2 * tq);
      p[k * I + 16 * m] = acc[m][j][0];
      p[(k + 1) * I + 16 * m] = acc[m][j][1];
      p[k * I + 16 * m + 8] = acc[m][j][2];
      p[(k + 1) * I + 16 * m + 8] = acc[m][j][3];
    }
}

// out[k][c] = f32(Σ_chunk part[chunk][k][c]) (double sum in chunk order), then ·α[g·gs + k], then /α[c].
__global__ void groupGramReduceKernel(const float* part, size_t chunks, const float* alpha, float* out, size_t I,
                                      int gs) {
  size_t n = (size_t)gs * I;
  for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < n; e += (size_t)gridDim.x * blockDim.x) {
    double s = 0;
    for (size_t c = 0; c < chunks; c++) s += part[c * n + e];
    float v = (float)s;
    if (alpha) {
      size_t k = e / I, c = e % I;
      v = v * alpha[c - c % gs + k];
      v = v / alpha[c];
    }
    out[e] = v;
  }
}

template <int GS>
void launchGram(const void* a, int adt, const void* b, int bdt, float* part, int O, int I, int rowsPerChunk,
                int chunks) {
  dim3 grid((unsigned)(I / GS), (unsigned)chunks);
  if (vec8Ok((size_t)I, {a, b}))
    groupGramKernel<GS, true><<<grid, GS * 2, 0, stream()>>>(a, adt, b, bdt, part, O, I, rowsPerChunk);
  else
    groupGramKernel<GS, false><<<grid, GS * 2, 0, stream()>>>(a, adt, b, bdt, part, O, I, rowsPerChunk);
  checkLaunch("groupGram");
}

}  // namespace

// Blocks of equal work finish together, so a launch of blocks ≈ k whole waves (k ≤ kMaxWaves) wastes least: of the
// chunk counts ⌊k·wave/G⌋ the one whose last wave is fullest (more waves where as full), at most one per 4·gs rows
// (the partials' traffic) unless even one wave needs more, and at most one per tile.
int gramRowsPerChunk(int O, int I, int gs) {
  int G = std::max(1, I / std::max(gs, 1));
  int tiles = std::max(1, (O + kTileRows - 1) / kTileRows);
  int wave = kSms * residentBlocks(gs);
  int minTiles = std::max(1, kMinChunkRowsPerGroupCol * gs / kTileRows);
  int cap = std::min(tiles, std::max({1, wave / G, tiles / minTiles}));
  int chunks = 1;
  double bestFill = -1;
  for (int k = 1; k <= kMaxWaves; k++) {
    int c = std::min(cap, std::max(1, k * wave / G));
    long blocks = (long)G * c;
    double fill = (double)blocks / ((double)((blocks + wave - 1) / wave) * wave);
    if (fill >= bestFill - 0.02) {
      bestFill = std::max(bestFill, fill);
      chunks = c;
    }
  }
  int tilesPerChunk = (tiles + chunks - 1) / chunks;
  return tilesPerChunk * kTileRows;
}

void groupGramChunkedK(const void* a, int adt, const void* b, int bdt, const float* alpha, float* out, int O, int I,
                       int gs, int rowsPerChunk) {
  if (gs != 32 && gs != 64 && gs != 96 && gs != 128) throw ArgError("groupGram: groupSize must be 32, 64, 96 or 128");
  if (I <= 0 || I % gs != 0) throw ArgError("groupGram: cols must be a positive multiple of groupSize");
  for (int dt : {adt, bdt})
    if (dt != DT_F32 && dt != DT_BF16 && dt != DT_F16) throw ArgError("groupGram: a and b must be f32, bf16 or f16");
  if (rowsPerChunk <= 0 || rowsPerChunk % kTileRows != 0)
    throw ArgError("groupGram: rows per chunk must be a positive multiple of 32");
  size_t n = (size_t)gs * I;
  if (O <= 0) {
    fillK(out, DT_F32, n, 0.0f);
    return;
  }
  int chunks = (O + rowsPerChunk - 1) / rowsPerChunk;
  if (chunks > 65535) throw ArgError("groupGram: too many row chunks");
  Scratch part((size_t)chunks * n * sizeof(float));
  switch (gs) {
    case 32: launchGram<32>(a, adt, b, bdt, part.as<float>(), O, I, rowsPerChunk, chunks); break;
    case 64: launchGram<64>(a, adt, b, bdt, part.as<float>(), O, I, rowsPerChunk, chunks); break;
    case 96: launchGram<96>(a, adt, b, bdt, part.as<float>(), O, I, rowsPerChunk, chunks); break;
    default: launchGram<128>(a, adt, b, bdt, part.as<float>(), O, I, rowsPerChunk, chunks); break;
  }
  groupGramReduceKernel<<<gridFor(n, 256), 256, 0, stream()>>>(part.as<float>(), (size_t)chunks, alpha, out,
                                                               (size_t)I, gs);
  checkLaunch("groupGram.reduce");
}

void groupGramK(const void* a, int adt, const void* b, int bdt, const float* alpha, float* out, int O, int I, int gs) {
  groupGramChunkedK(a, adt, b, bdt, alpha, out, O, I, gs, gramRowsPerChunk(O, I, gs));
}

}  // namespace paro
