// The request memo (see RequestMemo in ../lease-store.ts) as a table in the lease file, so that a
// retry after a dispatcher restart is answered too. Request ids are the pages' own and random: in
// an index, each new one landed on an index page of its own, and a commit writes every page it
// touched (a remembered answer cost a page's ask about 20 µs, a quarter of it). So the answers are
// only appended, in order, and found through a map in memory. The map is read back from the file
// when it opens, after a transaction of this connection was rolled back (what it wrote is gone),
// and whenever another connection has written to the file (SQLite's data_version says so).

import type { Database } from 'bun:sqlite';
import type { Clock } from '../clock.ts';
import type { RememberedAnswer, RequestMemo } from '../lease-store.ts';
import type { GroupCommit } from './group-commit.ts';

interface Entry extends RememberedAnswer {
  seq: number;
  expires: number;
}

export interface SqliteRequestMemo extends RequestMemo {
  /** What this connection wrote was rolled back: the map is read again before its next use. */
  rolledBack(): void;
}

export function openRequestMemo(db: Database, { read, write }: GroupCommit, clock: Clock): SqliteRequestMemo {
  const live = db.query<Entry & { requestId: string }, { now: number }>(
    'SELECT seq, request_id AS requestId, server_id AS serverId, url, expires FROM requests WHERE expires > $now ORDER BY seq',
  );
  const append = db.query<{ seq: number }, { requestId: string; serverId: string; url: string; expires: number }>(
    'INSERT INTO requests (request_id, server_id, url, expires) VALUES ($requestId, $serverId, $url, $expires) RETURNING seq',
  );
  const remove = db.query<unknown, { seq: number }>('DELETE FROM requests WHERE seq = $seq');
  const prune = db.query<unknown, { now: number }>('DELETE FROM requests WHERE expires <= $now');
  const dataVersion = db.query<{ data_version: number }, []>('PRAGMA data_version');

  // By request id, in the order saved (an answer saved again moves to the end).
  const answers = new Map<string, Entry>();
  let version: number | null = null;

  /** The map, read again if it may differ from the file. */
  function current(): Map<string, Entry> {
    const now = dataVersion.get()!.data_version;
    if (now === version) return answers;
    answers.clear();
    for (const { requestId, ...entry } of live.all({ now: clock.now() })) answers.set(requestId, entry);
    version = now;
    return answers;
  }
  const standing = (requestId: string, now: number): Entry | null => {
    const entry = current().get(requestId);
    return entry && entry.expires > now ? entry : null;
  };
  const answer = ({ serverId, url }: RememberedAnswer): RememberedAnswer => ({ serverId, url });

  return {
    find: (requestId) =>
      read(() => {
        const entry = standing(requestId, clock.now());
        return entry ? answer(entry) : null;
      }),
    // An answer past its deadline is replaced; a standing one is kept, and returned instead.
    save: (requestId, given, expires) =>
      write(() => {
        const earlier = standing(requestId, clock.now());
        if (earlier) return answer(earlier);
        const { seq } = append.get({ requestId, ...answer(given), expires })!;
        answers.delete(requestId);
        answers.set(requestId, { ...answer(given), seq, expires });
        return answer(given);
      }),
    forget: (requestId) =>
      write(() => {
        const entry = current().get(requestId);
        if (!entry) return;
        remove.run({ seq: entry.seq });
        answers.delete(requestId);
      }),
    prune: () =>
      write(() => {
        const now = clock.now();
        prune.run({ now });
        for (const [requestId, entry] of current()) if (entry.expires <= now) answers.delete(requestId);
      }),
    rolledBack() {
      version = null;
    },
  };
}
