// This dispatcher's place in the flock: its member id, the relay, the links it dials and those it
// was dialled on, lending, and the view operators get at GET /v1/flock. The dispatcher creates one
// whether or not it has links: a page's message still raises its events and reaches the other
// pages here.

import { PATHS, type RelayFrame } from '../../common/protocol.ts';
import type { Link, Session } from '../control-session.ts';
import type { DispatcherEvents, EventSource } from '../events.ts';
import { createDialer, type Connect, type DialState, type Dialer } from './dialer.ts';
import { createLending, withLending, type LendingOptions, type PeerCapacity } from './lending.ts';
import { createProver } from './link-proof.ts';
import { openLinkSession } from './link-session.ts';
import { createRelay, type LinkStats } from './relay.ts';

export interface FlockOptions {
  /** The flock's secret: every link proves it knows it. */
  secret: string;
  /** How many links a message may travel. */
  maxHops: number;
  /** Raise `message` for every message, never `evt.<code>`. */
  noEvents: boolean;
  /** Opens outbound sockets (the runtime's); without it this dispatcher links only when dialled. */
  connect?: Connect;
}

export const DEFAULT_MAX_HOPS = 8;

/** The other workers of the same `--workers N` dispatcher, reached through their primary. */
export interface SiblingsLink {
  /** Tells the others which member this worker is (so that nothing of its own is sent back to it). */
  join(member: string): void;
  send(frame: RelayFrame): void;
  onFrame(listener: (frame: RelayFrame) => void): () => void;
}

/** The peer name of the siblings' link: never a member id (those are 16 hex digits). */
const SIBLINGS = 'sibling-workers';

/** What the dispatcher gives its member: where events go, and what lending needs of this site. */
export interface FlockContext extends Omit<LendingOptions, 'relay'> {
  events: EventSource<DispatcherEvents>;
}

/** One link as GET /v1/flock shows it. */
export interface LinkView {
  /** The other dispatcher's member id (null while never connected). */
  peer: string | null;
  address: string;
  direction: 'in' | 'out';
  state: DialState;
  /** ISO time it entered that state. */
  since: string;
  /** What the dispatcher at the other end last said it could lend. */
  capacity: { free: number; heardAt: string } | null;
  relayed: Pick<LinkStats, 'received' | 'sent' | 'duplicates' | 'echoes'> | null;
  /** Why it last closed (dialled links). */
  lastClose?: string | null;
}

export interface FlockView {
  member: string;
  maxHops: number;
  /** What this dispatcher last told the flock it could lend. */
  free: number | null;
  links: LinkView[];
  /** Every dispatcher heard from, with its capacity and distance. */
  peers: (Omit<PeerCapacity, 'heardAt'> & { heardAt: string })[];
}

/**
 * A --link value (or addServer's address) as the URL dialled: ws:// or wss:// with a host and
 * port, and no path but /v1/link. Null if it is not one.
 */
export function linkUrl(text: string): string | null {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return null;
  }
  if ((url.protocol !== 'ws:' && url.protocol !== 'wss:') || !url.hostname || url.username || url.password || url.search || url.hash) return null;
  if (url.pathname !== '/' && url.pathname !== PATHS.link) return null;
  return `${url.protocol}//${url.host}${PATHS.link}`;
}

const iso = (t: number) => new Date(t).toISOString();

export function createFlock(options: FlockOptions, ctx: FlockContext) {
  const member = crypto.randomUUID().replace(/-/g, '').slice(0, 16);
  const relay = createRelay({ member, maxHops: options.maxHops, noEvents: options.noEvents, events: ctx.events, now: ctx.now });
  const lending = createLending({ ...ctx, relay });
  const prover = createProver(options.secret);
  const dialers = new Map<string, Dialer>();

  const session = (role: 'dialer' | 'listener', address: string, link: Link, up?: (peer: string) => void): Session =>
    openLinkSession({ relay, prover, role, address, log: ctx.log, up }, link);

  function view(): FlockView {
    const capacity = new Map(lending.peers().map((peer) => [peer.member, peer]));
    const capacityOf = (peer: string | null) => {
      const heard = peer ? capacity.get(peer) : undefined;
      return heard ? { free: heard.free, heardAt: iso(heard.heardAt) } : null;
    };
    const up = relay.links();
    const dialled = [...dialers.values()].map((dialer) => dialer.view());
    const links: LinkView[] = [
      ...dialled.map((dial): LinkView => {
        const stats = dial.state === 'up' ? up.find((link) => link.direction === 'out' && link.address === dial.url) : undefined;
        return {
          peer: dial.peer, address: dial.url, direction: 'out', state: dial.state, since: iso(dial.since), capacity: capacityOf(dial.peer),
          relayed: stats ? relayedOf(stats) : null, lastClose: dial.lastClose,
        };
      }),
      ...up.filter((link) => link.direction === 'in').map((link): LinkView => ({
        peer: link.peer, address: link.address, direction: 'in', state: 'up', since: iso(link.since), capacity: capacityOf(link.peer), relayed: relayedOf(link),
      })),
    ];
    return {
      member, maxHops: options.maxHops, free: lending.announced(), links,
      peers: lending.peers().map((peer) => ({ ...peer, heardAt: iso(peer.heardAt) })),
    };
  }

  return {
    member,
    relay,
    lending,
    /** The allocator pages are served by: this site's servers first, then lent ones. */
    allocator: withLending(ctx.local, lending),
    /** Keeps a link to the dispatcher at `address` (a ws:// URL), dialling it again whenever it drops. */
    link(address: string): void {
      const url = linkUrl(address);
      if (!url) throw new Error(`a link must be a ws:// or wss:// URL of a dispatcher (ws://host:port), got "${address}"`);
      if (!options.connect) throw new Error('this dispatcher cannot dial links (no WebSocket client given)');
      if (dialers.has(url)) return;
      const dialer = createDialer({ url, connect: options.connect, session: (link, up) => session('dialer', url, link, up), log: ctx.log, now: ctx.now });
      dialers.set(url, dialer);
      dialer.start();
    },
    /**
     * Links this worker to its siblings: everything relayed here reaches them, and the reverse.
     * Not announced as a server connection: it is this same dispatcher, in other processes.
     */
    joinSiblings(siblings: SiblingsLink): void {
      const attached = relay.attach({ peer: SIBLINGS, address: 'sibling workers (through the primary)', direction: 'in', send: siblings.send }, { quiet: true });
      siblings.onFrame((frame) => attached.receive(frame));
      siblings.join(member);
    },
    /** A dispatcher dialled this one on /v1/link from `address`. */
    openLink: (link: Link, address: string): Session => session('listener', address, link),
    view,
    /** Stops dialling (links still open are closed with the sockets). */
    stop(): void {
      for (const dialer of dialers.values()) dialer.stop();
    },
  };
}

export type Flock = ReturnType<typeof createFlock>;

function relayedOf({ received, sent, duplicates, echoes }: LinkStats) {
  return { received, sent, duplicates, echoes };
}
