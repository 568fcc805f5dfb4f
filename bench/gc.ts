/**
 * Reads the broker child's `--trace-gc` lines and keeps running totals: pauses (count, total, longest) and the bytes
 * the heap grew by between collections, which approximates what the process allocated.
 */
const GC_LINE = /: (Scavenge|Mark-Compact|Mark-Sweep|Minor Mark-Sweep|Minor Mark-Compact)\b.*? ([\d.]+) \(([\d.]+)\) -> ([\d.]+) \(([\d.]+)\) MB, ([\d.]+) \/ ([\d.]+) ms/;

export interface GcTotals {
  collections: number;
  young: number;
  full: number;
  pauseMs: number;
  maxPauseMs: number;
  allocatedMb: number;
}

export class GcTrace {
  private totals: GcTotals = GcTrace.empty();
  private lastAfterMb: number | undefined;
  private partial = '';

  static empty(): GcTotals {
    return { collections: 0, young: 0, full: 0, pauseMs: 0, maxPauseMs: 0, allocatedMb: 0 };
  }

  feed(chunk: string): void {
    const lines = (this.partial + chunk).split('\n');
    this.partial = lines.pop() ?? '';
    for (const line of lines) {
      const match = GC_LINE.exec(line);
      if (!match) continue;
      const [, kind, before, , after, , pause] = match;
      const beforeMb = Number(before);
      const pauseMs = Number(pause);
      this.totals.collections++;
      if (kind === 'Scavenge' || kind?.startsWith('Minor')) this.totals.young++;
      else this.totals.full++;
      this.totals.pauseMs += pauseMs;
      this.totals.maxPauseMs = Math.max(this.totals.maxPauseMs, pauseMs);
      if (this.lastAfterMb !== undefined) this.totals.allocatedMb += Math.max(0, beforeMb - this.lastAfterMb);
      this.lastAfterMb = Number(after);
    }
  }

  /** The totals since the last call. */
  take(): GcTotals {
    const taken = this.totals;
    this.totals = GcTrace.empty();
    return taken;
  }
}
