// Idempotent allocation: a client may name its request, and a retry with the same id gets the
// answer the first attempt got (the same server, the same ticket) for as long as that server's
// claim lasts. Kept in the lease database, so a retry after a dispatcher restart is answered too.

import type { Database } from 'bun:sqlite';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS requests (
  request_id TEXT PRIMARY KEY,
  server_id  TEXT NOT NULL,
  url        TEXT NOT NULL,
  expires    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_by_expiry ON requests (expires);
`;

export interface RememberedAnswer {
  serverId: string;
  url: string;
}

export function openRequestMemo(db: Database) {
  db.run(SCHEMA);
  const find = db.query<RememberedAnswer, { requestId: string; now: number }>(
    'SELECT server_id AS serverId, url FROM requests WHERE request_id = $requestId AND expires > $now',
  );
  const save = db.query(
    'INSERT OR REPLACE INTO requests (request_id, server_id, url, expires) VALUES ($requestId, $serverId, $url, $expires)',
  );
  const prune = db.query('DELETE FROM requests WHERE expires <= $now');
  const forget = db.query('DELETE FROM requests WHERE request_id = $requestId');

  return {
    /** The answer given to this request id, while its claim deadline has not passed. */
    find: (requestId: string, now: number): RememberedAnswer | null => find.get({ requestId, now }) ?? null,
    save: (requestId: string, answer: RememberedAnswer, expires: number): void => {
      save.run({ requestId, ...answer, expires });
    },
    prune: (now: number): void => {
      prune.run({ now });
    },
    forget: (requestId: string): void => {
      forget.run({ requestId });
    },
  };
}
