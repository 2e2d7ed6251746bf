// The numbers behind the stats overlay: frames and bytes received over the last second, the
// render server's own fps, the latency from capture to display, and from an input to the first
// frame that shows it.
// A classic script (pages opened from disk cannot load modules): defines RenderDispatchStats.
'use strict';
(function () {
  var WINDOW_MS = 1000;
  var LATENCY_WEIGHT = 0.2;

  /** @returns {RenderDispatch.Stats} */
  function createStats() {
    /** @type {{ at: number, bytes: number }[]} */
    var recent = []; // the frames shown in the last second
    var clockOffsetMs = 0; // the server's clock minus ours
    /** @type {number | null} */
    var latencyMs = null;
    var serverFps = 0;
    var lastBytes = 0;
    /** @type {Record<number, number>} */
    var inputsSent = {}; // seq -> when it was sent
    var awaitedSeq = -1;
    /** @type {number | null} */
    var inputLatencyMs = null;

    return {
      clockOffset: function (offsetMs) { clockOffsetMs = offsetMs; },
      inputSent: function (seq) {
        if (seq < 0) return;
        inputsSent[seq] = performance.now();
        awaitedSeq = seq;
      },
      /** A frame is on screen: `meta` is its metadata, or null for a frame without any. */
      frameShown: function (bytes, meta) {
        var now = performance.now();
        recent.push({ at: now, bytes: bytes });
        while (recent.length && now - recent[0].at > WINDOW_MS) recent.shift();
        lastBytes = bytes;
        if (!meta) return;
        serverFps = meta.fps;
        var sample = Date.now() + clockOffsetMs - meta.capturedAt;
        latencyMs = latencyMs === null ? sample : latencyMs * (1 - LATENCY_WEIGHT) + sample * LATENCY_WEIGHT;
        if (awaitedSeq >= 0 && meta.inputSeq >= awaitedSeq) {
          inputLatencyMs = now - inputsSent[awaitedSeq];
          inputsSent = {};
          awaitedSeq = -1;
        }
      },
      snapshot: function () {
        var now = performance.now();
        var live = recent.filter(function (f) { return now - f.at <= WINDOW_MS; });
        return {
          fps: live.length,
          bytesPerSecond: live.reduce(function (sum, f) { return sum + f.bytes; }, 0),
          frameBytes: lastBytes,
          serverFps: serverFps,
          latencyMs: latencyMs === null ? null : Math.round(latencyMs),
          inputLatencyMs: inputLatencyMs === null ? null : Math.round(inputLatencyMs),
        };
      },
    };
  }

  window.RenderDispatchStats = createStats;
})();
