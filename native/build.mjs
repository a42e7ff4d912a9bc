#!/usr/bin/env node
// Build capvault's native Biscuit runtime (native/src/lib.rs, biscuit-auth through Node-API) with cargo and put it at
// native/capvault-biscuit.node, where src/capabilities/binding/native-loader.ts looks for it.
//
//   node native/build.mjs            build; fail when cargo is missing or the build fails (CI)
//   node native/build.mjs --optional build when cargo is there; otherwise say so and succeed (npm's postinstall: the
//                                    broker then runs on @biscuit-auth/biscuit-wasm)
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, renameSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const optional = process.argv.includes("--optional");
const out = join(here, "capvault-biscuit.node");

function give(message) {
  if (!optional) {
    console.error(`native runtime: ${message}`);
    process.exit(1);
  }
  console.log(`native runtime: ${message}; capvault will use @biscuit-auth/biscuit-wasm`);
  process.exit(0);
}

if (process.env.CAPVAULT_SKIP_NATIVE_BUILD === "1") give("build skipped (CAPVAULT_SKIP_NATIVE_BUILD=1)");
if (spawnSync("cargo", ["--version"], { stdio: "ignore" }).status !== 0) give("cargo not found");
console.log("native runtime: cargo build --release --locked (biscuit-auth 6.0.0 through Node-API)");
const build = spawnSync("cargo", ["build", "--release", "--locked"], { cwd: here, stdio: "inherit" });
if (build.status !== 0) give(`cargo build failed (exit ${build.status})`);
const library = ["libcapvault_biscuit.so", "libcapvault_biscuit.dylib", "capvault_biscuit.dll"]
  .map((name) => join(here, "target", "release", name))
  .find((path) => existsSync(path));
if (!library) give("cargo built no library");
// Copy then rename, so that a running broker never loads a half-written file.
copyFileSync(library, `${out}.tmp`);
renameSync(`${out}.tmp`, out);
console.log(`native runtime: ${out}`);
