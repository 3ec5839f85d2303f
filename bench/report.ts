// Shared helpers of the benchmarks: options, fixture paths, timing and the printed table.
import { existsSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';

/** What `npm run bench -- <name> [args]` hands a benchmark. */
export interface BenchContext {
  /** Arguments after the benchmark name (--json removed). */
  args: string[];
  json: boolean;
  /** Human-readable lines: stdout, or stderr when the JSON report owns stdout. */
  log: (line: string) => void;
}

/** A benchmark module exports `run`; the object it returns is the --json report. */
export interface BenchModule {
  run(ctx: BenchContext): Promise<Record<string, unknown>>;
}

/** The shared fixtures beside the repository (../shared/fixtures), as the tests find them. */
export const FIXTURES = fileURLToPath(new URL('../../shared/fixtures', import.meta.url));
export const HAVE_FIXTURES = existsSync(FIXTURES);

/** Value of `--name v` or `--name=v`, else undefined. */
export function option(args: readonly string[], name: string): string | undefined {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === `--${name}`) return args[i + 1];
    if (args[i].startsWith(`--${name}=`)) return args[i].slice(name.length + 3);
  }
  return undefined;
}

export function intOption(args: readonly string[], name: string, fallback: number): number {
  const v = option(args, name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive integer, got "${v}"`);
  return n;
}

export function flag(args: readonly string[], name: string): boolean {
  return args.includes(`--${name}`);
}

/** Machine facts every report carries (other sessions load this machine too: the load average says how much). */
export function machine(): Record<string, unknown> {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model ?? 'unknown',
    cores: os.availableParallelism(),
    node: process.version,
    loadAverage1m: Number(os.loadavg()[0].toFixed(2)),
    date: new Date().toISOString(),
  };
}

/** Right-aligned text table; the first row is the header. */
export function table(rows: readonly (readonly (string | number)[])[]): string {
  const cells = rows.map((r) => r.map((c) => String(c)));
  const widths = cells[0].map((_, j) => Math.max(...cells.map((r) => (r[j] ?? '').length)));
  const line = (r: string[]) => r.map((c, j) => (j === 0 ? c.padEnd(widths[j]) : c.padStart(widths[j]))).join('  ');
  const out = [line(cells[0]), widths.map((w) => '-'.repeat(w)).join('  ')];
  for (const r of cells.slice(1)) out.push(line(r));
  return out.join('\n');
}

export function round(x: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
