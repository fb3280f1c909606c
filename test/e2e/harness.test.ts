// The harness's own guarantees: pods reach each other only through the bridge namespace,
// processes run under the identity asked for, and teardown and the startup sweep leave nothing.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { missingPrerequisite } from '../helpers/env.js';
import {
  Harness,
  PREFIX,
  httpJson,
  listHarnessNamespaces,
  parsePrometheus,
  sumMetric,
  sweepLeftovers,
  tcpExchange,
} from './harness/index.js';
import type { Pod } from './harness/index.js';

const skip = missingPrerequisite({ root: true, tools: ['ip', 'setpriv', 'ss'] });

function hostLinks(): string {
  return execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' });
}

describe.skipIf(skip !== undefined)(`e2e harness ${skip ?? ''}`, () => {
  let h: Harness;
  let a: Pod;
  let b: Pod;

  beforeAll(() => {
    h = Harness.create();
    a = h.addPod('a');
    b = h.addPod('b');
  });
  afterAll(() => h.teardown());

  it('pods reach each other over the bridge, IPv4 and IPv6, under the identity asked for', async () => {
    const server = await h.startAgent(b, 'http-server', ['8080'], { as: { uid: 1000, gid: 1000 } });
    const echo = await h.startAgent(b, 'echo-server', ['9000'], { as: { uid: 1000, gid: 1000 } });
    expect(await httpJson(h, a, `http://${b.ip}:8080/x`)).toEqual({
      server: 'b',
      method: 'GET',
      url: '/x',
      remote: a.ip,
    });
    expect(await httpJson(h, a, `http://[${b.ip6}]:8080/y`)).toMatchObject({ remote: a.ip6 });
    expect(await tcpExchange(h, a, b.ip, 9000, 'ping')).toEqual({ ok: true, data: 'ping' });
    const status = execFileSync('ps', ['-o', 'uid=,gid=', '-p', String(server.pid)], { encoding: 'utf8' });
    expect(status.trim().split(/\s+/)).toEqual(['1000', '1000']);
    await h.stop(server);
    await h.stop(echo);
    expect(await tcpExchange(h, a, b.ip, 9000, 'ping')).toEqual({ ok: false, error: 'ECONNREFUSED' });
  });

  it('nothing of the harness appears in the host namespace', () => {
    expect(hostLinks()).not.toContain(h.runId);
    expect(h.namespaces().sort()).toEqual([a.ns, b.ns, h.bridgeNs].sort());
  });
});

describe.skipIf(skip !== undefined)(`e2e harness cleanup ${skip ?? ''}`, () => {
  it('teardown stops processes by PID and removes every namespace, veth and temp dir of the run', async () => {
    const h = Harness.create();
    try {
      const p = h.addPod('p');
      h.addPod('q');
      const proc = await h.startAgent(p, 'echo-server', ['7000']);
      const dir = h.tempDir({ uid: 1337, gid: 1337 });
      expect(statSync(dir).uid).toBe(1337);
      expect(h.namespaces()).toHaveLength(3);
      await h.teardown();
      expect(await proc.exited).not.toBeUndefined();
      expect(() => process.kill(proc.pid, 0)).toThrow();
      expect(listHarnessNamespaces().filter((n) => n.runId === h.runId)).toEqual([]);
      expect(hostLinks()).not.toContain(h.runId);
      expect(existsSync(dir)).toBe(false);
      await h.teardown(); // idempotent
    } finally {
      h.teardownSync();
    }
  });

  it('the startup sweep removes leftovers of a crashed run (dead owner PID), not live ones', () => {
    // A PID that surely belongs to no live process: one that has just exited.
    const dead = spawnSync('true').pid;
    const leftover = `${PREFIX}-dead0-${dead}-x`;
    execFileSync('ip', ['netns', 'add', leftover]);
    try {
      const live = Harness.create();
      try {
        expect(sweepLeftovers()).toEqual([]);
        expect(listHarnessNamespaces().map((n) => n.ns)).not.toContain(leftover);
        expect(live.namespaces()).toEqual([live.bridgeNs]);
      } finally {
        live.teardownSync();
      }
    } finally {
      spawnSync('ip', ['netns', 'del', leftover]);
    }
  });
});

describe('parsePrometheus', () => {
  it('reads names, labels and values and sums by label match', () => {
    const samples = parsePrometheus(
      [
        '# HELP remora_tcp_connections_opened_total x',
        '# TYPE remora_tcp_connections_opened_total counter',
        'remora_tcp_connections_opened_total{direction="outbound",protocol="http1"} 3',
        'remora_tcp_connections_opened_total{direction="outbound",protocol="tcp"} 2',
        'remora_tcp_connections_opened_total{direction="inbound",protocol="http1"} 5',
        'remora_build_info{version="0.1.0",note="a \\"q\\" b"} 1',
      ].join('\n'),
    );
    expect(sumMetric(samples, 'remora_tcp_connections_opened_total', { direction: 'outbound' })).toBe(5);
    expect(sumMetric(samples, 'remora_tcp_connections_opened_total')).toBe(10);
    expect(samples[3]?.labels).toEqual({ version: '0.1.0', note: 'a \\"q\\" b' });
  });
});
