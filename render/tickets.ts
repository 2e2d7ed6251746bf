// The render server's door: a browser may upgrade only with a ticket the dispatcher signed for
// this server, once, before it expires. Every refusal is an HTTP status with a distinct reason.

import { verify } from 'hono/jwt';
import { JwtTokenExpired } from 'hono/utils/jwt/types';
import { TICKET_PARAM } from '../common/protocol.ts';

export type Admission = { ok: true; jti: string; session: string | null } | { ok: false; status: number; reason: string };

export interface TicketGate {
  /** Checks the upgrade request's URL; a ticket that passes is spent and the client slot taken. */
  admit(url: URL): Promise<Admission>;
}

export interface GateOptions {
  /** This server's id and ticket key, once the dispatcher has answered its registration. */
  identity(): { id: string; key: string } | null;
  /** Takes the one client slot; false while a client holds it. */
  claim(): boolean;
  now?: () => number;
}

export function createTicketGate({ identity, claim, now = Date.now }: GateOptions): TicketGate {
  // Spent ticket ids with their expiry (seconds); an expired ticket is refused anyway, so an id is
  // forgotten once its ticket could no longer pass.
  const spent = new Map<string, number>();

  function forgetExpired(nowSeconds: number) {
    for (const [jti, exp] of spent) if (exp < nowSeconds) spent.delete(jti);
  }

  async function admit(url: URL): Promise<Admission> {
    const ticket = url.searchParams.get(TICKET_PARAM);
    if (!ticket) return { ok: false, status: 401, reason: `ticket missing: ask the dispatcher for this server's URL (the ${TICKET_PARAM} parameter)` };
    const self = identity();
    if (!self) return { ok: false, status: 503, reason: 'not registered with a dispatcher yet: try again shortly' };
    let claims;
    try {
      claims = await verify(ticket, self.key, 'HS256');
    } catch (error) {
      if (error instanceof JwtTokenExpired) return { ok: false, status: 401, reason: 'ticket expired: ask the dispatcher again' };
      return { ok: false, status: 403, reason: 'ticket invalid: not signed by the dispatcher for this server' };
    }
    if (claims.sub !== self.id) return { ok: false, status: 403, reason: 'ticket is for another render server' };
    const jti = typeof claims.jti === 'string' ? claims.jti : null;
    const exp = typeof claims.exp === 'number' ? claims.exp : null;
    if (!jti || exp === null) return { ok: false, status: 403, reason: 'ticket invalid: missing jti or exp' };
    forgetExpired(Math.floor(now() / 1000));
    if (spent.has(jti)) return { ok: false, status: 403, reason: 'ticket already used' };
    // Checked after the ticket so that a bad ticket learns it is bad, not that the server is busy.
    if (!claim()) return { ok: false, status: 409, reason: 'busy: another client is streaming from this server' };
    spent.set(jti, exp);
    return { ok: true, jti, session: typeof claims.sid === 'string' ? claims.sid : null };
  }

  return { admit };
}
