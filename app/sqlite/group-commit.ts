// Group commit for the lease file. A commit costs far more than the statements before it (SQLite
// appends every page a transaction touched to the write-ahead log), and a dispatch cycle is three
// small writes from three different sockets. So the writes of one turn of the event loop share one
// transaction: the first opens it, and it commits once the turn's callbacks have run. Each caller
// gets its result only after the commit, so no reply ever claims what is not yet written; a failed
// commit rolls back and fails every caller of its group. A read made while writes are waiting for
// their commit waits for it too: it may have seen them. Statements still run at once and in order,
// so nothing can come between the statements of one step. A decision that should see everything
// the turn brought (which server a page is handed) runs last, just before the commit: the messages
// of one turn are read in whatever order the sockets came up, and a page's request read before
// the report that frees a server would otherwise miss it, or be handed back the server whose
// client has just connected.
//
// Two connections of one process to one file (a test's second dispatcher) would wait on each
// other's write lock in the one thread they share: a connection opening a transaction first
// commits whatever another connection of this process has open.

import type { Database } from 'bun:sqlite';

export interface GroupCommit {
  /** Runs `step` in this turn's transaction; resolves with its result once that commits. */
  write<T>(step: () => T): Promise<T>;
  /** Runs `step` now; resolves with its result once any writes it may have seen are committed. */
  read<T>(step: () => T): Promise<T>;
  /**
   * Runs `step` in this turn's transaction after the turn's other callbacks, just before it
   * commits (steps in the order asked); resolves with its result once that commits. A flush, or
   * another connection of the process opening a transaction, commits sooner: the steps then run
   * before the rest of the turn.
   */
  last<T>(step: () => T): Promise<T>;
  /**
   * Runs `step` after the turn's other callbacks as `last` does, but opens no transaction: if the
   * turn has none by its end, the step runs outside one, and then must only read (`inTransaction`
   * on the connection tells it which). Resolves as `read` does.
   */
  lastRead<T>(step: () => T): Promise<T>;
  /** Commits the open transaction now, if any, running its last steps first (before a checkpoint or closing the file). */
  flush(): void;
  /** How many transactions have committed (for tests and benchmarks). */
  readonly commits: number;
}

interface Group {
  committed: Promise<void>;
  /** The steps to run before the commit. */
  last: (() => void)[];
  resolve(): void;
  reject(error: unknown): void;
}

/** The open transactions of this process, by connection. */
const openGroups = new Map<Database, () => void>();

/**
 * `later` runs the commit after the turn's other callbacks (setImmediate in the dispatcher);
 * `rolledBack` is told when a group's writes were undone, whatever undid them.
 */
export function createGroupCommit(db: Database, later: (commit: () => void) => void = setImmediate, rolledBack: () => void = () => {}): GroupCommit {
  let open: Group | null = null;
  let commits = 0;

  function begin(): Group {
    for (const [other, commitOther] of openGroups) if (other !== db) commitOther();
    db.run('BEGIN IMMEDIATE');
    openGroups.set(db, () => void (current() && commit()));
    let resolve!: () => void;
    let reject!: (error: unknown) => void;
    const committed = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // A group whose callers have all gone still fails quietly.
    committed.catch(() => {});
    const group: Group = { committed, resolve, reject, last: [] };
    for (const { run, fail } of reads.splice(0)) {
      group.last.push(run);
      // Never run if the group is lost first: its caller fails with it.
      committed.catch(fail);
    }
    later(() => open === group && current() && commit());
    return group;
  }

  function commit(): void {
    const group = open!;
    // A step that made SQLite roll back by itself ends the group: the steps after it never run
    // (outside a transaction they would commit alone), and every caller fails.
    for (const step of group.last) {
      if (!db.inTransaction) break;
      step();
    }
    if (!current()) return;
    open = null;
    openGroups.delete(db);
    try {
      db.run('COMMIT');
      commits++;
      group.resolve();
    } catch (error) {
      try {
        if (db.inTransaction) db.run('ROLLBACK');
      } finally {
        rolledBack();
        group.reject(error);
      }
    }
  }

  /**
   * The open group, unless SQLite rolled it back by itself (a full disk, an I/O error): then its
   * callers fail, and what follows starts a group of its own rather than write outside one.
   */
  function current(): Group | null {
    if (open && !db.inTransaction) {
      const lost = open;
      open = null;
      openGroups.delete(db);
      rolledBack();
      lost.reject(new Error('the lease file rolled the transaction back'));
    }
    return open;
  }

  function read<T>(step: () => T): Promise<T> {
    // Asked first: a group SQLite rolled back is failed (and what remembers it told) before the
    // step reads anything it wrote.
    const group = current();
    let result: T;
    try {
      result = step();
    } catch (error) {
      return Promise.reject(error);
    }
    return group ? group.committed.then(() => result) : Promise.resolve(result);
  }

  function last<T>(step: () => T): Promise<T> {
    let group: Group;
    try {
      group = current() ?? (open = begin());
    } catch (error) {
      return Promise.reject(error);
    }
    // Set when the step runs, which it always has once the group commits.
    let outcome!: { value: T } | { error: unknown };
    group.last.push(() => {
      try {
        outcome = { value: step() };
      } catch (error) {
        outcome = { error };
      }
    });
    return group.committed.then(() => ('value' in outcome ? outcome.value : Promise.reject(outcome.error)));
  }

  // Reads asked to run last in a turn that had no transaction open: run together once it ends,
  // or, if a transaction opens meanwhile, as its first last steps (asked before anything in it).
  let reads: { run(): void; fail(error: unknown): void }[] = [];
  function readLast(): void {
    for (const { run } of reads.splice(0)) run();
  }

  return {
    write<T>(step: () => T): Promise<T> {
      // A failed statement undoes only itself (and a failed step its own savepoint); the rest of
      // the group stands.
      let group: Group;
      let result: T;
      try {
        group = current() ?? (open = begin());
        result = step();
      } catch (error) {
        return Promise.reject(error);
      }
      return group.committed.then(() => result);
    },
    read,
    last,
    lastRead<T>(step: () => T): Promise<T> {
      if (current()) return last(step);
      return new Promise<T>((resolve, reject) => {
        reads.push({ run: () => resolve(read(step)), fail: reject });
        if (reads.length === 1) later(readLast);
      });
    },
    flush(): void {
      if (current()) commit();
    },
    get commits() {
      return commits;
    },
  };
}
