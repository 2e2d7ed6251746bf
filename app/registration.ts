// What a registration may take, decided the same way by every engine from the rows it found: an
// id is its first registrant's for as long as its row exists, and a URL is the live server's
// registered on it. The engines read the rows and write the outcome in one transaction.

import { effectiveState, type RegisterInput, type ServerRow, type StoredState } from './lease-store.ts';

type Found = Pick<ServerRow, 'id' | 'url' | 'state' | 'leaseExpires' | 'claimExpires'>;

export type Registration =
  | { ok: false; field: 'id' | 'url'; conflict: string }
  /** Insert a new row, or update the existing one (`existing`), after deleting the rows `replaced`. */
  | { ok: true; existing: boolean; state: StoredState; isNew: boolean; replaced: { id: string; url: string }[] };

export function decideRegistration(
  input: RegisterInput,
  existing: (Found & Pick<ServerRow, 'instanceHash'>) | null,
  othersOnUrl: Found[],
  now: number,
): Registration {
  if (existing && existing.instanceHash !== input.instanceHash) {
    return { ok: false, field: 'id', conflict: `id ${input.id} belongs to another render server process` };
  }
  // Another id on this URL is a render server that was restarted; while its lease lives, it has not.
  const alive = othersOnUrl.find((old) => !['offline', 'expired'].includes(effectiveState(old, now)));
  if (alive) return { ok: false, field: 'url', conflict: `${input.url} belongs to live render server ${alive.id}` };
  const replaced = othersOnUrl.map(({ id, url }) => ({ id, url }));
  const connected = input.client === 'connected';
  if (!existing) return { ok: true, existing: false, state: connected ? 'busy' : 'ready', isNew: true, replaced };
  const live = effectiveState(existing, now);
  // A drain outlasts a reconnection, and so does a reservation: the client holding the ticket may still arrive.
  const state: StoredState = existing.state === 'draining' ? 'draining' : connected ? 'busy' : live === 'reserved' ? 'reserved' : 'ready';
  return { ok: true, existing: true, state, isNew: live === 'offline' || live === 'expired', replaced };
}
