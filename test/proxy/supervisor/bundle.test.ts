/**
 * Engine bundles on the proxy's side (docs/upgrades.md): the digest is checked before anything
 * is written, the archive is checked member by member before anything is unpacked, and a version
 * directory is never replaced. Archives are built with the injector's writer (and read by GNU
 * tar too, so operators may pack bundles with `tar --format=ustar`).
 */
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { packTarGz, writeTar } from '../../../injector/src/engine/tar.js';
import { buildEngineBundle } from '../../../injector/src/engine/build.js';
import { ensureBundle, sha256 } from '../../../proxy/src/supervisor/bundle-fetch.js';
import { parseTar, unpackBundle } from '../../../proxy/src/supervisor/bundle-tar.js';
import { BundleDigestError, BundleError } from '../../../proxy/src/supervisor/errors.js';

const dirs: string[] = [];
function temp(): string {
  const d = mkdtempSync(join(tmpdir(), 'remora-bundle-'));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const PROXY_DIR = fileURLToPath(new URL('../../../proxy/', import.meta.url));

function minimal(version: string, extra: { path: string; data?: Buffer }[] = []): Buffer {
  return packTarGz([
    { path: 'engine.js', data: Buffer.from('export {};\n') },
    { path: 'manifest.json', data: Buffer.from(JSON.stringify({ version })) },
    ...extra,
  ]);
}

/** A raw ustar header with any name and type (what an attacker's archive would hold). */
function rawMember(name: string, type: string, data = Buffer.alloc(0)): Buffer {
  const tar = writeTar([{ path: 'x', data }]);
  const h = Buffer.from(tar.subarray(0, 512));
  h.fill(0, 0, 100);
  h.write(name, 0, 100, 'utf8');
  h.write(type, 156, 'ascii');
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return Buffer.concat([h, tar.subarray(512)]);
}

describe('engine bundle archives', () => {
  it('a bundle built from the tree lists with GNU tar and unpacks with engine.js, the stamped VERSION and the addons', () => {
    const out = temp();
    const b = buildEngineBundle({ proxyDir: PROXY_DIR, version: 'v2', outDir: out });
    expect(b.digest).toBe(sha256(readFileSync(b.path)));
    const listing = execFileSync('tar', ['tzf', b.path], { encoding: 'utf8' });
    expect(listing).toContain('proxy/dist/engine-child.js');
    const dest = join(temp(), 'v2');
    unpackBundle(readFileSync(b.path), dest);
    expect(readFileSync(join(dest, 'engine.js'), 'utf8')).toContain('./proxy/dist/engine-child.js');
    expect(readFileSync(join(dest, 'proxy/dist/contract.js'), 'utf8')).toContain(
      "export const VERSION = '0.1.0+v2';",
    );
    expect(JSON.parse(readFileSync(join(dest, 'manifest.json'), 'utf8'))).toMatchObject({ version: 'v2' });
    expect(existsSync(join(dest, 'proxy/native/build/Release/fdutil.node'))).toBe(true);
    // the same tree packs to the same bytes
    expect(buildEngineBundle({ proxyDir: PROXY_DIR, version: 'v2', outDir: temp() }).digest).toBe(b.digest);
  });

  it('members that could escape or are not plain files are refused before anything is written', () => {
    const cases: [Buffer, RegExp][] = [
      [rawMember('../evil.js', '0'), /bad path segment "\.\."/],
      [rawMember('/etc/passwd', '0'), /not a relative path/],
      [rawMember('a/../../b', '0'), /bad path segment/],
      [rawMember('link', '2'), /type "2": only regular files and directories/],
      [rawMember('hard', '1'), /type "1"/],
      [rawMember('././@LongLink', 'L'), /bad path segment|type "L"/],
      [rawMember('pax', 'x'), /type "x"/],
    ];
    for (const [tar, re] of cases) {
      expect(() => parseTar(tar)).toThrow(re);
      const dest = join(temp(), 'out');
      expect(() => unpackBundle(gzipSync(tar), dest)).toThrow(BundleError);
      expect(existsSync(dest)).toBe(false);
    }
    // the same member twice (the second would overwrite what was checked first)
    const once = writeTar([{ path: 'a', data: Buffer.from('1') }]);
    expect(() => parseTar(Buffer.concat([once.subarray(0, 1024), once]))).toThrow(/appears twice/);
    const under = packTarGz([
      { path: 'a', data: Buffer.from('file') },
      { path: 'a/b', data: Buffer.from('under a file') },
    ]);
    expect(() => unpackBundle(under, join(temp(), 'o'))).toThrow(/lies under the file a/);
  });

  it('a gzip bomb stops at the unpacked-size cap; too many members and junk are refused', () => {
    const bomb = packTarGz([{ path: 'zeros', data: Buffer.alloc(8 * 1024 * 1024) }]);
    expect(bomb.length).toBeLessThan(64 * 1024);
    expect(() =>
      unpackBundle(bomb, join(temp(), 'o'), { maxUnpackedBytes: 1024 * 1024, maxEntries: 10 }),
    ).toThrow(/unpacks to more than 1048576 bytes/);
    const many = packTarGz(Array.from({ length: 12 }, (_, i) => ({ path: `f${i}`, data: Buffer.from('x') })));
    expect(() =>
      unpackBundle(many, join(temp(), 'o'), { maxUnpackedBytes: 1 << 20, maxEntries: 10 }),
    ).toThrow(/more than 10 members/);
    expect(() => unpackBundle(Buffer.from('not gzip at all'), join(temp(), 'o'))).toThrow(/not gzip/);
  });
});

describe('ensureBundle', () => {
  it('verifies the digest, unpacks into <root>/<version>, links node_modules, and reuses it next time', async () => {
    const root = temp();
    const gz = minimal('v2');
    let downloads = 0;
    const download = (): Promise<Buffer> => {
      downloads++;
      return Promise.resolve(gz);
    };
    const r = await ensureBundle({ root, version: 'v2', digest: sha256(gz), download });
    expect(r).toMatchObject({ dir: join(root, 'v2'), fetched: true, bytes: gz.length });
    expect(readFileSync(join(root, 'v2', '.digest'), 'utf8').trim()).toBe(sha256(gz));
    expect(lstatSync(join(root, 'node_modules')).isSymbolicLink()).toBe(true);
    expect(existsSync(join(root, 'node_modules', 'pino', 'package.json'))).toBe(true);
    expect(await ensureBundle({ root, version: 'v2', digest: sha256(gz), download })).toMatchObject({
      fetched: false,
    });
    expect(downloads).toBe(1);
  });

  it('regression: a tampered bundle (digest mismatch) writes nothing at all', async () => {
    const root = temp();
    const gz = minimal('v3');
    const tampered = Buffer.from(gz);
    tampered[tampered.length - 20] = (tampered[tampered.length - 20] as number) ^ 0xff;
    const err = await ensureBundle({
      root,
      version: 'v3',
      digest: sha256(gz),
      download: () => Promise.resolve(tampered),
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BundleDigestError);
    expect((err as BundleDigestError).actual).toBe(sha256(tampered));
    expect(readdirSync(root)).toEqual([]);
  });

  it('a version directory is immutable; a manifest naming another version and a missing engine.js are refused', async () => {
    const root = temp();
    mkdirSync(join(root, 'v2'));
    writeFileSync(join(root, 'v2', '.digest'), `sha256:${'0'.repeat(64)}\n`);
    const gz = minimal('v2');
    await expect(
      ensureBundle({ root, version: 'v2', digest: sha256(gz), download: () => Promise.resolve(gz) }),
    ).rejects.toThrow(/a version name is immutable/);
    const other = minimal('v9');
    await expect(
      ensureBundle({ root, version: 'v4', digest: sha256(other), download: () => Promise.resolve(other) }),
    ).rejects.toThrow(/manifest.json names version "v9"/);
    const noEntry = packTarGz([{ path: 'manifest.json', data: Buffer.from('{"version":"v5"}') }]);
    await expect(
      ensureBundle({
        root,
        version: 'v5',
        digest: sha256(noEntry),
        download: () => Promise.resolve(noEntry),
      }),
    ).rejects.toThrow(/no engine.js/);
    // nothing half-unpacked is left behind
    expect(readdirSync(root).sort()).toEqual(['v2']);
  });
});
