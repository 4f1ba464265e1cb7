import type { Server } from "node:https";
import { M365MailError } from "@m365-mail/core";

/** Listens and resolves with the port (the free one picked for port 0); a busy port is CONNECTION_FAILED. */
export function listen(
  server: Server,
  host: string,
  port: number,
  who: { name: string; source: string; portHint: string },
): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) =>
      reject(
        // A port in use or not allowed is a setting to change, not a failure that passes by itself.
        new M365MailError(
          error.code === "EADDRINUSE" || error.code === "EACCES" ? "CONFIG_INVALID" : "CONNECTION_FAILED",
          `${who.name} cannot listen on ${host}:${port}${error.code ? ` (${error.code})` : ""}`,
          {
            source: who.source,
            cause: error,
            hint: `Choose another port (${who.portHint}), or 0 for a free one.`,
          },
        ),
      );
    server.once("error", onError);
    server.listen(port, host, () => {
      server.off("error", onError);
      const address = server.address();
      resolve(typeof address === "object" && address ? address.port : port);
    });
  });
}

export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    // Keep-alive sockets would hold close() open.
    server.closeAllConnections();
  });
}
