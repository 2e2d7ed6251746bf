// How two dispatchers prove to each other that they belong to the same flock without either
// sending the secret: each sends a fresh nonce, and each answers with an HMAC of both nonces, its
// role and its member id under the shared secret. A proof cannot be replayed (the other side's
// nonce is new each time), reflected (the roles differ) or moved to another member id. A proof
// alone could still be passed along by someone in the middle who then speaks on the link, so
// every frame after the handshake is sealed too: an HMAC under a key only the two ends can derive
// (the secret, both nonces, both member ids) over the sender's role, its frame count and the
// frame, so that nothing can be added, changed, replayed or reordered on the link.

import { createHmac, timingSafeEqual } from 'node:crypto';

const LABEL = 'render-dispatch flock link v1';

export type Role = 'dialer' | 'listener';

/** A random nonce, base64url. */
export function newNonce(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** The two ends of one link, as the handshake named them. */
export interface LinkEnds {
  dialer: { member: string; nonce: string };
  listener: { member: string; nonce: string };
}

/** Seals what one end sends and opens what it receives, for one link. */
export interface Sealer {
  seal(text: string): string;
  /** The frame, or null if its seal is not the next one from the other end. */
  open(sealed: string): string | null;
}

const MAC_HEX = 64;

export function createProver(secret: string) {
  const key = crypto.subtle.importKey('raw', new TextEncoder().encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);
  const statement = (role: Role, theirNonce: string, myNonce: string, member: string) =>
    new TextEncoder().encode([LABEL, role, theirNonce, myNonce, member].join('\n'));

  return {
    /** The proof `member`, in `role`, gives for the other side's nonce and its own. */
    async prove(role: Role, theirNonce: string, myNonce: string, member: string): Promise<string> {
      const mac = new Uint8Array(await crypto.subtle.sign('HMAC', await key, statement(role, theirNonce, myNonce, member)));
      return Array.from(mac, (b) => b.toString(16).padStart(2, '0')).join('');
    },
    /** The sealer of the link whose handshake named `ends`, for the end in `role`. */
    sealer(role: Role, ends: LinkEnds): Sealer {
      const key = createHmac('sha256', secret)
        .update([LABEL, 'frames', ends.dialer.nonce, ends.listener.nonce, ends.dialer.member, ends.listener.member].join('\n'))
        .digest();
      const other: Role = role === 'dialer' ? 'listener' : 'dialer';
      const mac = (from: Role, count: number, text: string) => createHmac('sha256', key).update(`${from}\n${count}\n`).update(text).digest();
      let sent = 0;
      let received = 0;
      return {
        seal: (text) => `${mac(role, ++sent, text).toString('hex')} ${text}`,
        open(sealed) {
          if (sealed.length <= MAC_HEX || sealed[MAC_HEX] !== ' ' || !/^[0-9a-f]+$/.test(sealed.slice(0, MAC_HEX))) return null;
          const text = sealed.slice(MAC_HEX + 1);
          if (!timingSafeEqual(mac(other, received + 1, text), Buffer.from(sealed.slice(0, MAC_HEX), 'hex'))) return null;
          received++;
          return text;
        },
      };
    },
    /** Whether `proof` is that proof (compared in constant time by the HMAC itself). */
    async verify(proof: string, role: Role, theirNonce: string, myNonce: string, member: string): Promise<boolean> {
      const bytes = new Uint8Array((proof.match(/../g) ?? []).map((pair) => parseInt(pair, 16)));
      return crypto.subtle.verify('HMAC', await key, bytes, statement(role, theirNonce, myNonce, member));
    },
  };
}

export type Prover = ReturnType<typeof createProver>;
