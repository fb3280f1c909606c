/**
 * The admin token (issue 6): the app shares the pod's loopback and could reach the admin port,
 * so state-changing admin calls need `Authorization: Bearer <token>`. The token lives in a file
 * only the proxy's user can read; it is created at start when absent (the preStop hook runs in
 * the proxy container and reads it from there).
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { TokenError } from '../errors.js';

export interface AdminToken {
  readonly token: string;
  readonly created: boolean;
  /** Set when the existing file is readable by group or others. */
  readonly warning: string | undefined;
}

/** Reads the token file, or creates it with a fresh random token and mode 0600. */
export function loadOrCreateToken(path: string): AdminToken {
  let text: string | undefined;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new TokenError(`cannot read admin token file ${path}: ${(err as Error).message}`);
    }
  }
  if (text === undefined) {
    const token = randomBytes(32).toString('hex');
    try {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      // 'wx': never overwrite a token another process just wrote.
      writeFileSync(path, `${token}\n`, { mode: 0o600, flag: 'wx' });
      chmodSync(path, 0o600);
    } catch (err) {
      throw new TokenError(`cannot create admin token file ${path}: ${(err as Error).message}`);
    }
    return { token, created: true, warning: undefined };
  }
  const token = text.trim();
  if (token.length < 16) {
    throw new TokenError(`admin token file ${path} holds fewer than 16 characters`);
  }
  const mode = statSync(path).mode & 0o077;
  const warning =
    mode !== 0
      ? `admin token file ${path} is readable by group or others (mode ${(statSync(path).mode & 0o777).toString(8)})`
      : undefined;
  return { token, created: false, warning };
}

/** Constant-time check of an `Authorization` header against the token. */
export function bearerMatches(header: string | undefined, token: string): boolean {
  if (header === undefined) return false;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (m === null) return false;
  const given = Buffer.from(m[1] ?? '');
  const want = Buffer.from(token);
  return given.length === want.length && timingSafeEqual(given, want);
}
