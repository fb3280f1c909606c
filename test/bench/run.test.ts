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
    for (const project of ['bench', 'demo'])
      execFileSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', project], {
        cwd: ROOT,
      });
  });
  afterAll(() => {
    for (const d of [out, `${out}-base`]) rmSync(d, { recursive: true, force: true });
  });

  it('measures every path, the mesh hops included, and writes well-formed JSON and SVG, leaving no process behind', async () => {
    const r = await bench(['--quick', `--out=${out}`]);
    expect(r.code, r.stderr).toBe(0);
    const files = readdirSync(out).sort();
    expect(files).toHaveLength(2);
    const [jsonFile, svgFile] = files;
    expect(jsonFile).toMatch(/^\d{4}-\d\d-\d\dT[\d-]+Z\.json$/);
    expect(svgFile).toBe(jsonFile?.replace(/\.json$/, '.svg'));

    const report = JSON.parse(readFileSync(join(out, jsonFile ?? ''), 'utf8')) as BenchReport;
    expect(report.schema).toBe('remora-bench/2');
    expect(report.quick).toBe(true);
    expect(report.paths.map((p) => [p.id, p.skipped])).toEqual([
      ['direct', undefined],
      ['remora', undefined],
      ['remora-telemetry', undefined],
      ['nginx', undefined],
      ['http-proxy', undefined],
      ['mesh-remora', undefined],
      ['mesh-remora-telemetry', undefined],
      ['mesh-nginx', undefined],
    ]);
    for (const p of report.paths) {
      if (!p.path.startsWith('mesh-')) {
        expect(p.throughput?.roundsRps).toHaveLength(1);
        expect(p.throughput?.medianRps).toBeGreaterThan(0);
        expect(p.throughput?.errors).toBe(0);
      } else expect(p.throughput).toBeUndefined();
      expect(p.latency?.requests).toBeGreaterThan(0);
      expect(Object.keys(p.latency?.statuses ?? {})).toEqual(['200']);
      for (const v of Object.values(p.latency?.percentilesMs ?? {})) expect(Number.isFinite(v)).toBe(true);
    }
    // Each proxy's processes, by role and side, with CPU and PSS: the supervisor and the engine apart.
    const roles = (id: string) =>
      report.paths.find((p) => p.id === id)?.cost?.processes.map((x) => `${x.side}/${x.role}`);
    expect(roles('remora')).toEqual(['proxy/supervisor', 'proxy/engine']);
    expect(roles('nginx')).toEqual(['proxy/nginx master', 'proxy/nginx worker']);
    expect(roles('mesh-remora')).toEqual(['a/supervisor', 'a/engine', 'b/supervisor', 'b/engine']);
    expect(roles('mesh-nginx')).toEqual([
      'a/nginx master',
      'a/nginx worker',
      'b/nginx master',
      'b/nginx worker',
    ]);
    expect(report.paths.find((p) => p.id === 'direct')?.cost).toBeUndefined();
    for (const p of report.paths.filter((x) => x.cost !== undefined)) {
      const engine = p.cost?.processes.find(
        (x) => x.role === 'engine' || x.role === 'nginx worker' || x.role === 'http-proxy',
      );
      expect(engine?.cpuUsPerRequest, p.id).toBeGreaterThan(0);
      expect(engine?.pssMb, p.id).toBeGreaterThan(0);
      expect(p.cost?.samples, p.id).toBeGreaterThan(0);
    }
    const nginx = report.comparisons.find((c) => c.id === 'nginx');
    expect(nginx?.throughputVsNginx).toBe(1);
    expect(nginx?.cpuVsNginx).toBe(1);
    expect(report.comparisons.find((c) => c.id === 'mesh-nginx')?.cpuVsNginx).toBe(1);
    // Telemetry on for real: spans decoded by the OTLP receiver, scrapes answered, access-log lines.
    expect(report.telemetry?.spansReceived).toBeGreaterThan(0);
    expect(report.telemetry?.rejectedExports).toBe(0);
    expect(report.telemetry?.scrapes).toBeGreaterThan(0);
    expect(report.telemetry?.accessLogLines).toBeGreaterThan(0);

    assertWellFormedXml(readFileSync(join(out, svgFile ?? ''), 'utf8'));
    expect(r.stdout).toMatch(/^one hop\s+req\/s\s+× nginx/m);
    expect(r.stdout).toMatch(/^mesh hop\s+p50 ms/m);
    expect(r.stdout).toMatch(/^goal\s+goal \(bar\)\s+remora\s+telemetry on$/m);
    expect(r.stdout).toContain('| one hop | req/s |');
    expect(survivors(r.stderr)).toEqual([]);
    expect(benchTempProcesses()).toEqual([]);

    // The same figures redrawn from the JSON alone, measuring nothing.
    const again = await bench([`--from=${join(out, jsonFile ?? '')}`]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).not.toMatch(/started/);
    const table = (s: string): string => s.slice(s.indexOf('one hop  '), s.indexOf('markdown for'));
    expect(table(again.stdout)).toBe(table(r.stdout).replace(/\nwrote .*\n/, ''));
    const broken = await bench([`--from=${join(out, 'missing.json')}`]);
    expect(broken.code).toBe(1);
    expect(broken.stderr).toMatch(/--from=.*missing\.json: ENOENT/);
  }, 180_000);

  it('runs the Remora paths of a --baseline tree beside this tree, alternating, and refuses an unbuilt one', async () => {
    // This checkout is a built tree too: the before and after columns then hold the same code.
    const r = await bench([
      '--quick',
      '--paths=direct,remora,nginx',
      `--baseline=${ROOT}`,
      `--out=${out}-base`,
    ]);
    expect(r.code, r.stderr).toBe(0);
    const [jsonFile] = readdirSync(`${out}-base`).filter((f) => f.endsWith('.json'));
    const report = JSON.parse(readFileSync(join(`${out}-base`, jsonFile ?? ''), 'utf8')) as BenchReport;
    expect(report.paths.map((p) => [p.id, p.tree, p.skipped])).toEqual([
      ['direct', 'current', undefined],
      ['remora', 'current', undefined],
      ['remora@before', 'baseline', undefined],
      ['nginx', 'current', undefined],
    ]);
    expect(r.stderr).toMatch(/round 1\/1 remora +\d+ req\/s\nround 1\/1 remora@before +\d+ req\/s/);
    expect(r.stdout).toMatch(/^remora\s+before\s+\d+/m);
    expect(r.stdout).toContain('remora (before)');
    expect(survivors(r.stderr)).toEqual([]);

    const empty = mkdtempSync(join(tmpdir(), 'remora-bench-test-nobase-'));
    try {
      const bad = await bench(['--quick', `--baseline=${empty}`, `--out=${out}-nobase`]);
      expect(bad.code).toBe(1);
      expect(bad.stderr).toMatch(/--baseline=.*proxy\/dist\/bin\/remora-proxy\.js does not exist/);
      expect(bad.stderr).not.toMatch(/started/);
      expect(existsSync(`${out}-nobase`)).toBe(false);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
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
        /missing tool\(s\): nginx, wrk, hey, openssl\. On Debian: apt-get install -y nginx-light wrk hey openssl/,
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
