import type { Logger } from "@m365-mail/core";

/** The bridge's `webhookUrl`: events for a person (sign-in problems, spooled messages that need one). */
export interface Webhook {
  /** Fire and forget with a deadline: a slow webhook must never hold up a login or a delivery. */
  post(event: { readonly type: string } & Record<string, unknown>): void;
  setUrl(url: string | undefined): void;
}

export function createWebhook(url: string | undefined, logger: Logger): Webhook {
  let current = url;
  return {
    post(event) {
      if (!current) return;
      const target = current;
      fetch(target, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(event),
        signal: AbortSignal.timeout(10_000),
      })
        .then((res) => {
          if (!res.ok) logger.warn(`webhook ${target} answered ${res.status} to a ${event.type} event`);
        })
        .catch((error: unknown) =>
          logger.warn(`webhook ${target} could not be reached (${(error as Error).message})`),
        );
    },
    setUrl(next) {
      current = next;
    },
  };
}
