/**
 * What the Proxy works out from a configuration object (a catalog target, a limits object) once per object rather than
 * on every call. Exact only for objects that cannot change, so the result is kept only when `isFrozen` says the object
 * is frozen (catalog targets and the broker's limits are: provider-upstream-target.ts, broker.ts); anything else is
 * worked out every time.
 */
export function memoizedForFrozen<K extends object, V>(compute: (key: K) => V, isFrozen: (key: K) => boolean = Object.isFrozen): (key: K) => V {
  const known = new WeakMap<K, V>();
  return (key) => {
    const frozen = isFrozen(key);
    if (frozen && known.has(key)) return known.get(key)!;
    const value = compute(key);
    if (frozen) known.set(key, value);
    return value;
  };
}
