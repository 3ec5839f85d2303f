// A profiling wrapper around any Backend: every operation is followed by synchronize() and its wall time added to
// a per-operation total. It serialises the device queue, so use it for "where does the time go", not for speed.
import type { Backend, MatmulOptions, Tensor } from './backend.js';

export interface OpStats {
  calls: number;
  ms: number;
}

function isTensor(x: unknown): x is Tensor {
  return typeof x === 'object' && x !== null && 'shape' in x && 'dtype' in x;
}

/**
 * The row name of a call: the op and its tensor operands' dtypes; a matmul also gets its size class (M·N·K in GFLOP
 * halves, rounded to a power of two) and transposes, since one bucket for every GEMM hides where GEMM time goes.
 */
export function opKey(op: string, args: readonly unknown[]): string {
  const ts = args.filter(isTensor);
  const dt = ts.map((t) => t.dtype).join(',');
  if (op !== 'matmul' || ts.length < 2) return ts.length > 0 ? `${op}(${dt})` : op;
  const [a, b] = ts;
  const o = (args[2] ?? {}) as MatmulOptions;
  const m = o.transA ? a.shape[1] : a.shape[0];
  const k = o.transA ? a.shape[0] : a.shape[1];
  const n = o.transB ? b.shape[0] : b.shape[1];
  const gflop = (2 * m * n * k) / 1e9;
  const cls = gflop < 1 ? '<1' : `~${2 ** Math.round(Math.log2(gflop))}`;
  const tr = `${o.transA ? 'T' : 'N'}${o.transB ? 'T' : 'N'}`;
  return `matmul(${dt}${o.outDtype ? `→${o.outDtype}` : ''}${o.accumulate ? ',acc' : ''}) ${tr} ${cls} GFLOP`;
}

export class ProfiledBackend {
  readonly stats = new Map<string, OpStats>();
  readonly backend: Backend;

  constructor(inner: Backend) {
    const stats = this.stats;
    this.backend = new Proxy(inner, {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver) as unknown;
        if (typeof v !== 'function' || prop === 'synchronize' || prop === 'free') return v;
        const fn = v as (...args: unknown[]) => unknown;
        return (...args: unknown[]) => {
          target.synchronize();
          const t0 = performance.now();
          const r = fn.apply(target, args);
          target.synchronize();
          const dt = performance.now() - t0;
          const key = opKey(String(prop), args);
          const s = stats.get(key) ?? { calls: 0, ms: 0 };
          s.calls++;
          s.ms += dt;
          stats.set(key, s);
          return r;
        };
      },
    });
  }

  /** Operations sorted by total time: [name, calls, ms, share]. */
  table(): [string, number, number, number][] {
    const total = [...this.stats.values()].reduce((a, s) => a + s.ms, 0);
    return [...this.stats.entries()].sort((a, b) => b[1].ms - a[1].ms).map(([n, s]) => [n, s.calls, s.ms, s.ms / total]);
  }
}
