/**
 * Named start steps (firecracker-go-sdk's HandlerList habit): a VM starts as a list of named
 * steps, so a failure says which step failed and a test can replace one. Cleanups registered by
 * steps run last-in first-out, and every failure among them is reported, none swallowed.
 */
import { RootforgeError } from '../errors.js';

export interface Step<C> {
  name: string;
  run(ctx: C): Promise<void>;
}

export class Cleanups {
  private readonly fns: { name: string; fn: () => Promise<void> | void }[] = [];

  add(name: string, fn: () => Promise<void> | void): void {
    this.fns.push({ name, fn });
  }

  /** Runs every cleanup, newest first; returns the failures. */
  async run(): Promise<Error[]> {
    const failures: Error[] = [];
    while (this.fns.length > 0) {
      const { name, fn } = this.fns.pop()!;
      try {
        await fn();
      } catch (e) {
        failures.push(new Error(`cleanup "${name}" failed: ${(e as Error).message}`, { cause: e }));
      }
    }
    return failures;
  }
}

/** Runs the steps in order; a failure is rethrown with the step's name in front. */
export async function runSteps<C>(steps: Step<C>[], ctx: C): Promise<void> {
  for (const step of steps) {
    try {
      await step.run(ctx);
    } catch (e) {
      if (e instanceof RootforgeError) {
        throw new RootforgeError(e.code, `${e.message} [step ${step.name}]`, { cause: e.cause ?? e });
      }
      throw new RootforgeError('VM_START_FAILED', `Cannot start VM: step ${step.name} failed: ${(e as Error).message}`, { cause: e });
    }
  }
}
