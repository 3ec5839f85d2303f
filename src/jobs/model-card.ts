// The release bundle's README.md (its Hugging Face model card), rendered from typed inputs by a pure function: YAML
// front matter (Hub metadata), what the model is and how it was made, FP vs quantized figures, the gates with value and
// limit, τ of the drafter, how to serve it, and the licence.
// Serving instructions follow the official runtimes: z-lab/paroquant (vLLM plugin registered by `pip install
// "paroquant[vllm]"`, quant_method "paroquant"; Transformers via paroquant.cli) and z-lab/dflash (vLLM
// `--speculative-config '{"method": "dflash", ...}'`, SGLang `--speculative-algorithm DFLASH`).
import { stringify } from 'yaml';

export interface CardSource {
  /** "org/name" when the base model came from the Hub (cache); undefined for a local folder. */
  repoId?: string;
  revision?: string;
  commit?: string;
  /** Shown instead of a repo id for a local source (a folder name, not an absolute path of the build machine). */
  localName?: string;
  /** config.json architectures[0], e.g. "Qwen3ForCausalLM". */
  architecture: string;
}

export interface CardQuantization {
  method: 'paro' | 'rtn';
  bits: number;
  groupSize: number;
  /** Givens rotation layers per linear (ParoQuant only). */
  krot?: number;
  /** Every other setting worth stating (samples, seq_len, epochs, calibration data, seed, device...), in order. */
  settings: Record<string, string | number | boolean>;
}

export interface CardQuality {
  /** What the metrics were measured on, e.g. "eval.jsonl: 40 windows of 512 tokens". */
  data: string;
  fpPerplexity?: number;
  quantizedPerplexity?: number;
  /** Mean KL(FP ‖ quantized) per token, nats. */
  kl?: number;
  /** Share of tokens whose FP and quantized argmax agree, 0..1. */
  top1Agreement?: number;
}

export interface CardGate {
  /** The config key: max_ppl_increase, max_kl, min_top1_agreement, min_tau. */
  name: string;
  value: number;
  limit: number;
  passed: boolean;
}

export interface CardDrafter {
  /** Folder inside the bundle, "drafter". */
  dir: string;
  blockSize: number;
  layers: number;
  targetLayerIds: number[];
  /** Mean acceptance length τ (accepted drafted tokens + the target's one per step). */
  tau?: number;
  /** What τ was measured on, e.g. "32 prompts, 128 new tokens, greedy". */
  tauData?: string;
  /** The prompts the training data were generated from (a file name). */
  trainingPrompts?: string;
  /** True when the drafter's config has auto_map and dflash.py is shipped beside it (Transformers remote code). */
  remoteCode: boolean;
}

export interface CardLicense {
  /** An SPDX-style Hub licence id (apache-2.0, mit, llama3.1...) or "other". */
  id: string;
  /** For "other": a short name (e.g. "qwen-research") and the file in the bundle that holds the terms. */
  name?: string;
  link?: string;
  /** Licence/notice files copied into model/. */
  files: string[];
}

export interface ModelCardInput {
  /** Repo id the bundle will be published as; undefined: a generic title from the base model. */
  name?: string;
  source: CardSource;
  quantization: CardQuantization;
  quality?: CardQuality;
  gates: CardGate[];
  drafter?: CardDrafter;
  license?: CardLicense;
  tool: { name: string; version: string };
  /** Folder of the quantized model inside the bundle, "model". */
  modelDir: string;
}

function baseName(s: CardSource): string {
  return s.repoId ?? s.localName ?? 'the base model';
}

function fmt(x: number, digits = 4): string {
  return Number.isInteger(x) ? String(x) : x.toFixed(digits);
}

/** At most `digits` decimals, trailing zeros dropped (gate values and limits: 0.05, not 0.05000). */
function short(x: number, digits = 5): string {
  return String(Number(x.toFixed(digits)));
}

function percent(x: number): string {
  return `${x >= 0 ? '+' : ''}${(x * 100).toFixed(2)} %`;
}

/** Hub metadata: see the Hub's model card spec (base_model, base_model_relation, library_name, license, tags). */
export function modelCardMetadata(input: ModelCardInput): Record<string, unknown> {
  const meta: Record<string, unknown> = {};
  if (input.license) {
    meta.license = input.license.id;
    if (input.license.id === 'other') {
      if (input.license.name) meta.license_name = input.license.name;
      if (input.license.link) meta.license_link = input.license.link;
    }
  }
  if (input.source.repoId) {
    meta.base_model = [input.source.repoId];
    meta.base_model_relation = 'quantized';
  }
  meta.library_name = 'transformers';
  meta.pipeline_tag = 'text-generation';
  const tags = ['paroquant', `int${input.quantization.bits}`, 'quantized', input.tool.name];
  if (input.drafter) tags.push('dflash', 'speculative-decoding');
  meta.tags = tags;
  return meta;
}

/** The whole README.md. */
export function renderModelCard(input: ModelCardInput): string {
  const { source: src, quantization: q, drafter } = input;
  const base = baseName(src);
  const title = input.name ?? `${base.split('/').pop()}-${q.method === 'paro' ? 'PARO' : 'RTN'}`;
  const out: string[] = [];
  out.push('---', stringify(modelCardMetadata(input)).trimEnd(), '---', '');
  out.push(`# ${title}`, '');
  const methodName = q.method === 'paro'
    ? 'ParoQuant (pairwise Givens rotations and channel scales, optimized block by block)'
    : 'round-to-nearest (RTN baseline)';
  const link = src.repoId ? `[${src.repoId}](https://huggingface.co/${src.repoId})` : `\`${base}\``;
  out.push(`${q.bits}-bit weight-only quantization of ${link} with ${methodName}, ` +
    `group size ${q.groupSize}, packed in the AutoAWQ layout (\`quantization_config.quant_method = "paroquant"\`).` +
    (drafter ? ` Ships a DFlash block-diffusion drafter trained on this quantized model, for speculative decoding.` : ''), '');

  out.push('## Base model', '');
  out.push('| | |', '|---|---|');
  out.push(`| Model | ${src.repoId ? link : `\`${base}\` (local folder)`} |`);
  if (src.revision) out.push(`| Revision | \`${src.revision}\` |`);
  if (src.commit) out.push(`| Commit | \`${src.commit}\` |`);
  out.push(`| Architecture | \`${src.architecture}\` |`, '');

  out.push('## Quantization', '');
  out.push('| Setting | Value |', '|---|---|');
  out.push(`| Method | ${q.method === 'paro' ? 'ParoQuant' : 'RTN'} |`, `| Bits | ${q.bits} |`, `| Group size | ${q.groupSize} |`);
  if (q.krot !== undefined) out.push(`| Rotation layers (krot) | ${q.krot} |`);
  for (const [k, v] of Object.entries(q.settings)) out.push(`| ${k} | ${typeof v === 'string' ? `\`${v}\`` : String(v)} |`);
  out.push('', `Made with ${input.tool.name} ${input.tool.version}. \`manifest.json\` beside this card lists every setting, ` +
    'the sha256 of every input and output file, and the time of each stage.', '');

  const qual = input.quality;
  if (qual) {
    out.push('## Quality', '', `Measured on ${qual.data}.`, '');
    out.push('| Metric | FP (base) | Quantized |', '|---|---|---|');
    if (qual.fpPerplexity !== undefined || qual.quantizedPerplexity !== undefined) {
      const fp = qual.fpPerplexity;
      const qp = qual.quantizedPerplexity;
      const rel = fp !== undefined && qp !== undefined ? ` (${percent((qp - fp) / fp)})` : '';
      out.push(`| Perplexity | ${fp === undefined ? '—' : fmt(fp)} | ${qp === undefined ? '—' : fmt(qp)}${rel} |`);
    }
    if (qual.kl !== undefined) out.push(`| KL(FP ‖ quantized), nats/token | 0 | ${fmt(qual.kl, 5)} |`);
    if (qual.top1Agreement !== undefined) out.push(`| Top-1 agreement with FP | 100 % | ${(qual.top1Agreement * 100).toFixed(2)} % |`);
    out.push('');
  }
  if (drafter?.tau !== undefined) {
    out.push('## Drafter', '', `DFlash drafter in \`${drafter.dir}/\`: ${drafter.layers} layer${drafter.layers === 1 ? '' : 's'}, ` +
      `block size ${drafter.blockSize}, reading target layers ${drafter.targetLayerIds.join(', ')}; trained on responses ` +
      `generated by the quantized model${drafter.trainingPrompts ? ` for the prompts of \`${drafter.trainingPrompts}\`` : ''}.`, '');
    out.push(`Mean acceptance length **τ = ${drafter.tau.toFixed(2)}** with the quantized model as target` +
      `${drafter.tauData ? ` (${drafter.tauData})` : ''}.`, '');
  } else if (drafter) {
    out.push('## Drafter', '', `DFlash drafter in \`${drafter.dir}/\`: ${drafter.layers} layers, block size ${drafter.blockSize}.`, '');
  }
  if (input.gates.length) {
    out.push('## Release gates', '', 'This bundle was published only because every gate below passed.', '');
    out.push('| Gate | Value | Limit | Result |', '|---|---|---|---|');
    for (const g of input.gates) {
      const op = g.name.startsWith('min_') ? '≥' : '≤';
      out.push(`| \`${g.name}\` | ${short(g.value)} | ${op} ${short(g.limit)} | ${g.passed ? 'pass' : 'FAIL'} |`);
    }
    out.push('');
  }

  out.push(...servingSection(input.modelDir, drafter, input.name));
  out.push(...licenseSection(input.license, base, input.modelDir));
  return out.join('\n').replace(/\n{3,}/g, '\n\n').trimEnd() + '\n';
}

function servingSection(modelDir: string, drafter: CardDrafter | undefined, name: string | undefined): string[] {
  const out: string[] = ['## How to serve', ''];
  // The bundle keeps the model and the drafter in subfolders, so runtimes get local paths: download first.
  const root = name ? (name.split('/').pop() as string) : '.';
  const target = `${root}/${modelDir}`;
  if (name) {
    out.push('The model and the drafter sit in subfolders of this repository; download it first:', '',
      '```bash', `hf download ${name} --local-dir ${root}`, '```', '');
  }
  out.push('The quantized model loads with the official ParoQuant runtime ([z-lab/paroquant](https://github.com/z-lab/paroquant)), ' +
    'which registers the `paroquant` quantization method with vLLM and provides the rotation kernels:', '');
  out.push('```bash', 'pip install "paroquant[vllm]"', '', '# OpenAI-compatible server (vLLM picks up the paroquant plugin)',
    `vllm serve ${target} --port 8000`, '', '# interactive chat / other backends (Transformers)',
    `python -m paroquant.cli.chat --model ${target}`, `python -m paroquant.cli.serve --model ${target} --port 8000`, '```', '');
  out.push('Plain vLLM or Transformers without the `paroquant` package cannot load this checkpoint: the rotations and channel ' +
    'scales are applied to the activations before each INT4 GEMM. SGLang has no ParoQuant loader.', '');
  if (!drafter) return out;
  const draftPath = `${root}/${drafter.dir}`;
  out.push('### Speculative decoding with the DFlash drafter', '');
  out.push(`The drafter in \`${drafter.dir}/\` uses the official z-lab DFlash format ([z-lab/dflash](https://github.com/z-lab/dflash)). ` +
    `It was trained against this quantized model, which is where its τ was measured; it reuses the target's embeddings and LM head.`, '');
  out.push('**vLLM** (a build with the `dflash` speculative method, plus `paroquant[vllm]` for the target; ' +
    `\`num_speculative_tokens\` = block size − 1 = ${drafter.blockSize - 1}):`, '');
  out.push('```bash', `vllm serve ${target} \\`,
    `  --speculative-config '{"method": "dflash", "model": "${draftPath}", "num_speculative_tokens": ${drafter.blockSize - 1}}' \\`,
    '  --max-num-batched-tokens 32768', '```', '');
  out.push(`**SGLang** (\`--speculative-num-draft-tokens\` = block size = ${drafter.blockSize}). SGLang cannot load the ` +
    'ParoQuant target, so this serves the drafter with the FP base model; acceptance there differs from the τ above:', '');
  out.push('```bash', 'python -m sglang.launch_server \\', '    --model-path <FP base model> \\',
    '    --speculative-algorithm DFLASH \\', `    --speculative-draft-model-path ${draftPath} \\`,
    `    --speculative-num-draft-tokens ${drafter.blockSize} \\`, '    --trust-remote-code', '```', '');
  if (drafter.remoteCode) {
    out.push('**Transformers**: the drafter ships its modelling code (`dflash.py`, referenced by `auto_map` in its config), so ' +
      '`AutoModel.from_pretrained(<drafter>, trust_remote_code=True)` loads it; generate with ' +
      '`draft.spec_generate(input_ids=..., target=<target model>, max_new_tokens=..., temperature=0.0)`.', '');
  } else {
    out.push('**Transformers**: the drafter config has no `auto_map` (no remote code is shipped); install the z-lab/dflash ' +
      'package (`pip install -e ".[transformers]"` in its repository) and load it with ' +
      '`from dflash.model import DFlashDraftModel; DFlashDraftModel.from_pretrained(<drafter>)`.', '');
  }
  return out;
}

function licenseSection(license: CardLicense | undefined, base: string, modelDir: string): string[] {
  const out: string[] = ['## Licence', ''];
  if (!license) {
    out.push(`The licence of ${base} applies to these weights; no licence file was found in the source to copy. ` +
      'Check the base model\'s terms before use.');
    return out;
  }
  const terms = license.id === 'other' ? (license.name ?? 'a custom licence') : `\`${license.id}\``;
  out.push(`These weights are derived from ${base} and are distributed under its licence (${terms}).`);
  if (license.files.length) {
    out.push('', `The source's licence and notice files are copied unchanged: ${license.files.map((f) => `\`${modelDir}/${f}\``).join(', ')}.`);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// The licence of the source, from what a Hub repo usually carries.

const LICENSE_PATTERNS: [RegExp, string][] = [
  [/Apache License,?\s+Version 2\.0/i, 'apache-2.0'],
  [/^\s*MIT License/im, 'mit'],
  [/LLAMA 3\.3 COMMUNITY LICENSE/i, 'llama3.3'],
  [/LLAMA 3\.2 COMMUNITY LICENSE/i, 'llama3.2'],
  [/LLAMA 3\.1 COMMUNITY LICENSE/i, 'llama3.1'],
  [/META LLAMA 3 COMMUNITY LICENSE/i, 'llama3'],
  [/LLAMA 2 COMMUNITY LICENSE/i, 'llama2'],
  [/Qwen RESEARCH LICENSE/i, 'other:qwen-research'],
  [/Tongyi Qianwen LICENSE/i, 'other:tongyi-qianwen'],
];

/**
 * The Hub licence id of a source: the `license:` key of its README front matter when present (with license_name for
 * "other"), else recognised from the first lines of its LICENSE text. undefined when neither tells.
 */
export function detectLicense(opts: { readme?: string; licenseText?: string }): { id: string; name?: string } | undefined {
  const fm = opts.readme ? /^---\r?\n([\s\S]*?)\r?\n---/.exec(opts.readme) : null;
  if (fm) {
    const id = /^license:\s*["']?([\w.-]+)["']?\s*$/m.exec(fm[1])?.[1];
    const name = /^license_name:\s*["']?([\w.-]+)["']?\s*$/m.exec(fm[1])?.[1];
    if (id) return id === 'other' && name ? { id, name } : { id };
  }
  if (opts.licenseText) {
    const head = opts.licenseText.slice(0, 4000);
    for (const [re, id] of LICENSE_PATTERNS) {
      if (re.test(head)) return id.startsWith('other:') ? { id: 'other', name: id.slice(6) } : { id };
    }
  }
  return undefined;
}
