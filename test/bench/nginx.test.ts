import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  leafExtension,
  opensslCommands,
  renderNginxConf,
  renderNginxMeshConfs,
  renderSplitNginxConfs,
} from '../../bench/nginx.js';
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

describe("the bench's own nginx configs", () => {
  it('splits the reference in two processes: the backend alone, the proxy alone', () => {
    const { backend, proxy } = renderSplitNginxConfs({
      dir: '/tmp/remora-bench-x',
      backendPort: 18001,
      proxyPort: 18002,
    });
    expect(backend).toContain('listen 127.0.0.1:18001;');
    expect(backend).toContain('return 200 "hello world\\n";');
    expect(backend).not.toMatch(/proxy_pass|18002/);
    expect(proxy).toContain('listen 127.0.0.1:18002;');
    expect(proxy).toContain('upstream app { server 127.0.0.1:18001; keepalive 64; }');
    expect(proxy).not.toMatch(/return 200/);
    // Two processes, two pid files: neither may overwrite the other's.
    expect(backend.match(/pid (\S+);/)?.[1]).not.toBe(proxy.match(/pid (\S+);/)?.[1]);
    for (const conf of [backend, proxy]) {
      expect(conf).toContain('worker_processes 1;');
      for (const path of conf.matchAll(/(?:pid|error_log|_temp_path) (\S+);/g))
        expect(path[1]?.startsWith('/tmp/remora-bench-x/')).toBe(true);
    }
  });

  it("writes the mesh hop of ../shared/bench/nginx-mesh-hop.sh: mutual TLS 1.3, B's name verified, keep-alive", () => {
    const { pki } = opensslCommands('/tmp/remora-bench-x');
    const { a, b } = renderNginxMeshConfs({
      dir: '/tmp/remora-bench-x',
      backendPort: 18001,
      aPort: 18602,
      bPort: 18603,
      pki,
    });
    expect(a).toContain('upstream b { server 127.0.0.1:18603; keepalive 64; }');
    expect(a).toContain('proxy_pass https://b;');
    expect(a).toContain('proxy_ssl_verify on; proxy_ssl_name b.mesh.local; proxy_ssl_session_reuse on;');
    expect(a).toContain(`proxy_ssl_certificate ${pki.aCert};`);
    expect(b).toContain('listen 127.0.0.1:18603 ssl;');
    expect(b).toContain(`ssl_client_certificate ${pki.ca}; ssl_verify_client on;`);
    expect(b).toContain('upstream app { server 127.0.0.1:18001; keepalive 64; }');
    expect(leafExtension('b')).toBe(
      'subjectAltName=URI:spiffe://cluster.local/ns/bench/sa/b,DNS:b.mesh.local\n',
    );
    expect(() => renderNginxMeshConfs({ dir: '/tmp/a', backendPort: 1, aPort: 2, bPort: 0, pki })).toThrow(
      /bPort 0 is not a port/,
    );
    expect(() =>
      renderNginxMeshConfs({
        dir: '/tmp/a',
        backendPort: 1,
        aPort: 2,
        bPort: 3,
        pki: { ...pki, ca: '/tmp/a b/ca.pem' },
      }),
    ).toThrow(/misread/);
  });

  const tools = missingPrerequisite({ tools: ['nginx', 'openssl'] });
  it.skipIf(tools !== undefined)(`all four pass nginx -t, with the PKI openssl makes ${tools ?? ''}`, () => {
    const dir = mkdtempSync(join(tmpdir(), 'remora-bench-test-'));
    try {
      const made = opensslCommands(dir);
      for (const n of ['a', 'b']) writeFileSync(join(dir, `mesh-${n}.ext`), leafExtension(n));
      for (const args of made.commands) execFileSync('openssl', args, { stdio: 'ignore' });
      const san = execFileSync(
        'openssl',
        ['x509', '-in', made.pki.bCert, '-noout', '-ext', 'subjectAltName'],
        {
          encoding: 'utf8',
        },
      );
      expect(san).toContain('URI:spiffe://cluster.local/ns/bench/sa/b');
      const split = renderSplitNginxConfs({ dir, backendPort: 18001, proxyPort: 18002 });
      const mesh = renderNginxMeshConfs({
        dir,
        backendPort: 18001,
        aPort: 18602,
        bPort: 18603,
        pki: made.pki,
      });
      for (const [name, conf] of Object.entries({ ...split, ...mesh })) {
        const file = join(dir, `${name}.conf`);
        writeFileSync(file, conf);
        const out = execFileSync(
          'sh',
          ['-c', `nginx -t -p ${dir} -e ${join(dir, 'error.log')} -c ${file} 2>&1`],
          {
            encoding: 'utf8',
          },
        );
        expect(out, name).toMatch(/syntax is ok/);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
