import { describe, expect, it } from 'vitest';
import { median, parseHeyCsv, parseWrk, percentile } from '../../bench/tools.js';

// Recorded from `wrk -t1 -c32 -d1s --latency` against the reference nginx on this machine.
const WRK_OK = `Running 1s test @ http://127.0.0.1:18912/
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.97ms  791.90us   9.23ms   78.09%
    Req/Sec    15.62k     1.57k   19.35k    80.00%
  Latency Distribution
     50%    1.84ms
     75%    2.33ms
     90%  812.00us
     99%    1.06s
  15560 requests in 1.01s, 2.37MB read
Requests/sec:  15453.13
Transfer/sec:      2.36MB
`;

const WRK_ERRORS = `Running 1s test @ http://127.0.0.1:1/
  1 threads and 32 connections
  15 requests in 1.00s, 2.37KB read
  Socket errors: connect 3, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:     15.00
Transfer/sec:      2.36KB
`;

describe('parseWrk', () => {
  it('reads throughput, request count, duration and latency percentiles with their units', () => {
    const r = parseWrk(WRK_OK);
    expect(r.requestsPerSec).toBe(15453.13);
    expect(r.requests).toBe(15560);
    expect(r.durationSec).toBeCloseTo(1.01);
    expect(r.errors).toBe(0);
    expect(r.latencyMs.p50).toBeCloseTo(1.84);
    expect(r.latencyMs.p90).toBeCloseTo(0.812);
    expect(r.latencyMs.p99).toBeCloseTo(1060);
  });

  it('counts socket errors and non-2xx responses as errors', () => {
    const r = parseWrk(WRK_ERRORS);
    expect(r.errors).toBe(3 + 2 + 1 + 4);
    expect(Number.isNaN(r.latencyMs.p50)).toBe(true);
  });

  it('rejects output that is not a wrk report, quoting it', () => {
    expect(() => parseWrk('unable to connect to 127.0.0.1:1 Connection refused')).toThrow(
      /not a wrk report[\s\S]*refused/,
    );
    expect(() => parseWrk('')).toThrow(/not a wrk report/);
  });
});

describe('parseHeyCsv', () => {
  const csv = [
    'response-time,DNS+dialup,DNS,Request-write,Response-delay,Response-read,status-code,offset',
    '0.0016,0.0001,0.0000,0.0000,0.0014,0.0001,200,0.0220',
    '0.0004,0.0000,0.0000,0.0000,0.0002,0.0000,200,0.0201',
    '0.0033,0.0004,0.0000,0.0003,0.0026,0.0000,502,0.0208',
    '',
  ].join('\n');

  it('returns sorted latencies in ms and counts per status', () => {
    const r = parseHeyCsv(csv);
    expect(r.latenciesMs.map((v) => Number(v.toFixed(3)))).toEqual([0.4, 1.6, 3.3]);
    expect(r.statuses).toEqual({ '200': 2, '502': 1 });
  });

  it('rejects text without the CSV header and malformed rows', () => {
    expect(() => parseHeyCsv('Summary:\n  Total: 1.0 secs')).toThrow(/not hey CSV/);
    expect(() => parseHeyCsv(`${csv.split('\n')[0] ?? ''}\nabc,0,0,0,0,0,200,0`)).toThrow(
      /line 2 is malformed/,
    );
  });
});

describe('percentile and median', () => {
  const values = Array.from({ length: 100 }, (_, i) => i + 1);
  it('uses the nearest rank', () => {
    expect(percentile(values, 50)).toBe(50);
    expect(percentile(values, 99)).toBe(99);
    expect(percentile(values, 99.9)).toBe(100);
    expect(percentile([7], 50)).toBe(7);
    expect(Number.isNaN(percentile([], 50))).toBe(true);
  });
  it('takes the middle value, or the mean of the two middle ones', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(Number.isNaN(median([]))).toBe(true);
  });
});
