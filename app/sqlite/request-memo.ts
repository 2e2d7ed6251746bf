// The request memo (see RequestMemo in ../lease-store.ts) as a table in the lease file, so that a
// retry after a dispatcher restart is answered too.

import type { Database } from 'bun:sqlite';
import type { Clock } from '../clock.ts';
import type { RememberedAnswer, RequestMemo } from '../lease-store.ts';
import type { GroupCommit } from './group-commit.ts';

export function openRequestMemo(db: Database, { read, write }: GroupCommit, clock: Clock): RequestMemo {
  const find = db.query<RememberedAnswer, { requestId: string; now: number }>(
    'SELECT server_id AS serverId, url FROM requests WHERE request_id = $requestId AND expires > $now',
  );
  // An answer past its deadline is replaced; a standing one is kept, and returned instead.
  const save = db.query<RememberedAnswer, { requestId: string; serverId: string; url: string; expires: number; now: number }>(`
    INSERT INTO requests (request_id, server_id, url, expires) VALUES ($requestId, $serverId, $url, $expires)
    ON CONFLICT (request_id) DO UPDATE SET server_id = excluded.server_id, url = excluded.url, expires = excluded.expires
      WHERE requests.expires <= $now
    RETURNING server_id AS serverId, url`);
  const prune = db.query('DELETE FROM requests WHERE expires <= $now');
  const forget = db.query('DELETE FROM requests WHERE request_id = $requestId');

  return {
    find: (requestId) => read(() => find.get({ requestId, now: clock.now() }) ?? null),
    save: (requestId, answer, expires) => {
      const now = clock.now();
      return write(() => save.get({ requestId, ...answer, expires, now }) ?? find.get({ requestId, now }) ?? answer);
    },
    forget: (requestId) => write(() => void forget.run({ requestId })),
    prune: () => write(() => void prune.run({ now: clock.now() })),
  };
}
