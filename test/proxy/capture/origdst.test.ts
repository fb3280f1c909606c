import { execFileSync } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addonLoadError, originalDestination } from '../../../proxy/src/capture/origdst.js';
import { missingPrerequisite } from '../../helpers/env.js';

const distModule = fileURLToPath(new URL('../../../proxy/dist/capture/origdst.js', import.meta.url));

// Runs inside the namespace: a listener on LISTEN_PORT, then one connection to each target; prints
// what originalDestination() saw for each accepted socket.
const probeScript = `
import net from 'node:net';
const { originalDestination } = await import(process.env.ORIGDST_MODULE);
const targets = JSON.parse(process.env.TARGETS);
const seen = [];
const srv = net.createServer((s) => { seen.push(originalDestination(s) ?? null); s.destroy(); });
srv.listen(Number(process.env.LISTEN_PORT), '::', async () => {
  for (const [host, port] of targets) {
    await new Promise((r) => { const c = net.connect(port, host); c.on('close', r); c.on('error', r); });
  }
  process.stdout.write(JSON.stringify(seen));
  srv.close();
});`;

describe('originalDestination (not redirected)', () => {
  it('loads the native addon', () => {
    expect(addonLoadError()).toBeUndefined();
  });

  it('answers undefined for a plain loopback connection without a NAT rule', async () => {
    const seen: unknown[] = [];
    const srv = net.createServer((s) => {
      seen.push(originalDestination(s));
      s.destroy();
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const { port } = srv.address() as net.AddressInfo;
    await new Promise((r) => net.connect(port, '127.0.0.1').on('close', r));
    srv.close();
    // The host may have NAT conntrack loaded, in which case the kernel reports the listener itself.
    expect([undefined, `127.0.0.1:${port}`]).toContain(
      seen[0] === undefined
        ? undefined
        : `${(seen[0] as { address: string }).address}:${(seen[0] as { port: number }).port}`,
    );
  });

  it('answers undefined for a socket that has no fd (not yet connected)', () => {
    expect(originalDestination(new net.Socket())).toBeUndefined();
  });
});

const skip = missingPrerequisite({ root: true, tools: ['ip', 'iptables', 'ip6tables'] });
describe.skipIf(skip !== undefined)(
  `originalDestination behind a real iptables REDIRECT ${skip ?? ''}`,
  () => {
    const ns = `remora-origdst-${process.pid}`;
    const sh = (...args: string[]) => execFileSync('ip', ['netns', 'exec', ns, ...args], { stdio: 'pipe' });

    beforeAll(() => {
      execFileSync('ip', ['netns', 'add', ns]);
      sh('ip', 'link', 'set', 'lo', 'up');
      // Only inside our own namespace: 127.0.0.1:9999 and [::1]:9999 are redirected to the listener.
      sh(
        'iptables',
        '-t',
        'nat',
        '-A',
        'OUTPUT',
        '-p',
        'tcp',
        '-d',
        '127.0.0.1',
        '--dport',
        '9999',
        '-j',
        'REDIRECT',
        '--to-ports',
        '15999',
      );
      sh(
        'ip6tables',
        '-t',
        'nat',
        '-A',
        'OUTPUT',
        '-p',
        'tcp',
        '-d',
        '::1',
        '--dport',
        '9999',
        '-j',
        'REDIRECT',
        '--to-ports',
        '15999',
      );
    });
    afterAll(() => {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    });

    it('reports the pre-redirect address and port for IPv4 and IPv6', () => {
      const out = execFileSync(
        'ip',
        ['netns', 'exec', ns, process.execPath, '--input-type=module', '-e', probeScript],
        {
          env: {
            ...process.env,
            ORIGDST_MODULE: distModule,
            LISTEN_PORT: '15999',
            TARGETS: JSON.stringify([
              ['127.0.0.1', 9999],
              ['::1', 9999],
              ['127.0.0.1', 15999],
            ]),
          },
        },
      ).toString();
      const seen = JSON.parse(out) as unknown[];
      expect(seen).toEqual([
        { address: '127.0.0.1', port: 9999, family: 'IPv4' },
        { address: '::1', port: 9999, family: 'IPv6' },
        // A direct connection to the listener reports the listener itself: the engine treats that
        // as "not redirected" and uses the configured target.
        { address: '127.0.0.1', port: 15999, family: 'IPv4' },
      ]);
    });
  },
);
