// Wires the page: the session's states to the status line, buttons and the "About this server"
// link, frames to the canvas, the camera control to the session, the stats to the overlay. What the page shows is also kept
// in window.renderDispatch, for tests and for curious users in the console.
// A classic script (pages opened from disk cannot load modules).
'use strict';
(function () {
  var P = window.RenderDispatchProtocol;

  /** @param {string} problem @returns {never} */
  function fail(problem) {
    throw new Error(problem);
  }

  /**
   * index.html's element with this id, which must be of this kind.
   * @template {HTMLElement} T
   * @param {string} id
   * @param {{ new (): T, prototype: T }} kind
   * @returns {T}
   */
  function element(id, kind) {
    var found = document.getElementById(id);
    return found instanceof kind ? found : fail('index.html has no ' + kind.name + ' #' + id);
  }

  var canvas = element('frame', HTMLCanvasElement);
  var context = canvas.getContext('2d') || fail('the canvas has no 2d context');
  var statusEl = element('status', HTMLElement);
  var serverEl = element('server', HTMLElement);
  var aboutLink = element('about', HTMLAnchorElement);
  var waitButton = element('wait', HTMLButtonElement);
  var retryButton = element('retry', HTMLButtonElement);
  var statsButton = element('stats-toggle', HTMLButtonElement);
  var overlay = element('stats', HTMLPreElement);

  function dispatcherUrl() {
    var given = new URLSearchParams(location.search).get('dispatcher');
    if (given) return given;
    if (location.protocol === 'http:' || location.protocol === 'https:') {
      return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + P.PATHS.stream;
    }
    return P.DEFAULT_DISPATCHER_URL;
  }

  /**
   * The render server's /about over HTTP, from the WebSocket URL it streams on (its ticket already
   * removed). Resolved beside the stream's path, so that a server behind a proxy at
   * wss://host/render/3/stream is asked at https://host/render/3/about.
   * @param {string} server
   */
  function aboutUrl(server) {
    var url = new URL('.' + P.PATHS.about, server);
    url.protocol = url.protocol === 'wss:' ? 'https:' : 'http:';
    return url.toString();
  }

  /** @type {RenderDispatch.PageView} */
  var view = window.renderDispatch = {
    state: 'idle', message: '', framesShown: 0, fps: 0, server: null,
    position: null, queueSize: null, estimateMs: null, camera: null, session: null,
    // The seq of the last camera input sent, and the one the frame on screen shows.
    inputSent: -1, inputShown: -1,
    // The last states the page went through, oldest first: what happened, after the fact.
    history: [],
  };
  var HISTORY = 20;

  /**
   * @param {RenderDispatch.State} state
   * @param {string} message
   * @param {RenderDispatch.StateDetails} [details]
   */
  function setState(state, message, details) {
    details = details || {};
    if (state === 'notice') {
      serverEl.textContent = message;
      return;
    }
    if (state !== view.state || message !== view.message) {
      if (state !== 'streaming' || view.state !== 'streaming') view.history.push({ state: state, message: message, at: Date.now() });
      if (view.history.length > HISTORY) view.history.shift();
    }
    if (state !== 'streaming') {
      stream += 1;
      waiting = null;
    }
    view.state = state;
    view.message = message;
    if (details.server) {
      view.server = details.server;
      serverEl.textContent = 'Render server: ' + details.server;
      aboutLink.href = aboutUrl(details.server);
    }
    // Only while streaming: before, the server may not take us; after, it may be gone.
    aboutLink.hidden = state !== 'streaming';
    view.position = state === 'waiting' && details.position !== undefined ? details.position : null;
    view.queueSize = state === 'waiting' && details.size !== undefined ? details.size : null;
    view.estimateMs = state === 'waiting' && details.estimateMs !== undefined ? details.estimateMs : null;
    statusEl.dataset.state = state;
    statusEl.textContent = message + (state === 'none' && details.reason && details.reason !== 'no render server is free' ? ' (' + details.reason + ')' : '');
    waitButton.hidden = !(state === 'none' && details.canWait);
    retryButton.hidden = !(state === 'none' || state === 'disconnected' || state === 'error');
  }

  var stats = window.RenderDispatchStats();
  /** @type {RenderDispatch.Session} */
  var session;
  var camera = window.RenderDispatchCamera(canvas, function (next) {
    view.camera = next;
    var seq = session.sendCamera(next);
    if (seq >= 0) view.inputSent = seq;
    stats.inputSent(seq);
  });

  // Decode at most one frame at a time and keep only the newest waiting: a page that falls
  // behind skips frames instead of queueing them. A frame belongs to the stream it came on: once
  // the page has left that stream (any state but streaming), a frame still decoding or waiting is
  // dropped, neither drawn nor acknowledged on the next stream, nor taken as streaming again.
  var decoding = false;
  var stream = 0;
  /** @type {{ buffer: ArrayBuffer, meta: RenderDispatch.Frame | null } | null} */
  var waiting = null;
  var lastStatusAt = 0;

  /** @param {ArrayBuffer} buffer @param {RenderDispatch.Frame | null} meta */
  function show(buffer, meta) {
    if (decoding) {
      waiting = { buffer: buffer, meta: meta };
      return;
    }
    decoding = true;
    var from = stream;
    createImageBitmap(new Blob([buffer], { type: 'image/jpeg' })).then(function (bitmap) {
      if (from !== stream) return bitmap.close();
      if (canvas.width !== bitmap.width || canvas.height !== bitmap.height) {
        canvas.width = bitmap.width;
        canvas.height = bitmap.height;
      }
      context.drawImage(bitmap, 0, 0);
      bitmap.close();
      stats.frameShown(buffer.byteLength, meta);
      if (meta) session.frameShown(meta.seq);
      view.framesShown += 1;
      if (meta) view.inputShown = meta.inputSeq;
      view.stats = stats.snapshot();
      view.fps = view.stats.fps;
      var now = performance.now();
      if (view.state !== 'streaming' || now - lastStatusAt > 500) {
        lastStatusAt = now;
        setState('streaming', 'Streaming, ' + view.fps + ' fps');
      }
    }, function (error) {
      if (from === stream) setState('error', 'Could not decode a frame: ' + error.message);
    }).then(function () {
      decoding = false;
      if (waiting) {
        var next = waiting;
        waiting = null;
        show(next.buffer, next.meta);
      }
    });
  }

  /** @param {number} bytes */
  function kib(bytes) {
    return (bytes / 1024).toFixed(1) + ' KiB';
  }

  function renderOverlay() {
    var s = view.stats = stats.snapshot();
    overlay.textContent = [
      'server      ' + (view.server || '-'),
      'received    ' + s.fps + ' fps',
      'server fps  ' + s.serverFps,
      'frame       ' + kib(s.frameBytes),
      'throughput  ' + kib(s.bytesPerSecond) + '/s',
      'latency     ' + (s.latencyMs === null ? '-' : s.latencyMs + ' ms') + ' capture to display',
      'input       ' + (s.inputLatencyMs === null ? '-' : s.inputLatencyMs + ' ms') + ' to the first frame showing it',
    ].join('\n');
  }

  function toggleStats() {
    overlay.hidden = !overlay.hidden;
    statsButton.setAttribute('aria-pressed', String(!overlay.hidden));
    if (!overlay.hidden) renderOverlay();
  }
  setInterval(function () {
    if (!overlay.hidden) renderOverlay();
  }, 250);

  session = window.RenderDispatchSession(dispatcherUrl(), {
    state: setState,
    hello: function (hello) {
      camera.set(hello.camera);
      view.camera = hello.camera;
      view.inputSent = -1;
      view.inputShown = -1;
    },
    frame: show,
    pong: stats.clockOffset,
  });
  view.session = session.session;

  waitButton.addEventListener('click', function () { session.start(true); });
  retryButton.addEventListener('click', function () { session.start(false); });
  statsButton.addEventListener('click', toggleStats);
  document.addEventListener('keydown', function (event) {
    if (event.key === 's' && !event.ctrlKey && !event.metaKey && !event.altKey) toggleStats();
  });

  session.start(new URLSearchParams(location.search).get('wait') === '1');
})();
