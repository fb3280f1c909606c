/**
 * The CA's stand-in auth cannot leak into a cluster: REMORA_STATIC_TOKENS replaced TokenReview
 * silently even with in-cluster credentials. The environment and the file check are injected,
 * so every combination is tried without a cluster; the start-up log names the active reviewer.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { INJECTOR_ENV } from '../../../proxy/src/contract.js';
import { IN_CLUSTER_TOKEN_FILE, parseCaConfig } from '../../../injector/src/ca/config.js';
import type { CaConfigProbe } from '../../../injector/src/ca/config.js';
import { DEFAULT_STREAM_LIMITS } from '../../../injector/src/ca/ndjson.js';
import { startIdentityCa } from '../../../injector/src/ca/start.js';
import { InjectorConfigError } from '../../../injector/src/errors.js';
import { main } from '../../../injector/src/main.js';

const withFile = (present: boolean): CaConfigProbe & { asked: string[] } => {
  const asked: string[] = [];
  return {
    asked,
    fileExists: (p) => {
      asked.push(p);
      return present && p === IN_CLUSTER_TOKEN_FILE;
    },
  };
};
const HOST = { KUBERNETES_SERVICE_HOST: '10.96.0.1' };
const STATIC = { [INJECTOR_ENV.staticTokens]: '/etc/remora/tokens.json' };
const FORCE = { [INJECTOR_ENV.allowStaticTokens]: 'true' };

describe('parseCaConfig: static tokens vs in-cluster credentials (injected env and file check)', () => {
  const accepted: [string, Record<string, string>, boolean, boolean][] = [
    // name, env, token file present, expected staticTokensForced
    ['no static file, not in a cluster', {}, false, false],
    ['no static file, in a cluster (TokenReview)', { ...HOST }, true, false],
    ['static file outside a cluster', { ...STATIC }, false, false],
    ['static file, KUBERNETES_SERVICE_HOST but no token file', { ...STATIC, ...HOST }, false, false],
    ['static file, token file but no KUBERNETES_SERVICE_HOST', { ...STATIC }, true, false],
    ['static file in a cluster, forced', { ...STATIC, ...HOST, ...FORCE }, true, true],
    ['forced without a static file changes nothing', { ...HOST, ...FORCE }, true, false],
  ];
  it.each(accepted)('%s: accepted', (_name, env, file, forced) => {
    const c = parseCaConfig(env, withFile(file));
    expect(c.staticTokensFile).toBe(env[INJECTOR_ENV.staticTokens]);
    expect(c.staticTokensForced).toBe(forced);
  });

  it('static file in a cluster without the force switch: refused, naming both variables and the file', () => {
    const probe = withFile(true);
    let err: unknown;
    try {
      parseCaConfig({ ...STATIC, ...HOST }, probe);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InjectorConfigError);
    const msg = (err as InjectorConfigError).message;
    expect(msg).toContain(INJECTOR_ENV.staticTokens);
    expect(msg).toContain(INJECTOR_ENV.allowStaticTokens);
    expect(msg).toContain(IN_CLUSTER_TOKEN_FILE);
    expect(probe.asked).toEqual([IN_CLUSTER_TOKEN_FILE]);
  });

  it.each(['false', 'yes', 'TRUE', '1'])('REMORA_ALLOW_STATIC_TOKENS=%s does not force it', (v) => {
    expect(() =>
      parseCaConfig({ ...STATIC, ...HOST, [INJECTOR_ENV.allowStaticTokens]: v }, withFile(true)),
    ).toThrow(InjectorConfigError);
  });

  it('a bad force value is an error even outside a cluster, listed with the other errors', () => {
    let err: unknown;
    try {
      parseCaConfig({ [INJECTOR_ENV.allowStaticTokens]: 'yes', [INJECTOR_ENV.caPort]: 'x' }, withFile(false));
    } catch (e) {
      err = e;
    }
    expect((err as InjectorConfigError).errors).toHaveLength(2);
  });
});

describe('parseCaConfig: stream caps', () => {
  it('defaults, and both caps from env', () => {
    expect(parseCaConfig({}, withFile(false)).streamLimits).toEqual(DEFAULT_STREAM_LIMITS);
    expect(
      parseCaConfig(
        { [INJECTOR_ENV.maxStreams]: '50000', [INJECTOR_ENV.maxStreamsPerClient]: '64' },
        withFile(false),
      ).streamLimits,
    ).toEqual({ ...DEFAULT_STREAM_LIMITS, maxTotal: 50_000, maxPerClient: 64 });
  });

  it.each(['0', '-1', 'many', '1e3', '2000000'])('%j is refused, naming the variable', (v) => {
    expect(() => parseCaConfig({ [INJECTOR_ENV.maxStreams]: v }, withFile(false))).toThrow(
      INJECTOR_ENV.maxStreams,
    );
  });
});

describe('remora-injector start-up with static tokens in a cluster (injected file check)', () => {
  const spy = vi.spyOn(process.stderr, 'write');
  afterEach(() => {
    spy.mockClear();
    process.exitCode = undefined;
  });
  afterAll(() => spy.mockRestore());

  it('exits 2 with the reason before starting anything', async () => {
    spy.mockImplementation(() => true);
    await main(['--no-kubernetes'], { ...STATIC, ...HOST }, withFile(true));
    expect(process.exitCode).toBe(2);
    const text = spy.mock.calls.map((c) => String(c[0])).join('');
    expect(text).toContain(`${INJECTOR_ENV.allowStaticTokens}=true to force it`);
  });
});

describe('the CA logs which token reviewer is active', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'remora-ca-config-'));
    writeFileSync(join(dir, 'tokens.json'), JSON.stringify({ 'token-for-web-0000': 'shop/web' }));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const startWith = async (env: Record<string, string>, file: boolean) => {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(c: Buffer, _e, cb) {
        lines.push(JSON.parse(c.toString()) as Record<string, unknown>);
        cb();
      },
    });
    const ca = await startIdentityCa({
      config: parseCaConfig({ [INJECTOR_ENV.caPort]: '0', ...env }, withFile(file)),
      kc: undefined,
      namespace: 'remora-system',
      host: '127.0.0.1',
      logger: pino({ level: 'info' }, sink),
    });
    await ca.close();
    return lines;
  };

  it('static file: reviewer static-file and the file, at info', async () => {
    const lines = await startWith({ [INJECTOR_ENV.staticTokens]: join(dir, 'tokens.json') }, false);
    const started = lines.find((l) => l.event === 'ca_started');
    expect(started).toMatchObject({ reviewer: 'static-file', staticTokens: join(dir, 'tokens.json') });
    expect(lines.some((l) => l.event === 'static_tokens_forced')).toBe(false);
  });

  it('forced in a cluster: a warning says the stand-in replaces TokenReview', async () => {
    const lines = await startWith(
      { [INJECTOR_ENV.staticTokens]: join(dir, 'tokens.json'), ...HOST, ...FORCE },
      true,
    );
    expect(lines.find((l) => l.event === 'static_tokens_forced')).toMatchObject({ level: 40 });
    expect(lines.find((l) => l.event === 'ca_started')).toMatchObject({ reviewer: 'static-file' });
  });

  it('neither file nor Kubernetes: reviewer none', async () => {
    const lines = await startWith({}, false);
    expect(lines.find((l) => l.event === 'ca_started')).toMatchObject({ reviewer: 'none' });
  });
});
