// Verifies captured webhook deliveries with the Standard Webhooks reference library,
// as a receiving MIS would. Input (file given as the argument): one JSON object per
// line, {secret, id, timestamp, signature, body}. Prints "verified N" and exits 0 when
// every delivery verifies; otherwise names the first that does not and exits 1.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { Webhook } = require("standardwebhooks");

const lines = readFileSync(process.argv[2], "utf8").split("\n").filter((l) => l.trim());
let n = 0;
for (const line of lines) {
  const d = JSON.parse(line);
  const wh = new Webhook(d.secret.replace(/^whsec_/, ""));
  try {
    wh.verify(d.body, {
      "webhook-id": d.id,
      "webhook-timestamp": d.timestamp,
      "webhook-signature": d.signature,
    });
    n++;
  } catch (e) {
    console.log(`delivery ${d.id} did not verify: ${e.message}`);
    process.exit(1);
  }
}
console.log(`verified ${n}`);
