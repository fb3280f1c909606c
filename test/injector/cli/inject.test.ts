/**
 * `remora inject`: in-process (runCli with an in-memory io) for the many-file checks, and through
 * the compiled binary for exit codes and streams.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { runCli } from '../../../injector/src/cli/main.js';
import type { CliIo } from '../../../injector/src/cli/main.js';
import { IN_CI } from '../../helpers/env.js';
import { validateWorkload } from './models.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = join(ROOT, 'injector/dist/bin/remora.js');
const CORPUS = resolve(ROOT, '../shared/corpus');

function run(
  argv: string[],
  files: Record<string, string> = {},
  stdin = '',
): { code: number; out: string; err: string } {
  let out = '';
  let err = '';
  const io: CliIo = {
    readFile: (p) => {
      if (p in files) return files[p] as string;
      return readFileSync(p, 'utf8');
    },
    readStdin: () => stdin,
    stdout: (t) => (out += t),
    stderr: (t) => (err += t),
  };
  // inject and check --mesh-config are offline: runCli answers them synchronously.
  return { code: runCli(argv, io) as number, out, err };
}

function docs(text: string): unknown[] {
  return parseAllDocuments(text)
    .map((d) => d.toJS() as unknown)
    .filter((d) => d !== null && d !== undefined);
}

const DEPLOY = `apiVersion: apps/v1
kind: Deployment
metadata: { name: web, namespace: shop }
spec:
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web } }
    spec:
      containers:
        - name: web
          image: nginx
          readinessProbe: { httpGet: { port: 80, path: /ready } }
`;

describe('remora inject', () => {
  it('injects the pod template of every workload kind and passes others through', () => {
    const kinds: [string, string, string][] = [
      ['v1', 'Pod', ''],
      ['apps/v1', 'Deployment', 'template'],
      ['apps/v1', 'StatefulSet', 'template'],
      ['apps/v1', 'DaemonSet', 'template'],
      ['apps/v1', 'ReplicaSet', 'template'],
      ['v1', 'ReplicationController', 'template'],
      ['batch/v1', 'Job', 'template'],
      ['batch/v1', 'CronJob', 'jobTemplate'],
    ];
    const podSpec = { containers: [{ name: 'app', image: 'app' }] };
    const manifests = kinds.map(([apiVersion, kind, where]) => {
      const template = { metadata: { labels: { app: 'x' } }, spec: podSpec };
      const spec =
        where === ''
          ? podSpec
          : where === 'jobTemplate'
            ? { schedule: '* * * * *', jobTemplate: { spec: { template } } }
            : kind === 'ReplicationController'
              ? { selector: { app: 'x' }, template }
              : { selector: { matchLabels: { app: 'x' } }, serviceName: 'x', template };
      return JSON.stringify({ apiVersion, kind, metadata: { name: kind.toLowerCase() }, spec });
    });
    manifests.push(
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'svc' },
        spec: { ports: [{ port: 80 }] },
      }),
    );
    const r = run(['inject', '-f', 'all.yaml'], { 'all.yaml': manifests.join('\n---\n') });
    expect(r.code).toBe(0);
    expect(r.err.trim().split('\n')).toEqual([
      ...kinds.map(([, k]) => `injected ${k}/${k.toLowerCase()}`),
      'skipped Service/svc: unsupported_kind',
    ]);
    const out = docs(r.out) as Record<string, unknown>[];
    expect(out).toHaveLength(kinds.length + 1);
    for (const o of out.slice(0, -1)) {
      validateWorkload(o);
      expect(JSON.stringify(o)).toContain('"name":"remora-proxy"');
    }
    expect(out[out.length - 1]).toEqual(JSON.parse(manifests[manifests.length - 1]!));
  });

  it('a template without labels gets its workload name from the object (regression: none before)', () => {
    const bare = DEPLOY.replace('    metadata: { labels: { app: web } }\n', '').replace(
      'name: web, namespace',
      'name: orders, namespace',
    );
    const r = run(['inject', '-f', 'bare.yaml'], { 'bare.yaml': bare });
    expect(r.code).toBe(0);
    const [d] = docs(r.out) as {
      spec: {
        template: {
          metadata?: Record<string, unknown>;
          spec: {
            containers: { name: string; env?: { name: string; value?: string }[] }[];
            initContainers?: { name: string; env?: { name: string; value?: string }[] }[];
          };
        };
      };
    }[];
    const t = d?.spec.template;
    const proxy = [...(t?.spec.initContainers ?? []), ...(t?.spec.containers ?? [])].find(
      (c) => c.name === 'remora-proxy',
    );
    expect(proxy?.env?.find((e) => e.name === 'REMORA_WORKLOAD')?.value).toBe('orders');
    // The name was only lent for the decision: the template itself stays nameless.
    expect(t?.metadata?.generateName).toBeUndefined();
    // And a second run changes nothing.
    expect(run(['inject', '-f', 'out.yaml'], { 'out.yaml': r.out }).out).toBe(r.out);
  });

  it('handles kind: List, reads stdin, and a second run changes nothing', () => {
    const list = `apiVersion: v1\nkind: List\nitems:\n${DEPLOY.replace(/^/gm, '  ').replace(/^ {2}apiVersion/, '- apiVersion')}`;
    const first = run(['inject', '-f', '-'], {}, list);
    expect(first.code).toBe(0);
    expect(first.err).toBe('injected Deployment/web\n');
    const out = docs(first.out)[0] as { items: Record<string, unknown>[] };
    validateWorkload(out.items[0]!);
    const second = run(['inject', '-f', '-'], {}, first.out);
    expect(second.err).toBe('skipped Deployment/web: already_injected\n');
    expect(docs(second.out)).toEqual(docs(first.out));
  });

  it('rewrites probes in templates like the webhook does in pods', () => {
    const r = run(['inject', '-f', 'd.yaml'], { 'd.yaml': DEPLOY });
    const d = docs(r.out)[0] as {
      spec: { template: { spec: { containers: { readinessProbe: unknown }[] } } };
    };
    expect(d.spec.template.spec.containers[0]!.readinessProbe).toEqual({
      httpGet: { path: '/app-health/web/readyz', port: 15020, scheme: 'HTTP' },
    });
  });

  it('leaves skip cases untouched with their reason', () => {
    const text = `${DEPLOY}---\n${DEPLOY.replace('name: web,', 'name: hn,').replace('    spec:\n', '    spec:\n      hostNetwork: true\n')}---\n${DEPLOY.replace('name: web,', 'name: out,').replace('metadata: { labels: { app: web } }', 'metadata: { labels: { app: web }, annotations: { remora.dev/inject: "false" } }')}---\n${DEPLOY.replace('namespace: shop', 'namespace: kube-system')}`;
    const r = run(['inject', '-f', 'x.yaml'], { 'x.yaml': text });
    expect(r.code).toBe(0);
    expect(r.err.trim().split('\n')).toEqual([
      'injected Deployment/web',
      'skipped Deployment/hn: host_network',
      'skipped Deployment/out: opted_out',
      'skipped Deployment/web: system_namespace',
    ]);
    const input = docs(text);
    const output = docs(r.out);
    expect(output.slice(1)).toEqual(input.slice(1));
  });

  const failures: [string, string, RegExp][] = [
    ['invalid YAML', `${DEPLOY}---\nkind: [`, /bad\.yaml: document 2: invalid YAML/],
    [
      'a bad annotation',
      `${DEPLOY}---\n${DEPLOY.replace('metadata: { labels: { app: web } }', 'metadata: { annotations: { remora.dev/drain-seconds: "soon" } }')}`,
      /bad\.yaml: document 2: Deployment\/web: remora\.dev\/drain-seconds: invalid value "soon"/,
    ],
    [
      'a workload without a pod spec',
      'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {}\n',
      /bad\.yaml: document 1: Deployment\/d: spec\.template must be an object/,
    ],
    ['a scalar document', 'just text\n', /document 1: a manifest document must be a map/],
    ['an object without kind', 'metadata: {name: x}\n', /document 1: object has no kind/],
    ['duplicate keys', 'kind: Pod\nkind: Pod\n', /document 1: invalid YAML/],
    [
      'an alias bomb',
      'a: &a [1,1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n',
      /document 1: invalid YAML/,
    ],
    [
      'a List with bad items',
      'apiVersion: v1\nkind: List\nitems: 3\n',
      /document 1: List\/<unnamed>: items must be a list/,
    ],
  ];
  it.each(failures)(
    'fails on %s with file, document and reason, printing nothing on stdout',
    (_name, text, message) => {
      const r = run(['inject', '-f', 'bad.yaml'], { 'bad.yaml': text });
      expect(r.code).toBe(1);
      expect(r.out).toBe('');
      expect(r.err).toMatch(message);
    },
  );

  it('usage errors exit 2', () => {
    expect(run(['inject']).code).toBe(2);
    expect(run(['inject', '-f']).code).toBe(2);
    expect(run(['inject', '--bogus']).code).toBe(2);
    expect(run(['frobnicate']).code).toBe(2);
    expect(run([]).code).toBe(2);
  });

  it('a missing file is an error naming it', () => {
    const r = run(['inject', '-f', '/nonexistent/x.yaml']);
    expect(r.code).toBe(1);
    expect(r.err).toContain('/nonexistent/x.yaml');
  });

  it('--mesh-config sets the defaults; a bad one is refused', () => {
    const r = run(['inject', '-f', 'd.yaml', '--mesh-config', 'm.yaml'], {
      'd.yaml': DEPLOY,
      'm.yaml': 'proxyImage: reg.local/p:2\nnativeSidecar: false\n',
    });
    expect(r.code).toBe(0);
    const d = docs(r.out)[0] as {
      spec: { template: { spec: { containers: { name: string; image: string }[] } } };
    };
    expect(d.spec.template.spec.containers[0]).toMatchObject({
      name: 'remora-proxy',
      image: 'reg.local/p:2',
    });
    const bad = run(['inject', '-f', 'd.yaml', '--mesh-config', 'm.yaml'], {
      'd.yaml': DEPLOY,
      'm.yaml': 'logLevel: loud\n',
    });
    expect(bad.code).toBe(1);
    expect(bad.out).toBe('');
    expect(bad.err).toContain('logLevel: "loud"');
  });
});

describe('remora version and check', () => {
  it('version --client prints the version', () => {
    expect(run(['version', '--client']).out).toBe('remora 0.1.0\n');
    expect(run(['--version']).out).toBe('remora 0.1.0\n');
  });
  it('check --mesh-config validates a mesh config offline', () => {
    const good = run(['check', '--mesh-config', 'm.yaml'], { 'm.yaml': 'drainSeconds: 3\n' });
    expect(good.code).toBe(0);
    expect(good.out).toContain('mesh config m.yaml: ok');
    const bad = run(['check', '--mesh-config', 'm.yaml'], { 'm.yaml': 'drainSecond: 3\n' });
    expect(bad.code).toBe(1);
    expect(bad.err).toContain('drainSecond: unknown field');
  });
});

describe('the compiled remora binary', () => {
  it('writes YAML on stdout, reports on stderr, exits 0; on a rejection exits 1 with nothing on stdout', () => {
    const ok = spawnSync(process.execPath, [BIN, 'inject', '-f', '-'], { input: DEPLOY, encoding: 'utf8' });
    expect(ok.status).toBe(0);
    expect(ok.stderr).toBe('injected Deployment/web\n');
    validateWorkload(docs(ok.stdout)[0] as Record<string, unknown>);
    const bad = spawnSync(process.execPath, [BIN, 'inject', '-f', '-'], {
      input: `${DEPLOY}---\n${DEPLOY.replace('metadata: { labels: { app: web } }', 'metadata: { annotations: { remora.dev/mtls-mode: tight } }')}`,
      encoding: 'utf8',
    });
    expect(bad.status).toBe(1);
    expect(bad.stdout).toBe('');
    expect(bad.stderr).toContain(
      '<stdin>: document 2: Deployment/web: remora.dev/mtls-mode: invalid value "tight"',
    );
    const v = spawnSync(process.execPath, [BIN, 'version', '--client'], { encoding: 'utf8' });
    expect(v.stdout).toBe('remora 0.1.0\n');
  });

  it('--help on every command exits 0 with its usage; an unknown flag or command exits 2 naming it', () => {
    const top = spawnSync(process.execPath, [BIN, '--help'], { encoding: 'utf8' });
    expect(top.status).toBe(0);
    for (const cmd of ['inject', 'check', 'version', 'upgrade', 'proxy-config']) {
      expect(top.stdout).toContain(`  ${cmd}`);
      const h = spawnSync(process.execPath, [BIN, cmd, '--help'], { encoding: 'utf8' });
      expect(h.status, cmd).toBe(0);
      expect(h.stdout).toContain(`usage: remora ${cmd}`);
      expect(h.stdout).toContain('Exit');
      const alt = spawnSync(process.execPath, [BIN, 'help', cmd], { encoding: 'utf8' });
      expect(alt.stdout).toBe(h.stdout);
    }
    const unknownFlag = spawnSync(process.execPath, [BIN, 'inject', '--nope'], { encoding: 'utf8' });
    expect(unknownFlag.status).toBe(2);
    expect(unknownFlag.stderr).toContain('unknown argument "--nope" for inject');
    const unknownCmd = spawnSync(process.execPath, [BIN, 'frobnicate'], { encoding: 'utf8' });
    expect(unknownCmd.status).toBe(2);
    expect(unknownCmd.stderr).toContain('unknown command "frobnicate"');
    const none = spawnSync(process.execPath, [BIN], { encoding: 'utf8' });
    expect(none.status).toBe(2);
    expect(none.stderr).toContain('usage: remora COMMAND');
  });
});

// Workloads from two established meshes' injector test data (read in place, never copied).
const EXPECTED: Record<string, string> = {
  'istio/hello-host-network.yaml': 'host_network',
  'istio/proxy-override.yaml': 'istio_sidecar_present',
  'linkerd/cli__inject_emojivoto_deployment_hostNetwork_true.input.yml': 'host_network',
  'linkerd/webhook__deployment-inject-disabled.yaml': 'opted_out_linkerd',
  'linkerd/webhook__deployment-with-injected-proxy.yaml': 'linkerd_proxy_present',
  // These three live in kube-public, a system namespace.
  'linkerd/webhook__pod-inject-empty.yaml': 'system_namespace',
  'linkerd/webhook__pod-inject-enabled.yaml': 'system_namespace',
  'linkerd/webhook__pod-nativesidecar-inject-enabled.yaml': 'system_namespace',
};

const corpusFiles = existsSync(CORPUS)
  ? ['istio', 'linkerd'].flatMap((m) =>
      existsSync(join(CORPUS, m))
        ? readdirSync(join(CORPUS, m))
            .filter((f) => /\.ya?ml$/.test(f))
            .map((f) => `${m}/${f}`)
        : [],
    )
  : [];

// The corpus lives beside the project (never copied into it); under CI it must be there.
if (IN_CI && corpusFiles.length === 0)
  throw new Error(`CI=true but the shared corpus is missing at ${CORPUS}`);

describe.skipIf(corpusFiles.length === 0)('the shared corpus (../shared/corpus)', () => {
  it.each(corpusFiles)('%s: valid output, idempotent, skips untouched with their reason', (name) => {
    const file = join(CORPUS, name);
    const first = run(['inject', '-f', file]);
    expect(first.code, first.err).toBe(0);
    const lines = first.err.trim().split('\n');
    const input = docs(readFileSync(file, 'utf8'));
    const output = docs(first.out);
    expect(output).toHaveLength(input.length);
    expect(lines).toHaveLength(input.length);
    const expected = EXPECTED[name];
    output.forEach((o, i) => {
      validateWorkload(o as { apiVersion?: string; kind?: string });
      const line = lines[i] as string;
      if (expected) {
        expect(line).toMatch(new RegExp(`^skipped \\S+: ${expected}$`));
        expect(o).toEqual(input[i]);
      } else {
        expect(line).toMatch(/^injected /);
        expect(JSON.stringify(o)).toContain('"name":"remora-proxy"');
      }
    });
    const second = run(['inject', '-f', 'again.yaml'], { 'again.yaml': first.out });
    expect(second.code).toBe(0);
    expect(docs(second.out)).toEqual(output);
    for (const l of second.err.trim().split('\n'))
      expect(l).toMatch(expected ? new RegExp(`: ${expected}$`) : /: already_injected$/);
  });
});
