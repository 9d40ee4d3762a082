// The agent's logging seam: a pino-compatible subset (`logger.info({ fields }, 'message')`), so
// tenetd passes its pino instance and tests pass a recorder, without this module depending on
// pino. Fields are structured (interface names, counts, ids), messages are fixed strings.

export type LogFn = (fields: Record<string, unknown>, message: string) => void;

export interface Logger {
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
}

const noop: LogFn = () => undefined;

/** Discards everything (the default). */
export const silentLogger: Logger = { debug: noop, info: noop, warn: noop, error: noop };

export interface LogRecord {
  level: keyof Logger;
  fields: Record<string, unknown>;
  message: string;
}

/** Keeps every record in memory (tests). */
export function recordingLogger(): Logger & { records: LogRecord[] } {
  const records: LogRecord[] = [];
  const at =
    (level: keyof Logger): LogFn =>
    (fields, message) => {
      records.push({ level, fields, message });
    };
  return { records, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** An error as log fields (pino's `err` convention). */
export function errFields(e: unknown): { err: { name: string; message: string; code?: unknown } } {
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    return {
      err: { name: e.name, message: e.message, ...(code === undefined ? {} : { code }) },
    };
  }
  return { err: { name: 'Error', message: String(e) } };
}
