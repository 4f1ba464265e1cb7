import { join } from "node:path";
import { buildIfStale } from "@m365-mail/test-helpers";

// The tests run the BUILT command as a user would: build it first when src/ is newer than dist/.
export default function setup(): void {
  buildIfStale({ root: join(import.meta.dirname, ".."), output: "dist/cli.js" });
}
