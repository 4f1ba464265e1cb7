import { join } from "node:path";
import { buildIfStale, workspaceBuildCommand } from "@m365-mail/test-helpers";

// Some tests run the BUILT server as a user would. In-process code runs from sources (vitest.shared.ts);
// the build is brought up to date first — when this app's src/ or that of a workspace package it loads is
// newer than dist/main.js — so a test never runs code older than the sources beside it.
export default function setup(): void {
  buildIfStale({
    root: join(import.meta.dirname, ".."),
    output: "dist/main.js",
    withWorkspaceDependencies: true,
    command: workspaceBuildCommand("@m365-mail/server"),
  });
}
