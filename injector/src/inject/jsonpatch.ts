/**
 * RFC 6902 JSON Patch: the operation type, RFC 6901 pointer escaping, and a small applier. The
 * webhook only builds patches (the API server applies them); `remora inject` and the tests apply
 * the very same patch with `applyPatch`, so the CLI's output is what the webhook would produce.
 */
import type { Json } from './types.js';

export type JsonPatchOp =
  | { op: 'add' | 'replace' | 'test'; path: string; value: unknown }
  | { op: 'remove'; path: string }
  | { op: 'move' | 'copy'; from: string; path: string };

/** Escapes one reference token (RFC 6901 §3): `~` → `~0`, `/` → `~1`. */
export function escapePointer(token: string): string {
  return token.replace(/~/g, '~0').replace(/\//g, '~1');
}

export function pointer(...tokens: (string | number)[]): string {
  return tokens.map((t) => `/${escapePointer(String(t))}`).join('');
}

function parsePointer(p: string): string[] {
  if (p === '') return [];
  if (!p.startsWith('/')) throw new Error(`JSON pointer ${JSON.stringify(p)} must start with "/"`);
  return p
    .slice(1)
    .split('/')
    .map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
}

type Container = Record<string, unknown> | unknown[];

function isContainer(v: unknown): v is Container {
  return typeof v === 'object' && v !== null;
}

function arrayIndex(arr: unknown[], token: string, forAdd: boolean): number {
  if (forAdd && token === '-') return arr.length;
  if (!/^(0|[1-9]\d*)$/.test(token)) throw new Error(`bad array index ${JSON.stringify(token)}`);
  const i = Number(token);
  if (i > arr.length || (!forAdd && i === arr.length)) throw new Error(`array index ${i} out of bounds`);
  return i;
}

function resolveParent(doc: unknown, tokens: string[], path: string): Container {
  let cur: unknown = doc;
  for (const t of tokens.slice(0, -1)) {
    if (Array.isArray(cur)) cur = cur[arrayIndex(cur, t, false)];
    else if (isContainer(cur) && Object.prototype.hasOwnProperty.call(cur, t))
      cur = (cur as Record<string, unknown>)[t];
    else throw new Error(`path ${path}: ${JSON.stringify(t)} does not exist`);
  }
  if (!isContainer(cur)) throw new Error(`path ${path}: parent is not an object or array`);
  return cur;
}

function getAt(doc: unknown, path: string): unknown {
  let cur: unknown = doc;
  for (const t of parsePointer(path)) {
    if (Array.isArray(cur)) cur = cur[arrayIndex(cur, t, false)];
    else if (isContainer(cur) && Object.prototype.hasOwnProperty.call(cur, t))
      cur = (cur as Record<string, unknown>)[t];
    else throw new Error(`path ${path} does not exist`);
  }
  return cur;
}

function clone<T>(v: T): T {
  return v === undefined ? v : (JSON.parse(JSON.stringify(v)) as T);
}

function addAt(doc: unknown, path: string, value: unknown): unknown {
  const tokens = parsePointer(path);
  if (tokens.length === 0) return value;
  const parent = resolveParent(doc, tokens, path);
  const last = tokens[tokens.length - 1] as string;
  if (Array.isArray(parent)) parent.splice(arrayIndex(parent, last, true), 0, value);
  else parent[last] = value;
  return doc;
}

function removeAt(doc: unknown, path: string): unknown {
  const tokens = parsePointer(path);
  if (tokens.length === 0) throw new Error('cannot remove the whole document');
  const parent = resolveParent(doc, tokens, path);
  const last = tokens[tokens.length - 1] as string;
  if (Array.isArray(parent)) parent.splice(arrayIndex(parent, last, false), 1);
  else {
    if (!Object.prototype.hasOwnProperty.call(parent, last)) throw new Error(`path ${path} does not exist`);
    delete parent[last];
  }
  return doc;
}

/** Replaces in place, so a replaced field keeps its position in the printed object. */
function replaceAt(doc: unknown, path: string, value: unknown): unknown {
  const tokens = parsePointer(path);
  if (tokens.length === 0) return value;
  getAt(doc, path);
  const parent = resolveParent(doc, tokens, path);
  const last = tokens[tokens.length - 1] as string;
  if (Array.isArray(parent)) parent[arrayIndex(parent, last, false)] = value;
  else parent[last] = value;
  return doc;
}

/** Applies `ops` to a deep copy of `doc` and returns it; throws on the first failing operation. */
export function applyPatch<T>(doc: T, ops: readonly JsonPatchOp[]): T {
  let out: unknown = clone(doc);
  for (const op of ops) {
    switch (op.op) {
      case 'add':
        out = addAt(out, op.path, clone(op.value));
        break;
      case 'remove':
        out = removeAt(out, op.path);
        break;
      case 'replace':
        out = replaceAt(out, op.path, clone(op.value));
        break;
      case 'test':
        if (JSON.stringify(getAt(out, op.path)) !== JSON.stringify(op.value)) {
          throw new Error(`test failed at ${op.path}`);
        }
        break;
      case 'move': {
        const v = getAt(out, op.from);
        out = addAt(removeAt(out, op.from), op.path, v);
        break;
      }
      case 'copy':
        out = addAt(out, op.path, clone(getAt(out, op.from)));
        break;
    }
  }
  return out as T;
}

export type { Json };
