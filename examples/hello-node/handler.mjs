// hello-node: a Mote process function in JavaScript (Node 20, ESM).
//
// Mote provides the SDK: deploy this directory alone with the handler
//   node node_modules/mote/bootstrap.mjs handler.handler
// (see mote.json) and `import { kv } from "mote"` resolves to it.
import { kv } from "mote";

export async function handler(event, context) {
  const name = event && event.name;
  if (!name) throw new TypeError("name is required");
  console.log(`greeting ${name}`);
  const greeting = `hello ${name}`;
  if (event.store) {
    // A host call: keep the greeting in the "greetings" bucket (the
    // function's config must allow writing it).
    await kv.put("greetings", name, greeting);
  }
  return { greeting, request_id: context.awsRequestId, function: context.functionName };
}
