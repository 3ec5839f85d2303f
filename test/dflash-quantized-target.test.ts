// A `paro quantize` output as the DFlash target (issue #5: the drafter then learns the quantized target's features):
// the taps are the quantized model's, the warm start folds the ParoQuant transform into dense weights, and training
// runs and exports a drafter that loads against the quantized target. Uses the embedded demo model and the built-in
// calibration set, so it needs no ../shared.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CpuBackend } from '../src/engine/cpu/backend.js';
import type { Backend } from '../src/engine/backend.js';
import { resolveQuantizeSettings, runQuantizeJob } from '../src/jobs/quantize.js';
import { DEFAULT_CALIB_FILE, DEMO_MODEL_DIR } from '../src/cli/paths.js';
import { loadModel } from '../src/model/load.js';
import { targetTaps } from '../src/dflash/features.js';
import { effectiveWeight } from '../src/dflash/init-from-target.js';
import { runTrainDrafter } from '../src/jobs/train-drafter.js';
import { loadDrafter } from '../src/dflash/load-drafter.js';
import { Rng } from '../src/numerics/rng.js';
import { relErr } from './numeric.js';

let be: Backend;
let tmp: string;
let qDir: string;

beforeAll(async () => {
  be = await CpuBackend.create();
  tmp = mkdtempSync(path.join(os.tmpdir(), 'dflash-qtarget-'));
  qDir = path.join(tmp, 'q');
  await runQuantizeJob(be, {
    modelDir: DEMO_MODEL_DIR, outDir: qDir, calibFile: DEFAULT_CALIB_FILE, resume: false, force: false, toolVersion: 'test',
    settings: resolveQuantizeSettings({ samples: 2, seqLen: 64, valSamples: 1, epochs: [1, 1], batchSize: 2 }),
  });
}, 120_000);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('a ParoQuant checkpoint as the DFlash target', () => {
  it('taps and folded weights are the quantized model\'s, not the FP one\'s', () => {
    const fp = loadModel(be, DEMO_MODEL_DIR);
    const q = loadModel(be, qDir);
    const lq = q.decoder.weights.layers[3].q;
    expect(lq.kind).toBe('rotated');
    const wq = be.toHost(effectiveWeight(be, lq));
    const wfp = be.toHost(effectiveWeight(be, fp.decoder.weights.layers[3].q));
    const d = relErr(wq, wfp);
    expect(d).toBeGreaterThan(1e-3); // INT4 error is visible
    expect(d).toBeLessThan(0.2); // and still the same layer
    const ids = Int32Array.from([326, 285, 473, 264, 1149, 1424, 9, 79, 318, 268]);
    const tq = be.toHost(targetTaps(q.decoder, ids, [0, 2]));
    const tfp = be.toHost(targetTaps(fp.decoder, ids, [0, 2]));
    expect(relErr(tq, tfp)).toBeGreaterThan(1e-4);
  });

  it('train-drafter runs on it with the warm start and exports a drafter that loads against it', () => {
    const rng = new Rng(5);
    const lines: string[] = [];
    for (let i = 0; i < 6; i++) {
      const prompt = Array.from({ length: 6 }, () => 2 + rng.nextInt(4000));
      const response = Array.from({ length: 24 }, () => 2 + rng.nextInt(4000));
      lines.push(JSON.stringify({ prompt_ids: prompt, response_ids: response }));
    }
    const data = path.join(tmp, 'data.jsonl');
    writeFileSync(data, lines.join('\n') + '\n');
    const out = path.join(tmp, 'drafter');
    const r = runTrainDrafter(be, {
      targetDir: qDir, dataFile: data, outDir: out, layers: 1, blockSize: 4, epochs: 1, seqLen: 64, batch: 2, maskToken: '1', featureCacheMb: 256,
    });
    expect(r.steps).toBe(3);
    expect(r.notes.join(' ')).toMatch(/quantized/);
    const manifest = JSON.parse(readFileSync(path.join(out, 'manifest.json'), 'utf8')) as { settings: { init: string } };
    expect(manifest.settings.init).toBe('target');
    const q = loadModel(be, qDir);
    const d = loadDrafter(be, out, q.cfg);
    expect(d.cfg).toMatchObject({ numLayers: 1, blockSize: 4, targetLayerIds: [0, 1, 2], numTargetLayers: 4 });
  });
});
