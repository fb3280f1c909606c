/** Command-line flags of `npm run bench`, parsed once; every problem is reported together. */
import { PATH_NAMES } from './report.js';
import type { PathName } from './report.js';

export interface BenchOptions {
  /** Short durations and one round: for tests and smoke runs, not for quoting. */
  readonly quick: boolean;
  readonly paths: readonly PathName[];
  /** Also copy the results to docs/bench/ and refresh the table in docs/performance.md. */
  readonly publish: boolean;
  /** Where <timestamp>.json and .svg go (default bench/results/). */
  readonly outDir: string | undefined;
  /** Measure nothing: redraw the table, chart and docs from an earlier run's JSON. */
  readonly from: string | undefined;
  /**
   * A built tree of an earlier commit (proxy/dist in it): its Remora paths run in the same run,
   * alternating with this tree's, so the tables show before and after side by side.
   */
  readonly baseline: string | undefined;
  readonly help: boolean;
}

export const USAGE = `usage: npm run bench -- [--quick] [--paths=${PATH_NAMES.join(',')}] [--baseline=DIR] [--publish] [--out=DIR]
  --quick        1-2 s per measurement, one round (smoke test; figures not comparable)
  --paths=LIST   which paths to measure (default: all of them, in this order)
  --baseline=DIR a built tree of an earlier commit (docs/performance.md, "Before and after"):
                 its remora paths run too, alternating with this tree's
  --publish      also write docs/bench/latest.json, docs/bench/latency.svg and the table in docs/performance.md
  --out=DIR      directory for <timestamp>.json/.svg (default bench/results/)
  --from=FILE    measure nothing: print and (with --publish) publish an earlier run's JSON`;

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export function parseArgs(argv: readonly string[]): BenchOptions {
  const errors: string[] = [];
  let quick = false;
  let publish = false;
  let help = false;
  let outDir: string | undefined;
  let from: string | undefined;
  let baseline: string | undefined;
  let paths: PathName[] = [...PATH_NAMES];
  for (const arg of argv) {
    const eq = arg.indexOf('=');
    const [flag, value] = eq < 0 ? [arg, undefined] : [arg.slice(0, eq), arg.slice(eq + 1)];
    if ((flag === '--quick' || flag === '--publish' || flag === '--help') && value !== undefined) {
      errors.push(`${flag} takes no value`);
    } else if (flag === '--quick') quick = true;
    else if (flag === '--publish') publish = true;
    else if (flag === '--help' || flag === '-h') help = true;
    else if (flag === '--out') {
      if (value === undefined || value === '') errors.push('--out needs a directory: --out=DIR');
      else outDir = value;
    } else if (flag === '--from') {
      if (value === undefined || value === '')
        errors.push('--from needs a file: --from=bench/results/<time>.json');
      else from = value;
    } else if (flag === '--baseline') {
      if (value === undefined || value === '')
        errors.push('--baseline needs a built tree: --baseline=/tmp/base (docs/performance.md)');
      else baseline = value;
    } else if (flag === '--paths') {
      const names = (value ?? '')
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '');
      const unknown = names.filter((n) => !(PATH_NAMES as readonly string[]).includes(n));
      if (names.length === 0) errors.push(`--paths needs a list: --paths=${PATH_NAMES.join(',')}`);
      for (const n of unknown) errors.push(`unknown path "${n}" (known: ${PATH_NAMES.join(', ')})`);
      if (unknown.length === 0 && names.length > 0) paths = PATH_NAMES.filter((n) => names.includes(n));
    } else errors.push(`unknown argument "${arg}"`);
  }
  if (publish && quick) errors.push('--publish with --quick would publish figures too short to quote');
  if (from !== undefined && quick)
    errors.push('--from redraws a finished run: --quick means nothing with it');
  if (from !== undefined && baseline !== undefined)
    errors.push('--from redraws a finished run: --baseline means nothing with it');
  if (errors.length > 0) throw new UsageError(`${errors.join('\n')}\n${USAGE}`);
  return Object.freeze({ quick, paths: Object.freeze(paths), publish, outDir, from, baseline, help });
}
