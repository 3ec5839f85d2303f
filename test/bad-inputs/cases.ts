// The bad-input corpus: one row per case, grouped by command. Each case runs the real CLI in its own scratch folder
// (a copy of examples/tiny-qwen3 as `model/`, small data files, a trained drafter) and must end with: exit code ≠ 0,
// one or two stderr lines naming the file or option (`names`) and the problem (`problem`), no stack trace, every
// input byte-identical, nothing new left behind except `remain`. `defect` is the number of the defect in issue 8 the
// case guards (0: held already at 5e167a2; a regression guard). Settings are tiny, so that a case that wrongly
// succeeds still ends in seconds.
import { chmodSync, copyFileSync, cpSync, mkdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { editHeader, editJson, editTensors, poison, replaceHeaderText, withOpt, type Tool } from './harness.js';

/** The scratch folder of one case (also its working directory). */
export interface Ctx {
  root: string;
  /** Copy of examples/tiny-qwen3. */
  model: string;
  /** Text for eval and calibration (.jsonl {"text"}). */
  data: string;
  /** Three prompts (.jsonl {"prompt"}). */
  prompts: string;
  /** Training records for train-drafter ({"prompt", "response"}). */
  records: string;
  /** A drafter trained by train-drafter for the demo model. */
  drafter: string;
  /** Default output path of directory outputs, and of generate-data. */
  out: string;
  outJsonl: string;
  shared: Shared;
}

/** Built once for the whole corpus by real runs of the CLI (see bad-inputs.test.ts); null where that run failed. */
export interface Shared {
  /** Training records ({"prompt", "response"} per line). */
  records: string;
  drafter: string | null;
  /** `<x>.partial` of a quantize run killed after its first block. */
  quantPartial: string | null;
  /** `<x>.partial` of a generate-data run killed after its first records, its prompts and its settings. */
  genPartial: string | null;
  /** What a train-drafter run (trainKilled) killed after its first checkpoint left next to its output `t`. */
  trainLeftovers: string[] | null;
  genPartialPrompts: string;
  genPartialArgs: string[];
  /** Why an artifact is null. */
  why: Record<string, string>;
}

/** A shared artifact, or an error saying why the corpus setup could not make it. */
function need<K extends 'drafter' | 'quantPartial' | 'genPartial' | 'trainLeftovers'>(c: Ctx, key: K): NonNullable<Shared[K]> {
  const v = c.shared[key];
  if (v === null) throw new Error(`corpus setup could not make ${key}: ${c.shared.why[key]}`);
  return v as NonNullable<Shared[K]>;
}

export interface Case {
  name: string;
  defect: number;
  tool: Tool;
  args: (c: Ctx) => string[];
  setup?: (c: Ctx) => void;
  /** What stderr must name: the file (base name or path) or the option; a RegExp where the wording may vary. */
  names: (c: Ctx) => (string | RegExp)[];
  problem: RegExp;
  /** Paths (relative to the case folder) that may be new afterwards. */
  remain?: string[];
  /** Paths that are not the user's and may be removed (the stale lock of a killed run). */
  mayGo?: string[];
  cwd?: (c: Ctx) => string;
  timeoutS?: number;
}

// ---------------------------------------------------------------------------------------------------------------
// Base commands (tiny settings)

const CPU = ['--device', 'cpu'];
export const paroEval = (c: Ctx): string[] => ['eval', c.model, '--data', c.data, '--seq-len', '32', '--max-windows', '2', '--batch', '2', ...CPU];
export const quantize = (c: Ctx): string[] => ['quantize', c.model, '--out', c.out, '--calib', c.data, '--samples', '2', '--val-samples', '1', '--seq-len', '32', '--epochs', '1,1', '--batch-size', '2', ...CPU];
export const generate = (c: Ctx): string[] => ['generate-data', '--target', c.model, '--prompts', c.prompts, '--out', c.outJsonl, '--max-new-tokens', '4', '--batch', '2', ...CPU];
export const train = (c: Ctx): string[] => ['train-drafter', '--target', c.model, '--data', c.records, '--out', c.out, '--epochs', '1', '--max-steps', '1', '--seq-len', '32', '--block-size', '4', '--anchors', '2', '--layers', '1', '--batch', '2', ...CPU];
export const dEval = (c: Ctx): string[] => (need(c, 'drafter'), ['eval', '--target', c.model, '--drafter', c.drafter, '--prompts', c.prompts, '--max-new-tokens', '4', ...CPU]);

/** train-drafter long enough to be killed after a checkpoint (the run that made Shared.trainLeftovers). */
export const trainKilled = (c: Ctx): string[] => withOpt(withOpt(withOpt(train(c), '--max-steps', null), '--epochs', '30'), '--checkpoint-every', '1');
/** Copies the leftovers of the killed train-drafter run next to this case's output, renamed from `t` to `out`. */
const trainLeftovers = (c: Ctx): void => {
  for (const p of need(c, 'trainLeftovers')) cpSync(p, path.join(c.root, path.basename(p).replace(/^(\.?)t\./, '$1out.')), { recursive: true });
};

const opt = (base: (c: Ctx) => string[], ...pairs: [string, string | null][]) => (c: Ctx): string[] =>
  pairs.reduce((a, [k, v]) => withOpt(a, k, v), base(c));
const st = (c: Ctx): string => path.join(c.model, 'model.safetensors');
const cfg = (c: Ctx): string => path.join(c.model, 'config.json');
const tokCfg = (c: Ctx): string => path.join(c.model, 'tokenizer_config.json');
const drafterSt = (c: Ctx): string => { need(c, 'drafter'); return path.join(c.drafter, 'model.safetensors'); };
const drafterCfg = (c: Ctx): string => { need(c, 'drafter'); return path.join(c.drafter, 'config.json'); };
const f = (c: Ctx, name: string): string => path.join(c.root, name);
const write = (c: Ctx, name: string, text: string | Buffer): string => { writeFileSync(f(c, name), text); return f(c, name); };
const garbage = (n: number): Buffer => { const b = Buffer.alloc(n); for (let i = 0; i < n; i++) b[i] = (i * 2654435761) >>> 24; return b; };
const fifo = (c: Ctx, name: string): string => { execFileSync('mkfifo', [f(c, name)]); return f(c, name); };
/** A user's folder that this tool did not write: notes and sources. */
const userFolder = (dir: string): void => {
  mkdirSync(path.join(dir, 'src'), { recursive: true });
  writeFileSync(path.join(dir, 'notes.md'), '# my notes\n');
  writeFileSync(path.join(dir, 'src', 'main.ts'), 'export const x = 1;\n');
};
/** A folder a write into fails: chmod 555 for users, /sys for root (root ignores file modes). */
const readOnlyParent = (c: Ctx): string => {
  if (process.getuid?.() === 0) return '/sys';
  const d = f(c, 'readonly');
  mkdirSync(d);
  chmodSync(d, 0o555);
  return d;
};
const hostileTemplate = '{% for i in range(1000000000) %}{% endfor %}x';
const K1 = 'model.layers.1.self_attn.k_proj.weight';
const NORM0 = 'model.layers.0.input_layernorm.weight';

const OUTPUT_REFUSED = /refus|input|contain|inside|same|overwrite|not (written|created) by|current (working )?dir|manifest|marker/i;
const NOT_FOUND = /not found|does not exist|no such|missing|cannot (open|read|find)|\bno [\w.-]+ (in|at)\b/i;
const DEVICE_FILE = /regular file|not a (plain |text )?file|device|endless|FIFO|pipe|extension|unsupported/i;
const NOT_FINITE = /NaN|Inf|finite/i;

// ---------------------------------------------------------------------------------------------------------------

export const CASES: Case[] = [
  // ===== paro eval =====
  // Truncated and lying safetensors (defect 7/9 where the message lacked file or tensor; 0 where it held).
  { name: 'eval: safetensors truncated by 1000 bytes', defect: 0, tool: 'paro', args: paroEval, setup: (c) => truncateSync(st(c), readFileSync(st(c)).length - 1000), names: () => ['model.safetensors'], problem: /truncat|end of the file|data section|offset|cover/i },
  { name: 'eval: safetensors shorter than its 8-byte length', defect: 0, tool: 'paro', args: paroEval, setup: (c) => truncateSync(st(c), 5), names: () => ['model.safetensors'], problem: /8-byte|shorter|truncat|too short/i },
  { name: 'eval: header length beyond the end of the file', defect: 0, tool: 'paro', args: paroEval, setup: (c) => replaceHeaderText(st(c), (j) => j, BigInt(readFileSync(st(c)).length + 100)), names: () => ['model.safetensors'], problem: /header length|beyond|end of the file/i },
  { name: 'eval: header length 2^62', defect: 0, tool: 'paro', args: paroEval, setup: (c) => replaceHeaderText(st(c), (j) => j, 2n ** 62n), names: () => ['model.safetensors'], problem: /header length|exceeds|limit/i },
  { name: 'eval: header is not JSON', defect: 0, tool: 'paro', args: paroEval, setup: (c) => replaceHeaderText(st(c), (j) => '{"oops": [1, 2' + ' '.repeat(j.length - 14)), names: () => ['model.safetensors'], problem: /JSON/i },
  { name: 'eval: header with invalid UTF-8', defect: 0, tool: 'paro', args: paroEval, setup: (c) => replaceHeaderText(st(c), (j) => Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(j.slice(2))])), names: () => ['model.safetensors'], problem: /UTF-8|JSON/i },
  { name: 'eval: data_offsets overlap', defect: 0, tool: 'paro', args: paroEval, setup: (c) => editHeader(st(c), (h) => { h[NORM0].data_offsets = [0, h[NORM0].data_offsets[1] - h[NORM0].data_offsets[0]]; }), names: () => ['model.safetensors'], problem: /overlap|hole|offset/i },
  { name: 'eval: data_offsets beyond the data section', defect: 0, tool: 'paro', args: paroEval, setup: (c) => editHeader(st(c), (h) => { const e = h[NORM0].data_offsets; h[NORM0].data_offsets = [e[0] + 1e9, e[1] + 1e9]; }), names: () => ['model.safetensors', NORM0], problem: /outside|beyond|offset/i },
  { name: 'eval: a hole between tensors', defect: 0, tool: 'paro', args: paroEval, setup: (c) => editTensors(st(c), (ts) => { ts[1].data = Buffer.concat([ts[1].data, Buffer.alloc(64)]); }), names: () => ['model.safetensors'], problem: /bytes|shape|span|hole/i },
  { name: 'eval: dtype lie (BF16 tensor declared F32)', defect: 0, tool: 'paro', args: paroEval, setup: (c) => editHeader(st(c), (h) => { h[NORM0].dtype = 'F32'; }), names: () => ['model.safetensors', NORM0], problem: /bytes|shape|F32|span/i },
  { name: 'eval: shape × dtype ≠ byte length', defect: 0, tool: 'paro', args: paroEval, setup: (c) => editHeader(st(c), (h) => { h[NORM0].shape = [255]; }), names: () => ['model.safetensors', NORM0], problem: /bytes|shape|span/i },
  { name: 'eval: duplicate tensor name in the header', defect: 0, tool: 'paro', args: paroEval, setup: (c) => replaceHeaderText(st(c), (j) => { const h = JSON.parse(j) as Record<string, unknown>; return j.trimEnd().replace(/}$/, `,${JSON.stringify(NORM0)}:${JSON.stringify(h['model.norm.weight'])}}`); }), names: () => ['model.safetensors'], problem: /duplicate|twice|overlap|hole|offset/i },
  { name: 'eval: norm weight relabelled to a wrong shape of the same size', defect: 7, tool: 'paro', args: paroEval, setup: (c) => editHeader(st(c), (h) => { h[NORM0].shape = [128, 2]; }), names: () => [NORM0], problem: /shape|\[128, 2\]|256/i },
  { name: 'eval: norm weight stored as I16 (wrong dtype, right size)', defect: 0, tool: 'paro', args: paroEval, setup: (c) => editHeader(st(c), (h) => { h[NORM0].dtype = 'I16'; }), names: () => [NORM0], problem: /dtype|I16|float/i },
  { name: 'eval: a tensor missing', defect: 0, tool: 'paro', args: paroEval, setup: (c) => editTensors(st(c), (ts) => { ts.splice(ts.findIndex((t) => t.name === K1), 1); }), names: () => [K1], problem: /missing/i },
  { name: 'eval: an unexpected extra layer (layers.4) beyond num_hidden_layers', defect: 7, tool: 'paro', args: paroEval, setup: (c) => editTensors(st(c), (ts) => { ts.push(...ts.filter((t) => t.name.startsWith('model.layers.3.')).map((t) => ({ ...t, name: t.name.replace('layers.3.', 'layers.4.') }))); }), names: () => ['num_hidden_layers'], problem: /layers\.4|5 (decoder )?layers|unexpected/i },
  { name: 'eval: model.safetensors is a directory', defect: 9, tool: 'paro', args: paroEval, setup: (c) => { rmSync(st(c)); mkdirSync(st(c)); }, names: () => ['model.safetensors'], problem: /directory/i },
  // Config lies (defect 7; 0 where validation held).
  { name: 'eval: config without hidden_size', defect: 0, tool: 'paro', args: paroEval, setup: (c) => editJson(cfg(c), (j) => { delete j.hidden_size; }), names: () => ['config.json'], problem: /hidden_size/ },
  { name: 'eval: config hidden_size 128 vs 256-wide tensors', defect: 7, tool: 'paro', args: paroEval, setup: (c) => editJson(cfg(c), (j) => { j.hidden_size = 128; }), names: () => ['model.safetensors'], problem: /shape|hidden_size|128|256/i },
  { name: 'eval: config num_hidden_layers 6, 4 present', defect: 0, tool: 'paro', args: paroEval, setup: (c) => editJson(cfg(c), (j) => { j.num_hidden_layers = 6; j.layer_types = Array(6).fill('full_attention'); }), names: () => ['layers.4'], problem: /missing/i },
  { name: 'eval: config num_hidden_layers 2, 4 present', defect: 7, tool: 'paro', args: paroEval, setup: (c) => editJson(cfg(c), (j) => { j.num_hidden_layers = 2; j.layer_types = Array(2).fill('full_attention'); }), names: () => ['num_hidden_layers'], problem: /layers\.[23]|4 (decoder )?layers|unexpected/i },
  { name: 'eval: vocab_size and embedding cut to 2048 rows, the tokenizer makes ids up to 4095', defect: 9, tool: 'paro', args: paroEval, setup: (c) => { editJson(cfg(c), (j) => { j.vocab_size = 2048; }); editTensors(st(c), (ts) => { const e = ts.find((t) => t.name === 'model.embed_tokens.weight')!; e.shape = [2048, 256]; e.data = e.data.subarray(0, 2048 * 256 * 2); }); }, names: () => [/vocab/], problem: /vocab|token/i },
  { name: 'eval: config num_attention_heads negative', defect: 0, tool: 'paro', args: paroEval, setup: (c) => editJson(cfg(c), (j) => { j.num_attention_heads = -4; }), names: () => ['config.json', 'num_attention_heads'], problem: /positive|integer|negative|invalid/i },
  { name: 'eval: config num_hidden_layers 0', defect: 0, tool: 'paro', args: paroEval, setup: (c) => editJson(cfg(c), (j) => { j.num_hidden_layers = 0; j.layer_types = []; }), names: () => ['num_hidden_layers'], problem: /positive|at least|zero|0|layers/i },
  { name: 'eval: config intermediate_size not an integer', defect: 0, tool: 'paro', args: paroEval, setup: (c) => editJson(cfg(c), (j) => { j.intermediate_size = 767.5; }), names: () => ['config.json', 'intermediate_size'], problem: /integer|invalid/i },
  { name: 'eval: config of an unknown model_type', defect: 0, tool: 'paro', args: paroEval, setup: (c) => editJson(cfg(c), (j) => { j.model_type = 'gpt_foo'; j.architectures = ['GptFooForCausalLM']; }), names: () => ['config.json'], problem: /GptFoo|gpt_foo|supported/i },
  { name: 'eval: config.json truncated', defect: 0, tool: 'paro', args: paroEval, setup: (c) => truncateSync(cfg(c), 100), names: () => ['config.json'], problem: /JSON/i },
  { name: 'eval: config.json missing', defect: 0, tool: 'paro', args: paroEval, setup: (c) => rmSync(cfg(c)), names: () => ['config.json'], problem: NOT_FOUND },
  // NaN/Inf weights (defect 2).
  { name: 'eval: one NaN in layers.1 k_proj', defect: 2, tool: 'paro', args: paroEval, setup: (c) => poison(st(c), K1, NaN, 1234), names: () => [K1], problem: NOT_FINITE },
  { name: 'eval: one NaN in layers.2 gate_proj', defect: 2, tool: 'paro', args: paroEval, setup: (c) => poison(st(c), 'model.layers.2.mlp.gate_proj.weight', NaN, 77), names: () => ['model.layers.2.mlp.gate_proj.weight'], problem: NOT_FINITE },
  { name: 'eval: one NaN in layers.0 v_proj', defect: 2, tool: 'paro', args: paroEval, setup: (c) => poison(st(c), 'model.layers.0.self_attn.v_proj.weight', NaN, 5), names: () => ['model.layers.0.self_attn.v_proj.weight'], problem: NOT_FINITE },
  { name: 'eval: +Inf in the embedding', defect: 2, tool: 'paro', args: paroEval, setup: (c) => poison(st(c), 'model.embed_tokens.weight', Infinity, 300), names: () => ['model.embed_tokens.weight'], problem: NOT_FINITE },
  // Tokenizer (defect 9 for messages).
  { name: 'eval: tokenizer.json missing', defect: 0, tool: 'paro', args: paroEval, setup: (c) => rmSync(path.join(c.model, 'tokenizer.json')), names: () => ['tokenizer.json'], problem: NOT_FOUND },
  { name: 'eval: tokenizer.json truncated', defect: 0, tool: 'paro', args: paroEval, setup: (c) => truncateSync(path.join(c.model, 'tokenizer.json'), 5000), names: () => ['tokenizer.json'], problem: /JSON/i },
  // Data files (defect 6: endless inputs; 9: messages).
  { name: 'eval: --data /dev/zero', defect: 6, tool: 'paro', args: opt(paroEval, ['--data', '/dev/zero']), names: () => ['/dev/zero'], problem: DEVICE_FILE, timeoutS: 20 },
  { name: 'eval: --data a FIFO', defect: 6, tool: 'paro', args: (c) => withOpt(paroEval(c), '--data', f(c, 'pipe.txt')), setup: (c) => { fifo(c, 'pipe.txt'); }, names: () => ['pipe.txt'], problem: DEVICE_FILE, timeoutS: 20 },
  { name: 'eval: --data empty file', defect: 0, tool: 'paro', args: (c) => withOpt(paroEval(c), '--data', f(c, 'empty.jsonl')), setup: (c) => { write(c, 'empty.jsonl', ''); }, names: () => ['empty.jsonl'], problem: /empty|no documents/i },
  { name: 'eval: --data binary garbage (.txt)', defect: 6, tool: 'paro', args: (c) => withOpt(paroEval(c), '--data', f(c, 'garbage.txt')), setup: (c) => { write(c, 'garbage.txt', garbage(65536)); }, names: () => ['garbage.txt'], problem: /binary|UTF-8|not (a )?text/i },
  { name: 'eval: --data a directory', defect: 9, tool: 'paro', args: (c) => withOpt(paroEval(c), '--data', f(c, 'texts.jsonl')), setup: (c) => { mkdirSync(f(c, 'texts.jsonl')); }, names: () => ['texts.jsonl'], problem: /directory/i },
  { name: 'eval: --data missing file', defect: 0, tool: 'paro', args: (c) => withOpt(paroEval(c), '--data', f(c, 'nope.jsonl')), names: () => ['nope.jsonl'], problem: NOT_FOUND },
  { name: 'eval: --data wrong extension (.csv)', defect: 0, tool: 'paro', args: (c) => withOpt(paroEval(c), '--data', f(c, 'data.csv')), setup: (c) => { copyFileSync(c.data, f(c, 'data.csv')); }, names: () => ['data.csv'], problem: /unsupported|extension|\.csv/i },
  { name: 'eval: --data JSONL with the wrong keys', defect: 0, tool: 'paro', args: (c) => withOpt(paroEval(c), '--data', f(c, 'keys.jsonl')), setup: (c) => { write(c, 'keys.jsonl', '{"content": "hello world"}\n'); }, names: () => ['keys.jsonl'], problem: /"?text"?/ },
  { name: 'eval: --data one line, too short for one window', defect: 0, tool: 'paro', args: (c) => withOpt(withOpt(paroEval(c), '--data', f(c, 'short.jsonl')), '--seq-len', '512'), setup: (c) => { write(c, 'short.jsonl', '{"text": "one short line"}\n'); }, names: () => ['short.jsonl'], problem: /window|too short|tokens/i },
  // Option values (defect 9: one line, no help dump).
  { name: 'eval: --seq-len 0', defect: 9, tool: 'paro', args: opt(paroEval, ['--seq-len', '0']), names: () => ['--seq-len'], problem: /positive|integer/i },
  { name: 'eval: --batch non-numeric', defect: 9, tool: 'paro', args: opt(paroEval, ['--batch', 'four']), names: () => ['--batch'], problem: /positive|integer|number/i },
  { name: 'eval: --max-windows negative', defect: 9, tool: 'paro', args: opt(paroEval, ['--max-windows', '-3']), names: () => ['--max-windows'], problem: /positive|integer/i },
  { name: 'eval: --device nonsense', defect: 0, tool: 'paro', args: opt(paroEval, ['--device', 'tpu']), names: () => ['tpu'], problem: /device|auto|cpu|cuda/i },

  // ===== paro quantize =====
  // Option values.
  { name: 'quantize: --bits 8', defect: 9, tool: 'paro', args: opt(quantize, ['--bits', '8']), names: () => ['--bits'], problem: /4|support/i },
  { name: 'quantize: --group-size 2048 (wider than the linears)', defect: 0, tool: 'paro', args: opt(quantize, ['--group-size', '2048']), names: () => ['group'], problem: /multiple|divid|larger|exceed|2048/i },
  { name: 'quantize: --group-size 96 does not divide 256', defect: 0, tool: 'paro', args: opt(quantize, ['--group-size', '96']), names: () => ['group'], problem: /multiple|divid/i },
  { name: 'quantize: --krot not a number', defect: 9, tool: 'paro', args: opt(quantize, ['--krot', 'eight']), names: () => ['--krot'], problem: /integer|number/i },
  { name: 'quantize: --krot negative', defect: 9, tool: 'paro', args: opt(quantize, ['--krot', '-1']), names: () => ['--krot'], problem: /integer|negative|positive/i },
  { name: 'quantize: --epochs malformed', defect: 0, tool: 'paro', args: opt(quantize, ['--epochs', '1,x']), names: () => ['--epochs'], problem: /integer|a,b|format|number/i },
  { name: 'quantize: --epochs with three parts', defect: 0, tool: 'paro', args: opt(quantize, ['--epochs', '1,1,1']), names: () => ['--epochs'], problem: /a,b|two|format|pair/i },
  { name: 'quantize: --samples 0', defect: 9, tool: 'paro', args: opt(quantize, ['--samples', '0']), names: () => ['--samples'], problem: /positive|integer/i },
  { name: 'quantize: --method unknown', defect: 0, tool: 'paro', args: opt(quantize, ['--method', 'gptq']), names: () => ['gptq'], problem: /method|paro|rtn/i },
  { name: 'quantize: --device nonsense', defect: 0, tool: 'paro', args: opt(quantize, ['--device', 'gpu9']), names: () => ['gpu9'], problem: /device|auto|cpu|cuda/i },
  // Calibration files (defects 6, 9).
  { name: 'quantize: --calib missing file', defect: 9, tool: 'paro', args: (c) => withOpt(quantize(c), '--calib', f(c, 'nope.jsonl')), names: () => ['nope.jsonl'], problem: NOT_FOUND },
  { name: 'quantize: --calib /dev/zero', defect: 6, tool: 'paro', args: opt(quantize, ['--calib', '/dev/zero']), names: () => ['/dev/zero'], problem: DEVICE_FILE, timeoutS: 20 },
  { name: 'quantize: --calib too short for samples + val-samples', defect: 0, tool: 'paro', args: (c) => withOpt(quantize(c), '--calib', f(c, 'short.jsonl')), setup: (c) => { write(c, 'short.jsonl', '{"text": "one short line"}\n'); }, names: () => ['short.jsonl'], problem: /window|too short|tokens/i },
  // Weights (defects 2, 7).
  { name: 'quantize: one NaN in layers.2 gate_proj', defect: 0, tool: 'paro', args: opt(quantize, ['--method', 'rtn']), setup: (c) => poison(st(c), 'model.layers.2.mlp.gate_proj.weight', NaN, 9), names: () => ['model.layers.2.mlp.gate_proj.weight'], problem: NOT_FINITE },
  { name: 'quantize: norm relabelled to a wrong shape, no partial left', defect: 7, tool: 'paro', args: opt(quantize, ['--method', 'rtn']), setup: (c) => editHeader(st(c), (h) => { h[NORM0].shape = [128, 2]; }), names: () => [NORM0], problem: /shape/i },
  // Dangerous outputs (defect 1).
  { name: 'quantize: --out . --force in a folder with notes, src/ and the model', defect: 1, tool: 'paro', args: (c) => withOpt(withOpt(quantize(c), '--out', '.'), '--method', 'rtn').concat('--force'), setup: (c) => userFolder(c.root), names: () => [/(^|\s)(\.|\/\S+): /m], problem: /current (working )?dir|input|contain/i },
  { name: 'quantize: --out equal to the model --force', defect: 1, tool: 'paro', args: (c) => withOpt(quantize(c), '--out', c.model).concat('--force'), names: (c) => [c.model], problem: OUTPUT_REFUSED },
  { name: 'quantize: --out inside the model --force', defect: 1, tool: 'paro', args: (c) => withOpt(quantize(c), '--out', path.join(c.model, 'q')).concat('--force'), names: (c) => [c.model], problem: OUTPUT_REFUSED },
  { name: 'quantize: --out containing the model --force', defect: 1, tool: 'paro', args: (c) => withOpt(quantize(c), '--out', c.root).concat('--force'), cwd: (c) => c.model, names: (c) => [c.root], problem: OUTPUT_REFUSED },
  { name: 'quantize: --out the calibration file --force', defect: 1, tool: 'paro', args: (c) => withOpt(quantize(c), '--out', c.data).concat('--force'), names: () => ['data.jsonl'], problem: OUTPUT_REFUSED },
  { name: 'quantize: --force on a folder we did not write', defect: 1, tool: 'paro', args: (c) => quantize(c).concat('--force'), setup: (c) => userFolder(c.out), names: (c) => [c.out], problem: OUTPUT_REFUSED },
  { name: 'quantize: --out under a read-only folder', defect: 9, tool: 'paro', args: (c) => withOpt(quantize(c), '--out', path.join(readOnlyParent(c), 'paro-bad-input-out')), names: () => ['paro-bad-input-out'], problem: /permission|not permitted|read-only|not writable|cannot (create|write)/i },
  { name: 'quantize: --out /etc/passwd/x', defect: 9, tool: 'paro', args: opt(quantize, ['--out', '/etc/passwd/x']), names: () => ['/etc/passwd'], problem: /not a directory|is a file|cannot/i },
  // Partials and resume (defect 8).
  { name: 'quantize: a partial of an interrupted run, rerun without --resume: refused, partial kept', defect: 8, tool: 'paro', args: quantize, setup: (c) => cpSync(need(c, 'quantPartial'), c.out + '.partial', { recursive: true }), names: () => ['partial'], problem: /--resume|--force|partial|unfinished|interrupted/i },
  { name: 'quantize: --resume a partial made with other settings: refused, partial kept', defect: 0, tool: 'paro', args: (c) => withOpt(withOpt(quantize(c), '--epochs', '2,1'), '--seed', '5').concat('--resume'), setup: (c) => cpSync(need(c, 'quantPartial'), c.out + '.partial', { recursive: true }), names: () => ['partial'], problem: /settings|inputs|differ|other|foreign|fingerprint/i },
  { name: 'quantize: --resume with a corrupt progress.json', defect: 9, tool: 'paro', args: (c) => quantize(c).concat('--resume'), setup: (c) => { cpSync(need(c, 'quantPartial'), c.out + '.partial', { recursive: true }); truncateSync(path.join(c.out + '.partial', 'progress.json'), 7); }, names: () => ['progress.json'], problem: /corrupt|JSON|invalid|unreadable/i },

  // ===== dflash generate-data =====
  { name: 'generate-data: hostile chat template (10^9 loop)', defect: 5, tool: 'dflash', args: generate, setup: (c) => editJson(tokCfg(c), (j) => { j.chat_template = hostileTemplate; }), names: () => ['tokenizer_config.json'], problem: /template/i, timeoutS: 40 },
  { name: 'generate-data: chat template that is not a string', defect: 0, tool: 'dflash', args: generate, setup: (c) => editJson(tokCfg(c), (j) => { j.chat_template = 42; }), names: () => ['tokenizer_config.json'], problem: /chat_template/i },
  { name: 'generate-data: --prompts missing file', defect: 0, tool: 'dflash', args: (c) => withOpt(generate(c), '--prompts', f(c, 'nope.jsonl')), names: () => ['nope.jsonl'], problem: NOT_FOUND },
  { name: 'generate-data: --prompts empty file', defect: 0, tool: 'dflash', args: (c) => withOpt(generate(c), '--prompts', f(c, 'empty.jsonl')), setup: (c) => { write(c, 'empty.jsonl', ''); }, names: () => ['empty.jsonl'], problem: /empty|no prompts/i },
  { name: 'generate-data: --prompts /dev/zero', defect: 6, tool: 'dflash', args: opt(generate, ['--prompts', '/dev/zero']), names: () => ['/dev/zero'], problem: DEVICE_FILE, timeoutS: 20 },
  { name: 'generate-data: --prompts binary garbage (.txt)', defect: 6, tool: 'dflash', args: (c) => withOpt(generate(c), '--prompts', f(c, 'garbage.txt')), setup: (c) => { write(c, 'garbage.txt', garbage(4096)); }, names: () => ['garbage.txt'], problem: /binary|UTF-8|not (a )?text/i },
  { name: 'generate-data: --prompts JSONL with the wrong keys', defect: 0, tool: 'dflash', args: (c) => withOpt(generate(c), '--prompts', f(c, 'keys.jsonl')), setup: (c) => { write(c, 'keys.jsonl', '{"question": "hi"}\n'); }, names: () => ['keys.jsonl'], problem: /prompt|messages/ },
  { name: 'generate-data: --out the prompts file --force', defect: 1, tool: 'dflash', args: (c) => withOpt(generate(c), '--out', c.prompts).concat('--force'), names: () => ['prompts.jsonl'], problem: OUTPUT_REFUSED },
  { name: 'generate-data: --out the model folder --force', defect: 1, tool: 'dflash', args: (c) => withOpt(generate(c), '--out', c.model).concat('--force'), names: (c) => [c.model], problem: OUTPUT_REFUSED },
  { name: 'generate-data: --out . --force', defect: 1, tool: 'dflash', args: (c) => withOpt(generate(c), '--out', '.').concat('--force'), setup: (c) => userFolder(c.root), names: () => [/(^|\s)(\.|\/\S+): /m], problem: /current (working )?dir|input|contain/i },
  { name: 'generate-data: --out /etc/passwd/x.jsonl', defect: 9, tool: 'dflash', args: opt(generate, ['--out', '/etc/passwd/x.jsonl']), names: () => ['/etc/passwd'], problem: /not a directory|is a file|cannot/i },
  { name: 'generate-data: foreign partial from another prompt set: refused, kept', defect: 3, tool: 'dflash', args: (c) => withOpt(c.shared.genPartialArgs.map((a) => (a === '<target>' ? c.model : a === '<prompts>' ? c.prompts : a === '<out>' ? c.outJsonl : a)), '--out', c.outJsonl), setup: (c) => cpSync(need(c, 'genPartial'), c.outJsonl + '.partial', { recursive: true }), names: () => ['partial'], problem: /prompt|differ|other|foreign|fingerprint|settings/i },
  { name: 'generate-data: foreign partial from another target: refused, kept', defect: 3, tool: 'dflash', args: (c) => c.shared.genPartialArgs.map((a) => (a === '<target>' ? c.model : a === '<prompts>' ? f(c, 'prompts-long.jsonl') : a === '<out>' ? c.outJsonl : a)), setup: (c) => { cpSync(need(c, 'genPartial'), c.outJsonl + '.partial', { recursive: true }); copyFileSync(c.shared.genPartialPrompts, f(c, 'prompts-long.jsonl')); editTensors(st(c), (ts) => { ts.find((t) => t.name === 'model.norm.weight')!.data[0] ^= 1; }); }, names: () => ['partial'], problem: /target|differ|other|foreign|fingerprint|settings/i },
  { name: 'generate-data: --max-new-tokens 0', defect: 9, tool: 'dflash', args: opt(generate, ['--max-new-tokens', '0']), names: () => ['--max-new-tokens'], problem: /positive|integer/i },
  { name: 'generate-data: --temperature negative', defect: 9, tool: 'dflash', args: opt(generate, ['--temperature', '-1']), names: () => ['--temperature'], problem: /negative|number/i },
  { name: 'generate-data: --device nonsense', defect: 0, tool: 'dflash', args: opt(generate, ['--device', 'cuda:banana']), names: () => ['cuda:banana'], problem: /device|auto|cpu|cuda/i },
  { name: 'generate-data: one NaN in the target k_proj', defect: 2, tool: 'dflash', args: generate, setup: (c) => poison(st(c), K1, NaN, 3), names: () => [K1], problem: NOT_FINITE },
  { name: 'generate-data: tokenizer.json missing', defect: 0, tool: 'dflash', args: generate, setup: (c) => rmSync(path.join(c.model, 'tokenizer.json')), names: () => ['tokenizer.json'], problem: NOT_FOUND },

  // ===== dflash train-drafter =====
  { name: 'train-drafter: --out equal to the target --force', defect: 1, tool: 'dflash', args: (c) => withOpt(train(c), '--out', c.model).concat('--force'), names: (c) => [c.model], problem: OUTPUT_REFUSED },
  { name: 'train-drafter: --out inside the target --force', defect: 1, tool: 'dflash', args: (c) => withOpt(train(c), '--out', path.join(c.model, 'drafter')).concat('--force'), names: (c) => [c.model], problem: OUTPUT_REFUSED },
  { name: 'train-drafter: --out the data file --force', defect: 1, tool: 'dflash', args: (c) => withOpt(train(c), '--out', c.records).concat('--force'), names: () => ['records.jsonl'], problem: OUTPUT_REFUSED },
  { name: 'train-drafter: --out . --force', defect: 1, tool: 'dflash', args: (c) => withOpt(train(c), '--out', '.').concat('--force'), setup: (c) => userFolder(c.root), names: () => [/(^|\s)(\.|\/\S+): /m], problem: /current (working )?dir|input|contain/i },
  { name: 'train-drafter: --force on a folder we did not write', defect: 1, tool: 'dflash', args: (c) => train(c).concat('--force'), setup: (c) => userFolder(c.out), names: (c) => [c.out], problem: OUTPUT_REFUSED },
  // 600 optimizer steps: a refusal that comes only after training runs into the timeout.
  { name: 'train-drafter: --out /etc/passwd/x (before any training)', defect: 8, tool: 'dflash', args: opt(trainKilled, ['--epochs', '200'], ['--out', '/etc/passwd/x']), names: () => ['/etc/passwd'], problem: /not a directory|is a file|cannot/i, timeoutS: 25 },
  { name: 'train-drafter: --out under a read-only folder', defect: 9, tool: 'dflash', args: (c) => withOpt(train(c), '--out', path.join(readOnlyParent(c), 'paro-bad-input-drafter')), names: () => ['paro-bad-input-drafter'], problem: /permission|not permitted|read-only|not writable|cannot (create|write)/i },
  { name: 'train-drafter: state of a run killed after a checkpoint, rerun without --resume: refused, kept', defect: 8, tool: 'dflash', args: trainKilled, setup: trainLeftovers, mayGo: ['out.lock'], names: () => ['out.'], problem: /--resume|--force|interrupted|unfinished/i },
  { name: 'train-drafter: legacy out.checkpoint and .out.checkpoint.tmp-* of a killed run, no --force: refused, kept', defect: 8, tool: 'dflash', args: train, setup: (c) => { mkdirSync(c.out + '.checkpoint'); writeFileSync(path.join(c.out + '.checkpoint', 'state.json'), '{"step": 3}\n'); mkdirSync(f(c, '.out.checkpoint.tmp-4242')); writeFileSync(f(c, '.out.checkpoint.tmp-4242/optimizer.safetensors'), garbage(1000)); }, names: () => ['checkpoint'], problem: /--resume|--force|unfinished|interrupted/i },
  { name: 'train-drafter: --data empty file', defect: 0, tool: 'dflash', args: (c) => withOpt(train(c), '--data', f(c, 'empty.jsonl')), setup: (c) => { write(c, 'empty.jsonl', ''); }, names: () => ['empty.jsonl'], problem: /empty|no records|no samples/i },
  { name: 'train-drafter: --data /dev/zero', defect: 6, tool: 'dflash', args: opt(train, ['--data', '/dev/zero']), names: () => ['/dev/zero'], problem: DEVICE_FILE, timeoutS: 20 },
  { name: 'train-drafter: --data JSONL with the wrong keys', defect: 0, tool: 'dflash', args: (c) => withOpt(train(c), '--data', f(c, 'keys.jsonl')), setup: (c) => { write(c, 'keys.jsonl', '{"question": "a", "answer": "b"}\n'); }, names: () => ['keys.jsonl'], problem: /prompt|response|input_ids/ },
  { name: 'train-drafter: --data a directory', defect: 9, tool: 'dflash', args: (c) => withOpt(train(c), '--data', f(c, 'recs')), setup: (c) => { mkdirSync(f(c, 'recs')); }, names: () => ['recs'], problem: /directory/i },
  { name: 'train-drafter: --data binary garbage', defect: 0, tool: 'dflash', args: (c) => withOpt(train(c), '--data', f(c, 'garbage.jsonl')), setup: (c) => { write(c, 'garbage.jsonl', garbage(4096)); }, names: () => ['garbage.jsonl'], problem: /binary|UTF-8|JSON|not (a )?text/i },
  { name: 'train-drafter: --block-size 64 > --seq-len 32', defect: 0, tool: 'dflash', args: opt(train, ['--block-size', '64']), names: () => ['--seq-len'], problem: /block/i },
  { name: 'train-drafter: --epochs 1,1 (malformed)', defect: 9, tool: 'dflash', args: opt(train, ['--epochs', '1,1']), names: () => ['--epochs'], problem: /integer|auto/i },
  { name: 'train-drafter: --epochs 0', defect: 9, tool: 'dflash', args: opt(train, ['--epochs', '0']), names: () => ['--epochs'], problem: /positive|integer/i },
  { name: 'train-drafter: --lr negative', defect: 9, tool: 'dflash', args: opt(train, ['--lr', '-0.001']), names: () => ['--lr'], problem: /positive|number/i },
  { name: 'train-drafter: --layers 99', defect: 0, tool: 'dflash', args: opt(train, ['--layers', '99']), names: () => [/--layers|draft layers/], problem: /layers|at most|exceed/i },
  { name: 'train-drafter: --target-layers beyond the target', defect: 0, tool: 'dflash', args: opt(train, ['--target-layers', '0,9']), names: () => ['9'], problem: /layer|range|outside|at most/i },
  { name: 'train-drafter: --mask-token beyond the vocabulary', defect: 0, tool: 'dflash', args: opt(train, ['--mask-token', '999999']), names: () => ['999999'], problem: /mask|vocab|range|outside/i },
  { name: 'train-drafter: --device nonsense', defect: 0, tool: 'dflash', args: opt(train, ['--device', 'npu']), names: () => ['npu'], problem: /device|auto|cpu|cuda/i },
  { name: 'train-drafter: one NaN in the target v_proj', defect: 2, tool: 'dflash', args: train, setup: (c) => poison(st(c), 'model.layers.0.self_attn.v_proj.weight', NaN, 11), names: () => ['model.layers.0.self_attn.v_proj.weight'], problem: NOT_FINITE },
  { name: 'train-drafter: target config num_hidden_layers 6, 4 present', defect: 0, tool: 'dflash', args: train, setup: (c) => editJson(cfg(c), (j) => { j.num_hidden_layers = 6; j.layer_types = Array(6).fill('full_attention'); }), names: () => ['layers.4'], problem: /missing/i },

  // ===== dflash eval =====
  { name: 'dflash eval: one NaN in a drafter weight', defect: 2, tool: 'dflash', args: dEval, setup: (c) => poison(drafterSt(c), 'layers.0.self_attn.k_proj.weight', NaN, 17), names: () => ['layers.0.self_attn.k_proj.weight'], problem: NOT_FINITE },
  { name: 'dflash eval: +Inf in the target embedding', defect: 2, tool: 'dflash', args: dEval, setup: (c) => poison(st(c), 'model.embed_tokens.weight', Infinity, 4000), names: () => ['model.embed_tokens.weight'], problem: NOT_FINITE },
  { name: 'dflash eval: drafter safetensors truncated', defect: 0, tool: 'dflash', args: dEval, setup: (c) => truncateSync(drafterSt(c), 100_000), names: () => ['model.safetensors'], problem: /truncat|end of the file|data section|offset|cover/i },
  { name: 'dflash eval: drafter config hidden_size 128 vs 256-wide weights', defect: 0, tool: 'dflash', args: dEval, setup: (c) => editJson(drafterCfg(c), (j) => { j.hidden_size = 128; }), names: () => ['hidden'], problem: /hidden|shape|128|256/i },
  { name: 'dflash eval: drafter taps a target layer that does not exist', defect: 0, tool: 'dflash', args: dEval, setup: (c) => editJson(drafterCfg(c), (j) => { (j.dflash_config as { target_layer_ids: number[] }).target_layer_ids = [0, 1, 9]; }), names: () => ['config.json'], problem: /layer|range|outside|target/i },
  { name: 'dflash eval: drafter weights missing', defect: 0, tool: 'dflash', args: dEval, setup: (c) => rmSync(drafterSt(c)), names: (c) => [c.drafter], problem: /safetensors|checkpoint|weights|no /i },
  { name: 'dflash eval: --drafter does not exist', defect: 0, tool: 'dflash', args: (c) => withOpt(dEval(c), '--drafter', f(c, 'no-drafter')), names: () => ['no-drafter'], problem: NOT_FOUND },
  { name: 'dflash eval: --prompts /dev/zero', defect: 6, tool: 'dflash', args: opt(dEval, ['--prompts', '/dev/zero']), names: () => ['/dev/zero'], problem: DEVICE_FILE, timeoutS: 20 },
  { name: 'dflash eval: --prompts a FIFO', defect: 6, tool: 'dflash', args: (c) => withOpt(dEval(c), '--prompts', f(c, 'pipe.jsonl')), setup: (c) => { fifo(c, 'pipe.jsonl'); }, names: () => ['pipe.jsonl'], problem: DEVICE_FILE, timeoutS: 20 },
  { name: 'dflash eval: --prompts empty file', defect: 0, tool: 'dflash', args: (c) => withOpt(dEval(c), '--prompts', f(c, 'empty.jsonl')), setup: (c) => { write(c, 'empty.jsonl', ''); }, names: () => ['empty.jsonl'], problem: /empty|no prompts/i },
  { name: 'dflash eval: hostile chat template (10^9 loop)', defect: 5, tool: 'dflash', args: dEval, setup: (c) => editJson(tokCfg(c), (j) => { j.chat_template = hostileTemplate; }), names: () => ['tokenizer_config.json'], problem: /template/i, timeoutS: 40 },
  { name: 'dflash eval: --expect file missing', defect: 9, tool: 'dflash', args: (c) => [...dEval(c), '--expect', f(c, 'greedy.json')], names: () => ['greedy.json'], problem: NOT_FOUND },
  { name: 'dflash eval: --max-new-tokens 0', defect: 9, tool: 'dflash', args: opt(dEval, ['--max-new-tokens', '0']), names: () => ['--max-new-tokens'], problem: /positive|integer/i },
  { name: 'dflash eval: --device nonsense', defect: 0, tool: 'dflash', args: opt(dEval, ['--device', 'metal']), names: () => ['metal'], problem: /device|auto|cpu|cuda/i },
];
