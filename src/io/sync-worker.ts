// Synchronous calls into a worker thread (io/chat-template.ts, io/worker-source.ts): the worker gets a shared control
// word and a message port; the main thread posts a request and blocks on Atomics.wait until the worker changes the word
// and posts its answer. The worker's heap is capped, so a runaway request ends the worker, not the process.
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';

export interface SyncWorker {
  worker: Worker;
  /** Our end of the channel; the worker finds its end as workerData.port. */
  port: MessagePort;
  /** The control word, also workerData.ctrl (an Int32Array over the same SharedArrayBuffer) in the worker. */
  ctrl: Int32Array;
}

export interface SyncWorkerOptions {
  /** Value of the control word before the worker exists (it may change it before we first look). */
  initial: number;
  /** resourceLimits of the worker, MiB. */
  heapMb: number;
  youngMb: number;
}

/** Starts a worker from source (CommonJS, eval'd) with data plus ctrl and port in its workerData. */
export function startSyncWorker(source: string, data: Record<string, unknown>, o: SyncWorkerOptions): SyncWorker {
  const ctrlBuffer = new SharedArrayBuffer(4);
  const ctrl = new Int32Array(ctrlBuffer);
  Atomics.store(ctrl, 0, o.initial);
  const { port1, port2 } = new MessageChannel();
  const worker = new Worker(source, {
    eval: true,
    workerData: { ...data, ctrl: ctrlBuffer, port: port2 },
    transferList: [port2],
    resourceLimits: { maxOldGenerationSizeMb: o.heapMb, maxYoungGenerationSizeMb: o.youngMb },
  });
  // Failures show as a missing answer; the events must not become uncaught errors.
  worker.on('error', () => {});
  // Neither keeps the process alive: a forgotten worker must not hang the exit.
  worker.unref();
  port1.unref();
  return { worker, port: port1, ctrl };
}

/** Blocks while ctrl[0] === value, at most ms; true when it changed. */
export function waitWhile(ctrl: Int32Array, value: number, ms: number): boolean {
  const t0 = Date.now();
  while (Atomics.load(ctrl, 0) === value) {
    const left = ms - (Date.now() - t0);
    if (left <= 0) return false;
    Atomics.wait(ctrl, 0, value, left);
  }
  return true;
}
