// Which web pages may talk to the dispatcher. A browser names the page behind every WebSocket
// handshake and every cross-site request in the Origin header; programs (render servers, curl)
// send none. So a request with no Origin is not a browser's and is judged by the secret alone,
// and a request with one is judged here, before any socket exists:
// - render servers' control channel and linked dispatchers' /v1/link: never a browser;
// - operator routes: only pages the dispatcher serves itself, reached by a name it answers to
//   (a page on another site that re-points its DNS at 127.0.0.1 keeps its own Host and is refused);
// - /stream: the pages that are its users. By default pages opened from disk (Origin "null"),
//   pages on this machine (loopback origins, a development server) and the dispatcher's own page;
//   --allow-origin replaces that list ("*" allows every page);
// - the flock's messages on /stream (sending, subscribing): the same, except pages from disk and
//   sandboxed frames (Origin "null", which any site can make) unless "null" is listed by name:
//   what a page may read and say there reaches every linked dispatcher.

import { isLoopback } from '../common/flags.ts';

export interface OriginPolicy {
  /** Origins allowed on /stream, exactly as browsers send them; null for the default list. */
  streamOrigins: readonly string[] | null;
  /** The address the dispatcher listens on: a Host naming it is the dispatcher's own. */
  listenHost: string;
}

export type OriginVerdict = { ok: true } | { ok: false; reason: string };

const OK: OriginVerdict = { ok: true };

function parseOrigin(origin: string): URL | null {
  try {
    const url = new URL(origin);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url : null;
  } catch {
    return null;
  }
}

function isLoopbackOrigin(origin: string): boolean {
  const url = parseOrigin(origin);
  return url !== null && isLoopback(url.hostname);
}

/** Whether the page is the dispatcher's own: same host and port as the request, under a name the dispatcher answers to. */
function isOwnOrigin(origin: string, host: string | undefined, policy: OriginPolicy): boolean {
  const url = parseOrigin(origin);
  if (!url || !host || url.host !== host.toLowerCase()) return false;
  const name = url.hostname;
  const wildcard = policy.listenHost === '0.0.0.0' || policy.listenHost === '::';
  return isLoopback(name) || (!wildcard && name === policy.listenHost.toLowerCase());
}

export function createOriginPolicy(policy: OriginPolicy) {
  const listed = policy.streamOrigins ? new Set(policy.streamOrigins) : null;

  return {
    /** /v1/control: render servers are programs; a browser page is never one. */
    control(origin: string | undefined): OriginVerdict {
      if (origin === undefined) return OK;
      return { ok: false, reason: `browser pages may not open the control channel (Origin ${origin})` };
    },

    /** /v1/link: linked dispatchers are programs too. */
    link(origin: string | undefined): OriginVerdict {
      if (origin === undefined) return OK;
      return { ok: false, reason: `browser pages may not link to the flock (Origin ${origin})` };
    },

    /** Operator routes: the dispatcher's own pages only. */
    operator(origin: string | undefined, host: string | undefined): OriginVerdict {
      if (origin === undefined || isOwnOrigin(origin, host, policy)) return OK;
      return { ok: false, reason: `operator routes refuse pages from other origins (Origin ${origin})` };
    },

    /** Messages to and from the flock on /stream. */
    messages(origin: string | undefined, host: string | undefined): OriginVerdict {
      if (origin === undefined || isOwnOrigin(origin, host, policy)) return OK;
      const allowed = listed ? listed.has('*') || listed.has(origin) : isLoopbackOrigin(origin);
      if (allowed) return OK;
      return { ok: false, reason: `pages from ${origin} may not use the flock's messages (start the dispatcher with --allow-origin ${origin})` };
    },

    /** /stream: the allowed pages. */
    stream(origin: string | undefined, host: string | undefined): OriginVerdict {
      if (origin === undefined || isOwnOrigin(origin, host, policy)) return OK;
      const allowed = listed ? listed.has('*') || listed.has(origin) : origin === 'null' || isLoopbackOrigin(origin);
      if (allowed) return OK;
      return { ok: false, reason: `pages from ${origin} may not ask this dispatcher for servers (start it with --allow-origin ${origin})` };
    },
  };
}

export type OriginChecks = ReturnType<typeof createOriginPolicy>;

/** An --allow-origin value: "*", "null", or scheme://host[:port] with nothing after it. */
export function checkAllowedOrigin(text: string): string | null {
  if (text === '*' || text === 'null') return text;
  const url = parseOrigin(text);
  if (!url || url.origin !== text.replace(/\/$/, '')) return null;
  return url.origin;
}
