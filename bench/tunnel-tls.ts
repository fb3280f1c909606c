/**
 * The tunnel's TLS stage alone (issue 11, the mesh hop): what a TLS socket costs per request
 * over a plain one, on the server side of a keep-alive connection, with the request and response
 * sizes of the mesh-hop bench (a ~100-byte request head, a ~150-byte response). A server child
 * process answers each message with one write; this process keeps `--conns` connections busy in
 * ping-pong for `--seconds`, and reads the child's CPU (utime + stime) over the run ÷ round
 * trips. Variants alternate (A B C ... A B C ...) in one run; the load average is printed beside
 * each figure.
 *
 *   plain          net.Socket both ends
 *   tls-<suite>    TLS 1.3, the server offering only <suite> (AES-256-GCM is OpenSSL's default)
 *   tls-hsto       TLS 1.3, default suites, the server with Node's handshakeTimeout (its cleared
 *                  timer is refreshed on every read and write afterwards)
 *   client-*       the other side measured: the child is the CLIENT (`--conns` connections in
 *                  ping-pong, as the tunnel client of an engine's upstream pool is), reading with
 *                  'data' (`client-data`, plain and TLS) or through `onread` into slab buffers
 *                  (`client-onread`, plain and TLS: proxy/src/http1/readslab.ts, as the upstream
 *                  client reads its own sockets and, since 7 December, its tunnels)
 *
 * Run: tsc -p bench && node bench/dist/tunnel-tls.js [--seconds=4] [--rounds=3] [--conns=10]
 *      [--variants=client-] (the variants whose names start with one of the comma-separated prefixes)
 */
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

const argv = process.argv.join(' ');
const seconds = Number(/--seconds=(\d+)/.exec(argv)?.[1] ?? 4);
const rounds = Number(/--rounds=(\d+)/.exec(argv)?.[1] ?? 3);
const conns = Number(/--conns=(\d+)/.exec(argv)?.[1] ?? 10);

const REQUEST = Buffer.from(
  'GET / HTTP/1.1\r\nhost: 127.0.0.250\r\nuser-agent: hey/0.0.1\r\naccept-encoding: gzip\r\n\r\n',
  'latin1',
);
const RESPONSE = Buffer.from(
  'HTTP/1.1 200 OK\r\ndate: Fri, 04 Dec 2026 19:00:00 GMT\r\nconnection: keep-alive\r\nkeep-alive: timeout=5\r\ncontent-length: 12\r\n\r\nhello world\n',
  'latin1',
);

interface Variant {
  readonly name: string;
  /** TLS 1.3 suite the server offers; undefined: plain TCP */
  readonly suite?: string;
  readonly handshakeTimeout?: number;
  /** the child is the client: reads with 'data', or with `onread` into slab buffers */
  readonly client?: 'data' | 'onread';
}
const VARIANTS: readonly Variant[] = [
  { name: 'plain' },
  { name: 'tls-aes256 (default)', suite: 'TLS_AES_256_GCM_SHA384', handshakeTimeout: 0 },
  { name: 'tls-aes128', suite: 'TLS_AES_128_GCM_SHA256', handshakeTimeout: 0 },
  { name: 'tls-chacha20', suite: 'TLS_CHACHA20_POLY1305_SHA256', handshakeTimeout: 0 },
  {
    name: 'tls-hsto (aes128, Node handshakeTimeout)',
    suite: 'TLS_AES_128_GCM_SHA256',
    handshakeTimeout: 10_000,
  },
  { name: 'client-data plain', client: 'data' },
  { name: 'client-onread plain', client: 'onread' },
  { name: 'client-data tls', client: 'data', suite: 'TLS_AES_256_GCM_SHA384' },
  { name: 'client-onread tls', client: 'onread', suite: 'TLS_AES_256_GCM_SHA384' },
];
const only = /--variants=(\S+)/.exec(argv)?.[1];
const RUN: readonly Variant[] =
  only === undefined ? VARIANTS : VARIANTS.filter((v) => only.split(',').some((p) => v.name.startsWith(p)));

const TICK_US = 1e6 / 100;
function cpuUs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) * TICK_US;
}
const load = (): string => readFileSync('/proc/loadavg', 'latin1').split(' ')[0] as string;

/** A server that answers each message with one write: plain, or TLS 1.3 with the variant's suite. */
function answering(v: Variant, key: string, cert: string, ca: string): net.Server {
  const onSocket = (s: net.Socket): void => {
    s.on('data', () => s.write(RESPONSE));
    s.on('error', () => s.destroy());
  };
  return v.suite === undefined
    ? net.createServer({ noDelay: true }, onSocket)
    : tls.createServer(
        {
          key,
          cert,
          ca,
          requestCert: true,
          minVersion: 'TLSv1.3',
          ciphers: v.suite,
          handshakeTimeout: v.handshakeTimeout ?? 0,
        },
        onSocket,
      );
}

/** The server child. */
function serve(v: Variant, key: string, cert: string, ca: string): void {
  const server = answering(v, key, cert, ca);
  server.listen(0, '127.0.0.1', () => process.send?.((server.address() as net.AddressInfo).port));
}

/**
 * The client child: `conns` connections to `port` in ping-pong (a request written on each
 * answer), reading with 'data' or through onread; it reports its round trips when asked.
 */
async function client(v: Variant, port: number, key: string, cert: string, ca: string): Promise<void> {
  const { SlabReader } = (await import(join(ROOT, 'proxy/dist/http1/readslab.js'))) as {
    SlabReader: new (sink: (c: Buffer) => void) => { onread: net.OnReadOpts };
  };
  let trips = 0;
  for (let i = 0; i < conns; i++) {
    const answered = (): void => {
      trips++;
      s.write(REQUEST);
    };
    const onread = v.client === 'onread' ? { onread: new SlabReader(answered).onread } : {};
    const s: net.Socket =
      v.suite === undefined
        ? net.connect({ port, host: '127.0.0.1', noDelay: true, ...onread })
        : tls.connect({
            port,
            host: '127.0.0.1',
            key,
            cert,
            ca,
            checkServerIdentity: () => undefined,
            ...onread,
          });
    s.setNoDelay(true);
    s.on(v.suite === undefined ? 'connect' : 'secureConnect', () => s.write(REQUEST));
    if (v.client === 'data') s.on('data', answered);
    s.on('error', () => s.destroy());
  }
  process.on('message', () => process.send?.(trips));
}

/** The child is the client; this process serves (one write per message) and counts nothing. */
async function runClientVariant(v: Variant, key: string, cert: string, ca: string): Promise<void> {
  const server = answering(v, key, cert, ca);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const child: ChildProcess = fork(
    fileURLToPath(import.meta.url),
    ['--client', JSON.stringify(v), String(port)],
    {
      env: { ...process.env, TUNNEL_TLS_KEY: key, TUNNEL_TLS_CERT: cert, TUNNEL_TLS_CA: ca },
    },
  );
  const trips = (): Promise<number> =>
    new Promise((r) => {
      child.once('message', (m) => r(m as number));
      child.send('trips');
    });
  await new Promise((r) => setTimeout(r, 1000)); // warm-up
  const n0 = await trips();
  const t0 = cpuUs(child.pid as number);
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const us = cpuUs(child.pid as number) - t0;
  const n = (await trips()) - n0;
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  server.close();
  process.stdout.write(
    `${v.name.padEnd(42)} ${(us / Math.max(1, n)).toFixed(2).padStart(7)} µs/request (client side)  ${String(n).padStart(7)} requests  load ${load()}\n`,
  );
}

async function runVariant(v: Variant, key: string, cert: string, ca: string): Promise<void> {
  if (v.client !== undefined) return runClientVariant(v, key, cert, ca);
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), ['--serve', JSON.stringify(v)], {
    env: { ...process.env, TUNNEL_TLS_KEY: key, TUNNEL_TLS_CERT: cert, TUNNEL_TLS_CA: ca },
  });
  const port = await new Promise<number>((r) => child.once('message', (m) => r(m as number)));
  let trips = 0;
  let measuring = false;
  const sockets: net.Socket[] = [];
  for (let i = 0; i < conns; i++) {
    const s =
      v.suite === undefined
        ? net.connect({ port, host: '127.0.0.1', noDelay: true })
        : tls.connect({ port, host: '127.0.0.1', key, cert, ca, checkServerIdentity: () => undefined });
    s.setNoDelay(true);
    s.on(v.suite === undefined ? 'connect' : 'secureConnect', () => s.write(REQUEST));
    s.on('data', () => {
      if (measuring) trips++;
      s.write(REQUEST);
    });
    sockets.push(s);
  }
  await new Promise((r) => setTimeout(r, 1000)); // warm-up: the JIT and the connections
  measuring = true;
  const t0 = cpuUs(child.pid as number);
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const us = cpuUs(child.pid as number) - t0;
  measuring = false;
  for (const s of sockets) s.destroy();
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  process.stdout.write(
    `${v.name.padEnd(42)} ${(us / Math.max(1, trips)).toFixed(2).padStart(7)} µs/request (server side)  ${String(trips).padStart(7)} requests  load ${load()}\n`,
  );
}

if (process.argv[2] === '--client') {
  await client(
    JSON.parse(process.argv[3] as string) as Variant,
    Number(process.argv[4]),
    process.env.TUNNEL_TLS_KEY as string,
    process.env.TUNNEL_TLS_CERT as string,
    process.env.TUNNEL_TLS_CA as string,
  );
} else if (process.argv[2] === '--serve') {
  serve(
    JSON.parse(process.argv[3] as string) as Variant,
    process.env.TUNNEL_TLS_KEY as string,
    process.env.TUNNEL_TLS_CERT as string,
    process.env.TUNNEL_TLS_CA as string,
  );
} else {
  // The injector's PKI from its build: the certificates the tunnel really uses (ECDSA P-256).
  const { newRoot } = (await import(join(ROOT, 'injector/dist/ca/root.js'))) as {
    newRoot: (td: string) => { certPem: string };
  };
  const { issue } = (await import(join(ROOT, 'injector/dist/pki/ca.js'))) as {
    issue: (
      ca: unknown,
      spec: { subject: object; validityDays: number; uris: string[]; extKeyUsage: string[] },
    ) => { certPem: string; keyPem: string };
  };
  const root = newRoot('bench.tls');
  const leaf = issue(root, {
    subject: {},
    validityDays: 1,
    uris: ['spiffe://bench.tls/ns/b/sa/b'],
    extKeyUsage: ['clientAuth', 'serverAuth'],
  });
  for (let r = 1; r <= rounds; r++) {
    process.stdout.write(`# round ${r}\n`);
    for (const v of RUN) await runVariant(v, leaf.keyPem, leaf.certPem, root.certPem);
  }
}
