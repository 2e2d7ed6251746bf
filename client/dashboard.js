// The dashboard's script (client/dashboard.html): the feed in, tiles, charts, the server list a
// page at a time, drain buttons and the event log out. Everything shown is written as text, never
// as HTML: ids and URLs come from render servers.
'use strict';

(function () {
  var HISTORY = 300;
  var STATES = /** @type {const} */ (['ready', 'reserved', 'busy', 'draining', 'expired', 'offline']);
  var EVENTS_SHOWN = 200;

  /** @param {string} id */
  function byId(id) {
    return /** @type {HTMLElement} */ (document.getElementById(id));
  }

  /** @param {string} tag @param {Record<string, string>} [attributes] @param {string} [text] */
  function element(tag, attributes, text) {
    var node = document.createElement(tag);
    for (var name in attributes || {}) node.setAttribute(name, /** @type {Record<string, string>} */ (attributes)[name]);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  /** @param {number | null} ms */
  function duration(ms) {
    if (ms === null) return '–';
    if (Math.abs(ms) < 1000) return Math.round(ms) + ' ms';
    if (Math.abs(ms) < 120000) return (ms / 1000).toFixed(1) + ' s';
    return Math.round(ms / 60000) + ' min';
  }

  // ---- tiles ----

  var tiles = byId('tiles');
  /** @type {Record<string, HTMLElement>} */
  var tileValues = {};
  [['ready', 'ready'], ['reserved', 'reserved'], ['busy', 'busy'], ['draining', 'draining'], ['expired', 'expired'], ['offline', 'offline'],
    ['queue', 'waiting'], ['oldest', 'oldest wait'], ['estimate', 'mean session'], ['handouts', 'hand-outs/s'], ['nones', 'none/s'],
    ['p50', 'p50 dispatch'], ['p99', 'p99 dispatch']].forEach(function (pair) {
    var tile = element('div', { class: 'tile', 'data-tile': pair[0] });
    var value = element('b', {}, '–');
    tile.appendChild(value);
    tile.appendChild(element('span', {}, pair[1]));
    tiles.appendChild(tile);
    tileValues[pair[0]] = value;
  });

  /** @param {RenderDispatch.DashboardSummary} s */
  function showTiles(s) {
    STATES.forEach(function (state) { tileValues[state].textContent = String(s.servers[state]); });
    tileValues.queue.textContent = String(s.queue);
    tileValues.oldest.textContent = duration(s.oldestWaitMs);
    tileValues.estimate.textContent = duration(s.meanSessionMs);
    tileValues.handouts.textContent = String(s.handouts);
    tileValues.nones.textContent = String(s.nones);
    tileValues.p50.textContent = s.p50 === null ? '–' : s.p50.toFixed(2) + ' ms';
    tileValues.p99.textContent = s.p99 === null ? '–' : s.p99.toFixed(2) + ' ms';
  }

  // ---- charts ----

  /** @type {RenderDispatch.DashboardSummary[]} */
  var history = [];
  var axisColor = { stroke: '#8a939e', grid: { stroke: '#2a3038' }, ticks: { stroke: '#2a3038' } };

  /** @param {string} id @param {string} title @param {{ label: string, stroke: string }[]} series */
  function chart(id, title, series) {
    var target = byId(id);
    return new uPlot({
      title: title,
      width: Math.max(300, target.clientWidth - 12),
      height: 180,
      series: [{}].concat(series.map(function (s) { return { label: s.label, stroke: s.stroke, width: 1.5, spanGaps: true }; })),
      axes: [axisColor, axisColor],
      scales: { x: { time: true } },
    }, [[]].concat(series.map(function () { return []; })), target);
  }

  var charts = {
    rate: chart('chart-rate', 'hand-outs and none a second', [{ label: 'hand-outs', stroke: '#8fd18f' }, { label: 'none', stroke: '#f0b36b' }]),
    queue: chart('chart-queue', 'pages waiting', [{ label: 'waiting', stroke: '#9cc3f0' }]),
    latency: chart('chart-latency', 'dispatch latency (ms)', [{ label: 'p50', stroke: '#9cc3f0' }, { label: 'p99', stroke: '#f0876b' }]),
  };

  function drawCharts() {
    var t = history.map(function (s) { return s.t / 1000; });
    charts.rate.setData([t, history.map(function (s) { return s.handouts; }), history.map(function (s) { return s.nones; })]);
    charts.queue.setData([t, history.map(function (s) { return s.queue; })]);
    charts.latency.setData([t, history.map(function (s) { return s.p50; }), history.map(function (s) { return s.p99; })]);
  }

  // ---- the server list, a page at a time ----

  var rows = byId('servers');
  var pageInfo = byId('page-info');
  var filter = /** @type {HTMLSelectElement} */ (byId('state-filter'));
  var nextButton = /** @type {HTMLButtonElement} */ (byId('next-page'));
  /** @type {string | null} */
  var pageStart = null;
  /** @type {string | null} */
  var nextStart = null;
  /** @type {RenderDispatch.ServerView[]} */
  var shown = [];
  var pageNumber = 1;
  var fetching = false;
  var fetchAgain = false;
  var lastFetch = 0;
  /** @type {number | undefined} */
  var fetchTimer;

  function serversUrl() {
    var query = new URLSearchParams({ limit: '100' });
    if (filter.value) query.set('state', filter.value);
    if (pageStart) query.set('after', pageStart);
    return '/v1/servers?' + query.toString();
  }

  async function fetchPage() {
    if (fetching) {
      fetchAgain = true;
      return;
    }
    fetching = true;
    lastFetch = Date.now();
    try {
      var response = await fetch(serversUrl(), { credentials: 'same-origin' });
      if (!response.ok) throw new Error(response.status + ' ' + (await response.text()));
      var page = /** @type {{ servers: RenderDispatch.ServerView[], next: string | null }} */ (await response.json());
      shown = page.servers;
      nextStart = page.next;
      showRows();
      byId('error').textContent = '';
    } catch (error) {
      byId('error').textContent = 'server list: ' + String(error);
    } finally {
      fetching = false;
      if (fetchAgain) {
        fetchAgain = false;
        refreshSoon();
      }
    }
  }

  /** Fetches the page again, at most once a second however often something changes. */
  function refreshSoon() {
    if (fetchTimer !== undefined) return;
    var wait = Math.max(0, 1000 - (Date.now() - lastFetch));
    fetchTimer = window.setTimeout(function () {
      fetchTimer = undefined;
      void fetchPage();
    }, wait);
  }

  /** @param {RenderDispatch.ServerView} server @param {boolean} drain */
  async function setDrain(server, drain) {
    var response = await fetch('/v1/servers/' + encodeURIComponent(server.id) + '/drain', { method: drain ? 'POST' : 'DELETE', credentials: 'same-origin' });
    if (!response.ok) byId('error').textContent = (drain ? 'drain ' : 'undrain ') + server.id + ': ' + (await response.text());
    void fetchPage();
  }

  function showRows() {
    var now = Date.now();
    rows.textContent = '';
    shown.forEach(function (server) {
      var row = element('tr', { 'data-state': server.state, 'data-id': server.id });
      row.appendChild(element('td', { class: 'id' }, server.id));
      row.appendChild(element('td', { class: 'state' }, server.state));
      row.appendChild(element('td', { class: 'reason' }, server.reason || ''));
      row.appendChild(element('td', {}, Math.round(server.health * 100) + '%'));
      row.appendChild(element('td', {}, server.fps.toFixed(1) + ' / ' + server.targetFps));
      row.appendChild(element('td', {}, server.client));
      row.appendChild(element('td', {}, server.state === 'offline' ? '–' : duration(server.leaseExpiresAt - now)));
      row.appendChild(element('td', {}, server.claimExpiresAt === null ? '–' : duration(server.claimExpiresAt - now)));
      row.appendChild(element('td', {}, server.url));
      var actions = element('td');
      if (server.state === 'draining') {
        var undrain = element('button', { type: 'button', 'data-action': 'undrain' }, 'undrain');
        undrain.addEventListener('click', function () { void setDrain(server, false); });
        actions.appendChild(undrain);
      } else if (server.state !== 'offline') {
        var drain = element('button', { type: 'button', 'data-action': 'drain' }, 'drain');
        drain.addEventListener('click', function () { void setDrain(server, true); });
        actions.appendChild(drain);
      }
      row.appendChild(actions);
      rows.appendChild(row);
    });
    pageInfo.textContent = 'page ' + pageNumber + ' · ' + shown.length + ' shown';
    nextButton.disabled = nextStart === null;
  }

  filter.addEventListener('change', function () {
    pageStart = null;
    pageNumber = 1;
    void fetchPage();
  });
  byId('first-page').addEventListener('click', function () {
    pageStart = null;
    pageNumber = 1;
    void fetchPage();
  });
  nextButton.addEventListener('click', function () {
    if (nextStart === null) return;
    pageStart = nextStart;
    pageNumber++;
    void fetchPage();
  });
  // Deadlines count down between fetches.
  window.setInterval(showRows, 1000);

  // ---- events ----

  var eventList = byId('events');
  /** @param {RenderDispatch.DashboardEvent} event */
  function showEvent(event) {
    var words = [new Date(event.t).toLocaleTimeString(), event.name, event.kind || '', event.id, event.url || '', event.reason ? '(' + event.reason + ')' : ''];
    eventList.insertBefore(element('li', { 'data-name': event.name }, words.filter(Boolean).join(' ')), eventList.firstChild);
    while (eventList.childElementCount > EVENTS_SHOWN) eventList.lastChild && eventList.removeChild(eventList.lastChild);
  }

  // ---- the feed ----

  var feedState = byId('feed-state');
  /** @type {Record<string, number> | null} */
  var lastCounts = null;
  var feed = new EventSource('/v1/dashboard/feed');
  feed.onopen = function () {
    feedState.textContent = 'live';
    feedState.setAttribute('data-live', 'true');
  };
  feed.onerror = function () {
    feedState.textContent = 'feed lost; reconnecting…';
    feedState.setAttribute('data-live', 'false');
  };
  feed.addEventListener('history', function (message) {
    var data = /** @type {Extract<RenderDispatch.DashboardMessage, { type: 'history' }>} */ (JSON.parse(/** @type {MessageEvent} */ (message).data));
    history = data.summaries.slice(-HISTORY);
    if (history.length) showTiles(history[history.length - 1]);
    drawCharts();
  });
  feed.addEventListener('summary', function (message) {
    var data = /** @type {Extract<RenderDispatch.DashboardMessage, { type: 'summary' }>} */ (JSON.parse(/** @type {MessageEvent} */ (message).data));
    history.push(data.summary);
    if (history.length > HISTORY) history.shift();
    showTiles(data.summary);
    drawCharts();
    // Servers changed state without an event (a claim lapsing, a lease running out): the page again.
    var counts = JSON.stringify(data.summary.servers);
    if (lastCounts !== null && JSON.stringify(lastCounts) !== counts) refreshSoon();
    lastCounts = data.summary.servers;
  });
  feed.addEventListener('events', function (message) {
    var data = /** @type {Extract<RenderDispatch.DashboardMessage, { type: 'events' }>} */ (JSON.parse(/** @type {MessageEvent} */ (message).data));
    data.events.forEach(showEvent);
    if (data.dropped) showEvent({ t: Date.now(), name: 'connection.new', id: '… and ' + data.dropped + ' more events' });
    if (data.events.some(function (event) { return event.name.indexOf('server.') === 0 && event.kind === 'render'; })) refreshSoon();
  });

  window.addEventListener('resize', function () {
    ['rate', 'queue', 'latency'].forEach(function (name) {
      var target = byId('chart-' + name);
      /** @type {Record<string, uPlot>} */ (charts)[name].setSize({ width: Math.max(300, target.clientWidth - 12), height: 180 });
    });
  });

  void fetchPage();
})();
