// The error registries of both packages (issue 16, docs/errors.md): one row per code, one class
// per row named by the naming rule, every code in the docs, no code spelt outside a registry,
// and the message and status users see pinned per code.
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { RemoraError as DistRemoraError } from '@remora/proxy';
import * as proxy from '../../proxy/src/errors.js';
import type { Answer, ErrorTable } from '../../proxy/src/errors.js';
import * as injector from '../../injector/src/errors.js';
import { rescue } from '../../proxy/src/rescue.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface Registry {
  readonly pkg: string;
  readonly file: string;
  readonly table: ErrorTable;
  readonly areas: readonly string[];
  /** may a code have no area prefix (bare `RMR_`)? */
  readonly bare: boolean;
  readonly module: Record<string, unknown>;
  /** the RemoraError the module's classes extend (the injector's comes from proxy/dist) */
  readonly base: abstract new (...a: never[]) => object;
}

const REGISTRIES: readonly Registry[] = [
  {
    pkg: 'proxy',
    file: 'proxy/src/errors.ts',
    table: proxy.PROXY_ERRORS,
    areas: proxy.PROXY_AREAS,
    bare: true,
    module: proxy,
    base: proxy.RemoraError,
  },
  {
    pkg: 'injector',
    file: 'injector/src/errors.ts',
    table: injector.INJECTOR_ERRORS,
    areas: injector.INJECTOR_AREAS,
    bare: false,
    module: injector,
    base: DistRemoraError,
  },
];

const rows = REGISTRIES.flatMap((r) => Object.entries(r.table).map(([code, spec]) => ({ r, code, spec })));

type ErrorClass = (new (...args: unknown[]) => Error & { code: string }) & { code: string };

/** The module's exported classes that carry a registry code (`X.code`). */
function classesOf(r: Registry): ErrorClass[] {
  return Object.values(r.module).filter(
    (v): v is ErrorClass =>
      typeof v === 'function' &&
      v.prototype instanceof r.base &&
      typeof (v as { code?: unknown }).code === 'string',
  );
}

/** The naming rule: `RMR_` + area + SCREAMING_SNAKE(name without `Error`), the area's word not repeated. */
function codesFor(name: string, areas: readonly string[], bare: boolean): string[] {
  const snake = name
    .replace(/Error$/, '')
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .toUpperCase();
  const out = bare ? [`RMR_${snake}`] : [];
  for (const a of areas) out.push(snake.startsWith(`${a}_`) ? `RMR_${snake}` : `RMR_${a}_${snake}`);
  return out;
}

/** Codes older than the naming rule: users see them, so they keep their names. Only these. */
const LEGACY: Readonly<Record<string, string>> = {
  RMR_CONFIG_INVALID: 'ConfigError',
  RMR_OVERLOADED: 'OverloadError',
  RMR_SUP_UPGRADE_INVALID: 'UpgradeRequestError',
  RMR_SUP_BUSY: 'UpgradeBusyError',
  RMR_SUP_IPC: 'IpcProtocolError',
  RMR_INJ_MESH_CONFIG_INVALID: 'MeshConfigError',
  RMR_INJ_REVIEW_MALFORMED: 'MalformedReviewError',
  RMR_INJ_MANIFEST_INVALID: 'ManifestError',
  RMR_INJ_CONFIG_INVALID: 'InjectorConfigError',
  RMR_CA_CSR_INVALID: 'CsrError',
  RMR_CA_REVIEW_UNAVAILABLE: 'TokenReviewUnavailableError',
};

/**
 * Per code: constructor arguments and the exact message users see (the texts from before the
 * registry; a change here is a change users notice).
 */
const SAMPLES: Readonly<Record<string, readonly [readonly unknown[], string]>> = {
  RMR_CONFIG_INVALID: [[['A: bad', 'B: bad']], 'invalid configuration:\n  - A: bad\n  - B: bad'],
  RMR_POLICY_INVALID: [[['policies[0]: bad']], 'invalid policy document:\n  - policies[0]: bad'],
  RMR_UPSTREAM_CONNECT: [['a:1'], 'cannot connect to upstream a:1'],
  RMR_UPSTREAM_RESET: [['a:1'], 'upstream a:1 reset the connection'],
  RMR_UPSTREAM_TIMEOUT: [['a:1'], 'upstream a:1 timed out'],
  RMR_UPSTREAM_PROTOCOL: [['a:1'], 'upstream a:1 sent an invalid response'],
  RMR_NO_TARGET: [
    ['inbound'],
    'inbound connection has no original destination and no inbound target is configured',
  ],
  RMR_POLICY_DENIED: [['strict'], 'refused by policy: strict'],
  RMR_OVERLOADED: [['draining'], 'overloaded: draining'],
  RMR_REQUEST_TIMEOUT: [['a:1', 2000], 'request to a:1 did not complete within 2000 ms'],
  RMR_IDLE_TIMEOUT: [['a:1', 500], 'request to a:1 was idle for 500 ms'],
  RMR_RATE_LIMITED: [[2], 'rate limited: retry after 2 s'],
  RMR_CIRCUIT_OPEN: [['a:1', 'max_requests'], 'circuit open for upstream a:1: max_requests reached'],
  RMR_TOO_MANY_HEADERS: [[100], 'request has more than 100 header fields'],
  RMR_BAD_REQUEST: [['bad chunk size'], 'malformed request: bad chunk size'],
  RMR_EXPECTATION_FAILED: [['x-foo'], 'expectation not supported: Expect: x-foo (only 100-continue is)'],
  RMR_REQUEST_HEAD_TIMEOUT: [[10000], 'request not received in time (head timeout 10000 ms)'],
  RMR_HEADERS_TOO_LARGE: [[16384], 'request head exceeds 16384 bytes'],
  RMR_CLIENT_ABORTED: [[], 'the client closed the connection before the exchange was over'],
  RMR_GRPC_DEADLINE: [['a:1', 150], 'call to a:1 passed its grpc-timeout of 150 ms'],
  RMR_HTTP2_PROTOCOL: [['too many resets'], 'HTTP/2 protocol error: too many resets'],
  RMR_HTTP1_SYNTAX: [
    ['request', 'obs_fold', 'obsolete line folding'],
    'malformed HTTP/1.1 request: obsolete line folding',
  ],
  RMR_HTTP1_FRAMING: [['request', 'te_cl', 'both'], 'malformed HTTP/1.1 request: both'],
  RMR_HTTP1_CHUNK: [['response', 'chunk_size', 'bad size'], 'malformed HTTP/1.1 response: bad size'],
  RMR_HTTP1_HEAD_TOO_LARGE: [['request', 16384], 'malformed HTTP/1.1 request: head exceeds 16384 bytes'],
  RMR_HTTP1_TOO_MANY_FIELDS: [['response', 100], 'malformed HTTP/1.1 response: more than 100 header fields'],
  RMR_HTTP1_INCOMPLETE: [
    ['response', 'body'],
    'malformed HTTP/1.1 response: connection closed in the middle of the body',
  ],
  RMR_HTTP1_UNEXPECTED_DATA: [['response', 'no request'], 'malformed HTTP/1.1 response: no request'],
  RMR_SUP_ENGINE_START: [['timeout'], 'engine did not become ready: timeout'],
  RMR_SUP_UPGRADE_INVALID: [[['a', 'b']], 'invalid upgrade request: a; b'],
  RMR_SUP_BUSY: [['draining'], 'cannot upgrade now: draining'],
  RMR_SUP_IPC: [['bad message'], 'engine IPC protocol error: bad message'],
  RMR_SUP_BUNDLE: [['no engine.js'], 'engine bundle refused: no engine.js'],
  RMR_SUP_BUNDLE_DIGEST: [['aa', 'bb'], 'engine bundle digest mismatch: expected aa, got bb'],
  RMR_SUP_TOKEN: [
    ['admin token file /t holds fewer than 16 characters'],
    'admin token file /t holds fewer than 16 characters',
  ],
  RMR_SUP_UNAUTHORIZED: [
    [],
    'this endpoint needs Authorization: Bearer <token from REMORA_ADMIN_TOKEN_FILE>',
  ],
  RMR_SUP_METHOD: [['/drain', 'POST'], '/drain needs POST'],
  RMR_SUP_LOG_LEVEL: [[['info', 'debug']], 'level must be one of info, debug'],
  RMR_SUP_NOT_FOUND: [['/nope'], 'no admin endpoint /nope'],
  RMR_SUP_INTERNAL: [[new Error('boom')], 'Error: boom'],
  RMR_FDUTIL_MISSING: [
    ['no such file'],
    'the native fdutil addon is not built (proxy/native, node-gyp): no such file',
  ],
  RMR_INIT_IPTABLES_FAILED: [
    ['applying the rules', 'iptables-restore', 1, 'denied'],
    'applying the rules: iptables-restore exited 1: denied',
  ],
  RMR_INJ_MESH_CONFIG_INVALID: [[['a: bad', 'b: bad']], 'invalid mesh config:\n  - a: bad\n  - b: bad'],
  RMR_INJ_REVIEW_MALFORMED: [['request.uid is missing'], 'request.uid is missing'],
  RMR_INJ_MANIFEST_INVALID: [['app.yaml', 3, 'invalid YAML'], 'app.yaml: document 3: invalid YAML'],
  RMR_INJ_CONFIG_INVALID: [[['X: bad']], 'invalid injector configuration:\n  - X: bad'],
  RMR_CA_CSR_INVALID: [['truncated DER'], 'truncated DER'],
  RMR_CA_TOKEN_REFUSED: [['unknown token'], 'unknown token'],
  RMR_CA_REVIEW_UNAVAILABLE: [['TokenReview failed: down'], 'TokenReview failed: down'],
  RMR_CA_ROOT: [['dir: needs both ca.crt and ca.key'], 'dir: needs both ca.crt and ca.key'],
};

/** How docs/errors.md writes an answer. */
function render(a: Answer): string {
  if (a === 'internal') return 'internal';
  if ('http' in a) return `HTTP ${a.http}${a.upstream !== undefined ? ` (response: ${a.upstream})` : ''}`;
  return `exit ${Object.entries(a.exit)
    .map(([bin, code]) => `${code} (${bin})`)
    .join(', ')}`;
}

/** `| \`RMR_X\` | \`Class\` | answer | when |` rows of docs/errors.md. */
function docRows(): Map<string, { name: string; answer: string; when: string }> {
  const out = new Map<string, { name: string; answer: string; when: string }>();
  const text = readFileSync(join(ROOT, 'docs/errors.md'), 'utf8');
  for (const m of text.matchAll(/^\| `(RMR_[A-Z0-9_]+)` \| `(\w+)` \| ([^|]+) \| ([^|]*) \|$/gm)) {
    expect(out.has(m[1]!), `${m[1]} is listed twice in docs/errors.md`).toBe(false);
    out.set(m[1]!, { name: m[2]!, answer: m[3]!.trim(), when: m[4]!.trim() });
  }
  return out;
}

/** Codes spelt in string literals of TypeScript source, comments left out. */
function inlineCodes(source: string): string[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
  return [...code.matchAll(/['"`](RMR_[A-Z0-9_]*)/g)].map((m) => m[1]!);
}

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts'))
    .map((f) => join(dir, f));
}

describe('error registries (docs/errors.md)', () => {
  it('every code is written once: unique across both packages, well-formed', () => {
    const codes = rows.map((x) => x.code);
    expect(new Set(codes).size).toBe(codes.length);
    for (const c of codes) expect(c).toMatch(/^RMR_[A-Z0-9]+(_[A-Z0-9]+)*$/);
    const names = rows.map((x) => x.spec.name);
    expect(new Set(names).size).toBe(names.length);
  });

  it.each(REGISTRIES.map((r) => [r.pkg, r] as const))(
    '%s: exactly one exported class per code, named as its row',
    (_pkg, r) => {
      const classes = classesOf(r);
      const byCode = new Map<string, string[]>();
      for (const c of classes) byCode.set(c.code, [...(byCode.get(c.code) ?? []), c.name]);
      expect([...byCode.keys()].sort()).toEqual(Object.keys(r.table).sort());
      for (const [code, spec] of Object.entries(r.table)) expect(byCode.get(code)).toEqual([spec.name]);
    },
  );

  it.each(rows.map((x) => [x.code, x] as const))('%s: name, code, message, instance', (code, { r, spec }) => {
    const sample = SAMPLES[code];
    expect(sample, `SAMPLES needs a row for ${code}`).toBeDefined();
    const cls = r.module[spec.name] as ErrorClass;
    const [args, message] = sample!;
    const err = new cls(...args);
    expect(err).toBeInstanceOf(r.base);
    expect(err.name).toBe(spec.name);
    expect(err.code).toBe(code);
    expect(cls.code).toBe(code);
    expect(err.message).toBe(message);
  });

  it('SAMPLES names only registry codes', () => {
    expect(Object.keys(SAMPLES).sort()).toEqual(rows.map((x) => x.code).sort());
  });

  it('name ↔ code: every code follows the naming rule, except exactly the pinned older ones', () => {
    const breaking: Record<string, string> = {};
    for (const { r, code, spec } of rows)
      if (!codesFor(spec.name, r.areas, r.bare).includes(code)) breaking[code] = spec.name;
    expect(breaking).toEqual(LEGACY);
  });

  it('the naming rule, by example', () => {
    expect(codesFor('UpstreamConnectError', ['SUP', 'INIT'], true)).toContain('RMR_UPSTREAM_CONNECT');
    expect(codesFor('Http1HeadTooLargeError', [], true)).toEqual(['RMR_HTTP1_HEAD_TOO_LARGE']);
    expect(codesFor('TokenError', ['SUP', 'INIT'], true)).toContain('RMR_SUP_TOKEN');
    expect(codesFor('CaRootError', ['INJ', 'CA'], false)).toEqual(['RMR_INJ_CA_ROOT', 'RMR_CA_ROOT']);
    expect(codesFor('ConfigError', ['SUP'], true)).not.toContain('RMR_CONFIG_INVALID');
  });

  it('docs/errors.md lists every code with its class and answer, and nothing else', () => {
    const docs = docRows();
    expect([...docs.keys()].sort()).toEqual(rows.map((x) => x.code).sort());
    for (const { code, spec } of rows) {
      expect(docs.get(code)?.name, code).toBe(spec.name);
      expect(docs.get(code)?.answer, code).toBe(render(spec.answer));
      expect(docs.get(code)?.when, `${code} needs a "when" in docs/errors.md`).not.toBe('');
    }
  });

  it('a data-path status agrees with its kind', () => {
    const allowed: Record<proxy.FailureKind, (s: number) => boolean> = {
      timeout: (s) => s === 504,
      overload: (s) => s === 503 || s === 429,
      unavailable: (s) => s === 503,
      policy: (s) => s === 403,
      upstream: (s) => s === 502,
      client: (s) => s >= 400 && s < 500,
    };
    for (const { code, spec } of rows) {
      if (spec.kind === undefined || typeof spec.answer !== 'object' || !('http' in spec.answer)) continue;
      expect(allowed[spec.kind](spec.answer.http), code).toBe(true);
      if (spec.answer.upstream !== undefined) expect(spec.answer.upstream, code).toBe(502);
    }
  });

  it.each(
    rows
      .filter((x) => x.spec.kind !== undefined && x.spec.answer !== 'internal')
      .map((x) => [x.code, x] as const),
  )('rescue answers %s with the registry status', (code, { spec }) => {
    const [args] = SAMPLES[code]!;
    const err = new (proxy[spec.name as keyof typeof proxy] as unknown as ErrorClass)(
      ...args,
    ) as proxy.ProxyError;
    const answer = spec.answer as { http: number; upstream?: number };
    const r = rescue(err, 'a:1');
    expect(r.code).toBe(code);
    expect(r.status).toBe(
      err.kind === 'upstream' && answer.upstream !== undefined ? answer.upstream : answer.http,
    );
  });

  it('the HTTP/1.1 codec: a request fault answers the client status, a response fault 502', () => {
    expect(rescue(new proxy.Http1HeadTooLargeError('request', 10), '').status).toBe(431);
    expect(rescue(new proxy.Http1HeadTooLargeError('response', 10), '').status).toBe(502);
    expect(rescue(new proxy.Http1SyntaxError('request', 'bare_lf', 'x'), '').status).toBe(400);
    expect(rescue(new proxy.Http1SyntaxError('response', 'bare_lf', 'x'), '').status).toBe(502);
  });

  it('no code is spelt outside the registries (proxy/src, injector/src)', () => {
    const registryFiles = new Set(REGISTRIES.map((r) => r.file));
    const found: string[] = [];
    for (const f of [...sources('proxy/src'), ...sources('injector/src')]) {
      const rel = relative(ROOT, join(ROOT, f));
      if (registryFiles.has(rel)) continue;
      for (const c of inlineCodes(readFileSync(join(ROOT, f), 'utf8'))) found.push(`${rel}: ${c}`);
    }
    expect(found).toEqual([]);
  });

  it('the inline-code scan finds codes in strings, not in comments', () => {
    expect(inlineCodes(`throw new RemoraError('RMR_X_Y', 'm');`)).toEqual(['RMR_X_Y']);
    expect(inlineCodes('ctx.errorCode ??= "RMR_Z";\nconst t = `RMR_T`;')).toEqual(['RMR_Z', 'RMR_T']);
    expect(
      inlineCodes(`/** answers 403 \`RMR_POLICY_DENIED\` */\n// 'RMR_A'\nconst u = 'http://x'; // 'RMR_B'`),
    ).toEqual([]);
  });
});
