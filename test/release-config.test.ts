// release.yaml / release.json: every key checked with a one-line error naming the file (or flag) and the key; flag
// overrides go through the same checks; sizes with decimal and binary units.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildReleaseConfig, loadReleaseConfig, parseSize, RELEASE_CONFIG_KEYS, RELEASE_DEFAULTS } from '../src/io/release-config.js';
import { scratchDir } from './scratch.js';
import { userError } from './user-error.js';

const FULL_YAML = `
source: Qwen/Qwen3-8B@main
out: dist/qwen3-8b-paro
device: cuda:0
seed: 7
quantize:
  bits: 4
  group_size: 128
  samples: 64
  seq_len: 512
  epochs: [2, 1]
  calib: data/calib.parquet
eval:
  data: data/eval.jsonl.gz
  max_windows: 40
gates:
  max_ppl_increase: 0.05
  max_kl: 0.1
  min_top1_agreement: 0.9
  min_tau: 2.5
drafter:
  enabled: true
  prompts: data/prompts.jsonl
  generate: { max_new_tokens: 256, temperature: 0 }
  train: { block_size: 16, epochs: auto, target_layers: [1, 9, 17], lr: 6e-4 }
  eval: { max_prompts: 32 }
bundle:
  max_shard_size: 2GiB
  name: acme/Qwen3-8B-PARO
`;

function write(name: string, text: string): string {
  const dir = scratchDir('paro-relcfg-');
  const file = path.join(dir, name);
  writeFileSync(file, text);
  return file;
}

describe('parseSize', () => {
  it('reads decimal and binary units, fractions and plain byte counts', () => {
    expect(parseSize('5GB')).toBe(5_000_000_000);
    expect(parseSize('500MB')).toBe(500_000_000);
    expect(parseSize('2GiB')).toBe(2 * 1024 ** 3);
    expect(parseSize('1.5 KiB')).toBe(1536);
    expect(parseSize('10kb')).toBe(10_000);
    expect(parseSize('4096')).toBe(4096);
    expect(parseSize(123)).toBe(123);
  });
  it('rejects other shapes with the allowed units', () => {
    for (const bad of ['5 gigabytes', '', 'GB', '-1MB', '0', 1.5, true]) expect(() => parseSize(bad)).toThrow(/size/);
  });
});

describe('loadReleaseConfig', () => {
  it('reads a full YAML config, resolving paths against its folder', () => {
    const file = write('release.yaml', FULL_YAML);
    const dir = path.dirname(file);
    const { config, sourceBaseDir } = loadReleaseConfig(file);
    expect(sourceBaseDir).toBe(dir);
    expect(config.source).toBe('Qwen/Qwen3-8B@main');
    expect(config.out).toBe(path.join(dir, 'dist/qwen3-8b-paro'));
    expect(config.device).toBe('cuda:0');
    expect(config.seed).toBe(7);
    expect(config.quantize).toEqual({ bits: 4, group_size: 128, samples: 64, seq_len: 512, epochs: [2, 1], calib: path.join(dir, 'data/calib.parquet') });
    expect(config.eval).toEqual({ data: path.join(dir, 'data/eval.jsonl.gz'), max_windows: 40 });
    expect(config.gates).toEqual({ max_ppl_increase: 0.05, max_kl: 0.1, min_top1_agreement: 0.9, min_tau: 2.5 });
    expect(config.drafter.enabled).toBe(true);
    expect(config.drafter.prompts).toBe(path.join(dir, 'data/prompts.jsonl'));
    expect(config.drafter.train).toEqual({ block_size: 16, epochs: 'auto', target_layers: [1, 9, 17], lr: 6e-4 });
    expect(config.drafter.eval).toEqual({ max_prompts: 32 });
    expect(config.bundle.max_shard_size).toBe(2 * 1024 ** 3);
    expect(config.bundle.license_files).toEqual(RELEASE_DEFAULTS.bundle.license_files);
    expect(config.bundle.name).toBe('acme/Qwen3-8B-PARO');
  });

  it('fills the release defaults and leaves stage settings to the jobs', () => {
    const file = write('release.json', JSON.stringify({ source: './model', out: 'bundle' }));
    const { config } = loadReleaseConfig(file);
    expect(config.device).toBe(RELEASE_DEFAULTS.device);
    expect(config.seed).toBe(RELEASE_DEFAULTS.seed);
    expect(config.bundle.max_shard_size).toBe(5_000_000_000);
    expect(config.drafter).toEqual({ enabled: false, generate: {}, train: {}, eval: {} });
    expect(config.quantize).toEqual({});
    expect(config.gates).toEqual({});
    expect(config.work_dir).toBeUndefined();
  });

  it('applies --set settings and explicit flags over the file, flags relative to the working directory', () => {
    const file = write('release.yaml', FULL_YAML);
    const cwd = scratchDir('paro-relcwd-');
    const { config, sourceBaseDir } = loadReleaseConfig(file, {
      cwd,
      set: ['drafter.train.mask_token=151669', 'quantize.bits=3', 'gates.max_kl=0.2', 'drafter.train.target_layers=2,4', 'quantize.epochs=5,0', 'bundle.max_shard_size=100MB', 'quantize.shuffle=true'],
      overrides: { out: 'elsewhere', source: 'local-model', device: undefined },
    });
    expect(config.quantize.bits).toBe(3);
    expect(config.drafter.train.mask_token).toBe(151669);
    expect(config.quantize.epochs).toEqual([5, 0]);
    expect(config.quantize.shuffle).toBe(true);
    expect(config.gates.max_kl).toBe(0.2);
    expect(config.drafter.train.target_layers).toEqual([2, 4]);
    expect(config.bundle.max_shard_size).toBe(100_000_000);
    expect(config.out).toBe(path.join(cwd, 'elsewhere'));
    expect(config.source).toBe('local-model');
    expect(sourceBaseDir).toBe(cwd);
    expect(config.device).toBe('cuda:0'); // an undefined override leaves the file's value
  });

  it('names the file and key of a bad value', () => {
    const cases: [string, RegExp][] = [
      ['quantize:\n  bits: four', /release\.yaml: quantize\.bits must be an integer ≥ 2, got "four"/],
      ['gates:\n  min_top1_agreement: 1.5', /gates\.min_top1_agreement must be a number between 0 and 1, got 1\.5/],
      ['device: gpu', /device must be auto, cpu, cuda or cuda:N, got "gpu"/],
      ['quantize:\n  epochs: [1]', /quantize\.epochs must be two epoch counts/],
      ['bundle:\n  max_shard_size: 5 gigs', /bundle\.max_shard_size must be a size such as "5GB"/],
      ['quantize:\n  compute_dtype: f16', /quantize\.compute_dtype must be one of auto, f32, bf16/],
      ['quantize: 4', /quantize must be a mapping/],
      ['drafter:\n  train:\n    lr: 0', /drafter\.train\.lr must be "auto" or a number > 0/],
    ];
    for (const [extra, re] of cases) {
      const file = write('release.yaml', `source: ./m\nout: b\n${extra}\n`);
      const err = userError(() => loadReleaseConfig(file));
      expect(err.oneLine()).toMatch(re);
      expect(err.oneLine()).toContain(file);
      expect(err.exitCode).toBe(2);
    }
  });

  it('rejects unknown keys, suggesting the near miss or the right section', () => {
    const cases: [string, string][] = [
      ['quantize:\n  group-size: 64', 'unknown key quantize.group-size (did you mean quantize.group_size?)'],
      ['quantize:\n  bitz: 4', 'unknown key quantize.bitz (did you mean quantize.bits?)'],
      ['bits: 4', 'unknown key bits (did you mean quantize.bits?)'],
      ['gates:\n  max_ppl: 0.1', 'unknown key gates.max_ppl (did you mean gates.max_kl?)'],
      ['colour: blue', 'unknown key colour'],
    ];
    for (const [extra, msg] of cases) {
      const file = write('release.yaml', `source: ./m\nout: b\n${extra}\n`);
      expect(userError(() => loadReleaseConfig(file)).oneLine()).toBe(`${file}: ${msg}`);
    }
    const file = write('release.yaml', 'source: ./m\nout: b\n');
    const flagErr = userError(() => loadReleaseConfig(file, { set: ['quantize.groupsize=64'] }));
    expect(flagErr.oneLine()).toBe('--set quantize.groupsize=64: unknown key quantize.groupsize (did you mean quantize.group_size?)');
    expect(flagErr.exitCode).toBe(1);
    expect(userError(() => loadReleaseConfig(file, { set: ['quantize.bits'] })).oneLine()).toMatch(/expected key=value/);
    expect(userError(() => loadReleaseConfig(file, { set: ['quantize.bits=x'] })).oneLine())
      .toBe('--set quantize.bits=x: quantize.bits must be an integer ≥ 2, got "x"');
  });

  it('checks rules across keys', () => {
    const cases: [string, RegExp][] = [
      ['out: b', /source is required/],
      ['source: ./m', /out is required/],
      ['source: ./m\nout: b\ngates:\n  max_kl: 0.1', /gates\.max_kl needs eval\.data/],
      ['source: ./m\nout: b\ngates:\n  min_tau: 2', /gates\.min_tau needs drafter\.enabled: true/],
      ['source: ./m\nout: b\ndrafter:\n  enabled: true', /drafter\.prompts is required when drafter\.enabled is true/],
      ['source: ./m\nout: b\nwork_dir: b', /work_dir must differ from out/],
    ];
    for (const [text, re] of cases) {
      const file = write('release.yaml', `${text}\n`);
      expect(userError(() => loadReleaseConfig(file)).oneLine()).toMatch(re);
    }
  });

  it('reports syntax errors with a line, duplicate keys, and wrong extensions or missing files', () => {
    const bad = write('release.yaml', 'source: ./m\nout: [b\n');
    expect(userError(() => loadReleaseConfig(bad)).oneLine()).toMatch(/release\.yaml: not valid YAML: line \d+/);
    const dup = write('release.yaml', 'source: ./m\nout: b\nout: c\n');
    expect(userError(() => loadReleaseConfig(dup)).oneLine()).toMatch(/not valid YAML: .*[Uu]nique|not valid YAML: .*duplicate/i);
    const json = write('release.json', '{"source": "./m",}');
    expect(userError(() => loadReleaseConfig(json)).oneLine()).toMatch(/release\.json: not valid JSON/);
    expect(userError(() => loadReleaseConfig(write('release.toml', ''))).oneLine()).toMatch(/must be a \.yaml, \.yml or \.json file/);
    expect(userError(() => loadReleaseConfig(path.join(scratchDir('paro-relcfg-'), 'none.yaml'))).oneLine()).toMatch(/none\.yaml: no such file/);
  });

  it('knows every key it documents', () => {
    for (const k of RELEASE_CONFIG_KEYS) expect(k).toMatch(/^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$/);
    expect(RELEASE_CONFIG_KEYS).toContain('gates.max_ppl_increase');
    expect(() => buildReleaseConfig({ source: 's', out: 'o', gates: null }, { baseDir: '/' })).not.toThrow();
  });
});
