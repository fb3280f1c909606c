#!/usr/bin/env node
/**
 * The demo's client, run as its own process so it can be placed in the client network
 * namespace (`ip netns exec`). Commands:
 *   traffic <base url>   send the request mix, print one JSON line per request
 *   wait <url>           poll until the URL answers 200 (10 s at most)
 *   get <url>            print the body (exit 1 unless 200)
 */

interface Call {
  readonly method: 'GET' | 'POST';
  readonly path: string;
  readonly body?: unknown;
}

/** The mix: mostly reads, one write, one unknown route (404), one failing route (500). */
const TRAFFIC: readonly Call[] = [
  { method: 'GET', path: '/' },
  { method: 'GET', path: '/items/1' },
  { method: 'GET', path: '/items/2' },
  { method: 'POST', path: '/orders', body: { item: 2, quantity: 3 } },
  { method: 'GET', path: '/items/3' },
  { method: 'GET', path: '/missing' },
  { method: 'GET', path: '/fail' },
  { method: 'GET', path: '/' },
  { method: 'POST', path: '/orders', body: { item: 1, quantity: 1 } },
  { method: 'GET', path: '/items/4' },
];

async function traffic(base: string): Promise<void> {
  for (const call of TRAFFIC) {
    const t0 = performance.now();
    const res = await fetch(new URL(call.path, base), {
      method: call.method,
      ...(call.body === undefined
        ? {}
        : { body: JSON.stringify(call.body), headers: { 'content-type': 'application/json' } }),
    });
    const text = await res.text();
    const ms = performance.now() - t0;
    process.stdout.write(`${JSON.stringify({ ...call, status: res.status, ms, response: text.trim() })}\n`);
  }
}

async function wait(url: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const res = await fetch(url);
      await res.arrayBuffer();
      if (res.status === 200) return;
      last = `status ${res.status}`;
    } catch (e) {
      last = (e as Error).message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} did not answer 200 within 10 s (last: ${last})`);
}

async function get(url: string): Promise<void> {
  const res = await fetch(url);
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${url} answered ${res.status}: ${text.slice(0, 200)}`);
  process.stdout.write(text);
}

const [command, url] = process.argv.slice(2);
const commands: Record<string, (u: string) => Promise<void>> = { traffic, wait, get };
const run = command === undefined ? undefined : commands[command];
if (run === undefined || url === undefined) {
  process.stderr.write('usage: client traffic <base url> | wait <url> | get <url>\n');
  process.exitCode = 2;
} else {
  run(url).catch((e: unknown) => {
    process.stderr.write(`client ${command ?? ''}: ${(e as Error).message}\n`);
    process.exitCode = 1;
  });
}
