// Entry of the browser bundle client/protocol.js (bun run build:client). Pages opened from disk
// cannot load modules, so the bundle is a classic script that puts the protocol on one global.

import { CLOSE, DEFAULT_DISPATCHER_URL, GET_SERVER_URL, NONE, PATHS, TICKET_PARAM, isWebSocketUrl } from './protocol.ts';

Object.assign(globalThis, {
  RenderDispatchProtocol: Object.freeze({ CLOSE, DEFAULT_DISPATCHER_URL, GET_SERVER_URL, NONE, PATHS, TICKET_PARAM, isWebSocketUrl }),
});
