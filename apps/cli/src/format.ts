import { type Address, formatAddress } from "@m365-mail/core";

const two = (n: number) => String(n).padStart(2, "0");

/** Local date and time, minute precision: what a person compares with their own calendar. */
export function formatDate(date: Date | undefined): string {
  if (!date || Number.isNaN(date.getTime())) return "";
  return `${date.getFullYear()}-${two(date.getMonth() + 1)}-${two(date.getDate())} ${two(date.getHours())}:${two(date.getMinutes())}`;
}

export function formatAddresses(addresses: readonly Address[] | undefined): string {
  // Graph repeats the address as the name when there is none: show it once.
  return (addresses ?? [])
    .map((a) => (a.name && a.name.toLowerCase() !== a.address.toLowerCase() ? formatAddress(a) : a.address))
    .join(", ");
}

/** A readable rendering of an HTML body for the terminal when there is no text part. */
export function htmlToText(html: string): string {
  return html
    .replace(/<(script|style)[\s\S]*?<\/\1>/gi, "")
    .replace(/<br\s*\/?>/gi, "\n")
    .replace(/<\/(p|div|li|tr|h[1-6])>/gi, "\n")
    .replace(/<[^>]+>/g, "")
    .replace(/&nbsp;/g, " ")
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, "&")
    .replace(/\n{3,}/g, "\n\n")
    .trim();
}
