import { M365MailError } from "@m365-mail/core";

export const SOURCE = "pop3";

/** A POP3 answer: `+OK text`, `-ERR text`, or a SASL continuation `+ text`. */
export interface Pop3Reply {
  readonly status: "ok" | "err" | "continue";
  readonly text: string;
}

/** The RFC 2449/3206 response code at the start of a `-ERR` text, e.g. `IN-USE` from `-ERR [IN-USE] ...`. */
export function responseCode(text: string): string | undefined {
  return /^\[([A-Za-z0-9/-]+)\]/.exec(text)?.[1]?.toUpperCase();
}

const CERT_ERRORS = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_UNTRUSTED",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

/** Turns a socket or TLS error into CONNECTION_FAILED with a hint about the setting to change. */
export function connectionError(error: unknown, host: string, port: number): M365MailError {
  const code = String((error as NodeJS.ErrnoException | undefined)?.code ?? "");
  const where = `${host}:${port}`;
  const base = { source: SOURCE, cause: error, ...(code ? { serverCode: code } : {}) };
  if (CERT_ERRORS.has(code)) {
    return new M365MailError(
      "CONNECTION_FAILED",
      `the TLS certificate of ${where} is not trusted (${code})`,
      {
        ...base,
        retryable: false,
        hint: "Pass `ca` with the CA that signed the server's certificate (for the emulator: its CA file), or set `servername` to the name in the certificate.",
      },
    );
  }
  if (code === "ERR_SSL_WRONG_VERSION_NUMBER" || code === "ERR_SSL_PACKET_LENGTH_TOO_LONG") {
    return new M365MailError("CONNECTION_FAILED", `${where} did not answer with TLS (${code})`, {
      ...base,
      retryable: false,
      hint: 'Port 995 speaks TLS from the start (tls: "implicit"); a plain POP3 port (110) needs tls: "starttls".',
    });
  }
  if (code === "ENOTFOUND" || code === "EAI_AGAIN") {
    return new M365MailError("CONNECTION_FAILED", `cannot resolve the POP3 host ${host} (${code})`, {
      ...base,
      retryable: code === "EAI_AGAIN",
      hint: "Check `host` (Microsoft 365: outlook.office365.com) and the machine's DNS.",
    });
  }
  if (code === "ECONNREFUSED") {
    return new M365MailError("CONNECTION_FAILED", `${where} refused the connection`, {
      ...base,
      hint: "Check `host` and `port` (Microsoft 365: outlook.office365.com:995) and that a firewall lets POP3 out.",
    });
  }
  const detail = error instanceof Error ? error.message : String(error);
  return new M365MailError("CONNECTION_FAILED", `the connection to ${where} failed: ${detail}`, {
    ...base,
    hint: "Retry; if it keeps failing, check `host`, `port` and the network path to the POP3 server.",
  });
}

/** A `-ERR` to an ordinary command. Commands on a message number answer NOT_FOUND for a missing message. */
export function commandError(command: string, reply: Pop3Reply, onMessage: boolean): M365MailError {
  const code = responseCode(reply.text);
  const base = { source: SOURCE, ...(code ? { serverCode: code } : {}) };
  const text = `${command} failed: -ERR ${reply.text}`;
  if (code === "IN-USE") {
    return new M365MailError("SERVER_ERROR", text, {
      ...base,
      retryable: true,
      hint: "Another POP3 session holds the mailbox (POP3 allows one at a time): close other POP3 clients of this mailbox and retry.",
    });
  }
  if (code === "SYS/TEMP") {
    return new M365MailError("SERVER_ERROR", text, {
      ...base,
      retryable: true,
      hint: "A temporary server problem: retry later.",
    });
  }
  if (code === "AUTH") return new M365MailError("AUTH_FAILED", text, base);
  if (onMessage) {
    return new M365MailError("NOT_FOUND", text, {
      ...base,
      hint: "The message is gone or was deleted in this session; list the messages again.",
    });
  }
  return new M365MailError("SERVER_ERROR", text, {
    ...base,
    ...(code === "SYS/PERM" ? { retryable: false } : {}),
    hint: "The POP3 server refused the command; retry later, and if it persists check the mailbox in the Exchange admin center.",
  });
}

export function invalidResponse(message: string): M365MailError {
  return new M365MailError("INVALID_RESPONSE", message, {
    source: SOURCE,
    hint: "The server does not speak POP3 as expected: check `host`, `port` and `tls`.",
  });
}
