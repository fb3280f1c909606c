/**
 * Writes the ustar archives engine bundles are (docs/upgrades.md): regular files and
 * directories only, long paths split into ustar's prefix and name, every mtime 0 and entries
 * sorted, so the same tree always packs to the same bytes (and the same digest).
 */
import { gzipSync } from 'node:zlib';

export interface TarEntry {
  readonly path: string;
  /** absent: a directory */
  readonly data?: Buffer;
}

function splitPath(path: string): { prefix: string; name: string } {
  if (Buffer.byteLength(path) <= 100) return { prefix: '', name: path };
  for (let i = path.indexOf('/'); i >= 0; i = path.indexOf('/', i + 1)) {
    const prefix = path.slice(0, i);
    const name = path.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(name) <= 100 && name !== '')
      return { prefix, name };
  }
  throw new Error(`tar: path too long for ustar: ${path}`);
}

function octal(n: number, width: number): string {
  return `${n.toString(8).padStart(width - 1, '0')}\0`;
}

function header(path: string, size: number, dir: boolean): Buffer {
  const h = Buffer.alloc(512);
  const { prefix, name } = splitPath(dir ? `${path}/` : path);
  h.write(name, 0, 100, 'utf8');
  h.write(octal(dir ? 0o755 : 0o644, 8), 100, 'ascii');
  h.write(octal(0, 8), 108, 'ascii');
  h.write(octal(0, 8), 116, 'ascii');
  h.write(octal(size, 12), 124, 'ascii');
  h.write(octal(0, 12), 136, 'ascii');
  h.write('        ', 148, 'ascii');
  h.write(dir ? '5' : '0', 156, 'ascii');
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  h.write(prefix, 345, 155, 'utf8');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return h;
}

/** The uncompressed archive. */
export function writeTar(entries: readonly TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of [...entries].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))) {
    const data = e.data;
    parts.push(header(e.path, data?.length ?? 0, data === undefined));
    if (data !== undefined) {
      parts.push(data);
      const pad = (512 - (data.length % 512)) % 512;
      if (pad > 0) parts.push(Buffer.alloc(pad));
    }
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

/** The archive, gzip'ed: an engine bundle's bytes. */
export function packTarGz(entries: readonly TarEntry[]): Buffer {
  return gzipSync(writeTar(entries), { level: 9 });
}
