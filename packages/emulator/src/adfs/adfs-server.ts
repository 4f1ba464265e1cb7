import type { IncomingMessage, ServerResponse } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "@m365-mail/core";
import type { FaultRegistry, RequestCounters } from "../context.js";
import type { AdfsService } from "./adfs-service.js";

const MAX_BODY = 256 * 1024;

export interface AdfsHandlerDeps {
  adfs: AdfsService;
  faults: FaultRegistry;
  counters: RequestCounters;
  log: Logger;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        reject(new Error("request body over 256 KB"));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

function notFound(res: ServerResponse): void {
  // HTTP.sys's answer for a path no AD FS endpoint serves (a disabled endpoint looks the same).
  res.writeHead(404, { "content-type": "text/html; charset=us-ascii" });
  res.end(
    '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01//EN""http://www.w3.org/TR/html4/strict.dtd">\r\n<HTML><HEAD><TITLE>Not Found</TITLE></HEAD><BODY><h2>Not Found</h2><hr><p>HTTP Error 404. The requested resource is not found.</p></BODY></HTML>\r\n',
  );
}

/** The AD FS server's routes: `GET /adfs/services/trust/mex`, `POST /adfs/services/trust/{13|2005}/usernamemixed`. */
export function createAdfsHandler(
  deps: AdfsHandlerDeps,
): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    route(deps, req, res).catch((error: unknown) => {
      deps.log.error("AD FS request failed", { path: req.url, error });
      if (!res.headersSent) res.writeHead(500).end();
      else res.destroy();
    });
  };
}

async function route(deps: AdfsHandlerDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? "/").split("?")[0]!.replace(/\/+$/, "").toLowerCase();
  const method = req.method ?? "GET";
  // Also on kept-alive connections opened while AD FS was reachable.
  if (!deps.adfs.settings.reachable) {
    req.socket.destroy();
    return;
  }
  deps.counters.increment("adfs.requests");
  const fault = deps.faults.take("adfs", path);
  if (fault) {
    deps.counters.increment(`adfs.fault.${fault.kind}`);
    if (fault.kind === "delay") await sleep(fault.delayMs ?? 1000);
    else if (fault.kind === "reset") {
      req.socket.destroy();
      return;
    } else if (fault.kind.startsWith("status")) {
      const status = Number(fault.kind.slice("status".length));
      res.writeHead(status, { "content-type": "text/html; charset=utf-8" });
      res.end(`<html><body><h2>${status}</h2></body></html>`);
      return;
    }
  }
  if (path === "/adfs/services/trust/mex" && method === "GET") {
    deps.counters.increment("adfs.mex");
    if (!deps.adfs.settings.mex) return notFound(res);
    res.writeHead(200, { "content-type": "application/soap+xml; charset=utf-8" });
    res.end(deps.adfs.mex());
    return;
  }
  const endpoint = /^\/adfs\/services\/trust\/(13|2005)\/usernamemixed$/.exec(path);
  if (endpoint && method === "POST") {
    const version = endpoint[1] as "13" | "2005";
    deps.counters.increment(`adfs.wstrust.${version}`);
    if (!deps.adfs.endpointEnabled(version)) return notFound(res);
    const answer = deps.adfs.wsTrust(version, req.headers, await readBody(req));
    res.writeHead(answer.status, { "content-type": answer.contentType });
    res.end(answer.body);
    return;
  }
  notFound(res);
}
