// The relay's promises on in-memory flocks: each message once at every member, never back at its
// origin, in lines, rings and meshes; stopped by returnValue = false; bounded in hops. Frames go
// through the protocol's encode and parse, and arrive in a shuffled order, as on real links.

import { describe, expect, test } from 'bun:test';
import { encode, parseLinkFrame, type DeliveredMessage, type RelayFrame } from '../../common/protocol.ts';
import { createEventSource, type DispatcherEvents, type MessageEvent } from '../events.ts';
import { createRelay, type AttachedLink, type Relay } from './relay.ts';

interface Member {
  relay: Relay;
  events: ReturnType<typeof createEventSource<DispatcherEvents>>;
  /** "origin:seq" of every message raised here. */
  heard: string[];
}

/** Frames waiting to arrive, delivered in a random order by `settle`; those on `late` links only once nothing else is on its way. */
function createNetwork() {
  const inFlight: (() => void)[] = [];
  const late: (() => void)[] = [];
  return {
    link(a: Member, b: Member, { slow = false }: { slow?: boolean } = {}): { cut(): void } {
      const ends: { to: AttachedLink | null }[] = [{ to: null }, { to: null }];
      const carry = (end: { to: AttachedLink | null }) => (frame: RelayFrame) => {
        const text = encode(frame);
        (slow ? late : inFlight).push(() => {
          const parsed = parseLinkFrame(text);
          if (!parsed.ok || parsed.value.type !== 'relay') throw new Error(`bad frame: ${text}`);
          end.to?.receive(parsed.value);
        });
      };
      const atA = a.relay.attach({ peer: b.relay.member, address: `mem://${b.relay.member}`, direction: 'out', send: carry(ends[1]) });
      const atB = b.relay.attach({ peer: a.relay.member, address: `mem://${a.relay.member}`, direction: 'in', send: carry(ends[0]) });
      ends[0].to = atA;
      ends[1].to = atB;
      return {
        cut() {
          ends[0].to = ends[1].to = null;
          atA.detach();
          atB.detach();
        },
      };
    },
    settle(): void {
      while (inFlight.length || late.length) {
        while (inFlight.length) inFlight.splice(Math.floor(Math.random() * inFlight.length), 1)[0]();
        late.shift()?.();
      }
    },
  };
}

function members(n: number, options: { maxHops?: number; noEvents?: boolean } = {}): Member[] {
  return Array.from({ length: n }, (_, i) => {
    const events = createEventSource<DispatcherEvents>();
    const relay = createRelay({ member: `member-${i}`, maxHops: options.maxHops ?? 8, noEvents: options.noEvents ?? false, events, now: Date.now });
    const heard: string[] = [];
    const record = (event: MessageEvent) => heard.push(`${event.message.origin}:${event.message.seq}`);
    events.on('message', record);
    events.on('evt.chat', record);
    return { relay, events, heard };
  });
}

const TOPOLOGIES: Record<string, (n: number) => [number, number][]> = {
  line: (n) => Array.from({ length: n - 1 }, (_, i) => [i, i + 1]),
  ring: (n) => Array.from({ length: n }, (_, i) => [i, (i + 1) % n]),
  mesh: (n) => Array.from({ length: n }, (_, i) => Array.from({ length: n - i - 1 }, (_, j) => [i, i + j + 1] as [number, number])).flat(),
};

describe('relay', () => {
  for (const [name, size] of [['line', 4], ['ring', 3], ['ring', 5], ['mesh', 4]] as const) {
    test(`a ${name} of ${size}: every member hears each message once, its origin never`, () => {
      const flock = members(size);
      const net = createNetwork();
      for (const [a, b] of TOPOLOGIES[name](size)) net.link(flock[a], flock[b]);
      const sent: string[][] = flock.map(() => []);
      for (let i = 0; i < 300; i++) {
        const from = i % size;
        flock[from].relay.send({ event: i % 2 ? 'chat' : undefined, data: { i } });
        sent[from].push(`member-${from}:${sent[from].length + 1}`);
        if (i % 7 === 0) net.settle();
      }
      net.settle();
      for (const [i, member] of flock.entries()) {
        const expected = sent.flatMap((mine, j) => (j === i ? [] : mine)).sort();
        expect([...member.heard].sort()).toEqual(expected);
        for (const link of member.relay.links()) expect(link.echoes).toBe(0);
      }
      if (name !== 'line') expect(flock.flatMap((m) => m.relay.links()).some((link) => link.duplicates > 0)).toBe(true);
    });
  }

  test('a handler that sets returnValue = false stops the message there', () => {
    const flock = members(3);
    const net = createNetwork();
    net.link(flock[0], flock[1]);
    net.link(flock[1], flock[2]);
    const pageAtB: DeliveredMessage[] = [];
    flock[1].relay.subscribe('page-b', (message) => pageAtB.push(message));
    flock[1].events.on('evt.secret', (event) => {
      event.returnValue = false;
    });
    flock[1].events.on('evt.secret', (event) => flock[1].heard.push(`secret ${event.message.seq}`));
    flock[0].relay.send({ event: 'secret', data: 1 });
    flock[0].relay.send({ event: 'chat', data: 2 });
    net.settle();
    expect(flock[1].heard.sort()).toEqual(['member-0:2', 'secret 1']);
    expect(flock[2].heard).toEqual(['member-0:2']);
    expect(pageAtB.map((m) => m.data)).toEqual([2]);
  });

  test('a message travels at most maxHops links', () => {
    const flock = members(5, { maxHops: 2 });
    const net = createNetwork();
    for (const [a, b] of TOPOLOGIES.line(5)) net.link(flock[a], flock[b]);
    flock[0].relay.send({ data: 'x' });
    net.settle();
    expect(flock.map((m) => m.heard.length)).toEqual([0, 1, 1, 0, 0]);
  });

  test('a copy by a shorter path goes on where the first ran out of hops; a stopped message does not', () => {
    // A–B, B–C, A–C (slow), C–D with maxHops 2: the copy through B reaches C first, with no hop
    // left for D; the direct copy, later, still has one.
    const flock = members(4, { maxHops: 2 });
    const net = createNetwork();
    net.link(flock[0], flock[1]);
    net.link(flock[1], flock[2]);
    net.link(flock[0], flock[2], { slow: true });
    net.link(flock[2], flock[3]);
    for (const m of flock) m.events.on('evt.secret', (event) => m.heard.push(`${event.message.origin}:${event.message.seq}`));
    flock[2].events.on('evt.secret', (event) => {
      event.returnValue = false;
    });
    flock[0].relay.send({ event: 'chat', data: 1 });
    flock[0].relay.send({ event: 'secret', data: 2 });
    net.settle();
    expect(flock.map((m) => [...m.heard].sort())).toEqual([[], ['member-0:1', 'member-0:2'], ['member-0:1', 'member-0:2'], ['member-0:1']]);
    expect(flock[2].relay.links().find((link) => link.peer === 'member-0')?.duplicates).toBe(2);
  });

  test('a program sending what a page could not is refused at once', () => {
    const [a] = members(1);
    expect(() => a.relay.send({ event: 'not a code' })).toThrow('message.event must be letters, digits and . _ : -');
    expect(() => a.relay.send({ data: 'x'.repeat(5000) })).toThrow('a message is at most 4096 characters of JSON');
  });

  test('evt.<code> instead of message, unless noEvents', () => {
    for (const noEvents of [false, true]) {
      const flock = members(2, { noEvents });
      const net = createNetwork();
      net.link(flock[0], flock[1]);
      const names: string[] = [];
      flock[1].events.on('message', (event) => names.push(event.event));
      flock[1].events.on('evt.hello', (event) => names.push(event.event));
      flock[0].relay.send({ event: 'hello' });
      flock[0].relay.send({});
      net.settle();
      expect(names.sort()).toEqual(noEvents ? ['message', 'message'] : ['evt.hello', 'message']);
    }
  });

  test("a page's message reaches the other pages and the flock, not the page itself; its connection answers it alone", () => {
    const flock = members(2);
    const net = createNetwork();
    net.link(flock[0], flock[1]);
    const got: Record<string, DeliveredMessage[]> = { a1: [], a2: [], b1: [] };
    flock[0].relay.subscribe('a1', (m) => got.a1.push(m));
    flock[0].relay.subscribe('a2', (m) => got.a2.push(m));
    flock[1].relay.subscribe('b1', (m) => got.b1.push(m));
    const answered: DeliveredMessage[] = [];
    flock[0].events.on('evt.ping', (event) => {
      expect(event.connection?.kind).toBe('page');
      event.connection?.send({ event: 'pong', data: event.message.data });
    });
    flock[0].relay.fromPage('a1', { event: 'ping', user: 'hank', data: 7 }, (m) => answered.push(m));
    net.settle();
    expect(answered).toEqual([{ type: 'message', from: 'member-0', event: 'pong', data: 7 }]);
    expect(got.a1).toEqual([]);
    expect(got.a2).toEqual([{ type: 'message', from: 'member-0', event: 'ping', user: 'hank', data: 7 }]);
    expect(got.b1).toEqual([{ type: 'message', from: 'member-0', event: 'ping', user: 'hank', data: 7 }]);
  });

  test("a handler answering over a link reaches that dispatcher alone, which does not pass it on", () => {
    const flock = members(3);
    const net = createNetwork();
    for (const [a, b] of TOPOLOGIES.line(3)) net.link(flock[a], flock[b]);
    flock[1].events.on('evt.ask', (event) => event.connection?.send({ event: 'answer' }));
    const answers: string[] = [];
    for (const m of flock) m.events.on('evt.answer', (event) => answers.push(`${m.relay.member} from ${event.message.origin}`));
    flock[0].relay.send({ event: 'ask' });
    net.settle();
    expect(answers).toEqual(['member-0 from member-1']);
  });

  test("the dispatchers' own messages: one to a member is handled there only, one to all everywhere", () => {
    const flock = members(4);
    const net = createNetwork();
    for (const [a, b] of TOPOLOGIES.ring(4)) net.link(flock[a], flock[b]);
    const handled: string[] = [];
    const capacity = new Map<string, string>();
    for (const m of flock) {
      m.relay.handle('return', (body, from) => handled.push(`${m.relay.member} return ${body.serverId} from ${from.origin}`));
      // Taken again when a copy comes by a shorter path: what stays is the nearest.
      m.relay.handle('capacity', (body, from) => capacity.set(m.relay.member, `${body.free} from ${from.origin} in ${from.hops}`));
    }
    expect(flock[0].relay.sendTo('member-2', { kind: 'return', serverId: 's1' })).toBe(true);
    net.settle();
    expect(handled).toEqual(['member-2 return s1 from member-0']);
    flock[0].relay.announce({ kind: 'capacity', free: 3 });
    net.settle();
    expect(Object.fromEntries(capacity)).toEqual({ 'member-1': '3 from member-0 in 1', 'member-2': '3 from member-0 in 2', 'member-3': '3 from member-0 in 1' });
  });

  test('links up and down raise server.new and server.lost with kind dispatcher', () => {
    const flock = members(2);
    const seen: string[] = [];
    flock[0].events.on('server.new', (e) => seen.push(`new ${e.kind} ${e.id}`));
    flock[0].events.on('server.lost', (e) => seen.push(`lost ${e.kind} ${e.id} ${e.reason}`));
    const net = createNetwork();
    const link = net.link(flock[0], flock[1]);
    link.cut();
    link.cut();
    expect(seen).toEqual(['new dispatcher member-1', 'lost dispatcher member-1 closed']);
    expect(flock[0].relay.links()).toEqual([]);
  });
});
