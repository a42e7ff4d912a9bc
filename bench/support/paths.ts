import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root. */
export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
/** The built CLI (`npm run build`). */
export const CLI = join(REPO_ROOT, "dist", "cli", "main.js");
/** The test CA and the upstream certificate it signed (SANs include localhost). */
export const FIXTURES = join(REPO_ROOT, "test", "proxy", "fixtures");
