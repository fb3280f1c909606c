#!/usr/bin/env node
/**
 * `npm run engine-bundle -- --version V [--out DIR] [--build STAMP]`: packs the built tree's
 * engine as `<DIR>/<V>.tar.gz` (default DIR: engine-bundles/) and prints its digest
 * (docs/upgrades.md). Exit 0, 1 on a failure, 2 on a usage error.
 */
import { fileURLToPath } from 'node:url';
import { buildEngineBundle } from '../engine/build.js';

const USAGE = 'usage: remora-engine-bundle --version V [--out DIR] [--build STAMP]';
const args = process.argv.slice(2);
const opts: Record<string, string> = {};
for (let i = 0; i < args.length; i += 2) {
  const k = args[i];
  const v = args[i + 1];
  if (k === '--help' || k === '-h') {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  if (k === undefined || v === undefined || !['--version', '--out', '--build'].includes(k)) {
    process.stderr.write(`remora-engine-bundle: bad arguments\n${USAGE}\n`);
    process.exit(2);
  }
  opts[k.slice(2)] = v;
}
if (opts.version === undefined) {
  process.stderr.write(`remora-engine-bundle: --version is required\n${USAGE}\n`);
  process.exit(2);
}
try {
  const b = buildEngineBundle({
    proxyDir: fileURLToPath(new URL('../../../proxy/', import.meta.url)),
    version: opts.version,
    outDir: opts.out ?? 'engine-bundles',
    ...(opts.build !== undefined ? { build: opts.build } : {}),
  });
  process.stdout.write(`${b.path}\n${b.digest}\n${b.size} bytes\n`);
} catch (err) {
  process.stderr.write(`remora-engine-bundle: ${(err as Error).message}\n`);
  process.exit(1);
}
