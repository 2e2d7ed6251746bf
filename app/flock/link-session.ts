// One link between two dispatchers, from either end: the listener (a dispatcher that was dialled on
// /v1/link) or the dialer (one started with --link). First the handshake, in which each proves it
// knows the flock's secret (link-proof.ts); then relay frames both ways until the socket closes.
// A link that has not proved itself within a few seconds, proves wrong, or turns out to be this
// same dispatcher is closed with a code and a reason; nothing it sent reaches the relay. After the
// handshake every frame is sealed (link-proof.ts), and one whose seal fails closes the link.

import { CLOSE, encode, parseLinkFrame, type LinkFrame } from '../../common/protocol.ts';
import type { Link, Session } from '../control-session.ts';
import type { DispatcherEvents } from '../events.ts';
import { inOrder } from '../in-order.ts';
import { newNonce, type Prover, type Role, type Sealer } from './link-proof.ts';
import type { AttachedLink, Relay } from './relay.ts';

/** How long a link has to complete its handshake. */
export const HANDSHAKE_MS = 5000;

export interface LinkSessionOptions {
  relay: Relay;
  prover: Prover;
  role: Role;
  /** Where the other end is: the URL dialled, or the address it came from. */
  address: string;
  log(level: DispatcherEvents['log']['level'], message: string): void;
  /** Told when the handshake has succeeded. */
  up?(peer: string): void;
  handshakeMs?: number;
}

export function openLinkSession({ relay, prover, role, address, log, up, handshakeMs = HANDSHAKE_MS }: LinkSessionOptions, link: Link): Session {
  const myNonce = newNonce();
  let theirNonce: string | null = null;
  /** The member the dialer was challenged by: the welcome must come from the same. */
  let challenger: string | null = null;
  let attached: AttachedLink | null = null;
  let sealer: Sealer | null = null;
  let open = true;
  const send = (frame: LinkFrame) => {
    if (open) link.send(sealer ? sealer.seal(encode(frame)) : encode(frame));
  };
  const refuse = (code: number, reason: string) => {
    log('warn', `link ${role === 'dialer' ? 'to' : 'from'} ${address} refused: ${reason}`);
    send({ type: 'error', error: reason });
    close(code, reason);
  };
  function close(code: number, reason: string): void {
    if (!open) return;
    open = false;
    clearTimeout(timer);
    link.close(code, reason);
  }
  const timer = setTimeout(() => refuse(CLOSE.unauthorized, `no link handshake within ${handshakeMs}ms`), handshakeMs);

  function attach(peer: string, peerNonce: string): void {
    if (peer === relay.member) return refuse(CLOSE.selfLink, 'a dispatcher cannot link to itself');
    clearTimeout(timer);
    const mine = { member: relay.member, nonce: myNonce };
    const theirs = { member: peer, nonce: peerNonce };
    sealer = prover.sealer(role, role === 'dialer' ? { dialer: mine, listener: theirs } : { dialer: theirs, listener: mine });
    attached = relay.attach({ peer, address, direction: role === 'dialer' ? 'out' : 'in', send });
    log('info', `linked ${role === 'dialer' ? 'to' : 'from'} dispatcher ${peer} at ${address}`);
    up?.(peer);
  }

  if (role === 'listener') send({ type: 'link_challenge', member: relay.member, nonce: myNonce });

  async function handle(received: string): Promise<void> {
    if (!open) return;
    const text = sealer ? sealer.open(received) : received;
    if (text === null) return refuse(CLOSE.unauthorized, 'a frame whose seal does not hold (added, changed, replayed or out of order)');
    const parsed = parseLinkFrame(text);
    if (!parsed.ok) {
      if (!attached) return refuse(CLOSE.unauthorized, `handshake: ${parsed.error}`);
      return send({ type: 'error', error: parsed.error, ...(parsed.field ? { field: parsed.field } : {}) });
    }
    const frame = parsed.value;
    if (frame.type === 'error') return log('warn', `link ${address} says: ${frame.error}`);
    if (attached) {
      if (frame.type === 'relay') return attached.receive(frame);
      return send({ type: 'error', error: `${frame.type} after the handshake`, field: 'type' });
    }
    if (role === 'dialer' && frame.type === 'link_challenge' && challenger === null) {
      if (frame.member === relay.member) return refuse(CLOSE.selfLink, 'a dispatcher cannot link to itself');
      challenger = frame.member;
      theirNonce = frame.nonce;
      const proof = await prover.prove('dialer', frame.nonce, myNonce, relay.member);
      return send({ type: 'link_hello', member: relay.member, nonce: myNonce, proof });
    }
    if (role === 'dialer' && frame.type === 'link_welcome' && challenger !== null && theirNonce !== null) {
      if (frame.member !== challenger) return refuse(CLOSE.unauthorized, 'the welcome came from another member than the challenge');
      if (!(await prover.verify(frame.proof, 'listener', myNonce, theirNonce, frame.member))) {
        return refuse(CLOSE.unauthorized, 'the dispatcher linked to does not know the flock secret');
      }
      if (open) attach(frame.member, theirNonce);
      return;
    }
    if (role === 'listener' && frame.type === 'link_hello' && theirNonce === null) {
      theirNonce = frame.nonce;
      if (!(await prover.verify(frame.proof, 'dialer', myNonce, frame.nonce, frame.member))) {
        return refuse(CLOSE.unauthorized, 'wrong flock secret');
      }
      if (!open) return;
      if (frame.member === relay.member) return refuse(CLOSE.selfLink, 'a dispatcher cannot link to itself');
      const proof = await prover.prove('listener', frame.nonce, myNonce, relay.member);
      send({ type: 'link_welcome', member: relay.member, proof });
      if (open) attach(frame.member, frame.nonce);
      return;
    }
    refuse(CLOSE.unauthorized, `unexpected ${frame.type} during the handshake`);
  }

  return {
    message: inOrder(handle),
    closed(): Promise<void> {
      open = false;
      clearTimeout(timer);
      if (attached && role === 'listener') log('info', `link from ${address} closed`);
      attached?.detach();
      attached = null;
      return Promise.resolve();
    },
  };
}
