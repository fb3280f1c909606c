// Self instructions per request by function, from the dumps instructions-per-request.sh keeps
// (KEEP=/tmp/x.out NODE_EXTRA=--perf-basic-prof: x.out and x.out.map). callgrind names JIT code
// by address only; the engine's perf map (--perf-basic-prof) names it ("JS:*parseFields
// proxy/dist/http1/head.js": the tree's path, line and column dropped so two builds line up).
//   node bench/ab/callgrind-symbols.mjs A.out [REQUESTS]           one dump, the top 60
//   node bench/ab/callgrind-symbols.mjs A.out B.out [REQUESTS]     B - A per function, largest first
// REQUESTS is what the counted run served (COUNT, 2000 by default).
import { existsSync, readFileSync } from 'node:fs';

const args = process.argv.slice(2);
const n = /^\d+$/.test(args.at(-1) ?? '') ? Number(args.pop()) : 2000;

function perfMap(file) {
  const ranges = [];
  if (!existsSync(file)) return ranges;
  for (const line of readFileSync(file, 'latin1').split('\n')) {
    const m = /^([0-9a-f]+) ([0-9a-f]+) (.*)$/.exec(line);
    if (m)
      ranges.push([
        parseInt(m[1], 16),
        parseInt(m[2], 16),
        // the tree's own path left out, so a function of two trees (A/B) is one row
        m[3].replace(/:\d+:\d+$/, '').replace(/file:\/\/\/\S*?\/proxy\/dist\//, 'proxy/dist/'),
      ]);
  }
  return ranges.sort((a, b) => a[0] - b[0]);
}

function nameAt(ranges, addr) {
  let lo = 0;
  let hi = ranges.length - 1;
  let i = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (ranges[mid][0] <= addr) {
      i = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  // Code moves and is collected: the latest entry at or below that covers the address.
  for (let k = i; k >= 0 && k > i - 50; k--)
    if (addr < ranges[k][0] + ranges[k][1]) return `JIT ${ranges[k][2]}`;
  return 'JIT ?';
}

/** Self cost per function name: cost lines outside a call record (callgrind's format). */
function selfCosts(file) {
  const ranges = perfMap(`${file}.map`);
  const names = new Map();
  const out = new Map();
  let cur;
  let inCall = false;
  for (const line of readFileSync(file, 'latin1').split('\n')) {
    const fn = /^(c?)fn=\((\d+)\)(?: (.*))?$/.exec(line);
    if (fn) {
      if (fn[3] !== undefined) names.set(fn[2], fn[3]);
      if (fn[1] === '') {
        cur = names.get(fn[2]);
        inCall = false;
      }
      continue;
    }
    if (line.startsWith('calls=')) {
      inCall = true;
      continue;
    }
    if (!/^[\d+\-*]/.test(line)) continue;
    if (inCall) {
      inCall = false; // the inclusive cost of that call
      continue;
    }
    const cost = Number(line.split(' ')[1]);
    if (cur === undefined || !Number.isFinite(cost)) continue;
    const name = /^0x([0-9a-f]+)$/.test(cur) ? nameAt(ranges, parseInt(cur, 16)) : cur;
    out.set(name, (out.get(name) ?? 0) + cost);
  }
  return out;
}

const a = selfCosts(args[0]);
const total = (m) => [...m.values()].reduce((x, y) => x + y, 0);
if (args.length === 1) {
  console.log(`${Math.round(total(a) / n)} instructions per request`);
  for (const [k, v] of [...a].sort((x, y) => y[1] - x[1]).slice(0, 60))
    console.log(`${String(Math.round(v / n)).padStart(8)}  ${k.slice(0, 140)}`);
} else {
  const b = selfCosts(args[1]);
  console.log(`${Math.round(total(a) / n)} -> ${Math.round(total(b) / n)} instructions per request`);
  const keys = new Set([...a.keys(), ...b.keys()]);
  const rows = [...keys].map((k) => [k, (b.get(k) ?? 0) - (a.get(k) ?? 0), a.get(k) ?? 0, b.get(k) ?? 0]);
  rows.sort((x, y) => Math.abs(y[1]) - Math.abs(x[1]));
  for (const [k, d, x, y] of rows.slice(0, 60))
    console.log(
      `${String(Math.round(d / n)).padStart(8)} ${String(Math.round(x / n)).padStart(8)} ${String(Math.round(y / n)).padStart(8)}  ${k.slice(0, 120)}`,
    );
}
