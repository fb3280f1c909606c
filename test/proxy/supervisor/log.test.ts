import { describe, expect, it } from 'vitest';
import { createSupervisorLogger } from '../../../proxy/src/supervisor/log.js';

function capture(level: Parameters<typeof createSupervisorLogger>[0]) {
  const lines: Record<string, unknown>[] = [];
  const log = createSupervisorLogger(level, { component: 'remora-proxy', pid: 7 }, (l) => {
    expect(l.endsWith('\n')).toBe(true);
    lines.push(JSON.parse(l) as Record<string, unknown>);
  });
  return { log, lines };
}

describe('supervisor logger (pino-compatible JSON lines without pino)', () => {
  it('writes level label, ISO time, base fields, bindings, the object and msg', () => {
    const { log, lines } = capture('info');
    log.child({ role: 'supervisor' }).warn({ event: 'degraded_mode_started', n: 1 }, 'degraded');
    expect(lines).toHaveLength(1);
    const l = lines[0] as Record<string, unknown>;
    expect(l).toMatchObject({
      level: 'warn',
      component: 'remora-proxy',
      pid: 7,
      role: 'supervisor',
      event: 'degraded_mode_started',
      n: 1,
      msg: 'degraded',
    });
    expect(new Date(l.time as string).toISOString()).toBe(l.time);
  });

  it('filters by level; a level set on the root applies to its children (admin /logging)', () => {
    const { log, lines } = capture('info');
    const child = log.child({ role: 'x' });
    child.debug({ event: 'a' });
    expect(lines).toHaveLength(0);
    expect(child.isLevelEnabled('debug')).toBe(false);
    log.level = 'debug';
    child.debug({ event: 'b' });
    expect(lines.map((l) => l.event)).toEqual(['b']);
    expect(child.level).toBe('debug');
    log.level = 'silent';
    child.fatal({ event: 'c' });
    expect(lines).toHaveLength(1);
  });

  it('serializes errors (with code and cause) and survives a cyclic object', () => {
    const { log, lines } = capture('info');
    const err = Object.assign(new Error('boom', { cause: new Error('root') }), { code: 'EBOOM' });
    log.error({ err }, 'failed');
    expect(lines[0]?.err).toMatchObject({
      type: 'Error',
      message: 'boom',
      code: 'EBOOM',
      cause: { message: 'root' },
    });
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    log.warn({ cyclic }, 'odd');
    expect(lines[1]).toMatchObject({ level: 'warn', msg: 'odd', logError: 'unserializable fields' });
  });
});
