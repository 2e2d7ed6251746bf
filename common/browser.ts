// Entry of the browser bundle client/protocol.js (bun run build:client). Pages opened from disk
// cannot load modules, so the bundle is a classic script that puts the protocol on one global.

import { readFrameMeta } from './frame-meta.ts';
import {
  CAMERA_LIMITS,
  CLOSE,
  DEFAULT_CAMERA,
  DEFAULT_DISPATCHER_URL,
  GET_SERVER_URL,
  NONE,
  PATHS,
  TICKET_PARAM,
  encode,
  isWebSocketUrl,
  parseDispatcherAnswer,
  parseRenderToBrowser,
} from './protocol.ts';

Object.assign(globalThis, {
  RenderDispatchProtocol: Object.freeze({
    CAMERA_LIMITS,
    CLOSE,
    DEFAULT_CAMERA,
    DEFAULT_DISPATCHER_URL,
    GET_SERVER_URL,
    NONE,
    PATHS,
    TICKET_PARAM,
    encode,
    isWebSocketUrl,
    parseDispatcherAnswer,
    parseRenderToBrowser,
    readFrameMeta,
  }),
});
