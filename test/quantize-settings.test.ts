// paro quantize settings: defined once (DEFAULT_QUANTIZE_SETTINGS), --demo a named settings object under the user's
// explicit flags, every cross-parameter constraint checked before work (bits the packer holds, group size even,
// dividing every in_features and within the backend's limit); side files copied only from safe places.
import * as fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildParoProgram } from '../src/cli/paro.js';
import { DEMO_MODEL_DIR } from '../src/cli/paths.js';
import { UserError } from '../src/errors.js';
import { loadModelConfig } from '../src/io/config.js';
import { copyModelFiles } from '../src/jobs/quantize-output.js';
import { DEFAULT_QUANTIZE_SETTINGS, DEMO_QUANTIZE_SETTINGS, checkQuantizeSettings, resolveQuantizeSettings } from '../src/jobs/quantize.js';
import { explicitQuantizeSettings, type QuantizeCliOptions } from '../src/cli/quantize.js';
import { scratchDir } from './scratch.js';

/** The quantize flags as commander parses them (the action replaced, so nothing runs). */
async function parsedFlags(args: string[]): Promise<QuantizeCliOptions> {
  const program = buildParoProgram();
  const cmd = program.commands.find((c) => c.name() === 'quantize')!;
  let opts: QuantizeCliOptions = {};
  cmd.action((_dir: string | undefined, o: QuantizeCliOptions) => { opts = o; });
  await program.parseAsync(['node', 'paro', 'quantize', ...args]);
  return opts;
}

function demoSettings(flags: QuantizeCliOptions) {
  return resolveQuantizeSettings({ ...DEMO_QUANTIZE_SETTINGS, ...explicitQuantizeSettings(flags) });
}

describe('quantize settings', () => {
  it('--demo applies its small settings only where the user gave no flag', async () => {
    const demo = demoSettings(await parsedFlags(['--demo']));
    expect(demo.samples).toBe(DEMO_QUANTIZE_SETTINGS.samples);
    expect(demo.epochs).toEqual(DEMO_QUANTIZE_SETTINGS.epochs);
    expect(demo.seqLen).toBe(DEFAULT_QUANTIZE_SETTINGS.seqLen);
    // The user's value wins even when it equals the normal default.
    const explicit = demoSettings(await parsedFlags(['--demo', '--samples', String(DEFAULT_QUANTIZE_SETTINGS.samples), '--epochs', '10,10']));
    expect(explicit.samples).toBe(DEFAULT_QUANTIZE_SETTINGS.samples);
    expect(explicit.epochs).toEqual([10, 10]);
    // No flag given: the defaults, defined once.
    expect(resolveQuantizeSettings(explicitQuantizeSettings(await parsedFlags([])))).toEqual(DEFAULT_QUANTIZE_SETTINGS);
  });

  it('the help shows the defaults from the settings object', () => {
    const help = buildParoProgram().commands.find((c) => c.name() === 'quantize')!.helpInformation();
    expect(help).toContain(`(default: ${DEFAULT_QUANTIZE_SETTINGS.samples})`);
    expect(help).toContain(`(default: ${DEFAULT_QUANTIZE_SETTINGS.epochs.join(',')})`);
  });

  it('cross-parameter constraints are checked together, before any work', () => {
    const cfg = loadModelConfig(DEMO_MODEL_DIR);
    const check = (over: Parameters<typeof resolveQuantizeSettings>[0], backend = 'cpu') => () => checkQuantizeSettings(resolveQuantizeSettings(over), cfg, backend, DEMO_MODEL_DIR);
    expect(check({})).not.toThrow();
    expect(check({ bits: 8 })).toThrow(/--bits 8 is not supported/);
    expect(check({ bits: 3 })).not.toThrow();
    expect(check({ groupSize: 2048 }, 'cuda')).toThrow(/--group-size 2048 exceeds the cuda backend's limit of 1024/);
    expect(check({ groupSize: 64 }, 'cuda')).not.toThrow();
    expect(check({ groupSize: 96 })).toThrow(/not a multiple of the group size 96/);
    expect(check({ groupSize: 7 })).toThrow(/must be even/);
    expect(check({ krot: 65 })).toThrow(/--krot must be in \[1, 64\]/);
    expect(check({ samples: 4, batchSize: 8 })).toThrow(/--batch-size 8 is larger than --samples 4/);
    expect(() => resolveQuantizeSettings({ samples: 0 })).toThrow(UserError);
    expect(() => resolveQuantizeSettings({ epochs: [1, -1] })).toThrow(/epochs/);
  });
});

describe('side files of the quantized output', () => {
  it('regular files are copied; links only when they stay in the model folder or its Hugging Face cache blobs', () => {
    const root = scratchDir('sidefiles-');
    const repo = path.join(root, 'models--org--m');
    const snap = path.join(repo, 'snapshots', 'abc');
    fs.mkdirSync(snap, { recursive: true });
    fs.mkdirSync(path.join(repo, 'blobs'));
    fs.writeFileSync(path.join(repo, 'blobs', 'h1'), '{"tok": 1}');
    fs.symlinkSync('../../blobs/h1', path.join(snap, 'tokenizer.json')); // the HF cache layout
    fs.writeFileSync(path.join(snap, 'tokenizer_config.json'), '{}'); // regular
    fs.writeFileSync(path.join(root, 'secret.txt'), 'private');
    fs.symlinkSync(path.join(root, 'secret.txt'), path.join(snap, 'generation_config.json')); // leads outside
    fs.writeFileSync(path.join(snap, 'real-vocab.json'), '{}');
    fs.symlinkSync('real-vocab.json', path.join(snap, 'vocab.json')); // inside the folder
    const out = scratchDir('sidefiles-out-');
    const r = copyModelFiles(snap, out);
    expect(r.copied.sort()).toEqual(['tokenizer.json', 'tokenizer_config.json', 'vocab.json']);
    expect(r.skipped).toEqual(['generation_config.json']);
    expect(fs.existsSync(path.join(out, 'generation_config.json'))).toBe(false);
    expect(fs.lstatSync(path.join(out, 'tokenizer.json')).isFile()).toBe(true);
    expect(fs.readFileSync(path.join(out, 'tokenizer.json'), 'utf8')).toBe('{"tok": 1}');
  });
});
