import type { Logger, Mailbox, MailEvent } from "@m365-mail/core";

export type MailEventListener = (event: MailEvent) => void;

/**
 * One watch per process (IMAP IDLE or Graph delta), shared by every SSE client and the webhooks. It
 * runs while someone listens; the transports' own watch survives token expiry and reconnects, and a
 * watch that ends with an error is restarted here after a backoff.
 */
export function mailEventHub(options: {
  mailbox: Mailbox;
  transport: string | undefined;
  intervalMs: number;
  logger: Logger;
  /** Sees every event while the watch runs, without keeping it running (metrics). */
  onEvent?: MailEventListener;
}) {
  const listeners = new Set<MailEventListener>();
  let controller: AbortController | undefined;
  let running: Promise<void> | undefined;

  const loop = async (signal: AbortSignal) => {
    let delay = 1000;
    while (!signal.aborted) {
      try {
        const transport = options.mailbox.transport(options.transport!);
        // Graph's watch polls delta (intervalMs); IMAP's uses IDLE and ignores it.
        const watchOptions = { signal, intervalMs: options.intervalMs } as { signal: AbortSignal };
        for await (const event of transport.watch!({ folder: "inbox" }, watchOptions)) {
          delay = 1000;
          options.onEvent?.(event);
          for (const listener of listeners) listener(event);
        }
      } catch (error) {
        if (signal.aborted) break;
        options.logger.warn(`the ${options.transport} watch stopped; restarting in ${delay} ms`, {
          error: String((error as Error)?.message ?? error),
        });
      }
      if (signal.aborted) break;
      await new Promise((resolve) => setTimeout(resolve, delay).unref());
      delay = Math.min(delay * 2, 60_000);
    }
  };

  const ensure = () => {
    if (running || !options.transport) return;
    controller = new AbortController();
    running = loop(controller.signal).finally(() => {
      running = undefined;
    });
  };

  return {
    available: options.transport !== undefined,
    subscribe(listener: MailEventListener): () => void {
      listeners.add(listener);
      ensure();
      return () => {
        listeners.delete(listener);
        if (listeners.size === 0) {
          controller?.abort();
        }
      };
    },
    async close() {
      listeners.clear();
      controller?.abort();
      await running?.catch(() => undefined);
    },
  };
}

export type MailEventHub = ReturnType<typeof mailEventHub>;
