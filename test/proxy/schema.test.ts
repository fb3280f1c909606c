/**
 * proxy/src/schema.ts on its own: a small document declared here, text in, value or every
 * problem out. The policy document and the mesh config are tested through their parsers
 * (test/proxy/policy/document.test.ts, test/injector/config/mesh.test.ts).
 */
import { describe, expect, expectTypeOf, it } from 'vitest';
import {
  constant,
  flag,
  int,
  list,
  object,
  oneOf,
  parseDocumentText,
  positive,
  required,
  string,
  withDefault,
} from '../../proxy/src/schema.js';
import type { DocumentLimits, Infer, Type } from '../../proxy/src/schema.js';

const LIMITS: DocumentLimits = {
  maxBytes: 4096,
  maxAliases: 5,
  maxErrors: 4,
  maxString: 16,
  maxDepth: 8,
  maxIndent: 32,
};

const KEY = object(
  { exact: string(), prefix: string(), caseless: flag() },
  { exactlyOne: ['exact', 'prefix'] },
);

const LIMIT = object(
  { low: int(0, 10), high: int(0, 10) },
  {
    refine: (v, at) => {
      if (v.low !== undefined && v.high !== undefined && v.high < v.low) at.add('high', 'is below low');
      return v;
    },
  },
);

const DOC = object(
  {
    kind: required(constant('Thing')),
    name: required(string((s) => (/^[a-z]+$/.test(s) ? undefined : 'is not lower-case letters'))),
    mode: withDefault(oneOf(['fast', 'safe']), 'safe'),
    rate: positive(100),
    keys: list(KEY, { max: 3 }),
    limit: LIMIT,
    tags: withDefault(list(string(), { max: 5, min: 1 }), ['none']),
    nested: withDefault(object({ depth: withDefault(int(1, 5), 2), note: string() })),
  },
  { nullIsAbsent: true },
);
type Doc = Infer<typeof DOC>;

function parse(text: string): Doc {
  const r = parseDocumentText(text, DOC, LIMITS);
  if (!r.ok) throw new Error(r.errors.join('\n'));
  return r.value;
}
function errorsOf(text: string): string[] {
  const r = parseDocumentText(text, DOC, LIMITS);
  if (r.ok) throw new Error('the document was accepted');
  return r.errors;
}

describe('schema: the derived type', () => {
  it('required and defaulted fields are required, the rest optional, exactlyOne a union', () => {
    expectTypeOf<Doc['kind']>().toEqualTypeOf<'Thing'>();
    expectTypeOf<Doc['mode']>().toEqualTypeOf<'fast' | 'safe'>();
    expectTypeOf<Doc>().toHaveProperty('nested').toEqualTypeOf<{
      readonly depth: number;
      readonly note?: string;
    }>();
    expectTypeOf<Pick<Doc, 'rate'>>().toEqualTypeOf<{ readonly rate?: number }>();
    type Key = Infer<typeof KEY>;
    expectTypeOf<{ exact: 'a' }>().toExtend<Key>();
    expectTypeOf<{ caseless: true }>().not.toExtend<Key>();
    expectTypeOf(DOC).toExtend<Type<Doc>>();
  });
});

describe('schema: good documents', () => {
  it('keeps what was written, fills defaults (nested too), drops false flags, freezes', () => {
    const d = parse(
      'kind: Thing\nname: abc\nrate: 2.5\nkeys: [{ exact: a, caseless: true }, { prefix: b, caseless: false }]\nnested: { note: hi }',
    );
    expect(d).toEqual({
      kind: 'Thing',
      name: 'abc',
      mode: 'safe',
      rate: 2.5,
      keys: [{ exact: 'a', caseless: true }, { prefix: 'b' }],
      tags: ['none'],
      nested: { depth: 2, note: 'hi' },
    });
    expect(Object.keys(d)).toEqual(['kind', 'name', 'mode', 'rate', 'keys', 'tags', 'nested']);
    expect(Object.isFrozen(d) && Object.isFrozen(d.keys?.[0]) && Object.isFrozen(d.nested)).toBe(true);
  });

  it('nullIsAbsent: `field:` with no value keeps the default; elsewhere null is a value', () => {
    expect(parse('kind: Thing\nname: a\nmode:\nnested:').nested).toEqual({ depth: 2 });
    expect(errorsOf('kind: Thing\nname: a\nlimit: { low: null }')).toEqual([
      'limit.low: must be an integer, got null (null)',
    ]);
  });

  it('an object type without required fields has its defaults; one with them has none', () => {
    expect(DOC.defaults).toBeUndefined();
    const d = object({ a: withDefault(int(0, 9), 1), b: string() });
    expect(d.defaults).toEqual({ a: 1 });
    expect(() => withDefault(object({ a: required(string()) }))).toThrow(/no defaults/);
  });
});

describe('schema: bad documents, every problem with its path', () => {
  it.each([
    [
      'unknown field',
      'kind: Thing\nname: a\nnmae: b',
      ['document.nmae: unknown field (expected one of: kind, name, mode, rate, keys, limit, tags, nested)'],
    ],
    ['missing required', 'mode: fast', ['document.kind: is required', 'document.name: is required']],
    ['constant', 'kind: Other\nname: a', ['kind: "Other" is not supported (expected "Thing")']],
    ['custom check', 'kind: Thing\nname: A1', ['name: "A1" is not lower-case letters']],
    ['string cap', 'kind: Thing\nname: abcdefghijklmnopq', ['name: is 17 characters long; at most 16']],
    ['enum', 'kind: Thing\nname: a\nmode: slow', ['mode: "slow" is not one of: fast, safe']],
    ['positive', 'kind: Thing\nname: a\nrate: 0', ['rate: 0 must be above 0 and at most 100']],
    [
      'list cap',
      'kind: Thing\nname: a\nkeys: [{exact: a}, {exact: b}, {exact: c}, {exact: d}]',
      ['keys: has 4 entries; at most 3 are allowed'],
    ],
    ['list minimum', 'kind: Thing\nname: a\ntags: []', ['tags: has 0 entries; at least 1 is required']],
    ['not a list', 'kind: Thing\nname: a\ntags: x', ['tags: must be a list, got a string']],
    ['not a mapping', 'kind: Thing\nname: a\nlimit: 3', ['limit: must be a mapping, got a number']],
    [
      'two of exactlyOne',
      'kind: Thing\nname: a\nkeys: [{ exact: a, prefix: 1 }]',
      ['keys[0]: has exact and prefix; exactly one of exact, prefix is allowed'],
    ],
    [
      'none of exactlyOne',
      'kind: Thing\nname: a\nkeys: [{ caseless: true }]',
      ['keys[0]: needs one of: exact, prefix'],
    ],
    [
      'flag not boolean',
      'kind: Thing\nname: a\nkeys: [{ exact: a, caseless: yes }]',
      ['keys[0].caseless: must be true or false, got a string ("yes")'],
    ],
    ['refine', 'kind: Thing\nname: a\nlimit: { low: 5, high: 2 }', ['limit.high: is below low']],
    [
      'nested default object',
      'kind: Thing\nname: a\nnested: { depth: 9 }',
      ['nested.depth: 9 is out of range 1..5'],
    ],
    [
      'a key that is not a string',
      'kind: Thing\nname: a\n1: x',
      ['document: has a key that is not a string (1)'],
    ],
    [
      '__proto__ is just an unknown field',
      'kind: Thing\nname: a\n__proto__: { polluted: 1 }',
      [
        'document.__proto__: unknown field (expected one of: kind, name, mode, rate, keys, limit, tags, nested)',
      ],
    ],
    ['a list at the top', '- a', ['document: must be a mapping, got a list']],
    ['empty', ' \n', ['document: is empty']],
  ])('%s', (_name, text, expected) => {
    expect(errorsOf(text)).toEqual(expected);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('reports at most maxErrors and counts the rest', () => {
    expect(errorsOf('a: 1\nb: 2\nc: 3\nd: 4\ne: 5\nkind: Thing\nname: a')).toEqual([
      'document.a: unknown field (expected one of: kind, name, mode, rate, keys, limit, tags, nested)',
      'document.b: unknown field (expected one of: kind, name, mode, rate, keys, limit, tags, nested)',
      'document.c: unknown field (expected one of: kind, name, mode, rate, keys, limit, tags, nested)',
      'document.d: unknown field (expected one of: kind, name, mode, rate, keys, limit, tags, nested)',
      '... and 1 more errors',
    ]);
  });

  it('caps the text: bytes, nesting, indentation, alias expansions; refuses duplicate keys', () => {
    expect(errorsOf(`# ${'x'.repeat(4096)}\nkind: Thing`)).toEqual([
      'document: 4110 bytes; at most 4096 are allowed',
    ]);
    expect(errorsOf(`kind: ${'['.repeat(9)}`)).toEqual(['document: nested deeper than 8 levels']);
    expect(errorsOf(`${'- '.repeat(17)}x`)).toEqual(['document: indented or nested deeper than 32 columns']);
    expect(errorsOf('a: &a [1, 2]\nb: [*a, *a, *a, *a, *a, *a]')).toEqual([
      'document: refused: Excessive alias count indicates a resource exhaustion attack (at most 5 alias expansions)',
    ]);
    expect(errorsOf('kind: Thing\nkind: Thing')).toEqual([
      'document: not valid YAML or JSON: line 2, column 1: Map keys must be unique',
    ]);
  });

  it('ifEmpty: a document with no content is that value', () => {
    const empty = parse('kind: Thing\nname: empty');
    for (const text of ['', '# only a comment\n', '~'])
      expect(parseDocumentText(text, DOC, LIMITS, empty)).toEqual({ ok: true, value: empty });
  });
});
