/**
 * What policy costs a real proxy (issue 7, "the throughput change with all layers on"):
 * throughput, p99 and CPU per request through remora-proxy inbound → nginx with
 *   none        no policy (the hot path without any policy layer)
 *   authz-100   authorization with 100 rules, none of which matches the benchmark's requests, so
 *               every rule is evaluated and the default (allow) decides: the worst case
 *   all-layers  the same plus a rate limit that never refuses, a route with request and idle
 *               timeouts and retries (nothing fails, so no retry is sent: the bookkeeping only)
 * Each proxy reads its document from REMORA_POLICY_FILE. Rounds alternate between the variants.
 *
 *   npm run build && npx tsc -p bench && node bench/dist/policy-throughput.js [--quick]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ENV } from '@remora/proxy/contract';
import { compareVariants, log } from './variants.js';

const quick = process.argv.includes('--quick');
const TD = 'spiffe://cluster.local';

/** Rule i: a spread of kinds; none matches a plaintext GET / from 127.0.0.1. */
function rule(i: number): string {
  const name = `r${i}`;
  switch (i % 5) {
    case 0:
      return `{ name: ${name}, action: deny, source: { identities: ["${TD}/ns/ns${i}/sa/sa${i}"] } }`;
    case 1:
      return `{ name: ${name}, action: deny, source: { cidrs: ["10.${i}.0.0/16", "fd00:${i}::/32"] } }`;
    case 2:
      return `{ name: ${name}, action: deny, request: { methods: [DELETE], paths: [{ prefix: /admin/${i}/ }] } }`;
    case 3:
      return `{ name: ${name}, action: deny, request: { paths: [{ pattern: /v${i}/*/items/** }] } }`;
    default:
      return `{ name: ${name}, action: deny, request: { headers: [{ name: x-tenant, exact: t${i} }] } }`;
  }
}

function document(layers: 'authz' | 'all'): string {
  const rules = Array.from({ length: 100 }, (_, i) => `              - ${rule(i)}`).join('\n');
  const more =
    layers === 'all'
      ? `
        rateLimit: { requestsPerSecond: 1000000, burst: 1000000, per: identity }
        routes:
          - timeoutMs: 30000
            idleTimeoutMs: 30000
            retries: { attempts: 2, budgetPercent: 20 }`
      : '';
  return `apiVersion: remora.dev/v1
kind: PolicySet
policies:
  - name: bench
    inbound:
      - authorization:
          default: allow
          rules:
${rules}${more}
`;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'remora-bench-policy-'));
  try {
    const authz = join(dir, 'authz.yaml');
    const all = join(dir, 'all.yaml');
    writeFileSync(authz, document('authz'));
    writeFileSync(all, document('all'));
    const table = await compareVariants({
      what: 'policy',
      variants: [
        { name: 'none', env: {} },
        { name: 'authz-100', env: { [ENV.policyFile]: authz } },
        { name: 'all-layers', env: { [ENV.policyFile]: all } },
      ],
      rounds: quick ? 1 : 3,
      seconds: quick ? 3 : 10,
      warmupSeconds: quick ? 1 : 3,
      connections: 16,
      note: '100 rules, none matching (every rule evaluated); plaintext caller',
    });
    process.stdout.write(table);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  log(`bench/policy-throughput: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});
