import type { AttachmentInfo } from "@m365-mail/core";
import type { MessageStructureObject } from "imapflow";

/**
 * The attachments of a BODYSTRUCTURE, in order: leaf parts with a disposition of "attachment", and
 * named non-text parts (inline images). The id is the IMAP part number (`BODY[2]`, `BODY[1.2]`), which
 * `downloadAttachment` fetches on its own, decoded, as a stream.
 */
export function attachmentParts(root: MessageStructureObject | undefined): AttachmentInfo[] {
  const found: AttachmentInfo[] = [];
  const walk = (node: MessageStructureObject, path: string) => {
    if (node.childNodes?.length) {
      for (const [i, child] of node.childNodes.entries()) {
        walk(child, child.part ?? `${path ? `${path}.` : ""}${i + 1}`);
      }
      return;
    }
    const disposition = node.disposition?.toLowerCase();
    const filename = node.dispositionParameters?.filename ?? node.parameters?.name;
    const isAttachment =
      disposition === "attachment" || (Boolean(filename) && !node.type.startsWith("text/"));
    if (!isAttachment) return;
    found.push({
      id: node.part ?? (path || "1"),
      filename: filename ?? `attachment-${found.length + 1}`,
      contentType: node.type,
      ...(node.size !== undefined ? { size: decodedSize(node.size, node.encoding) } : {}),
      ...(disposition === "inline" ? { inline: true } : {}),
    });
  };
  if (root) walk(root, root.part ?? "");
  return found;
}

/** BODYSTRUCTURE gives the encoded size; base64 lines of 76 characters + CRLF hold 57 bytes. An estimate. */
function decodedSize(encoded: number, encoding: string | undefined): number {
  return encoding?.toLowerCase() === "base64" ? Math.floor((encoded * 57) / 78) : encoded;
}
