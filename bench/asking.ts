// How a benchmark's client asks the dispatcher for a server and reads the answer: the tutorial's
// plain `get_server_url`, or the JSON the shipped page sends when it opens. Shared by the socket
// runs (dispatch.ts) and the cycle in process (cycle-in-process.ts), so that both ask alike, and
// every answer is waited for a bounded time.

import { encode, parseDispatcherAnswer } from '../common/protocol.ts';

/**
 * How a client asks: the tutorial's plain `get_server_url`, or as the shipped page does when it
 * opens (JSON with a request id and a session, both new on every ask, so that the dispatcher looks
 * for the request's earlier answer, then for a server kept for the session and the session's busy
 * server before it allocates one, and remembers its answer).
 */
export type Ask = 'plain' | 'page';

/** A server that has not answered within this has failed the run. */
export const ANSWER_TIMEOUT_MS = 10_000;

/** The message one ask sends. */
export function askMessage(ask: Ask): string {
  return ask === 'plain' ? 'get_server_url' : encode({ type: 'get_server_url', requestId: crypto.randomUUID(), session: crypto.randomUUID(), wait: false });
}

/**
 * The answer `listen` is given, or a rejection once ANSWER_TIMEOUT_MS pass (or `listen` fails it
 * itself, a socket closing, say).
 */
export function answerWithin(listen: (answer: (text: string) => void, fail: (error: Error) => void) => void): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer within ${ANSWER_TIMEOUT_MS} ms`)), ANSWER_TIMEOUT_MS);
    const settled = <T>(then: (value: T) => void) => (value: T) => {
      clearTimeout(timer);
      then(value);
    };
    listen(settled(resolve), settled(reject));
  });
}

/** The URL a plain or JSON answer names, or null for none; anything else is an error. */
export function answeredUrl(text: string, ask: Ask): string | null {
  if (ask === 'plain') return text === 'none' ? null : text;
  const parsed = parseDispatcherAnswer(text);
  if (parsed.ok && parsed.value.type === 'server_url') return parsed.value.url;
  if (parsed.ok && parsed.value.type === 'none') return null;
  throw new Error(`the dispatcher answered neither a URL nor none: ${text}`);
}
