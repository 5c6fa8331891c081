export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

export const median = (values: number[]): number => percentile(values, 50);

export interface BenchResult {
  name: string;
  ours: number;
  baseline: number;
  unit: string;
  ratio: number;
  note?: string;
}

/** Three decimals, as the results are kept. */
const round = (n: number): number => Math.round(n * 1000) / 1000;

export function result(name: string, ours: number, baseline: number, unit: string, note?: string): BenchResult {
  return { name, ours: round(ours), baseline: round(baseline), unit, ratio: round(ours / baseline), ...(note ? { note } : {}) };
}

/**
 * For measures taken in pairs, ours and the baseline one right after the other: the ratio is the median of
 * the pairs' ratios, which a slow spell of a shared machine moves less than a ratio of the two medians
 * (a pair shares the spell). ours and baseline are each side's median, for the table.
 */
export function pairedResult(name: string, pairs: Array<{ ours: number; baseline: number }>, unit: string, note?: string): BenchResult {
  const medians = result(name, median(pairs.map((pair) => pair.ours)), median(pairs.map((pair) => pair.baseline)), unit, note);
  return { ...medians, ratio: round(median(pairs.map((pair) => pair.ours / pair.baseline))) };
}
