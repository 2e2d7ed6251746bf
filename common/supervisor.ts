// Keeps N child processes alive: the dispatcher's workers (`--workers N`) and the render host's
// servers (`--count N`). A child that dies is started again after a backoff that doubles while it
// keeps dying young; one that dies too often in a short window is crash-looping, which is reported
// and left stopped instead of spun. Stopping sends every child SIGTERM (each drains and exits) and
// SIGKILL to any still there after a grace period. Spawning is the runtime's (Bun.spawn for the
// dispatcher, node:child_process for the render host), so this file only decides.

export interface Child {
  readonly pid: number;
  /** Resolves with the exit code, or the signal's name. */
  readonly exited: Promise<number | string>;
  kill(signal: 'SIGTERM' | 'SIGKILL'): void;
}

export interface SupervisorOptions {
  /** How many children, numbered 0 … count-1. */
  count: number;
  /** Starts child `index`; called again for each restart. */
  start(index: number): Child;
  /** What each child is called in the log lines, e.g. `worker 2` or `render server :16001`. */
  name(index: number): string;
  log(line: string): void;
  /** First restart delay, doubled per young death up to maxDelayMs (default 100 ms, 5 s). */
  firstDelayMs?: number;
  maxDelayMs?: number;
  /** A child that lived this long was healthy: its next restart is immediate-ish again (default 10 s). */
  healthyAfterMs?: number;
  /** This many exits within windowMs is a crash loop (default 5 in 30 s). */
  crashLoopExits?: number;
  crashLoopWindowMs?: number;
  /** How long children have to drain after SIGTERM before SIGKILL (default 10 s). */
  stopGraceMs?: number;
  /** For tests that move time. */
  now?: () => number;
}

export type SlotState = 'running' | 'restarting' | 'crash-loop' | 'stopped';

export interface SlotView {
  index: number;
  name: string;
  state: SlotState;
  pid: number | null;
  /** Times started again after an exit. */
  restarts: number;
}

export interface Supervisor {
  slots(): SlotView[];
  /** SIGTERM to every child, SIGKILL after the grace period; resolves when all have exited. */
  stop(): Promise<void>;
  /** Resolves when no child is running or due to restart: `crashLoop` if that is why. */
  readonly done: Promise<{ crashLoop: boolean }>;
}

interface Slot {
  index: number;
  child: Child | null;
  state: SlotState;
  restarts: number;
  /** Exit times within the crash-loop window. */
  exits: number[];
  delayMs: number;
  timer: ReturnType<typeof setTimeout> | null;
}

export function superviseChildren(options: SupervisorOptions): Supervisor {
  const {
    count, start, name, log, firstDelayMs = 100, maxDelayMs = 5000, healthyAfterMs = 10_000, crashLoopExits = 5,
    crashLoopWindowMs = 30_000, stopGraceMs = 10_000, now = Date.now,
  } = options;
  let stopping = false;
  let finish!: (result: { crashLoop: boolean }) => void;
  const done = new Promise<{ crashLoop: boolean }>((resolve) => (finish = resolve));
  const slots: Slot[] = Array.from({ length: count }, (_, index) => ({
    index, child: null, state: 'restarting', restarts: 0, exits: [], delayMs: firstDelayMs, timer: null,
  }));

  function settleIfDone(): void {
    if (slots.some((slot) => slot.state === 'running' || slot.state === 'restarting')) return;
    finish({ crashLoop: !stopping && slots.some((slot) => slot.state === 'crash-loop') });
  }

  function launch(slot: Slot): void {
    slot.timer = null;
    if (stopping) return;
    let child: Child;
    try {
      child = start(slot.index);
    } catch (error) {
      log(`${name(slot.index)} could not start: ${error instanceof Error ? error.message : error}`);
      return exited(slot, null, 'start failed', now());
    }
    const startedAt = now();
    slot.child = child;
    slot.state = 'running';
    void child.exited.then((code) => exited(slot, child, code, startedAt));
  }

  function exited(slot: Slot, child: Child | null, code: number | string, startedAt: number): void {
    if (child && slot.child !== child) return;
    slot.child = null;
    const at = now();
    if (stopping) {
      slot.state = 'stopped';
      return settleIfDone();
    }
    slot.exits = [...slot.exits.filter((t) => at - t < crashLoopWindowMs), at];
    if (slot.exits.length >= crashLoopExits) {
      slot.state = 'crash-loop';
      log(`${name(slot.index)} exited (${code}) ${slot.exits.length} times within ${crashLoopWindowMs / 1000} s: crash loop, not restarting it`);
      return settleIfDone();
    }
    // A child that ran a good while died of something new: start it again at once-ish.
    if (at - startedAt >= healthyAfterMs) slot.delayMs = firstDelayMs;
    const delay = slot.delayMs;
    slot.delayMs = Math.min(slot.delayMs * 2, maxDelayMs);
    slot.state = 'restarting';
    slot.restarts++;
    log(`${name(slot.index)} exited (${code}); starting it again in ${delay} ms`);
    slot.timer = setTimeout(() => launch(slot), delay);
  }

  for (const slot of slots) launch(slot);

  return {
    slots: () =>
      slots.map((slot) => ({ index: slot.index, name: name(slot.index), state: slot.state, pid: slot.child?.pid ?? null, restarts: slot.restarts })),
    async stop() {
      if (!stopping) {
        stopping = true;
        const running: Child[] = [];
        for (const slot of slots) {
          if (slot.timer) clearTimeout(slot.timer);
          slot.timer = null;
          if (slot.child) running.push(slot.child);
          else slot.state = slot.state === 'crash-loop' ? 'crash-loop' : 'stopped';
        }
        const alive = new Set(running);
        for (const child of running) void child.exited.then(() => alive.delete(child));
        for (const child of running) child.kill('SIGTERM');
        const killer = setTimeout(() => {
          for (const child of alive) {
            log(`pid ${child.pid} still running ${stopGraceMs / 1000} s after SIGTERM: SIGKILL`);
            child.kill('SIGKILL');
          }
        }, stopGraceMs);
        await Promise.all(running.map((child) => child.exited));
        clearTimeout(killer);
        settleIfDone();
      }
      await done;
    },
    done,
  };
}
