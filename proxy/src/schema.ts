/**
 * One way to declare a YAML (or JSON) document's schema, shared by the policy document
 * (`policy/document.ts`) and the injector's mesh config (`injector/src/config/mesh.ts`,
 * through `@remora/proxy/schema`): each field is written once, in a declaration such as
 *
 *   const RATE_LIMIT = object({
 *     requestsPerSecond: required(positive(1_000_000)),
 *     burst: int(1, 1_000_000),
 *     per: oneOf(['identity', 'global']),
 *   });
 *   type RateLimit = Infer<typeof RATE_LIMIT>;
 *
 * and the TypeScript type is derived from it. A plain type is an optional field; `required(t)`
 * and `withDefault(t, value)` say otherwise. Validation is strict (fastify's habit: check once,
 * then trust): unknown fields are refused, every problem is reported with its path
 * (`policies[0].inbound[1].ports[2]: 0 is out of range 1..65535`), lists are capped, and the text
 * reader bounds bytes, nesting and YAML alias expansions (billion laughs) and refuses duplicate
 * keys. Mappings arrive as Maps, never plain objects, so `__proto__` is just an unknown key; the
 * result is rebuilt from checked values (only the keys that were written, or defaulted) and frozen.
 */
import { parseDocument } from 'yaml';

/** Bounds on one document's text and on the report of its problems. */
export interface DocumentLimits {
  /** UTF-8 bytes of text */
  readonly maxBytes: number;
  /** YAML alias expansions (anchors are fine, a billion laughs is not) */
  readonly maxAliases: number;
  /** errors reported (a broken huge document would otherwise yield a huge message) */
  readonly maxErrors: number;
  /** characters of one `string()` value */
  readonly maxString: number;
  /** nesting of flow collections (`[`, `{`) and of block ones (indentation column) */
  readonly maxDepth: number;
  readonly maxIndent: number;
}

/** The problems found so far, each `path: reason`; at most `limits.maxErrors` are kept. */
export class Problems {
  readonly list: string[] = [];
  private dropped = 0;
  constructor(readonly limits: DocumentLimits) {}
  add(path: string, msg: string): void {
    if (this.list.length < this.limits.maxErrors) this.list.push(`${path}: ${msg}`);
    else this.dropped++;
  }
  get count(): number {
    return this.list.length + this.dropped;
  }
  result(): string[] {
    return this.dropped === 0 ? this.list : [...this.list, `... and ${this.dropped} more errors`];
  }
}

/**
 * A schema node. `parse` gets a value that is present in the document and returns the checked
 * value, or undefined (nothing to keep; a problem was added unless the type drops on purpose).
 * `presence` is set by `required()` / `withDefault()`; without it a field is optional.
 */
export interface Type<T> {
  readonly parse: (raw: unknown, path: string, p: Problems) => T | undefined;
  readonly presence?: 'required' | 'default';
  /** withDefault: the value of an absent field */
  readonly fallback?: T;
  /** object() without required fields: its defaulted fields, the value `withDefault(obj)` takes */
  readonly defaults?: T;
}

export type Infer<S> = S extends Type<infer T> ? T : never;

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- any field type; Infer recovers it
type Shape = Record<string, Type<any>>;
type Pretty<T> = { [K in keyof T]: T[K] } & {};
type PresentKeys<F> = {
  [K in keyof F]: F[K] extends { readonly presence: 'required' | 'default' } ? K : never;
}[keyof F];
type Fields<F> = { readonly [K in PresentKeys<F>]: Infer<F[K]> } & {
  readonly [K in Exclude<keyof F, PresentKeys<F>>]?: Infer<F[K]>;
};
/** `exactlyOne` keys become a union: `{ exact: string } | { prefix: string } | ...` */
type OneOf<F, X extends keyof F> = { [K in X]: { readonly [P in K]: Infer<F[P]> } }[X];
export type ObjectOf<F extends Shape, X extends keyof F = never> = [X] extends [never]
  ? Pretty<Fields<F>>
  : Pretty<Fields<Omit<F, X>>> & OneOf<F, X>;

/** The checks `refine` may make across fields of one object, after its fields passed. */
export interface RefineContext {
  /** the object's path ('' for the document) */
  readonly path: string;
  /** the field was written (a null counts as absent where `nullIsAbsent`) */
  has(key: string): boolean;
  /** reports at `path` + `.rest` (rest may hold indexes: `inbound[0].authorization`) */
  add(rest: string, msg: string): void;
  /** problems reported in the whole document so far */
  readonly problems: number;
}

export interface ObjectOptions<T, X> {
  /** exactly one of these fields is present (their type becomes a union) */
  readonly exactlyOne?: readonly X[];
  /** `field:` with no value (null) is an absent field, e.g. keeps its default */
  readonly nullIsAbsent?: boolean;
  /** cross-field checks and derived values; returns the value to keep */
  readonly refine?: (value: T, ctx: RefineContext) => T | undefined;
}

// ---------------------------------------------------------------------------------------------
// Messages.

export function show(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 80 ? `${v.slice(0, 80)}...` : v);
  if (v instanceof Map) return 'a mapping';
  if (Array.isArray(v)) return 'a list';
  if (v === null) return 'null';
  return String(v);
}

export function typeName(v: unknown): string {
  if (v instanceof Map) return 'a mapping';
  if (Array.isArray(v)) return 'a list';
  if (v === null) return 'null';
  return `a ${typeof v}`;
}

export function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

// ---------------------------------------------------------------------------------------------
// Presence.

export function required<T>(type: Type<T>): Type<T> & { readonly presence: 'required' } {
  return { parse: type.parse, presence: 'required' };
}

/** An absent field takes `value`, or the object type's own defaults when `value` is left out. */
export function withDefault<T>(type: Type<T>, value?: T): Type<T> & { readonly presence: 'default' } {
  const fallback = value !== undefined ? deepFreeze(value) : type.defaults;
  if (fallback === undefined) throw new Error('withDefault: no value, and the type has no defaults');
  return { parse: type.parse, presence: 'default', fallback };
}

// ---------------------------------------------------------------------------------------------
// Types.

/** A field written with a custom parser (reports its own problems). */
export function custom<T>(parse: (raw: unknown, path: string, p: Problems) => T | undefined): Type<T> {
  return { parse };
}

/** A string of at most `limits.maxString` characters; `check` returns the reason it is bad. */
export function string(check?: (s: string) => string | undefined): Type<string> {
  return {
    parse(v, path, p) {
      if (typeof v !== 'string') {
        p.add(path, `must be a string, got ${typeName(v)} (${show(v)})`);
        return undefined;
      }
      if (v.length > p.limits.maxString) {
        p.add(path, `is ${v.length} characters long; at most ${p.limits.maxString}`);
        return undefined;
      }
      const why = check?.(v);
      if (why !== undefined) {
        p.add(path, `${show(v)} ${why}`);
        return undefined;
      }
      return v;
    },
  };
}

export function oneOf<const T extends string>(values: readonly T[]): Type<T> {
  return string((s) =>
    (values as readonly string[]).includes(s) ? undefined : `is not one of: ${values.join(', ')}`,
  ) as Type<T>;
}

/** Exactly `value` (a version or kind string). */
export function constant<const T extends string>(value: T): Type<T> {
  return custom((v, path, p) => {
    if (v === value) return value;
    p.add(path, `${show(v)} is not supported (expected "${value}")`);
    return undefined;
  });
}

export function int(min: number, max: number): Type<number> {
  return custom((v, path, p) => {
    if (typeof v !== 'number' || !Number.isInteger(v)) {
      p.add(path, `must be an integer, got ${typeName(v)} (${show(v)})`);
      return undefined;
    }
    if (v < min || v > max) {
      p.add(path, `${v} is out of range ${min}..${max}`);
      return undefined;
    }
    return v;
  });
}

/** A finite number above 0, at most `max`. */
export function positive(max: number): Type<number> {
  return custom((v, path, p) => {
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      p.add(path, `must be a finite number, got ${typeName(v)} (${show(v)})`);
      return undefined;
    }
    if (v <= 0 || v > max) {
      p.add(path, `${v} must be above 0 and at most ${max}`);
      return undefined;
    }
    return v;
  });
}

/** true or false; `false` is kept out of the result, so only a set flag is written. */
export function flag(): Type<boolean> {
  return custom((v, path, p) => {
    if (typeof v !== 'boolean') p.add(path, `must be true or false, got ${typeName(v)} (${show(v)})`);
    return v === true ? true : undefined;
  });
}

/** A list of at most `max` (and at least `min`) entries; entries that fail are dropped. */
export function list<T>(item: Type<T>, bounds: { max: number; min?: number }): Type<readonly T[]> {
  const { max, min = 0 } = bounds;
  return custom((v, path, p) => {
    if (!Array.isArray(v)) {
      p.add(path, `must be a list, got ${typeName(v)}`);
      return undefined;
    }
    if (v.length > max) {
      p.add(path, `has ${v.length} entries; at most ${max} are allowed`);
      return undefined;
    }
    if (v.length < min) {
      p.add(path, `has ${v.length} entries; at least ${min} ${min === 1 ? 'is' : 'are'} required`);
      return undefined;
    }
    const out: T[] = [];
    for (let i = 0; i < v.length; i++) {
      const r = item.parse(v[i], `${path}[${i}]`, p);
      if (r !== undefined) out.push(r);
    }
    return out;
  });
}

/**
 * A mapping with exactly these fields, in this order (the order of the unknown-field message
 * and of checking). An object whose required field is missing or bad is dropped (undefined);
 * its other problems are still reported. At the document's root (path '') the mapping's own
 * problems are reported at `document`.
 */
export function object<const F extends Shape, const X extends keyof F & string = never>(
  fields: F,
  options: ObjectOptions<ObjectOf<F, X>, X> = {},
): Type<ObjectOf<F, X>> {
  const keys = Object.keys(fields);
  const known = new Set(keys);
  const one: readonly string[] = options.exactlyOne ?? [];
  const expected = `unknown field (expected one of: ${keys.join(', ')})`;
  const parse = (raw: unknown, path: string, p: Problems): ObjectOf<F, X> | undefined => {
    const here = path === '' ? 'document' : path;
    if (!(raw instanceof Map)) {
      p.add(here, `must be a mapping, got ${typeName(raw)}`);
      return undefined;
    }
    const given = new Map<string, unknown>();
    for (const [k, v] of raw as Map<unknown, unknown>) {
      if (typeof k !== 'string') p.add(here, `has a key that is not a string (${show(k)})`);
      else if (!known.has(k)) p.add(join(here, k), expected);
      else if (!(options.nullIsAbsent === true && v === null)) given.set(k, v);
    }
    for (const k of keys)
      if (fields[k]?.presence === 'required' && !given.has(k)) p.add(join(here, k), 'is required');
    let skipOne = false;
    if (one.length > 0) {
      const present = one.filter((k) => given.has(k));
      if (present.length !== 1) {
        skipOne = true;
        p.add(
          here,
          present.length === 0
            ? `needs one of: ${one.join(', ')}`
            : `has ${present.join(' and ')}; exactly one of ${one.join(', ')} is allowed`,
        );
      }
    }
    const out: Record<string, unknown> = {};
    let dropped = skipOne;
    for (const k of keys) {
      const f = fields[k] as Type<unknown>;
      const v =
        !given.has(k) || (skipOne && one.includes(k)) ? undefined : f.parse(given.get(k), join(path, k), p);
      if (v !== undefined) out[k] = v;
      // A bad value keeps the default too, so that `refine` sees a whole object (the problem
      // is reported; the document is refused all the same).
      else if (f.presence === 'default') out[k] = f.fallback;
      else if (f.presence === 'required') dropped = true;
    }
    if (dropped) return undefined;
    const value = out as ObjectOf<F, X>;
    if (options.refine === undefined) return value;
    return options.refine(value, {
      path,
      has: (k) => given.has(k),
      add: (rest, msg) => p.add(join(path, rest), msg),
      get problems() {
        return p.count;
      },
    });
  };
  // With no required field, an absent object can stand for its defaults (`withDefault(obj)`).
  const defaultable = one.length === 0 && keys.every((k) => fields[k]?.presence !== 'required');
  const defaults = defaultable
    ? (deepFreeze(
        Object.fromEntries(
          keys.filter((k) => fields[k]?.presence === 'default').map((k) => [k, fields[k]?.fallback]),
        ),
      ) as ObjectOf<F, X>)
    : undefined;
  return defaults === undefined ? { parse } : { parse, defaults };
}

export function deepFreeze<T>(o: T): T {
  if (o !== null && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}

// ---------------------------------------------------------------------------------------------
// The text.

export type DocumentResult<T> = { ok: true; value: T } | { ok: false; errors: string[] };

/**
 * Text → the checked, frozen value of `type`, or every problem. `ifEmpty`: the value of a
 * document with no content (blank, only comments, `~`); without it a blank text is an error.
 */
export function parseDocumentText<T>(
  text: string,
  type: Type<T>,
  limits: DocumentLimits,
  ifEmpty?: T,
): DocumentResult<T> {
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > limits.maxBytes)
    return { ok: false, errors: [`document: ${bytes} bytes; at most ${limits.maxBytes} are allowed`] };
  if (text.trim() === '' && ifEmpty === undefined) return { ok: false, errors: ['document: is empty'] };
  const read = readYaml(text, limits);
  if (!read.ok) return { ok: false, errors: [read.error] };
  if ((read.value === null || read.value === undefined) && ifEmpty !== undefined)
    return { ok: true, value: ifEmpty };
  const p = new Problems(limits);
  const value = type.parse(read.value, '', p);
  if (p.count > 0 || value === undefined) return { ok: false, errors: p.result() };
  return { ok: true, value: deepFreeze(value) };
}

/**
 * Refuses absurd nesting before the YAML parser sees it: `[[[[...` or `- - - -...` a few hundred
 * thousand deep parses for seconds before the parser's own stack gives out, while the deepest
 * legitimate document nests about ten levels. The scan is a rough upper bound (brackets inside
 * plain scalars count too), far above any real document.
 */
function nestingProblem(text: string, limits: DocumentLimits): string | undefined {
  let depth = 0;
  let quote = 0; // the open quote character, 0 outside quotes
  let column = 0; // column of the first content on this line (spaces and `- ` markers skipped)
  let leading = true;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x0a) {
      leading = true;
      column = 0;
      continue;
    }
    if (leading) {
      if (c === 0x20 || c === 0x2d || c === 0x09) {
        if (++column > limits.maxIndent)
          return `document: indented or nested deeper than ${limits.maxIndent} columns`;
        continue;
      }
      leading = false;
    }
    if (quote !== 0) {
      if (c === quote) quote = 0;
      else if (c === 0x5c && quote === 0x22) i++; // \" inside a double-quoted string
      continue;
    }
    if (c === 0x22 || c === 0x27) quote = c;
    else if (c === 0x23 && (i === 0 || text.charCodeAt(i - 1) <= 0x20)) {
      const nl = text.indexOf('\n', i);
      i = nl === -1 ? text.length : nl - 1; // a comment runs to the end of the line
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > limits.maxDepth) return `document: nested deeper than ${limits.maxDepth} levels`;
    } else if ((c === 0x5d || c === 0x7d) && depth > 0) depth--;
  }
  return undefined;
}

/** YAML (1.2, so JSON too) → a tree of Maps, arrays and scalars; or the reason it is not. */
function readYaml(
  text: string,
  limits: DocumentLimits,
): { ok: true; value: unknown } | { ok: false; error: string } {
  const deep = nestingProblem(text, limits);
  if (deep !== undefined) return { ok: false, error: deep };
  let doc;
  try {
    doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true, merge: false, strict: true });
  } catch (err) {
    return { ok: false, error: `document: not YAML or JSON: ${(err as Error).message}` };
  }
  const first = doc.errors[0];
  if (first !== undefined) {
    const at = first.linePos?.[0];
    const where = at === undefined ? '' : `line ${at.line}, column ${at.col}: `;
    return {
      ok: false,
      // prettyErrors appends " at line L, column C:" and an excerpt; keep the message, place first.
      error: `document: not valid YAML or JSON: ${where}${(first.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '')}`,
    };
  }
  try {
    return { ok: true, value: doc.toJS({ mapAsMap: true, maxAliasCount: limits.maxAliases }) };
  } catch (err) {
    // yaml refuses an alias explosion with a ReferenceError naming the resource exhaustion.
    return {
      ok: false,
      error: `document: refused: ${(err as Error).message} (at most ${limits.maxAliases} alias expansions)`,
    };
  }
}
