// Chat templates come from the model folder, so they are untrusted code for @huggingface/jinja: a loop over
// range(10**9) grows the heap until V8 aborts the whole process. Templates therefore render in a worker thread with
// its own small heap (resourceLimits) under a time limit, called synchronously (the main thread blocks on
// Atomics.wait; a render costs well under a millisecond on top of the template itself). An out-of-memory worker only
// ends that worker; a render over time is stopped by terminating it. Either way: a one-line UserError naming the file.
import { createRequire } from 'node:module';
import { receiveMessageOnPort, type MessagePort, type Worker } from 'node:worker_threads';
import { UserError } from '../errors.js';
import { startSyncWorker, waitWhile } from './sync-worker.js';

/** Longest rendered prompt accepted, in UTF-16 units. */
export const MAX_RENDER_CHARS = 4 * 2 ** 20;
/** Time for one render (after the worker has started). */
export const RENDER_TIMEOUT_MS = 5_000;
/** Time for the worker to start and compile the template. */
const START_TIMEOUT_MS = 15_000;
/** Heap of the rendering worker. */
const WORKER_HEAP_MB = 256;

// Control word: the worker is starting, a request is pending, an answer is posted, or the worker is ready.
const STARTING = 3;
const PENDING = 0;
const ANSWERED = 1;
const READY = 2;

function workerSource(jinjaPath: string): string {
  return `'use strict';
const { workerData } = require('node:worker_threads');
const { Template } = require(${JSON.stringify(jinjaPath)});
const ctrl = new Int32Array(workerData.ctrl);
const port = workerData.port;
let template = null;
let compileError = null;
try { template = new Template(workerData.source); } catch (e) { compileError = String((e && e.message) || e); }
Atomics.store(ctrl, 0, ${READY});
Atomics.notify(ctrl, 0);
port.on('message', (vars) => {
  let answer;
  try {
    if (compileError !== null) throw new Error(compileError);
    const text = template.render(vars);
    answer = text.length > workerData.maxChars ? { tooLong: text.length } : { text };
  } catch (e) {
    answer = { error: String((e && e.message) || e) };
  }
  port.postMessage(answer);
  Atomics.store(ctrl, 0, ${ANSWERED});
  Atomics.notify(ctrl, 0);
});
`;
}

function jinjaPath(): string | null {
  try {
    return createRequire(import.meta.url).resolve('@huggingface/jinja');
  } catch {
    return null;
  }
}

export class SandboxedTemplate {
  private worker: Worker | null = null;
  private port: MessagePort | null = null;
  private ctrl: Int32Array | null = null;

  /** file: where the template came from (tokenizer_config.json or chat_template.jinja), named in errors. */
  constructor(private readonly source: string, private readonly file: string) {}

  /** The rendered text; a UserError when the template fails, runs too long, needs too much memory or output. */
  render(vars: Record<string, unknown>): string {
    const fail = (why: string): never => {
      throw new UserError(`the chat template ${why}`, { file: this.file });
    };
    const jp = jinjaPath();
    if (jp === null) fail('cannot be rendered: @huggingface/jinja is not resolvable for the rendering worker');
    if (!this.worker) {
      this.spawn(jp as string);
      if (!waitWhile(this.ctrl as Int32Array, STARTING, START_TIMEOUT_MS)) {
        this.close();
        return fail(`could not be compiled within ${START_TIMEOUT_MS / 1000} s`);
      }
    }
    const ctrl = this.ctrl as Int32Array;
    const port = this.port as MessagePort;
    Atomics.store(ctrl, 0, PENDING);
    port.postMessage(vars);
    const answered = waitWhile(ctrl, PENDING, RENDER_TIMEOUT_MS);
    const msg = answered ? receiveMessageOnPort(port) : undefined;
    if (!msg) {
      this.close();
      return fail(
        `did not render within ${RENDER_TIMEOUT_MS / 1000} s or exceeded the ${WORKER_HEAP_MB} MiB memory limit (a loop over a huge range?)`,
      );
    }
    const answer = msg.message as { text?: string; error?: string; tooLong?: number };
    if (answer.error !== undefined) return fail(`failed to render: ${answer.error.split('\n')[0]}`);
    if (answer.tooLong !== undefined) {
      return fail(`rendered ${answer.tooLong} characters, more than the ${MAX_RENDER_CHARS} accepted`);
    }
    return answer.text as string;
  }

  /** Stops the worker (it is also unref'd, so a forgotten template never keeps the process alive). */
  close(): void {
    void this.worker?.terminate();
    this.port?.close();
    this.worker = null;
    this.port = null;
  }

  private spawn(jp: string): void {
    const w = startSyncWorker(
      workerSource(jp),
      { source: this.source, maxChars: MAX_RENDER_CHARS },
      { initial: STARTING, heapMb: WORKER_HEAP_MB, youngMb: 32 },
    );
    this.worker = w.worker;
    this.port = w.port;
    this.ctrl = w.ctrl;
  }
}
