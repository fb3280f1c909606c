/**
 * h2spec (HTTP/2 conformance, github.com/summerwind/h2spec, built by test/h2spec/build.sh)
 * against both data listeners of a real engine, h2c with prior knowledge, in front of a node
 * HTTP/2 server. Every case must pass except the ones docs/testing.md lists with the reason
 * ("h2spec"): a case that starts failing, or a listed one that starts passing, fails this test.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENV } from '../../../proxy/src/contract.js';
import { missingPrerequisite } from '../../helpers/env.js';
import { startEngine } from '../harness.js';
import type { TestEngine } from '../harness.js';

const H2SPEC = fileURLToPath(new URL('../../h2spec/bin/h2spec', import.meta.url));
const skip = missingPrerequisite({ tools: [H2SPEC] });

/**
 * Cases that fail, with the reason in docs/testing.md ("h2spec"), per Node major (its nghttp2:
 * 1.61 in Node 20, 1.70 in Node 24). Every one fails the same way against a bare node:http2
 * server of that Node, so they are nghttp2's choices, not the proxy's.
 */
const NODE20: readonly string[] = [
  'http2/5.1: closed: Sends a DATA frame after sending RST_STREAM frame',
  'http2/5.1: closed: Sends a HEADERS frame after sending RST_STREAM frame',
  'http2/5.1: closed: Sends a DATA frame',
  'http2/5.1: closed: Sends a HEADERS frame',
  'http2/5.1.1: Sends stream identifier that is numerically smaller than previous',
  'http2/6.7: Sends a PING frame with ACK',
  'http2/6.9.1: Sends multiple WINDOW_UPDATE frames increasing the flow control window to above 2^31-1',
];
const NODE24: readonly string[] = [
  'http2/5.1: closed: Sends a DATA frame after sending RST_STREAM frame',
  'http2/5.1: closed: Sends a HEADERS frame after sending RST_STREAM frame',
  'http2/5.1: closed: Sends a DATA frame',
  'http2/5.1: closed: Sends a HEADERS frame',
  'http2/5.1.1: Sends stream identifier that is numerically smaller than previous',
  'http2/5.3.1: Sends PRIORITY frame that depend on itself',
  'http2/6.3: Sends a PRIORITY frame with 0x0 stream identifier',
  'http2/6.7: Sends a PING frame with ACK',
  'http2/6.9.1: Sends multiple WINDOW_UPDATE frames increasing the flow control window to above 2^31-1 on a stream',
];
export const KNOWN_FAILURES: readonly string[] = process.versions.node.startsWith('20.') ? NODE20 : NODE24;

let backend: http2.Http2Server;
let px: TestEngine;

beforeAll(async () => {
  if (skip !== undefined) return;
  backend = http2.createServer();
  backend.on('stream', (s) => {
    s.on('error', () => undefined);
    s.resume();
    s.on('end', () => {
      // h2spec resets streams and sessions at will: a stream closed (not only destroyed) by then
      // cannot respond, and throwing here would be this test upstream's crash, not the proxy's.
      if (s.destroyed || s.closed || s.session === undefined || s.session.destroyed) return;
      s.respond({ ':status': 200, 'content-type': 'text/plain' });
      s.end('hello from the upstream\n');
    });
  });
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  const target = `127.0.0.1:${(backend.address() as AddressInfo).port}`;
  px = await startEngine({
    [ENV.inboundTarget]: target,
    [ENV.outboundTarget]: target,
    [ENV.logLevel]: 'warn',
  });
});

afterAll(async () => {
  await px?.engine.close();
  if (backend !== undefined) await new Promise<void>((r) => backend.close(() => r()));
});

/** Runs h2spec; the failed cases' ids (`http2/6.5.3/2`...) from its JUnit report. */
function h2spec(
  port: number,
  sections: readonly string[] = [],
): Promise<{ failed: string[]; passed: number; out: string }> {
  const report = fileURLToPath(new URL(`../../../.tmp/h2spec-${port}.xml`, import.meta.url));
  // h2spec writes no report into a directory that does not exist (a fresh checkout has no .tmp).
  mkdirSync(fileURLToPath(new URL('../../../.tmp/', import.meta.url)), { recursive: true });
  return new Promise((resolve) => {
    execFile(
      H2SPEC,
      ['-h', '127.0.0.1', '-p', String(port), '-o', '5', '-j', report, ...sections],
      { timeout: 240_000 },
      (e, stdout, stderr) => {
        let xml = '';
        try {
          xml = readFileSync(report, 'utf8');
        } catch {
          // no report: h2spec did not run; fail with what it said instead of hanging
          resolve({
            failed: [`h2spec did not run: ${String(e?.message ?? '')} ${stderr}`],
            passed: 0,
            out: stdout,
          });
          return;
        }
        rmSync(report, { force: true });
        const failed: string[] = [];
        let passed = 0;
        for (const m of xml.matchAll(
          /<testcase package="([^"]*)" classname="([^"]*)"[^>]*?(\/>|>([^]*?)<\/testcase>)/g,
        )) {
          const body = m[4] ?? '';
          if (body.includes('<failure') || body.includes('<error')) failed.push(`${m[1]}: ${m[2]}`);
          else if (!body.includes('<skipped')) passed++;
        }
        resolve({ failed, passed, out: stdout });
      },
    );
  });
}

describe.skipIf(skip !== undefined)('h2spec', () => {
  for (const listener of ['inbound', 'outbound'] as const) {
    it(`${listener} listener: every case passes but the documented ones`, async () => {
      const r = await h2spec(px.port(listener));
      // the summary line, for the record in the test log
      console.log(`${listener}: ${r.out.split('\n').findLast((l) => l.includes('tests,')) ?? ''}`);
      expect(r.passed).toBeGreaterThan(100);
      // h2spec waits a fixed time for each answer; on this shared machine an engine that is
      // starved of CPU for that long fails a case it passes otherwise. An unexpected failure is
      // run once more (its section alone) before it counts.
      const failed: string[] = [];
      for (const f of r.failed) {
        if (KNOWN_FAILURES.includes(f)) failed.push(f);
        else {
          const again = await h2spec(px.port(listener), [f.slice(0, f.indexOf(':'))]);
          if (again.failed.includes(f)) failed.push(f);
          else console.log(`${listener}: passed on a second run: ${f}`);
        }
      }
      expect(failed).toEqual(KNOWN_FAILURES);
    }, 300_000);
  }
});
