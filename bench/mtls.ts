/**
 * mTLS cost (issue 4): the same path through two sidecars, plaintext vs mTLS tunnel, at a fixed
 * 1000 req/s (hey, keep-alive), p50/p99; how many tunnel connections served those requests
 * (reuse under keep-alive); and how many new mTLS tunnel connections (handshake + CONNECT) one
 * engine accepts per second. Everything on loopback, every process started here and stopped by
 * PID.
 *
 *   plaintext: hey → proxy A outbound → proxy B inbound → backend
 *   mtls:      hey → proxy A outbound → (discovery: meshed) → mTLS → proxy B :tunnel → backend
 *
 * Run: npm run build && tsc -p bench && node bench/dist/mtls.js [--seconds=10]
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import type { KeyObject } from 'node:crypto';
import { ENV, TUNNEL_ALPN } from '@remora/proxy/contract';
import { Processes, cleanupOnSignals, freePorts, httpGet } from './procs.js';
import type { Started } from './procs.js';
import { MESH_SERVICE, TRUST_DOMAIN, startMeshCa, startMeshProxy, writeDiscovery } from './mesh-proxy.js';
import type { ProxyPorts, Root } from './mesh-proxy.js';
import { mean, parseHeyCsv, percentile } from './tools.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PROXY = join(ROOT, 'proxy/dist/bin/remora-proxy.js');

const { issue } = (await import(join(ROOT, 'injector/dist/pki/ca.js'))) as {
  issue: (
    ca: Root,
    spec: {
      subject: object;
      validityDays: number;
      uris: string[];
      extKeyUsage: string[];
      publicKey: KeyObject;
    },
  ) => { certPem: string };
};

const seconds = Number(/--seconds=(\d+)/.exec(process.argv.join(' '))?.[1] ?? 10);
const procs = new Processes((m) => process.stderr.write(`# ${m}\n`));
const dir = mkdtempSync(join(tmpdir(), 'remora-bench-mtls-'));
const stopSignals = cleanupOnSignals(async () => {
  await procs.stopAll();
  rmSync(dir, { recursive: true, force: true });
});

const startProxy = (name: string, p: ProxyPorts, env: Record<string, string>): Promise<Started> =>
  startMeshProxy(procs, PROXY, dir, name, p, env);

async function hey(
  url: string,
): Promise<{ p50: number; p99: number; mean: number; requests: number; errors: number }> {
  const r = await procs.run('hey', 'hey', ['-z', `${seconds}s`, '-q', '100', '-c', '10', '-o', 'csv', url]);
  if (r.code !== 0) throw new Error(`hey: ${r.stderr}`);
  const h = parseHeyCsv(r.stdout);
  const ok = h.statuses['200'] ?? 0;
  const round = (v: number): number => Math.round(v * 1000) / 1000;
  return {
    p50: round(percentile(h.latenciesMs, 50)),
    p99: round(percentile(h.latenciesMs, 99)),
    mean: round(mean(h.latenciesMs)),
    requests: h.latenciesMs.length,
    errors: h.latenciesMs.length - ok,
  };
}

const TICK_US = 1e6 / 100; // USER_HZ is 100 on Linux

/** utime + stime (µs) of `pid` and every descendant (the supervisor and its engine). */
function treeCpuUs(pid: number): number {
  let us = 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    us += (Number(f[11]) + Number(f[12])) * TICK_US;
    const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'latin1').trim();
    for (const c of children === '' ? [] : children.split(' ')) us += treeCpuUs(Number(c));
  } catch {
    // gone meanwhile
  }
  return us;
}

/** hey against `url`, with each proxy's CPU µs per request over the same seconds. */
async function heyWithCpu(
  url: string,
  pids: Record<string, number>,
): Promise<Awaited<ReturnType<typeof hey>> & { cpuUsPerRequest: Record<string, number> }> {
  const t0 = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, treeCpuUs(p)]));
  const r = await hey(url);
  const cpuUsPerRequest: Record<string, number> = {};
  for (const [k, p] of Object.entries(pids))
    cpuUsPerRequest[k] = Math.round((treeCpuUs(p) - (t0[k] as number)) / Math.max(1, r.requests));
  return { ...r, cpuUsPerRequest };
}

function metric(text: string, name: string, labels: string): number {
  let sum = 0;
  for (const line of text.split('\n'))
    if (line.startsWith(`${name}{`) && line.includes(labels)) sum += Number(line.split(' ').pop());
  return sum;
}

/**
 * New tunnel connections per second: `concurrency` loops of handshake + CONNECT + close; with
 * `resume`, each offers the last session ticket, as the tunnel client does (tunnel/connect.ts).
 */
async function handshakes(
  port: number,
  backendPort: number,
  key: string,
  cert: string,
  ca: string,
  resume: boolean,
): Promise<{ perSecond: number; resumed: number }> {
  const context = tls.createSecureContext({ key, cert, ca, minVersion: 'TLSv1.3' });
  const end = Date.now() + seconds * 1000;
  let done = 0;
  let resumed = 0;
  let ticket: Buffer | undefined;
  const one = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const s = tls.connect({
        host: '127.0.0.1',
        port,
        secureContext: context,
        ALPNProtocols: [TUNNEL_ALPN],
        checkServerIdentity: () => undefined,
        ...(resume && ticket !== undefined ? { session: ticket } : {}),
      });
      if (resume) s.on('session', (t: Buffer) => (ticket = t));
      s.once('secureConnect', () => {
        if (s.isSessionReused()) resumed++;
        s.write(`CONNECT 127.0.0.1:${backendPort} HTTP/1.1\r\n\r\n`);
      });
      s.once('data', (d: Buffer) => {
        if (d.toString('latin1').startsWith('HTTP/1.1 200')) done++;
        s.destroy();
        resolve();
      });
      s.once('error', reject);
    });
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (Date.now() < end) await one();
    }),
  );
  return { perSecond: Math.round(done / seconds), resumed };
}

async function main(): Promise<void> {
  const all = await freePorts(15);
  const [backendPort, caPort, webhookPort] = all as [number, number, number];
  const rest = all.slice(3);
  const ports = (i: number): ProxyPorts => {
    const [inbound, outbound, tunnel, health, metrics, admin] = rest.slice(i * 6, i * 6 + 6) as number[];
    return {
      inbound: inbound!,
      outbound: outbound!,
      tunnel: tunnel!,
      health: health!,
      metrics: metrics!,
      admin: admin!,
    };
  };
  const a = ports(0);
  // B's ports reuse the remaining 6 (15 = 3 + 2 × 6).
  const b = ports(1);
  procs.start('backend', process.execPath, [
    '-e',
    `require('http').createServer((q,s)=>s.end('hello world\\n')).listen(${backendPort},'127.0.0.1')`,
  ]);
  const ca = await startMeshCa(procs, dir, caPort, webhookPort);
  const root = ca.root;
  writeDiscovery(join(dir, 'discovery.json'), backendPort, b.tunnel);
  const proxyB = await startProxy('proxy-b', b, {
    ...ca.env('b'),
    [ENV.inboundTarget]: `127.0.0.1:${backendPort}`,
  });
  const plainA = await startProxy('proxy-a-plain', a, { [ENV.outboundTarget]: `127.0.0.1:${b.inbound}` });
  const url = `http://127.0.0.1:${a.outbound}/`;
  await hey(url); // warm-up
  const plain = await heyWithCpu(url, { a: plainA.pid, b: proxyB.pid });
  await procs.stop(plainA);
  const mtlsA = await startProxy('proxy-a-mtls', a, {
    ...ca.env('a'),
    [ENV.outboundTarget]: MESH_SERVICE,
    [ENV.discoveryFile]: join(dir, 'discovery.json'),
  });
  await hey(url);
  const before = await httpGet(`http://127.0.0.1:${b.metrics}/metrics`);
  const mtls = await heyWithCpu(url, { a: mtlsA.pid, b: proxyB.pid });
  const after = await httpGet(`http://127.0.0.1:${b.metrics}/metrics`);
  const tunnels =
    metric(after.body, 'remora_tcp_connections_opened_total', 'direction="inbound"') -
    metric(before.body, 'remora_tcp_connections_opened_total', 'direction="inbound"');
  await procs.stop(mtlsA);
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const leaf = issue(root, {
    subject: {},
    validityDays: 1,
    uris: [`spiffe://${TRUST_DOMAIN}/ns/bench/sa/a`],
    extKeyUsage: ['clientAuth'],
    publicKey,
  });
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  const full = await handshakes(b.tunnel, backendPort, keyPem, leaf.certPem, root.certPem, false);
  const resumedRun = await handshakes(b.tunnel, backendPort, keyPem, leaf.certPem, root.certPem, true);
  void proxyB;
  const report = {
    when: new Date().toISOString(),
    node: process.version,
    seconds,
    rate: 1000,
    plaintext: plain,
    mtls,
    /** tunnels B accepted during the measured mTLS run (keep-alive reuse: ideally none new) */
    tunnelConnectionsForMtlsRun: tunnels,
    /** tunnels B accepted in all, warm-up included */
    tunnelConnectionsTotal: metric(after.body, 'remora_tcp_connections_opened_total', 'direction="inbound"'),
    newMtlsConnectionsPerSecond: full.perSecond,
    /** the same with session resumption (what tunnel/connect.ts does now), and how many resumed */
    newResumedMtlsConnectionsPerSecond: resumedRun.perSecond,
    resumedHandshakes: resumedRun.resumed,
  };
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
}

main()
  .catch((err: unknown) => {
    process.stderr.write(`bench/mtls: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  })
  .finally(async () => {
    await procs.stopAll();
    stopSignals();
    rmSync(dir, { recursive: true, force: true });
  });
