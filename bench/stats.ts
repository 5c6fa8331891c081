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

export function result(name: string, ours: number, baseline: number, unit: string, note?: string): BenchResult {
  const round = (n: number) => Math.round(n * 1000) / 1000;
  return { name, ours: round(ours), baseline: round(baseline), unit, ratio: round(ours / baseline), ...(note ? { note } : {}) };
}
