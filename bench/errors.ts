/**
 * The harness's own error type: a stable code and a message "Cannot X: reason (value)", as in
 * src/errors.ts. Kept separate so the harness does not depend on the library's internals.
 */

export type BenchErrorCode =
  | 'BENCH_USAGE'
  | 'BENCH_TOOL_MISSING'
  | 'BENCH_COMMAND_FAILED'
  | 'BENCH_FIXTURE_FAILED'
  | 'BENCH_FSCK_FAILED'
  | 'BENCH_BAD_OUTPUT'
  | 'BENCH_CLEANUP_FAILED';

export class BenchError extends Error {
  constructor(
    readonly code: BenchErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'BenchError';
  }
}

/** Builds the error "Cannot WHAT: REASON (VALUE)". */
export function benchError(code: BenchErrorCode, what: string, reason: string, value?: string, cause?: unknown): BenchError {
  const msg = `Cannot ${what}: ${reason}${value === undefined ? '' : ` (${value})`}`;
  return new BenchError(code, msg, cause === undefined ? undefined : { cause });
}

export function benchFail(code: BenchErrorCode, what: string, reason: string, value?: string, cause?: unknown): never {
  throw benchError(code, what, reason, value, cause);
}
