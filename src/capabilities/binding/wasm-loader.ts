import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { setFlagsFromString } from "node:v8";

/** The binding's classes, typed from the package's own declarations. */
export type BiscuitBinding = typeof import("@biscuit-auth/biscuit-wasm");

/** A loaded binding plus the instance's linear memory (watched by the pool to recycle workers). */
export interface LoadedBiscuit {
  binding: BiscuitBinding;
  memory: WebAssembly.Memory;
  /** The compiled module, so that later workers can skip compilation. */
  module: WebAssembly.Module;
}

const PACKAGE = "@biscuit-auth/biscuit-wasm";
const GLUE_NAME = "./biscuit_bg.js";

/**
 * Find the package's `module/` directory. The package only exports `./module/biscuit.js` (which imports the .wasm and
 * so cannot load in plain Node 20); we need the files next to it.
 */
function moduleDirectory(): string {
  const resolve = (import.meta as { resolve?: (s: string) => string }).resolve;
  if (typeof resolve === "function") {
    try {
      return dirname(fileURLToPath(resolve(PACKAGE)));
    } catch {
      // fall through to the directory walk (some test runners do not implement import.meta.resolve)
    }
  }
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, "node_modules", ...PACKAGE.split("/"), "module");
    if (existsSync(join(candidate, "biscuit_bg.wasm"))) return candidate;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`cannot find ${PACKAGE}/module/biscuit_bg.wasm`);
    dir = parent;
  }
}

/**
 * Load the Biscuit binding without `--experimental-wasm-modules`: compile `biscuit_bg.wasm` ourselves, instantiate it
 * with the package's `biscuit_bg.js` glue as its import object, then `__wbg_set_wasm` + `__wbindgen_start()`.
 *
 * Lazy wasm compilation is switched off first (a lazily compiled first authorization can exceed its run limit), and
 * the "biscuit-wasm loading" line the start function prints is swallowed so that stdout stays clean.
 *
 * Each call returns a fresh glue + instance only in a fresh module graph: call it once per thread.
 */
export async function loadBiscuit(precompiled?: WebAssembly.Module): Promise<LoadedBiscuit> {
  setFlagsFromString("--no-wasm-lazy-compilation");
  const dir = moduleDirectory();
  const module = precompiled ?? new WebAssembly.Module(readFileSync(join(dir, "biscuit_bg.wasm")));

  const glue = (await import(pathToFileURL(join(dir, "biscuit_bg.js")).href)) as Record<string, unknown>;
  const importObject: WebAssembly.Imports = {};
  for (const { module: name } of WebAssembly.Module.imports(module)) {
    if (importObject[name]) continue;
    importObject[name] =
      name === GLUE_NAME
        ? (glue as WebAssembly.ModuleImports)
        : ((await import(pathToFileURL(join(dir, name)).href)) as WebAssembly.ModuleImports);
  }
  const instance = new WebAssembly.Instance(module, importObject);
  const exports = instance.exports as Record<string, unknown> & { memory: WebAssembly.Memory; __wbindgen_start(): void };

  (glue.__wbg_set_wasm as (w: unknown) => void)(exports);
  const log = console.log;
  console.log = () => {};
  try {
    exports.__wbindgen_start();
  } finally {
    console.log = log;
  }
  return { binding: glue as unknown as BiscuitBinding, memory: exports.memory, module };
}
