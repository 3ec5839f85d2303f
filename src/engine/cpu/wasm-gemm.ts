// Worker kernel file: createGemmDriver goes to the cpu worker threads as source text (toString(),
// thread-pool.ts), so it stays closure- and import-free: nothing from outside its own body but
// parameters and JS built-ins.
// f32 GEMM on one tfjs-backend-wasm instance (XNNPACK fully-connected, SIMD), driven directly through the module's
// exported BatchMatMul instead of tfjs tensors: operands are copied straight from strided (and optionally transposed)
// host views into reused heap buffers, and results straight out into the destination view, with no tensor objects,
// no fresh result arrays and no transposed temporaries.
//
// Only the plain product of row-major [M, K]·[K, N] is fast in the wasm module (transposed or batched calls fall off
// XNNPACK, platform-notes.md), so transposes happen while copying in. The product is computed in column blocks of
// at most NB columns, so that XNNPACK's packed copy of B stays in L2. Every output element is the same sequential
// k-sum whatever the blocking or the row range, so results do not depend on how a product is split.
//
// createGemmDriver must stay self-contained (no references to anything outside its body): the worker threads of
// thread-pool.ts run its source text (Function.prototype.toString) on their own wasm instance.

/** The parts of the tfjs-backend-wasm Emscripten module that the driver uses. */
export interface WasmGemmModule {
  HEAPF32: Float32Array;
  _malloc(bytes: number): number;
  _free(ptr: number): void;
  cwrap(name: string, ret: null, args: string[]): (...args: unknown[]) => void;
  tfjs: { registerTensor(id: number, size: number, offset: number): void; disposeData(id: number): void };
}

/**
 * A matrix operand: element (i, j) of the logical matrix is data[offset + i·ld + j], or data[offset + j·ld + i]
 * when trans (the stored matrix is the transpose).
 */
export interface MatView {
  data: Float32Array;
  offset: number;
  ld: number;
  trans: boolean;
}

export interface GemmDriver {
  /**
   * C = alpha·A·B (beta = 0) or C += alpha·A·B (beta = 1); A logical [M, K], B logical [K, N], C [M, N] at
   * c.data[c.offset + i·c.ld + j] (or c.offset + j·c.ld + i when c.trans). C must not overlap A or B. Tiny products
   * and products of fewer than 8 rows run as plain loops (the choice depends on the shapes and layouts only).
   */
  gemm(M: number, K: number, N: number, a: MatView, b: MatView, c: MatView, beta: 0 | 1, alpha: number): void;
}

export function createGemmDriver(wasm: WasmGemmModule, idBase: number): GemmDriver {
  // BatchMatMul(a_id, a_shape, a_rank, b_id, b_shape, b_rank, transpose_a, transpose_b, out_id) on rank-3 tensors.
  const batchMatMul = wasm.cwrap('BatchMatMul', null, ['number', 'array', 'number', 'number', 'array', 'number', 'number', 'number', 'number']);
  const NB = 256; // columns per block: a packed K×256 block of B fits L2 for the model widths
  // Below this many multiply-adds, or with fewer rows than this, the wasm call (~40 µs) and XNNPACK's packing of B
  // (~6 ns per element) cost more than plain loops.
  const SMALL_MACS = 32 * 32 * 32;
  const SMALL_ROWS = 8;
  const SWAP_ROWS = 32; // up to this many rows, A·Bᵀ against a wide stored B is computed as (B·Aᵀ)ᵀ
  const MAX_A = 1 << 22; // floats of A per row chunk (16 MB of heap)
  const MAX_B = 1 << 21; // floats of one B block
  let nextId = idBase;
  const ptr = [0, 0, 0]; // heap byte offsets of the A, B and C buffers
  const cap = [0, 0, 0]; // their capacities in floats

  /** Float index of heap buffer k with room for n floats (grows it; growth may replace wasm.HEAPF32). */
  function buffer(k: number, n: number): number {
    if (cap[k] < n) {
      if (cap[k] > 0) wasm._free(ptr[k]);
      const want = Math.max(n, Math.ceil(cap[k] * 1.5));
      ptr[k] = wasm._malloc(want * 4) >>> 0;
      if (ptr[k] === 0) throw new Error(`wasm heap: cannot allocate ${want * 4} bytes`);
      cap[k] = want;
    }
    return ptr[k] >>> 2;
  }

  /** A tensor id for the module's registry (ids are C ints; the range above idBase is ours alone). */
  function freshId(): number {
    if (nextId > 0x7ffffff0) nextId = idBase;
    return nextId++;
  }

  function shape3(rows: number, cols: number): Uint8Array {
    return new Uint8Array(new Int32Array([1, rows, cols]).buffer);
  }

  /** heap[dst + i·K + k] = A(m0 + i, k) for i < mc. */
  function loadA(heap: Float32Array, dst: number, a: MatView, m0: number, mc: number, K: number): void {
    const src = a.data;
    const ld = a.ld;
    if (!a.trans) {
      const o = a.offset + m0 * ld;
      if (ld === K) {
        heap.set(src.subarray(o, o + mc * K), dst);
        return;
      }
      for (let i = 0; i < mc; i++) heap.set(src.subarray(o + i * ld, o + i * ld + K), dst + i * K);
      return;
    }
    // A(i, k) = src[offset + k·ld + i]: a blocked transpose, reading with stride and writing contiguously (3x faster
    // than the other way round here).
    for (let i0 = 0; i0 < mc; i0 += 64) {
      const i1 = Math.min(mc, i0 + 64);
      for (let k0 = 0; k0 < K; k0 += 64) {
        const k1 = Math.min(K, k0 + 64);
        for (let i = i0; i < i1; i++) {
          const d = dst + i * K;
          let s = a.offset + k0 * ld + m0 + i;
          for (let k = k0; k < k1; k++, s += ld) heap[d + k] = src[s];
        }
      }
    }
  }

  /** heap[dst + k·nb + j] = B(k, n0 + j) for j < nb. */
  function loadB(heap: Float32Array, dst: number, b: MatView, n0: number, nb: number, K: number): void {
    const src = b.data;
    const ld = b.ld;
    if (!b.trans) {
      const o = b.offset + n0;
      if (ld === nb) {
        heap.set(src.subarray(o, o + K * nb), dst);
        return;
      }
      for (let k = 0; k < K; k++) heap.set(src.subarray(o + k * ld, o + k * ld + nb), dst + k * nb);
      return;
    }
    // B(k, j) = src[offset + j·ld + k]: rows of the stored matrix become columns of the block (strided reads,
    // contiguous writes).
    for (let k0 = 0; k0 < K; k0 += 64) {
      const k1 = Math.min(K, k0 + 64);
      for (let j0 = 0; j0 < nb; j0 += 64) {
        const j1 = Math.min(nb, j0 + 64);
        for (let k = k0; k < k1; k++) {
          const d = dst + k * nb;
          let s = b.offset + (n0 + j0) * ld + k;
          for (let j = j0; j < j1; j++, s += ld) heap[d + j] = src[s];
        }
      }
    }
  }

  /** C(m0 + i, n0 + j) (=|+=) alpha·heap[src + i·nb + j]. */
  function storeC(heap: Float32Array, src: number, c: MatView, m0: number, mc: number, n0: number, nb: number, beta: 0 | 1, alpha: number): void {
    const dst = c.data;
    const ld = c.ld;
    if (c.trans) {
      // C(i, j) is stored at offset + j·ld + i: walk the stored rows, reading the block with stride nb.
      for (let j = 0; j < nb; j++) {
        const d = c.offset + (n0 + j) * ld + m0;
        for (let i = 0; i < mc; i++) {
          const v = alpha * heap[src + i * nb + j];
          if (beta === 0) dst[d + i] = v;
          else dst[d + i] += v;
        }
      }
      return;
    }
    const o = c.offset + m0 * ld + n0;
    if (beta === 0 && alpha === 1) {
      if (ld === nb) {
        dst.set(heap.subarray(src, src + mc * nb), o);
        return;
      }
      for (let i = 0; i < mc; i++) dst.set(heap.subarray(src + i * nb, src + i * nb + nb), o + i * ld);
      return;
    }
    for (let i = 0; i < mc; i++) {
      const d = o + i * ld;
      const s = src + i * nb;
      if (beta === 0) for (let j = 0; j < nb; j++) dst[d + j] = alpha * heap[s + j];
      else if (alpha === 1) for (let j = 0; j < nb; j++) dst[d + j] += heap[s + j];
      else for (let j = 0; j < nb; j++) dst[d + j] += alpha * heap[s + j];
    }
  }

  function gemmSmall(M: number, K: number, N: number, a: MatView, b: MatView, c: MatView, beta: 0 | 1, alpha: number): void {
    const A = a.data;
    const B = b.data;
    const C = c.data;
    const aRow = a.trans ? 1 : a.ld; // step between rows of A
    const aCol = a.trans ? a.ld : 1; // step between columns of A
    if (b.trans) {
      // B(k, j) = B[j·ld + k]: each output is a dot product of two unit-stride (when A is row-major) vectors.
      for (let i = 0; i < M; i++) {
        const ai = a.offset + i * aRow;
        const co = c.offset + i * c.ld;
        for (let j = 0; j < N; j++) {
          const bj = b.offset + j * b.ld;
          let s = 0;
          for (let k = 0; k < K; k++) s += A[ai + k * aCol] * B[bj + k];
          const v = Math.fround(s);
          if (beta === 0) C[co + j] = alpha * v;
          else C[co + j] += alpha * v;
        }
      }
      return;
    }
    const acc = new Float32Array(N);
    for (let i = 0; i < M; i++) {
      acc.fill(0);
      const ai = a.offset + i * aRow;
      for (let k = 0; k < K; k++) {
        const av = A[ai + k * aCol];
        if (av === 0) continue;
        const bo = b.offset + k * b.ld;
        for (let j = 0; j < N; j++) acc[j] += av * B[bo + j];
      }
      const co = c.trans ? c.offset + i : c.offset + i * c.ld;
      const cj = c.trans ? c.ld : 1; // step between columns of C
      if (beta === 0) for (let j = 0; j < N; j++) C[co + j * cj] = alpha * acc[j];
      else for (let j = 0; j < N; j++) C[co + j * cj] += alpha * acc[j];
    }
  }

  function gemm(M: number, K: number, N: number, a: MatView, b: MatView, c: MatView, beta: 0 | 1, alpha: number): void {
    if (M === 0 || N === 0) return;
    if (K === 0) {
      if (beta === 0) for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) c.data[c.trans ? c.offset + j * c.ld + i : c.offset + i * c.ld + j] = 0;
      return;
    }
    if (!c.trans && b.trans && M <= SWAP_ROWS && N >= 4 * M && M * K * N > SMALL_MACS) {
      // Few rows against a linear weight stored [N, K] (decoding): Cᵀ = B·Aᵀ has many rows (XNNPACK's fast path),
      // reads the weight untransposed and packs only the small Aᵀ. Same products, same k order.
      gemm(N, K, M, { data: b.data, offset: b.offset, ld: b.ld, trans: false }, { data: a.data, offset: a.offset, ld: a.ld, trans: !a.trans },
        { data: c.data, offset: c.offset, ld: c.ld, trans: true }, beta, alpha);
      return;
    }
    if (M * K * N <= SMALL_MACS || M < SMALL_ROWS) {
      gemmSmall(M, K, N, a, b, c, beta, alpha);
      return;
    }
    const nbMax = Math.max(8, Math.min(NB, N, Math.floor(MAX_B / Math.max(1, K))));
    const mcMax = Math.max(1, Math.min(M, Math.floor(MAX_A / Math.max(1, K))));
    for (let m0 = 0; m0 < M; m0 += mcMax) {
      const mc = Math.min(mcMax, M - m0);
      const aAt = buffer(0, mc * K);
      const bAt = buffer(1, K * Math.min(nbMax, N));
      const cAt = buffer(2, mc * Math.min(nbMax, N));
      loadA(wasm.HEAPF32, aAt, a, m0, mc, K);
      const aId = freshId();
      wasm.tfjs.registerTensor(aId, mc * K, aAt * 4);
      const aShape = shape3(mc, K);
      try {
        for (let n0 = 0; n0 < N; n0 += nbMax) {
          const nb = Math.min(nbMax, N - n0);
          loadB(wasm.HEAPF32, bAt, b, n0, nb, K);
          // Fresh ids for B and C: XNNPACK caches its packed weights under B's id until that id is disposed.
          const bId = freshId();
          const cId = freshId();
          wasm.tfjs.registerTensor(bId, K * nb, bAt * 4);
          wasm.tfjs.registerTensor(cId, mc * nb, cAt * 4);
          try {
            batchMatMul(aId, aShape, 3, bId, shape3(K, nb), 3, 0, 0, cId);
          } finally {
            wasm.tfjs.disposeData(bId);
            wasm.tfjs.disposeData(cId);
          }
          storeC(wasm.HEAPF32, cAt, c, m0, mc, n0, nb, beta, alpha);
        }
      } finally {
        wasm.tfjs.disposeData(aId);
      }
    }
  }

  return { gemm };
}
