/**
 * Every way an IMAP client may spell its login, over a raw socket: atoms, quoted strings with `\"` and
 * `\\`, synchronising `{n}` and non-synchronising `{n+}` literals, AUTHENTICATE PLAIN inline, two-step
 * and cancelled, commands pipelined behind the login; and what the bridge answers to malformed ones.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FrontDoor } from "../src/front-door.js";
import { startImapFrontDoor } from "../src/imap/imap-front-door.js";
import {
  closeAll,
  dovecotMissing,
  frontDoorOptions,
  RawClient,
  type RelayEnv,
  startRelayEnv,
} from "./relay-helpers.js";

const SUPPORT = "support@contoso.com";
const ALICE = "alice@contoso.com";
const DEMO = "Demo-Passw0rd!";
// A password that needs quoting and escaping: a space, a double quote and a backslash.
const TRICKY = 'Pa ss"wo\\rd!1';
const quote = (value: string) => `"${value.replace(/(["\\])/g, "\\$1")}"`;
const bytes = (value: string) => Buffer.byteLength(value);
const plain = (user: string, password: string) => Buffer.from(`\0${user}\0${password}`).toString("base64");

describe.skipIf(dovecotMissing)("IMAP login forms (raw socket)", () => {
  let env: RelayEnv;
  let door: FrontDoor;
  beforeAll(async () => {
    env = await startRelayEnv("m365-bridge-imap-forms-");
    env.emulator.admin.updateUser(ALICE, { password: TRICKY });
    door = await startImapFrontDoor(frontDoorOptions(env, "imap", { security: "plain" }));
  });
  afterAll(async () => {
    await closeAll([door]);
    await env?.stop();
  });

  const open = async () => {
    const client = await RawClient.open(door.address.port);
    await client.until(/^\* OK .*\r\n/m);
    return client;
  };
  /** After login the server is Dovecot: SELECT works and LOGOUT gets its BYE. */
  const expectRelayed = async (client: RawClient, from: number) => {
    client.send("s SELECT INBOX\r\nz LOGOUT\r\n");
    const text = await client.until(/^z OK .*\r\n/m, 10_000, from);
    expect(text).toMatch(/^s OK \[READ-WRITE\]/m);
    expect(text).toMatch(/^\* BYE /m);
    await client.waitClosed();
  };

  it("atoms", async () => {
    const client = await open();
    client.send(`a1 LOGIN ${SUPPORT} ${DEMO}\r\n`);
    const answer = await client.until(/^a1 (OK|NO|BAD) .*\r\n/m);
    expect(answer).toMatch(/^a1 OK \[CAPABILITY [^\]]*\bIMAP4rev1\b[^\]]*\] LOGIN completed\./m);
    // Extensions the bridge knows nothing about work, since it only copies bytes (NAMESPACE here).
    const mark = client.text.length;
    client.send("c1 NAMESPACE\r\n");
    const answered = await client.until(/^c1 (OK|NO|BAD) .*\r\n/m, 10_000, mark);
    expect(answered).toMatch(/^\* NAMESPACE \(\("" "\/"\)\)/m);
    expect(answered).toMatch(/^c1 OK /m);
    await expectRelayed(client, client.text.length);
  });

  it('quoted strings with \\" and \\\\ escapes', async () => {
    const client = await open();
    client.send(`a2 LOGIN ${quote(ALICE)} ${quote(TRICKY)}\r\n`);
    await client.until(/^a2 OK .*\r\n/m);
    await expectRelayed(client, client.text.length);
  });

  it("synchronising literals {n}: the bridge says + before each", async () => {
    const client = await open();
    client.send(`a3 LOGIN {${bytes(ALICE)}}\r\n`);
    let mark = client.text.length;
    await client.until(/^\+ .*\r\n/m, 5000, mark);
    mark = client.text.length;
    client.send(`${ALICE} {${bytes(TRICKY)}}\r\n`);
    await client.until(/^\+ .*\r\n/m, 5000, mark);
    client.send(`${TRICKY}\r\n`);
    await client.until(/^a3 OK .*\r\n/m, 10_000, mark);
    await expectRelayed(client, client.text.length);
  });

  it("non-synchronising literals {n+} in one write, with commands pipelined behind the login", async () => {
    const client = await open();
    const mark = client.text.length;
    client.send(
      `a4 LOGIN {${bytes(ALICE)}+}\r\n${ALICE} {${bytes(TRICKY)}+}\r\n${TRICKY}\r\ns SELECT INBOX\r\nz LOGOUT\r\n`,
    );
    const text = await client.until(/^z OK .*\r\n/m, 10_000, mark);
    expect(text).not.toMatch(/^\+ /m);
    expect(text).toMatch(/^a4 OK .*\r\n[\s\S]*^s OK \[READ-WRITE\]/m);
    await client.waitClosed();
  });

  it("a quoted user name with a literal password", async () => {
    const client = await open();
    client.send(`a5 LOGIN ${quote(ALICE)} {${bytes(TRICKY)}+}\r\n${TRICKY}\r\n`);
    await client.until(/^a5 OK .*\r\n/m);
    await expectRelayed(client, client.text.length);
  });

  it("AUTHENTICATE PLAIN with an initial response (SASL-IR), two-step, and cancelled with *", async () => {
    const inline = await open();
    inline.send(`b1 AUTHENTICATE PLAIN ${plain(ALICE, TRICKY)}\r\n`);
    await inline.until(/^b1 OK \[CAPABILITY .*\r\n/m);
    await expectRelayed(inline, inline.text.length);

    const twoStep = await open();
    twoStep.send("b2 AUTHENTICATE PLAIN\r\n");
    await twoStep.until(/^\+ \r\n/m);
    twoStep.send(`${plain(SUPPORT, DEMO)}\r\n`);
    await twoStep.until(/^b2 OK .*\r\n/m);
    await expectRelayed(twoStep, twoStep.text.length);

    const cancelled = await open();
    cancelled.send("b3 AUTHENTICATE PLAIN\r\n");
    await cancelled.until(/^\+ \r\n/m);
    cancelled.send("*\r\n");
    await cancelled.until(/^b3 BAD .*cancelled.*\r\n/m);
    // Still before login, still usable.
    cancelled.send(`b4 LOGIN ${SUPPORT} ${DEMO}\r\n`);
    await cancelled.until(/^b4 OK .*\r\n/m);
    await expectRelayed(cancelled, cancelled.text.length);
  });

  it("malformed and unknown commands get BAD/NO and the session stays usable; a wrong password gets NO [AUTHENTICATIONFAILED]", async () => {
    const client = await open();
    const exchange = async (command: string, answer: RegExp) => {
      const mark = client.text.length;
      client.send(`${command}\r\n`);
      return client.until(answer, 10_000, mark);
    };
    await exchange("c1 LOGIN onlyone", /^c1 BAD .*\r\n/m);
    await exchange(`c2 LOGIN "unterminated ${DEMO}`, /^c2 BAD Unterminated quoted string\.\r\n/m);
    await exchange('c3 LOGIN "bad\\xescape" pw', /^c3 BAD Invalid escape.*\r\n/m);
    await exchange("c4 AUTHENTICATE CRAM-MD5", /^c4 NO .*PLAIN.*\r\n/m);
    await exchange("c5 SELECT INBOX", /^c5 BAD .*before login.*\r\n/m);
    await exchange("c6 AUTHENTICATE PLAIN !!notbase64!!", /^c6 BAD .*\r\n/m);
    await exchange("c7 CAPABILITY", /^c7 OK .*\r\n/m);
    expect(client.text).toMatch(/^\* CAPABILITY IMAP4rev1 SASL-IR LITERAL\+ ID AUTH=PLAIN\r\n/m);
    await exchange("c8 ID NIL", /^c8 OK .*\r\n/m);
    await exchange("c9 NOOP", /^c9 OK .*\r\n/m);
    const refused = await exchange(`d1 LOGIN ${SUPPORT} wrong-password-5`, /^d1 (OK|NO|BAD) .*\r\n/m);
    expect(refused).toMatch(/^d1 NO \[AUTHENTICATIONFAILED\] /m);
    expect(refused).not.toContain("wrong-password-5");
    await exchange(`d2 LOGIN ${SUPPORT} ${DEMO}`, /^d2 OK .*\r\n/m);
    await expectRelayed(client, client.text.length);
  });

  it("sign-in problems that need a person are NO [AUTHENTICATIONFAILED] with the reason", async () => {
    const client = await open();
    client.send(`e1 LOGIN mfa@contoso.com ${DEMO}\r\n`);
    const answer = await client.until(/^e1 (OK|NO|BAD) .*\r\n/m);
    expect(answer).toMatch(/^e1 NO \[AUTHENTICATIONFAILED\] .*(MFA|multi-factor)/im);
    // IMAP turned off for the mailbox: Exchange refuses the token; the bridge says why.
    client.send(`e2 LOGIN noimap@contoso.com ${DEMO}\r\n`);
    const off = await client.until(/^e2 (OK|NO|BAD) .*\r\n/m);
    expect(off).toMatch(/^e2 NO \[AUTHENTICATIONFAILED\] .*IMAP/m);
    client.send("e3 LOGOUT\r\n");
    await client.waitClosed();
    expect(
      env.records.some((r) => r.result === "upstream-failed" && r.errorCode === "PROTOCOL_DISABLED"),
    ).toBe(true);
  });
});
