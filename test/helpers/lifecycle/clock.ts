/**
 * A simulated clock for the lifecycle driver: `Date` (and `Date.now()`) run at real speed plus an offset
 * that the driver advances, so an hour of Provider-framework polling takes milliseconds while code that
 * really sleeps still sees time pass. The offset only ever grows (no time travel backwards).
 *
 * Installed on the global `Date` of the test environment, which the prebundled handlers loaded with
 * `require` share.
 */
export interface SimClock {
  /** Simulated epoch milliseconds. */
  now(): number;
  /** Moves simulated time forward by `ms`. */
  advance(ms: number): void;
  /** Restores the real `Date`. */
  uninstall(): void;
}

export function installSimClock(): SimClock {
  const RealDate = Date;
  const realNow = RealDate.now.bind(RealDate);
  let offset = 0;
  const now = () => realNow() + offset;
  class SimDate extends RealDate {
    constructor(...args: unknown[]) {
      if (args.length === 0) super(now());
      else super(...(args as [string]));
    }
    static now(): number { return now(); }
  }
  (globalThis as { Date: DateConstructor }).Date = SimDate as unknown as DateConstructor;
  return {
    now,
    advance(ms: number) {
      if (ms < 0) throw new Error(`SimClock.advance: time only moves forward, got ${ms} ms`);
      offset += ms;
    },
    uninstall() { (globalThis as { Date: DateConstructor }).Date = RealDate; },
  };
}
