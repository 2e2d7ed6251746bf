// The thread that folds lease files' write-ahead logs back into the files (./checkpoints.ts). It
// has a connection of its own to each file and only ever checkpoints, PASSIVE: it never waits for
// a dispatcher's writer nor makes it wait. A round checkpoints each file again while a pass still
// finds much that the writer added meanwhile (at most MAX_PASSES), and the next round starts
// everyMs after this one ends. A file whose log has grown past `restartAt` pages is then held:
// the thread leaves it alone until the dispatcher says "resume", having checkpointed the rest on
// its own connection with nothing else checkpointing, which lets the log start again. The
// dispatcher may also hold a file itself (for its truncating maintenance, or to close it). A file
// the thread cannot open or checkpoint is reported, and left.

import { Database, type Statement } from 'bun:sqlite';

declare const self: Worker;

export type ToThread =
  | { everyMs: number; restartAt: number }
  | { open: number; path: string }
  | { hold: number }
  | { resume: number }
  | { close: number };
export type FromThread =
  | { failed: number; reason: string }
  | { caughtUp: number; pages: number }
  | { held: number }
  | { closed: number };

/** A round goes on to another pass while the last one found at least this many new pages. */
const MANY_NEW_PAGES = 64;
const MAX_PASSES = 8;

/** `holds`: how many holds on the file (the thread's own, the dispatcher's) are not yet resumed. */
type File = { db: Database; checkpoint: Statement<{ log: number }>; holds: number };
const files = new Map<number, File>();
let settings = { everyMs: 50, restartAt: 1000 };
let timer: ReturnType<typeof setTimeout> | null = null;

const tell = (message: FromThread) => self.postMessage(message);

function close(id: number): void {
  files.get(id)?.db.close(false);
  files.delete(id);
}

function checkpoint(id: number, file: File): void {
  try {
    let pages = file.checkpoint.get()!.log;
    for (let pass = 1; pass < MAX_PASSES; pass++) {
      const before = pages;
      pages = file.checkpoint.get()!.log;
      if (pages - before < MANY_NEW_PAGES) break;
    }
    if (pages >= settings.restartAt) {
      file.holds++;
      tell({ caughtUp: id, pages });
    }
  } catch (error) {
    close(id);
    tell({ failed: id, reason: String(error) });
  }
}

function round(): void {
  for (const [id, file] of files) if (file.holds === 0) checkpoint(id, file);
  timer = setTimeout(round, settings.everyMs);
}

self.onmessage = ({ data }: MessageEvent<ToThread>) => {
  if ('everyMs' in data) {
    settings = data;
    if (timer) clearTimeout(timer);
    timer = setTimeout(round, settings.everyMs);
  } else if ('open' in data) {
    try {
      const db = new Database(data.path, { create: false });
      files.set(data.open, { db, checkpoint: db.query('PRAGMA wal_checkpoint(PASSIVE)'), holds: 0 });
      // A setting of each connection: under NORMAL a checkpoint syncs the log before and the file after.
      db.run('PRAGMA synchronous = NORMAL');
    } catch (error) {
      close(data.open);
      tell({ failed: data.open, reason: String(error) });
    }
  } else if ('hold' in data) {
    // Messages are handled between rounds: nothing of this file is being checkpointed now.
    const file = files.get(data.hold);
    if (file) file.holds++;
    tell({ held: data.hold });
  } else if ('resume' in data) {
    const file = files.get(data.resume);
    if (file) file.holds = Math.max(0, file.holds - 1);
  } else {
    close(data.close);
    tell({ closed: data.close });
  }
};
