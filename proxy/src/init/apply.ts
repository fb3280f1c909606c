/**
 * The I/O shell around the pure rule set: picks the iptables backend, reads the nat table,
 * writes the restore input. Every command goes through an injected runner (STYLE #8), so unit
 * tests see the exact commands and inputs and the end-to-end tests run the real binaries.
 */
import { IptablesFailedError } from '../errors.js';
import type { BackendChoice, InitOptions } from './options.js';
import { renderApply, renderCleanup } from './restore.js';
import { buildRuleSet } from './rules.js';
import type { Family, FamilyRules } from './rules.js';

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `cmd args`, feeding `input` on stdin. Resolves with the exit code; never rejects on one. */
export type Runner = (cmd: string, args: readonly string[], input?: string) => Promise<RunResult>;

export type Backend = 'legacy' | 'nft' | 'default';

export interface Tools {
  readonly save: string;
  readonly restore: string;
}

/** Command names per backend and family. `default` is whatever plain `iptables` points at. */
export function toolsFor(backend: Backend, family: Family): Tools {
  const base = family === 'ipv4' ? 'iptables' : 'ip6tables';
  const suffix = backend === 'default' ? '' : `-${backend}`;
  return { save: `${base}${suffix}-save`, restore: `${base}${suffix}-restore` };
}

/** Rules in a save output: lines that append to a chain. */
function countRules(save: string): number {
  return save.split('\n').filter((l) => l.startsWith('-A ')).length;
}

/**
 * Picks the backend the node already uses, as Istio does: the one of iptables-legacy-save and
 * iptables-nft-save that shows existing rules (a CNI or kubelet wrote them, and mixing backends
 * in one namespace leaves two rule sets that both apply). With rules in both or neither, what
 * `iptables --version` reports. When the versioned tools are missing, the plain ones.
 */
export async function detectBackend(run: Runner): Promise<Backend> {
  const legacy = await run('iptables-legacy-save', []);
  const nft = await run('iptables-nft-save', []);
  const legacyRules = legacy.code === 0 ? countRules(legacy.stdout) : -1;
  const nftRules = nft.code === 0 ? countRules(nft.stdout) : -1;
  if (legacyRules < 0 && nftRules < 0) return 'default';
  if (legacyRules > 0 && nftRules <= 0) return 'legacy';
  if (nftRules > 0 && legacyRules <= 0) return 'nft';
  if (legacyRules < 0) return 'nft';
  if (nftRules < 0) return 'legacy';
  const version = await run('iptables', ['--version']);
  if (version.code === 0 && version.stdout.includes('legacy')) return 'legacy';
  return 'nft';
}

export interface InitDeps {
  readonly run: Runner;
  /** Progress lines for the operator (stderr in the CLI). */
  readonly log: (line: string) => void;
}

function commandError(what: string, cmd: string, res: RunResult): IptablesFailedError {
  return new IptablesFailedError(what, cmd, res.code, (res.stderr || res.stdout).trim());
}

async function resolveBackend(choice: BackendChoice, deps: InitDeps): Promise<Backend> {
  const backend = choice === 'auto' ? await detectBackend(deps.run) : choice;
  deps.log(`iptables backend: ${backend}${choice === 'auto' ? ' (detected)' : ''}`);
  return backend;
}

async function readNat(tools: Tools, run: Runner): Promise<string> {
  const res = await run(tools.save, ['-t', 'nat']);
  if (res.code !== 0) throw commandError('reading the nat table', tools.save, res);
  return res.stdout;
}

async function restore(tools: Tools, input: string, run: Runner): Promise<void> {
  const res = await run(tools.restore, ['--noflush'], input);
  if (res.code !== 0) throw commandError('applying the rules', tools.restore, res);
}

function families(rules: { ipv4: FamilyRules; ipv6?: FamilyRules }): FamilyRules[] {
  return rules.ipv6 ? [rules.ipv4, rules.ipv6] : [rules.ipv4];
}

/** Installs the rule set; a second run with the same options changes nothing. */
export async function applyRules(opts: InitOptions, backend: BackendChoice, deps: InitDeps): Promise<void> {
  const b = await resolveBackend(backend, deps);
  for (const rules of families(buildRuleSet(opts))) {
    const tools = toolsFor(b, rules.family);
    const input = renderApply(rules, await readNat(tools, deps.run));
    await restore(tools, input, deps.run);
    deps.log(`${rules.family}: ${rules.rules.length} rules in ${rules.chains.length} chains applied`);
  }
}

/** Removes our chains and the jumps to them, IPv4 and (unless --no-ipv6) IPv6; nothing else. */
export async function cleanupRules(opts: InitOptions, backend: BackendChoice, deps: InitDeps): Promise<void> {
  const b = await resolveBackend(backend, deps);
  const fams: Family[] = opts.ipv6 ? ['ipv4', 'ipv6'] : ['ipv4'];
  for (const family of fams) {
    const tools = toolsFor(b, family);
    const input = renderCleanup(await readNat(tools, deps.run));
    if (input === undefined) {
      deps.log(`${family}: nothing of Remora's to remove`);
      continue;
    }
    await restore(tools, input, deps.run);
    deps.log(`${family}: Remora's chains and jumps removed`);
  }
}

/** The restore inputs a fresh namespace would get, for --dry-run. Touches nothing. */
export function dryRunText(opts: InitOptions): string {
  return families(buildRuleSet(opts))
    .map((r) => `# ${toolsFor('default', r.family).restore} --noflush\n${renderApply(r, '')}`)
    .join('\n');
}
