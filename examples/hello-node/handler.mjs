// hello-node: a Mote process function in JavaScript (Node 20, ESM).
//
// Deploy this directory with the handler
//   node bootstrap.mjs handler.handler
// where bootstrap.mjs is sdk/js/bootstrap.mjs (copy sdk/js here as
// node_modules/mote to `import { call } from "mote"` as well).

export async function handler(event, context) {
  const name = event && event.name;
  if (!name) throw new TypeError("name is required");
  console.log(`greeting ${name}`);
  const greeting = `hello ${name}`;
  if (event.store) {
    // A host call: keep the greeting in the function's KV store.
    await context.call("kv.put", name, greeting);
  }
  return { greeting, request_id: context.awsRequestId, function: context.functionName };
}
