// The dflash eval job: figures of a real speculative-decoding run, an expected-output file checked before the
// weights are read, and a τ that is not a number (no step verified) reported as an error instead of a result.
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { CpuBackend } from '../src/engine/cpu/backend.js';
import type { Backend } from '../src/engine/backend.js';
import { loadModel } from '../src/model/load.js';
import { loadTokenizer } from '../src/io/tokenizer.js';
import { initDrafterWeights } from '../src/dflash/drafter-weights.js';
import { drafterConfigFor } from '../src/dflash/trainer.js';
import { encodePrompt } from '../src/dflash/prompts.js';
import { plainGenerate } from '../src/dflash/spec-decode.js';
import { writeDrafterFiles } from '../src/jobs/train-drafter.js';
import { runEvalDrafter } from '../src/jobs/eval-drafter.js';
import { scratchDir } from './scratch.js';

const DEMO = fileURLToPath(new URL('../examples/tiny-qwen3', import.meta.url));
const PROMPT = 'def add(a, b):';

let be: Backend;
let tmp: string;
let drafterDir: string;
let promptsFile: string;

beforeAll(async () => {
  be = await CpuBackend.create();
  tmp = scratchDir('dflash-eval-job-');
  const cfg = loadModel(be, DEMO).cfg;
  const c = drafterConfigFor(cfg, 1, 4, [0, 1], 1);
  drafterDir = path.join(tmp, 'drafter');
  mkdirSync(drafterDir);
  writeDrafterFiles(be, drafterDir, c, initDrafterWeights(be, c, 7));
  promptsFile = path.join(tmp, 'prompts.jsonl');
  writeFileSync(promptsFile, JSON.stringify({ prompt: PROMPT }) + '\n');
});

describe('dflash eval job', () => {
  it('decodes speculatively, equal to plain decoding at T = 0, with τ in [1, B]', () => {
    const r = runEvalDrafter(be, { targetDir: DEMO, drafterDir, promptsFile, maxNewTokens: 12, ignoreEos: true, chatTemplate: 'never' });
    expect(r.promptCount).toBe(1);
    expect(r.equalOutputs).toBe(1);
    expect(r.tau).toBeGreaterThanOrEqual(1);
    expect(r.tau).toBeLessThanOrEqual(4);
    expect(r.verifySteps).toBeGreaterThan(0);
  });

  it('refuses a malformed expected-output file before decoding', () => {
    const bad = path.join(tmp, 'expect.json');
    writeFileSync(bad, JSON.stringify({ generated_ids: [[1, 'x']] }));
    expect(() => runEvalDrafter(be, { targetDir: DEMO, drafterDir, promptsFile, expectFile: bad, chatTemplate: 'never' })).toThrow(/generated_ids/);
  });

  it('a τ that is not a number (every output ends at its first token) is an error, not a result', () => {
    // A copy of the target whose end-of-text token is the one it generates first for the prompt.
    const tok = loadTokenizer(DEMO);
    const ids = encodePrompt(tok, { kind: 'text', prompt: PROMPT }, { chatTemplate: 'never' }).ids;
    const first = plainGenerate(loadModel(be, DEMO).decoder, ids, { maxNewTokens: 1, temperature: 0, stopTokenIds: [] }).outputIds[0];
    const target = path.join(tmp, 'target');
    cpSync(DEMO, target, { recursive: true });
    for (const f of ['config.json', 'generation_config.json']) {
      const j = JSON.parse(readFileSync(path.join(target, f), 'utf8')) as Record<string, unknown>;
      j.eos_token_id = first;
      writeFileSync(path.join(target, f), JSON.stringify(j));
    }
    expect(() => runEvalDrafter(be, { targetDir: target, drafterDir, promptsFile, maxNewTokens: 8, chatTemplate: 'never' })).toThrow(/τ is not a number/);
  });
});
