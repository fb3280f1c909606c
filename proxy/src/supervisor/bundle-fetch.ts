/**
 * Puts an announced engine bundle under REMORA_ENGINE_BUNDLE_ROOT as `<root>/<version>/`, the
 * directory the in-place upgrade runs `engine.js` from (docs/upgrades.md):
 *   1. an existing `<root>/<version>` whose `.digest` is the announced one is used as it is; one
 *      with another digest is refused (a version name is immutable: a new build needs a new
 *      name), so an engine that runs from it is never changed under its feet;
 *   2. the archive is downloaded (capped) and its sha256 compared with the announced digest
 *      BEFORE anything is written: a mismatch writes nothing and throws BundleDigestError;
 *   3. it is unpacked into a private temporary directory (bundle-tar.ts checks every member),
 *      `engine.js` and `manifest.json` (whose `version` must be the announced one) are checked,
 *      and the directory is renamed into place.
 * `<root>/node_modules` links to the supervisor's own dependencies, so a bundle may carry only
 * the engine's code and resolve the image's packages (one it carries itself wins: it is nearer).
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { BundleDigestError, BundleError } from './errors.js';
import { DEFAULT_UNPACK_LIMITS, unpackBundle } from './bundle-tar.js';
import type { UnpackLimits } from './bundle-tar.js';

/** The largest bundle download accepted (the injector refuses to serve more, too). */
export const MAX_BUNDLE_BYTES = 128 * 1024 * 1024;
export const DIGEST_FILE = '.digest';
export const MANIFEST_FILE = 'manifest.json';
const ENTRY = 'engine.js';

export interface EnsureOptions {
  readonly root: string;
  readonly version: string;
  /** `sha256:<hex>` */
  readonly digest: string;
  readonly download: (digest: string, maxBytes: number) => Promise<Buffer>;
  readonly limits?: UnpackLimits;
}

export interface Ensured {
  readonly dir: string;
  /** false: the directory was there already with this digest */
  readonly fetched: boolean;
  readonly bytes: number;
}

export function sha256(buf: Buffer): string {
  return `sha256:${createHash('sha256').update(buf).digest('hex')}`;
}

/** The node_modules directory the supervisor resolves its own packages from. */
function ownNodeModules(): string | undefined {
  try {
    const req = createRequire(import.meta.url);
    // pino is a dependency of every engine; its package.json sits in <node_modules>/pino/
    return dirname(dirname(req.resolve('pino/package.json')));
  } catch {
    return undefined;
  }
}

function linkNodeModules(root: string): void {
  const link = join(root, 'node_modules');
  try {
    lstatSync(link);
    return; // there already (ours from an earlier fetch, or the operator's)
  } catch {
    // absent: create it
  }
  const target = ownNodeModules();
  if (target !== undefined) symlinkSync(target, link, 'dir');
}

export async function ensureBundle(o: EnsureOptions): Promise<Ensured> {
  const dir = join(o.root, o.version);
  if (existsSync(dir)) {
    let have = '';
    try {
      have = readFileSync(join(dir, DIGEST_FILE), 'utf8').trim();
    } catch {
      // no digest file: not ours
    }
    if (have === o.digest) {
      linkNodeModules(o.root);
      return { dir, fetched: false, bytes: 0 };
    }
    throw new BundleError(
      `${dir} exists with digest ${have === '' ? 'unknown' : have}, not ${o.digest}: a version name is immutable, give the new build a new name`,
    );
  }
  const buf = await o.download(o.digest, MAX_BUNDLE_BYTES);
  const actual = sha256(buf);
  if (actual !== o.digest) throw new BundleDigestError(o.digest, actual);
  mkdirSync(o.root, { recursive: true, mode: 0o700 });
  const tmp = join(o.root, `.unpack-${randomBytes(6).toString('hex')}`);
  try {
    unpackBundle(buf, tmp, o.limits ?? DEFAULT_UNPACK_LIMITS);
    if (!existsSync(join(tmp, ENTRY))) throw new BundleError(`the archive has no ${ENTRY} at its top`);
    let manifest: unknown;
    try {
      manifest = JSON.parse(readFileSync(join(tmp, MANIFEST_FILE), 'utf8'));
    } catch (err) {
      throw new BundleError(`${MANIFEST_FILE}: ${(err as Error).message}`);
    }
    const named = (manifest as { version?: unknown } | null)?.version;
    if (named !== o.version)
      throw new BundleError(
        `${MANIFEST_FILE} names version ${JSON.stringify(named)}, the mesh config ${JSON.stringify(o.version)}`,
      );
    writeFileSync(join(tmp, DIGEST_FILE), `${o.digest}\n`, { mode: 0o644 });
    renameSync(tmp, dir);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  linkNodeModules(o.root);
  return { dir, fetched: true, bytes: buf.length };
}
