#!/usr/bin/env node
// The process-function bootstrap: node bootstrap.mjs file.export
//
// Imports file.mjs (else file.js) from the function's directory (the
// working directory, also LAMBDA_TASK_ROOT) and runs its export (default
// handler.handler) under the Runtime API loop. A failure to load is
// reported as an init error.

import path from "node:path";
import fs from "node:fs";
import { pathToFileURL } from "node:url";
import { errorBody, request, start } from "./index.mjs";
import { fetchHandler } from "./http.mjs";

const spec = process.argv[2] || "handler.handler";
const dot = spec.lastIndexOf(".");
const file = dot > 0 ? spec.slice(0, dot) : spec;
const name = dot > 0 ? spec.slice(dot + 1) : "handler";

let handler;
try {
  const base = path.resolve(process.cwd(), file);
  const found = [".mjs", ".js", ""].map((ext) => base + ext).find((p) => fs.existsSync(p));
  if (!found) throw new Error(`cannot find module ${file}(.mjs|.js) in ${process.cwd()}`);
  const mod = await import(pathToFileURL(found).href);
  handler = mod[name];
  // A Workers-style HTTP function: `export function fetch(request)` or
  // `export default { fetch }` (http.mjs).
  if (name === "fetch" && typeof handler === "function") {
    handler = fetchHandler(handler);
  } else if (name === "default" && handler && typeof handler.fetch === "function") {
    handler = fetchHandler(handler.fetch.bind(handler));
  }
  if (typeof handler !== "function") throw new TypeError(`${found} does not export a function ${name}`);
} catch (err) {
  console.error(err);
  await request("POST", "/runtime/init/error", errorBody(err), {
    "Lambda-Runtime-Function-Error-Type": "Runtime.InitError",
  }).catch(() => {});
  process.exit(1);
}
await start(handler);
