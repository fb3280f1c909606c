/**
 * Unpacks an engine bundle (docs/upgrades.md): a gzip'ed ustar archive of regular files and
 * directories only. Called only after the archive's sha256 matched the digest the control plane
 * announced, and still careful, because the digest says who built it, not that it is harmless
 * to unpack: no absolute paths, no `..`, no links, devices or extended headers, a cap on the
 * unpacked size (a gzip bomb stops at the cap, not at the disk) and on the number of entries.
 * Everything is checked before the first file is written.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { BundleError } from './errors.js';

export interface UnpackLimits {
  /** bytes of the unpacked archive (headers included) */
  readonly maxUnpackedBytes: number;
  readonly maxEntries: number;
}

export const DEFAULT_UNPACK_LIMITS: UnpackLimits = Object.freeze({
  maxUnpackedBytes: 256 * 1024 * 1024,
  maxEntries: 20_000,
});

interface Entry {
  readonly path: string;
  readonly dir: boolean;
  readonly data: Buffer;
}

/** One path segment: what npm packages and our build write; no `.`/`..`, no control bytes. */
const SEGMENT = /^(?!\.{1,2}$)[A-Za-z0-9._@+~-]{1,255}$/;

function field(block: Buffer, start: number, len: number): string {
  const raw = block.subarray(start, start + len);
  const nul = raw.indexOf(0);
  return raw.subarray(0, nul < 0 ? len : nul).toString('utf8');
}

function octal(block: Buffer, start: number, len: number, what: string): number {
  // GNU base-256 sizes (high bit set) are for files over 8 GiB: far beyond any cap here.
  if ((block[start] ?? 0) & 0x80) throw new BundleError(`tar: ${what} in base-256 form is not supported`);
  const s = field(block, start, len).trim();
  if (!/^[0-7]*$/.test(s)) throw new BundleError(`tar: ${what} ${JSON.stringify(s)} is not octal`);
  return s === '' ? 0 : parseInt(s, 8);
}

/** Checks a member name and returns it normalized (no trailing slash). */
function checkPath(name: string): string {
  const trimmed = name.replace(/\/+$/, '').replace(/^\.\//, '');
  if (trimmed === '' || trimmed.startsWith('/'))
    throw new BundleError(`tar: member ${JSON.stringify(name)} is not a relative path`);
  for (const seg of trimmed.split('/'))
    if (!SEGMENT.test(seg))
      throw new BundleError(
        `tar: member ${JSON.stringify(name)} has a bad path segment ${JSON.stringify(seg)}`,
      );
  return trimmed;
}

/** Parses a (gunzipped) ustar archive; throws BundleError naming the first problem. */
export function parseTar(tar: Buffer, limits: UnpackLimits = DEFAULT_UNPACK_LIMITS): Entry[] {
  const out: Entry[] = [];
  const seen = new Set<string>();
  let off = 0;
  for (;;) {
    if (off + 512 > tar.length) throw new BundleError('tar: truncated archive (no end marker)');
    const block = tar.subarray(off, off + 512);
    if (block.every((b) => b === 0)) return out;
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : (block[i] as number);
    if (octal(block, 148, 8, 'checksum') !== sum) throw new BundleError(`tar: bad header checksum at ${off}`);
    const type = String.fromCharCode(block[156] as number);
    const prefix = field(block, 345, 155);
    const base = field(block, 0, 100);
    const name = prefix === '' ? base : `${prefix}/${base}`;
    const size = octal(block, 124, 12, 'size');
    off += 512;
    const dir = type === '5';
    if (!dir && type !== '0' && type !== '\0')
      throw new BundleError(
        `tar: member ${JSON.stringify(name)} has type ${JSON.stringify(type)}: only regular files and directories are allowed`,
      );
    if (dir && size !== 0) throw new BundleError(`tar: directory ${JSON.stringify(name)} has a size`);
    if (off + size > tar.length) throw new BundleError(`tar: member ${JSON.stringify(name)} is truncated`);
    const path = checkPath(name);
    if (seen.has(path)) throw new BundleError(`tar: member ${JSON.stringify(path)} appears twice`);
    seen.add(path);
    out.push({ path, dir, data: tar.subarray(off, off + size) });
    if (out.length > limits.maxEntries) throw new BundleError(`tar: more than ${limits.maxEntries} members`);
    off += Math.ceil(size / 512) * 512;
  }
}

/**
 * Unpacks the gzip'ed archive into `dest` (which must not exist yet), after checking every
 * member. Returns the number of files written.
 */
export function unpackBundle(gz: Buffer, dest: string, limits: UnpackLimits = DEFAULT_UNPACK_LIMITS): number {
  let tar: Buffer;
  try {
    tar = gunzipSync(gz, { maxOutputLength: limits.maxUnpackedBytes });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError)
      throw new BundleError(`bundle unpacks to more than ${limits.maxUnpackedBytes} bytes`);
    throw new BundleError(`bundle is not gzip: ${e.message}`);
  }
  const entries = parseTar(tar, limits);
  // A file whose parent is a file would be written through nothing we checked: refuse it.
  const files = new Set(entries.filter((e) => !e.dir).map((e) => e.path));
  for (const e of entries) {
    for (let p = dirname(e.path); p !== '.'; p = dirname(p))
      if (files.has(p)) throw new BundleError(`tar: ${JSON.stringify(e.path)} lies under the file ${p}`);
  }
  mkdirSync(dest, { mode: 0o755 });
  let n = 0;
  for (const e of entries) {
    const at = join(dest, e.path);
    if (e.dir) {
      mkdirSync(at, { recursive: true, mode: 0o755 });
      continue;
    }
    mkdirSync(dirname(at), { recursive: true, mode: 0o755 });
    // `wx`: never through something that already exists (a link could not, but be plain about it)
    writeFileSync(at, e.data, { flag: 'wx', mode: 0o644 });
    n++;
  }
  return n;
}
