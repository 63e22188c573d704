/** Structured JSON logging for handlers; never logs the pre-signed ResponseURL. */
export function log(level: 'info' | 'warn' | 'error', message: string, fields: Record<string, unknown> = {}): void {
  const line = JSON.stringify({ level, message, ...fields }, (k, v) => (k === 'ResponseURL' ? '[redacted]' : v));
  (level === 'error' ? console.error : console.log)(line);
}
