import { describe, expect, it } from 'vitest';
import { EXIT, main, spawnRunner } from '../../../proxy/src/init/cli.js';
import type { Runner } from '../../../proxy/src/init/apply.js';
import { dryRunText } from '../../../proxy/src/init/apply.js';
import { DEFAULT_OPTIONS } from '../../../proxy/src/init/options.js';

function harness(run: Runner = () => Promise.reject(new Error('must not run anything'))) {
  const out: string[] = [];
  const err: string[] = [];
  const calls: string[] = [];
  const recording: Runner = (cmd, args, input) => {
    calls.push(cmd);
    return run(cmd, args, input);
  };
  return {
    deps: { run: recording, stdout: (t: string) => out.push(t), stderr: (t: string) => err.push(t) },
    out,
    err,
    calls,
  };
}

describe('remora-init main (fake iptables binaries)', () => {
  it('bad flags: exit 2, every error printed, nothing run', async () => {
    const h = harness();
    const code = await main(
      ['--inbound-port', 'x', '--exclude-outbound-cidrs', '1.2.3.4/40', '--nope'],
      h.deps,
    );
    expect(code).toBe(EXIT.usage);
    expect(h.calls).toEqual([]);
    const text = h.err.join('');
    expect(text).toContain('--inbound-port: "x" is not a port');
    expect(text).toContain('--exclude-outbound-cidrs: "1.2.3.4/40" has a prefix length above 32');
    expect(text).toContain('--nope: unknown flag');
    expect(text).toContain('Usage: remora-init');
  });

  it('--dry-run prints both restore inputs and runs nothing', async () => {
    const h = harness();
    expect(await main(['--dry-run'], h.deps)).toBe(EXIT.ok);
    expect(h.calls).toEqual([]);
    expect(h.out.join('')).toBe(dryRunText(DEFAULT_OPTIONS));
    expect(h.out.join('')).toContain('# ip6tables-restore --noflush');
  });

  it('an iptables failure: exit 1 with the code and the tool’s message', async () => {
    const h = harness((cmd) =>
      Promise.resolve(
        cmd.endsWith('-restore')
          ? { code: 1, stdout: '', stderr: "can't initialize iptables table `nat'" }
          : { code: 0, stdout: '', stderr: '' },
      ),
    );
    expect(await main(['--iptables-backend=nft'], h.deps)).toBe(EXIT.failed);
    expect(h.err.join('')).toContain(
      "RMR_INIT_IPTABLES_FAILED: applying the rules: iptables-nft-restore exited 1: can't initialize",
    );
  });
});

describe('spawnRunner', () => {
  it('feeds stdin and reports the exit code; a missing binary is code 127, not a throw', async () => {
    expect(await spawnRunner('sh', ['-c', 'cat; exit 3'], 'hello')).toEqual({
      code: 3,
      stdout: 'hello',
      stderr: '',
    });
    const missing = await spawnRunner('remora-no-such-tool', []);
    expect(missing.code).toBe(127);
    expect(missing.stderr).toContain('ENOENT');
  });
});
