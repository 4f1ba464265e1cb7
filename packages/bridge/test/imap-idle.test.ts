/**
 * IMAP IDLE through the relay sees new mail; when the emulator ends the upstream session at token expiry
 * (as Exchange does with `BYE Session invalidated - AccessTokenExpired`), the client sees the BYE and the
 * close, reconnects through the bridge — which signs in upstream with a fresh token — and goes on.
 */
import { randomBytes } from "node:crypto";
import type { TokenProvider } from "@m365-mail/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Authenticate, FrontDoor } from "../src/front-door.js";
import { startImapFrontDoor } from "../src/imap/imap-front-door.js";
import {
  closeAll,
  deliver,
  dovecotMissing,
  frontDoorOptions,
  RawClient,
  type RelayEnv,
  startRelayEnv,
} from "./relay-helpers.js";

const USER = "alice@contoso.com";
const PASSWORD = "Demo-Passw0rd!";
const TOKEN_LIFETIME_S = 8;

describe.skipIf(dovecotMissing)("IMAP IDLE and token expiry through the bridge", () => {
  let env: RelayEnv;
  let door: FrontDoor;
  /** Per login: the tokens its provider handed out, in order. */
  const tokensPerLogin: string[][] = [];
  beforeAll(async () => {
    env = await startRelayEnv("m365-bridge-imap-idle-");
    const authenticate: Authenticate = async (username, password, client) => {
      const signedIn = await env.authenticate(username, password, client);
      const tokens: string[] = [];
      tokensPerLogin.push(tokens);
      const inner = signedIn.auth;
      const recording: TokenProvider = {
        ...inner,
        getAccessToken: async (resource, options) => {
          const token = await inner.getAccessToken(resource, options);
          tokens.push(token.token);
          return token;
        },
      };
      return { ...signedIn, auth: recording };
    };
    door = await startImapFrontDoor(frontDoorOptions(env, "imap", { security: "plain", authenticate }));
  });
  afterAll(async () => {
    env?.emulator.admin.setTokenLifetime(3600);
    await closeAll([door]);
    await env?.stop();
  });

  /** LOGIN, SELECT INBOX, IDLE: returns the client once the server said "+ idling". */
  const idle = async () => {
    const client = await RawClient.open(door.address.port);
    await client.until(/^\* OK .*\r\n/m);
    client.send(`a LOGIN ${USER} ${PASSWORD}\r\n`);
    await client.until(/^a OK .*\r\n/m);
    client.send("b SELECT INBOX\r\n");
    await client.until(/^b OK .*\r\n/m);
    const mark = client.text.length;
    client.send("c IDLE\r\n");
    await client.until(/^\+ .*\r\n/m, 10_000, mark);
    return { client, mark: client.text.length };
  };

  it("IDLE sees new mail; after the upstream session ends at token expiry the client sees BYE, reconnects and continues", async () => {
    env.emulator.admin.setTokenLifetime(TOKEN_LIFETIME_S);
    const kicksBefore = env.emulator.admin.counts()["dovecot.kick.token-expired"] ?? 0;
    const tag = randomBytes(4).toString("hex");

    const first = await idle();
    await deliver(env, USER, `idle ${tag} 1`);
    const exists = await first.client.until(/^\* \d+ EXISTS\r\n/m, 10_000, first.mark);
    expect(exists).toMatch(/EXISTS/);

    // The token (issued at login, TOKEN_LIFETIME_S long) expires: the emulator's Dovecot kicks the user.
    const bye = await first.client.until(/^\* BYE .*\r\n/m, (TOKEN_LIFETIME_S + 10) * 1000, first.mark);
    expect(bye).toMatch(/\* BYE /);
    await first.client.waitClosed(5000);
    expect(
      (env.emulator.admin.counts()["dovecot.kick.token-expired"] ?? 0) - kicksBefore,
    ).toBeGreaterThanOrEqual(1);

    // Reconnect: a new upstream sign-in, with a token that is not the expired one.
    const second = await idle();
    await deliver(env, USER, `idle ${tag} 2`);
    await second.client.until(/^\* \d+ EXISTS\r\n/m, 10_000, second.mark);
    second.client.send("DONE\r\n");
    await second.client.until(/^c OK .*\r\n/m, 10_000, second.mark);
    second.client.send(`d UID SEARCH SUBJECT "idle ${tag}"\r\n`);
    const search = await second.client.until(/^d OK .*\r\n/m, 10_000, second.mark);
    expect(/\* SEARCH ([\d ]+)\r\n/.exec(search)?.[1]?.trim().split(" ")).toHaveLength(2);
    second.client.send("e LOGOUT\r\n");
    await second.client.waitClosed();

    // Each login asked the provider; the second signed in upstream with a token other than the expired one.
    expect(tokensPerLogin).toHaveLength(2);
    const [firstTokens, secondTokens] = tokensPerLogin as [string[], string[]];
    expect(firstTokens.length).toBeGreaterThanOrEqual(1);
    expect(firstTokens).not.toContain(secondTokens.at(-1));
    const sessions = env.records.filter((r) => r.protocol === "imap" && r.account === USER);
    expect(sessions.map((r) => r.result)).toEqual(["ok", "ok"]);
  }, 60_000);

  it("a token the server refuses (revoked) is refreshed once and the login still succeeds", async () => {
    // A long-lived token first, so that only the revocation (not expiry) makes the server refuse it.
    env.emulator.admin.setTokenLifetime(3600);
    const client = await RawClient.open(door.address.port);
    await client.until(/^\* OK .*\r\n/m);
    client.send(`a LOGIN ${USER} ${PASSWORD}\r\n`);
    await client.until(/^a OK .*\r\n/m);
    client.send("b LOGOUT\r\n");
    await client.waitClosed();
    // The provider still holds the access token, which the emulator now refuses; its refresh token is gone too.
    env.emulator.admin.revokeTokens(USER);
    const before = tokensPerLogin.length;
    const again = await RawClient.open(door.address.port);
    await again.until(/^\* OK .*\r\n/m);
    again.send(`a LOGIN ${USER} ${PASSWORD}\r\n`);
    const answer = await again.until(/^a (OK|NO) .*\r\n/m);
    expect(answer).toMatch(/^a OK \[CAPABILITY [^\]]*IDLE/m);
    again.send("b LOGOUT\r\n");
    await again.waitClosed();
    const tokens = tokensPerLogin[before]!;
    expect(tokens).toHaveLength(2);
    expect(tokens[1]).not.toBe(tokens[0]);
  }, 30_000);
});
