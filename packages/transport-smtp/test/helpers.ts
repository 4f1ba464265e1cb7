import { request } from "node:https";
import { ropcTokenProvider } from "@m365-mail/auth-ropc";
import type { TokenProvider } from "@m365-mail/core";
import {
  type Emulator,
  type GraphPart,
  graphPart,
  type SmtpEmulatorPart,
  smtpPart,
  startTestEmulator as startEmulatorInTempDir,
  tokenProviderOptions,
} from "@m365-mail/emulator";
import type { ConformanceMessage, ConformanceReader } from "@m365-mail/transport-test-suite";
import { simpleParser } from "mailparser";

export interface TestEmulator {
  emulator: Emulator;
  smtp: SmtpEmulatorPart;
  graph: GraphPart;
  cleanup(): Promise<void>;
}

/** The emulator with its Graph and SMTP parts, in a fresh data folder. */
export async function startTestEmulator(): Promise<TestEmulator> {
  const smtp = smtpPart();
  const graph = graphPart();
  const emulator = await startEmulatorInTempDir({ prefix: "m365-smtp-transport-", parts: [graph, smtp] });
  return { emulator, smtp, graph, cleanup: () => emulator.stop() };
}

/** A real ROPC token provider signed in against the emulator. */
export function emulatorProvider(emulator: Emulator, username = "support@contoso.com"): TokenProvider {
  return ropcTokenProvider(tokenProviderOptions(emulator, username));
}

export { spyProvider } from "@m365-mail/test-helpers";

export interface StoredMail extends ConformanceMessage {
  from?: string;
  messageId?: string;
  headers: Map<string, unknown>;
  seen: boolean;
  attachments: {
    filename: string;
    content: Uint8Array;
    contentId?: string;
    contentType: string;
    related?: boolean;
  }[];
}

/** GET on the emulator's Graph with a token of `upn`: what any Graph client would see. */
export async function graphGet(
  emulator: Emulator,
  token: string,
  path: string,
): Promise<{ status: number; body: Buffer }> {
  const origin = emulator.cloud.graphOrigin ?? emulator.cloud.graphEndpoint;
  return new Promise((resolve, reject) => {
    const req = request(
      `${origin}${path}`,
      { ca: emulator.caPem, headers: { authorization: `Bearer ${token}` } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.setTimeout(10_000, () => req.destroy(new Error("Graph request timed out")));
    req.end();
  });
}

const graphTokens = new Map<string, TokenProvider>();

/**
 * Reads a mailbox folder over the emulator's Graph (`$value` MIME of each message), parsed. `as` signs in
 * as a delegate to read a shared mailbox (`/users/{upn}`).
 */
export async function readFolder(
  emulator: Emulator,
  upn: string,
  folder = "inbox",
  as = upn,
): Promise<StoredMail[]> {
  const key = `${emulator.authorityHost}|${as}`;
  let provider = graphTokens.get(key);
  if (!provider) {
    provider = emulatorProvider(emulator, as);
    graphTokens.set(key, provider);
  }
  const { token } = await provider.getAccessToken("graph");
  const base = as === upn ? "/v1.0/me" : `/v1.0/users/${encodeURIComponent(upn)}`;
  const list = await graphGet(
    emulator,
    token,
    `${base}/mailFolders/${folder}/messages?$top=100&$select=id,subject,isRead`,
  );
  if (list.status !== 200) throw new Error(`Graph answered ${list.status}: ${list.body.toString()}`);
  const items = JSON.parse(list.body.toString()).value as { id: string; isRead: boolean }[];
  const out: StoredMail[] = [];
  for (const item of items) {
    const mime = await graphGet(emulator, token, `${base}/messages/${encodeURIComponent(item.id)}/$value`);
    const parsed = await simpleParser(mime.body);
    out.push({
      id: item.id,
      subject: parsed.subject ?? "",
      from: parsed.from?.value[0]?.address,
      messageId: parsed.messageId,
      to: (Array.isArray(parsed.to) ? parsed.to : parsed.to ? [parsed.to] : []).flatMap((a) =>
        a.value.map((v) => ({ address: v.address ?? "", ...(v.name ? { name: v.name } : {}) })),
      ),
      text: parsed.text,
      html: parsed.html || undefined,
      headers: parsed.headers,
      seen: item.isRead,
      attachments: parsed.attachments.map((a) => ({
        filename: a.filename ?? "",
        content: new Uint8Array(a.content),
        contentType: a.contentType,
        ...(a.contentId ? { contentId: a.contentId } : {}),
        related: a.related,
      })),
    });
  }
  return out;
}

/** The conformance suite's reader: the recipient's Inbox, over Graph. */
export function storeReader(emulator: () => Emulator, upn: string): ConformanceReader {
  return {
    async find(subject) {
      return (await readFolder(emulator(), upn)).filter((m) => m.subject === subject);
    },
  };
}
