// Training curves without dependencies: the log as CSV, an SVG chart, and a PNG chart (RGB, drawn here, encoded
// with node:zlib) of training loss (left axis) and τ from speculative-decoding evaluations (right axis) over steps.
import { deflateSync } from 'node:zlib';

export interface LossPoint { step: number; loss: number; acc: number; lr: number; gradNorm: number }
export interface TauPoint { step: number; tau: number; tauPooled: number }

/** The training log as CSV text (one row per step; τ columns filled at evaluated steps). */
export function logCsv(steps: readonly LossPoint[], evals: readonly TauPoint[]): string {
  const tau = new Map(evals.map((e) => [e.step, e]));
  const lines = ['step,loss,acc,lr,grad_norm,tau,tau_pooled'];
  if (tau.has(0)) lines.push(`0,,,,,${tau.get(0)!.tau},${tau.get(0)!.tauPooled}`);
  for (const s of steps) {
    const e = tau.get(s.step);
    lines.push(`${s.step},${s.loss},${s.acc},${s.lr},${s.gradNorm},${e ? e.tau : ''},${e ? e.tauPooled : ''}`);
  }
  return lines.join('\n') + '\n';
}

/** Smoothed loss (moving average over a window of ~2 % of the steps) for readability. */
function smooth(values: number[]): number[] {
  const w = Math.max(1, Math.round(values.length / 50));
  const out: number[] = [];
  let acc = 0;
  for (let i = 0; i < values.length; i++) {
    acc += values[i];
    if (i >= w) acc -= values[i - w];
    out.push(acc / Math.min(i + 1, w));
  }
  return out;
}

interface Chart {
  W: number; H: number; left: number; right: number; top: number; bottom: number;
  xMax: number; lossMin: number; lossMax: number; tauMin: number; tauMax: number;
}

function chartFor(steps: readonly LossPoint[], evals: readonly TauPoint[]): Chart {
  const losses = steps.map((s) => s.loss).filter(Number.isFinite);
  const taus = evals.flatMap((e) => [e.tau, e.tauPooled]).filter(Number.isFinite);
  const lossMax = losses.length ? Math.max(...losses) : 1;
  const lossMin = losses.length ? Math.min(0, Math.min(...losses)) : 0;
  return {
    W: 800, H: 450, left: 70, right: 70, top: 40, bottom: 50,
    xMax: Math.max(1, ...steps.map((s) => s.step), ...evals.map((e) => e.step)),
    lossMin, lossMax: lossMax > lossMin ? lossMax : lossMin + 1,
    tauMin: 1, tauMax: taus.length ? Math.max(2, Math.ceil(Math.max(...taus))) : 2,
  };
}

const px = (c: Chart, step: number): number => c.left + (step / c.xMax) * (c.W - c.left - c.right);
const pyLoss = (c: Chart, v: number): number => c.H - c.bottom - ((v - c.lossMin) / (c.lossMax - c.lossMin)) * (c.H - c.top - c.bottom);
const pyTau = (c: Chart, v: number): number => c.H - c.bottom - ((v - c.tauMin) / (c.tauMax - c.tauMin)) * (c.H - c.top - c.bottom);

function ticks(lo: number, hi: number, n: number): number[] {
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) out.push(Number(v.toPrecision(6)));
  return out;
}

/** The loss and τ curves as an SVG document. */
export function curveSvg(steps: readonly LossPoint[], evals: readonly TauPoint[]): string {
  const c = chartFor(steps, evals);
  const loss = smooth(steps.map((s) => s.loss));
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${c.W}" height="${c.H}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${c.W / 2}" y="22" text-anchor="middle" font-size="14">DFlash drafter training: loss (blue) and τ (red: mean over prompts, orange: pooled)</text>`,
    `<line x1="${c.left}" y1="${c.H - c.bottom}" x2="${c.W - c.right}" y2="${c.H - c.bottom}" stroke="black"/>`,
    `<line x1="${c.left}" y1="${c.top}" x2="${c.left}" y2="${c.H - c.bottom}" stroke="black"/>`,
    `<line x1="${c.W - c.right}" y1="${c.top}" x2="${c.W - c.right}" y2="${c.H - c.bottom}" stroke="black"/>`,
  ];
  for (const t of ticks(0, c.xMax, 8)) parts.push(`<text x="${px(c, t)}" y="${c.H - c.bottom + 18}" text-anchor="middle">${t}</text>`);
  for (const t of ticks(c.lossMin, c.lossMax, 6)) parts.push(`<text x="${c.left - 6}" y="${pyLoss(c, t) + 4}" text-anchor="end" fill="#1f4fd1">${t}</text>`);
  for (const t of ticks(c.tauMin, c.tauMax, 6)) parts.push(`<text x="${c.W - c.right + 6}" y="${pyTau(c, t) + 4}" fill="#c0282d">${t}</text>`);
  parts.push(`<text x="${c.W / 2}" y="${c.H - 12}" text-anchor="middle">optimizer step</text>`);
  parts.push(`<text x="16" y="${c.H / 2}" transform="rotate(-90 16 ${c.H / 2})" text-anchor="middle" fill="#1f4fd1">training loss</text>`);
  parts.push(`<text x="${c.W - 16}" y="${c.H / 2}" transform="rotate(90 ${c.W - 16} ${c.H / 2})" text-anchor="middle" fill="#c0282d">acceptance length τ</text>`);
  if (steps.length) parts.push(`<polyline fill="none" stroke="#1f4fd1" stroke-width="1.5" points="${steps.map((s, i) => `${px(c, s.step).toFixed(1)},${pyLoss(c, loss[i]).toFixed(1)}`).join(' ')}"/>`);
  for (const [key, color] of [['tau', '#c0282d'], ['tauPooled', '#e08a1e']] as const) {
    if (!evals.length) continue;
    parts.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${evals.map((e) => `${px(c, e.step).toFixed(1)},${pyTau(c, e[key]).toFixed(1)}`).join(' ')}"/>`);
    for (const e of evals) parts.push(`<circle cx="${px(c, e.step).toFixed(1)}" cy="${pyTau(c, e[key]).toFixed(1)}" r="3" fill="${color}"/>`);
  }
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}

// ── PNG ─────────────────────────────────────────────────────────────────────────────────────────────────────────

// 3×5 pixel glyphs (rows top to bottom, 3 bits each, MSB = left column) for axis labels.
const GLYPHS: Record<string, number[]> = {
  '0': [7, 5, 5, 5, 7], '1': [2, 6, 2, 2, 7], '2': [7, 1, 7, 4, 7], '3': [7, 1, 7, 1, 7], '4': [5, 5, 7, 1, 1],
  '5': [7, 4, 7, 1, 7], '6': [7, 4, 7, 5, 7], '7': [7, 1, 1, 1, 1], '8': [7, 5, 7, 5, 7], '9': [7, 5, 7, 1, 7],
  '.': [0, 0, 0, 0, 2], '-': [0, 0, 7, 0, 0], ' ': [0, 0, 0, 0, 0],
  L: [4, 4, 4, 4, 7], O: [7, 5, 5, 5, 7], S: [7, 4, 7, 1, 7], T: [7, 2, 2, 2, 2], E: [7, 4, 7, 4, 7], P: [7, 5, 7, 4, 4],
  A: [7, 5, 7, 5, 5], U: [5, 5, 5, 5, 7],
};

class Canvas {
  readonly px: Uint8Array;
  constructor(readonly W: number, readonly H: number) {
    this.px = new Uint8Array(W * H * 3).fill(255);
  }
  set(x: number, y: number, rgb: readonly number[]): void {
    const xi = Math.round(x);
    const yi = Math.round(y);
    if (xi < 0 || yi < 0 || xi >= this.W || yi >= this.H) return;
    const o = (yi * this.W + xi) * 3;
    this.px[o] = rgb[0]; this.px[o + 1] = rgb[1]; this.px[o + 2] = rgb[2];
  }
  line(x0: number, y0: number, x1: number, y1: number, rgb: readonly number[], thick = 1): void {
    const n = Math.max(1, Math.ceil(Math.max(Math.abs(x1 - x0), Math.abs(y1 - y0))));
    for (let i = 0; i <= n; i++) {
      const x = x0 + ((x1 - x0) * i) / n;
      const y = y0 + ((y1 - y0) * i) / n;
      for (let dx = 0; dx < thick; dx++) for (let dy = 0; dy < thick; dy++) this.set(x + dx, y + dy, rgb);
    }
  }
  dot(x: number, y: number, rgb: readonly number[]): void {
    for (let dx = -2; dx <= 2; dx++) for (let dy = -2; dy <= 2; dy++) if (dx * dx + dy * dy <= 5) this.set(x + dx, y + dy, rgb);
  }
  /** Text at 2× scale; align 'left' | 'right' | 'center' around x. */
  text(s: string, x: number, y: number, rgb: readonly number[], align: 'left' | 'right' | 'center' = 'left'): void {
    const scale = 2;
    const w = s.length * 4 * scale;
    let cx = align === 'left' ? x : align === 'right' ? x - w : x - w / 2;
    for (const ch of s.toUpperCase()) {
      const g = GLYPHS[ch] ?? GLYPHS[' '];
      for (let r = 0; r < 5; r++) for (let col = 0; col < 3; col++) {
        if (g[r] & (4 >> col)) for (let a = 0; a < scale; a++) for (let b = 0; b < scale; b++) this.set(cx + col * scale + a, y + r * scale + b, rgb);
      }
      cx += 4 * scale;
    }
  }
}

function crc32(buf: Uint8Array): number {
  let c = ~0;
  for (let i = 0; i < buf.length; i++) {
    c ^= buf[i];
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

function chunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'ascii');
  Buffer.from(data.buffer, data.byteOffset, data.length).copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/** PNG bytes of an RGB canvas (8-bit, no interlace, filter 0 on every row). */
export function encodePng(W: number, H: number, rgb: Uint8Array): Buffer {
  const raw = new Uint8Array(H * (W * 3 + 1));
  for (let y = 0; y < H; y++) raw.set(rgb.subarray(y * W * 3, (y + 1) * W * 3), y * (W * 3 + 1) + 1);
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(W, 0);
  ihdr.writeUInt32BE(H, 4);
  ihdr[8] = 8; ihdr[9] = 2; ihdr[10] = 0; ihdr[11] = 0; ihdr[12] = 0;
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', new Uint8Array(0)),
  ]);
}

/** The loss and τ curves as PNG bytes. */
export function curvePng(steps: readonly LossPoint[], evals: readonly TauPoint[]): Uint8Array {
  const c = chartFor(steps, evals);
  const cv = new Canvas(c.W, c.H);
  const black = [0, 0, 0];
  const blue = [31, 79, 209];
  const red = [192, 40, 45];
  const orange = [224, 138, 30];
  const grey = [225, 225, 225];
  for (const t of ticks(c.tauMin, c.tauMax, 6)) cv.line(c.left, pyTau(c, t), c.W - c.right, pyTau(c, t), grey);
  cv.line(c.left, c.H - c.bottom, c.W - c.right, c.H - c.bottom, black);
  cv.line(c.left, c.top, c.left, c.H - c.bottom, black);
  cv.line(c.W - c.right, c.top, c.W - c.right, c.H - c.bottom, black);
  for (const t of ticks(0, c.xMax, 8)) {
    cv.line(px(c, t), c.H - c.bottom, px(c, t), c.H - c.bottom + 4, black);
    cv.text(String(t), px(c, t), c.H - c.bottom + 8, black, 'center');
  }
  for (const t of ticks(c.lossMin, c.lossMax, 6)) cv.text(String(t), c.left - 6, pyLoss(c, t) - 5, blue, 'right');
  for (const t of ticks(c.tauMin, c.tauMax, 6)) cv.text(String(t), c.W - c.right + 6, pyTau(c, t) - 5, red);
  cv.text('STEP', c.W / 2, c.H - 18, black, 'center');
  cv.text('LOSS', c.left, c.top - 18, blue, 'left');
  cv.text('TAU', c.W - c.right, c.top - 18, red, 'right');
  const loss = smooth(steps.map((s) => s.loss));
  for (let i = 1; i < steps.length; i++) cv.line(px(c, steps[i - 1].step), pyLoss(c, loss[i - 1]), px(c, steps[i].step), pyLoss(c, loss[i]), blue, 2);
  for (const [key, color] of [['tau', red], ['tauPooled', orange]] as const) {
    for (let i = 0; i < evals.length; i++) {
      if (i > 0) cv.line(px(c, evals[i - 1].step), pyTau(c, evals[i - 1][key]), px(c, evals[i].step), pyTau(c, evals[i][key]), color, 2);
      cv.dot(px(c, evals[i].step), pyTau(c, evals[i][key]), color);
    }
  }
  return encodePng(c.W, c.H, cv.px);
}
