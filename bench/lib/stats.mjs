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
