// A GPU that runs out of memory is the machine's limit, not a bug: runCommand reports the addon's out-of-memory error
// as an input/environment error (exit 2) naming the command's memory knobs, in the one-line stderr and in the envelope.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { environmentError, runCommand } from '../src/cli/run-command.js';
import { EXIT_CODES, UserError } from '../src/errors.js';

// The text native/src/runtime.cu throws (code PARO_CUDA) when cudaMalloc fails twice.
const OOM = 'CUDA out of memory: a request of 20480.0 MiB failed (cudaErrorMemoryAllocation); the GPU has 1024.0 MiB free of 81559.0 MiB, the backend holds 70000.0 MiB in live tensors';

function capture(): { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  vi.spyOn(process.stdout, 'write').mockImplementation((c: string | Uint8Array) => { out.push(String(c)); return true; });
  vi.spyOn(process.stderr, 'write').mockImplementation((c: string | Uint8Array) => { err.push(String(c)); return true; });
  return { out, err };
}

describe('out of GPU memory', () => {
  const saved = process.exitCode;
  afterEach(() => {
    vi.restoreAllMocks();
    process.exitCode = saved;
  });

  it('exits 2 with the command\'s knobs on stderr and in the --json envelope', async () => {
    const io = capture();
    await runCommand({ tool: 'dflash', command: 'generate-data', json: true }, async () => {
      throw Object.assign(new Error(OOM), { code: 'PARO_CUDA' });
    });
    const code = process.exitCode;
    vi.restoreAllMocks();
    expect(code).toBe(EXIT_CODES.input);
    expect(io.err.join('')).toMatch(/^error: CUDA out of memory: a request of 20480\.0 MiB failed .*; a smaller --batch \(its KV cache grows/);
    expect(io.err.join('')).not.toMatch(/--debug/);
    const env = JSON.parse(io.out.join(''));
    expect(env.ok).toBe(false);
    expect(env.error).toMatchObject({ code: 'input', exitCode: 2 });
    expect(env.error.message).toContain('1024.0 MiB free');
  });

  it('leaves other errors alone: a bug stays internal (exit 4), a UserError keeps its own code', async () => {
    expect(environmentError(new Error('index out of range'), { tool: 'paro', command: 'quantize' })).toBeNull();
    expect(environmentError(new UserError('CUDA out of memory: already explained'), { tool: 'paro', command: 'quantize' })).toBeNull();
    const q = environmentError(new Error(OOM), { tool: 'paro', command: 'quantize' });
    expect(q?.exitCode).toBe(EXIT_CODES.input);
    expect(q?.message).toContain('--activations host');
    expect(environmentError(new Error(OOM), { tool: 'paro', command: 'doctor' })?.message).toContain('a larger GPU');
    const io = capture();
    await runCommand({ tool: 'paro', command: 'eval' }, async () => { throw new Error('index out of range'); });
    const code = process.exitCode;
    vi.restoreAllMocks();
    expect(code).toBe(EXIT_CODES.internal);
    expect(io.err.join('')).toContain('run with --debug');
  });
});
