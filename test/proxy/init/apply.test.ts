import { describe, expect, it } from 'vitest';
import { applyRules, cleanupRules, detectBackend, toolsFor } from '../../../proxy/src/init/apply.js';
import type { RunResult, Runner } from '../../../proxy/src/init/apply.js';
import { RemoraError } from '../../../proxy/src/errors.js';
import { DEFAULT_OPTIONS } from '../../../proxy/src/init/options.js';
import { renderApply } from '../../../proxy/src/init/restore.js';
import { buildRuleSet } from '../../../proxy/src/init/rules.js';

interface Call {
  cmd: string;
  args: readonly string[];
  input?: string;
}

const EMPTY_NAT = '*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n';
const ok = (stdout = ''): RunResult => ({ code: 0, stdout, stderr: '' });

/** A fake at the edge we must not touch in a unit test: the iptables binaries (recorded calls). */
function fakeRunner(answers: Record<string, RunResult | undefined>): { run: Runner; calls: Call[] } {
  const calls: Call[] = [];
  const run: Runner = (cmd, args, input) => {
    calls.push(input === undefined ? { cmd, args } : { cmd, args, input });
    return Promise.resolve(answers[cmd] ?? { code: 127, stdout: '', stderr: `${cmd}: not found` });
  };
  return { run, calls };
}

const WITH_RULES = '*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j KUBE-SERVICES\nCOMMIT\n';

describe('detectBackend (fake iptables binaries)', () => {
  it.each([
    [
      'legacy has rules, nft none',
      { 'iptables-legacy-save': ok(WITH_RULES), 'iptables-nft-save': ok('') },
      'legacy',
    ],
    [
      'nft has rules, legacy none',
      { 'iptables-legacy-save': ok(''), 'iptables-nft-save': ok(WITH_RULES) },
      'nft',
    ],
    ['only nft tools exist', { 'iptables-nft-save': ok('') }, 'nft'],
    ['only legacy tools exist', { 'iptables-legacy-save': ok('') }, 'legacy'],
    ['no versioned tools', {}, 'default'],
    [
      'neither has rules: iptables --version says legacy',
      {
        'iptables-legacy-save': ok(''),
        'iptables-nft-save': ok(''),
        iptables: ok('iptables v1.8.9 (legacy)\n'),
      },
      'legacy',
    ],
    [
      'neither has rules: iptables --version says nf_tables',
      {
        'iptables-legacy-save': ok(''),
        'iptables-nft-save': ok(''),
        iptables: ok('iptables v1.8.9 (nf_tables)\n'),
      },
      'nft',
    ],
  ] as const)('%s → %s', async (_name, answers, want) => {
    const { run } = fakeRunner(answers);
    expect(await detectBackend(run)).toBe(want);
  });
});

describe('applyRules (fake iptables binaries)', () => {
  const log = (): void => undefined;

  it('reads each family’s nat table, then restores with --noflush exactly the rendered input', async () => {
    const { run, calls } = fakeRunner({
      'iptables-nft-save': ok(EMPTY_NAT),
      'iptables-nft-restore': ok(),
      'ip6tables-nft-save': ok(EMPTY_NAT),
      'ip6tables-nft-restore': ok(),
    });
    await applyRules(DEFAULT_OPTIONS, 'nft', { run, log });
    const rs = buildRuleSet(DEFAULT_OPTIONS);
    expect(calls).toEqual([
      { cmd: 'iptables-nft-save', args: ['-t', 'nat'] },
      { cmd: 'iptables-nft-restore', args: ['--noflush'], input: renderApply(rs.ipv4, EMPTY_NAT) },
      { cmd: 'ip6tables-nft-save', args: ['-t', 'nat'] },
      { cmd: 'ip6tables-nft-restore', args: ['--noflush'], input: renderApply(rs.ipv6!, EMPTY_NAT) },
    ]);
  });

  it('--no-ipv6 never runs ip6tables', async () => {
    const { run, calls } = fakeRunner({
      'iptables-legacy-save': ok(EMPTY_NAT),
      'iptables-legacy-restore': ok(),
    });
    await applyRules({ ...DEFAULT_OPTIONS, ipv6: false }, 'legacy', { run, log });
    expect(calls.map((c) => c.cmd)).toEqual(['iptables-legacy-save', 'iptables-legacy-restore']);
  });

  it('a failing restore is an error with a code and iptables’ own message; IPv6 is not attempted', async () => {
    const { run, calls } = fakeRunner({
      'iptables-save': ok(EMPTY_NAT),
      'iptables-restore': { code: 2, stdout: '', stderr: 'iptables-restore: line 7 failed\n' },
    });
    const err = await applyRules(DEFAULT_OPTIONS, 'auto', { run, log }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RemoraError);
    expect(err).toMatchObject({ code: 'RMR_INIT_IPTABLES_FAILED' });
    expect((err as Error).message).toContain('iptables-restore exited 2: iptables-restore: line 7 failed');
    expect(calls.some((c) => c.cmd.startsWith('ip6tables'))).toBe(false);
  });
});

describe('cleanupRules (fake iptables binaries)', () => {
  it('restores a removal only where something of ours exists', async () => {
    // A restore input is also valid save output: it names our chains and the jumps to them.
    const applied = renderApply(buildRuleSet(DEFAULT_OPTIONS).ipv4, '');
    const { run, calls } = fakeRunner({
      'iptables-save': ok(applied),
      'iptables-restore': ok(),
      'ip6tables-save': ok(EMPTY_NAT),
    });
    await cleanupRules(DEFAULT_OPTIONS, 'auto', { run, log: () => undefined });
    expect(calls.map((c) => c.cmd)).toEqual([
      'iptables-legacy-save',
      'iptables-nft-save',
      'iptables-save',
      'iptables-restore',
      'ip6tables-save',
    ]);
    expect(calls[3]?.input).toContain('-X REMORA_OUTPUT');
  });
});

describe('toolsFor', () => {
  it('names the save and restore tools per backend and family', () => {
    expect(toolsFor('nft', 'ipv6')).toEqual({ save: 'ip6tables-nft-save', restore: 'ip6tables-nft-restore' });
    expect(toolsFor('legacy', 'ipv4')).toEqual({
      save: 'iptables-legacy-save',
      restore: 'iptables-legacy-restore',
    });
    expect(toolsFor('default', 'ipv4')).toEqual({ save: 'iptables-save', restore: 'iptables-restore' });
  });
});
