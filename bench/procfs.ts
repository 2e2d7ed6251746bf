// A process's CPU time and resident memory, read from /proc (Linux).

import { readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

/** User plus system CPU time the process has used, in milliseconds. */
export function cpuMs(pid: number): number {
  // Fields after the command name, which is in parentheses and may hold spaces.
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  const [utime, stime] = [Number(fields[11]), Number(fields[12])];
  return ((utime + stime) * 1000) / TICKS_PER_SECOND;
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
