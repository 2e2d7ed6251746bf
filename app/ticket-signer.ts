// Signing claim tickets on the hand-out path: a standard HS256 JWT (what hono/jwt verifies on the
// render server), made with a synchronous HMAC on a key prepared once per server key. Web Crypto's
// asynchronous sign costs a promise and a hop to its thread pool per ticket; this costs neither.
// The header is the one hono/jwt writes, so a ticket is byte for byte what it would have signed.

import { createHmac, type KeyObject, createSecretKey } from 'node:crypto';
import type { TicketClaims } from '../common/protocol.ts';

const HEADER = base64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));

function base64url(text: string): string {
  return Buffer.from(text).toString('base64url');
}

export function createTicketSigner() {
  // By server id, so that a new key at every registration replaces the old one instead of piling up.
  const keys = new Map<string, { key: string; secret: KeyObject }>();

  function secretFor(serverId: string, key: string): KeyObject {
    const cached = keys.get(serverId);
    if (cached?.key === key) return cached.secret;
    const secret = createSecretKey(Buffer.from(key, 'utf8'));
    keys.set(serverId, { key, secret });
    return secret;
  }

  return {
    /** The ticket for `claims`, signed with the server's key (the UTF-8 bytes of its text, as hono/jwt takes it). */
    sign(serverId: string, key: string, claims: TicketClaims): string {
      const body = `${HEADER}.${base64url(JSON.stringify(claims))}`;
      return `${body}.${createHmac('sha256', secretFor(serverId, key)).update(body).digest('base64url')}`;
    },
    /** A server left for good: its key is dropped. */
    forget(serverId: string): void {
      keys.delete(serverId);
    },
  };
}
