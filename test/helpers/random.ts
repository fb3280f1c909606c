/**
 * A seeded xorshift32 for the tests' random inputs: deterministic, so a failing case comes back
 * on every run. `pick(n)` returns an integer in [0, n).
 */
export function seededPick(seed: number): (n: number) => number {
  let x = seed | 0 || 1;
  return (n: number): number => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % n;
  };
}
