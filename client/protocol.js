// Generated from common/browser.ts by bun run build:client: do not edit.
(() => {

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
  var TICKET_PARAM = "ticket";
  var CLOSE = {
    normal: 1000,
    goingAway: 1001,
    unsupportedData: 1003,
    policy: 1008,
    tooBig: 1009,
    replaced: 4000,
    badMessage: 4001
  };
  function isWebSocketUrl(text) {
    try {
      const url = new URL(text);
      return url.protocol === "ws:" || url.protocol === "wss:";
    } catch {
      return false;
    }
  }

  // common/browser.ts
  Object.assign(globalThis, {
    RenderDispatchProtocol: Object.freeze({ CLOSE, DEFAULT_DISPATCHER_URL, GET_SERVER_URL, NONE, PATHS, TICKET_PARAM, isWebSocketUrl })
  });
})();
