import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_MESH_CONFIG, parseMeshConfig } from '../../../injector/src/config/mesh.js';
import { MeshConfigStore, watchMeshFile } from '../../../injector/src/config/watch.js';
import { MeshConfigError } from '../../../injector/src/errors.js';

function errorsOf(text: string): readonly string[] {
  try {
    parseMeshConfig(text);
  } catch (err) {
    if (err instanceof MeshConfigError) return err.errors;
    throw err;
  }
  return [];
}

function capture(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      cb();
    },
  });
  return { logger: pino({ level: 'info' }, stream) as Logger, lines };
}

describe('parseMeshConfig', () => {
  it('empty text gives the documented defaults', () => {
    expect(parseMeshConfig('')).toEqual({
      proxyImage: 'ghcr.io/remora-mesh/remora-proxy:0.1.0',
      imagePullPolicy: 'IfNotPresent',
      // 160Mi/320Mi since the sidecar's PSS was measured (docs/deploy.md, "Sidecar memory"); was 64Mi/256Mi.
      proxyResources: { requests: { cpu: '100m', memory: '160Mi' }, limits: { cpu: '1', memory: '320Mi' } },
      initResources: { requests: { cpu: '10m', memory: '16Mi' }, limits: { cpu: '100m', memory: '64Mi' } },
      defaultFailureMode: 'fail-closed',
      defaultMtlsMode: 'permissive',
      trustDomain: 'cluster.local',
      nativeSidecar: true,
      holdApp: true,
      drainSeconds: 25,
      logLevel: 'info',
      traceSampling: 0.01,
      caAddress: 'remora-injector.remora-system.svc:15012',
      discoveryAddress: 'remora-injector.remora-system.svc:15012',
      ipv6: true,
      allowedProxyImages: ['ghcr.io/remora-mesh/remora-proxy'],
      namespacePolicies: [],
    });
  });

  it('the proxy image allow-list defaults to the repository of proxyImage, which must be in a given list', () => {
    expect(
      parseMeshConfig('proxyImage: reg.local:5000/remora/proxy:2@sha256:' + 'a'.repeat(64))
        .allowedProxyImages,
    ).toEqual(['reg.local:5000/remora/proxy']);
    const c = parseMeshConfig(
      'proxyImage: reg.local/remora/proxy:2\nallowedProxyImages: [reg.local/remora/, mirror.io/remora-proxy]',
    );
    expect(c.allowedProxyImages).toEqual(['reg.local/remora/', 'mirror.io/remora-proxy']);
    expect(errorsOf('proxyImage: reg.local/p:1\nallowedProxyImages: [mirror.io/]')).toEqual([
      'proxyImage: "reg.local/p:1" is outside allowedProxyImages',
    ]);
  });

  it('reads namespacePolicies; "*" is every namespace', () => {
    const c = parseMeshConfig(`
namespacePolicies:
  - namespace: payments
    forbidAnnotations: [remora.dev/mtls-mode, remora.dev/exclude-inbound-ports]
  - namespace: "*"
    forbidAnnotations: [remora.dev/inject]
`);
    expect(c.namespacePolicies).toEqual([
      {
        namespace: 'payments',
        forbidAnnotations: ['remora.dev/mtls-mode', 'remora.dev/exclude-inbound-ports'],
      },
      { namespace: '*', forbidAnnotations: ['remora.dev/inject'] },
    ]);
    expect(Object.isFrozen(c.namespacePolicies[0]?.forbidAnnotations)).toBe(true);
  });

  it('reads every field; partial resources merge over the defaults; the result is frozen', () => {
    const c = parseMeshConfig(`
proxyImage: reg.local/p:1
imagePullPolicy: Always
proxyResources: { limits: { memory: 1Gi } }
initResources: { requests: { cpu: 5m } }
defaultFailureMode: degrade
defaultMtlsMode: strict
trustDomain: example.org
nativeSidecar: auto
holdApp: false
drainSeconds: 3
logLevel: debug
traceSampling: 1
caAddress: ca:1
discoveryAddress: "[fd00::1]:2"
otlpEndpoint: https://otel:4318
ipv6: false
`);
    expect(c).toMatchObject({
      proxyImage: 'reg.local/p:1',
      proxyResources: { requests: { cpu: '100m', memory: '160Mi' }, limits: { cpu: '1', memory: '1Gi' } },
      initResources: { requests: { cpu: '5m', memory: '16Mi' } },
      nativeSidecar: true,
      holdApp: false,
      drainSeconds: 3,
      traceSampling: 1,
      otlpEndpoint: 'https://otel:4318',
      ipv6: false,
    });
    expect(parseMeshConfig('nativeSidecar: false').nativeSidecar).toBe(false);
    expect(Object.isFrozen(c) && Object.isFrozen(c.proxyResources.limits)).toBe(true);
  });

  const bad: [string, string][] = [
    ['proxyImag: x', 'proxyImag: unknown field'],
    ['proxyImage: "Bad Image"', 'proxyImage: "Bad Image"'],
    ['imagePullPolicy: Sometimes', 'imagePullPolicy: "Sometimes"'],
    ['proxyResources: { requests: { cpu: lots } }', 'proxyResources.requests.cpu: "lots"'],
    ['proxyResources: { requests: { gpu: 1 } }', 'proxyResources.requests.gpu: unknown field'],
    ['initResources: { extra: {} }', 'initResources.extra: unknown field'],
    ['defaultFailureMode: never', 'defaultFailureMode: "never"'],
    ['defaultMtlsMode: off', 'defaultMtlsMode: "off"'],
    ['trustDomain: "Not Valid"', 'trustDomain: "Not Valid"'],
    ['nativeSidecar: maybe', 'nativeSidecar: "maybe"'],
    ['holdApp: 1', 'holdApp: "1"'],
    ['drainSeconds: -1', 'drainSeconds: "-1"'],
    ['logLevel: loud', 'logLevel: "loud"'],
    ['traceSampling: 2', 'traceSampling: "2"'],
    ['caAddress: nohost', 'caAddress: "nohost"'],
    ['otlpEndpoint: ftp://x', 'otlpEndpoint: "ftp://x"'],
    // The structural messages (list, mapping, required) are the schema module's since mesh.yaml
    // is declared with proxy/src/schema.ts, as the policy document is: `path: reason` everywhere
    // (they were `allowedProxyImages must be a non-empty list ...`, `the document must be a map of
    // fields`, `... must be a list of annotation names` when absent). The value messages stay.
    ['allowedProxyImages: []', 'allowedProxyImages: has 0 entries; at least 1 is required'],
    ['allowedProxyImages: ghcr.io/', 'allowedProxyImages: must be a list, got a string'],
    [
      'allowedProxyImages: ["reg.local/p:1"]',
      'allowedProxyImages[0]: "reg.local/p:1" must be an image repository',
    ],
    ['allowedProxyImages: ["Bad Repo/"]', 'allowedProxyImages[0]: "Bad Repo/"'],
    ['namespacePolicies: {}', 'namespacePolicies: must be a list, got a mapping'],
    [
      'namespacePolicies: [{namespace: Shop, forbidAnnotations: []}]',
      'namespacePolicies[0].namespace: "Shop"',
    ],
    [
      'namespacePolicies: [{namespace: a, forbidAnnotations: [remora.dev/nope]}]',
      '"remora.dev/nope" is not a Remora pod annotation',
    ],
    [
      'namespacePolicies: [{namespace: a, forbidAnnotations: [remora.dev/status]}]',
      '"remora.dev/status" is not a Remora pod annotation',
    ],
    ['namespacePolicies: [{namespace: a, forbid: []}]', 'namespacePolicies[0].forbid: unknown field'],
    ['namespacePolicies: [{namespace: a}]', 'namespacePolicies[0].forbidAnnotations: is required'],
    [
      'namespacePolicies: [{namespace: a, forbidAnnotations: remora.dev/inject}]',
      'namespacePolicies[0].forbidAnnotations: must be a list, got a string',
    ],
    ['- a list', 'document: must be a mapping, got a list'],
    ['a: [unclosed', 'not valid YAML'],
  ];
  it.each(bad)('rejects %j, naming the field', (text, message) => {
    const errors = errorsOf(text);
    expect(errors.length).toBeGreaterThan(0);
    expect(errors.join('\n')).toContain(message);
  });

  it('`field:` with no value keeps the default; comments only or `~` is the defaults', () => {
    expect(parseMeshConfig('logLevel:\ndrainSeconds: 3')).toMatchObject({
      logLevel: 'info',
      drainSeconds: 3,
    });
    expect(parseMeshConfig('# nothing set yet\n')).toBe(DEFAULT_MESH_CONFIG);
    expect(parseMeshConfig('~')).toBe(DEFAULT_MESH_CONFIG);
  });

  // Read with the policy document's reader since the schema module (proxy/src/schema.ts): the
  // same bounds on text a ConfigMap editor controls.
  it('refuses an alias bomb, a text above 1 MiB, duplicate keys and absurd nesting', () => {
    const bomb = [
      'a: &a [x, x, x, x, x, x, x, x]',
      'b: &b [*a, *a, *a, *a, *a, *a, *a, *a]',
      'c: [*b, *b, *b, *b, *b, *b, *b, *b]',
    ].join('\n');
    expect(errorsOf(bomb)).toEqual([
      'document: refused: Excessive alias count indicates a resource exhaustion attack (at most 50 alias expansions)',
    ]);
    const big = `# ${'x'.repeat(1024 * 1024)}\nlogLevel: debug`;
    expect(errorsOf(big)).toEqual([`document: ${Buffer.byteLength(big)} bytes; at most 1048576 are allowed`]);
    expect(errorsOf('logLevel: debug\nlogLevel: info')).toEqual([
      'document: not valid YAML or JSON: line 2, column 1: Map keys must be unique',
    ]);
    expect(errorsOf(`namespacePolicies: ${'['.repeat(100_000)}`)).toEqual([
      'document: nested deeper than 64 levels',
    ]);
  });

  it('__proto__ is just an unknown field (nothing is polluted)', () => {
    expect(errorsOf('__proto__: { holdApp: false }')).toEqual([
      expect.stringMatching(/^document\.__proto__: unknown field \(expected one of: proxyImage, /),
    ]);
    expect(({} as Record<string, unknown>).holdApp).toBeUndefined();
  });

  it('reports every error at once', () => {
    expect(errorsOf('logLevel: loud\ntraceSampling: 2\nfoo: 1')).toHaveLength(3);
  });
});

describe('MeshConfigStore', () => {
  it('a bad config keeps the last good one and logs why', () => {
    const { logger, lines } = capture();
    const store = new MeshConfigStore(logger);
    expect(store.current()).toBe(DEFAULT_MESH_CONFIG);
    expect(store.update('logLevel: debug', 'test')).toBe(true);
    expect(store.current().logLevel).toBe('debug');
    expect(store.update('logLevel: loud', 'test')).toBe(false);
    expect(store.current().logLevel).toBe('debug');
    const warn = lines.find((l) => l.event === 'mesh_config_rejected');
    expect(warn?.errors).toEqual([expect.stringContaining('logLevel: "loud"')]);
  });

  describe('watchMeshFile', () => {
    let dir = '';
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    it('reloads on change without restart; a bad edit keeps the last good config', async () => {
      dir = mkdtempSync(join(tmpdir(), 'remora-mesh-'));
      const file = join(dir, 'mesh.yaml');
      writeFileSync(file, 'drainSeconds: 7\n');
      const { logger, lines } = capture();
      const store = new MeshConfigStore(logger);
      const stop = watchMeshFile(file, store, 50);
      try {
        expect(store.current().drainSeconds).toBe(7);
        writeFileSync(file, 'drainSeconds: 9\n');
        await expect.poll(() => store.current().drainSeconds, { timeout: 5000 }).toBe(9);
        writeFileSync(file, 'drainSeconds: nine\n');
        await expect
          .poll(() => lines.some((l) => l.event === 'mesh_config_rejected'), { timeout: 5000 })
          .toBe(true);
        expect(store.current().drainSeconds).toBe(9);
        rmSync(file);
        await expect
          .poll(() => lines.some((l) => l.event === 'mesh_config_missing'), { timeout: 5000 })
          .toBe(true);
        expect(store.current().drainSeconds).toBe(9);
      } finally {
        stop();
      }
    });
  });
});
