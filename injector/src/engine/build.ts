/**
 * Builds an engine bundle from a built tree (docs/upgrades.md, "Building a bundle"):
 *   engine.js            import './proxy/dist/engine-child.js'
 *   package.json         {"type": "module"}
 *   manifest.json        {version, build, nodeAbi}
 *   proxy/package.json, proxy/dist/**.js, proxy/native/build/Release/*.node
 * The bundle carries the engine's code and resolves its npm packages from the image (the
 * supervisor links `<bundle root>/node_modules` to its own); `build` is the version stamp the
 * engine reports (proxy/dist/contract.js's VERSION is rewritten to it).
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { packTarGz } from './tar.js';
import type { TarEntry } from './tar.js';
import { BUNDLE_SUFFIX } from './bundles.js';
import { ENGINE_VERSION_NAME } from '@remora/proxy/values';

export interface BuildOptions {
  /** the built proxy package: `<repo>/proxy` (with dist/ and native/build/Release/) */
  readonly proxyDir: string;
  readonly version: string;
  /** what the engine reports as its version (remora_build_info); default `<VERSION>+<version>` */
  readonly build?: string;
  /** directory the bundle is written to, as `<version>.tar.gz` */
  readonly outDir: string;
  /** replaces engine.js (tests: a broken engine) */
  readonly entry?: string;
}

export interface Built {
  readonly path: string;
  readonly digest: string;
  readonly size: number;
}

function walk(dir: string, keep: (p: string) => boolean, out: string[] = []): string[] {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    const st = statSync(p);
    if (st.isDirectory()) walk(p, keep, out);
    else if (st.isFile() && keep(p)) out.push(p);
  }
  return out;
}

export function buildEngineBundle(o: BuildOptions): Built {
  if (!ENGINE_VERSION_NAME.test(o.version))
    throw new Error(`version ${JSON.stringify(o.version)} is not a bundle name ([A-Za-z0-9._-])`);
  const contract = readFileSync(join(o.proxyDir, 'dist', 'contract.js'), 'utf8');
  const m = /export const VERSION = '([^']*)';/.exec(contract);
  if (m === null) throw new Error(`${o.proxyDir}/dist/contract.js has no VERSION: build the tree first`);
  const build = o.build ?? `${m[1]}+${o.version}`;
  const entries: TarEntry[] = [
    { path: 'engine.js', data: Buffer.from(o.entry ?? "import './proxy/dist/engine-child.js';\n") },
    { path: 'package.json', data: Buffer.from('{ "type": "module", "private": true }\n') },
    {
      path: 'manifest.json',
      data: Buffer.from(
        `${JSON.stringify({ version: o.version, build, nodeAbi: process.versions.modules }, null, 2)}\n`,
      ),
    },
    { path: 'proxy/package.json', data: readFileSync(join(o.proxyDir, 'package.json')) },
  ];
  for (const f of walk(join(o.proxyDir, 'dist'), (p) => p.endsWith('.js'))) {
    const rel = relative(o.proxyDir, f);
    let data = readFileSync(f);
    if (rel === join('dist', 'contract.js'))
      data = Buffer.from(
        contract.replace(m[0], `export const VERSION = ${JSON.stringify(build).replace(/"/g, "'")};`),
      );
    entries.push({ path: `proxy/${rel.split('\\').join('/')}`, data });
  }
  for (const f of walk(join(o.proxyDir, 'native', 'build', 'Release'), (p) => p.endsWith('.node')))
    entries.push({ path: `proxy/${relative(o.proxyDir, f).split('\\').join('/')}`, data: readFileSync(f) });
  const gz = packTarGz(entries);
  mkdirSync(o.outDir, { recursive: true });
  const path = join(o.outDir, `${o.version}${BUNDLE_SUFFIX}`);
  writeFileSync(path, gz);
  return { path, digest: `sha256:${createHash('sha256').update(gz).digest('hex')}`, size: gz.length };
}
