// One link this dispatcher keeps to another (--link, addServer, addClient): dialled at start and
// dialled again whenever it drops, after a delay that doubles from 100 ms to 5 s while attempts
// keep failing and starts over once a link has come up. The socket is the runtime's (the adapter
// passes `connect`); what is said on it is the link session's.

import { CLOSE } from '../../common/protocol.ts';
import type { Link, Session } from '../control-session.ts';
import type { DispatcherEvents } from '../events.ts';

export interface SocketHandlers {
  open(): void;
  message(text: string): void;
  close(code: number, reason: string): void;
}

/** Opens a WebSocket to `url` (no Origin header: a dispatcher is not a browser page). */
export type Connect = (url: string, on: SocketHandlers) => Link;

export type DialState = 'connecting' | 'up' | 'down';

export interface DialView {
  url: string;
  state: DialState;
  /** Since when it has been in that state. */
  since: number;
  /** The member at the other end while up, or last time it was. */
  peer: string | null;
  /** Why the last link closed, or the last attempt failed. */
  lastClose: string | null;
  /** Times it came up. */
  connects: number;
}

export interface DialerOptions {
  url: string;
  connect: Connect;
  /** The dialer's side of a link session on an open socket; `up` is called once the handshake succeeds. */
  session(link: Link, up: (peer: string) => void): Session;
  log(level: DispatcherEvents['log']['level'], message: string): void;
  now(): number;
  firstDelayMs?: number;
  maxDelayMs?: number;
}

export function createDialer({ url, connect, session: openSession, log, now, firstDelayMs = 100, maxDelayMs = 5000 }: DialerOptions) {
  const view: DialView = { url, state: 'connecting', since: now(), peer: null, lastClose: null, connects: 0 };
  let delay = firstDelayMs;
  let stopped = false;
  let socket: Link | null = null;
  let retry: ReturnType<typeof setTimeout> | undefined;

  const enter = (state: DialState) => {
    view.state = state;
    view.since = now();
  };

  function dial(): void {
    if (stopped) return;
    enter('connecting');
    let session: Session | null = null;
    let ended = false;
    const ws = connect(url, {
      open() {
        session = openSession(ws, (peer) => {
          view.peer = peer;
          view.connects++;
          delay = firstDelayMs;
          enter('up');
        });
      },
      message(text) {
        void session?.message(text);
      },
      close(code, reason) {
        if (ended) return;
        ended = true;
        socket = null;
        void session?.closed();
        view.lastClose = `${code}${reason ? ` ${reason}` : ''}`;
        const wasUp = view.state === 'up';
        enter('down');
        if (stopped) return;
        if (wasUp) log('warn', `link to ${url} lost (${view.lastClose}); dialling again`);
        const wait = Math.round(delay * (0.8 + Math.random() * 0.4));
        delay = Math.min(delay * 2, maxDelayMs);
        retry = setTimeout(dial, wait);
      },
    });
    socket = ws;
  }

  return {
    start: dial,
    view: (): DialView => ({ ...view }),
    /** Stops dialling and closes the link, if any. */
    stop(): void {
      stopped = true;
      clearTimeout(retry);
      socket?.close(CLOSE.goingAway, 'dispatcher shutting down');
    },
  };
}

export type Dialer = ReturnType<typeof createDialer>;
