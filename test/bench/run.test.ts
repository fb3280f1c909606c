/**
 * `npm run bench -- --quick` end to end: real nginx, wrk, hey, http-proxy and remora-proxy.
 * It asserts that every path is measured and the outputs are well-formed, never how fast
 * anything is (figures go to docs/performance.md), and that every process started is gone.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BenchReport } from '../../bench/report.js';
import { missingPrerequisite } from '../helpers/env.js';
import { runScript, stillRunning } from '../helpers/scripts.js';
import type { ScriptExit } from '../helpers/scripts.js';
import { assertWellFormedXml } from './xml.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const RUN = join(ROOT, 'bench/dist/run.js');
const missing = missingPrerequisite({ tools: ['nginx', 'wrk', 'hey'] });

function bench(args: string[], watch?: Parameters<typeof runScript>[3]): Promise<ScriptExit> {
  return runScript(RUN, args, ROOT, watch);
}

/** PIDs the bench reported starting that still exist. */
function survivors(stderr: string): string[] {
  return stillRunning([...stderr.matchAll(/started \S+ \(pid \d+\)/g)].map((m) => m[0]).join('\n'));
}

/** Processes whose command line points into a bench temp dir (nginx -p /tmp/remora-bench-…). */
function benchTempProcesses(): string[] {
  return readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .flatMap((pid) => {
      try {
        const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
        return /remora-bench-(?!test)/.test(cmd) ? [`${pid}: ${cmd}`] : [];
      } catch {
        return [];
      }
    });
}

describe.skipIf(missing !== undefined)(`npm run bench -- --quick ${missing ?? ''}`, () => {
  const out = mkdtempSync(join(tmpdir(), 'remora-bench-test-'));

  beforeAll(() => {
    execFileSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'bench'], {
      cwd: ROOT,
    });
  });
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it('measures all four paths and writes well-formed JSON and SVG, leaving no process behind', async () => {
    const r = await bench(['--quick', `--out=${out}`]);
    expect(r.code, r.stderr).toBe(0);
    const files = readdirSync(out).sort();
    expect(files).toHaveLength(2);
    const [jsonFile, svgFile] = files;
    expect(jsonFile).toMatch(/^\d{4}-\d\d-\d\dT[\d-]+Z\.json$/);
    expect(svgFile).toBe(jsonFile?.replace(/\.json$/, '.svg'));

    const report = JSON.parse(readFileSync(join(out, jsonFile ?? ''), 'utf8')) as BenchReport;
    expect(report.schema).toBe('remora-bench/1');
    expect(report.quick).toBe(true);
    expect(report.paths.map((p) => [p.path, p.skipped])).toEqual([
      ['direct', undefined],
      ['remora', undefined],
      ['nginx', undefined],
      ['http-proxy', undefined],
    ]);
    for (const p of report.paths) {
      expect(p.throughput?.roundsRps).toHaveLength(1);
      expect(p.throughput?.medianRps).toBeGreaterThan(0);
      expect(p.throughput?.errors).toBe(0);
      expect(p.latency?.requests).toBeGreaterThan(0);
      expect(Object.keys(p.latency?.statuses ?? {})).toEqual(['200']);
      for (const v of Object.values(p.latency?.percentilesMs ?? {})) expect(Number.isFinite(v)).toBe(true);
    }
    const remora = report.paths.find((p) => p.path === 'remora');
    expect(remora?.memory?.rssMaxMb).toBeGreaterThan(0);
    expect(remora?.memory?.samples).toBeGreaterThan(0);
    expect(report.comparisons.find((c) => c.path === 'nginx')?.throughputVsNginx).toBe(1);

    assertWellFormedXml(readFileSync(join(out, svgFile ?? ''), 'utf8'));
    expect(r.stdout).toMatch(/^path\s+req\/s \(median\)/m);
    expect(r.stdout).toContain('| path | req/s (median) |');
    expect(survivors(r.stderr)).toEqual([]);
    expect(benchTempProcesses()).toEqual([]);

    // The same figures redrawn from the JSON alone, measuring nothing.
    const again = await bench([`--from=${join(out, jsonFile ?? '')}`]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).not.toMatch(/started/);
    const table = (s: string): string => s.slice(s.indexOf('path  '), s.indexOf('markdown for'));
    expect(table(again.stdout)).toBe(table(r.stdout).replace(/\nwrote .*\n/, ''));
    const broken = await bench([`--from=${join(out, 'missing.json')}`]);
    expect(broken.code).toBe(1);
    expect(broken.stderr).toMatch(/--from=.*missing\.json: ENOENT/);
  }, 120_000);

  it('stops everything it started when interrupted (SIGINT) and exits 130', async () => {
    let sent = false;
    const r = await bench(
      ['--quick', '--paths=direct,nginx,http-proxy', `--out=${out}-int`],
      ({ stderr }, child) => {
        if (!sent && /round 1\/1/.test(stderr)) {
          sent = true;
          child.kill('SIGINT');
        }
      },
    );
    expect(sent).toBe(true);
    expect(r.code, r.stderr).toBe(130);
    expect(r.stderr).toMatch(/SIGINT: stopping everything/);
    expect(r.stderr).toMatch(/started http-proxy \(pid \d+\)/);
    expect(survivors(r.stderr)).toEqual([]);
    expect(benchTempProcesses()).toEqual([]);
    expect(existsSync(`${out}-int`)).toBe(false);
  }, 60_000);

  it('names the missing tools and their Debian packages when wrk, hey or nginx is not installed', async () => {
    // A PATH with only a shell: the bench's own node is started by absolute path.
    const bin = mkdtempSync(join(tmpdir(), 'remora-bench-test-path-'));
    try {
      symlinkSync(execFileSync('sh', ['-c', 'command -v sh'], { encoding: 'utf8' }).trim(), join(bin, 'sh'));
      const r = await runScript(RUN, ['--quick', `--out=${out}-nopath`], ROOT, undefined, {
        ...process.env,
        PATH: bin,
      });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(
        /missing tool\(s\): nginx, wrk, hey\. On Debian: apt-get install -y nginx-light wrk hey/,
      );
      expect(r.stderr).not.toMatch(/started/);
      expect(existsSync(`${out}-nopath`)).toBe(false);
    } finally {
      rmSync(bin, { recursive: true, force: true });
    }
  });

  it('rejects bad flags with exit 2 and the usage, starting nothing', async () => {
    const r = await bench(['--paths=direct,envoy']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown path "envoy"/);
    expect(r.stderr).toMatch(/usage: npm run bench/);
    expect(r.stderr).not.toMatch(/started/);
  });
});
