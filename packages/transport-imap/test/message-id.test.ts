import { M365MailError } from "@m365-mail/core";
import { describe, expect, it } from "vitest";
import { formatMessageId, parseMessageId, uidSet } from "../src/message-id.js";

describe("message ids", () => {
  it("round-trips folder, UIDVALIDITY and UID", () => {
    const id = formatMessageId({ folder: "INBOX", uidValidity: 1700000000n, uid: 42 });
    expect(id).toBe("INBOX:1700000000:42");
    expect(parseMessageId(id)).toEqual({ folder: "INBOX", uidValidity: 1700000000n, uid: 42 });
  });

  it("keeps folder names that contain colons and spaces", () => {
    const ref = { folder: "Projects/Q3: plans", uidValidity: 7n, uid: 3 };
    expect(parseMessageId(formatMessageId(ref))).toEqual(ref);
  });

  it("refuses ids from other transports with CONFIG_INVALID", () => {
    for (const bad of ["AAMkAGI2TG93AAA=", "INBOX:12", "INBOX:1:0", ""]) {
      expect(() => parseMessageId(bad)).toThrow(M365MailError);
    }
  });
});

describe("uidSet", () => {
  it("compresses runs and sorts", () => {
    expect(uidSet([5, 1, 2, 3, 9, 10])).toBe("1:3,5,9:10");
    expect(uidSet([7])).toBe("7");
    expect(uidSet([])).toBe("");
  });
});
