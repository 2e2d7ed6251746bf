// The dispatch benchmark's floor: a bare Bun.serve WebSocket server that answers every message
// with a constant render-server URL. `bun bench/baseline-server.ts PORT [--silent]`: with
// --silent it reads every message and answers none (the heartbeat benchmark's floor, as heartbeats
// go unanswered).

const ANSWER = 'ws://127.0.0.1:1/stream?ticket=baseline';
const silent = process.argv.includes('--silent');
const server = Bun.serve({
  hostname: '127.0.0.1',
  port: Number(process.argv[2] ?? 0),
  fetch(request, srv) {
    return srv.upgrade(request) ? undefined : new Response('WebSocket only', { status: 426 });
  },
  websocket: {
    message(ws) {
      if (!silent) ws.send(ANSWER);
    },
  },
});
console.log(`listening on ${server.port}`);
