// The API contract as a test oracle: checks HTTP answers and webhook bodies against
// api/openapi.yaml with Ajv (JSON Schema 2020-12, the dialect of OpenAPI 3.1).
//
//   node scripts/contract.mjs serve SOCKET   answer checks over a Unix socket (make check)
//   node scripts/contract.mjs check FILE     check each JSON line of FILE, print violations
//
// A check is one JSON object per line:
//   {"kind":"response","method":"GET","target":"/v1/me?x=1","status":200,
//    "headers":{"content-type":"..."},"body_b64":"..."}
//   {"kind":"webhook","headers":{...},"body_b64":"..."}
// and its answer one line: {"errors":["..."]}, empty when the exchange matches.
//
// What is checked for an answer: its path and method name an operation (or the answer is
// a problem: 404 for an unknown path, 405 for an unknown method); its status is declared
// by that operation; its media type is one the status declares (no body where none is
// declared); a JSON body is valid UTF-8 and valid against the declared schema (closed
// schemas refuse undeclared members); every declared header marked required is present
// and every declared header that is present matches its schema. A HEAD answer is checked
// as the GET operation's, with no body.
import { readFileSync, unlinkSync } from "node:fs";
import { createServer } from "node:net";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const Ajv2020 = require("ajv/dist/2020").default;
const addFormats = require("ajv-formats");
const YAML = require("yaml");

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const spec = YAML.parse(readFileSync(join(root, "api/openapi.yaml"), "utf8"));
const SPEC_ID = "https://dualreg.invalid/openapi.yaml";

const ajv = new Ajv2020({ allErrors: true, strict: false, validateFormats: true });
addFormats(ajv);
ajv.addSchema({ ...spec, $id: SPEC_ID });

const escape = (s) => s.replace(/~/g, "~0").replace(/\//g, "~1");
const validators = new Map();
function validatorAt(pointer) {
  let v = validators.get(pointer);
  if (!v) {
    v = ajv.compile({ $ref: `${SPEC_ID}#${pointer}` });
    validators.set(pointer, v);
  }
  return v;
}

// Follows a local $ref (#/components/...) to the object and its JSON pointer.
function deref(obj, pointer) {
  while (obj && typeof obj.$ref === "string" && obj.$ref.startsWith("#/")) {
    pointer = obj.$ref.slice(1);
    obj = pointer
      .split("/")
      .slice(1)
      .reduce((o, k) => o?.[k.replace(/~1/g, "/").replace(/~0/g, "~")], spec);
  }
  return [obj, pointer];
}

// Path templates, most literal segments first, so /v1/schools/{urn}/sync wins over a
// template with a parameter in that place.
const templates = Object.keys(spec.paths)
  .map((t) => ({ t, segs: t.split("/").slice(1) }))
  .sort((a, b) => b.segs.filter((s) => !s.startsWith("{")).length -
                  a.segs.filter((s) => !s.startsWith("{")).length);

function matchPath(path) {
  const segs = path.split("/").slice(1);
  for (const { t, segs: ts } of templates) {
    if (ts.length !== segs.length) continue;
    if (ts.every((s, i) => s.startsWith("{") ? segs[i] !== "" : s === segs[i])) return t;
  }
  return null;
}

const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
const problemPointer = "/components/schemas/Problem";
const utf8 = new TextDecoder("utf-8", { fatal: true });

function mediaType(headers) {
  return (headers["content-type"] || "").split(";")[0].trim().toLowerCase();
}

function checkBody(where, mt, schemaPointer, bodyBuf, errors) {
  let text;
  try {
    text = utf8.decode(bodyBuf);
  } catch {
    errors.push(`${where}: the body is not valid UTF-8`);
    return;
  }
  if (!(mt === "application/json" || mt.endsWith("+json"))) return;
  let doc;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    errors.push(`${where}: the body is not JSON (${e.message})`);
    return;
  }
  if (!schemaPointer) return;
  const v = validatorAt(schemaPointer);
  if (!v(doc)) {
    for (const e of v.errors.slice(0, 8)) {
      const extra = e.params?.additionalProperty ? ` (${e.params.additionalProperty})` : "";
      errors.push(`${where}: body${e.instancePath || ""} ${e.message}${extra} [schema ${e.schemaPath}]`);
    }
  }
}

function checkResponseObject(where, respObj, respPointer, ex, bodyBuf, isHead, errors) {
  const [resp, ptr] = deref(respObj, respPointer);
  for (const [name, hdr0] of Object.entries(resp.headers || {})) {
    const [hdr, hptr] = deref(hdr0, `${ptr}/headers/${escape(name)}`);
    const value = ex.headers[name.toLowerCase()];
    if (value === undefined) {
      if (hdr.required) errors.push(`${where}: required header ${name} is missing`);
      continue;
    }
    if (hdr.schema) {
      const [hs] = deref(hdr.schema, `${hptr}/schema`);
      let v = value;
      if (hs.type === "integer" || hs.type === "number") {
        v = /^-?\d+(\.\d+)?$/.test(value) ? Number(value) : value;
      }
      const val = validatorAt(`${hptr}/schema`);
      if (!val(v)) errors.push(`${where}: header ${name}: ${JSON.stringify(value)} ${val.errors[0].message}`);
    }
  }
  const mt = mediaType(ex.headers);
  const content = resp.content || {};
  if (isHead) {
    if (bodyBuf.length > 0) errors.push(`${where}: a HEAD answer carries a body`);
    return;
  }
  if (Object.keys(content).length === 0) {
    if (bodyBuf.length > 0) errors.push(`${where}: a body where the contract declares none`);
    return;
  }
  if (!(mt in content)) {
    errors.push(`${where}: media type "${mt}" is not declared (declared: ${Object.keys(content).join(", ")})`);
    return;
  }
  const schema = content[mt].schema;
  checkBody(where, mt, schema ? `${ptr}/content/${escape(mt)}/schema` : null, bodyBuf, errors);
}

function checkResponse(ex) {
  const errors = [];
  const url = new URL(ex.target, "http://x");
  const where = `${ex.method} ${url.pathname} -> ${ex.status}`;
  const bodyBuf = Buffer.from(ex.body_b64 || "", "base64");
  const isHead = ex.method === "HEAD";
  const tpl = matchPath(url.pathname);
  const method = isHead ? "get" : ex.method.toLowerCase();
  const op = tpl ? spec.paths[tpl][method] : undefined;
  if (!op && tpl && ex.method === "OPTIONS") {
    // OPTIONS on a listed path: 204, the methods in Allow, no body.
    if (ex.status !== 204) errors.push(`${where}: OPTIONS answers 204`);
    if (!ex.headers["allow"]) errors.push(`${where}: OPTIONS without Allow`);
    if (bodyBuf.length > 0) errors.push(`${where}: OPTIONS with a body`);
    return errors;
  }
  if (!op) {
    // Outside the contract's operations the only answers are problems: 404 (no such
    // path), 405 (no such method here, with Allow), or a request refused before routing.
    const allowed = tpl ? [405, 400, 413, 431, 503] : [404, 400, 405, 413, 431, 503];
    if (!allowed.includes(ex.status))
      errors.push(`${where}: no operation ${ex.method} ${tpl ?? url.pathname} declares this answer`);
    if (ex.status === 405 && !ex.headers["allow"]) errors.push(`${where}: 405 without Allow`);
    if (!isHead) {
      const mt = mediaType(ex.headers);
      if (mt !== "application/problem+json") errors.push(`${where}: media type "${mt}" is not a problem`);
      else checkBody(where, mt, problemPointer, bodyBuf, errors);
    }
    return errors;
  }
  const opPointer = `/paths/${escape(tpl)}/${method}`;
  const responses = op.responses || {};
  const code = String(ex.status);
  const range = `${code[0]}XX`;
  const key = code in responses ? code : range in responses ? range : "default" in responses ? "default" : null;
  if (!key) {
    errors.push(`${where}: status ${code} is not declared for ${method.toUpperCase()} ${tpl} (declared: ${Object.keys(responses).join(", ")})`);
    return errors;
  }
  checkResponseObject(where, responses[key], `${opPointer}/responses/${escape(key)}`, ex, bodyBuf, isHead, errors);
  return errors;
}

function checkWebhook(ex) {
  const errors = [];
  const hooks = spec.webhooks || {};
  const bodyBuf = Buffer.from(ex.body_b64 || "", "base64");
  const mt = mediaType(ex.headers);
  for (const [name, item] of Object.entries(hooks)) {
    const post = item.post;
    if (!post?.requestBody) continue;
    const [rb, rbp] = deref(post.requestBody, `/webhooks/${escape(name)}/post/requestBody`);
    const where = `webhook ${name}`;
    if (!(mt in (rb.content || {}))) {
      errors.push(`${where}: media type "${mt}" is not declared`);
      return errors;
    }
    checkBody(where, mt, `${rbp}/content/${escape(mt)}/schema`, bodyBuf, errors);
    for (const h of ["webhook-id", "webhook-timestamp", "webhook-signature"])
      if (!ex.headers[h]) errors.push(`${where}: header ${h} is missing`);
    return errors;
  }
  return ["the contract declares no webhooks"];
}

function check(line) {
  let ex;
  try {
    ex = JSON.parse(line);
  } catch (e) {
    return [`unreadable check: ${e.message}`];
  }
  try {
    return ex.kind === "webhook" ? checkWebhook(ex) : checkResponse(ex);
  } catch (e) {
    return [`the check itself failed: ${e.stack}`];
  }
}

const [cmd, arg] = process.argv.slice(2);
if (cmd === "serve") {
  try { unlinkSync(arg); } catch {}
  const server = createServer((sock) => {
    let buf = "";
    sock.setEncoding("utf8");
    sock.on("data", (d) => {
      buf += d;
      const nl = buf.indexOf("\n");
      if (nl < 0) return;
      sock.end(JSON.stringify({ errors: check(buf.slice(0, nl)) }) + "\n");
    });
    sock.on("error", () => {});
  });
  server.listen(arg, () => process.stdout.write("ready\n"));
  for (const s of ["SIGTERM", "SIGINT", "SIGHUP"]) process.on(s, () => { server.close(); process.exit(0); });
} else if (cmd === "check") {
  let bad = 0;
  for (const line of readFileSync(arg, "utf8").split("\n").filter((l) => l.trim())) {
    const errors = check(line);
    if (errors.length) {
      bad++;
      for (const e of errors) console.log(e);
    }
  }
  process.exit(bad ? 1 : 0);
} else {
  console.error("usage: contract.mjs serve SOCKET | check FILE");
  process.exit(2);
}
