import {
  type Address,
  isM365MailError,
  type Logger,
  M365MailError,
  type OutgoingAttachment,
  type OutgoingMessage,
  type TokenProvider,
  type Transport,
} from "@m365-mail/core";
import { graphTransport } from "@m365-mail/transport-graph";
import { type SmtpTransport, smtpTransport } from "@m365-mail/transport-smtp";
import { type AddressObject, simpleParser } from "mailparser";
import type { AccountConfig, M365Connection } from "../config-schema.js";
import type { SignedIn } from "../front-door.js";
import type { BridgeMetrics } from "../metrics.js";
import { findHeaderEnd, headerAddresses, withEnvelopeRecipients } from "./recipients.js";
import { MessageNotReceived } from "./smtp-front-door.js";

/** One message as the SMTP front door accepted it (or the spool stored it). */
export interface DeliveryJob {
  readonly signedIn: SignedIn;
  readonly account: AccountConfig;
  readonly mailFrom: string;
  readonly recipients: readonly string[];
  /** A promise while the message is still arriving: only SMTP delivery starts before it is complete. */
  readonly raw: Buffer | Promise<Buffer>;
}

type ReceivedJob = DeliveryJob & { readonly raw: Buffer };

/** How a message reached Microsoft 365: Graph `sendMail`, or Exchange's SMTP with XOAUTH2. */
export type DeliveryRoute = "graph" | "smtp";

export interface DeliveryResult {
  readonly route: DeliveryRoute;
  readonly messageId: string;
}

export interface Delivery {
  deliver(job: DeliveryJob, signal?: AbortSignal): Promise<DeliveryResult>;
  close(): Promise<void>;
}

/**
 * Graph takes MIME up to ~4 MB of base64 per request, i.e. ~3 MB of message; larger messages are parsed
 * and sent as a structured message, whose attachments over 3 MB go through upload sessions.
 */
export const RAW_GRAPH_LIMIT = 3 * 1024 * 1024 - 64 * 1024;

/** Errors that mean "Graph is not allowed for this app or mailbox": `auto` then tries SMTP. */
export const GRAPH_NOT_CONSENTED: ReadonlySet<string> = new Set([
  "CONSENT_REQUIRED",
  "ACCESS_DENIED",
  "WRONG_SCOPE",
]);

export function createDelivery(options: {
  m365: () => M365Connection;
  ca?: string;
  logger: Logger;
  metrics: BridgeMetrics;
  /** A delivery failure that needs a person (SMTP AUTH disabled, consent missing, …). */
  onProblem?: (account: string, user: string, error: unknown, route: DeliveryRoute) => void;
  /** A message Microsoft 365 accepted: what failed on that route before works again. */
  onDelivered?: (account: string, user: string, route: DeliveryRoute) => void;
}): Delivery {
  const log = options.logger;
  // One transport per token provider and mailbox: Graph's per-mailbox concurrency and SMTP's pool of 3
  // connections are then shared by every device session of that account.
  const transports = new WeakMap<TokenProvider, Map<string, Transport>>();
  const all = new Set<Transport>();
  const transportFor = (route: DeliveryRoute, job: DeliveryJob): Transport => {
    const { signedIn } = job;
    // The spool decides itself, after its grace period, whether a message whose answer was lost is in
    // Sent Items; the device in sync mode is waiting, so there the transport looks and resends.
    const spooled = job.account.answer === "spool";
    let byKey = transports.get(signedIn.auth);
    if (!byKey) {
      byKey = new Map();
      transports.set(signedIn.auth, byKey);
    }
    const key = `${route}:${signedIn.mailbox}${spooled ? ":spool" : ""}`;
    let transport = byKey.get(key);
    if (!transport) {
      const m365 = options.m365();
      transport =
        route === "graph"
          ? graphTransport({
              auth: signedIn.auth,
              mailbox: signedIn.mailbox,
              ...(m365.graphOrigin ? { baseUrl: m365.graphOrigin } : {}),
              ...(options.ca ? { ca: options.ca } : {}),
              ...(spooled ? { uncertainSends: "report" as const } : {}),
              logger: log,
            })
          : smtpTransport({
              auth: signedIn.auth,
              mailbox: signedIn.mailbox,
              host: m365.smtp.host,
              port: m365.smtp.port,
              ...(m365.smtp.maxMessagesPerMinute === undefined
                ? {}
                : { maxMessagesPerMinute: m365.smtp.maxMessagesPerMinute }),
              ...(options.ca ? { ca: options.ca } : {}),
              // A resend after a connection lost past the final dot could deliver twice: the spool
              // retries itself, looking in Sent Items first when the message may have gone.
              ...(spooled ? { retry: false as const } : {}),
              logger: log,
            });
      byKey.set(key, transport);
      all.add(transport);
    }
    return transport;
  };

  async function viaGraph(job: ReceivedJob, signal?: AbortSignal): Promise<string> {
    const transport = transportFor("graph", job);
    const header = job.raw.subarray(0, findHeaderEnd(job.raw)).toString("latin1");
    const envelope = new Set(job.recipients.map((r) => r.toLowerCase()));
    const extra = headerAddresses(header, ["to", "cc", "bcc"]).filter((a) => !envelope.has(a));
    if (extra.length > 0) {
      // Graph has no envelope: it delivers to every header recipient.
      log.warn(
        `graph delivery: ${extra.length} header recipient(s) are not in the SMTP envelope and will receive the message too (Graph delivers to the headers); use delivery "smtp" for strict envelope semantics`,
      );
    }
    let message: OutgoingMessage;
    if (job.raw.byteLength <= RAW_GRAPH_LIMIT) {
      message = { raw: withEnvelopeRecipients(job.raw, job.recipients) };
    } else {
      message = await structured(job);
    }
    const result = await transport.send!(message, signal ? { signal } : undefined);
    return result.messageId;
  }

  async function viaSmtp(job: DeliveryJob, signal?: AbortSignal): Promise<string> {
    const transport = transportFor("smtp", job) as SmtpTransport;
    const opts = signal ? { signal } : undefined;
    // Explicit recipients make the transport use the envelope, not the headers: Bcc and relayed
    // messages go exactly where the client said.
    const result = Buffer.isBuffer(job.raw)
      ? await transport.send({ raw: job.raw, from: job.mailFrom, to: [...job.recipients] }, opts)
      : await transport.relay({ from: job.mailFrom, to: job.recipients }, job.raw, opts);
    return result.messageId;
  }

  return {
    async deliver(job, signal) {
      const route = job.account.delivery;
      const account = job.account.name;
      const user = job.signedIn.auth.username;
      const counted = async (r: DeliveryRoute, run: () => Promise<string>): Promise<DeliveryResult> => {
        try {
          const messageId = await run();
          options.metrics.inc("m365_bridge_deliveries_total", { route: r, result: "ok" });
          options.onDelivered?.(account, user, r);
          return { route: r, messageId };
        } catch (error) {
          // The client never finished the message: nothing was delivered, and nothing went wrong upstream.
          if (error instanceof MessageNotReceived) throw error;
          // "auto" without Graph consent is a configuration that works (over SMTP), not a problem.
          const autoFallsBack =
            route === "auto" &&
            r === "graph" &&
            isM365MailError(error) &&
            GRAPH_NOT_CONSENTED.has(error.code);
          if (!autoFallsBack) options.onProblem?.(account, user, error, r);
          options.metrics.inc("m365_bridge_deliveries_total", {
            route: r,
            result: isM365MailError(error) && error.retryable ? "deferred" : "failed",
          });
          throw error;
        }
      };
      if (route === "smtp") return counted("smtp", () => viaSmtp(job, signal));
      const received = { ...job, raw: await job.raw };
      if (route === "graph") return counted("graph", () => viaGraph(received, signal));
      try {
        return await counted("graph", () => viaGraph(received, signal));
      } catch (error) {
        if (!(error instanceof M365MailError) || !GRAPH_NOT_CONSENTED.has(error.code)) throw error;
        log.info(`account ${account}: Graph refused (${error.code}); delivering over SMTP (delivery "auto")`);
        return counted("smtp", () => viaSmtp(received, signal));
      }
    },
    async close() {
      await Promise.all([...all].map((t) => t.close().catch(() => undefined)));
      all.clear();
    },
  };
}

function addresses(value: AddressObject | AddressObject[] | undefined): Address[] {
  const list = value === undefined ? [] : Array.isArray(value) ? value : [value];
  return list.flatMap((o) =>
    o.value.flatMap((a) => (a.address ? [{ address: a.address, ...(a.name ? { name: a.name } : {}) }] : [])),
  );
}

/** A message too large for Graph's MIME send, as a structured message with its attachments' exact bytes. */
async function structured(job: ReceivedJob): Promise<OutgoingMessage> {
  const parsed = await simpleParser(job.raw, {
    skipImageLinks: true,
    skipTextToHtml: true,
    skipTextLinks: true,
  });
  const to = addresses(parsed.to);
  const cc = addresses(parsed.cc);
  const listed = new Set([...to, ...cc].map((a) => a.address.toLowerCase()));
  const bcc = job.recipients.filter((r) => !listed.has(r.toLowerCase()));
  const from = addresses(parsed.from)[0];
  const attachments: OutgoingAttachment[] = parsed.attachments.map((a) => ({
    filename: a.filename ?? "attachment",
    content: a.content,
    contentType: a.contentType,
    ...(a.cid ? { contentId: a.cid } : {}),
    ...(a.contentDisposition === "inline" ? { inline: true } : {}),
  }));
  if (!parsed.text && !parsed.html && attachments.length === 0) {
    throw new M365MailError("MESSAGE_INVALID", "the message has no body and no attachments", {
      source: "bridge",
      hint: "Send a MIME message with a body or an attachment.",
    });
  }
  return {
    ...(from ? { from } : {}),
    to,
    cc,
    bcc,
    replyTo: addresses(parsed.replyTo),
    subject: parsed.subject ?? "",
    ...(parsed.text ? { text: parsed.text } : {}),
    ...(typeof parsed.html === "string" ? { html: parsed.html } : {}),
    attachments,
    ...(parsed.messageId ? { messageId: parsed.messageId } : {}),
  };
}
