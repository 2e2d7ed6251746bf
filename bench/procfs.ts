// A process's CPU time and resident memory, read from /proc (Linux).
//
// CPU time comes from each thread's scheduler counter (nanoseconds) where the kernel keeps one:
// `utime` and `stime` in /proc/PID/stat count 10 ms clock ticks, and a benchmark's short window
// (a few hundred milliseconds of a smoke run, a database answering 100 heartbeats) can round to
// nothing. A thread that has ended keeps the last time it was read at, so that a process's total
// never goes backwards (Bun's helper threads come and go); what it ran between that reading and
// its end is lost, at most a few milliseconds.

import { readFileSync, readdirSync } from 'node:fs';

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

const statFields = (pid: number) => readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' '); // the name, in parentheses, may hold spaces

const ticksMs = (pid: number) => {
  const fields = statFields(pid);
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND;
};

/** The last nanoseconds read of each thread, by process (its id and start time: ids are reused). */
const threads = new Map<string, Map<string, number>>();

/**
 * Nanoseconds on a CPU of every thread of a process seen so far, or null where the kernel keeps no
 * schedstat.
 */
function schedNs(pid: number): number | null {
  const key = `${pid}@${statFields(pid)[19]}`;
  let seen = threads.get(key);
  if (!seen) threads.set(key, (seen = new Map()));
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let line: string;
    try {
      line = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ESRCH' || !existsTask(pid, tid)) continue; // the thread ended
      return null;
    }
    seen.set(tid, Number(line.split(' ')[0]));
  }
  let ns = 0;
  for (const value of seen.values()) ns += value;
  return ns;
}

const existsTask = (pid: number, tid: string) => {
  try {
    readFileSync(`/proc/${pid}/task/${tid}/stat`);
    return true;
  } catch {
    return false;
  }
};

/** User plus system CPU time the process has used, in milliseconds. */
export function cpuMs(pid: number): number {
  const ns = schedNs(pid);
  // None at all may also be a kernel that keeps the file but counts nothing in it.
  return ns ? ns / 1e6 : ticksMs(pid);
}

/** Resident set size in bytes. */
export function rssBytes(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error(`no VmRSS for process ${pid}`);
  return Number(match[1]) * 1024;
}

/** Measures the share of one core a process uses while `work` runs. */
export async function cpuShareDuring<T>(pid: number, work: () => Promise<T>): Promise<{ result: T; cpuShare: number }> {
  const [cpu0, t0] = [cpuMs(pid), performance.now()];
  const result = await work();
  return { result, cpuShare: (cpuMs(pid) - cpu0) / (performance.now() - t0) };
}

/**
 * CPU time of a process and its children, in milliseconds: children still running, and those
 * already gone that it waited for (a database server and its backends).
 */
export function treeCpuMs(pid: number): number {
  const fields = statFields(pid);
  const reaped = ((Number(fields[13]) + Number(fields[14])) * 1000) / TICKS_PER_SECOND;
  const children = readdirSync('/proc').filter((name) => /^\d+$/.test(name)).flatMap((name) => {
    try {
      return Number(statFields(Number(name))[1]) === pid ? [cpuMs(Number(name))] : [];
    } catch {
      return []; // gone since the listing
    }
  });
  return cpuMs(pid) + reaped + children.reduce((a, b) => a + b, 0);
}
