// Checkpoints of lease files, mostly on a thread of their own. SQLite folds the write-ahead log
// back into the file, by default, inside the commit that takes the log past 1,000 pages: on this
// machine that commit takes about 10 ms, every request of its turn waiting behind it, and under
// load the dispatcher spent a sixth of its time there. Here a file's dispatcher connection never
// checkpoints by itself. One thread of the process, with its own connection to each file, does
// the bulk of it, PASSIVE, every CHECKPOINT_EVERY_MS (./checkpoint-thread.ts). But a log starts
// again from its beginning only once a writer finds all of it folded back, which a busy writer
// never does, because it adds to the log while the thread works. So once the log is past
// SQLite's own threshold, the thread holds the file and the dispatcher's connection folds back
// the little written since its last pass (a millisecond or two here), and the log starts again.
// Truncating maintenance and closing also hold the file, so that they never find the thread at
// work. If the thread cannot open a file or fails, or a log reaches CEILING_PAGES without
// starting again, that connection goes back to checkpointing by itself.

import type { Database } from 'bun:sqlite';
import type { FromThread, ToThread } from './checkpoint-thread.ts';

/** How long the thread rests between two rounds (ms). */
const CHECKPOINT_EVERY_MS = 50;

/** SQLite's own threshold (pages): when the log starts again, and when the connection checkpoints without the thread. */
const LOG_PAGES = 1000;

/** A log this long (pages) has not been starting again: its connection checkpoints by itself from then on. */
const CEILING_PAGES = 16 * LOG_PAGES;

/** The longest the dispatcher waits for the thread to answer (ms); past it, it goes on without. */
const ANSWER_MS = 2000;

export interface Checkpoints {
  /** Whether the thread is checkpointing the file (false after a failure: its connection does it again). */
  readonly onThread: boolean;
  /** Runs `step` (a truncating checkpoint on the dispatcher's connection) while the thread leaves the file alone. */
  hold<T>(step: () => T): Promise<T>;
  /** The thread closes its connection to the file, and checkpoints go back to the dispatcher's. */
  stop(): Promise<void>;
}

type File = {
  backOnConnection(reason: string): void;
  caughtUp(pages: number): void;
  answered(message: FromThread): void;
};

/** The thread, started with the first file and kept (it does not keep the process alive). */
let thread: { worker: Worker; files: Map<number, File>; next: number } | null = null;

function startThread(): NonNullable<typeof thread> {
  const worker = new Worker(new URL('./checkpoint-thread.ts', import.meta.url).href, { ref: false });
  const started = { worker, files: new Map<number, File>(), next: 1 };
  worker.addEventListener('message', ({ data }: MessageEvent<FromThread>) => {
    if ('failed' in data) started.files.get(data.failed)?.backOnConnection(data.reason);
    else if ('caughtUp' in data) started.files.get(data.caughtUp)?.caughtUp(data.pages);
    else started.files.get('held' in data ? data.held : data.closed)?.answered(data);
  });
  worker.addEventListener('error', (event) => {
    if (thread === started) thread = null;
    worker.terminate();
    for (const file of [...started.files.values()]) file.backOnConnection(`the checkpoint thread failed: ${event.message}`);
  });
  worker.postMessage({ everyMs: CHECKPOINT_EVERY_MS, restartAt: LOG_PAGES } satisfies ToThread);
  return started;
}

/**
 * Moves the checkpoints of the file at `path`, open as `db`, to the thread. `catchUp` checkpoints
 * on `db` while the thread holds the file, and says whether it found the log all folded back (then
 * the next write starts it again); `failed` hears why the thread gave the file back, if it does.
 */
export function checkpointOnThread(db: Database, path: string, catchUp: () => boolean, failed: (reason: string) => void = () => {}): Checkpoints {
  const current = (thread ??= startThread());
  const { worker } = current;
  const id = current.next++;
  let onThread = true;
  // Requests to the thread waiting for its answer, oldest first (it answers in order).
  const waiting = { held: [] as (() => void)[], closed: [] as (() => void)[] };
  const ask = (message: ToThread, answer: keyof typeof waiting): Promise<void> => {
    const answered = Promise.withResolvers<void>();
    waiting[answer].push(answered.resolve);
    worker.postMessage(message);
    // Unanswered in time, it stops waiting and leaves the line, so later answers stay in step.
    const timeout = setTimeout(() => {
      waiting[answer] = waiting[answer].filter((waiter) => waiter !== answered.resolve);
      answered.resolve();
    }, ANSWER_MS);
    return answered.promise.finally(() => clearTimeout(timeout));
  };
  const backOnConnection = (reason?: string) => {
    if (!onThread) return;
    onThread = false;
    current.files.delete(id);
    for (const answered of [...waiting.held.splice(0), ...waiting.closed.splice(0)]) answered();
    db.run(`PRAGMA wal_autocheckpoint = ${LOG_PAGES}`);
    if (reason) failed(reason);
  };
  current.files.set(id, {
    backOnConnection,
    caughtUp(pages) {
      if (catchUp() || pages < CEILING_PAGES) worker.postMessage({ resume: id } satisfies ToThread);
      else backOnConnection(`the log reached ${pages} pages without starting again`);
    },
    answered(message) {
      waiting['held' in message ? 'held' : 'closed'].shift()?.();
    },
  });
  db.run('PRAGMA wal_autocheckpoint = 0');
  worker.postMessage({ open: id, path } satisfies ToThread);
  return {
    get onThread() {
      return onThread;
    },
    async hold(step) {
      if (!onThread) return step();
      await ask({ hold: id }, 'held');
      try {
        return step();
      } finally {
        if (onThread) worker.postMessage({ resume: id } satisfies ToThread);
      }
    },
    async stop() {
      if (onThread) await ask({ close: id }, 'closed');
      backOnConnection();
    },
  };
}
