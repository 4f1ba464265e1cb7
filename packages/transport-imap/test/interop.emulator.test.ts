import { randomBytes } from "node:crypto";
import { request } from "node:https";
import { graphPart, smtpPart } from "@m365-mail/emulator";
import { curl, curlSpeaks } from "@m365-mail/test-helpers";
import nodemailer from "nodemailer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ImapTransport } from "../src/index.js";
import {
  collect,
  deliver,
  dovecotMissing,
  emulatorProvider,
  type ImapEmulator,
  startImapEmulator,
  transportFor,
} from "./emulator-helpers.js";

const SUPPORT = "support@contoso.com";
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.skipIf(dovecotMissing)(
  "IMAP reads what other protocols wrote (emulator: Dovecot + SMTP + Graph)",
  () => {
    let env: ImapEmulator;
    let imap: ImapTransport;
    beforeAll(async () => {
      env = await startImapEmulator({ parts: [smtpPart(), graphPart()] });
      imap = transportFor(env, emulatorProvider(env.emulator));
    });
    afterAll(async () => {
      await imap?.close();
      await env?.cleanup();
    });

    const waitForSubject = async (subject: string, folder = "inbox") => {
      for (let i = 0; i < 40; i++) {
        const found = (await collect(imap.listMessages({ folder }))).filter((m) => m.subject === subject);
        if (found.length > 0) return found;
        await sleep(250);
      }
      return [];
    };

    it("mail sent over SMTP AUTH XOAUTH2 arrives in the Inbox and in Sent Items, read over IMAP", async () => {
      const auth = emulatorProvider(env.emulator);
      const { token } = await auth.getAccessToken("outlook");
      const smtp = env.emulator.cloud.smtp;
      const transporter = nodemailer.createTransport({
        host: smtp.host,
        port: smtp.port,
        secure: false,
        requireTLS: true,
        tls: { ca: env.emulator.caPem },
        auth: { type: "OAuth2", user: SUPPORT, accessToken: token },
      });
      const subject = `via smtp ${randomBytes(4).toString("hex")}`;
      const attachment = randomBytes(5000);
      await transporter.sendMail({
        from: SUPPORT,
        to: SUPPORT,
        subject,
        text: "sent over SMTP",
        attachments: [{ filename: "r.bin", content: attachment }],
      });
      transporter.close();
      const [received] = await waitForSubject(subject);
      expect(received).toBeDefined();
      const message = await imap.getMessage(received!.id);
      expect(message.text?.trim()).toBe("sent over SMTP");
      expect(Buffer.from(message.attachments[0]!.content).equals(attachment)).toBe(true);
      expect(await waitForSubject(subject, "sent")).toHaveLength(1);
    });

    it("mail sent with Graph sendMail is read back over IMAP", async () => {
      const auth = emulatorProvider(env.emulator);
      const { token } = await auth.getAccessToken("graph");
      const subject = `via graph ${randomBytes(4).toString("hex")}`;
      const body = JSON.stringify({
        message: {
          subject,
          body: { contentType: "Text", content: "sent with Graph" },
          toRecipients: [{ emailAddress: { address: SUPPORT } }],
        },
      });
      const status = await new Promise<number>((resolve, reject) => {
        const req = request(
          `${env.emulator.cloud.graphOrigin}/v1.0/me/sendMail`,
          {
            method: "POST",
            ca: env.emulator.caPem,
            headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
          },
          (res) => {
            res.resume();
            res.on("end", () => resolve(res.statusCode ?? 0));
          },
        );
        req.on("error", reject);
        req.end(body);
      });
      expect(status).toBe(202);
      const [received] = await waitForSubject(subject);
      expect((await imap.getMessage(received!.id)).text?.trim()).toBe("sent with Graph");
    });

    it.skipIf(!curlSpeaks("imaps"))(
      "curl reads a message over IMAPS with an OAuth bearer token",
      async () => {
        const subject = `via curl ${randomBytes(4).toString("hex")}`;
        await deliver(env, SUPPORT, { to: SUPPORT, subject, text: "read by curl" });
        const [summary] = await waitForSubject(subject);
        const { token } = await emulatorProvider(env.emulator).getAccessToken("outlook");
        const result = await curl(
          [
            `url = "imaps://${env.host}:${env.port}/INBOX;UID=${summary!.uid}"`,
            `user = "${SUPPORT}"`,
            `oauth2-bearer = "${token}"`,
            // No `login-options = "AUTH=XOAUTH2"`: curl before 8.6 ignores it next to a bearer token and
            // takes OAUTHBEARER whenever offered (curl/curl#10259). Exchange offers only XOAUTH2.
            `cacert = "${env.emulator.caPath}"`,
            "silent",
            "show-error",
          ].join("\n"),
        );
        expect(result.stderr).toBe("");
        expect(result.code).toBe(0);
        expect(result.stdout).toContain(`Subject: ${subject}`);
        expect(result.stdout).toContain("read by curl");
      },
    );
  },
);
