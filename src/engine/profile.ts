// A profiling wrapper around any Backend: every operation is followed by synchronize() and its wall time added to
// a per-operation total. It serialises the device queue, so use it for "where does the time go", not for speed.
import type { Backend } from './backend.js';

export interface OpStats {
  calls: number;
  ms: number;
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
          const s = stats.get(String(prop)) ?? { calls: 0, ms: 0 };
          s.calls++;
          s.ms += dt;
          stats.set(String(prop), s);
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
