/**
 * A scrape loop cannot amplify into an IPC flood (issue 10, item 12c): the supervisor asks its
 * engines for fresh snapshots one round at a time, concurrent scrapes share the round, and a
 * round is not repeated within its minimum age. Counted by the supervisor's own
 * remora_supervisor_snapshot_requests_total (one per IPC request sent), real engine.
 */
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { ENV } from '../../../proxy/src/contract.js';
import { SUPERVISOR_METRICS } from '../../../proxy/src/contract.js';
import { metric, sleep, startSupervisor } from './helpers.js';
import type { RunningSupervisor } from './helpers.js';

const ENGINE = fileURLToPath(new URL('../../../proxy/dist/engine-child.js', import.meta.url));
/** Longer than the supervisor's minimum age between snapshot rounds (500 ms). */
const PAST_MIN_AGE_MS = 700;

let sup: RunningSupervisor | undefined;
afterEach(async () => {
  await sup?.stop();
  sup = undefined;
});

/** Opens `n` connections, sends all but the last byte of a scrape on each, then the rest at once. */
async function concurrentScrapes(port: number, n: number): Promise<string[]> {
  const sockets = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<net.Socket>((resolve, reject) => {
          const s = net.connect(port, '127.0.0.1', () => resolve(s));
          s.once('error', reject);
        }),
    ),
  );
  const replies = sockets.map(
    (s) =>
      new Promise<string>((resolve) => {
        let text = '';
        s.on('data', (c: Buffer) => (text += c.toString()));
        s.on('close', () => resolve(text));
      }),
  );
  for (const s of sockets) s.write('GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n');
  await sleep(50);
  for (const s of sockets) s.write('\r\n');
  return Promise.all(replies);
}

describe('metrics snapshots coalesced (real supervisor, real engine)', () => {
  it('50 concurrent scrapes used to send 50 snapshot requests over IPC: now at most two rounds', async () => {
    sup = await startSupervisor({
      engine: ENGINE,
      env: { [ENV.inboundTarget]: '127.0.0.1:9', [ENV.accessLog]: 'off' },
    });
    const s = sup;
    const name = SUPERVISOR_METRICS.snapshotRequests;
    // One scrape past the minimum age asks the engine once: the counter is live, not vacuous.
    const before = await metric(s, name);
    await sleep(PAST_MIN_AGE_MS);
    expect(await metric(s, name)).toBe(before + 1);

    await sleep(PAST_MIN_AGE_MS);
    const replies = await concurrentScrapes(s.ports.metrics, 50);
    for (const r of replies) {
      expect(r).toMatch(/^HTTP\/1\.1 200 /);
      expect(r).toContain('remora_build_info');
    }
    const after = await metric(s, name);
    // The 50 share one round (two if the first one started before the last scrape arrived);
    // the read above may add one more only if it came past the minimum age.
    expect(after - (before + 1)).toBeGreaterThanOrEqual(1);
    expect(after - (before + 1)).toBeLessThanOrEqual(3);
  });

  it('a scrape loop (sequential scrapes, no pause) asks the engine at most once per minimum age', async () => {
    sup = await startSupervisor({
      engine: ENGINE,
      env: { [ENV.inboundTarget]: '127.0.0.1:9', [ENV.accessLog]: 'off' },
    });
    const s = sup;
    const name = SUPERVISOR_METRICS.snapshotRequests;
    const first = await metric(s, name);
    const started = Date.now();
    let scrapes = 0;
    while (scrapes < 40) {
      await metric(s, name);
      scrapes += 1;
    }
    const elapsed = Date.now() - started;
    const rounds = (await metric(s, name)) - first;
    // Rounds are bounded by the time the loop ran (one per minimum age), not by the scrapes.
    expect(rounds).toBeLessThanOrEqual(Math.ceil(elapsed / 500) + 1);
  });
});
