/**
 * The sidecar's own cost as metrics (issue 15): a real supervisor with its real engine process,
 * scraped on 15090 (port 0 here); both processes report CPU, RSS, PSS, heap, fds and event-loop
 * delay under `process="supervisor"|"engine"`, and the engine's CPU grows under load.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENV } from '../../../proxy/src/contract.js';
import {
  PROCESS_METRICS,
  readMaxFds,
  readPss,
  registerProcessMetrics,
} from '../../../proxy/src/metrics/process.js';
import { Registry } from '../../../proxy/src/metrics/registry.js';
import { sample } from '../harness.js';
import { get, startRecordingApp, startSidecar } from '../telemetry/sidecar.js';
import type { RecordingApp, Sidecar } from '../telemetry/sidecar.js';

const ROLES = ['supervisor', 'engine'] as const;
let app: RecordingApp;
let proxy: Sidecar;

beforeAll(async () => {
  app = await startRecordingApp();
  proxy = await startSidecar({ [ENV.inboundTarget]: `127.0.0.1:${app.port}` });
});

afterAll(async () => {
  await proxy?.stop();
  await app?.close();
});

const scrape = async (): Promise<string> =>
  (await get(`http://127.0.0.1:${proxy.ports.metrics}/metrics`)).body;

describe('process metrics of a real supervisor and engine', () => {
  it('both processes: PSS > 0 and at most RSS, heap, fds within their limit, start time in the past, event-loop delay', async () => {
    const text = await scrape();
    const n = PROCESS_METRICS;
    for (const process of ROLES) {
      const v = (name: string): number => {
        const x = sample(text, name, { process });
        if (x === undefined) throw new Error(`${name}{process="${process}"} missing`);
        return x;
      };
      expect(v(n.pss)).toBeGreaterThan(0);
      expect(v(n.pss)).toBeLessThanOrEqual(v(n.resident));
      expect(v(n.heapUsed)).toBeGreaterThan(0);
      expect(v(n.heapUsed)).toBeLessThanOrEqual(v(n.heapTotal));
      expect(v(n.openFds)).toBeGreaterThan(2);
      expect(v(n.openFds)).toBeLessThanOrEqual(v(n.maxFds));
      expect(v(n.cpu)).toBeCloseTo(v(n.cpuUser) + v(n.cpuSystem), 5);
      expect(v(n.startTime)).toBeLessThanOrEqual(Date.now() / 1000);
      expect(v(n.startTime)).toBeGreaterThan(Date.now() / 1000 - 600);
      expect(v(n.lagP99)).toBeGreaterThanOrEqual(v(n.lagP50));
      expect(v(n.activeResources)).toBeGreaterThan(0);
    }
    // Two processes, two PIDs' worth of memory: not the same figure reported twice.
    expect(sample(text, n.resident, { process: 'engine' })).not.toBe(
      sample(text, n.resident, { process: 'supervisor' }),
    );
  });

  it("the engine's CPU seconds grow under load", async () => {
    const before = sample(await scrape(), PROCESS_METRICS.cpu, { process: 'engine' }) ?? NaN;
    for (let i = 0; i < 300; i++)
      expect((await get(`http://127.0.0.1:${proxy.ports.inbound}/x`)).status).toBe(200);
    // The engine's figures come with its heartbeat (every second) and scrapes share a snapshot
    // round (≤ 500 ms old): wait for a snapshot taken after the load, bounded.
    let text = await scrape();
    let after = sample(text, PROCESS_METRICS.cpu, { process: 'engine' }) ?? NaN;
    for (const until = Date.now() + 5_000; !(after > before) && Date.now() < until;) {
      await new Promise((r) => setTimeout(r, 200));
      text = await scrape();
      after = sample(text, PROCESS_METRICS.cpu, { process: 'engine' }) ?? NaN;
    }
    expect(after).toBeGreaterThan(before);
    // The excerpt in docs/telemetry.md comes from here (REMORA_TELEMETRY_EXAMPLES=<dir>).
    const out = process.env.REMORA_TELEMETRY_EXAMPLES;
    const names = Object.values(PROCESS_METRICS) as string[];
    if (out !== undefined && out !== '')
      writeFileSync(
        join(out, 'process-metrics.txt'),
        text
          .split('\n')
          .filter((l) => names.some((n) => l.startsWith(`${n}{`)))
          .map((l) => `${l}\n`)
          .join(''),
      );
  });
});

describe('reading /proc', () => {
  it('PSS from smaps_rollup, in bytes; nothing from a file without the line', () => {
    expect(readPss('Rss:   100 kB\nPss:   42 kB\nPss_Anon: 10 kB\n')).toBe(42 * 1024);
    expect(readPss('Rss: 100 kB\n')).toBeUndefined();
    expect(readPss('Pss: lots kB\n')).toBeUndefined();
  });

  it('the soft open-files limit; none when unlimited or absent', () => {
    expect(readMaxFds('Limit  Soft Limit  Hard Limit  Units\nMax open files  1024  524288  files\n')).toBe(
      1024,
    );
    expect(readMaxFds('Max open files  unlimited  unlimited  files\n')).toBeUndefined();
    expect(readMaxFds('')).toBeUndefined();
  });
});

describe('event-loop delay', () => {
  it('a loop blocked for 150 ms shows in the maximum and the p99 (not the 50 ms sampling interval)', async () => {
    const registry = new Registry();
    registerProcessMetrics(registry, 'engine');
    await new Promise((r) => setTimeout(r, 120)); // two samples on time first
    const until = performance.now() + 150;
    while (performance.now() < until) {
      // busy: the sampling timer cannot run
    }
    await new Promise((r) => setTimeout(r, 80));
    const text = registry.render();
    const max = sample(text, PROCESS_METRICS.lagMax, { process: 'engine' }) ?? 0;
    // The timer ran at least 150 ms minus its 50 ms interval late.
    expect(max).toBeGreaterThanOrEqual(0.095);
    expect(sample(text, PROCESS_METRICS.lagP50, { process: 'engine' })).toBeLessThan(max);
  });
});
