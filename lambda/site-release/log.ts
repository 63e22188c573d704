/** Structured JSON log line; the pre-signed ResponseURL is always redacted. */
export function logJson(level: 'info' | 'warn' | 'error', message: string, fields: Record<string, unknown> = {}): string {
  return JSON.stringify({ level, message, ...fields }, (k, v) => (k === 'ResponseURL' ? '[redacted]' : v));
}

export function log(level: 'info' | 'warn' | 'error', message: string, fields: Record<string, unknown> = {}): void {
  const line = logJson(level, message, fields);
  if (level === 'error') console.error(line);
  else console.log(line);
}
