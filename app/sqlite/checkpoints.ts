// Checkpoints of lease files, mostly on a thread of their own. SQLite folds the write-ahead log
// back into the file, by default, inside the commit that takes the log past 1,000 pages: on this
// machine that commit takes about 10 ms, every request of its turn waiting behind it, and under
// load the dispatcher spent a sixth of its time there. Here a file's dispatcher connection never
// checkpoints by itself. One thread of the process, with its own connection to each file, does
// the bulk of it, PASSIVE, every CHECKPOINT_EVERY_MS (./checkpoint-thread.ts). But a log starts
// again from its beginning only once a writer finds all of it folded back, which a busy writer
// never does, because it adds to the log while the thread works. So when the thread has caught up
// and the log is past SQLite's own threshold, the dispatcher's connection folds back the little
// written since (a millisecond or two), and the log starts again. If the thread cannot open a file
// or fails, that connection goes back to checkpointing by itself, so the log stays bounded.

import type { Database } from 'bun:sqlite';
import type { FromThread, ToThread } from './checkpoint-thread.ts';

/** How often the thread checkpoints (ms). */
export const CHECKPOINT_EVERY_MS = 50;

/** SQLite's own threshold (pages): when the log starts again, and when the connection checkpoints without the thread. */
const LOG_PAGES = 1000;

export interface Checkpoints {
  /** Whether the thread is checkpointing the file (false after a failure: its connection does it again). */
  readonly onThread: boolean;
  /** Checkpoints go back to the connection, and the thread closes its own. */
  stop(): void;
}

type File = { backOnConnection(reason: string): void; caughtUp(): void };

/** The thread, started with the first file and kept (it does not keep the process alive). */
let thread: { worker: Worker; files: Map<number, File>; next: number } | null = null;

function startThread(): NonNullable<typeof thread> {
  const worker = new Worker(new URL('./checkpoint-thread.ts', import.meta.url).href, { ref: false });
  const started = { worker, files: new Map<number, File>(), next: 1 };
  worker.addEventListener('message', ({ data }: MessageEvent<FromThread>) => {
    if (!('caughtUp' in data)) started.files.get(data.failed)?.backOnConnection(data.reason);
    else if (data.frames >= LOG_PAGES) started.files.get(data.caughtUp)?.caughtUp();
  });
  worker.addEventListener('error', (event) => {
    if (thread === started) thread = null;
    worker.terminate();
    for (const file of [...started.files.values()]) file.backOnConnection(`the checkpoint thread failed: ${event.message}`);
  });
  worker.postMessage({ everyMs: CHECKPOINT_EVERY_MS } satisfies ToThread);
  return started;
}

/**
 * Moves the checkpoints of the file at `path`, open as `db`, to the thread. `caughtUp` is asked
 * to checkpoint on `db` once the thread has caught up with a long log; `failed` hears why the
 * thread gave the file back, if it does.
 */
export function checkpointOnThread(db: Database, path: string, caughtUp: () => void, failed: (reason: string) => void = () => {}): Checkpoints {
  const current = (thread ??= startThread());
  const id = current.next++;
  let onThread = true;
  const backOnConnection = (reason?: string) => {
    if (!onThread) return;
    onThread = false;
    current.files.delete(id);
    db.run(`PRAGMA wal_autocheckpoint = ${LOG_PAGES}`);
    if (reason) failed(reason);
  };
  current.files.set(id, { backOnConnection, caughtUp });
  db.run('PRAGMA wal_autocheckpoint = 0');
  current.worker.postMessage({ open: id, path } satisfies ToThread);
  return {
    get onThread() {
      return onThread;
    },
    stop() {
      if (onThread) current.worker.postMessage({ close: id } satisfies ToThread);
      backOnConnection();
    },
  };
}
