/** Reconnect delays: exponential growth, capped, with jitter so many tabs don't stampede. */

export interface BackoffOptions {
  /** Delay before the first retry. */
  baseMs: number;
  /** Upper bound of the un-jittered delay. */
  maxMs: number;
  /** Growth per attempt. */
  factor: number;
  /** Fraction of the delay that is random: 0 = none, 1 = anywhere in [0, delay]. */
  jitter: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = {
  baseMs: 500,
  maxMs: 30_000,
  factor: 2,
  jitter: 0.5,
};

/**
 * Delay before retry number `attempt` (0-based): `min(maxMs, baseMs * factor^attempt)`,
 * of which the last `jitter` fraction is scaled by `random()` in [0, 1).
 */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions = DEFAULT_BACKOFF,
  random: () => number = Math.random,
): number {
  const n = Math.max(0, Math.floor(attempt));
  const grown = options.baseMs * Math.pow(options.factor, n);
  const capped = Math.min(options.maxMs, Number.isFinite(grown) ? grown : options.maxMs);
  const jitter = Math.min(1, Math.max(0, options.jitter));
  const r = Math.min(1, Math.max(0, random()));
  return Math.round(capped * (1 - jitter) + capped * jitter * r);
}
