import type { M365MailError } from "./errors.js";

/**
 * Who reads a hint. The packages write hints for a library user ("the `ca` option"); a CLI user
 * changes a flag or an `M365_*` variable, a server operator an environment variable. `hintFor`
 * renders a hint in the reader's words.
 */
export type HintAudience = "library" | "cli" | "server";

interface Term {
  /** The library's words (matched case-sensitively unless the pattern says otherwise). */
  readonly library: RegExp;
  readonly cli: string;
  readonly server: string;
}

const CA_CLI = "--ca-file (M365_CA_FILE)";
const CA_SERVER = "M365_CA_FILE";

/**
 * Library words and what the other interfaces call the same setting. Longer phrases come first so
 * that "Pass `ca` with the CA that signed…" is replaced whole, not word by word.
 */
const TERMS: readonly Term[] = [
  // TLS trust
  {
    library:
      /Pass `ca` with the CA that signed the server's certificate \(for the emulator: its CA file\), or set `servername` to the name in the certificate\./,
    cli: `Trust the CA that signed the server's certificate with ${CA_CLI} (for the emulator: its CA file).`,
    server: `Trust the CA that signed the server's certificate with ${CA_SERVER} (for the emulator: its CA file).`,
  },
  {
    library:
      /Pass the server's CA as `ca` \(the emulator prints where its CA file is\), or check `secure` and `port`\./,
    cli: `Trust the server's CA with ${CA_CLI} (the emulator prints where its CA file is), or check --imap-port (M365_IMAP_PORT).`,
    server: `Trust the server's CA with ${CA_SERVER} (the emulator prints where its CA file is), or check M365_IMAP_PORT.`,
  },
  {
    library: /pass `ca` \(for the emulator, its CA file\) or start Node with NODE_EXTRA_CA_CERTS/,
    cli: `use ${CA_CLI} (for the emulator, its CA file) or set NODE_EXTRA_CA_CERTS`,
    server: `set ${CA_SERVER} (for the emulator, its CA file) or NODE_EXTRA_CA_CERTS`,
  },
  {
    library: /with the ca option \(the emulator prints its caPath\)/,
    cli: `with ${CA_CLI} (the emulator prints its CA file)`,
    server: `with ${CA_SERVER} (the emulator prints its CA file)`,
  },
  {
    library: /TLS trust \(the `ca` option\)/,
    cli: `TLS trust (${CA_CLI})`,
    server: `TLS trust (${CA_SERVER})`,
  },
  { library: /the `?ca`? option/, cli: CA_CLI, server: CA_SERVER },
  // Proxies: the command and the server connect directly (or through HTTPS_PROXY-aware fetch).
  {
    library: /the proxy option/,
    cli: "the network path (firewall or proxy between this machine and Microsoft)",
    server: "the network path (firewall or proxy between the server and Microsoft)",
  },
  { library: /Set proxy to a URL[^.]*\./, cli: "Check the network path.", server: "Check the network path." },
  // Sign-in settings
  {
    library:
      /Leave authorityHost unset to use the cloud's Entra host, or pass the emulator's authorityHost\./,
    cli: "Leave --authority-host (M365_AUTHORITY_HOST) unset to use the cloud's Entra host, or set it to the emulator's.",
    server: "Leave M365_AUTHORITY_HOST unset to use the cloud's Entra host, or set it to the emulator's.",
  },
  {
    library: /authorityHost, cloud, tenantId and clientId/,
    cli: "--authority-host, --cloud, --tenant and --client-id (M365_AUTHORITY_HOST, M365_CLOUD, M365_TENANT_ID, M365_CLIENT_ID)",
    server: "M365_AUTHORITY_HOST, M365_CLOUD, M365_TENANT_ID and M365_CLIENT_ID",
  },
  {
    library: /authorityHost, the cloud and tenantId/,
    cli: "--authority-host, --cloud and --tenant (M365_AUTHORITY_HOST, M365_CLOUD, M365_TENANT_ID)",
    server: "M365_AUTHORITY_HOST, M365_CLOUD and M365_TENANT_ID",
  },
  {
    library: /authorityHost \/ cloud/,
    cli: "--authority-host / --cloud (M365_AUTHORITY_HOST / M365_CLOUD)",
    server: "M365_AUTHORITY_HOST / M365_CLOUD",
  },
  {
    library: /\bauthorityHost\b/,
    cli: "--authority-host (M365_AUTHORITY_HOST)",
    server: "M365_AUTHORITY_HOST",
  },
  {
    library: /Pass auth: ropcTokenProvider\(\{ tenantId, clientId, username, password \}\)\./,
    cli: "Set --tenant, --client-id, --username and the password (M365_TENANT_ID, M365_CLIENT_ID, M365_USERNAME, M365_PASSWORD_FILE).",
    server: "Set M365_TENANT_ID, M365_CLIENT_ID, M365_USERNAME and M365_PASSWORD (or M365_PASSWORD_FILE).",
  },
  // Time limits and throttling knobs the command does not expose: the advice is to wait or retry.
  {
    library: /; raise timeoutMs if the link is slow/,
    cli: "; on a slow link, run the command again",
    server: "; on a slow link, try again",
  },
  {
    library: /Raise the transport's timeoutMs, or check/,
    cli: "Run the command again, or check",
    server: "Try again, or check",
  },
  {
    library: /lower maxConcurrency or the request rate, or raise retry\.maxWaitMs/,
    cli: "wait a few minutes and run the command again",
    server: "lower GRAPH_CONCURRENCY or the request rate",
  },
  {
    library: /The lock frees itself after lockTtlMs\./,
    cli: "The lock frees itself after a while.",
    server: "The lock frees itself after a while.",
  },
  // Which transport has an operation
  {
    library: /\(see mailbox\.transports\(\)\)/,
    cli: "(pick another --via; `m365-mail <command> --help` lists them)",
    server: "(add it to TRANSPORTS, or set READ_VIA)",
  },
  // Hosts and ports of the mail protocols
  {
    library: /Check `host` and `port` \(outlook\.office365\.com:993 for Microsoft 365\)/,
    cli: "Check --imap-host and --imap-port (M365_IMAP_HOST, M365_IMAP_PORT; outlook.office365.com:993 for Microsoft 365)",
    server: "Check M365_IMAP_HOST and M365_IMAP_PORT (outlook.office365.com:993 for Microsoft 365)",
  },
  {
    library: /Check `host` and `port` \(Microsoft 365: outlook\.office365\.com:995\)/,
    cli: "Check --pop3-host and --pop3-port (M365_POP3_HOST, M365_POP3_PORT; Microsoft 365: outlook.office365.com:995)",
    server: "Check the POP3 host and port (Microsoft 365: outlook.office365.com:995)",
  },
  {
    library: /check `host`, `port` and `tls`/,
    cli: "check --pop3-host and --pop3-port (M365_POP3_HOST, M365_POP3_PORT)",
    server: "check the POP3 host and port",
  },
  {
    library: /check `host`, `port` and the network path/,
    cli: "check --pop3-host, --pop3-port (M365_POP3_HOST, M365_POP3_PORT) and the network path",
    server: "check the POP3 host, port and the network path",
  },
  {
    library: /raise `timeoutMs` on slow links, and check that `host` and `port` are a POP3 server/,
    cli: "check that --pop3-host and --pop3-port (M365_POP3_HOST, M365_POP3_PORT) are a POP3 server",
    server: "check that the POP3 host and port are a POP3 server",
  },
  { library: /, or raise `timeoutMs`/, cli: "", server: "" },
  { library: /Raise timeoutMs, or check/, cli: "Check", server: "Check" },
  // Ids and names the user gets from another command
  {
    library:
      /Pass an id returned by listMessages\(\), watch\(\) or moveMessage\(\) of the imap transport \(folder:uidvalidity:uid\)\./,
    cli: "Use an id printed by `m365-mail list --via imap` (folder:uidvalidity:uid).",
    server: "Use an id from GET /v1/messages with READ_VIA=imap (folder:uidvalidity:uid).",
  },
  {
    library: /Use an id from listAttachments\(\)/,
    cli: "Use an id from `m365-mail download <id> --list`",
    server: "Use an id from GET /v1/messages/{id}/attachments",
  },
  { library: /listFolders\(\)/, cli: "`m365-mail folders`", server: "GET /v1/folders" },
  {
    library: /Name the recipients \(`to`\)\./,
    cli: "Add --to <address>.",
    server: "Name the recipients in the request's to field.",
  },
  {
    library: /Use a clientId listed by/,
    cli: "Use a client id (--client-id, M365_CLIENT_ID) listed by",
    server: "Use a client id (M365_CLIENT_ID) listed by",
  },
  // The emulator's own settings
  { library: /--port \/ entraPort/, cli: "--port", server: "--port" },
  {
    library: /Check the path given to --directory \(or startEmulator\(\{ directory \}\)\)\./,
    cli: "Check the path given to --directory.",
    server: "Check the path given to --directory.",
  },
  {
    library: /Pass a writable dataDir \(--data-dir\) or set M365_EMULATOR_HOME\./,
    cli: "Pass a writable --data-dir or set M365_EMULATOR_HOME.",
    server: "Set M365_EMULATOR_HOME to a writable folder.",
  },
  {
    library: /Use the Graph origin, e\.g\. https:\/\/graph\.microsoft\.com\./,
    cli: "Set --graph-origin (M365_GRAPH_ORIGIN) to the Graph origin, e.g. https://graph.microsoft.com.",
    server: "Set M365_GRAPH_ORIGIN to the Graph origin, e.g. https://graph.microsoft.com.",
  },
];

/**
 * Words only a library user can act on: option names, factory calls, methods. A CLI or server hint
 * holding one of these is a bug (the test over every hint checks it).
 */
export const LIBRARY_VOCABULARY: readonly RegExp[] = [
  /\bthe `?[a-zA-Z.]+`? option\b/,
  /\b[Pp]ass `?[a-z][a-zA-Z]*`?(?::| as| with| back| one| each| the result| it)/,
  /\b[a-z]+[A-Z][a-zA-Z]*\(/, // a factory or method call: graphTransport(, createMailbox(
  /\b[a-z][a-zA-Z]*\.[a-z][a-zA-Z]*\(\)/, // mailbox.transports()
  /\b(?:authorityHost|timeoutMs|maxConcurrency|maxWaitMs|entraPort|baseUrl|servername|tenantId|clientId|dataDir|lockTtlMs|passwordProvider|caPath|renewBeforeExpirySeconds|sentItemsLookupMs|fetchBatchSize)\b/,
  /`(?:ca|proxy|secure|port|raw|attachments|name|state|to|key|concurrency|auth)`/,
];

/** True when the text asks for a setting only the library has. */
export function speaksLibrary(text: string): boolean {
  return LIBRARY_VOCABULARY.some((pattern) => pattern.test(text));
}

/**
 * The hint in the words of `audience`. A library hint that names a setting the interface has no word
 * for becomes a general hint rather than an instruction the reader cannot follow.
 */
export function hintFor(
  source: Pick<M365MailError, "hint"> | string | undefined,
  audience: HintAudience,
): string | undefined {
  const hint = typeof source === "string" ? source : source?.hint;
  if (hint === undefined || audience === "library") return hint;
  let text = hint;
  for (const term of TERMS) text = text.replace(term.library, term[audience]);
  if (!speaksLibrary(text)) return text;
  return audience === "cli"
    ? "This concerns a setting of the m365-mail packages that the command sets itself: run `m365-mail doctor`, and report the error if it persists."
    : "This concerns a setting of the m365-mail packages that the server sets itself: check the server's configuration (/readyz), and report the error if it persists.";
}

/** The error's message with its hint (appended as " — hint") rendered for `audience`. */
export function messageFor(error: Pick<M365MailError, "hint" | "message">, audience: HintAudience): string {
  const hint = error.hint;
  if (!hint || audience === "library") return error.message;
  const suffix = ` — ${hint}`;
  const base = error.message.endsWith(suffix) ? error.message.slice(0, -suffix.length) : error.message;
  return `${base} — ${hintFor(hint, audience)}`;
}
