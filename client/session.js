// The page's connections: asks the dispatcher for a server (waiting in line when asked to), streams
// from the server it is given, and when that server goes away goes back to the dispatcher by
// itself. The page's session id lives in sessionStorage, so a reload gets its server back.
// A classic script (pages opened from disk cannot load modules): defines RenderDispatchSession.
'use strict';
(function () {
  var P = window.RenderDispatchProtocol;
  var SESSION_KEY = 'render-dispatch.session';
  // Retry delays after a failure, growing while failures follow each other quickly: the first
  // retry is at once (a dispatcher that stopped has a sibling on the same port, a server that went
  // away leaves others free), the last delay repeats.
  var RETRY_MS = [0, 500, 1000, 2000, 4000];
  var STABLE_MS = 10000;

  function randomId() {
    return (crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2) + Date.now()).replace(/[^A-Za-z0-9_-]/g, '');
  }

  function loadSession() {
    try {
      var stored = sessionStorage.getItem(SESSION_KEY);
      if (stored) return stored;
      var fresh = randomId();
      sessionStorage.setItem(SESSION_KEY, fresh);
      return fresh;
    } catch (error) {
      return randomId(); // storage refused (a sandboxed frame): a session for this page view only
    }
  }

  /** @param {CloseEvent} event */
  function describeClose(event) {
    if (event.code === P.CLOSE.goingAway) return 'it is shutting down' + (event.reason ? ' (' + event.reason + ')' : '');
    if (event.code === 1006) return 'the connection was lost';
    return event.reason || 'it closed the connection (' + event.code + ')';
  }

  /**
   * @param {string} dispatcherUrl
   * @param {RenderDispatch.SessionEvents} on
   * @returns {RenderDispatch.Session}
   */
  function createSession(dispatcherUrl, on) {
    var session = loadSession();
    /** @type {WebSocket | null} */
    var render = null;
    var failures = 0;
    var streamingSince = 0;
    var seq = 0;
    var leaving = false;

    /**
     * @param {boolean} wait
     * @param {string} [requestId] kept across retries, so a server reserved for it is not reserved twice
     * @param {number} [attempt] how many times the dispatcher could not be reached for it
     */
    function ask(wait, requestId, attempt) {
      requestId = requestId || randomId();
      attempt = attempt || 0;
      var answered = false;
      /** @type {WebSocket} */
      var ws;
      on.state('connecting', 'Connecting to the dispatcher…');
      try {
        ws = new WebSocket(dispatcherUrl);
      } catch (error) {
        on.state('error', 'Bad dispatcher URL ' + dispatcherUrl + ': ' + (error instanceof Error ? error.message : String(error)));
        return;
      }
      ws.onopen = function () {
        ws.send(P.encode({ type: P.GET_SERVER_URL, requestId: requestId, session: session, wait: wait }));
      };
      ws.onmessage = function (message) {
        var parsed = P.parseDispatcherAnswer(String(message.data));
        if (!parsed.ok) return on.state('error', 'The dispatcher sent something unexpected: ' + parsed.error);
        var answer = parsed.value;
        // The flock's messages come only to pages that subscribe, which this one does not.
        if (answer.type === 'subscribed' || answer.type === 'message') return;
        if (answer.type === 'queued') {
          answered = true;
          return on.state('waiting', waitingText(answer), answer);
        }
        answered = true;
        ws.onclose = null;
        ws.close();
        if (answer.type === 'server_url') return connect(answer.url);
        if (answer.type === 'error' && answer.retryMs !== undefined) {
          // Too many requests from this address: the dispatcher says when to ask again.
          on.state('reconnecting', 'The dispatcher is busy; asking again shortly…');
          return setTimeout(function () { ask(wait, requestId, attempt); }, answer.retryMs);
        }
        if (answer.type === 'none') return on.state('none', 'No render server available.', { reason: answer.reason, canWait: !wait });
        on.state('error', 'The dispatcher said: ' + answer.error);
      };
      ws.onclose = function () {
        if (leaving) return;
        // Lost the dispatcher before or while waiting: try again, keeping the request id so a
        // server already reserved for it is not reserved twice.
        if (attempt >= RETRY_MS.length) return on.state('disconnected', 'Could not reach the dispatcher at ' + dispatcherUrl + '.', { canRetry: true });
        on.state('reconnecting', (answered ? 'Lost the dispatcher while waiting' : 'Cannot reach the dispatcher yet') + '; trying again…');
        setTimeout(function () { ask(wait, requestId, attempt + 1); }, RETRY_MS[attempt]);
      };
    }

    /** @param {RenderDispatch.Queued} queued */
    function waitingText(queued) {
      var ahead = queued.position - 1;
      var text = ahead === 0 ? 'Waiting for a render server: you are next' : 'Waiting for a render server: ' + ahead + ' ahead of you';
      if (queued.estimateMs !== undefined) text += ' (about ' + Math.max(1, Math.round(queued.estimateMs / 1000)) + ' s)';
      return text + '.';
    }

    /** @param {string} url */
    function connect(url) {
      var shown = new URL(url);
      shown.search = '';
      on.state('connecting', 'Connecting to the render server…', { server: shown.toString() });
      var ws = new WebSocket(url);
      ws.binaryType = 'arraybuffer';
      render = ws;
      seq = 0;
      ws.onopen = function () {
        streamingSince = Date.now();
        ws.send(P.encode({ type: 'ping', t: Date.now() }));
      };
      ws.onmessage = function (message) {
        if (typeof message.data !== 'string') return on.frame(message.data, P.readFrameMeta(new Uint8Array(message.data)));
        var parsed = P.parseRenderToBrowser(message.data);
        if (!parsed.ok) return;
        var msg = parsed.value;
        if (msg.type === 'hello') on.hello(msg);
        else if (msg.type === 'pong') on.pong(msg.serverTime - (msg.t + (Date.now() - msg.t) / 2));
        else on.state('notice', 'The render server said: ' + msg.error);
      };
      ws.onclose = function (event) {
        if (render === ws) render = null;
        if (leaving) return;
        if (event.code === 1006 && !streamingSince) {
          // Refused at the door (an expired ticket, say): ask again.
          return retry('The render server would not take us; asking for another…');
        }
        retry('The render server went away: ' + describeClose(event) + '. Finding you another…');
      };
    }

    /** @param {string} message */
    function retry(message) {
      // A stream that lasted forgives the failures before it; one refused at the door
      // (streamingSince 0) does not, or a server that keeps refusing would be asked without pause.
      if (streamingSince && Date.now() - streamingSince > STABLE_MS) failures = 0;
      streamingSince = 0;
      on.state('reconnecting', message);
      var delay = RETRY_MS[Math.min(failures, RETRY_MS.length - 1)];
      failures += 1;
      setTimeout(function () { ask(true); }, delay);
    }

    window.addEventListener('pagehide', function () {
      leaving = true;
      // A clean close lets the server report its client gone at once, so a reload gets it back.
      if (render) render.close(1000, 'page closed');
    });

    return {
      session: session,
      /** Asks for a server; with wait, joins the waiting room when none is free. */
      start: function (wait) { ask(!!wait); },
      /** Sends the camera; returns the message's seq, or -1 when not streaming. */
      sendCamera: function (camera) {
        if (!render || render.readyState !== WebSocket.OPEN) return -1;
        seq += 1;
        render.send(P.encode({ type: 'camera', seq: seq, yaw: camera.yaw, pitch: camera.pitch, distance: camera.distance }));
        return seq;
      },
      /** Tells the render server the frame with this seq is on screen (it sends the next ones as the page keeps up). */
      frameShown: function (frameSeq) {
        if (render && render.readyState === WebSocket.OPEN) render.send(P.encode({ type: 'shown', seq: frameSeq }));
      },
    };
  }

  window.RenderDispatchSession = createSession;
})();
