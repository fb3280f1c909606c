import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderNginxConf } from '../../bench/nginx.js';
import { missingPrerequisite } from '../helpers/env.js';

describe('reference nginx config', () => {
  it('fills in ports and keeps every file nginx writes inside the temp dir', () => {
    const conf = renderNginxConf({ dir: '/tmp/remora-bench-x', backendPort: 18001, proxyPort: 18002 });
    expect(conf).not.toMatch(/BACKEND_PORT|PROXY_PORT|PID_FILE|ERROR_LOG|TEMP_PATHS/);
    expect(conf).toContain('listen 127.0.0.1:18001;');
    expect(conf).toContain('listen 127.0.0.1:18002;');
    expect(conf).toContain('server 127.0.0.1:18001; keepalive 64;');
    expect(conf).toContain('worker_processes 1;');
    for (const path of conf.matchAll(/(?:pid|error_log|_temp_path) (\S+);/g)) {
      expect(path[1]?.startsWith('/tmp/remora-bench-x/')).toBe(true);
    }
  });

  it('rejects a port out of range and a directory nginx would misparse', () => {
    expect(() => renderNginxConf({ dir: '/tmp/a', backendPort: 0, proxyPort: 1 })).toThrow(
      /backendPort 0 is not a port/,
    );
    expect(() => renderNginxConf({ dir: '/tmp/a', backendPort: 1, proxyPort: 70000 })).toThrow(
      /proxyPort 70000/,
    );
    expect(() => renderNginxConf({ dir: '/tmp/a b', backendPort: 1, proxyPort: 2 })).toThrow(/misread/);
  });

  const missing = missingPrerequisite({ tools: ['nginx'] });
  it.skipIf(missing !== undefined)(`passes nginx -t ${missing ?? ''}`, () => {
    const dir = mkdtempSync(join(tmpdir(), 'remora-bench-test-'));
    try {
      const conf = join(dir, 'nginx.conf');
      writeFileSync(conf, renderNginxConf({ dir, backendPort: 18001, proxyPort: 18002 }));
      const out = execFileSync(
        'sh',
        ['-c', `nginx -t -p ${dir} -e ${join(dir, 'error.log')} -c ${conf} 2>&1`],
        {
          encoding: 'utf8',
        },
      );
      expect(out).toMatch(/syntax is ok/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
