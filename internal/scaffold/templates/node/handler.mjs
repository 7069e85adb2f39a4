// A Mote process function in JavaScript (Node 20, ESM). Mote provides the
// SDK to deployed functions: `import { kv } from "mote"` resolves to it.
import { kv } from "mote"; // eslint-disable-line no-unused-vars

export async function handler(event, context) {
  const name = (event && event.name) || "world";
  console.log(`invocation ${context.awsRequestId} greets ${name}`);
  return { greeting: `hello, ${name}`, version: context.functionVersion };
}
