// The render server's door: a browser may upgrade only with a ticket the dispatcher signed for
// this server, once, before it expires. A ticket lives no longer than the claim period the
// dispatcher announced, whoever signed it: a key that leaked cannot mint a pass good for a year.
// Every refusal is an HTTP status with a distinct reason, and one of a few fixed codes, so that the
// refusals can be counted by kind (GET /metrics) without a label per reason text.

import { verify } from 'hono/jwt';
import { JwtTokenExpired } from 'hono/utils/jwt/types';
import { TICKET_PARAM } from '../common/protocol.ts';

/** The kinds of refusal, as in the README's table: the values of the refusal counter's label. */
export const REFUSALS = ['missing', 'expired', 'invalid', 'other-server', 'used', 'busy', 'not-registered'] as const;
export type Refusal = (typeof REFUSALS)[number];

/** Who got in: the ticket's id (safe to log: it is not the ticket) and the page's session. */
export interface Admitted {
  jti: string;
  session: string | null;
}

export type Admission = ({ ok: true } & Admitted) | { ok: false; status: number; refusal: Refusal; reason: string };

export interface TicketGate {
  /** Checks the upgrade request's URL; a ticket that passes is spent and the client slot claimed. */
  admit(url: URL): Promise<Admission>;
}

/** Seconds a ticket may exceed the claim period by: the dispatcher rounds iat down and exp up, and clocks differ. */
export const TICKET_SKEW_S = 2;

export interface GateOptions {
  /** This server's id, the keys its tickets may be signed with, and the claim period; null before registering. */
  identity(): { id: string; keys: string[]; claimMs: number } | null;
  /** Claims the one client slot (slot.ts); false while it is claimed or held. */
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
    if (!ticket) return { ok: false, status: 401, refusal: 'missing', reason: `ticket missing: ask the dispatcher for this server's URL (the ${TICKET_PARAM} parameter)` };
    const self = identity();
    if (!self) return { ok: false, status: 503, refusal: 'not-registered', reason: 'not registered with a dispatcher yet: try again shortly' };
    let claims: Awaited<ReturnType<typeof verify>> | null = null;
    for (const key of self.keys) {
      try {
        claims = await verify(ticket, key, 'HS256');
        break;
      } catch (error) {
        if (error instanceof JwtTokenExpired) return { ok: false, status: 401, refusal: 'expired', reason: 'ticket expired: ask the dispatcher again' };
      }
    }
    if (!claims) return { ok: false, status: 403, refusal: 'invalid', reason: 'ticket invalid: not signed by the dispatcher for this server' };
    if (claims.sub !== self.id) return { ok: false, status: 403, refusal: 'other-server', reason: 'ticket is for another render server' };
    const jti = typeof claims.jti === 'string' ? claims.jti : null;
    const exp = typeof claims.exp === 'number' ? claims.exp : null;
    const iat = typeof claims.iat === 'number' ? claims.iat : null;
    if (!jti || exp === null || iat === null) return { ok: false, status: 403, refusal: 'invalid', reason: 'ticket invalid: missing jti, iat or exp' };
    const nowSeconds = Math.floor(now() / 1000);
    const longest = Math.ceil(self.claimMs / 1000) + TICKET_SKEW_S;
    if (exp - iat > longest || exp - nowSeconds > longest) {
      return { ok: false, status: 403, refusal: 'invalid', reason: `ticket invalid: it lives longer than the ${self.claimMs}ms claim period` };
    }
    forgetExpired(nowSeconds);
    if (spent.has(jti)) return { ok: false, status: 403, refusal: 'used', reason: 'ticket already used' };
    // Checked after the ticket so that a bad ticket learns it is bad, not that the server is busy.
    if (!claim()) return { ok: false, status: 409, refusal: 'busy', reason: 'busy: another client is streaming from this server' };
    spent.set(jti, exp);
    return { ok: true, jti, session: typeof claims.sid === 'string' ? claims.sid : null };
  }

  return { admit };
}
