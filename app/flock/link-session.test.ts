// The link handshake on fake sockets: two ends that know the secret link up; one that does not is
// refused whichever end it is, and so is one in the middle passing a true handshake along and then
// speaking; silence, frames out of turn and a dispatcher dialling itself are refused with a close
// code and a reason, and nothing reaches the relay.

import { describe, expect, test } from 'bun:test';
import { CLOSE, encode } from '../../common/protocol.ts';
import type { Link, Session } from '../control-session.ts';
import { createEventSource, type DispatcherEvents } from '../events.ts';
import { createProver } from './link-proof.ts';
import { openLinkSession } from './link-session.ts';
import { createRelay, type Relay } from './relay.ts';

const SECRET = 'the-flock-secret-0123456789';

function relay(member: string): Relay {
  return createRelay({ member, maxHops: 8, noEvents: false, events: createEventSource<DispatcherEvents>(), now: Date.now });
}

interface End {
  link: Link;
  /** What this end sent, as on the wire. */
  sent: string[];
  closed: { code: number; reason: string } | null;
  session: Session | null;
}

/** Two sockets joined back to back: what one sends, the other's session reads. */
function pair(): [End, End] {
  const ends: End[] = [];
  for (let i = 0; i < 2; i++) {
    const end: End = {
      sent: [],
      closed: null,
      session: null,
      link: {
        send(text) {
          end.sent.push(text);
          void ends[1 - i].session?.message(text);
        },
        close(code, reason) {
          if (end.closed) return;
          end.closed = { code, reason };
          void end.session?.closed();
          void ends[1 - i].session?.closed();
        },
      },
    };
    ends.push(end);
  }
  return ends as [End, End];
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 20));
const log = () => {};

function link(listenerRelay: Relay, dialerRelay: Relay, secrets: [string, string] = [SECRET, SECRET]) {
  const [atListener, atDialer] = pair();
  // The dialer's session exists first: it waits for the challenge the listener sends on opening.
  atDialer.session = openLinkSession({ relay: dialerRelay, prover: createProver(secrets[1]), role: 'dialer', address: 'ws://b/v1/link', log }, atDialer.link);
  atListener.session = openLinkSession({ relay: listenerRelay, prover: createProver(secrets[0]), role: 'listener', address: '127.0.0.1', log }, atListener.link);
  return { atListener, atDialer };
}

describe('link handshake', () => {
  test('two ends that know the secret link up, and frames then flow both ways', async () => {
    const [a, b] = [relay('member-a-0001'), relay('member-b-0002')];
    link(b, a);
    await settle();
    expect(a.links().map((l) => [l.peer, l.direction])).toEqual([['member-b-0002', 'out']]);
    expect(b.links().map((l) => [l.peer, l.direction])).toEqual([['member-a-0001', 'in']]);
    const heard: unknown[] = [];
    b.handle('capacity', (body) => heard.push(body.free));
    a.announce({ kind: 'capacity', free: 4 });
    await settle();
    expect(heard).toEqual([4]);
  });

  test('a dialer with the wrong secret is refused by the listener', async () => {
    const [a, b] = [relay('member-a-0001'), relay('member-b-0002')];
    const { atListener } = link(b, a, [SECRET, 'not-the-flock-secret-987654']);
    await settle();
    expect(atListener.closed).toEqual({ code: CLOSE.unauthorized, reason: 'wrong flock secret' });
    expect([a.links(), b.links()]).toEqual([[], []]);
  });

  test('a listener that cannot prove itself is refused by the dialer', async () => {
    const a = relay('member-a-0001');
    const [fake, atDialer] = pair();
    atDialer.session = openLinkSession({ relay: a, prover: createProver(SECRET), role: 'dialer', address: 'ws://b/v1/link', log }, atDialer.link);
    // It answers the hello with a welcome whose proof it made up.
    fake.session = {
      message: async (text) => {
        if (JSON.parse(text).type === 'link_hello') fake.link.send(encode({ type: 'link_welcome', member: 'member-b-0002', proof: 'ab'.repeat(32) }));
      },
      closed: async () => {},
    };
    fake.link.send(encode({ type: 'link_challenge', member: 'member-b-0002', nonce: 'n'.repeat(32) }));
    await settle();
    expect(atDialer.closed).toEqual({ code: CLOSE.unauthorized, reason: 'the dispatcher linked to does not know the flock secret' });
    expect(a.links()).toEqual([]);
  });

  test('one in the middle who passes a true handshake along cannot add, change or replay a frame', async () => {
    /** D dials M, M dials L, and M passes everything along both ways: what it saw from D is kept. */
    async function throughTheMiddle() {
      const [d, l] = [relay('member-d-0001'), relay('member-l-0002')];
      const [atD, mToD] = pair();
      const [mToL, atL] = pair();
      const fromD: string[] = [];
      mToD.session = { message: async (text) => (fromD.push(text), mToL.link.send(text)), closed: async () => {} };
      mToL.session = { message: async (text) => void mToD.link.send(text), closed: async () => {} };
      atD.session = openLinkSession({ relay: d, prover: createProver(SECRET), role: 'dialer', address: 'ws://m/v1/link', log }, atD.link);
      atL.session = openLinkSession({ relay: l, prover: createProver(SECRET), role: 'listener', address: 'm', log }, atL.link);
      const heard: number[] = [];
      l.handle('capacity', (body) => heard.push(body.free));
      await settle();
      d.announce({ kind: 'capacity', free: 1 });
      await settle();
      return { atL, fromD, heard, linked: [d.links().length, l.links().length] };
    }

    const forged = encode({ type: 'relay', origin: 'member-x-0003', seq: 1, hops: 1, body: { kind: 'capacity', free: 99 } });
    const attempts: ((fromD: string[]) => string)[] = [() => forged, () => `${'0'.repeat(64)} ${forged}`, (fromD) => fromD.at(-1)!];
    for (const attempt of attempts) {
      const { atL, fromD, heard, linked } = await throughTheMiddle();
      // Passed along untouched, the link works: M is only a wire.
      expect(linked).toEqual([1, 1]);
      expect(heard).toEqual([1]);
      await atL.session!.message(attempt(fromD));
      expect(atL.closed).toEqual({ code: CLOSE.unauthorized, reason: 'a frame whose seal does not hold (added, changed, replayed or out of order)' });
      expect(heard).toEqual([1]);
    }
  });

  test('silence, a relay frame before the handshake, and a dispatcher dialling itself are refused', async () => {
    const a = relay('member-a-0001');
    const [quiet] = pair();
    quiet.session = openLinkSession({ relay: a, prover: createProver(SECRET), role: 'listener', address: 'x', log, handshakeMs: 30 }, quiet.link);
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(quiet.closed).toEqual({ code: CLOSE.unauthorized, reason: 'no link handshake within 30ms' });

    const [early] = pair();
    early.session = openLinkSession({ relay: a, prover: createProver(SECRET), role: 'listener', address: 'x', log }, early.link);
    await early.session.message(encode({ type: 'relay', origin: 'member-z-0009', seq: 1, hops: 1, body: { kind: 'capacity', free: 1 } }));
    expect(early.closed).toEqual({ code: CLOSE.unauthorized, reason: 'unexpected relay during the handshake' });

    const { atDialer } = link(a, a);
    await settle();
    expect(atDialer.closed).toEqual({ code: CLOSE.selfLink, reason: 'a dispatcher cannot link to itself' });
    expect(a.links()).toEqual([]);
  });
});
