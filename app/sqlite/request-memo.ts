// The request memo (see RequestMemo in ../lease-store.ts) as a table in the lease file, so that a
// retry after a dispatcher restart is answered too. Request ids are the pages' own and random: in
// an index, each new one landed on an index page of its own, and a commit writes every page it
// touched (a remembered answer cost a page's ask about 20 µs, a quarter of it). So the answers are
// only appended, in order, and found through a map in memory of each id's row and deadline (the
// answer itself is read from its row). The map is read back from the file when it opens, after a
// transaction of this connection was rolled back (what it wrote is gone), and whenever another
// connection has written to the file (SQLite's data_version says so).

import type { Database } from 'bun:sqlite';
import type { Clock } from '../clock.ts';
import type { RememberedAnswer, RequestMemo } from '../lease-store.ts';
import type { GroupCommit } from './group-commit.ts';

/** Where a remembered answer is, and until when it stands. */
interface Entry {
  seq: number;
  expires: number;
}

export interface SqliteRequestMemo extends RequestMemo {
  /** What this connection wrote was rolled back: the map is read again before its next use. */
  rolledBack(): void;
}

export function openRequestMemo(db: Database, { read, write }: GroupCommit, clock: Clock): SqliteRequestMemo {
  const live = db.query<Entry & { requestId: string }, { now: number }>(
    'SELECT seq, request_id AS requestId, expires FROM requests WHERE expires > $now ORDER BY seq',
  );
  const answerAt = db.query<RememberedAnswer, { seq: number }>('SELECT server_id AS serverId, url FROM requests WHERE seq = $seq');
  const append = db.query<{ seq: number }, { requestId: string; serverId: string; url: string; expires: number }>(
    'INSERT INTO requests (request_id, server_id, url, expires) VALUES ($requestId, $serverId, $url, $expires) RETURNING seq',
  );
  const remove = db.query<unknown, { seq: number }>('DELETE FROM requests WHERE seq = $seq');
  const prune = db.query<unknown, { now: number }>('DELETE FROM requests WHERE expires <= $now');
  const dataVersion = db.query<{ data_version: number }, []>('PRAGMA data_version');

  // By request id, in the order saved (an answer saved again moves to the end), so that the
  // expired ones come first.
  const entries = new Map<string, Entry>();
  let version: number | null = null;

  /** The map, read again if it may differ from the file. */
  function current(): Map<string, Entry> {
    const now = dataVersion.get()!.data_version;
    if (now === version) return entries;
    entries.clear();
    for (const { requestId, ...entry } of live.all({ now: clock.now() })) entries.set(requestId, entry);
    version = now;
    return entries;
  }
  /** `entry` if it still stands at `now`. */
  const standing = (entry: Entry | undefined, now: number): Entry | null => (entry && entry.expires > now ? entry : null);
  /** Drops what is kept for `requestId` (its `entry`), standing or past its deadline. */
  function drop(requestId: string, entry: Entry | undefined): void {
    if (!entry) return;
    remove.run({ seq: entry.seq });
    entries.delete(requestId);
  }
  const answer = ({ serverId, url }: RememberedAnswer): RememberedAnswer => ({ serverId, url });

  return {
    find: (requestId) => {
      const now = clock.now();
      return read(() => {
        const entry = standing(current().get(requestId), now);
        return entry ? answerAt.get({ seq: entry.seq }) : null;
      });
    },
    // An answer past its deadline is replaced; a standing one is kept, and returned instead.
    save: (requestId, given, expires) =>
      write(() => {
        const entry = current().get(requestId);
        const earlier = standing(entry, clock.now());
        if (earlier) return answerAt.get({ seq: earlier.seq })!;
        drop(requestId, entry);
        const { seq } = append.get({ requestId, ...answer(given), expires })!;
        entries.set(requestId, { seq, expires });
        return answer(given);
      }),
    forget: (requestId) => write(() => drop(requestId, current().get(requestId))),
    prune: () =>
      write(() => {
        const now = clock.now();
        prune.run({ now });
        // Oldest first: the walk stops at the first that still stands (one saved before a step
        // back of the clock may wait for a later prune, and is never answered meanwhile).
        for (const [requestId, entry] of current()) {
          if (entry.expires > now) break;
          entries.delete(requestId);
        }
      }),
    rolledBack() {
      version = null;
    },
  };
}
