// How two dispatchers prove to each other that they belong to the same flock without either
// sending the secret: each sends a fresh nonce, and each answers with an HMAC of both nonces, its
// role and its member id under the shared secret. A proof cannot be replayed (the other side's
// nonce is new each time), reflected (the roles differ) or moved to another member id.

const LABEL = 'render-dispatch flock link v1';

export type Role = 'dialer' | 'listener';

/** A random nonce, base64url. */
export function newNonce(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

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
    /** Whether `proof` is that proof (compared in constant time by the HMAC itself). */
    async verify(proof: string, role: Role, theirNonce: string, myNonce: string, member: string): Promise<boolean> {
      const bytes = new Uint8Array((proof.match(/../g) ?? []).map((pair) => parseInt(pair, 16)));
      return crypto.subtle.verify('HMAC', await key, bytes, statement(role, theirNonce, myNonce, member));
    },
  };
}

export type Prover = ReturnType<typeof createProver>;
