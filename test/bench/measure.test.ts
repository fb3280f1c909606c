import { describe, expect, it } from 'vitest';
import { latencyOf, roleOf, rotate } from '../../bench/measure.js';
import { plan, PortPool, portsNeeded } from '../../bench/paths.js';

describe('alternation', () => {
  it('rotates the order each round, so no path always runs first', () => {
    expect(rotate(['a', 'b', 'c'], 0)).toEqual(['a', 'b', 'c']);
    expect(rotate(['a', 'b', 'c'], 1)).toEqual(['b', 'c', 'a']);
    expect(rotate(['a', 'b', 'c'], 5)).toEqual(['c', 'a', 'b']);
    expect(rotate([], 3)).toEqual([]);
  });

  it("puts a baseline tree's run of a Remora path right after this tree's (A B A B)", () => {
    expect(plan(['direct', 'remora', 'nginx', 'mesh-remora', 'mesh-nginx'], true)).toEqual([
      { path: 'direct', tree: 'current' },
      { path: 'remora', tree: 'current' },
      { path: 'remora', tree: 'baseline' },
      { path: 'nginx', tree: 'current' },
      { path: 'mesh-remora', tree: 'current' },
      { path: 'mesh-remora', tree: 'baseline' },
      { path: 'mesh-nginx', tree: 'current' },
    ]);
    expect(plan(['remora', 'remora-telemetry'], false).map((p) => p.tree)).toEqual(['current', 'current']);
  });
});

describe('ports', () => {
  it('sizes one batch for every process a run starts, and never hands a port out twice', () => {
    expect(portsNeeded(['direct', 'nginx'], false)).toBe(7);
    expect(portsNeeded(['remora', 'mesh-remora'], false)).toBe(7 + 5 + 12);
    expect(portsNeeded(['remora', 'mesh-remora'], true)).toBe(7 + 10 + 24);
    const pool = new PortPool([1001, 1002]);
    expect([pool.take(), pool.take()]).toEqual([1001, 1002]);
    expect(() => pool.take()).toThrow(/out of ports/);
  });
});

describe('figures of the fixed-rate runs', () => {
  it('names each process by its place in the tree', () => {
    expect(roleOf('remora', true, 'remora')).toBe('supervisor');
    expect(roleOf('remora', false, 'remora')).toBe('engine');
    expect(roleOf('nginx', true, 'nginx-proxy')).toBe('nginx master');
    expect(roleOf('nginx', false, 'nginx-proxy')).toBe('nginx worker');
    expect(roleOf('node', true, 'http-proxy')).toBe('http-proxy');
  });

  it('pools the rounds: percentiles by nearest rank, the achieved rate over all the seconds', () => {
    const sorted = Array.from({ length: 1000 }, (_, i) => (i + 1) / 100); // 0.01 .. 10 ms
    const l = latencyOf(sorted, { '200': 1000 }, 1000, 2);
    expect(l.percentilesMs['50']).toBe(5);
    expect(l.percentilesMs['99']).toBe(9.9);
    expect(l.percentilesMs['99.9']).toBe(9.99);
    expect(l.achievedRps).toBe(500);
    expect(l.maxMs).toBe(10);
    expect(l.meanMs).toBe(5.005);
    const none = latencyOf([], {}, 1000, 2);
    expect(none.requests).toBe(0);
    expect(none.percentilesMs['50']).toBeNaN();
  });
});
