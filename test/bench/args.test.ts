import { describe, expect, it } from 'vitest';
import { parseArgs, UsageError } from '../../bench/args.js';

describe('bench flags', () => {
  it('defaults to every path, full durations, no publishing', () => {
    expect(parseArgs([])).toEqual({
      quick: false,
      paths: [
        'direct',
        'remora',
        'remora-telemetry',
        'nginx',
        'http-proxy',
        'mesh-remora',
        'mesh-remora-telemetry',
        'mesh-nginx',
      ],
      publish: false,
      outDir: undefined,
      from: undefined,
      baseline: undefined,
      help: false,
    });
  });

  it('takes --quick, --out and a subset of paths (kept in the canonical order)', () => {
    const o = parseArgs(['--quick', '--paths=nginx,direct', '--out=/tmp/x']);
    expect(o.quick).toBe(true);
    expect(o.paths).toEqual(['direct', 'nginx']);
    expect(o.outDir).toBe('/tmp/x');
  });

  it('takes --baseline=DIR, a built tree of an earlier commit', () => {
    const o = parseArgs(['--baseline=/tmp/base', '--paths=direct,remora,nginx']);
    expect(o.baseline).toBe('/tmp/base');
    expect(o.paths).toEqual(['direct', 'remora', 'nginx']);
    expect(() => parseArgs(['--baseline'])).toThrow(/--baseline needs a built tree/);
    expect(() => parseArgs(['--baseline='])).toThrow(/--baseline needs a built tree/);
    expect(() => parseArgs(['--from=x.json', '--baseline=/tmp/base'])).toThrow(/--baseline means nothing/);
  });

  it('lists every problem at once, with the usage', () => {
    let err: unknown;
    try {
      parseArgs(['--paths=direct,envoy,haproxy', '--fast', '--out=', '--quick=yes']);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UsageError);
    const msg = (err as Error).message;
    expect(msg).toMatch(/unknown path "envoy"/);
    expect(msg).toMatch(/unknown path "haproxy"/);
    expect(msg).toMatch(/unknown argument "--fast"/);
    expect(msg).toMatch(/--out needs a directory/);
    expect(msg).toMatch(/--quick takes no value/);
    expect(msg).toMatch(/^usage: npm run bench/m);
  });

  it('refuses to publish quick figures and an empty path list', () => {
    expect(() => parseArgs(['--quick', '--publish'])).toThrow(/too short to quote/);
    expect(() => parseArgs(['--paths='])).toThrow(/--paths needs a list/);
    expect(() => parseArgs(['--from='])).toThrow(/--from needs a file/);
    expect(() => parseArgs(['--from=x.json', '--quick'])).toThrow(/--quick means nothing/);
  });
});
