// One logger for both programs (`--log-format text|json`). Text is the lines operators read today,
// `tag: message`, warnings and errors on stderr. JSON is one object per line on stdout (pino), with
// the level, an ISO time, the program and process, the message, and whatever ids the line is about
// (requestId, session, conn, serverId, member…), so that a page can be followed from its request
// to its stream with a filter instead of a regular expression.

import pino from 'pino';
import { choice } from '../flags.ts';

export type LogFormat = 'text' | 'json';
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, string | number | boolean | null | undefined>;

export interface Logger {
  log(level: LogLevel, message: string, fields?: LogFields): void;
}

export interface LoggerOptions {
  format: LogFormat;
  /** The program: "dispatcher" or "render". */
  program: string;
  /** Who in it writes: "dispatcher 2", "render :16001"; the text lines' prefix. */
  tag: string;
  /** Debug lines too. */
  verbose: boolean;
}

/** The --log-format flag, the same in both programs' tables. */
export const LOG_FORMAT_FLAG = {
  value: 'text|json',
  help: 'text: a line per event as today; json: one JSON object per line (pino) with the ids of what it is about',
  parse: choice<LogFormat>('text', 'json'),
  default: 'text' as LogFormat,
};

export function createLogger({ format, program, tag, verbose }: LoggerOptions): Logger {
  if (format === 'text') {
    return {
      log(level, message) {
        if (level === 'debug' && !verbose) return;
        (level === 'warn' || level === 'error' ? console.error : console.log)(`${tag}: ${message}`);
      },
    };
  }
  const logger = pino(
    {
      level: verbose ? 'debug' : 'info',
      base: { program, process: tag, pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    // Written as it happens: a process that exits right after a line still leaves it.
    pino.destination({ dest: 1, sync: true }),
  );
  return {
    log(level, message, fields) {
      logger[level](fields ?? {}, message);
    },
  };
}
