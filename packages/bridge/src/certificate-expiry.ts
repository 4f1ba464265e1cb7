// How a certificate's end is judged and said, by the running bridge (log, webhook), `bridge status` and
// `bridge doctor`. No imports: the light `@m365-mail/bridge/command` entry uses it.

/** A configured certificate this close to its end is a warning (log, webhook, status, doctor). */
export const CERTIFICATE_WARNING_MS = 14 * 86_400_000;

/** `valid until 2027-03-01 (85 days)`, with a mark when it ends within 14 days or has ended. */
export function describeExpiry(expiresAt: string, now = Date.now()): string {
  const left = Date.parse(expiresAt) - now;
  const days = Math.floor(left / 86_400_000);
  const date = expiresAt.slice(0, 10);
  if (left < 0) return `✗ expired on ${date}: renew it, then reload the bridge`;
  if (left < CERTIFICATE_WARNING_MS)
    return `⚠ valid until ${date} (${days} day(s)): renew it, then reload the bridge`;
  return `valid until ${date} (${days} days)`;
}
