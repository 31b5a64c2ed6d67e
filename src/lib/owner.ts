/**
 * A resource owner: every acquired resource (mount, process, temp dir, cgroup) registers how to
 * release it the moment it exists. If the operation fails halfway, `dispose()` releases exactly
 * what was acquired, newest first; if it succeeds, `release()` hands ownership on.
 *
 *   const owner = new Owner();
 *   try {
 *     await mount(...); owner.defer(() => unmount(...));
 *     await startProcess(...); owner.defer(() => kill(...));
 *     owner.release();
 *   } catch (err) { await owner.dispose(); throw err; }
 */
export class Owner {
  #cleanups: Array<() => unknown | Promise<unknown>> = [];
  #errors: unknown[] = [];

  defer(cleanup: () => unknown | Promise<unknown>): void {
    this.#cleanups.push(cleanup);
  }

  /** Forget every cleanup: the resources now belong to someone else. */
  release(): void {
    this.#cleanups = [];
  }

  /** Run every cleanup, newest first; errors are collected, never thrown. */
  async dispose(): Promise<unknown[]> {
    while (this.#cleanups.length > 0) {
      const cleanup = this.#cleanups.pop()!;
      try {
        await cleanup();
      } catch (err) {
        this.#errors.push(err);
      }
    }
    return this.#errors;
  }
}
