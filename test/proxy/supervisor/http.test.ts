/**
 * The admin API's error answers (proxy/src/supervisor/http.ts), whose codes, statuses and
 * messages come from the proxy's error registry since issue 16: real HTTP over loopback to the
 * real listeners; the Supervisor behind them is a fake (only the calls these paths make), named
 * so in the describe.
 */
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOG_LEVELS } from '../../../proxy/src/contract.js';
import { UpgradeBusyError } from '../../../proxy/src/supervisor/errors.js';
import { startServers } from '../../../proxy/src/supervisor/http.js';
import type { SupervisorServers } from '../../../proxy/src/supervisor/http.js';
import { createSupervisorLogger } from '../../../proxy/src/supervisor/log.js';
import type { Supervisor } from '../../../proxy/src/supervisor/supervisor.js';

const TOKEN = 'a-test-token-of-enough-length';
const auth = { authorization: `Bearer ${TOKEN}` };

let servers: SupervisorServers;
const logged: string[] = [];

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: unknown;
}

function call(
  method: string,
  path: string,
  headers: http.OutgoingHttpHeaders = {},
  body = '',
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port: servers.ports.admin, method, path, headers, agent: false },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (c: string) => (text += c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: JSON.parse(text) }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

beforeAll(async () => {
  const fake = {
    status: () => ({ fake: true }),
    drain: () => Promise.reject(new Error('boom')),
    upgrade: () => Promise.reject(new UpgradeBusyError('another upgrade is in progress')),
  } as unknown as Supervisor;
  const at = { host: '127.0.0.1', port: 0 };
  servers = await startServers(
    { health: at, metrics: at, admin: at },
    {
      supervisor: fake,
      token: TOKEN,
      probes: new Map(),
      log: createSupervisorLogger('info', {}, (line) => void logged.push(line)),
      quit: () => undefined,
    },
  );
});
afterAll(() => servers.close());

describe('admin API error answers (fake Supervisor, real listener)', () => {
  it('a call without the token: 401 RMR_SUP_UNAUTHORIZED with WWW-Authenticate', async () => {
    const r = await call('POST', '/drain');
    expect(r.status).toBe(401);
    expect(r.headers['www-authenticate']).toBe('Bearer');
    expect(r.body).toEqual({
      error: 'RMR_SUP_UNAUTHORIZED',
      message: 'this endpoint needs Authorization: Bearer <token from REMORA_ADMIN_TOKEN_FILE>',
    });
  });

  it('the wrong method: 405 RMR_SUP_METHOD naming the right one in the message and Allow', async () => {
    const get = await call('GET', '/drain');
    expect(get.status).toBe(405);
    expect(get.headers.allow).toBe('POST');
    expect(get.body).toEqual({ error: 'RMR_SUP_METHOD', message: '/drain needs POST' });
    const post = await call('POST', '/config');
    expect(post.status).toBe(405);
    expect(post.headers.allow).toBe('GET');
    expect(post.body).toEqual({ error: 'RMR_SUP_METHOD', message: '/config needs GET' });
  });

  it('an unknown level: 400 RMR_SUP_LOG_LEVEL listing the levels', async () => {
    const r = await call('POST', '/logging?level=loud', auth);
    expect(r.status).toBe(400);
    expect(r.body).toEqual({
      error: 'RMR_SUP_LOG_LEVEL',
      message: `level must be one of ${LOG_LEVELS.join(', ')}`,
    });
  });

  it('an unknown path: 404 RMR_SUP_NOT_FOUND', async () => {
    const r = await call('GET', '/nope');
    expect(r.status).toBe(404);
    expect(r.body).toEqual({ error: 'RMR_SUP_NOT_FOUND', message: 'no admin endpoint /nope' });
  });

  it('a malformed upgrade body: 400 RMR_SUP_UPGRADE_INVALID with every problem', async () => {
    const r = await call('POST', '/upgrade', auth, '[]');
    expect(r.status).toBe(400);
    expect(r.body).toEqual({
      error: 'RMR_SUP_UPGRADE_INVALID',
      message: 'invalid upgrade request: body must be a JSON object',
      errors: ['body must be a JSON object'],
    });
  });

  it('an upgrade while another runs: 409 RMR_SUP_BUSY', async () => {
    const r = await call('POST', '/upgrade', auth, '{}');
    expect(r.status).toBe(409);
    expect(r.body).toEqual({
      error: 'RMR_SUP_BUSY',
      message: 'cannot upgrade now: another upgrade is in progress',
    });
  });

  it("the supervisor's own failure: 500 RMR_SUP_INTERNAL with the cause", async () => {
    const r = await call('POST', '/drain', auth);
    expect(r.status).toBe(500);
    expect(r.body).toEqual({ error: 'RMR_SUP_INTERNAL', message: 'Error: boom' });
  });
});
