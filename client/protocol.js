// Generated from common/browser.ts by bun run build:client: do not edit.
(() => {
  var __defProp = Object.defineProperty;
  var __returnValue = (v) => v;
  function __exportSetter(name, newValue) {
    this[name] = __returnValue.bind(null, newValue);
  }
  var __export = (target, all) => {
    for (var name in all)
      __defProp(target, name, {
        get: all[name],
        enumerable: true,
        configurable: true,
        set: __exportSetter.bind(all, name)
      });
  };

  // common/protocol.ts
  var exports_protocol = {};
  __export(exports_protocol, {
    CAMERA_LIMITS: () => CAMERA_LIMITS,
    CLOSE: () => CLOSE,
    DEFAULT_CAMERA: () => DEFAULT_CAMERA,
    DEFAULT_DISPATCHER_PORT: () => DEFAULT_DISPATCHER_PORT,
    DEFAULT_DISPATCHER_URL: () => DEFAULT_DISPATCHER_URL,
    GET_SERVER_URL: () => GET_SERVER_URL,
    NONE: () => NONE,
    PATHS: () => PATHS,
    SECRET_ENV: () => SECRET_ENV,
    TICKET_PARAM: () => TICKET_PARAM,
    encode: () => encode,
    isWebSocketUrl: () => isWebSocketUrl,
    parseBrowserToRender: () => parseBrowserToRender,
    parseDispatcherAnswer: () => parseDispatcherAnswer,
    parseDispatcherMessage: () => parseDispatcherMessage,
    parseRenderMessage: () => parseRenderMessage,
    parseRenderToBrowser: () => parseRenderToBrowser,
    parseStreamRequest: () => parseStreamRequest,
    streamErrorReply: () => streamErrorReply,
    ticketUrl: () => ticketUrl
  });

  // common/frame-meta.ts
  var SOI = [255, 216];
  var COM = [255, 254];
  var MAX_SEGMENT = 65535 - 2;
  function readFrameMeta(bytes) {
    if (bytes.length < 6 || bytes[0] !== SOI[0] || bytes[1] !== SOI[1] || bytes[2] !== COM[0] || bytes[3] !== COM[1])
      return null;
    const length = bytes[4] << 8 | bytes[5];
    if (length < 2 || 4 + length > bytes.length)
      return null;
    try {
      const meta = JSON.parse(new TextDecoder().decode(bytes.subarray(6, 4 + length)));
      return typeof meta?.seq === "number" && typeof meta?.capturedAt === "number" ? meta : null;
    } catch {
      return null;
    }
  }

  // common/validate.ts
  var MAX_STRING = 2048;
  function text({ min = 1, max = MAX_STRING, pattern, like } = {}) {
    return (value) => {
      if (typeof value !== "string" || value.length < min || value.length > max) {
        return min === max ? `must be a string of ${min} characters` : `must be a string of ${min} to ${max} characters`;
      }
      return pattern && !pattern.test(value) ? `must be ${like ?? `like ${pattern}`}` : null;
    };
  }
  function number({ min = -Infinity, max = Infinity, integer = false } = {}) {
    const range = Number.isFinite(min) && Number.isFinite(max) ? ` from ${min} to ${max}` : Number.isFinite(min) ? ` >= ${min}` : "";
    const what = `${integer ? "an integer" : "a finite number"}${range}`;
    return (value) => typeof value === "number" && Number.isFinite(value) && value >= min && value <= max && (!integer || Number.isInteger(value)) ? null : `must be ${what}`;
  }
  function oneOf(...choices) {
    return (value) => choices.includes(value) ? null : `must be ${choices.map((c) => JSON.stringify(c)).join(" or ")}`;
  }
  var boolean = oneOf(true, false);
  function optional(check) {
    return (value) => value === undefined ? null : check(value);
  }
  function parseWith(registry, text) {
    let data;
    try {
      data = JSON.parse(text);
    } catch {
      return { ok: false, error: "message is not valid JSON" };
    }
    if (typeof data !== "object" || data === null || Array.isArray(data)) {
      return { ok: false, error: "message must be a JSON object" };
    }
    const record = data;
    const type = record.type;
    if (typeof type !== "string" || !Object.hasOwn(registry, type)) {
      return { ok: false, field: "type", error: `type must be one of ${Object.keys(registry).join(", ")}` };
    }
    const value = { type };
    for (const [field, check] of Object.entries(registry[type])) {
      const problem = check(record[field]);
      if (problem)
        return { ok: false, field, error: `${type}.${field} ${problem}` };
      if (record[field] !== undefined)
        value[field] = record[field];
    }
    return { ok: true, value };
  }

  // common/protocol.ts
  var GET_SERVER_URL = "get_server_url";
  var NONE = "none";
  var DEFAULT_DISPATCHER_PORT = 18000;
  var DEFAULT_DISPATCHER_URL = `ws://localhost:${DEFAULT_DISPATCHER_PORT}/stream`;
  var PATHS = {
    stream: "/stream",
    control: "/v1/control",
    servers: "/v1/servers"
  };
  var SECRET_ENV = "RENDER_DISPATCH_SECRET";
  var TICKET_PARAM = "ticket";
  var CLOSE = {
    normal: 1000,
    goingAway: 1001,
    unsupportedData: 1003,
    tooBig: 1009,
    internalError: 1011,
    replaced: 4000
  };
  var DEFAULT_CAMERA = { yaw: 0, pitch: 0, distance: 4 };
  var CAMERA_LIMITS = { pitch: 1.4, distanceMin: 2.5, distanceMax: 12 };
  var SESSION = text({ min: 8, max: 64, pattern: /^[A-Za-z0-9_-]+$/, like: "letters, digits, _ and -" });
  var CLIENT_STATE = oneOf("none", "connected");
  var ERROR = { error: text(), field: optional(text()) };
  var RENDER_TO_DISPATCHER = {
    register: { id: text(), url: (v) => typeof v === "string" && isWebSocketUrl(v) ? null : "must be a ws:// or wss:// URL", client: CLIENT_STATE, targetFps: number({ min: 0 }) },
    heartbeat: { fps: number({ min: 0 }), frameMs: number({ min: 0 }), client: CLIENT_STATE },
    client: { event: oneOf("connected", "gone") },
    drain: {}
  };
  var DISPATCHER_TO_RENDER = {
    registered: { id: text(), key: text(), heartbeatMs: number({ min: 0 }), ttlMs: number({ min: 0 }), expiresAt: number({ min: 0 }) },
    lease: { expiresAt: number({ min: 0 }) },
    error: ERROR
  };
  var BROWSER_TO_DISPATCHER = {
    get_server_url: { requestId: optional(text({ max: 128 })), session: optional(SESSION), wait: optional(boolean) }
  };
  var DISPATCHER_TO_BROWSER = {
    server_url: { url: text(), requestId: optional(text()) },
    none: { reason: text(), requestId: optional(text()) },
    queued: { position: number({ min: 1, integer: true }), size: number({ min: 1, integer: true }), estimateMs: optional(number({ min: 0 })) },
    error: ERROR
  };
  var CAMERA_FIELDS = {
    yaw: number({ min: -1e6, max: 1e6 }),
    pitch: number({ min: -CAMERA_LIMITS.pitch, max: CAMERA_LIMITS.pitch }),
    distance: number({ min: CAMERA_LIMITS.distanceMin, max: CAMERA_LIMITS.distanceMax })
  };
  var CAMERA = (value) => {
    if (typeof value !== "object" || value === null)
      return "must be {yaw, pitch, distance}";
    for (const [field, check] of Object.entries(CAMERA_FIELDS)) {
      const problem = check(value[field]);
      if (problem)
        return `.${field} ${problem}`;
    }
    return null;
  };
  var BROWSER_TO_RENDER = {
    camera: { seq: number({ min: 0, integer: true }), ...CAMERA_FIELDS },
    ping: { t: number() }
  };
  var RENDER_TO_BROWSER = {
    hello: { id: text(), size: number({ min: 1 }), targetFps: number({ min: 0 }), camera: CAMERA },
    pong: { t: number(), serverTime: number() },
    error: ERROR
  };
  var parseRenderMessage = (text) => parseWith(RENDER_TO_DISPATCHER, text);
  var parseDispatcherMessage = (text) => parseWith(DISPATCHER_TO_RENDER, text);
  var parseDispatcherAnswer = (text) => parseWith(DISPATCHER_TO_BROWSER, text);
  var parseBrowserToRender = (text) => parseWith(BROWSER_TO_RENDER, text);
  var parseRenderToBrowser = (text) => parseWith(RENDER_TO_BROWSER, text);
  function encode(message) {
    return JSON.stringify(message);
  }
  function parseStreamRequest(message) {
    if (message === GET_SERVER_URL)
      return { ok: true, value: { type: "get_server_url", json: false } };
    if (!message.startsWith("{"))
      return { ok: false, error: streamErrorReply(message) };
    const parsed = parseWith(BROWSER_TO_DISPATCHER, message);
    return parsed.ok ? { ok: true, value: { ...parsed.value, json: true } } : parsed;
  }
  function isWebSocketUrl(candidate) {
    try {
      const url = new URL(candidate);
      return url.protocol === "ws:" || url.protocol === "wss:";
    } catch {
      return false;
    }
  }
  function ticketUrl(baseUrl, ticket) {
    return `${baseUrl}${baseUrl.includes("?") ? "&" : "?"}${TICKET_PARAM}=${ticket}`;
  }
  function streamErrorReply(received) {
    const shown = received.length > 64 ? `${received.slice(0, 64)}…` : received;
    return `error: unknown request ${JSON.stringify(shown)}; send "${GET_SERVER_URL}"`;
  }

  // common/browser.ts
  Object.assign(globalThis, { RenderDispatchProtocol: Object.freeze({ ...exports_protocol, readFrameMeta }) });
})();
