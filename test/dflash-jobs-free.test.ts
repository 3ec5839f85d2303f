// `paro release` runs generate-data, train-drafter and dflash eval in one process: each job must give back every tensor
// it put on the backend (the target's and the drafter's weights included), or GPU memory grows by a model per stage.
// The cpu backend keeps no tally of live tensors, so a wrapper counts what the job's backend calls return and frees.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { CpuBackend } from '../src/engine/cpu/backend.js';
import type { Backend, Tensor } from '../src/engine/backend.js';
import { initDrafterWeights } from '../src/dflash/drafter-weights.js';
import { drafterConfigFor } from '../src/dflash/trainer.js';
import { loadModelConfig } from '../src/io/config.js';
import { runGenerateData } from '../src/jobs/generate-data.js';
import { runTrainDrafter, writeDrafterFiles } from '../src/jobs/train-drafter.js';
import { runEvalDrafter } from '../src/jobs/eval-drafter.js';
import { scratchDir } from './scratch.js';

const DEMO = fileURLToPath(new URL('../examples/tiny-qwen3', import.meta.url));

function isTensor(v: unknown): v is Tensor {
  if (typeof v !== 'object' || v === null) return false;
  const t = v as Partial<Tensor>;
  return Array.isArray(t.shape) && typeof t.dtype === 'string' && typeof t.size === 'number';
}

/**
 * The backend seen through a tally: every tensor a call returns is live until it is passed to free. A reshape is a
 * view on its input's storage (on both backends freeing either frees the storage), so it counts as its input.
 */
function tallied(inner: Backend): { be: Backend; live: Set<Tensor> } {
  const live = new Set<Tensor>();
  const storageOf = new Map<Tensor, Tensor>();
  const owner = (t: Tensor): Tensor => storageOf.get(t) ?? t;
  const note = (r: unknown): void => {
    if (isTensor(r)) live.add(r);
    else if (typeof r === 'object' && r !== null && !ArrayBuffer.isView(r)) {
      for (const x of Object.values(r)) if (isTensor(x)) live.add(x); // { y, rstd }, { loss, lse, dlogits }, ...
    }
  };
  const be = new Proxy(inner, {
    get(target, prop) {
      const v: unknown = Reflect.get(target, prop, target);
      if (typeof v !== 'function') return v;
      const fn = v as (...a: unknown[]) => unknown;
      if (prop === 'free') {
        return (...ts: (Tensor | null | undefined)[]) => {
          for (const t of ts) if (t) live.delete(owner(t));
          return fn.apply(target, ts);
        };
      }
      if (prop === 'reshape') {
        return (t: Tensor, shape: readonly number[]) => {
          const r = fn.call(target, t, shape) as Tensor;
          storageOf.set(r, owner(t));
          return r;
        };
      }
      return (...args: unknown[]) => {
        const r = fn.apply(target, args);
        note(r);
        return r;
      };
    },
  });
  return { be, live };
}

const describeLive = (live: Set<Tensor>): string => [...live].map((t) => `${t.dtype}[${t.shape.join(',')}]`).join(' ');

let cpu: Backend;
let tmp: string;
let promptsFile: string;
let dataFile: string;
let drafterDir: string;

beforeAll(async () => {
  cpu = await CpuBackend.create();
  tmp = scratchDir('dflash-jobs-free-');
  promptsFile = path.join(tmp, 'prompts.jsonl');
  writeFileSync(promptsFile, ['def add(a, b):', 'import os\n'].map((p) => JSON.stringify({ prompt: p })).join('\n') + '\n');
  // Training records of the demo target's own vocabulary: a prompt and a counting response.
  dataFile = path.join(tmp, 'data.jsonl');
  const records = Array.from({ length: 4 }, (_, i) => JSON.stringify({
    prompt_ids: [10 + i, 20 + i, 30 + i], response_ids: Array.from({ length: 16 }, (_, k) => 40 + ((i + k) % 30)),
  }));
  writeFileSync(dataFile, records.join('\n') + '\n');
  const c = drafterConfigFor(loadModelConfig(DEMO), 1, 4, [0, 1], 1);
  drafterDir = path.join(tmp, 'drafter');
  mkdirSync(drafterDir);
  writeDrafterFiles(cpu, drafterDir, c, initDrafterWeights(cpu, c, 7));
});

/** Runs job twice on a tallied cpu backend; after each run nothing it allocated is still live. */
function expectNothingLeft(job: (be: Backend, run: number) => void): void {
  const { be, live } = tallied(cpu);
  for (let run = 0; run < 2; run++) {
    job(be, run);
    expect(live.size, `live after run ${run + 1}: ${describeLive(live)}`).toBe(0);
  }
}

describe('dflash jobs free what they put on the backend', () => {
  it('generate-data', () => {
    expectNothingLeft((be, run) => {
      const r = runGenerateData(be, {
        targetDir: DEMO, promptsFile, outFile: path.join(tmp, `gen-${run}.jsonl`), maxNewTokens: 4, ignoreEos: true, batch: 2, chatTemplate: 'never',
      });
      expect(r.generated).toBe(2);
    });
  });

  it('train-drafter (with τ evaluations)', () => {
    expectNothingLeft((be, run) => {
      const r = runTrainDrafter(be, {
        targetDir: DEMO, dataFile, outDir: path.join(tmp, `train-${run}`), layers: 1, blockSize: 4, anchors: 4, epochs: 1, lr: 1e-3,
        seqLen: 32, batch: 2, maskToken: '1', seed: 3, init: 'random', featureCacheMb: 64, evalPrompts: promptsFile, evalEvery: 1,
        evalMaxNewTokens: 6, evalEncoding: { chatTemplate: 'never' },
      });
      expect(r.steps).toBe(2);
    });
  });

  it('dflash eval', () => {
    expectNothingLeft((be) => {
      const r = runEvalDrafter(be, { targetDir: DEMO, drafterDir, promptsFile, maxNewTokens: 6, ignoreEos: true, chatTemplate: 'never' });
      expect(r.promptCount).toBe(2);
    });
  });

  it('a job that fails after loading the weights frees them too', () => {
    const stop = (): never => {
      throw new Error('stopped by the test');
    };
    expectNothingLeft((be, run) => {
      expect(() => runGenerateData(be, {
        targetDir: DEMO, promptsFile, outFile: path.join(tmp, `gen-stopped-${run}.jsonl`), maxNewTokens: 4, ignoreEos: true, batch: 1, chatTemplate: 'never',
      }, { onProgress: (done) => (done > 0 ? stop() : undefined) })).toThrow(/stopped by the test/);
    });
    expectNothingLeft((be, run) => {
      expect(() => runTrainDrafter(be, {
        targetDir: DEMO, dataFile, outDir: path.join(tmp, `train-stopped-${run}`), layers: 1, blockSize: 4, anchors: 4, epochs: 1, lr: 1e-3,
        seqLen: 32, batch: 2, maskToken: '1', seed: 3, init: 'random', featureCacheMb: 64,
      }, { onStep: stop })).toThrow(/stopped by the test/);
    });
    // A drafter made for another target: refused after the target's weights are on the backend.
    const c = { ...drafterConfigFor(loadModelConfig(DEMO), 1, 4, [0, 1], 1), numTargetLayers: 99 };
    const foreign = path.join(tmp, 'foreign-drafter');
    mkdirSync(foreign);
    writeDrafterFiles(cpu, foreign, c, initDrafterWeights(cpu, c, 7));
    expectNothingLeft((be) => {
      expect(() => runEvalDrafter(be, { targetDir: DEMO, drafterDir: foreign, promptsFile, maxNewTokens: 6, chatTemplate: 'never' })).toThrow(/99-layer target/);
    });
    // A drafter whose last tensor (norm.weight, loaded after all others) holds a NaN: refused while loading, and the
    // tensors uploaded before it are freed.
    const good = drafterConfigFor(loadModelConfig(DEMO), 1, 4, [0, 1], 1);
    const nanDir = path.join(tmp, 'nan-drafter');
    mkdirSync(nanDir);
    const w = initDrafterWeights(cpu, good, 7);
    const H = w.norm.size;
    cpu.free(w.norm);
    w.norm = cpu.fromHost(Float32Array.from({ length: H }, (_, i) => (i === H - 1 ? NaN : 1)), [H]);
    writeDrafterFiles(cpu, nanDir, good, w);
    expectNothingLeft((be) => {
      expect(() => runEvalDrafter(be, { targetDir: DEMO, drafterDir: nanDir, promptsFile, maxNewTokens: 6, chatTemplate: 'never' })).toThrow(/norm\.weight/);
    });
  });
});

describe('dflash eval --weight-dtype f32 gives the backend back as it found it', () => {
  /** cpu with an exact-f32 switch of its own (the cpu backend is always exact, so it has none): records the mode. */
  function withExactSwitch(): { be: Backend; modes: boolean[] } {
    const modes: boolean[] = [];
    const be = new Proxy(cpu, {
      get(target, prop) {
        if (prop === 'setExactF32') return (on: boolean) => modes.push(on);
        const v: unknown = Reflect.get(target, prop, target);
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    return { be, modes };
  }

  it('after success and after a failure the exact mode is off again', () => {
    const ok = withExactSwitch();
    const r = runEvalDrafter(ok.be, { targetDir: DEMO, drafterDir, promptsFile, maxNewTokens: 6, ignoreEos: true, chatTemplate: 'never', weightDtype: 'f32' });
    expect(r.promptCount).toBe(2);
    expect(ok.modes).toEqual([true, false]);
    const failed = withExactSwitch();
    expect(() => runEvalDrafter(failed.be, {
      targetDir: DEMO, drafterDir: path.join(tmp, 'no-such-drafter'), promptsFile, maxNewTokens: 6, chatTemplate: 'never', weightDtype: 'f32',
    })).toThrow();
    expect(failed.modes).toEqual([true, false]);
  });
});

describe('a training checkpoint refused half way leaves nothing on the backend', () => {
  it('trainStateFromTensors frees the tensors it uploaded before the missing one', async () => {
    const { trainStateFromTensors } = await import('../src/dflash/train-state.js');
    const { drafterTensorSpecs } = await import('../src/dflash/drafter-weights.js');
    const c = drafterConfigFor(loadModelConfig(DEMO), 1, 4, [0, 1], 1);
    const specs = new Map(drafterTensorSpecs(c).map((s) => [s.name, s.shape]));
    const lastName = [...specs.keys()].at(-1)!;
    const { be, live } = tallied(cpu);
    // Every w.* and m.* tensor, and v.* but its last: the first two thirds are uploaded before the refusal.
    const get = (name: string) => {
      const [prefix, ...rest] = name.split('.');
      const shape = specs.get(rest.join('.'));
      if (!shape || (prefix === 'v' && rest.join('.') === lastName)) return undefined;
      return { shape, read: () => new Float32Array(shape.reduce((a, b) => a * b, 1)) };
    };
    expect(() => trainStateFromTensors(be, c, get, 3, 'state.safetensors')).toThrow(new RegExp(`v\\.${lastName.replace(/\./g, '\\.')} is missing`));
    expect(live.size, describeLive(live)).toBe(0);
  });
});
