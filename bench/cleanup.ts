/**
 * Cleanups run last-in-first-out, each one even when an earlier one failed, and their failures
 * are collected and reported, never swallowed (as firecracker-go-sdk's machine.go does). The
 * stacks still open are kept in a set so a SIGINT handler can unwind them all: a loop mount left
 * behind by an interrupted benchmark would otherwise outlive it.
 */
import { BenchError } from './errors.js';

type Step = { name: string; fn: () => Promise<void> };

const open = new Set<Cleanups>();

export class Cleanups {
  private readonly steps: Step[] = [];
  private unwinding: Promise<Error[]> | undefined;

  constructor() {
    open.add(this);
  }

  /**
   * Registers a cleanup; returns a function that runs it now and, if it succeeds, takes it off
   * the stack (if it fails it stays, to be tried again when the stack unwinds).
   */
  push(name: string, fn: () => Promise<void>): () => Promise<void> {
    const step: Step = { name, fn };
    this.steps.push(step);
    return async () => {
      await fn();
      const i = this.steps.lastIndexOf(step);
      if (i >= 0) this.steps.splice(i, 1);
    };
  }

  /**
   * Runs every registered cleanup, newest first. Returns the failures. A second caller (the
   * signal handler racing the normal path) waits for the same unwinding instead of starting a
   * parallel one, so order holds: unmount before removing the directory holding the mount.
   */
  runAll(): Promise<Error[]> {
    this.unwinding ??= this.unwind();
    return this.unwinding;
  }

  private async unwind(): Promise<Error[]> {
    const failures: Error[] = [];
    for (let step = this.steps.pop(); step !== undefined; step = this.steps.pop()) {
      try {
        await step.fn();
      } catch (e) {
        failures.push(new BenchError('BENCH_CLEANUP_FAILED', `Cannot clean up (${step.name}): ${(e as Error).message}`, { cause: e }));
      }
    }
    // Only now: runAllOpenCleanups() must still find (and wait for) a stack being unwound.
    open.delete(this);
    return failures;
  }
}

/**
 * Runs `body` with a fresh cleanup stack and unwinds it afterwards. A body failure wins; cleanup
 * failures are attached to it as an AggregateError, or thrown alone when the body succeeded.
 */
export async function withCleanups<T>(body: (c: Cleanups) => Promise<T>): Promise<T> {
  const c = new Cleanups();
  let result: T;
  try {
    result = await body(c);
  } catch (e) {
    const failures = await c.runAll();
    if (failures.length > 0) throw new AggregateError([e, ...failures], (e as Error).message);
    throw e;
  }
  const failures = await c.runAll();
  if (failures.length === 1) throw failures[0];
  if (failures.length > 1) throw new AggregateError(failures, failures.map((f) => f.message).join('; '));
  return result;
}

/** Unwinds every open stack, or waits for the unwinding under way (for a signal handler); returns all failures. */
export async function runAllOpenCleanups(): Promise<Error[]> {
  const failures: Error[] = [];
  for (const c of [...open].reverse()) failures.push(...(await c.runAll()));
  return failures;
}
