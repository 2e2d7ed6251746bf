import { describe, expect, test } from 'bun:test';
import { superviseChildren, type Child } from './supervisor.ts';

/** A child the test ends: `exit(code)`; records the signals it was sent. */
function fakeChild(pid: number, { diesOnTerm = true } = {}) {
  let exit!: (code: number | string) => void;
  const exited = new Promise<number | string>((resolve) => (exit = resolve));
  const signals: string[] = [];
  const child: Child & { exit: typeof exit; signals: string[] } = {
    pid, exited, signals, exit,
    kill(signal) {
      signals.push(signal);
      if (signal === 'SIGKILL' || diesOnTerm) exit(signal);
    },
  };
  return child;
}

const tick = (ms = 5) => new Promise((resolve) => setTimeout(resolve, ms));
/** Waits for `condition`, at most 2 s. */
async function until(condition: () => boolean): Promise<void> {
  for (let waited = 0; !condition(); waited += 5) {
    if (waited > 2000) throw new Error('condition not met within 2 s');
    await tick();
  }
}

describe('supervisor', () => {
  test('starts every child, restarts one that exits after a doubling delay, and reports it', async () => {
    const started: ReturnType<typeof fakeChild>[] = [];
    const lines: string[] = [];
    const supervisor = superviseChildren({
      count: 2, name: (i) => `worker ${i + 1}`, log: (line) => lines.push(line), firstDelayMs: 200,
      start: () => {
        const child = fakeChild(100 + started.length);
        started.push(child);
        return child;
      },
    });
    expect(started.length).toBe(2);
    started[1].exit(1);
    await until(() => lines.length === 1);
    expect(lines).toEqual(['worker 2 exited (1); starting it again in 200 ms']);
    expect(supervisor.slots()[1]).toMatchObject({ state: 'restarting', pid: null, restarts: 1 });
    await until(() => started.length === 3);
    started[2].exit('SIGKILL');
    await until(() => lines.length === 2);
    expect(lines.at(-1)).toBe('worker 2 exited (SIGKILL); starting it again in 400 ms');
    await until(() => started.length === 4);
    expect(supervisor.slots().map((slot) => slot.state)).toEqual(['running', 'running']);
    await supervisor.stop();
    expect(started.filter((child) => child.signals.length).map((child) => child.signals)).toEqual([['SIGTERM'], ['SIGTERM']]);
  });

  test('stopping while a restart is due cancels it; a child that lived long restarts after the first delay again', async () => {
    let clock = 0;
    const started: ReturnType<typeof fakeChild>[] = [];
    const lines: string[] = [];
    const supervisor = superviseChildren({
      count: 1, name: () => 'worker 1', log: (line) => lines.push(line), firstDelayMs: 50, healthyAfterMs: 1000, now: () => clock,
      start: () => {
        const child = fakeChild(started.length);
        started.push(child);
        return child;
      },
    });
    started[0].exit(1);
    await until(() => started.length === 2);
    clock += 5000; // it has lived long: its next death is news, not a loop
    started[1].exit(1);
    await until(() => lines.length === 2);
    expect(lines).toEqual(['worker 1 exited (1); starting it again in 50 ms', 'worker 1 exited (1); starting it again in 50 ms']);
    await supervisor.stop();
    await tick(100);
    expect(started.length).toBe(2);
    expect(supervisor.slots()[0].state).toBe('stopped');
    expect(await supervisor.done).toEqual({ crashLoop: false });
  });

  test('a crash loop is stopped and reported, not spun; when every child loops, done says so', async () => {
    let starts = 0;
    const lines: string[] = [];
    const supervisor = superviseChildren({
      count: 1, name: () => 'worker 1', log: (line) => lines.push(line), firstDelayMs: 1, maxDelayMs: 2, crashLoopExits: 4,
      start: () => {
        starts++;
        const child = fakeChild(starts);
        queueMicrotask(() => child.exit(1));
        return child;
      },
    });
    expect(await supervisor.done).toEqual({ crashLoop: true });
    expect(starts).toBe(4);
    expect(lines.at(-1)).toBe('worker 1 exited (1) 4 times within 30 s: crash loop, not restarting it');
    expect(supervisor.slots()[0].state).toBe('crash-loop');
  });

  test('a child that does not drain after SIGTERM gets SIGKILL after the grace period', async () => {
    const stubborn = fakeChild(7, { diesOnTerm: false });
    const lines: string[] = [];
    const supervisor = superviseChildren({ count: 1, name: () => 'worker 1', log: (line) => lines.push(line), stopGraceMs: 20, start: () => stubborn });
    await supervisor.stop();
    expect(stubborn.signals).toEqual(['SIGTERM', 'SIGKILL']);
    expect(lines).toEqual(['pid 7 still running 0.02 s after SIGTERM: SIGKILL']);
    expect(await supervisor.done).toEqual({ crashLoop: false });
  });

  test('a child that cannot even start counts as an exit', async () => {
    const lines: string[] = [];
    const supervisor = superviseChildren({
      count: 1, name: () => 'worker 1', log: (line) => lines.push(line), firstDelayMs: 1, crashLoopExits: 2,
      start: () => {
        throw new Error('no such file');
      },
    });
    expect(await supervisor.done).toEqual({ crashLoop: true });
    expect(lines[0]).toBe('worker 1 could not start: no such file');
  });
});
