// The hand-out path's synchronous ticket signing against hono/jwt, which the render server
// verifies with: the same bytes for the same claims and key, and verified; a new key for the same
// server replaces the old one.

import { expect, test } from 'bun:test';
import { sign, verify } from 'hono/jwt';
import type { TicketClaims } from '../common/protocol.ts';
import { createTicketSigner } from './ticket-signer.ts';

const now = Math.floor(Date.now() / 1000);
const claims: TicketClaims = { sub: 'srv-1', jti: 'grant-0001', iat: now, exp: now + 60, sid: 'session-abcdef' };

test("a ticket is byte for byte what hono/jwt signs, and hono/jwt verifies it", async () => {
  const signer = createTicketSigner();
  const key = 'c2VydmVyLWtleS1vZi0zMi1ieXRlcy1iYXNlNjR1cmw';
  const ticket = signer.sign('srv-1', key, claims);
  expect(ticket).toBe(await sign(claims, key, 'HS256'));
  expect(await verify(ticket, key, 'HS256')).toEqual(claims);
});

test("a server's new key replaces its old one", async () => {
  const signer = createTicketSigner();
  const old = signer.sign('srv-1', 'the-old-key-of-this-server', claims);
  const renewed = signer.sign('srv-1', 'the-new-key-of-this-server', claims);
  expect(renewed).not.toBe(old);
  expect(await verify(renewed, 'the-new-key-of-this-server', 'HS256')).toEqual(claims);
  await expect(verify(renewed, 'the-old-key-of-this-server', 'HS256')).rejects.toThrow();
});

test('signing costs a few microseconds, synchronously', () => {
  const signer = createTicketSigner();
  const started = performance.now();
  for (let i = 0; i < 1000; i++) signer.sign('srv-1', 'a-key-of-this-server', { ...claims, jti: `g${i}` });
  // Not a timing test of the target: a guard that nothing asynchronous or per-call key import crept in.
  expect(performance.now() - started).toBeLessThan(1000);
});
