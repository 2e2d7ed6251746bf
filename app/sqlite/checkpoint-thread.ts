// The thread that folds lease files' write-ahead logs back into the files (./checkpoints.ts). It
// has a connection of its own to each file and only ever checkpoints, PASSIVE: it never waits for
// a dispatcher's writer nor makes it wait. Each round it checkpoints a file again while a pass
// took long enough for the writer to have added much (at most MAX_PASSES), then says how long the
// log is, so that the dispatcher can finish the round with the little that is left and let the
// log start again from its beginning. A file it cannot open or checkpoint is reported, and left.

import { Database, type Statement } from 'bun:sqlite';

declare const self: Worker;

export type ToThread = { open: number; path: string } | { close: number } | { everyMs: number };
export type FromThread = { failed: number; reason: string } | { caughtUp: number; frames: number };

/** A round stops after a pass this short (ms): the writer has added next to nothing meanwhile. */
const SHORT_PASS_MS = 1;
const MAX_PASSES = 8;

const files = new Map<number, { db: Database; checkpoint: Statement<{ log: number }> | null }>();
let timer: ReturnType<typeof setInterval> | null = null;

function close(id: number): void {
  files.get(id)?.db.close(true);
  files.delete(id);
}

function round(): void {
  for (const [id, { checkpoint }] of files) {
    if (!checkpoint) continue;
    try {
      let frames = 0;
      for (let pass = 0; pass < MAX_PASSES; pass++) {
        const started = performance.now();
        frames = checkpoint.get()!.log;
        if (performance.now() - started < SHORT_PASS_MS) break;
      }
      self.postMessage({ caughtUp: id, frames } satisfies FromThread);
    } catch (error) {
      close(id);
      self.postMessage({ failed: id, reason: String(error) } satisfies FromThread);
    }
  }
}

self.onmessage = ({ data }: MessageEvent<ToThread>) => {
  if ('everyMs' in data) {
    if (timer) clearInterval(timer);
    timer = setInterval(round, data.everyMs);
  } else if ('close' in data) {
    close(data.close);
  } else {
    try {
      const file = { db: new Database(data.path, { create: false }), checkpoint: null as Statement<{ log: number }> | null };
      files.set(data.open, file);
      // A setting of each connection: under NORMAL a checkpoint syncs the log before and the file after.
      file.db.run('PRAGMA synchronous = NORMAL');
      file.checkpoint = file.db.query('PRAGMA wal_checkpoint(PASSIVE)');
    } catch (error) {
      close(data.open);
      self.postMessage({ failed: data.open, reason: String(error) } satisfies FromThread);
    }
  }
};
