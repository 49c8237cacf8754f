// Small statistics helpers.
export function median(values) {
  const v = values.filter((x) => typeof x === "number" && Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

export function max(values) {
  const v = values.filter((x) => typeof x === "number" && Number.isFinite(x));
  return v.length ? Math.max(...v) : null;
}

export function min(values) {
  const v = values.filter((x) => typeof x === "number" && Number.isFinite(x));
  return v.length ? Math.min(...v) : null;
}

/**
 * A distribution-free confidence interval for the median of `values` (independent draws): the
 * order statistics k and n − k + 1 of the sorted values, with k the largest rank such that
 * P(Binomial(n, ½) < k) ≤ (1 − confidence) / 2. Returns { low, high, confidence } with the
 * interval's exact coverage, or null when n is too small for any interval at that confidence.
 */
export function medianInterval(values, confidence = 0.95) {
  const v = values.filter((x) => typeof x === "number" && Number.isFinite(x)).sort((a, b) => a - b);
  const n = v.length;
  // 0.5 ** n underflows past about 1000 values (the bench measures at most 200).
  if (n > 1000) return null;
  const tail = (1 - confidence) / 2;
  // P(X = i) for X ~ Binomial(n, ½), summed from 0 while it stays within the tail.
  let below = 0;
  let p = 0.5 ** n;
  let k = 0;
  for (let i = 0; i < n && below + p <= tail; i++) {
    below += p;
    k = i + 1;
    p = (p * (n - i)) / (i + 1);
  }
  if (k === 0) return null;
  return { low: v[k - 1], high: v[n - k], confidence: 1 - 2 * below };
}
