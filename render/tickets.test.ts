import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { sign } from 'hono/jwt';
import { REFUSALS, createTicketGate, type Refusal } from './tickets.ts';

const KEY = 'k'.repeat(43);
const OLD_KEY = 'o'.repeat(43);
const CLAIM_MS = 10_000;
const now = () => Math.floor(Date.now() / 1000);

function gate(opts: { registered?: boolean; slotFree?: boolean; keys?: string[] } = {}) {
  let free = opts.slotFree ?? true;
  return createTicketGate({
    identity: () => (opts.registered === false ? null : { id: 'me', keys: opts.keys ?? [KEY], claimMs: CLAIM_MS }),
    claim: () => {
      if (!free) return false;
      free = false;
      return true;
    },
  });
}

async function urlWith(claims: Record<string, unknown>, key = KEY): Promise<URL> {
  const ticket = await sign({ sub: 'me', jti: crypto.randomUUID(), iat: now(), exp: now() + 10, ...claims }, key, 'HS256');
  return new URL(`ws://127.0.0.1:16000/stream?ticket=${ticket}`);
}

describe('ticket gate', () => {
  test('admits a good ticket once, and refuses it the second time', async () => {
    const g = gate();
    const url = await urlWith({});
    assert.equal((await g.admit(url)).ok, true);
    assert.deepEqual(await g.admit(url), { ok: false, status: 403, refusal: 'used', reason: 'ticket already used' });
  });

  const refusals: [string, () => Promise<URL>, number, Refusal, string][] = [
    ['missing', async () => new URL('ws://127.0.0.1:16000/stream'), 401, 'missing', 'ticket missing'],
    ['forged', () => urlWith({}, 'x'.repeat(43)), 403, 'invalid', 'ticket invalid: not signed by the dispatcher for this server'],
    ['garbage', async () => new URL('ws://127.0.0.1:16000/stream?ticket=abc'), 403, 'invalid', 'ticket invalid'],
    ['expired', () => urlWith({ exp: now() - 1 }), 401, 'expired', 'ticket expired: ask the dispatcher again'],
    ['for another server', () => urlWith({ sub: 'other' }), 403, 'other-server', 'ticket is for another render server'],
    // Signed with the right key, but for a year: a stolen key must not mint lasting passes.
    ['year-long', () => urlWith({ exp: now() + 365 * 86_400 }), 403, 'invalid', 'ticket invalid: it lives longer than the 10000ms claim period'],
    ['future-dated', () => urlWith({ iat: now() + 3600, exp: now() + 3605 }), 403, 'invalid', 'ticket invalid'],
    ['iat-less', () => urlWith({ iat: undefined }), 403, 'invalid', 'ticket invalid: missing jti, iat or exp'],
  ];
  for (const [name, make, status, refusal, reason] of refusals) {
    test(`refuses a ${name} ticket with ${status} (${refusal})`, async () => {
      const admission = await gate().admit(await make());
      assert.equal(admission.ok, false);
      if (admission.ok) return;
      assert.equal(admission.status, status);
      assert.equal(admission.refusal, refusal);
      assert.ok(admission.reason.startsWith(reason), admission.reason);
    });
  }

  test('refuses a second client with 409 while the slot is taken', async () => {
    const g = gate();
    assert.equal((await g.admit(await urlWith({}))).ok, true);
    assert.deepEqual(await g.admit(await urlWith({})), { ok: false, status: 409, refusal: 'busy', reason: 'busy: another client is streaming from this server' });
  });

  test('a ticket signed with the key before the last registration still passes within its claim period', async () => {
    const admission = await gate({ keys: [KEY, OLD_KEY] }).admit(await urlWith({}, OLD_KEY));
    assert.equal(admission.ok, true);
  });

  test('the refusal codes tested here are exactly the ones the metrics label by', () => {
    const tested = new Set<Refusal>([...refusals.map(([, , , refusal]) => refusal), 'used', 'busy', 'not-registered']);
    assert.deepEqual([...tested].sort(), [...REFUSALS].sort());
  });

  test('refuses with 503 until registered', async () => {
    const admission = await gate({ registered: false }).admit(await urlWith({}));
    assert.equal(admission.ok === false && admission.status, 503);
    assert.equal(admission.ok === false && admission.refusal, 'not-registered');
  });
});
