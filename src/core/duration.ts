/** Durations in config and policy: "90s", "15m", "2h", "1h30m". Returns seconds. */
const UNIT_SECONDS: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3600, d: 86400 };
const DURATION = /^(?:(\d{1,6})([smhd]))+$/;
const PART = /(\d{1,6})([smhd])/g;

export function parseDuration(text: string): number | undefined {
  if (!DURATION.test(text)) return undefined;
  let total = 0;
  for (const match of text.matchAll(PART)) total += Number(match[1]) * (UNIT_SECONDS[match[2] ?? ''] ?? 0);
  return total > 0 ? total : undefined;
}

export function formatDuration(seconds: number): string {
  if (seconds % 3600 === 0) return `${seconds / 3600}h`;
  if (seconds % 60 === 0) return `${seconds / 60}m`;
  return `${seconds}s`;
}
