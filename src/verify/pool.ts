/** Bounded concurrency: image reads overlap in libuv's thread pool, but thousands at once only queue. */

/**
 * Maps `items` through `fn` with at most `limit` calls in flight; results keep the input order.
 * After a failure no new call starts and the running ones finish before the first error is thrown.
 */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (!failed && next < items.length) {
      const i = next++;
      try {
        out[i] = await fn(items[i]!, i);
      } catch (e) {
        failed = true;
        throw e;
      }
    }
  };
  const settled = await Promise.allSettled(Array.from({ length: Math.min(limit, items.length) }, worker));
  const rejected = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (rejected) throw rejected.reason;
  return out;
}

/**
 * Runs `fn` over a queue that `fn` may add to (a tree walk), at most `limit` at a time. After
 * a failure no new item starts; the ones running finish (so nothing still reads an image that
 * the caller is about to close), then the first error is thrown.
 */
export async function drain<T>(initial: readonly T[], limit: number, fn: (item: T, push: (item: T) => void) => Promise<void>): Promise<void> {
  const queue = [...initial];
  let active = 0;
  let failed: { error: unknown } | undefined;
  await new Promise<void>((resolve) => {
    const pump = (): void => {
      while (!failed && active < limit && queue.length > 0) {
        const item = queue.shift()!;
        active++;
        fn(item, (x) => queue.push(x)).then(
          () => {
            active--;
            pump();
          },
          (error: unknown) => {
            active--;
            failed ??= { error };
            pump();
          },
        );
      }
      if (active === 0 && (failed || queue.length === 0)) resolve();
    };
    pump();
  });
  if (failed) throw failed.error;
}
