// The dispatcher as a program embeds it, in the shape of the scalable-server daemon: a config with
// a `daemon` section (port, clients, servers, noEvents), `on(event, handler)`, `init()`, and
// `getDaemon()` to add links and send messages to the flock. It is the same dispatcher that
// `bun run dispatcher --link …` starts: render servers register with it, pages ask it for servers.
//
//   const server = new Server({ daemon: { port: 8800, clients: [8801], servers: ['ws://10.0.0.2:18000/'] } });
//   server.on('evt.request', (event) => { event.connection?.send({ event: 'reply' }); event.returnValue = false; });
//   await server.init();
//   server.getDaemon().send({ event: 'hello', data: {} });

import { loadOrCreateSecret, defaultSecretFile } from '../common/node/secret-file.ts';
import { DEFAULT_POLICY, DEFAULT_TIMINGS, type LeaseTimings, type Policy } from './dispatcher.ts';
import type { DispatcherEvents } from './events.ts';
import { DEFAULT_MAX_HOPS, linkUrl, type FlockView } from './flock/flock.ts';
import { startDispatcher, type RunningDispatcher } from './server.ts';

/** A linked dispatcher elsewhere: a host and port, or its ws:// URL. */
export type ServerAddress = { hostname: string; port: number } | string;

export interface DaemonConfig {
  /** The port to listen on (8800 as in scalable-server; 0 picks a free one). */
  port?: number;
  /** Linked dispatchers on this machine, by port. */
  clients?: number[];
  /** Linked dispatchers anywhere. */
  servers?: ServerAddress[];
  /** Raise `message` for every message, never `evt.<code>`. */
  noEvents?: boolean;
  /** How many links a message may travel. */
  maxHops?: number;
  /** The address to listen on (loopback unless told otherwise). */
  host?: string;
}

export interface ServerConfig {
  daemon?: DaemonConfig;
  /** Where the leases are: a SQLite file, ':memory:' (the default) or a postgres:// URL. */
  db?: string;
  /** The flock's secret; by default the per-user secret file's, as for `bun run dispatcher`. */
  secret?: string;
  timings?: LeaseTimings;
  policy?: Partial<Policy>;
}

export const DEFAULT_DAEMON_PORT = 8800;

export interface Daemon {
  /** The port bound. */
  readonly port: number;
  /** This dispatcher's member id in the flock. */
  readonly member: string;
  /** Keeps a link to the dispatcher on this machine's `port`. */
  addClient(port: number): void;
  /** Keeps a link to the dispatcher at `address` (ws://host:port/ or { hostname, port }). */
  addServer(address: ServerAddress): void;
  /** Sends a message to this dispatcher's subscribed pages and the whole flock. */
  send(message: { event?: string; user?: string; data?: unknown }): void;
  /** Its links and what it heard from the flock. */
  flock(): FlockView;
}

type Handler<K extends keyof DispatcherEvents> = (event: DispatcherEvents[K]) => void;

/** The URL dialled for an address, or a clear error. */
function addressUrl(address: ServerAddress): string {
  const text = typeof address === 'string' ? address : `ws://${address.hostname.includes(':') ? `[${address.hostname}]` : address.hostname}:${address.port}/`;
  const url = linkUrl(text);
  if (!url) throw new TypeError(`a server must be { hostname, port } or a ws:// URL of a dispatcher, got ${JSON.stringify(address)}`);
  return url;
}

function clientUrl(port: number): string {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new TypeError(`a client must be a port number 1-65535, got ${JSON.stringify(port)}`);
  // "localhost", as the seed says, but by address: a dispatcher listens on 127.0.0.1 by default.
  return `ws://127.0.0.1:${port}/v1/link`;
}

export class Server {
  private readonly config: ServerConfig;
  /** Handlers added before init(), attached when it starts. */
  private readonly pending: ((events: RunningDispatcher['dispatcher']['events']) => void)[] = [];
  private running: RunningDispatcher | null = null;
  private readonly links: string[];

  constructor(config: ServerConfig = {}) {
    this.config = config;
    const daemon = config.daemon ?? {};
    // Checked now, so that a mistake is reported where it was made.
    this.links = [...(daemon.clients ?? []).map(clientUrl), ...(daemon.servers ?? []).map(addressUrl)];
  }

  /** Listens for an event; handlers added before init() are attached when it starts. */
  on<K extends keyof DispatcherEvents>(event: K, handler: Handler<K>): this {
    if (this.running) this.running.dispatcher.events.on(event, handler);
    else this.pending.push((events) => events.on(event, handler));
    return this;
  }

  /** Starts listening and dialling the links; resolves once the port is bound. */
  async init(): Promise<this> {
    if (this.running) return this;
    const { daemon = {}, db = ':memory:', timings = DEFAULT_TIMINGS, policy } = this.config;
    this.running = await startDispatcher({
      host: daemon.host ?? '127.0.0.1',
      port: daemon.port ?? DEFAULT_DAEMON_PORT,
      db,
      timings,
      policy: { ...DEFAULT_POLICY, ...policy },
      secret: this.config.secret ?? loadOrCreateSecret(defaultSecretFile()),
      maxHops: daemon.maxHops ?? DEFAULT_MAX_HOPS,
      noEvents: daemon.noEvents ?? false,
    });
    for (const attach of this.pending) attach(this.running.dispatcher.events);
    for (const url of this.links) this.running.dispatcher.flock.link(url);
    return this;
  }

  getDaemon(): Daemon {
    const running = this.running;
    if (!running) throw new Error('call init() first');
    const { flock } = running.dispatcher;
    return {
      port: running.port,
      member: flock.member,
      addClient: (port) => flock.link(clientUrl(port)),
      addServer: (address) => flock.link(addressUrl(address)),
      send: (message) => flock.send(message),
      flock: () => flock.view(),
    };
  }

  /** Closes every link and socket and the lease store. */
  async close(): Promise<void> {
    const running = this.running;
    this.running = null;
    await running?.close();
  }
}
