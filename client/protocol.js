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
    DEFAULT_RENDER_PORT: () => DEFAULT_RENDER_PORT,
    GET_SERVER_URL: () => GET_SERVER_URL,
    LIMITS: () => LIMITS,
    MAX_HOPS_LIMIT: () => MAX_HOPS_LIMIT,
    MAX_PAGE_MESSAGE: () => MAX_PAGE_MESSAGE,
    NONE: () => NONE,
    PATHS: () => PATHS,
    SECRET_ENV: () => SECRET_ENV,
    TICKET_PARAM: () => TICKET_PARAM,
    encode: () => encode,
    flockMessageProblem: () => flockMessageProblem,
    parseBrowserToRender: () => parseBrowserToRender,
    parseDispatcherAnswer: () => parseDispatcherAnswer,
    parseDispatcherMessage: () => parseDispatcherMessage,
    parseLinkFrame: () => parseLinkFrame,
    parseRenderMessage: () => parseRenderMessage,
    parseRenderToBrowser: () => parseRenderToBrowser,
    parseStreamRequest: () => parseStreamRequest,
    serverUrlProblem: () => serverUrlProblem,
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
    return checkVariant(registry, data, "type", "message");
  }
  var FIELDS = new WeakMap;
  function fieldsOf(shape) {
    let fields = FIELDS.get(shape);
    if (!fields)
      FIELDS.set(shape, fields = Object.entries(shape));
    return fields;
  }
  function checkVariant(registry, data, tag, what) {
    if (typeof data !== "object" || data === null || Array.isArray(data)) {
      return { ok: false, error: `${what} must be a JSON object` };
    }
    const record = data;
    const variant = record[tag];
    if (typeof variant !== "string" || !Object.hasOwn(registry, variant)) {
      return { ok: false, field: tag, error: `${tag} must be one of ${Object.keys(registry).join(", ")}` };
    }
    const value = { [tag]: variant };
    for (const [field, check] of fieldsOf(registry[variant])) {
      const problem = check(record[field]);
      if (problem)
        return { ok: false, field, error: `${variant}.${field} ${problem}` };
      if (record[field] !== undefined)
        value[field] = record[field];
    }
    return { ok: true, value };
  }

  // common/protocol.ts
  var GET_SERVER_URL = "get_server_url";
  var NONE = "none";
  var DEFAULT_DISPATCHER_PORT = 18000;
  var DEFAULT_RENDER_PORT = 16000;
  var DEFAULT_DISPATCHER_URL = `ws://localhost:${DEFAULT_DISPATCHER_PORT}/stream`;
  var PATHS = {
    stream: "/stream",
    control: "/v1/control",
    servers: "/v1/servers",
    healthz: "/healthz",
    readyz: "/readyz",
    metrics: "/metrics",
    about: "/about",
    link: "/v1/link",
    flock: "/v1/flock",
    dashboard: "/dashboard",
    dashboardFeed: "/v1/dashboard/feed"
  };
  var SECRET_ENV = "RENDER_DISPATCH_SECRET";
  var TICKET_PARAM = "ticket";
  var CLOSE = {
    normal: 1000,
    goingAway: 1001,
    unsupportedData: 1003,
    tooBig: 1009,
    internalError: 1011,
    tryAgainLater: 1013,
    replaced: 4000,
    conflict: 4001,
    unauthorized: 4003,
    selfLink: 4009,
    tooFarBehind: 4013
  };
  var DEFAULT_CAMERA = { yaw: 0, pitch: 0, distance: 4 };
  var CAMERA_LIMITS = { pitch: 1.4, distanceMin: 2.5, distanceMax: 12 };
  var SESSION = text({ min: 8, max: 64, pattern: /^[A-Za-z0-9_-]+$/, like: "letters, digits, _ and -" });
  var SERVER_ID = text({ min: 1, max: 64, pattern: /^[A-Za-z0-9._-]+$/, like: "letters, digits, . _ and -" });
  var TOKEN = text({ min: 16, max: 128, pattern: /^[A-Za-z0-9._~+/=-]+$/, like: "letters, digits and . _ ~ + / = -" });
  var REQUEST_ID = text({ min: 1, max: 128, pattern: /^[A-Za-z0-9._:-]+$/, like: "letters, digits and . _ : -" });
  var CLIENT_STATE = oneOf("none", "connected");
  var ERROR = { error: text(), field: optional(text()), retryMs: optional(number({ min: 0 })) };
  var LIMITS = { fps: 1000, frameMs: 60000, urlLength: 1024 };
  var RENDER_TO_DISPATCHER = {
    register: {
      id: SERVER_ID,
      instance: TOKEN,
      url: (v) => typeof v === "string" ? serverUrlProblem(v) : "must be a ws:// or wss:// URL",
      client: CLIENT_STATE,
      targetFps: number({ min: 0, max: LIMITS.fps })
    },
    heartbeat: { fps: number({ min: 0, max: LIMITS.fps }), frameMs: number({ min: 0, max: LIMITS.frameMs }), client: CLIENT_STATE, answer: optional(boolean) },
    client: { event: oneOf("connected", "gone") },
    drain: {}
  };
  var DISPATCHER_TO_RENDER = {
    registered: {
      id: SERVER_ID,
      key: TOKEN,
      heartbeatMs: number({ min: 1 }),
      ttlMs: number({ min: 1 }),
      claimMs: number({ min: 1 }),
      expiresAt: number({ min: 0 })
    },
    lease: { expiresAt: number({ min: 0 }) },
    error: ERROR
  };
  var EVENT_CODE = text({ max: 64, pattern: /^[A-Za-z0-9_.:-]+$/, like: "letters, digits and . _ : -" });
  var USER = text({ max: 128 });
  var ANY = () => null;
  var MAX_PAGE_MESSAGE = 4096;
  var BROWSER_TO_DISPATCHER = {
    get_server_url: { requestId: optional(REQUEST_ID), session: optional(SESSION), wait: optional(boolean) },
    message: { event: optional(EVENT_CODE), user: optional(USER), data: ANY },
    subscribe: {}
  };
  var DISPATCHER_TO_BROWSER = {
    server_url: { url: text(), requestId: optional(text()) },
    none: { reason: text(), requestId: optional(text()) },
    queued: { position: number({ min: 1, integer: true }), size: number({ min: 1, integer: true }), estimateMs: optional(number({ min: 0 })) },
    subscribed: {},
    message: { from: text(), event: optional(text()), user: optional(text()), data: ANY },
    error: ERROR
  };
  var MEMBER = text({ min: 8, max: 64, pattern: /^[A-Za-z0-9_-]+$/, like: "letters, digits, _ and -" });
  var NONCE = text({ min: 16, max: 64, pattern: /^[A-Za-z0-9_-]+$/, like: "base64url" });
  var PROOF = text({ min: 64, max: 64, pattern: /^[0-9a-f]+$/, like: "lowercase hex" });
  var HOLDER = text({ max: 200 });
  var CALL = number({ min: 1, integer: true });
  var MAX_HOPS_LIMIT = 64;
  var FLOCK_BODY = {
    message: { event: optional(EVENT_CODE), user: optional(USER), data: ANY },
    capacity: { free: number({ min: 0, integer: true }) },
    borrow: { call: CALL, holder: HOLDER, requestId: optional(text({ max: 200 })), session: optional(SESSION) },
    lent: { call: CALL, url: optional(text({ max: LIMITS.urlLength * 2 })), serverId: optional(SERVER_ID), reason: optional(text()) },
    return: { serverId: SERVER_ID }
  };
  var BODY = (value) => {
    const checked = checkVariant(FLOCK_BODY, value, "kind", "body");
    return checked.ok ? null : checked.error.replace(/^body /, "");
  };
  var LINK_FRAMES = {
    link_challenge: { member: MEMBER, nonce: NONCE },
    link_hello: { member: MEMBER, nonce: NONCE, proof: PROOF },
    link_welcome: { member: MEMBER, proof: PROOF },
    relay: {
      origin: MEMBER,
      seq: number({ min: 1, integer: true }),
      hops: number({ min: 1, max: MAX_HOPS_LIMIT, integer: true }),
      to: optional(MEMBER),
      body: BODY
    },
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
    ping: { t: number() },
    shown: { seq: number({ min: 0, integer: true }) }
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
  function parseLinkFrame(text) {
    const parsed = parseWith(LINK_FRAMES, text);
    if (!parsed.ok || parsed.value.type !== "relay")
      return parsed;
    const body = checkVariant(FLOCK_BODY, parsed.value.body, "kind", "body");
    return body.ok ? { ok: true, value: { ...parsed.value, body: body.value } } : { ok: false, error: `relay.body ${body.error}`, field: "body" };
  }
  function encode(message) {
    return JSON.stringify(message);
  }
  function parseStreamRequest(message) {
    if (message === GET_SERVER_URL)
      return { ok: true, value: { type: "get_server_url", json: false } };
    if (!message.startsWith("{"))
      return { ok: false, error: streamErrorReply(message) };
    if (message.length > MAX_PAGE_MESSAGE)
      return { ok: false, error: `messages on ${PATHS.stream} are at most ${MAX_PAGE_MESSAGE} characters of JSON` };
    const parsed = parseWith(BROWSER_TO_DISPATCHER, message);
    return parsed.ok ? { ok: true, value: { ...parsed.value, json: true } } : parsed;
  }
  function flockMessageProblem(message) {
    let text;
    try {
      text = JSON.stringify({ ...message, type: "message" });
    } catch {
      return "a message must be JSON";
    }
    if (text.length > MAX_PAGE_MESSAGE)
      return `a message is at most ${MAX_PAGE_MESSAGE} characters of JSON`;
    const parsed = parseWith(BROWSER_TO_DISPATCHER, text);
    return parsed.ok ? null : parsed.error;
  }
  function serverUrlProblem(candidate) {
    if (candidate.length > LIMITS.urlLength)
      return `must be at most ${LIMITS.urlLength} characters`;
    let url;
    try {
      url = new URL(candidate);
    } catch {
      return "must be a ws:// or wss:// URL";
    }
    if (url.protocol !== "ws:" && url.protocol !== "wss:")
      return "must be a ws:// or wss:// URL";
    if (url.username || url.password)
      return "must not carry a user name or password";
    if (candidate.includes("#"))
      return "must not have a fragment (#…)";
    if (url.searchParams.has(TICKET_PARAM))
      return `must not carry a ${TICKET_PARAM} parameter: the dispatcher adds it`;
    return null;
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
