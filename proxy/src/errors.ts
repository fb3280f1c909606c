/**
 * Every error the proxy raises on purpose, in one file (STYLE.md #5): a stable `code`
 * (`RMR_...`, never reused), a `name`, and a default message. `rescue.ts` maps them to responses.
 */
export class RemoraError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** Invalid configuration at start (exit non-zero) or at reload (keep the last good one). */
export class ConfigError extends RemoraError {
  readonly errors: readonly string[];
  constructor(errors: readonly string[]) {
    super('RMR_CONFIG_INVALID', `invalid configuration:\n  - ${errors.join('\n  - ')}`);
    this.errors = Object.freeze([...errors]);
  }
}
