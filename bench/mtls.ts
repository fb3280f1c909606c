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
 *
 * A/B mode (issue 11, the mesh hop): `--trees=/tmp/before,/path/after [--rounds=3]` runs the
 * plaintext hop and the mTLS hop with both proxies from each built tree in turn, alternating
 * (A B A B ...) in one run, each figure with the load average beside it. `--prof=DIR` starts
 * the proxies with `--perf-basic-prof` and records each engine with `perf record` during the
 * measured seconds (DIR/<label>-<hop>-<side>-<round>.data; `perf report -i FILE --sort dso,sym`;
 * V8 leaves isolate-*-v8.log files in the current directory and /tmp/perf-<pid>.map files);
 * `--prof-g` records call graphs as well.
 * `--orig-proto[=ROUNDS]` (issue 12 item 5) instead compares, through the same proxy B, two
 * proxy A running side by side: `tunnel` (HTTP/1.1 in pooled tunnels, the default) and `h2`
 * (REMORA_MESH_HTTP1_OVER_H2=on: HTTP/1.1 requests as streams of one HTTP/2 connection in one
 * tunnel), ALTERNATING (tunnel h2 tunnel h2 ...) under three loads at 1000 req/s: hey -c 10,
 * hey -c 50, and hey -c 10 with a new client connection per request (churn); each run with its
 * p50/p99, CPU µs per request per proxy, the tunnels B accepted and the load average.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import type { KeyObject } from 'node:crypto';
import { ENV, TUNNEL_ALPN } from '@remora/proxy/contract';
import { Processes, cleanupOnSignals, descendants, freePorts, httpGet, treeMemory } from './procs.js';
import type { Started } from './procs.js';
import { MESH_SERVICE, TRUST_DOMAIN, startMeshCa, startMeshProxy, writeDiscovery } from './mesh-proxy.js';
import type { ProxyPorts, Root } from './mesh-proxy.js';
import { mean, parseHeyCsv, percentile } from './tools.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

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

const argv = process.argv.join(' ');
const seconds = Number(/--seconds=(\d+)/.exec(argv)?.[1] ?? 10);
const trees = /--trees=(\S+)/.exec(argv)?.[1]?.split(',');
const rounds = Number(/--rounds=(\d+)/.exec(argv)?.[1] ?? 3);
const profDir = /--prof=(\S+)/.exec(argv)?.[1];
/** `--prof-g`: perf records call graphs too (`perf record -g`). */
const profCallGraph = /--prof-g\b/.test(argv);
const procs = new Processes((m) => process.stderr.write(`# ${m}\n`));
const dir = mkdtempSync(join(tmpdir(), 'remora-bench-mtls-'));
const stopSignals = cleanupOnSignals(async () => {
  await procs.stopAll();
  rmSync(dir, { recursive: true, force: true });
});

const startProxy = (
  name: string,
  p: ProxyPorts,
  env: Record<string, string>,
  tree = ROOT,
  prof?: string,
): Promise<Started> =>
  startMeshProxy(procs, join(tree, 'proxy/dist/bin/remora-proxy.js'), dir, name, p, {
    ...env,
    ...(prof !== undefined ? { NODE_OPTIONS: '--perf-basic-prof' } : {}),
  });

/** The 1-minute load average now. */
function load(): number {
  return Number(readFileSync('/proc/loadavg', 'latin1').split(' ')[0]);
}

/** hey's load: `c` clients at `q` req/s each; `churn`: a new connection per request. */
interface Load {
  readonly c: number;
  readonly q: number;
  readonly churn?: boolean;
}

async function hey(
  url: string,
  load: Load = { c: 10, q: 100 },
): Promise<{ p50: number; p99: number; mean: number; requests: number; errors: number }> {
  const args = ['-z', `${seconds}s`, '-q', String(load.q), '-c', String(load.c), '-o', 'csv'];
  if (load.churn === true) args.push('-disable-keepalive');
  const r = await procs.run('hey', 'hey', [...args, url]);
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
  load?: Load,
): Promise<Awaited<ReturnType<typeof hey>> & { cpuUsPerRequest: Record<string, number> }> {
  const t0 = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, treeCpuUs(p)]));
  const r = await hey(url, load);
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

/** One A/B round for one tree: plaintext hop, then mTLS hop, both proxies from `tree`. */
async function abRound(
  tree: string,
  label: string,
  round: number,
  a: ProxyPorts,
  b: ProxyPorts,
  backendPort: number,
  caEnv: (side: 'a' | 'b') => Record<string, string>,
): Promise<Record<string, unknown>> {
  const prof = (side: string): string | undefined =>
    profDir === undefined ? undefined : join(profDir, `${label}-${side}-${round}`);
  /** perf record on each proxy's engine (its supervisor's children) while `run` runs. */
  const recorded = async <T>(
    hop: string,
    pids: Record<string, number>,
    run: () => Promise<T>,
  ): Promise<T> => {
    if (profDir === undefined) return run();
    mkdirSync(profDir, { recursive: true });
    const perfs = Object.entries(pids).map(([side, pid]) =>
      procs.start(`perf-${side}`, 'perf', [
        'record',
        ...(profCallGraph ? ['-g'] : []),
        '-F',
        '2999',
        '-o',
        join(profDir, `${label}-${hop}-${side}-${round}.data`),
        '-p',
        descendants(pid).join(','),
      ]),
    );
    try {
      return await run();
    } finally {
      for (const p of perfs) process.kill(p.pid, 'SIGINT');
      for (const p of perfs) await p.exited;
    }
  };
  const url = `http://127.0.0.1:${a.outbound}/`;
  const proxyB = await startProxy(
    'proxy-b',
    b,
    { ...caEnv('b'), [ENV.inboundTarget]: `127.0.0.1:${backendPort}` },
    tree,
    prof('b'),
  );
  /** Warm-ups (wrk, then hey), then the measured run with A = `proxyA`, and the load average at its start. */
  const measure = async (hop: string, proxyA: Started) => {
    // wrk first: the engines' JIT settles after ~15,000 requests (docs/performance.md,
    // "Counting instructions"), more than the fixed-rate warm-up sends.
    const w = await procs.run('wrk', 'wrk', ['-t1', '-c32', '-d3s', url]);
    if (w.code !== 0) throw new Error(`wrk: ${w.stderr}`);
    await hey(url);
    const at = load();
    const pids = { a: proxyA.pid, b: proxyB.pid };
    return { ...(await recorded(hop, pids, () => heyWithCpu(url, pids))), load: at };
  };
  const plainA = await startProxy(
    'proxy-a-plain',
    a,
    { [ENV.outboundTarget]: `127.0.0.1:${b.inbound}` },
    tree,
    prof('a'),
  );
  const plain = await measure('plain', plainA);
  await procs.stop(plainA);
  const mtlsA = await startProxy(
    'proxy-a-mtls',
    a,
    {
      ...caEnv('a'),
      [ENV.outboundTarget]: MESH_SERVICE,
      [ENV.discoveryFile]: join(dir, 'discovery.json'),
    },
    tree,
    prof('a'),
  );
  const mtls = await measure('mtls', mtlsA);
  await procs.stop(mtlsA);
  await procs.stop(proxyB);
  const row = { label, round, plaintext: plain, mtls };
  process.stderr.write(
    `# ${label} round ${round}: plain ${plain.p50}/${plain.p99} ms A ${plain.cpuUsPerRequest.a} B ${plain.cpuUsPerRequest.b} µs (load ${plain.load}); ` +
      `mtls ${mtls.p50}/${mtls.p99} ms A ${mtls.cpuUsPerRequest.a} B ${mtls.cpuUsPerRequest.b} µs (load ${mtls.load})\n`,
  );
  return row;
}

const origProtoRounds = /--orig-proto(?:=(\d+))?(\s|$)/.exec(process.argv.join(' '));

/**
 * The `--orig-proto` comparison: proxies A `tunnel` and `h2` (ports `pt`, `ph`) in front of B,
 * alternating under each load; see the header.
 */
async function compareOrigProto(
  pt: ProxyPorts,
  ph: ProxyPorts,
  b: ProxyPorts,
  bPid: number,
  meshA: Record<string, string>,
  rounds: number,
  backendPort: number,
): Promise<unknown> {
  const env = {
    ...meshA,
    [ENV.outboundTarget]: MESH_SERVICE,
    [ENV.discoveryFile]: join(dir, 'discovery.json'),
  };
  const variants = {
    tunnel: {
      ports: pt,
      proc: await startProxy('proxy-a-tunnel', pt, { ...env, [ENV.meshHttp1OverH2]: 'off' }),
    },
    h2: { ports: ph, proc: await startProxy('proxy-a-h2', ph, { ...env, [ENV.meshHttp1OverH2]: 'on' }) },
  };
  const loads: Record<string, Load> = {
    'c10 keep-alive': { c: 10, q: 100 },
    'c50 keep-alive': { c: 50, q: 20 },
    'c10 churn (new connection per request)': { c: 10, q: 100, churn: true },
  };
  const inboundConnections = async (): Promise<number> =>
    metric(
      (await httpGet(`http://127.0.0.1:${b.metrics}/metrics`)).body,
      'remora_tcp_connections_opened_total',
      'direction="inbound"',
    );
  const runs: unknown[] = [];
  for (const v of Object.values(variants)) await hey(`http://127.0.0.1:${v.ports.outbound}/`); // warm-up
  for (let round = 1; round <= rounds; round++) {
    for (const [loadName, load] of Object.entries(loads)) {
      // The baseline in the same alternation: hey straight to the backend (what "added" is against).
      const direct = await hey(`http://127.0.0.1:${backendPort}/`, load);
      runs.push({ round, load: loadName, variant: 'direct', ...direct });
      process.stderr.write(`# ${round} ${loadName} direct: p50 ${direct.p50} p99 ${direct.p99} ms\n`);
      for (const [name, v] of Object.entries(variants)) {
        const before = await inboundConnections();
        const r = await heyWithCpu(`http://127.0.0.1:${v.ports.outbound}/`, { a: v.proc.pid, b: bPid }, load);
        const tunnelsAccepted = (await inboundConnections()) - before;
        const loadavg = readFileSync('/proc/loadavg', 'latin1').split(' ').slice(0, 3).join(' ');
        // A's resident memory after the run (its tunnels or its one session; B is shared).
        const rssKbA = treeMemory(v.proc.pid)?.rssKb;
        runs.push({ round, load: loadName, variant: name, ...r, tunnelsAccepted, rssKbA, loadavg });
        process.stderr.write(
          `# ${round} ${loadName} ${name}: p50 ${r.p50} p99 ${r.p99} ms, cpu/req a ${r.cpuUsPerRequest.a} b ${r.cpuUsPerRequest.b} µs, tunnels ${tunnelsAccepted}, rss a ${rssKbA} kB, errors ${r.errors}, load ${loadavg}\n`,
        );
      }
    }
  }
  for (const v of Object.values(variants)) await procs.stop(v.proc);
  return { when: new Date().toISOString(), node: process.version, seconds, rate: 1000, rounds, runs };
}

async function main(): Promise<void> {
  const all = await freePorts(27);
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
  // B: the next 6.
  const b = ports(1);
  // --orig-proto: two proxies A side by side (the remaining 12 ports: 27 = 3 + 4 × 6).
  const aTunnel = ports(2);
  const aH2 = ports(3);
  procs.start('backend', process.execPath, [
    '-e',
    `require('http').createServer((q,s)=>s.end('hello world\\n')).listen(${backendPort},'127.0.0.1')`,
  ]);
  const ca = await startMeshCa(procs, dir, caPort, webhookPort);
  const root = ca.root;
  writeDiscovery(join(dir, 'discovery.json'), backendPort, b.tunnel);
  if (trees !== undefined) {
    const rows: Record<string, unknown>[] = [];
    for (let round = 1; round <= rounds; round++)
      for (const [i, tree] of trees.entries())
        rows.push(
          await abRound(tree, `${'ABCDEFGH'[i] ?? i}-${basename(tree)}`, round, a, b, backendPort, (side) =>
            ca.env(side),
          ),
        );
    process.stdout.write(`${JSON.stringify({ when: new Date().toISOString(), seconds, rows }, null, 2)}\n`);
    return;
  }
  const proxyB = await startProxy('proxy-b', b, {
    ...ca.env('b'),
    [ENV.inboundTarget]: `127.0.0.1:${backendPort}`,
  });
  if (origProtoRounds !== null) {
    const rounds = Number(origProtoRounds[1] ?? 2);
    const report = await compareOrigProto(aTunnel, aH2, b, proxyB.pid, ca.env('a'), rounds, backendPort);
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return;
  }
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
