import { expect } from 'vitest';

/** A small well-formedness check: tags balance, attributes are quoted, no stray `&` or `<`. */
export function assertWellFormedXml(xml: string): void {
  const stack: string[] = [];
  const tag = /<(\/?)([a-zA-Z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/g;
  let last = 0;
  for (let m = tag.exec(xml); m !== null; m = tag.exec(xml)) {
    const text = xml.slice(last, m.index);
    expect(text, `text before <${m[2] ?? ''}>`).not.toMatch(/[<>]|&(?!#\d+;|amp;|lt;|gt;|quot;|apos;)/);
    last = tag.lastIndex;
    if (m[1] === '/') expect(stack.pop(), `closing </${m[2] ?? ''}>`).toBe(m[2]);
    else if (m[4] !== '/') stack.push(m[2] ?? '');
  }
  expect(xml.slice(last).trim()).toBe('');
  expect(stack).toEqual([]);
}
