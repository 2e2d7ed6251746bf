// Entry of the browser bundle client/protocol.js (bun run build:client). Pages opened from disk
// cannot load modules, so the bundle is a classic script that puts the protocol on one global.

import { readFrameMeta } from './frame-meta.ts';
import * as protocol from './protocol.ts';

Object.assign(globalThis, { RenderDispatchProtocol: Object.freeze({ ...protocol, readFrameMeta }) });
