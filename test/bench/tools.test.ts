import { describe, expect, it } from 'vitest';
import {
  cpuUsPerRequest,
  median,
  parseHeyCsv,
  parseProcStat,
  parseSmapsRollup,
  parseWrk,
  percentile,
} from '../../bench/tools.js';

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
  it('is not moved up a rank by float error (p99.9 of 1000 values is the 999th)', () => {
    const thousand = Array.from({ length: 1000 }, (_, k) => k + 1);
    expect(percentile(thousand, 99.9)).toBe(999);
    expect(percentile(thousand, 99)).toBe(990);
    expect(percentile(thousand, 100)).toBe(1000);
  });

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

// Recorded from this machine: an engine's /proc/<pid>/stat, and a name with spaces and parentheses.
const STAT_ENGINE =
  '4242 (node) S 4200 4200 4200 0 -1 4194560 5123 0 0 0 731 208 3 1 20 0 11 0 10532 1234567168 18000 18446744073709551615 1 1 0 0 0 0 0 16781312 134235650 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0';
const STAT_ODD_NAME =
  '77 (my (odd) proc) R 1 77 77 0 -1 4194304 100 0 0 0 12 34 56 78 20 0 1 0 100 1000 10 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0';

describe('parseProcStat', () => {
  it('reads ppid and the CPU fields, counting from the last parenthesis of the name', () => {
    expect(parseProcStat(STAT_ENGINE)).toEqual({
      comm: 'node',
      ppid: 4200,
      utime: 731,
      stime: 208,
      cutime: 3,
      cstime: 1,
    });
    expect(parseProcStat(STAT_ODD_NAME)).toEqual({
      comm: 'my (odd) proc',
      ppid: 1,
      utime: 12,
      stime: 34,
      cutime: 56,
      cstime: 78,
    });
  });

  it('rejects text that is not a stat line, quoting it', () => {
    expect(() => parseProcStat('')).toThrow(/not a \/proc\/<pid>\/stat line/);
    expect(() => parseProcStat('4242 node S 4200')).toThrow(/"4242 node S 4200"/);
    expect(() => parseProcStat('4242 (node) S 4200 1 2')).toThrow(/not a/);
    expect(() => parseProcStat(STAT_ENGINE.replace(' 731 ', ' x '))).toThrow(/not a/);
  });
});

// Recorded: /proc/<pid>/smaps_rollup of an engine on Linux 6.1.
const SMAPS = `55d1c8a00000-7ffd2c1ff000 ---p 00000000 00:00 0                          [rollup]
Rss:               58424 kB
Pss:               31160 kB
Pss_Dirty:         20044 kB
Pss_Anon:          19816 kB
Pss_File:          11344 kB
Pss_Shmem:             0 kB
Shared_Clean:      27500 kB
Shared_Dirty:        228 kB
Private_Clean:       880 kB
Private_Dirty:     19816 kB
Referenced:        58424 kB
Anonymous:         19816 kB
Swap:                  0 kB
SwapPss:               0 kB
Locked:                0 kB
`;

describe('parseSmapsRollup', () => {
  it('reads RSS, PSS with its anonymous and file parts, and the private pages', () => {
    expect(parseSmapsRollup(SMAPS)).toEqual({
      rssKb: 58424,
      pssKb: 31160,
      pssAnonKb: 19816,
      pssFileKb: 11344,
      privateKb: 20696,
    });
  });

  it('takes Pss, not Pss_Dirty or SwapPss, and tolerates kernels without Pss_Anon/Pss_File', () => {
    const old = SMAPS.split('\n')
      .filter((l) => !/^Pss_/.test(l))
      .join('\n');
    expect(parseSmapsRollup(old)).toMatchObject({ pssKb: 31160, pssAnonKb: 0, pssFileKb: 0 });
  });

  it('rejects text without a Pss line (a process gone, a kernel without smaps_rollup)', () => {
    expect(() => parseSmapsRollup('')).toThrow(/no "Pss: N kB" line/);
    expect(() => parseSmapsRollup(SMAPS.replace(/^Pss: .*$/m, 'Pss: lots'))).toThrow(/no "Pss: N kB"/);
  });
});

describe('cpuUsPerRequest', () => {
  it('turns clock ticks into µs per request at USER_HZ 100 (or another rate)', () => {
    // 73 ticks = 730 ms of CPU over 10,000 requests = 73 µs each.
    expect(cpuUsPerRequest(73, 10_000)).toBeCloseTo(73);
    expect(cpuUsPerRequest(0, 10_000)).toBe(0);
    expect(cpuUsPerRequest(250, 10_000, 250)).toBeCloseTo(100);
  });

  it('is NaN, never Infinity, when nothing was served or the ticks went backwards', () => {
    expect(cpuUsPerRequest(5, 0)).toBeNaN();
    expect(cpuUsPerRequest(-1, 100)).toBeNaN();
  });
});
