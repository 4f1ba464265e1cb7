import { rootCertificates } from "node:tls";
import { M365MailError } from "@m365-mail/core";
import { Agent, type Dispatcher, ProxyAgent, request } from "undici";

export const SOURCE = "auth-ropc";

export interface HttpClientOptions {
  /** Applies to every request, from connect to the last byte of the body. */
  timeoutMs: number;
  proxy?: string | undefined;
  /** Extra CAs trusted on top of Node's bundled roots. */
  ca?: string | Buffer | ReadonlyArray<string | Buffer> | undefined;
  /** The component named in error messages. @default "auth-ropc" */
  source?: string;
  /** The option `proxy` came from, named in its error. @default "proxy" */
  proxyOption?: string;
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string>;
  text: string;
}

export interface HttpRequest {
  method: "GET" | "POST";
  url: string;
  headers?: Record<string, string>;
  body?: string;
  signal?: AbortSignal;
}

export interface HttpClient {
  send(req: HttpRequest): Promise<HttpResponse>;
  close(): Promise<void>;
}

/** `https://host/path` without the query: query strings can carry ids we do not want in messages. */
export function describeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return "(invalid URL)";
  }
}

function makeDispatcher(options: HttpClientOptions): Dispatcher {
  const extra = options.ca === undefined ? [] : Array.isArray(options.ca) ? options.ca : [options.ca];
  // Passing `ca` replaces Node's roots, so keep them: the option adds trust, it does not narrow it.
  const ca = extra.length > 0 ? [...rootCertificates, ...extra.map((c) => c.toString())] : undefined;
  if (options.proxy) {
    try {
      new URL(options.proxy);
    } catch (error) {
      const name = options.proxyOption ?? "proxy";
      throw new M365MailError("CONFIG_INVALID", `the ${name} option is not a valid URL`, {
        source: SOURCE,
        cause: error,
        hint: `Set ${name} to a URL such as http://proxy.example.com:3128.`,
      });
    }
    return new ProxyAgent({ uri: options.proxy, ...(ca ? { requestTls: { ca } } : {}) });
  }
  return new Agent(ca ? { connect: { ca } } : {});
}

const CONNECT_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EPIPE",
  "UND_ERR_SOCKET",
  "UND_ERR_CLOSED",
  "UND_ERR_CONNECT_TIMEOUT",
]);

function errorCode(error: unknown): string | undefined {
  let current: unknown = error;
  for (let i = 0; i < 4 && current && typeof current === "object"; i++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === "string") return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

/** HTTP over undici with one timeout for the whole exchange, extra CAs and an optional proxy. */
export function createHttpClient(options: HttpClientOptions): HttpClient {
  const dispatcher = makeDispatcher(options);
  const { timeoutMs } = options;
  const source = options.source ?? SOURCE;
  let closing: Promise<void> | undefined;
  return {
    async send(req) {
      const controller = new AbortController();
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        controller.abort();
      }, timeoutMs);
      const onAbort = () => controller.abort();
      req.signal?.addEventListener("abort", onAbort, { once: true });
      const where = `${req.method} ${describeUrl(req.url)}`;
      try {
        if (req.signal?.aborted) throw new Error("aborted before start");
        const res = await request(req.url, {
          method: req.method,
          headers: req.headers,
          body: req.body,
          dispatcher,
          signal: controller.signal,
        });
        const text = await res.body.text();
        const headers: Record<string, string> = {};
        for (const [key, value] of Object.entries(res.headers)) {
          if (value !== undefined)
            headers[key.toLowerCase()] = Array.isArray(value) ? value.join(", ") : value;
        }
        return { status: res.statusCode, headers, text };
      } catch (error) {
        if (timedOut) {
          throw new M365MailError("TIMEOUT", `${where} got no complete answer within ${timeoutMs} ms`, {
            source,
            cause: error,
            hint: "Check the network path to Entra ID (proxy, firewall); raise timeoutMs if the link is slow.",
          });
        }
        if (req.signal?.aborted) {
          throw new M365MailError("ABORTED", `${where} was aborted by the caller`, {
            source,
            cause: error,
          });
        }
        const code = errorCode(error);
        const refused = code === "ECONNREFUSED" || code === "ENOTFOUND" || code === "EAI_AGAIN";
        const tls = code !== undefined && /CERT|UNABLE_TO_VERIFY|^ERR_TLS|^ERR_SSL/.test(code);
        throw new M365MailError(
          "CONNECTION_FAILED",
          `${where} failed: ${
            tls
              ? `the TLS certificate was not trusted (${code})`
              : refused
                ? `could not connect (${code})`
                : `the connection was closed before a complete answer (${code ?? "no error code"})`
          }`,
          {
            source,
            cause: error,
            // A reset mid-answer may succeed on retry; a distrusted certificate will not.
            retryable: !tls && (code === undefined || CONNECT_CODES.has(code) || !code.startsWith("ERR_")),
            hint: tls
              ? "Trust the server's CA with the ca option (the emulator prints its caPath), or fix the proxy's certificate."
              : "Check authorityHost / cloud, the proxy option and that the host is reachable.",
          },
        );
      } finally {
        clearTimeout(timer);
        req.signal?.removeEventListener("abort", onAbort);
      }
    },
    async close() {
      closing ??= dispatcher.close();
      await closing;
    },
  };
}
