import { describe, expect, it } from "vitest";
import { readHeaderFields } from "../src/header-fields.js";

const source = (...lines: string[]) => Buffer.from(lines.join("\r\n"));

describe("readHeaderFields", () => {
  it("reads Subject, From, To, Cc and Message-ID, whatever the case of their names", () => {
    const fields = readHeaderFields(
      source(
        "Received: from x by y",
        "FROM: Customer 7 <customer7@fabrikam.com>",
        "to: Contoso Support <support@contoso.com>, b@contoso.com",
        "Cc: c@contoso.com",
        "subject: Ticket #7",
        "Message-Id: <abc@fabrikam.com>",
        "",
        "body",
      ),
    );
    expect(fields).toEqual({
      subject: "Ticket #7",
      from: { address: "customer7@fabrikam.com", name: "Customer 7" },
      to: [{ address: "support@contoso.com", name: "Contoso Support" }, { address: "b@contoso.com" }],
      cc: [{ address: "c@contoso.com" }],
      messageId: "<abc@fabrikam.com>",
    });
  });

  it("unfolds folded fields, keeps the first occurrence and stops at the end of the header", () => {
    const fields = readHeaderFields(
      Buffer.from(
        "Subject: a long\n\tsubject\nSubject: second\nTo: a@x.com,\n b@x.com\n\nSubject: in the body\nFrom: body@x.com\n",
      ),
    );
    expect(fields.subject).toBe("a long\tsubject");
    expect(fields.to.map((a) => a.address)).toEqual(["a@x.com", "b@x.com"]);
    expect(fields.from).toBeUndefined();
  });

  it("gives an empty subject and lists for a message without those fields, and ignores look-alikes", () => {
    expect(readHeaderFields(source("X-Subject: no", "Tox: no", "", "x"))).toEqual({
      subject: "",
      to: [],
      cc: [],
    });
    expect(readHeaderFields(new Uint8Array())).toEqual({ subject: "", to: [], cc: [] });
  });

  it("decodes encoded words and reads raw UTF-8", () => {
    const fields = readHeaderFields(
      source(
        "Subject: =?UTF-8?B?VMOkc3Q=?= =?utf-8?q?_f=C3=BCr?= you",
        "From: =?iso-8859-1?q?J=F6rg?= <j@x.de>",
        "To: Zoë <zoe@x.de>",
        "",
      ),
    );
    expect(fields.subject).toBe("Täst für you");
    expect(fields.from).toEqual({ address: "j@x.de", name: "Jörg" });
    expect(fields.to).toEqual([{ address: "zoe@x.de", name: "Zoë" }]);
  });
});
