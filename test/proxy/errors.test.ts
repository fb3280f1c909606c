import { describe, expect, it } from 'vitest';
import { ConfigError, RemoraError } from '../../proxy/src/errors.js';

describe('errors', () => {
  it('ConfigError lists every error and carries a stable code', () => {
    const e = new ConfigError(['REMORA_INBOUND_PORT: not a port: "x"', 'REMORA_LOG_LEVEL: unknown level']);
    expect(e).toBeInstanceOf(RemoraError);
    expect(e.code).toBe('RMR_CONFIG_INVALID');
    expect(e.name).toBe('ConfigError');
    expect(e.message).toContain('REMORA_INBOUND_PORT');
    expect(e.message).toContain('REMORA_LOG_LEVEL');
  });
});
