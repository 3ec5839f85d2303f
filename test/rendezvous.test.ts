// The rendezvous store of data-parallel runs (engine/rendezvous.ts) across real processes: values and barriers seen
// alike by 3 ranks, a wait that times out naming the rank that is missing, and a rank that dies failing the others at
// once instead of after the timeout.
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { Rendezvous } from '../src/engine/rendezvous.js';
import { freePort, runRanks } from './helpers/dp-procs.js';

const parse = (stdout: string): Record<string, unknown> => JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as Record<string, unknown>;

describe('rendezvous store (3 processes)', () => {
  it('set / get / barrier: every rank reads every rank\'s value, a 3 MiB value reaches its readers', async () => {
    const runs = await runRanks(3, ['store']);
    for (const r of runs) expect(r.code, r.stderr).toBe(0);
    for (const r of runs) {
      const o = parse(r.stdout);
      expect(o.first).toEqual(['hello from 0', 'hello from 1', 'hello from 2']);
      expect(o.bigOk).toBe(true);
    }
  });

  it('a barrier that a rank never enters times out with the address and that rank in the message', async () => {
    const runs = await runRanks(3, ['timeout'], 60, () => ({ DP_TIMEOUT_MS: '1500' }));
    const out = runs.map((r) => parse(r.stdout));
    for (const r of runs) expect(r.code, r.stderr).toBe(0);
    // The first rank to time out fails the barrier for the other too (which may have come later and waited less).
    for (const rank of [0, 1]) expect(out[rank].error).toMatch(/barrier "all" at the rendezvous 127\.0\.0\.1:\d+: rank 2 did not arrive within 2 s/);
    expect(Math.max(out[0].ms as number, out[1].ms as number)).toBeGreaterThanOrEqual(1400);
    expect(out[2].error).toMatch(/waited 2 s for "never-set" from rank 0 at the rendezvous 127\.0\.0\.1:\d+/);
  });

  it('a rank that dies makes the waiting ranks fail at once with "rank 1 disconnected", and every later call too', async () => {
    const runs = await runRanks(3, ['disconnect'], 60, () => ({ DP_TIMEOUT_MS: '20000' }));
    expect(runs[1].code).toBe(7);
    for (const rank of [0, 2]) {
      expect(runs[rank].code, runs[rank].stderr).toBe(0);
      const o = parse(runs[rank].stdout);
      expect(o.error).toMatch(/rank 1 disconnected/);
      expect(o.later).toMatch(/rank 1 disconnected/);
      expect(o.ms as number).toBeLessThan(10_000); // not the 20 s timeout
    }
  });

  it('a rank that closes early, or rank 0 closing, fails what waits for it at once ("rank k left the run")', async () => {
    const runs = await runRanks(3, ['leave'], 60, () => ({ DP_TIMEOUT_MS: '20000' }));
    for (const r of runs) expect(r.code, r.stderr).toBe(0);
    const out = runs.map((r) => parse(r.stdout));
    for (const rank of [0, 1]) {
      expect(out[rank].error).toMatch(/^data-parallel rank \d: rank 2 left the run/);
      expect(out[rank].barrierError).toMatch(/rank 2 left the run/);
      expect(out[rank].ms as number).toBeLessThan(10_000); // not the 20 s timeout
    }
    expect(out[1].error).toMatch(/\| data-parallel rank 1: rank 0 left the run/);
  });

  it('rank 0 on a port in use, and a rank that cannot reach rank 0, fail with the address in the message', async () => {
    const busy = net.createServer();
    await new Promise<void>((res) => busy.listen(0, '127.0.0.1', res));
    const port = (busy.address() as net.AddressInfo).port;
    try {
      expect(() => Rendezvous.connect({ rank: 0, worldSize: 2, masterAddr: '127.0.0.1', masterPort: port }))
        .toThrow(`data-parallel rank 0: rank 0 cannot listen on 127.0.0.1:${port}: the port is in use`);
    } finally {
      busy.close();
    }
    const nobody = await freePort();
    const t0 = Date.now();
    expect(() => Rendezvous.connect({ rank: 1, worldSize: 2, masterAddr: '127.0.0.1', masterPort: nobody }, { connectTimeoutMs: 1500 }))
      .toThrow(`data-parallel rank 1: rank 1 cannot reach the rendezvous 127.0.0.1:${nobody} (rank 0 listens there) within 2 s`);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1400);
  });

  it('a frame over the size limit closes that connection; the store goes on serving', async () => {
    const port = await freePort();
    const rv = Rendezvous.connect({ rank: 0, worldSize: 1, masterAddr: '127.0.0.1', masterPort: port });
    try {
      const closed = await new Promise<boolean>((resolve) => {
        const s = net.connect(port, '127.0.0.1', () => {
          const head = Buffer.alloc(8);
          head.writeUInt32LE(0xffffffff, 0); // a 4 GiB frame
          s.write(head);
        });
        s.on('error', () => {});
        s.on('close', () => resolve(true));
        setTimeout(() => { s.destroy(); resolve(false); }, 5000);
      });
      expect(closed).toBe(true);
      rv.set('still', new Uint8Array([1, 2, 3]));
      expect(Array.from(rv.get('still'))).toEqual([1, 2, 3]);
      expect(() => rv.set('huge', new Uint8Array(64 * 2 ** 20 + 1))).toThrow(/limit/);
    } finally {
      rv.close();
    }
  });
});
