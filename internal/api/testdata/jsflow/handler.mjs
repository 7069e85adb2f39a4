// A Node function that composes wasm functions through the flow API.
import { invoke, map, invokeAsync, awaitAll, MoteError } from "mote";

export async function handler(event, context) {
  const one = (await invoke("echo", "echo:sync")).toString();
  const mapped = (await map("echo", ["echo:m0", "echo:m1", "echo:m2"])).map((r) => r.output.toString());
  const handles = [await invokeAsync("echo", "echo:a0"), await invokeAsync("echo", "echo:a1")];
  const awaited = (await awaitAll(handles, 5000)).map((r) => r.output.toString());
  let failed = "no error";
  try {
    await invoke("echo", "fail:boom");
  } catch (e) {
    failed = e instanceof MoteError ? e.code : String(e);
  }
  return { sync: one, map: mapped, async: awaited, failed };
}
