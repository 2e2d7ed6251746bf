// The render server's one client slot, and the only code that changes who holds it. A render
// server streams to one browser at a time. The slot is claimed when the ticket gate admits a
// ticket, before the WebSocket handshake, so that two racing upgrades can never both get in; it is
// held by the client's socket once the handshake completes; and it is free again when that socket
// closes or errors, when its frame loop fails (the client is closed with 1001 first), when the
// handshake dies before it completes (or had died before the slot saw it), or when it has not
// completed within HANDSHAKE_MS.

import type { Duplex } from 'node:stream';
import type WebSocket from 'ws';
import { CLOSE } from '../common/protocol.ts';
import type { Admitted } from './tickets.ts';

/** How long an admitted ticket's handshake may take before its claim on the slot lapses. */
export const HANDSHAKE_MS = 10_000;

/** What the slot drives while a client holds it: the frame stream (stream.ts). */
export interface SlotStream {
  /** Streams to the client; `session` is the page's session from its ticket. Rejects if drawing fails. */
  start(ws: WebSocket, session: string | null): Promise<void>;
  /** Stops streaming to a client that is gone. */
  end(ws: WebSocket): void;
}

export interface SlotOptions {
  stream: SlotStream;
  /** Told once a client holds the slot, and once it is gone, with who it is (from its ticket). */
  onClient(event: 'connected' | 'gone', client: Admitted): void;
  log(message: string): void;
}

export function createClientSlot({ stream, onClient, log }: SlotOptions) {
  // Free; claimed by an admitted ticket whose handshake is under way; or held by a client's socket.
  let holder: 'free' | 'claimed' | WebSocket = 'free';
  // Which claim is under way, so that a late handshake or close cannot free a later one's.
  let claims = 0;
  let lapse: ReturnType<typeof setTimeout> | undefined;

  function free(claim: number): void {
    if (holder === 'claimed' && claims === claim) holder = 'free';
  }

  function release(ws: WebSocket, client: Admitted): void {
    if (holder !== ws) return;
    holder = 'free';
    stream.end(ws);
    onClient('gone', client);
  }

  return {
    /** Takes the slot for an admitted ticket; false while it is claimed or held. */
    claim(): boolean {
      if (holder !== 'free') return false;
      holder = 'claimed';
      const mine = ++claims;
      // A claim whose handshake never completes (its socket gone unnoticed) must not hold the slot for good.
      clearTimeout(lapse);
      lapse = setTimeout(() => free(mine), HANDSHAKE_MS);
      lapse.unref();
      return true;
    },
    /**
     * Gives the claimed slot to the upgrading `socket` of the admitted `client`: `handshake`
     * completes the WebSocket upgrade (ws's handleUpgrade) and hands over the WebSocket, which then
     * holds the slot and is streamed to. If the socket closes before the handshake completes, the
     * slot is free again.
     */
    attach(socket: Duplex, client: Admitted, handshake: (attach: (ws: WebSocket) => void) => void): void {
      if (holder !== 'claimed') throw new Error('the client slot must be claimed before a socket is attached');
      const mine = claims;
      // Gone already (while its ticket was checked): no close event will come to free the slot.
      if (socket.destroyed) return free(mine);
      const early = () => free(mine);
      socket.once('close', early);
      handshake((ws) => {
        socket.off('close', early);
        if (holder !== 'claimed' || claims !== mine) {
          ws.close(CLOSE.tryAgainLater, 'the handshake took too long: ask the dispatcher again');
          return;
        }
        clearTimeout(lapse);
        holder = ws;
        ws.on('close', () => release(ws, client));
        ws.on('error', () => release(ws, client));
        onClient('connected', client);
        stream.start(ws, client.session).catch((error) => {
          log(`frame loop failed: ${error instanceof Error ? error.message : error}`);
          ws.close(CLOSE.goingAway, 'render server failed to draw');
          release(ws, client);
        });
      });
    },
    /** Closes the client, if one holds the slot, with a code and reason; the slot is free once it has closed. */
    closeClient(code: number, reason: string): void {
      if (typeof holder === 'object') holder.close(code, reason);
    },
  };
}
