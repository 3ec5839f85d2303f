// Progress for long work: a bar with ETA on a terminal (cli-progress); quiet, line-based updates otherwise (CI logs,
// pipes). Always on stderr so stdout stays clean for --json reports.
import cliProgress from 'cli-progress';

export interface ProgressOptions {
  /** Extra values shown after the bar, e.g. loss. */
  fields?: Record<string, string | number>;
  /** Seconds between line-based updates when not on a TTY. */
  lineInterval?: number;
}

export class Progress {
  private bar: cliProgress.SingleBar | null = null;
  private lastLine = 0;
  private readonly t0 = Date.now();
  private value = 0;
  private fields: Record<string, string | number>;

  constructor(private readonly label: string, private total: number, private readonly opts: ProgressOptions = {}) {
    this.fields = { ...(opts.fields ?? {}) };
    const quiet = process.env.PARO_QUIET === '1';
    if (!quiet && process.stderr.isTTY && !process.env.CI) {
      this.bar = new cliProgress.SingleBar({
        stream: process.stderr,
        format: `${label} [{bar}] {value}/{total} {percentage}% | ETA {eta_formatted}{extra}`,
        hideCursor: true,
        clearOnComplete: false,
        etaBuffer: 20,
      }, cliProgress.Presets.shades_classic);
      this.bar.start(total, 0, { extra: this.extra() });
    } else if (!quiet) {
      process.stderr.write(`${label}: 0/${total}\n`);
      this.lastLine = Date.now();
    }
  }

  private extra(): string {
    const parts = Object.entries(this.fields).map(([k, v]) => `${k} ${typeof v === 'number' ? fmt(v) : v}`);
    return parts.length ? ' | ' + parts.join(' | ') : '';
  }

  update(value: number, fields?: Record<string, string | number>): void {
    this.value = value;
    if (fields) Object.assign(this.fields, fields);
    if (this.bar) {
      this.bar.update(value, { extra: this.extra() });
      return;
    }
    if (process.env.PARO_QUIET === '1') return;
    const now = Date.now();
    const interval = (this.opts.lineInterval ?? 10) * 1000;
    if (now - this.lastLine >= interval || value >= this.total) {
      const el = (now - this.t0) / 1000;
      const eta = value > 0 ? (el * (this.total - value)) / value : NaN;
      process.stderr.write(`${this.label}: ${value}/${this.total} (${((100 * value) / this.total).toFixed(0)}%) elapsed ${el.toFixed(0)}s eta ${Number.isFinite(eta) ? eta.toFixed(0) + 's' : '?'}${this.extra()}\n`);
      this.lastLine = now;
    }
  }

  setTotal(total: number): void {
    this.total = total;
    this.bar?.setTotal(total);
  }

  stop(): void {
    if (this.bar) {
      this.bar.update(this.value, { extra: this.extra() });
      this.bar.stop();
      this.bar = null;
    }
  }
}

function fmt(v: number): string {
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(3) : v.toPrecision(5);
}

/** Informational message on stderr (suppressed with PARO_QUIET=1). */
export function info(msg: string): void {
  if (process.env.PARO_QUIET !== '1') process.stderr.write(msg + '\n');
}

export function warn(msg: string): void {
  process.stderr.write(`warning: ${msg}\n`);
}
