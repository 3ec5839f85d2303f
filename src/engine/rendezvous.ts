// The rendezvous of a data-parallel run (issue 12): a small TCP key-value store in the manner of torch's TCPStore.
// Rank 0 listens on MASTER_ADDR:MASTER_PORT and every rank (0 included) connects; set/get/barrier are blocking calls.
// The engine is synchronous but Node sockets are not, so the sockets (and rank 0's server) live in a worker thread and
// the main thread blocks on Atomics.wait, as io/sync-worker.ts does (the worker-start lines are repeated here because
// the engine may not import io/, docs/architecture.md). The server keeps serving while rank 0's main thread computes.
//
// Wire format: frames of [u32 frame length][u32 header length][JSON header][payload bytes], both lengths little-endian
// and bounded (MAX_FRAME_BYTES, MAX_HEADER_BYTES). A rank whose connection drops without saying goodbye breaks the
// store: every waiting call, and every later one, fails at once with "rank k disconnected".
import { MessageChannel, Worker, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { UserError } from '../errors.js';

/** Largest payload of one set (collectives send larger tensors in chunks of at most this). */
export const MAX_VALUE_BYTES = 64 * 2 ** 20;
const MAX_HEADER_BYTES = 64 * 1024;
const MAX_FRAME_BYTES = MAX_VALUE_BYTES + MAX_HEADER_BYTES + 4;
const MAX_KEY_CHARS = 1024;
/** Default wait of a get or barrier: long, since rank 0 may write a large checkpoint while the others wait. */
export const DEFAULT_TIMEOUT_MS = 30 * 60_000;
/** Default time for all ranks to reach rank 0 (model loading happens before). */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10 * 60_000;
/** Extra wait of the main thread beyond the store's own timeout, before it declares the worker dead. */
const WORKER_GRACE_MS = 30_000;

export interface RendezvousAddress {
  rank: number;
  worldSize: number;
  /** Where rank 0 listens (MASTER_ADDR, MASTER_PORT). */
  masterAddr: string;
  masterPort: number;
}

export interface RendezvousOptions {
  /** Longest wait of a get or barrier (default DEFAULT_TIMEOUT_MS). */
  timeoutMs?: number;
  /** Longest wait for rank 0's server and for every rank to connect (default DEFAULT_CONNECT_TIMEOUT_MS). */
  connectTimeoutMs?: number;
  /**
   * Pid of the launcher that started this process: when this process's parent changes (the launcher died), it ends
   * itself (SIGKILL), so no worker outlives its launcher. The main thread may be blocked in a long computation, so the
   * rendezvous thread watches.
   */
  launcherPid?: number;
}

// Control word: the worker is starting, a request is pending, an answer is posted.
const STARTING = 2;
const PENDING = 0;
const ANSWERED = 1;

type Answer = { ok: true; value?: ArrayBuffer } | { ok: false; error: string };

const WORKER_SOURCE = `'use strict';
const { workerData } = require('node:worker_threads');
const net = require('node:net');
const ctrl = new Int32Array(workerData.ctrl);
const mainPort = workerData.port;
const { rank, worldSize, host, tcpPort, timeoutMs, connectTimeoutMs, launcherPid } = workerData;
const ADDR = host + ':' + tcpPort;
const MAX_FRAME = ${MAX_FRAME_BYTES};
const MAX_HEADER = ${MAX_HEADER_BYTES};
const MAX_KEY = ${MAX_KEY_CHARS};
const ANSWERED = ${ANSWERED};

function answerMain(a) {
  const transfer = a.value ? [a.value] : [];
  mainPort.postMessage(a, transfer);
  Atomics.store(ctrl, 0, ANSWERED);
  Atomics.notify(ctrl, 0);
}

const seconds = (ms) => Math.round(ms / 1000) + ' s';
const rankList = (rs) => (rs.length === 1 ? 'rank ' : 'ranks ') + rs.join(', ');

function encode(header, payload) {
  const h = Buffer.from(JSON.stringify(header), 'utf8');
  const plen = payload ? payload.length : 0;
  const pre = Buffer.alloc(8);
  pre.writeUInt32LE(4 + h.length + plen, 0);
  pre.writeUInt32LE(h.length, 4);
  return payload && plen > 0 ? [Buffer.concat([pre, h]), payload] : [Buffer.concat([pre, h])];
}

function send(sock, header, payload) {
  if (sock.destroyed) return;
  for (const b of encode(header, payload)) sock.write(b);
}

// Splits a byte stream into frames; a frame over the limits is a protocol error (the peer is not one of ours).
function frameReader(onFrame, onBad) {
  let chunks = [];
  let total = 0;
  return (chunk) => {
    chunks.push(chunk);
    total += chunk.length;
    for (;;) {
      if (total < 4) return;
      if (chunks[0].length < 4) { chunks = [Buffer.concat(chunks)]; }
      const len = chunks[0].readUInt32LE(0);
      if (len < 4 || len > MAX_FRAME) return onBad('a frame of ' + len + ' bytes (limit ' + MAX_FRAME + ')');
      if (total < 4 + len) return;
      const all = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
      const frame = all.subarray(4, 4 + len);
      const rest = all.subarray(4 + len);
      chunks = rest.length ? [rest] : [];
      total = rest.length;
      const hlen = frame.readUInt32LE(0);
      if (hlen > MAX_HEADER || 4 + hlen > frame.length) return onBad('a header of ' + hlen + ' bytes');
      let header;
      try { header = JSON.parse(frame.subarray(4, 4 + hlen).toString('utf8')); } catch { return onBad('an unreadable header'); }
      // Copy the payload out of the (possibly shared) receive buffer.
      onFrame(header, Buffer.from(frame.subarray(4 + hlen)));
    }
  };
}

// ---------------- the server (rank 0) ----------------
function startServer(onListening, onFail) {
  const values = new Map();   // key -> { value: Buffer, readers: number (0: kept) }
  const waiters = new Map();  // key -> [{ sock, id, timer }]
  const barriers = new Map(); // name -> Map(rank -> { sock, id, timer })
  const failedBarriers = new Map(); // name -> message of its timeout
  const live = new Map();     // rank -> sock
  const gone = new Set();     // ranks that said goodbye
  let broken = null;          // the message every call gets after a rank dropped
  let left = null;            // the message of a wait after rank 0 left
  const closing = [];         // callbacks waiting for every other rank to leave

  const missing = () => {
    const m = [];
    for (let r = 0; r < worldSize; r++) if (!live.has(r) && !gone.has(r)) m.push(r);
    return m;
  };
  const notConnected = () => { const m = missing(); return m.length ? '; not connected: ' + rankList(m) : ''; };
  const reply = (sock, id, header, payload) => send(sock, Object.assign({ id }, header), payload);
  const fail = (sock, id, error) => reply(sock, id, { ok: false, error });

  function deliver(key, sock, id) {
    const e = values.get(key);
    reply(sock, id, { ok: true }, e.value);
    if (e.readers > 0 && --e.readers === 0) values.delete(key);
  }

  function checkClosing() {
    if (live.size <= 1) for (const cb of closing.splice(0)) cb();
  }

  function breakStore(msg) {
    if (broken) return;
    broken = msg;
    failWaiting(msg);
  }

  function leftMessage(r) {
    return 'rank ' + r + ' left the run (closed its collective) while this rank waited';
  }

  function failWaitingFor(r, msg) {
    for (const [key, list] of waiters) {
      const keep = list.filter((w) => {
        if (w.owner !== r) return true;
        clearTimeout(w.timer);
        fail(w.sock, w.id, msg);
        return false;
      });
      if (keep.length) waiters.set(key, keep); else waiters.delete(key);
    }
    for (const [, arrived] of barriers) for (const [, w] of arrived) { clearTimeout(w.timer); fail(w.sock, w.id, msg); }
    barriers.clear();
  }

  function failWaiting(msg) {
    for (const [, list] of waiters) for (const w of list) { clearTimeout(w.timer); fail(w.sock, w.id, msg); }
    waiters.clear();
    for (const [, arrived] of barriers) for (const [, w] of arrived) { clearTimeout(w.timer); fail(w.sock, w.id, msg); }
    barriers.clear();
  }

  function handle(sock, h, payload) {
    const id = h.id;
    if (h.op === 'hello') {
      if (h.worldSize !== worldSize) return fail(sock, id, 'rank ' + h.rank + ' has WORLD_SIZE ' + h.worldSize + ', rank 0 has ' + worldSize);
      if (!Number.isInteger(h.rank) || h.rank < 0 || h.rank >= worldSize) return fail(sock, id, 'rank ' + h.rank + ' is outside 0..' + (worldSize - 1));
      if (live.has(h.rank) || gone.has(h.rank)) return fail(sock, id, 'two processes connected as rank ' + h.rank);
      sock.rank = h.rank;
      live.set(h.rank, sock);
      return reply(sock, id, { ok: true });
    }
    if (sock.rank === undefined) return fail(sock, id, 'no hello');
    if (h.op === 'bye') {
      sock.clean = true;
      live.delete(sock.rank);
      gone.add(sock.rank);
      reply(sock, id, { ok: true });
      // What waits for this rank now waits in vain: a get of a value it was to set, any barrier (it cannot come).
      if (sock.rank !== 0) failWaitingFor(sock.rank, leftMessage(sock.rank));
      return checkClosing();
    }
    if (h.op === 'leave') {
      // Rank 0 closing: answer once every other rank has left (or after the timeout), so none loses its last answer.
      // A rank waiting for something now waits in vain (rank 0 sets nothing more): it fails at once, and so does any
      // later wait, so a rank 0 that closes on an error path is not held up by ranks that wait for it.
      left = leftMessage(0);
      failWaiting(left);
      const timer = setTimeout(() => { closing.length = 0; reply(sock, id, { ok: true }); }, timeoutMs);
      closing.push(() => { clearTimeout(timer); reply(sock, id, { ok: true }); });
      return checkClosing();
    }
    if (broken) return fail(sock, id, broken);
    if (typeof h.key !== 'string' || h.key.length > MAX_KEY) return fail(sock, id, 'bad key');
    if (h.op === 'set') {
      values.set(h.key, { value: payload, readers: h.readers > 0 ? h.readers : 0 });
      reply(sock, id, { ok: true });
      const list = waiters.get(h.key);
      if (list) {
        waiters.delete(h.key);
        const rest = [];
        for (const w of list) {
          if (values.has(h.key)) { clearTimeout(w.timer); deliver(h.key, w.sock, w.id); } else rest.push(w);
        }
        if (rest.length) waiters.set(h.key, rest);
      }
      return;
    }
    if (h.op === 'get') {
      if (values.has(h.key)) return deliver(h.key, sock, id);
      if (left) return fail(sock, id, left);
      if (gone.has(h.owner)) return fail(sock, id, leftMessage(h.owner));
      const w = { sock, id, timer: null, owner: h.owner };
      w.timer = setTimeout(() => {
        const list = waiters.get(h.key) || [];
        const i = list.indexOf(w);
        if (i >= 0) list.splice(i, 1);
        if (list.length === 0) waiters.delete(h.key);
        const from = h.owner !== undefined && h.owner !== null ? ' from rank ' + h.owner : '';
        fail(sock, id, 'waited ' + seconds(timeoutMs) + ' for "' + h.key + '"' + from + ' at the rendezvous ' + ADDR + notConnected());
      }, timeoutMs);
      if (!waiters.has(h.key)) waiters.set(h.key, []);
      waiters.get(h.key).push(w);
      return;
    }
    if (h.op === 'barrier') {
      if (left) return fail(sock, id, left);
      if (failedBarriers.has(h.key)) return fail(sock, id, failedBarriers.get(h.key));
      for (const r of gone) return fail(sock, id, leftMessage(r));
      let arrived = barriers.get(h.key);
      if (!arrived) barriers.set(h.key, (arrived = new Map()));
      if (arrived.has(sock.rank)) return fail(sock, id, 'rank ' + sock.rank + ' entered barrier "' + h.key + '" twice');
      const w = { sock, id, timer: null };
      arrived.set(sock.rank, w);
      if (arrived.size === worldSize) {
        barriers.delete(h.key);
        for (const [, x] of arrived) { clearTimeout(x.timer); reply(x.sock, x.id, { ok: true }); }
        return;
      }
      // The first timeout fails the barrier for all: those in it now, and those arriving later.
      const waitMs = h.timeoutMs > 0 ? h.timeoutMs : timeoutMs;
      w.timer = setTimeout(() => {
        const absent = [];
        for (let r = 0; r < worldSize; r++) if (!arrived.has(r)) absent.push(r);
        const msg = 'barrier "' + h.key + '" at the rendezvous ' + ADDR + ': ' + rankList(absent) + ' did not arrive within ' + seconds(waitMs) + notConnected();
        barriers.delete(h.key);
        failedBarriers.set(h.key, msg);
        for (const [, x] of arrived) { clearTimeout(x.timer); fail(x.sock, x.id, msg); }
      }, waitMs);
      return;
    }
    fail(sock, id, 'unknown request ' + String(h.op));
  }

  const server = net.createServer((sock) => {
    sock.setNoDelay(true);
    const read = frameReader((h, p) => handle(sock, h, p), (what) => { sock.destroy(); });
    sock.on('data', read);
    sock.on('error', () => {});
    sock.on('close', () => {
      if (sock.rank === undefined || sock.clean) return;
      live.delete(sock.rank);
      gone.add(sock.rank);
      breakStore('rank ' + sock.rank + ' disconnected');
      checkClosing();
    });
  });
  server.on('error', (e) => onFail('rank 0 cannot listen on ' + ADDR + ': ' + (e.code === 'EADDRINUSE' ? 'the port is in use' : e.message)));
  // A loopback MASTER_ADDR (one host) keeps the store on loopback; another name is where the other hosts reach rank 0,
  // which may resolve differently here (a hostname mapped to 127.0.1.1): listen on every interface, as torch does.
  const loopback = /^(127\.|localhost$|::1$)/i.test(host);
  server.listen({ host: loopback ? host : undefined, port: tcpPort, exclusive: true }, onListening);
  return server;
}

// ---------------- the client (every rank) ----------------
let sock = null;
let lost = null;       // set when the connection to rank 0 dropped
let pending = null;    // { id, cb } of the one request in flight
let nextId = 1;
let leaving = false;

function request(header, payload, cb) {
  if (lost) return cb({ ok: false, error: lost });
  const id = nextId++;
  pending = { id, cb };
  send(sock, Object.assign({ id }, header), payload);
}

function onClientFrame(h, payload) {
  if (!pending || pending.id !== h.id) return;
  const p = pending;
  pending = null;
  if (h.ok) {
    const value = payload.length ? payload.buffer.slice(payload.byteOffset, payload.byteOffset + payload.length) : undefined;
    p.cb(value ? { ok: true, value } : { ok: true });
  } else p.cb({ ok: false, error: h.error });
}

function connectClient(deadline, done) {
  const s = net.connect({ host, port: tcpPort });
  s.setNoDelay(true);
  let connected = false;
  s.on('connect', () => {
    connected = true;
    sock = s;
    s.on('data', frameReader(onClientFrame, (what) => { lost = 'the rendezvous ' + ADDR + ' sent ' + what; s.destroy(); }));
    request({ op: 'hello', rank, worldSize }, null, done);
  });
  s.on('error', () => {});
  s.on('close', () => {
    if (!connected) {
      if (Date.now() > deadline) return done({ ok: false, error: 'rank ' + rank + ' cannot reach the rendezvous ' + ADDR + ' (rank 0 listens there) within ' + seconds(connectTimeoutMs) });
      return void setTimeout(() => connectClient(deadline, done), 200);
    }
    if (!lost) lost = leaving ? 'the rendezvous is closed' : 'rank 0 disconnected';
    if (pending) { const p = pending; pending = null; p.cb({ ok: false, error: lost }); }
  });
}

let server = null;
// The answer to the start (connected, or why not) goes to the main thread like any other answer.
const begin = () => connectClient(Date.now() + connectTimeoutMs, (a) => answerMain(a.ok ? { ok: true } : a));

if (launcherPid) {
  // The launcher died (this process was re-parented): end now rather than run on as an orphan.
  setInterval(() => { if (process.ppid !== launcherPid) process.kill(process.pid, 'SIGKILL'); }, 1000).unref();
}

if (rank === 0) {
  server = startServer(begin, (error) => answerMain({ ok: false, error }));
} else begin();

mainPort.on('message', (req) => {
  const payload = req.value ? Buffer.from(req.value) : null;
  if (req.op === 'close') {
    leaving = true;
    const finish = () => {
      if (sock) sock.end();
      if (server) server.close();
      answerMain({ ok: true });
    };
    if (lost) return finish();
    if (rank === 0) return request({ op: 'leave' }, null, () => request({ op: 'bye' }, null, finish));
    return request({ op: 'bye' }, null, finish);
  }
  request({ op: req.op, key: req.key, readers: req.readers, owner: req.owner, timeoutMs: req.timeoutMs }, payload, answerMain);
});
`;

/** The blocking client of the rendezvous store; one per process. */
export class Rendezvous {
  private closed = false;

  private constructor(
    private readonly worker: Worker,
    private readonly port: MessagePort,
    private readonly ctrl: Int32Array,
    readonly rank: number,
    readonly worldSize: number,
    readonly address: string,
    private readonly timeoutMs: number,
    /** The connect timeout, also the wait of the first barrier (openCollective's "connected"). */
    readonly connectTimeoutMs: number,
  ) {}

  /**
   * Connects this rank (rank 0 first starts the server); returns when the connection stands. Throws a UserError when
   * rank 0's port is in use or rank 0 cannot be reached within the connect timeout.
   */
  static connect(a: RendezvousAddress, o: RendezvousOptions = {}): Rendezvous {
    const timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const connectTimeoutMs = o.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const address = `${a.masterAddr}:${a.masterPort}`;
    const ctrlBuffer = new SharedArrayBuffer(4);
    const ctrl = new Int32Array(ctrlBuffer);
    Atomics.store(ctrl, 0, STARTING);
    const { port1, port2 } = new MessageChannel();
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: {
        ctrl: ctrlBuffer, port: port2, rank: a.rank, worldSize: a.worldSize, host: a.masterAddr, tcpPort: a.masterPort,
        timeoutMs, connectTimeoutMs, launcherPid: o.launcherPid ?? 0,
      },
      transferList: [port2],
      resourceLimits: { maxOldGenerationSizeMb: 256, maxYoungGenerationSizeMb: 32 },
    });
    // Failures show as a missing answer; neither the worker nor the port keeps the process alive.
    worker.on('error', () => {});
    worker.unref();
    port1.unref();
    const rv = new Rendezvous(worker, port1, ctrl, a.rank, a.worldSize, address, timeoutMs, connectTimeoutMs);
    rv.answered(connectTimeoutMs + WORKER_GRACE_MS, 'connecting');
    return rv;
  }

  /** Stores value under key. readers > 0: the value is removed after that many gets (0: kept until the end). */
  set(key: string, value: Uint8Array, readers = 0): void {
    if (value.byteLength > MAX_VALUE_BYTES) throw new Error(`rendezvous value of ${value.byteLength} bytes for "${key}" (limit ${MAX_VALUE_BYTES})`);
    const copy = value.slice(); // transferred to the worker: the caller's buffer stays usable
    this.call({ op: 'set', key, readers, value: copy.buffer }, [copy.buffer]);
  }

  /** The value of key, waiting until some rank sets it. owner names the rank expected to set it (for the timeout message). */
  get(key: string, owner?: number): Uint8Array {
    const a = this.call({ op: 'get', key, owner });
    return a.value ? new Uint8Array(a.value) : new Uint8Array(0);
  }

  /** Returns when every rank has entered the barrier of this name; timeoutMs overrides the store's wait for this one. */
  barrier(name: string, timeoutMs?: number): void {
    this.call({ op: 'barrier', key: name, timeoutMs }, [], timeoutMs);
  }

  /**
   * Leaves the store. Rank 0 (the server) first waits until the other ranks have left (at most the timeout), so that
   * none loses an answer still on its way. Never throws; later calls fail.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      Atomics.store(this.ctrl, 0, PENDING);
      this.port.postMessage({ op: 'close' });
      this.waitAnswer(this.timeoutMs + WORKER_GRACE_MS);
    } catch {
      // A broken store closes as well as it can.
    }
    void this.worker.terminate();
    this.port.close();
  }

  private call(
    req: { op: string; key: string; readers?: number; owner?: number; timeoutMs?: number; value?: ArrayBuffer }, transfer: ArrayBuffer[] = [], timeoutMs = this.timeoutMs,
  ): Answer & { ok: true } {
    if (this.closed) throw new Error(`rendezvous ${this.address}: used after close()`);
    if (req.key.length > MAX_KEY_CHARS) throw new Error(`rendezvous key longer than ${MAX_KEY_CHARS} characters`);
    Atomics.store(this.ctrl, 0, PENDING);
    this.port.postMessage(req, transfer);
    return this.answered(timeoutMs + WORKER_GRACE_MS, `"${req.key}"`);
  }

  /** The answer to the request in flight; a failed one becomes a UserError. */
  private answered(ms: number, what: string): Answer & { ok: true } {
    const a = this.waitAnswer(ms, what);
    if (!a.ok) throw new UserError(`data-parallel rank ${this.rank}: ${a.error}`);
    return a;
  }

  private waitAnswer(ms: number, what = 'closing'): Answer {
    const t0 = Date.now();
    while (Atomics.load(this.ctrl, 0) !== ANSWERED) {
      const left = ms - (Date.now() - t0);
      if (left <= 0) {
        throw new UserError(`data-parallel rank ${this.rank}: no answer from the rendezvous ${this.address} within ${Math.round(ms / 1000)} s (${what})`);
      }
      Atomics.wait(this.ctrl, 0, Atomics.load(this.ctrl, 0), Math.min(left, 1000));
    }
    const msg = receiveMessageOnPort(this.port);
    if (!msg) throw new UserError(`data-parallel rank ${this.rank}: the rendezvous thread ended without an answer (${what})`);
    return msg.message as Answer;
  }
}
