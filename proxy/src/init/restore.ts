/**
 * Turns a rule set into iptables-restore input, given what the nat table holds now (the output
 * of `iptables-save -t nat`). Pure. The input is meant for `iptables-restore --noflush`, which
 * applies it in one transaction: either every line takes effect or none does.
 *
 * Idempotence: a `:CHAIN - [0:0]` line creates our chain or, when it exists, flushes it, so our
 * chains are refilled from scratch on every run; jumps from built-in chains are only appended
 * when missing, and stale or duplicate ones are deleted, so a second run changes nothing.
 */
import { CHAIN_NAMES } from './rules.js';
import type { FamilyRules } from './rules.js';

/** What of ours a nat table holds now. */
export interface OwnState {
  /** Our chains that exist. */
  readonly chains: readonly string[];
  /** Rules in other chains that jump to ours, as `-A CHAIN ...` lines, in table order. */
  readonly jumps: readonly string[];
}

const OWN = new Set(CHAIN_NAMES);

/** Reads our chains and the jumps to them from the `*nat` section of iptables-save output. */
export function parseOwnState(save: string): OwnState {
  const chains: string[] = [];
  const jumps: string[] = [];
  let inNat = false;
  for (const raw of save.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('*')) inNat = line === '*nat';
    else if (line === 'COMMIT') inNat = false;
    else if (!inNat) continue;
    else if (line.startsWith(':')) {
      const name = line.slice(1).split(' ')[0] ?? '';
      if (OWN.has(name)) chains.push(name);
    } else if (line.startsWith('-A ')) {
      const chain = line.split(' ')[1] ?? '';
      const target = /(?:^| )-[jg] (\S+)/.exec(line)?.[1];
      if (!OWN.has(chain) && target !== undefined && OWN.has(target)) jumps.push(line);
    }
  }
  return { chains, jumps };
}

function deleteLine(appendLine: string): string {
  return `-D ${appendLine.slice('-A '.length)}`;
}

/** Restore input that installs `rules` into a table whose current save output is `save`. */
export function renderApply(rules: FamilyRules, save: string): string {
  const state = parseOwnState(save);
  const lines = ['*nat', ...rules.chains.map((c) => `:${c} - [0:0]`)];
  // Keep one copy of each wanted jump where it is; delete the rest (stale flags, duplicates).
  const wanted = new Set(rules.jumps);
  const kept = new Set<string>();
  for (const j of state.jumps) {
    if (wanted.has(j) && !kept.has(j)) kept.add(j);
    else lines.push(deleteLine(j));
  }
  // Chains of ours that this rule set no longer uses would be left dangling: remove them.
  const stale = state.chains.filter((c) => !rules.chains.includes(c));
  for (const c of stale) lines.push(`-F ${c}`);
  for (const c of stale) lines.push(`-X ${c}`);
  lines.push(...rules.rules);
  for (const j of rules.jumps) if (!kept.has(j)) lines.push(j);
  lines.push('COMMIT', '');
  return lines.join('\n');
}

/**
 * Restore input that removes our jumps and chains and nothing else, or undefined when the table
 * holds nothing of ours (cleanup is idempotent too).
 */
export function renderCleanup(save: string): string | undefined {
  const state = parseOwnState(save);
  if (state.chains.length === 0 && state.jumps.length === 0) return undefined;
  return [
    '*nat',
    ...state.jumps.map(deleteLine),
    // Flush all before deleting any: our chains reference each other.
    ...state.chains.map((c) => `-F ${c}`),
    ...state.chains.map((c) => `-X ${c}`),
    'COMMIT',
    '',
  ].join('\n');
}
