import { MultiBar, Presets, type SingleBar } from 'cli-progress';
import type { Io } from '../cli.ts';

/** Per-store progress of an export: a bar per store on a terminal, nothing otherwise. */
export interface Progress {
  /** True when totals are shown (the caller counts first only then). */
  readonly shown: boolean;
  start(store: string, total: number): void;
  tick(store: string, n?: number): void;
  stop(): void;
}

export const noProgress: Progress = { shown: false, start() {}, tick() {}, stop() {} };

/** Bars on stderr when it is a terminal and the output is not `--json`; otherwise none. */
export function progressBars(io: Io, json: boolean | undefined): Progress {
  if (!io.isTTY || json) return noProgress;
  const multi = new MultiBar(
    {
      stream: process.stderr,
      format: '{store} [{bar}] {value}/{total}',
      hideCursor: true,
      clearOnComplete: false,
      // Redraw at most 10 times a second, whatever the row rate.
      fps: 10,
    },
    Presets.shades_classic,
  );
  const bars = new Map<string, SingleBar>();
  return {
    shown: true,
    start(store, total) {
      bars.set(store, multi.create(total, 0, { store: store.padEnd(8) }));
    },
    tick(store, n = 1) {
      bars.get(store)?.increment(n);
    },
    stop() {
      multi.stop();
    },
  };
}
