// The request memo (see RequestMemo in ../lease-store.ts) in PostgreSQL: one table for every
// dispatcher on the database, so a retry sent to another dispatcher gets the same answer, and two
// attempts racing on two dispatchers end with one answer standing.

import type { RememberedAnswer, RequestMemo } from '../lease-store.ts';
import { NOW, type PgClient } from './client.ts';

export function openRequestMemo({ timed, plain }: PgClient): RequestMemo {
  const find = async (requestId: string) =>
    (await timed<RememberedAnswer>(`SELECT server_id AS "serverId", url FROM requests WHERE request_id = $2 AND expires > ${NOW}`, [requestId]))[0] ?? null;

  return {
    find,
    save: async (requestId, answer, expires) => {
      // An answer past its deadline is replaced; a standing one is kept, and returned instead.
      const [saved] = await timed<RememberedAnswer>(
        `INSERT INTO requests (request_id, server_id, url, expires) VALUES ($2, $3, $4, $5)
         ON CONFLICT (request_id) DO UPDATE SET server_id = excluded.server_id, url = excluded.url, expires = excluded.expires
           WHERE requests.expires <= ${NOW}
         RETURNING server_id AS "serverId", url`,
        [requestId, answer.serverId, answer.url, expires],
      );
      return saved ?? (await find(requestId)) ?? answer;
    },
    forget: async (requestId) => {
      await plain('DELETE FROM requests WHERE request_id = $1', [requestId]);
    },
    prune: async () => {
      await timed(`DELETE FROM requests WHERE expires <= ${NOW}`);
    },
  };
}
