/**
 * The injector's engine bundles (docs/upgrades.md): `<REMORA_ENGINE_BUNDLE_DIR>/<version>.tar.gz`,
 * served by sha256 digest. A version's file is hashed once, the first time the mesh config names
 * it, and that digest is what proxies are told and what they check: a version name is immutable
 * (a new build gets a new name), and a file changed after it was hashed is refused by every
 * proxy (its digest no longer matches), never run.
 */
import { createHash } from 'node:crypto';
import { createReadStream, statSync } from 'node:fs';
import { join } from 'node:path';
import { ENGINE_VERSION_NAME } from '@remora/proxy/values';

/** Bundles larger than this are not served (the proxy refuses more than this, too). */
export const MAX_BUNDLE_BYTES = 128 * 1024 * 1024;
const VERSION = ENGINE_VERSION_NAME;
const HEX = /^[0-9a-f]{64}$/;
export const BUNDLE_SUFFIX = '.tar.gz';

export interface Bundle {
  readonly version: string;
  /** `sha256:<hex>` */
  readonly digest: string;
  readonly size: number;
  readonly path: string;
}

export type Resolved = { ok: true; bundle: Bundle } | { ok: false; error: string };

function hashFile(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path)
      .on('data', (c) => h.update(c))
      .on('end', () => resolve(`sha256:${h.digest('hex')}`))
      .on('error', reject);
  });
}

export class BundleDir {
  private readonly byVersion = new Map<string, Promise<Resolved>>();
  private readonly byDigest = new Map<string, Bundle>();

  constructor(readonly dir: string | undefined) {}

  /** The bundle of `version`, hashed on first use; an error saying why it cannot be served. */
  resolve(version: string): Promise<Resolved> {
    let r = this.byVersion.get(version);
    if (r === undefined) {
      r = this.load(version);
      this.byVersion.set(version, r);
      // a missing file may appear later: only successes are remembered
      void r.then((x) => {
        if (!x.ok) this.byVersion.delete(version);
      });
    }
    return r;
  }

  private async load(version: string): Promise<Resolved> {
    if (this.dir === undefined) return { ok: false, error: 'the injector has no engine bundle directory' };
    if (!VERSION.test(version))
      return { ok: false, error: `${JSON.stringify(version)} is not a bundle name` };
    const path = join(this.dir, `${version}${BUNDLE_SUFFIX}`);
    let size: number;
    try {
      const st = statSync(path);
      if (!st.isFile()) return { ok: false, error: `${path} is not a file` };
      size = st.size;
    } catch (err) {
      return { ok: false, error: `${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}` };
    }
    if (size > MAX_BUNDLE_BYTES)
      return { ok: false, error: `${path} is ${size} bytes, more than ${MAX_BUNDLE_BYTES}` };
    let digest: string;
    try {
      digest = await hashFile(path);
    } catch (err) {
      return { ok: false, error: `${path}: ${(err as Error).message}` };
    }
    const bundle = { version, digest, size, path };
    this.byDigest.set(digest, bundle);
    return { ok: true, bundle };
  }

  /** Serves `bundle` under the mesh config's pinned digest too (the proxies check the bytes). */
  pin(digest: string, bundle: Bundle): void {
    this.byDigest.set(digest, bundle);
  }

  /** The bundle announced under this hex digest (64 lower-case hex digits), if any. */
  byHex(hex: string): Bundle | undefined {
    if (!HEX.test(hex)) return undefined;
    return this.byDigest.get(`sha256:${hex}`);
  }
}
