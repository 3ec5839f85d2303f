// `paro release` end to end on the built-in tiny model on the cpu (the CI job of docs/ci.md in small): a run killed
// after the quantize stage, a rerun with a gate set to fail (exit 3 through the real CLI, JSON envelope, no bundle),
// a rerun with passing gates that reuses the finished stages and writes the bundle, the bundle's files, manifest hashes
// and card, and an idempotent rerun.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createBackend, parseDevice } from '../src/engine/select.js';
import { sha256File } from '../src/io/hash.js';
import { loadReleaseConfig } from '../src/io/release-config.js';
import { resolveSource } from '../src/io/hf-source.js';
import { runRelease, type ReleaseHooks, type ReleaseReport } from '../src/jobs/release.js';
import { scratchDir } from './scratch.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DEMO = path.join(ROOT, 'examples', 'tiny-qwen3');
const CALIB = path.join(ROOT, 'calib', 'default.jsonl');
const PROMPTS = path.join(ROOT, 'test', 'data', 'release-prompts.jsonl');

const tmp = scratchDir('paro-release-');
const source = path.join(tmp, 'tiny-qwen3');
const out = path.join(tmp, 'bundle');
const configFile = path.join(tmp, 'release.yaml');

function setup(): void {
  // The source: the demo model plus a licence file the bundle must carry.
  mkdirSync(source);
  for (const f of readdirSync(DEMO)) copyFileSync(path.join(DEMO, f), path.join(source, f));
  writeFileSync(path.join(source, 'LICENSE'), '                                 Apache License\n                           Version 2.0, January 2004\n');
  writeFileSync(configFile, [
    `source: ${source}`,
    'out: bundle',
    'device: cpu',
    'quantize: { samples: 8, val_samples: 2, seq_len: 64, epochs: [1, 1], batch_size: 4 }',
    `eval: { data: ${CALIB}, seq_len: 64, max_windows: 4 }`,
    'gates: { max_ppl_increase: 0.5, max_kl: 1.0, min_top1_agreement: 0.5, min_tau: 1.0 }',
    'drafter:',
    '  enabled: true',
    `  prompts: ${PROMPTS}`,
    '  generate: { max_new_tokens: 16, ignore_eos: true }',
    '  train: { block_size: 4, seq_len: 64, max_steps: 4, batch: 2 }',
    '  eval: { max_new_tokens: 16, max_prompts: 4 }',
    'bundle: { name: acme/tiny-qwen3-PARO, max_shard_size: 2MB }', // the 4 MB quantized model in shards
    '',
  ].join('\n'));
}

async function release(hooks: ReleaseHooks = {}, set: string[] = [], file = configFile, env: NodeJS.ProcessEnv = process.env): Promise<ReleaseReport> {
  const loaded = loadReleaseConfig(file, { set });
  const be = await createBackend(parseDevice('cpu'), () => {});
  return runRelease(be, {
    config: loaded.config, source: resolveSource(loaded.config.source, { env, cwd: loaded.sourceBaseDir }), defaultCalibFile: CALIB, force: false,
    run: { toolVersion: 'test', argv: ['release', '--config', configFile] },
  }, hooks);
}

function paroCli(args: string[]): { code: number; stdout: string; stderr: string } {
  const tsx = pathToFileURL(path.join(ROOT, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
  const r = spawnSync(process.execPath, ['--import', tsx, path.join(ROOT, 'scripts', 'paro-dev.ts'), ...args], {
    cwd: tmp, encoding: 'utf8', env: { ...process.env, PARO_QUIET: '1' }, timeout: 240_000,
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

describe('paro release on the tiny model (cpu)', () => {
  setup();

  it('resumes after a kill, fails a gate with exit 3 and no bundle, then releases, verifies and does nothing on a rerun', async () => {
    // 1. Killed in the middle of quantizing (after block 2), then right after the quantize stage was recorded: the
    // second run continues the quantize job's own partial from block 3.
    await expect(release({
      quantize: { onBlockEnd: (l) => { if (l === 1) throw new Error('killed in block 2'); } },
    })).rejects.toThrow('killed in block 2');
    expect(existsSync(path.join(out + '.partial', 'stages', 'quantize.partial', 'progress.json'))).toBe(true);
    const quantizeSaid: string[] = [];
    await expect(release({
      quantize: { onInfo: (m) => quantizeSaid.push(m) },
      onStageEnd: (stage) => { if (stage === 'quantize') throw new Error('killed after quantize'); },
    })).rejects.toThrow('killed after quantize');
    expect(quantizeSaid.join('\n')).toMatch(/resuming after 2 of 4 finished blocks/);
    expect(existsSync(out)).toBe(false);
    const progress = JSON.parse(readFileSync(path.join(out + '.partial', 'progress.json'), 'utf8')) as { stages: Record<string, unknown> };
    expect(Object.keys(progress.stages)).toEqual(['quantize']);

    // 2. The real CLI with a gate that cannot pass: exit 3, the envelope on stdout, one line on stderr, no bundle.
    const failed = paroCli(['release', '--config', configFile, '--set', 'gates.min_top1_agreement=1', '--json']);
    expect(failed.code, failed.stderr).toBe(3);
    const env = JSON.parse(failed.stdout) as {
      ok: boolean; command: string; error: { code: string; message: string };
      result: { gates: { name: string; value: number; passed: boolean }[]; stages: { name: string; reused: boolean }[] };
    };
    expect(env.ok).toBe(false);
    expect(env.command).toBe('release');
    expect(env.error.code).toBe('gate');
    expect(env.error.message).toMatch(/min_top1_agreement failed: 0\.\d+ \(limit ≥ 1\)/);
    expect(env.result.gates.map((g) => [g.name, g.passed])).toEqual([['max_ppl_increase', true], ['max_kl', true], ['min_top1_agreement', false]]);
    expect(env.result.stages.map((st) => [st.name, st.reused])).toEqual([['quantize', true], ['eval', false]]);
    expect(failed.stderr.trim().split('\n').filter((l) => l.startsWith('error:'))).toHaveLength(1);
    expect(existsSync(out)).toBe(false);
    expect(existsSync(path.join(out + '.partial', 'stages', 'quantize', 'config.json'))).toBe(true); // kept for inspection

    // 3. Passing gates: quantize and eval are reused, the drafter stages run, the bundle appears.
    const r = await release();
    expect(r.nothingToDo).toBe(false);
    expect(r.stages.map((s) => [s.name, s.reused])).toEqual([
      ['quantize', true], ['eval', true], ['generate', false], ['train', false], ['drafter-eval', false],
    ]);
    expect(existsSync(out + '.partial')).toBe(false);
    expect(r.gates.map((g) => g.name)).toEqual(['max_ppl_increase', 'max_kl', 'min_top1_agreement', 'min_tau']);
    expect(r.gates.every((g) => g.passed)).toBe(true);

    // The bundle's files.
    for (const f of ['README.md', 'manifest.json', 'model/config.json', 'model/tokenizer.json', 'model/LICENSE', 'drafter/config.json', 'drafter/model.safetensors']) {
      expect(existsSync(path.join(out, f)), f).toBe(true);
    }
    const shards = readdirSync(path.join(out, 'model')).filter((f) => f.endsWith('.safetensors')).sort();
    expect(shards.length).toBeGreaterThan(1);
    for (const f of shards) expect(f).toMatch(new RegExp(`^model-\\d{5}-of-${String(shards.length).padStart(5, '0')}\\.safetensors$`));
    const index = JSON.parse(readFileSync(path.join(out, 'model', 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> };
    expect([...new Set(Object.values(index.weight_map))].sort()).toEqual(shards);
    expect(readdirSync(out).sort()).toEqual(['README.md', 'drafter', 'manifest.json', 'model']);
    const qcfg = JSON.parse(readFileSync(path.join(out, 'model', 'config.json'), 'utf8')) as { quantization_config?: { quant_method: string; bits: number } };
    expect(qcfg.quantization_config?.quant_method).toBe('paroquant');

    // The manifest: one format, every bundle file with its sha256, metrics, per-stage seconds.
    const m = JSON.parse(readFileSync(path.join(out, 'manifest.json'), 'utf8')) as {
      schema: string; command: string; outputs: { name: string; sha256: string; bytes: number }[];
      metrics: Record<string, unknown>; seconds: Record<string, number>; inputs: { role: string }[];
    };
    expect(m.schema).toBe('paro-dflash/manifest@1');
    expect(m.command).toBe('release');
    const listed = m.outputs.map((o) => o.name).sort();
    const onDisk = r.files.filter((f) => f !== 'manifest.json').sort();
    expect(listed).toEqual(onDisk);
    for (const o of m.outputs) expect(sha256File(path.join(out, o.name)), o.name).toBe(o.sha256);
    expect(m.inputs.map((i) => i.role)).toEqual(expect.arrayContaining(['source', 'calib', 'eval data', 'prompts']));
    for (const k of ['quantize', 'eval', 'generate', 'train', 'drafter-eval', 'bundle']) expect(m.seconds[k], k).toBeGreaterThan(0);
    expect(typeof m.metrics.kl).toBe('number');
    expect(r.manifestSha256).toBe(sha256File(path.join(out, 'manifest.json')));

    // The card: figures, gates, τ, licence.
    const card = readFileSync(path.join(out, 'README.md'), 'utf8');
    expect(card).toContain('license: apache-2.0');
    expect(card).toContain(`| Perplexity | ${(r.metrics.fpPpl as number).toFixed(4)} | ${(r.metrics.quantizedPpl as number).toFixed(4)}`);
    expect(card).toMatch(/\| `max_kl` \| [\d.e-]+ \| ≤ 1 \| pass \|/);
    expect(card).toMatch(/\| `min_tau` \| [\d.]+ \| ≥ 1 \| pass \|/);
    expect(card).toContain(`τ = ${(r.metrics.tau as number).toFixed(2)}`);
    expect(card).toContain('`model/LICENSE`');

    // 4. A rerun does nothing and says so.
    const said: string[] = [];
    const again = await release({ onInfo: (s) => said.push(s) });
    expect(again.nothingToDo).toBe(true);
    expect(again.manifestSha256).toBe(r.manifestSha256);
    expect(said.join('\n')).toMatch(/is complete \(manifest sha [0-9a-f]{12}\); nothing to do/);

    // 5. Other settings with a bundle in place: refused without --force (input error), nothing touched.
    await expect(release({}, ['gates.max_kl=0.9'])).rejects.toThrow(/--force/);
    expect(sha256File(path.join(out, 'manifest.json'))).toBe(r.manifestSha256);
  }, 400_000);

  it('releases org/name@revision from a Hugging Face cache (RTN, no gates, no drafter): commit in the card, licence links copied', async () => {
    // The cache as huggingface_hub lays it out: refs/main → sha, snapshots/<sha>/<file> → ../../blobs/<hash>.
    const sha = '0123456789abcdef0123456789abcdef01234567';
    const repo = path.join(tmp, 'hub', 'models--acme--tiny');
    const snap = path.join(repo, 'snapshots', sha);
    mkdirSync(path.join(repo, 'blobs'), { recursive: true });
    mkdirSync(path.join(repo, 'refs'));
    mkdirSync(snap, { recursive: true });
    writeFileSync(path.join(repo, 'refs', 'main'), sha);
    for (const f of [...readdirSync(DEMO), 'LICENSE']) {
      const blob = path.join(repo, 'blobs', `blob-${f}`);
      if (f === 'LICENSE') writeFileSync(blob, 'MIT License\n\nCopyright (c) acme\n');
      else copyFileSync(path.join(DEMO, f), blob);
      symlinkSync(path.join('..', '..', 'blobs', `blob-${f}`), path.join(snap, f));
    }
    const file = path.join(tmp, 'release-hf.json');
    writeFileSync(file, JSON.stringify({ source: 'acme/tiny@main', out: 'bundle-hf', device: 'cpu', quantize: { method: 'rtn' } }));
    const r = await release({}, [], file, { HF_HUB_CACHE: path.join(tmp, 'hub') });
    const dir = path.join(tmp, 'bundle-hf');
    expect(r.source).toMatchObject({ repoId: 'acme/tiny', revision: 'main', commit: sha });
    expect(r.stages.map((st) => st.name)).toEqual(['quantize']);
    expect(r.gates).toEqual([]);
    expect(readdirSync(dir).sort()).toEqual(['README.md', 'manifest.json', 'model']);
    expect(lstatSync(path.join(dir, 'model', 'LICENSE')).isFile()).toBe(true); // the blob's content, not a link
    expect(readFileSync(path.join(dir, 'model', 'LICENSE'), 'utf8')).toContain('MIT License');
    const card = readFileSync(path.join(dir, 'README.md'), 'utf8');
    expect(card).toContain('base_model:\n  - acme/tiny');
    expect(card).toContain(`| Commit | \`${sha}\` |`);
    expect(card).toContain('license: mit');
    expect(card).not.toContain('## Release gates');
    const m = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as { settings: { source: { commit: string } }; outputs: { name: string; sha256: string }[] };
    expect(m.settings.source.commit).toBe(sha);
    for (const o of m.outputs) expect(sha256File(path.join(dir, o.name)), o.name).toBe(o.sha256);
  }, 120_000);
});
