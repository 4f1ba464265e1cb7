import { dirname, extname, join, resolve } from "node:path";
import { M365MailError } from "@m365-mail/core";

/**
 * A sender-chosen attachment name as a file name: the last path segment (after `/` or `\`), control
 * characters replaced; a name of only dots (`.`, `..`) or nothing becomes `attachment-<n>`.
 */
export function safeFileName(name: string, index: number): string {
  const last = (name.split(/[\\/]/).pop() ?? "").replace(/[\x00-\x1f\x7f]/g, "_").trim();
  return /^\.*$/.test(last) ? `attachment-${index + 1}` : last;
}

/**
 * The files the attachments are written to, in `dir`, one per attachment and never the same twice:
 * a second `report.txt` becomes `report (2).txt`, then `report (3).txt` (compared without case, as
 * Windows and macOS do). Files already in `dir` are not looked at: saving again replaces them.
 * Throws if a path would leave `dir` — `safeFileName` makes that impossible; this is the last guard.
 */
export function attachmentTargets(dir: string, names: readonly string[]): string[] {
  const root = resolve(dir);
  const taken = new Set<string>();
  return names.map((name, i) => {
    const safe = safeFileName(name, i);
    const ext = extname(safe);
    const stem = safe.slice(0, safe.length - ext.length);
    let candidate = safe;
    for (let n = 2; taken.has(candidate.toLowerCase()); n++) candidate = `${stem} (${n})${ext}`;
    taken.add(candidate.toLowerCase());
    if (dirname(resolve(root, candidate)) !== root) {
      throw new M365MailError("MESSAGE_INVALID", `attachment name "${name}" would be saved outside ${dir}`, {
        source: "cli",
        hint: "Report this: attachment names are made safe before saving.",
      });
    }
    return join(dir, candidate);
  });
}
