// A scratch file read and written at byte positions (pread/pwrite), one batch at a time: the backing of a disk
// activation store. Created sparse at its full size; close() removes it. prefetch() starts reading a range on a
// worker thread (the main thread's compute goes on meanwhile); read() of exactly that range then waits for it.
import * as fs from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { UserError } from '../errors.js';

export interface PositionalFile {
  /** A fresh buffer with bytes [pos, pos + len) (from the prefetch of that range when there is one). */
  read(pos: number, len: number): Uint8Array;
  /** Reads dst.byteLength bytes at byte position pos. */
  readAt(dst: Uint8Array, pos: number): void;
  writeAt(src: Uint8Array, pos: number): void;
  /** Start reading [pos, pos + len) in the background; a later write overlapping it cancels it. */
  prefetch(pos: number, len: number): void;
  /** Closes and deletes the file. */
  close(): void;
  /** read() calls served by a prefetch, and all read() calls. */
  stats(): { prefetched: number; reads: number };
}

// The reader thread: one positional read per message into the shared buffer, then state 1 (done) or 2 (failed).
// CommonJS source: an eval worker runs as a script.
const READER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
parentPort.on('message', ({ fd, pos, buf, state }) => {
  const u8 = new Uint8Array(buf);
  const st = new Int32Array(state);
  try {
    let done = 0;
    while (done < u8.length) {
      const k = fs.readSync(fd, u8, done, Math.min(${1 << 30}, u8.length - done), pos + done);
      if (k === 0) throw new Error('end of file');
      done += k;
    }
    Atomics.store(st, 0, 1);
  } catch {
    Atomics.store(st, 0, 2);
  }
  Atomics.notify(st, 0);
});
`;

interface Pending {
  pos: number;
  len: number;
  buf: SharedArrayBuffer;
  state: Int32Array;
}

const CHUNK = 1 << 30; // one read/write call moves at most 2 GiB

const code = (e: unknown): string => (e as NodeJS.ErrnoException).code ?? String(e);

export function createScratchFile(file: string, bytes: number): PositionalFile {
  let fd: number;
  try {
    fd = fs.openSync(file, 'w+');
    fs.ftruncateSync(fd, bytes);
  } catch (e) {
    throw new UserError(`cannot create the scratch file: ${code(e)}`, { file, cause: e });
  }
  let open = true;
  const io = (op: 'read' | 'write', buf: Uint8Array, pos: number): void => {
    if (pos < 0 || pos + buf.byteLength > bytes) throw new RangeError(`${file}: bytes ${pos}..${pos + buf.byteLength} outside its ${bytes}`);
    let done = 0;
    try {
      while (done < buf.byteLength) {
        const len = Math.min(CHUNK, buf.byteLength - done);
        const k = op === 'read' ? fs.readSync(fd, buf, done, len, pos + done) : fs.writeSync(fd, buf, done, len, pos + done);
        if (k === 0) throw new Error(`unexpected end of file at byte ${pos + done}`);
        done += k;
      }
    } catch (e) {
      throw new UserError(`cannot ${op} the scratch file: ${code(e)}`, { file, cause: e });
    }
  };
  let worker: Worker | null = null;
  let pending: Pending | null = null;
  const inflight: Int32Array[] = []; // every request not known finished (the fd stays open until they are)
  let prefetched = 0;
  let reads = 0;
  const waitFor = (st: Int32Array) => {
    while (Atomics.load(st, 0) === 0) Atomics.wait(st, 0, 0);
  };
  return {
    read: (pos, len) => {
      const p = pending;
      pending = null;
      reads++;
      if (p && p.pos === pos && p.len === len) {
        waitFor(p.state);
        if (Atomics.load(p.state, 0) === 1) {
          prefetched++;
          // A plain (not shared) copy: native addons may refuse shared memory; the copy is far cheaper than the read.
          return new Uint8Array(p.buf).slice();
        }
      }
      const out = new Uint8Array(len);
      io('read', out, pos);
      return out;
    },
    readAt: (dst, pos) => io('read', dst, pos),
    writeAt: (src, pos) => {
      // A prefetch of rows being rewritten would return the old bytes: drop it (its worker read finishes unused).
      if (pending && pos < pending.pos + pending.len && pending.pos < pos + src.byteLength) pending = null;
      io('write', src, pos);
    },
    prefetch: (pos, len) => {
      if (!open || len <= 0 || pos < 0 || pos + len > bytes) return;
      if (pending && pending.pos === pos && pending.len === len) return;
      if (!worker) {
        worker = new Worker(READER_SOURCE, { eval: true });
        worker.unref();
      }
      for (let i = inflight.length - 1; i >= 0; i--) if (Atomics.load(inflight[i], 0) !== 0) inflight.splice(i, 1);
      const state = new Int32Array(new SharedArrayBuffer(4));
      const buf = new SharedArrayBuffer(len);
      worker.postMessage({ fd, pos, buf, state: state.buffer });
      inflight.push(state);
      pending = { pos, len, buf, state };
    },
    stats: () => ({ prefetched, reads }),
    close: () => {
      if (!open) return;
      open = false;
      pending = null;
      for (const st of inflight) waitFor(st);
      void worker?.terminate();
      fs.closeSync(fd);
      fs.rmSync(file, { force: true });
    },
  };
}

/** Free bytes of the file system holding dir (or its nearest existing parent); undefined when it cannot be told. */
export function freeDiskBytes(dir: string): number | undefined {
  let d = path.resolve(dir);
  while (!fs.existsSync(d)) {
    if (path.dirname(d) === d) return undefined;
    d = path.dirname(d);
  }
  try {
    const st = fs.statfsSync(d);
    return st.bavail * st.bsize;
  } catch {
    return undefined;
  }
}
