#!/usr/bin/env node
/**
 * The demo's client, run as its own process so it can be placed in the client network
 * namespace (`ip netns exec`). Commands:
 *   traffic <base url>   send the request mix, print one JSON line per request
 *   wait <url> [s]       poll until the URL answers 200 (10 s at most unless given)
 *   get <url>            print the body (exit 1 unless 200)
 *   traced <url> <traceparent>
 *                        one GET carrying a W3C traceparent, print its status
 *   steady <url> <gap ms> <max s>
 *                        sequential GETs, each on a new connection, <gap ms> apart, one JSON
 *                        line per request with its start/end time and error code if it
 *                        failed; stops on SIGTERM (after the request in flight) or after <max s>
 *   upgrade <url> <token file>
 *                        POST the URL with the bearer token read from the file, print the body
 */
import { readFileSync } from 'node:fs';
import { request } from 'node:http';

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

async function wait(url: string, seconds = '10'): Promise<void> {
  const deadline = Date.now() + Number(seconds) * 1000;
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
  throw new Error(`${url} did not answer 200 within ${seconds} s (last: ${last})`);
}

async function get(url: string): Promise<void> {
  const res = await fetch(url);
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${url} answered ${res.status}: ${text.slice(0, 200)}`);
  process.stdout.write(text);
}

async function traced(url: string, traceparent = ''): Promise<void> {
  const res = await fetch(url, { headers: { traceparent } });
  const text = await res.text();
  process.stdout.write(`${JSON.stringify({ status: res.status, response: text.trim() })}\n`);
}

/** One GET on a fresh connection (no keep-alive): every request is a new accept by the proxy. */
function once(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, timeout: 15_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
    req.end();
  });
}

async function steady(url: string, gapArg = '50', maxArg = '30'): Promise<void> {
  const gap = Number(gapArg);
  const until = Date.now() + Number(maxArg) * 1000;
  let stop = false;
  process.on('SIGTERM', () => (stop = true));
  while (!stop && Date.now() < until) {
    const start = Date.now();
    let line: Record<string, unknown>;
    try {
      const status = await once(url);
      line = { start, end: Date.now(), status };
    } catch (e) {
      line = { start, end: Date.now(), error: (e as NodeJS.ErrnoException).code ?? (e as Error).message };
    }
    process.stdout.write(`${JSON.stringify(line)}\n`);
    await new Promise((r) => setTimeout(r, gap));
  }
}

async function upgrade(url: string, tokenFile = ''): Promise<void> {
  const token = readFileSync(tokenFile, 'utf8').trim();
  const res = await fetch(url, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: '{}',
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${url} answered ${res.status}: ${text.slice(0, 300)}`);
  process.stdout.write(text);
}

const [command, url, ...rest] = process.argv.slice(2);
const commands: Record<string, (u: string, ...args: string[]) => Promise<void>> = {
  traffic,
  wait,
  get,
  traced,
  steady,
  upgrade,
};
const run = command === undefined ? undefined : commands[command];
if (run === undefined || url === undefined) {
  process.stderr.write(
    'usage: client traffic <base url> | wait <url> | get <url> | traced <url> <traceparent>\n' +
      '       | steady <url> <gap ms> <max s> | upgrade <url> <token file>\n',
  );
  process.exitCode = 2;
} else {
  run(url, ...rest).catch((e: unknown) => {
    process.stderr.write(`client ${command ?? ''}: ${(e as Error).message}\n`);
    process.exitCode = 1;
  });
}
