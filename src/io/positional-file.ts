// A scratch file read and written at byte positions (pread/pwrite), one batch at a time: the backing of a disk
// activation store. Created sparse at its full size; close() removes it.
import * as fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.js';

export interface PositionalFile {
  /** Reads dst.byteLength bytes at byte position pos. */
  readAt(dst: Uint8Array, pos: number): void;
  writeAt(src: Uint8Array, pos: number): void;
  /** Closes and deletes the file. */
  close(): void;
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
  return {
    readAt: (dst, pos) => io('read', dst, pos),
    writeAt: (src, pos) => io('write', src, pos),
    close: () => {
      if (!open) return;
      open = false;
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
