/**
 * Cost of one authorization decision (issue 7 §"what it must show"): the compiled policy of one
 * inbound port with 1, 10 and 100 rules of a realistic mix (exact identities, namespaces,
 * identity prefixes, IPv4/IPv6 CIDRs, methods, path prefixes and patterns, headers; some deny,
 * some audit), asked the way the authz layer asks it (`inbound(port)` then `authorizeRequest`).
 *
 *   worst:  an mTLS caller whose namespace satisfies many rules' source, but whose request fails
 *           every rule late (path, method or header): every rule is evaluated, the default decides
 *   first:  the same caller matching the first allow rule (best case of a busy policy)
 *   plain:  a plaintext caller (no identity, mapped IPv4 address) that matches nothing
 *
 * Pure CPU on one thread, no sockets: the throughput cost with every layer on is measured by the
 * lead through a real engine (docs/performance.md). CPU time per decision (process.cpuUsage, so
 * a busy shared machine does not inflate it), median of 7 runs of `--iterations` each.
 *
 * Run: npm run build && npx tsc -p bench && node bench/dist/policy.js [--iterations=200000]
 */
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CompiledPolicy, PolicyDocument, WorkloadRef } from '@remora/proxy/policy';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const ITERATIONS = Number(/--iterations=(\d+)/.exec(process.argv.join(' '))?.[1] ?? 200_000);
const RUNS = 7;
const PORT = 8080;

const { parsePolicyDocument, compilePolicy } = (await import(join(ROOT, 'proxy/dist/policy/index.js'))) as {
  parsePolicyDocument: (text: string) => PolicyDocument;
  compilePolicy: (doc: PolicyDocument, self: WorkloadRef, version: string) => CompiledPolicy;
};

const TD = 'spiffe://cluster.local';

/** Rule i of the mix, as YAML flow. Kinds cycle so every count has a spread of them. */
function rule(i: number): string {
  switch (i % 8) {
    case 0:
      return `{ name: r${i}, action: allow, source: { identities: ["${TD}/ns/web/sa/frontend", "${TD}/ns/web/sa/bff-${i}"] }, request: { methods: [POST], paths: [{ prefix: /api/v${i}/ }] } }`;
    case 1:
      return `{ name: r${i}, action: allow, source: { namespaces: [web, ns-${i}] }, request: { paths: [{ prefix: /api/v${i}/ }, { pattern: /orders/*/items/${i} }] } }`;
    case 2:
      return `{ name: r${i}, action: allow, source: { identityPrefixes: ["${TD}/ns/web/"] }, request: { methods: [PUT, PATCH], paths: [{ pattern: /carts/*/lines/** }] } }`;
    case 3:
      return `{ name: r${i}, action: allow, source: { cidrs: [10.${i}.0.0/16, "fd00:${i.toString(16)}::/32", 192.168.${i}.0/24] }, request: { paths: [{ exact: /healthz/${i} }] } }`;
    case 4:
      return `{ name: r${i}, action: allow, source: { namespaces: [web] }, request: { methods: [GET], headers: [{ name: x-tenant, exact: tenant-${i} }, { name: authorization, prefix: "Bearer " }] } }`;
    case 5:
      return `{ name: r${i}, action: deny, source: { namespaces: [quarantine-${i}] } }`;
    case 6:
      return `{ name: r${i}, action: audit, source: { namespaces: [web] }, request: { paths: [{ prefix: /debug/${i}/ }] } }`;
    default:
      return `{ name: r${i}, action: deny, source: { cidrs: [203.0.${i % 256}.0/24] }, request: { headers: [{ name: x-debug-${i}, present: true }] } }`;
  }
}

function compiled(rules: number): CompiledPolicy {
  const list = Array.from({ length: rules }, (_, i) => `            - ${rule(i)}`).join('\n');
  const text = `apiVersion: remora.dev/v1
kind: PolicySet
policies:
  - name: bench
    inbound:
      - ports: [${PORT}]
        authorization:
          default: deny
          rules:
${list}
`;
  return compilePolicy(parsePolicyDocument(text), { namespace: 'shop', workload: 'orders' }, 'bench');
}

// A browser-ish request head as Node hands it over (rawHeaders).
const HEADERS = [
  'Host',
  'orders.shop.svc.cluster.local:8080',
  'User-Agent',
  'Mozilla/5.0 (X11; Linux x86_64) bench',
  'Accept',
  'application/json',
  'Accept-Encoding',
  'gzip, deflate, br',
  'Accept-Language',
  'en-US,en;q=0.9',
  'Authorization',
  'Bearer eyJhbGciOiJIUzI1NiJ9.e30.x',
  'X-Tenant',
  'tenant-none',
  'traceparent',
  '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
  'X-Request-Id',
  '5f1a0c1e-1b3c-4d2b-9b1a-0c1e5f1a0c1e',
  'Connection',
  'keep-alive',
];

interface Case {
  readonly name: string;
  readonly src: { identity: string | undefined; address: string };
  readonly req: { method: string; path: string; rawHeaders: readonly string[] };
}

const CASES: readonly Case[] = [
  {
    name: 'worst',
    src: { identity: `${TD}/ns/web/sa/frontend`, address: '10.244.7.19' },
    req: { method: 'GET', path: '/api/v999/orders/123/items?expand=1', rawHeaders: HEADERS },
  },
  {
    name: 'first',
    src: { identity: `${TD}/ns/web/sa/frontend`, address: '10.244.7.19' },
    req: { method: 'POST', path: '/api/v0/orders', rawHeaders: HEADERS },
  },
  {
    name: 'plain',
    src: { identity: undefined, address: '::ffff:172.17.0.5' },
    req: { method: 'GET', path: '/api/v999/orders/123/items?expand=1', rawHeaders: HEADERS },
  },
];

/**
 * CPU time of this process (user + system), not wall time: the machine is shared, and a
 * decision is pure CPU, so what it costs is the CPU it takes, whatever else runs.
 */
function cpuMicros(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

function measure(p: CompiledPolicy, c: Case): { us: number; action: string } {
  let action = '';
  const runs: number[] = [];
  for (let r = 0; r < RUNS + 1; r++) {
    const t0 = cpuMicros();
    for (let i = 0; i < ITERATIONS; i++) {
      const d = p.inbound(PORT)?.authorizeRequest(c.src, c.req);
      if (i === 0) action = d === undefined ? 'unchecked' : `${d.action} ${d.reason}`;
    }
    const us = cpuMicros() - t0;
    if (r > 0) runs.push(us / ITERATIONS); // run 0 warms the JIT up
  }
  runs.sort((a, b) => a - b);
  return { us: runs[Math.floor(runs.length / 2)] as number, action };
}

console.log(
  `# policy decision cost, ${ITERATIONS} decisions per run, median of ${RUNS} runs, Node ${process.version}, ` +
    `load average before: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
);
console.log('rules  case   µs/decision  decisions/s  decided by');
for (const n of [1, 10, 100]) {
  const p = compiled(n);
  for (const c of CASES) {
    const { us, action } = measure(p, c);
    console.log(
      `${String(n).padStart(5)}  ${c.name.padEnd(5)}  ${us.toFixed(3).padStart(11)}  ${Math.round(1e6 / us)
        .toLocaleString('en-US')
        .padStart(11)}  ${action}`,
    );
  }
}
