// The staff web app in a real browser: Debian's chromium, headless, driven by
// puppeteer-core (pinned in package-lock.json; it never downloads a browser). Run by the
// Check suite "browser" (tests/integration/check_browser.c), which starts dualregd and
// makes the account; everything it needs comes from the environment:
//
//   DUALREG_WEB_URL         the daemon, http://127.0.0.1:PORT
//   DUALREG_SETUP_LINK      the set-up link dualregctl user add printed ("" for none)
//   DUALREG_USER_EMAIL      that account's email address
//   DUALREG_USER_SCHOOL     the name of its school, as the signed-in page shows it
//   DUALREG_CTL             dualregctl, and DUALREG_CTL_CONF the configuration it reads
//                           (the flow ends by disabling the account)
//   DUALREG_PUPIL_UPN       a pupil of that school dual-registered at the PRU
//   DUALREG_PRU_URN         ... DUALREG_PRU_TOKEN: that PRU, and its API key
//   DUALREG_REQUEST_UPN     ... DUALREG_REQUEST_ID: a pupil of that school the PRU asked
//                           to register (Alan Turing), and the pending registration's id
//   DUALREG_PRU_SETUP_LINK  a set-up link for a member of the PRU's staff, and
//   DUALREG_PRU_USER_EMAIL  that account's email address
//   DUALREG_FAR_SETUP_LINK  a set-up link for a member of staff of Far School, unrelated
//   DUALREG_FAR_URN         to every pupil here, and that school's URN
//   DUALREG_DATABASE_URL    the daemon's database (a session is expired there by SQL)
//   DUALREG_BROWSER_ONLY    pupil,register,sync,access: only those flows after the
//                           requests (default: all)
//   DUALREG_BROWSER_FLOW    "full" (default): set-up, sign-out, sign-in; "static": only
//                           the pages' first views (before the JSON API exists)
//   DUALREG_TEST_TMP        screenshots go to its screenshots/ ...
//   DUALREG_SCREENSHOTS_DIR ... or here when set
//   DUALREG_BROWSER_PROFILE the browser's profile directory (the C test kills any
//                           process still using it)
//   CHROMIUM                the browser (default: chromium on PATH)
//
// At every state of every page: axe-core (WCAG 2.0, 2.1 and 2.2 A and AA) finds nothing,
// no Content-Security-Policy violation and no script error happened, and nothing is
// wider than the window, both at 360x740 (a phone) and 1280x800 (a desktop).
// Exit 0 when everything held; 1 with what failed; every wait is bounded.
import { createHmac } from "node:crypto";
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { pupilPageFlow } from "./pupil_page.mjs";
import { registerFlow, syncFlow } from "./register_page.mjs";
import { accessFlow } from "./access.mjs";

const require = createRequire(import.meta.url);
const puppeteer = require("puppeteer-core");
const AXE_SOURCE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

const env = process.env;
const BASE = env.DUALREG_WEB_URL;
const FLOW = env.DUALREG_BROWSER_FLOW || "full";
const SHOTS = env.DUALREG_SCREENSHOTS_DIR || join(env.DUALREG_TEST_TMP || "/tmp", "screenshots");
// Only the size changes: switching isMobile or hasTouch would make puppeteer reload the
// page, losing the state under test.
const VIEWPORTS = [
  { name: "phone", width: 360, height: 740, deviceScaleFactor: 1 },
  { name: "desktop", width: 1280, height: 800, deviceScaleFactor: 1 },
];
const WAIT_MS = 15000;
const TOTAL_MS = 420000;
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
  "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

let browser = null;

function fail(message) {
  throw new Error(message);
}

function log(message) {
  console.log(`browser: ${message}`);
}

// ---- TOTP (RFC 6238 with RFC 4226's HOTP: HMAC-SHA1, 30 s steps, 6 digits) ----
function base32Decode(text) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = 0;
  let value = 0;
  const out = [];
  for (const c of text.replace(/[\s=]/g, "").toUpperCase()) {
    const i = alphabet.indexOf(c);
    if (i < 0) fail(`the secret ${JSON.stringify(text)} is not base32`);
    value = ((value << 5) | i) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

function totp(secret, step) {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(step));
  const h = createHmac("sha1", base32Decode(secret)).update(msg).digest();
  const o = h[h.length - 1] & 0x0f;
  return String((h.readUInt32BE(o) & 0x7fffffff) % 1000000).padStart(6, "0");
}

const stepNow = () => Math.floor(Date.now() / 30000);

// ---- page checks ----
const problems = []; // script errors and CSP violations, per page

// A page of the browser's default context, or of `context` (another profile's cookies).
async function newPage(context = null) {
  const page = await (context || browser).newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.setDefaultNavigationTimeout(WAIT_MS);
  page.on("pageerror", (e) => problems.push(`script error: ${e.message}`));
  page.on("console", (m) => {
    // An answer of 4xx from the API is logged by the browser as a failed resource load:
    // expected (401 before sign-in, 422 for a weak password). Anything else is not.
    if (m.type() === "error" && !/^Failed to load resource: the server responded/.test(m.text())) {
      problems.push(`console error: ${m.text()}`);
    }
  });
  await page.evaluateOnNewDocument(() => {
    document.addEventListener("securitypolicyviolation", (e) => {
      window.__cspViolations = window.__cspViolations || [];
      window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"}`);
    });
  });
  return page;
}

async function visible(page, selector) {
  await page.waitForSelector(selector, { visible: true, timeout: WAIT_MS });
}

async function text(page, selector) {
  return page.$eval(selector, (el) => el.textContent.trim());
}

async function isVisible(page, selector) {
  return page.$eval(selector, (el) => !el.closest("[hidden]") && el.getClientRects().length > 0);
}

// axe-core, evaluated in the page through the DevTools protocol: that is not a script
// the page loads, so the page's Content-Security-Policy stays in force and unbypassed.
async function axe(page, state) {
  const has = await page.evaluate(() => typeof window.axe === "object");
  if (!has) await page.evaluate(AXE_SOURCE);
  const result = await page.evaluate(async () => {
    const r = await window.axe.run(document, {
      runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"] },
      resultTypes: ["violations"],
    });
    return r.violations.map((v) => ({
      id: v.id, impact: v.impact, help: v.help,
      nodes: v.nodes.slice(0, 3).map((n) => `${n.target.join(" ")}: ${n.failureSummary}`),
    }));
  });
  if (result.length > 0) {
    fail(`axe found ${result.length} violation(s) at ${state}:\n` + result.map((v) =>
      `  ${v.id} (${v.impact}): ${v.help}\n    ${v.nodes.join("\n    ")}`).join("\n"));
  }
}

// Every check of one page state, at both sizes; the phone size is left in place.
async function checkState(page, state) {
  for (const vp of [...VIEWPORTS].reverse()) {
    await page.setViewport(vp);
    await axe(page, `${state} (${vp.name})`);
    const overflow = await page.evaluate(() =>
      document.documentElement.scrollWidth - document.documentElement.clientWidth);
    if (overflow > 0) fail(`${state} (${vp.name}): the page is ${overflow}px wider than the window`);
    await page.screenshot({ path: join(SHOTS, `${state}-${vp.name}.png`), fullPage: true });
  }
  const csp = await page.evaluate(() => window.__cspViolations || []);
  if (csp.length > 0) fail(`${state}: Content-Security-Policy violations: ${csp.join("; ")}`);
  if (problems.length > 0) fail(`${state}: ${problems.join("; ")}`);
  log(`ok: ${state}`);
}

// Signed in as a home school, the page holds a long poll open: "networkidle0" would never
// come, so those loads wait for "load" and then for what the test needs.
async function go(page, path, waitUntil = "networkidle0") {
  const res = await page.goto(`${BASE}${path}`, { waitUntil, timeout: WAIT_MS });
  if (!res) fail(`no answer for ${path}`);
  return res;
}

async function typeInto(page, selector, value) {
  await page.$eval(selector, (el) => { el.value = ""; });
  await page.type(selector, value);
}

// ---- the flows ----

// What exists without the JSON API: the pages, their headers, the forms' own checks.
async function staticFlow(page) {
  const res = await go(page, "/app/");
  const h = res.headers();
  if (h["content-security-policy"] !== CSP) fail(`/app/ CSP: ${h["content-security-policy"]}`);
  for (const [name, want] of [["x-content-type-options", "nosniff"],
    ["referrer-policy", "no-referrer"], ["x-frame-options", "DENY"]]) {
    if (h[name] !== want) fail(`/app/ ${name}: ${h[name]}`);
  }
  await visible(page, "#signin-form");
  await checkState(page, "signin");
  // Submitting nothing: each field says what is missing, and is marked invalid.
  await page.click("#signin-form button[type=submit]");
  await visible(page, "#email-error");
  await visible(page, "#password-error");
  const invalid = await page.$eval("#email", (el) => el.getAttribute("aria-invalid"));
  if (invalid !== "true") fail("an empty email is not marked aria-invalid");
  const focused = await page.evaluate(() => document.activeElement && document.activeElement.id);
  if (focused !== "email") fail(`focus after a refused sign-in is on ${focused}, not the email`);
  await checkState(page, "signin-errors");

  await go(page, "/app/setup");
  await visible(page, "#invalid");
  await checkState(page, "setup-invalid-link");
}

async function fullFlow(page) {
  const link = env.DUALREG_SETUP_LINK;
  const email = env.DUALREG_USER_EMAIL;
  const school = env.DUALREG_USER_SCHOOL;
  if (!link || !email || !school) fail("the full flow needs DUALREG_SETUP_LINK, _USER_EMAIL, _USER_SCHOOL");
  const url = new URL(link);
  if (!url.hash || url.search) fail(`the set-up link ${link} does not carry its token in the fragment`);

  // 1. set-up: a password refused by the page, one refused by the server, a good one
  // (from another document: a change of fragment alone would not load the page again)
  await page.goto("about:blank");
  await go(page, `${url.pathname}${url.hash}`);
  await visible(page, "#password-step");
  await checkState(page, "setup-password");
  await typeInto(page, "#new-password", "too short");
  await typeInto(page, "#confirm-password", "too short");
  await page.click("#password-form button[type=submit]");
  await visible(page, "#new-password-error");
  await typeInto(page, "#new-password", email);
  await typeInto(page, "#confirm-password", email);
  await page.click("#password-form button[type=submit]");
  await page.waitForFunction(() => {
    const e = document.getElementById("new-password-error");
    return !e.hidden && !/12 characters/.test(e.textContent);
  }, { timeout: WAIT_MS });
  log(`weak password refused: ${await text(page, "#new-password-error")}`);
  if (await isVisible(page, "#totp-step")) fail("a weak password got past the first step");
  await checkState(page, "setup-password-refused");

  const password = "violet tram ledger 47 quietly";
  await typeInto(page, "#new-password", password);
  await typeInto(page, "#confirm-password", password);
  await page.click("#password-form button[type=submit]");
  await visible(page, "#totp-step");
  const qr = await page.$("#qr svg");
  if (!qr) fail("no QR code on the authenticator step");
  const secret = (await text(page, "#secret")).replace(/\s+/g, "");
  if (!/^[A-Z2-7]{16,}$/.test(secret)) fail(`the secret shown is ${JSON.stringify(secret)}`);
  await checkState(page, "setup-authenticator");

  // a wrong code first: the field says so
  const step = stepNow();
  const near = new Set([step - 1, step, step + 1].map((s) => totp(secret, s)));
  let wrong = "000000";
  while (near.has(wrong)) wrong = String(Number(wrong) + 1).padStart(6, "0");
  await typeInto(page, "#totp-code", wrong);
  await page.click("#totp-form button[type=submit]");
  await visible(page, "#totp-code-error");
  await checkState(page, "setup-code-refused");

  const setupStep = stepNow();
  await typeInto(page, "#totp-code", totp(secret, setupStep));
  await page.click("#totp-form button[type=submit]");
  await visible(page, "#codes-step");
  const codes = await page.$$eval("#recovery-codes li", (lis) => lis.map((li) => li.textContent.trim()));
  if (codes.length !== 10 || codes.some((c) => c === "")) fail(`recovery codes shown: ${JSON.stringify(codes)}`);
  await checkState(page, "setup-recovery-codes");

  // 2. on to /app/, signed in by the set-up
  await Promise.all([page.waitForNavigation({ waitUntil: "load", timeout: WAIT_MS }),
    page.click("#codes-done")]);
  await visible(page, "#home");
  if (!(await text(page, "#user-school")).includes(school)) fail("the signed-in page does not show the school");
  if ((await text(page, "#user-email")) !== email) fail("the signed-in page does not show the email");
  await checkState(page, "signed-in");

  // 3. sign out
  await page.click("#signout");
  await visible(page, "#signin");
  await page.waitForFunction(() => /signed out/.test(document.getElementById("status").textContent),
    { timeout: WAIT_MS });
  await checkState(page, "signed-out");

  // 4. sign in: a wrong password, then the right one and a fresh code
  await typeInto(page, "#email", email);
  await typeInto(page, "#password", `${password}x`);
  await page.click("#signin-form button[type=submit]");
  await visible(page, "#signin-alert");
  await checkState(page, "signin-refused");
  await typeInto(page, "#email", email);
  await typeInto(page, "#password", password);
  await page.click("#signin-form button[type=submit]");
  await visible(page, "#code");
  await checkState(page, "signin-code");
  // The code of the set-up's step is used up (replay protection): wait for the next.
  while (stepNow() <= setupStep) await new Promise((r) => setTimeout(r, 250));
  await typeInto(page, "#otp", totp(secret, stepNow()));
  await page.click("#code-form button[type=submit]");
  await visible(page, "#home");
  if (!(await text(page, "#user-school")).includes(school)) fail("after sign-in the school is not shown");
  await checkState(page, "signed-in-again");

  await pupilsFlow(page);
  await requestsFlow(page);
  // DUALREG_BROWSER_ONLY=pupil,register,sync,access runs only those of the later flows
  const only = env.DUALREG_BROWSER_ONLY ? new Set(env.DUALREG_BROWSER_ONLY.split(",")) : null;
  const flows = [["pupil", pupilPageFlow], ["register", registerFlow], ["sync", syncFlow],
    ["access", accessFlow]];
  for (const [name, flow] of flows) {
    if (!only || only.has(name)) await flow(page, H);
  }

  // the session survives a reload; disabling the account (dualregctl) ends it, and the
  // password no longer signs in
  await go(page, "/app/", "load");
  await visible(page, "#home");
  execFileSync(env.DUALREG_CTL, ["-c", env.DUALREG_CTL_CONF, "user", "disable", email],
    { encoding: "utf8", timeout: WAIT_MS });
  await go(page, "/app/", "load");
  await visible(page, "#signin");
  await typeInto(page, "#email", email);
  await typeInto(page, "#password", password);
  await page.click("#signin-form button[type=submit]");
  await visible(page, "#signin-alert");
  if (await isVisible(page, "#code")) fail("a disabled account got past the password");
}

// The current school day in Europe/London (a weekend's is the Friday before), as the
// page reckons it.
function schoolDay() {
  const parts = new Intl.DateTimeFormat("en-GB", {
    timeZone: "Europe/London", year: "numeric", month: "2-digit", day: "2-digit",
  }).formatToParts(new Date());
  const get = (t) => Number(parts.find((p) => p.type === t).value);
  const d = new Date(Date.UTC(get("year"), get("month") - 1, get("day")));
  const wd = d.getUTCDay();
  if (wd === 6) d.setUTCDate(d.getUTCDate() - 1);
  if (wd === 0) d.setUTCDate(d.getUTCDate() - 2);
  return d.toISOString().slice(0, 10);
}

async function pupilCells(page, upn) {
  return page.$$eval(`#pupils-body tr[data-upn="${upn}"] td`,
    (tds) => tds.map((td) => td.textContent.trim()));
}

// The home school's pupils in alternative provision: the PRU's pupil is listed, expected
// at the PRU in the morning; a mark the PRU records (its own key, through the API) shows
// in the table within 10 s, without a reload.
async function pupilsFlow(page) {
  const upn = env.DUALREG_PUPIL_UPN;
  const pru = env.DUALREG_PRU_URN;
  const token = env.DUALREG_PRU_TOKEN;
  if (!upn || !pru || !token) fail("the pupils view needs DUALREG_PUPIL_UPN, _PRU_URN, _PRU_TOKEN");
  await visible(page, "#pupils");
  await visible(page, `#pupils-body tr[data-upn="${upn}"]`);
  const before = await pupilCells(page, upn);
  // cells: AM expected, here, other, state; PM expected, here, other, state
  if (!before[0].includes(`River PRU (URN ${pru})`)) fail(`morning expected at: ${before[0]}`);
  if (before[3] !== "Not yet marked") fail(`morning state before the mark: ${before[3]}`);
  if (!before[4].includes(env.DUALREG_USER_SCHOOL)) fail(`afternoon expected at: ${before[4]}`);
  const caption = await text(page, "#pupils-caption");
  if (!/alternative provision/.test(caption)) fail(`caption: ${caption}`);
  await checkState(page, "pupils");
  // give the page its long poll before the mark (it starts from the feed's end)
  await new Promise((r) => setTimeout(r, 1000));
  if (!(await isVisible(page, "#alerts-none"))) fail("alerts are shown before any absence");
  const date = schoolDay();
  // The PRU first marks her absent without a reason yet (N): an alert for the home school
  // appears on top, then the PRU corrects the mark to present (no reason needed after N).
  const post = async (code, want) => {
    const res = await fetch(`${BASE}/v1/marks`, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ marks: [{ upn, urn: pru, date, session: "AM", code }] }),
    });
    const answer = await res.text();
    let status = null;
    try {
      status = JSON.parse(answer).results[0].status;
    } catch {
      status = null;
    }
    if (res.status !== 200 || status !== want) fail(`POST /v1/marks ${code}: ${res.status} ${answer}`);
  };
  const alert = `#alerts-list li[data-upn="${upn}"][data-session="AM"]`;
  await post("N", "created");
  let t0 = Date.now();
  await page.waitForFunction((sel) => {
    const li = document.querySelector(sel);
    return li && li.querySelector(".urgency").textContent === "Absent, no authorised reason";
  }, { timeout: 10000 }, alert);
  log(`the absence alert appeared after ${Date.now() - t0} ms without a reload`);
  const said = await text(page, alert);
  if (!said.includes("Grace Hopper") || !said.includes("reason for absence not yet provided")) {
    fail(`the alert says: ${said}`);
  }
  if ((await pupilCells(page, upn))[3] !== "Absent") fail("the morning state is not Absent");
  await checkState(page, "pupils-alert");
  await post("/", "amended");
  t0 = Date.now();
  await page.waitForFunction((u, sel) => {
    const tds = document.querySelectorAll(`#pupils-body tr[data-upn="${u}"] td`);
    const li = document.querySelector(sel);
    return tds.length === 8 && tds[2].textContent.trim() === "/" &&
      tds[3].textContent.trim() === "Present" && li &&
      li.querySelector(".urgency").textContent === "Resolved";
  }, { timeout: 10000 }, upn, alert);
  log(`the PRU's correction appeared after ${Date.now() - t0} ms without a reload`);
  await checkState(page, "pupils-marked");
}

// The registration requests: the PRU's request for a second pupil awaits the school's
// decision, named with the pupil's name and date of birth; Confirm takes it off the list,
// the status line says so, and the PRU's key sees the registration in force.
async function requestsFlow(page) {
  const id = env.DUALREG_REQUEST_ID;
  const upn = env.DUALREG_REQUEST_UPN;
  const token = env.DUALREG_PRU_TOKEN;
  if (!id || !upn || !token) fail("the requests view needs DUALREG_REQUEST_ID, _REQUEST_UPN, _PRU_TOKEN");
  const item = `#requests-incoming li[data-id="${id}"]`;
  await visible(page, "#requests");
  await visible(page, item);
  const shown = await text(page, item);
  if (!shown.includes("Alan Turing")) fail(`the request does not name the pupil: ${shown}`);
  if (!shown.includes("23 June 2013")) fail(`the request does not give the date of birth: ${shown}`);
  if (!shown.includes("River PRU (URN")) fail(`the request does not name the school asking: ${shown}`);
  const label = await page.$eval(`${item} button[data-action="confirm"]`,
    (b) => b.getAttribute("aria-label"));
  if (!/^Confirm .*Alan Turing/.test(label)) fail(`the Confirm button's name: ${label}`);
  await checkState(page, "requests");
  await page.click(`${item} button[data-action="confirm"]`);
  await page.waitForFunction((sel) => !document.querySelector(sel) &&
    /Alan Turing is confirmed/.test(document.getElementById("status").textContent),
  { timeout: WAIT_MS }, item);
  if (!(await isVisible(page, "#requests-incoming-none"))) fail("after confirming, the list is not empty");
  const res = await fetch(`${BASE}/v1/pupils/${encodeURIComponent(upn)}/registrations`, {
    headers: { Authorization: `Bearer ${token}` },
  });
  const answer = await res.text();
  let status = null;
  try {
    const reg = JSON.parse(answer).registrations.find((r) => String(r.id) === id);
    status = reg ? reg.status : null;
  } catch {
    status = null;
  }
  if (res.status !== 200 || status !== "in_force") {
    fail(`after Confirm the registration is not in force: ${res.status} ${answer}`);
  }
  log("the PRU's request was confirmed on the page and is in force");
  await checkState(page, "requests-confirmed");
}

// A second member of staff, set up through the JSON API (the set-up pages are tested
// above): a password, the authenticator's code; returns the signed-in session's cookie
// value and the TOTP secret.
async function setUpByApi(link, password) {
  const url = new URL(link);
  const token = decodeURIComponent(url.hash.replace(/^#(token=)?/, ""));
  const post = async (path, body) => {
    const res = await fetch(`${BASE}${path}`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    const answer = await res.text();
    if (res.status !== 200) fail(`POST ${path}: ${res.status} ${answer}`);
    return [res, JSON.parse(answer)];
  };
  const [, setup] = await post("/app/api/setup", { token, password });
  const [res] = await post("/app/api/setup/confirm", { token, code: totp(setup.totp_secret, stepNow()) });
  const cookie = (res.headers.get("set-cookie") || "").match(/dualreg_session=([^;]+)/);
  if (!cookie) fail(`no session cookie after set-up of ${link}`);
  return { cookie: cookie[1], secret: setup.totp_secret };
}

// A page in a fresh browser context (its own cookies) signed in with the session cookie,
// showing /app/ + fragment.
async function signedInPage(cookie, fragment = "") {
  const context = await browser.createBrowserContext();
  const page = await newPage(context);
  const u = new URL(BASE);
  await page.setCookie({ name: "dualreg_session", value: cookie, domain: u.hostname, path: "/",
    httpOnly: true, sameSite: "Strict" });
  await go(page, `/app/${fragment}`, "load");
  await visible(page, "#app-nav");
  return page;
}

// What the flows in the other files use.
const H = {
  env, BASE, WAIT_MS, fail, log, visible, text, isVisible, checkState, go, typeInto,
  schoolDay, setUpByApi, signedInPage, totp, stepNow,
};

async function main() {
  if (!BASE) fail("DUALREG_WEB_URL is not set");
  mkdirSync(SHOTS, { recursive: true });
  const executablePath = env.CHROMIUM ||
    execFileSync("sh", ["-c", "command -v chromium"], { encoding: "utf8" }).trim();
  const args = ["--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
    "--no-default-browser-check", "--disable-extensions", "--lang=en-GB"];
  if (process.getuid && process.getuid() === 0) args.push("--no-sandbox");
  browser = await puppeteer.launch({
    executablePath,
    headless: true,
    pipe: true, // the browser ends when this process does, however it ends
    args,
    userDataDir: env.DUALREG_BROWSER_PROFILE || undefined,
    timeout: 30000,
    protocolTimeout: 60000,
  });
  log(`${await browser.version()} (${executablePath})`);
  const page = await newPage();
  await staticFlow(page);
  if (FLOW === "full") await fullFlow(page);
  log(`all checks passed (${FLOW}); screenshots in ${SHOTS}`);
}

const watchdog = setTimeout(() => {
  console.error(`browser: gave up after ${TOTAL_MS / 1000} s`);
  try {
    browser?.process()?.kill("SIGKILL");
  } finally {
    process.exit(1);
  }
}, TOTAL_MS);

let code = 0;
try {
  await main();
} catch (e) {
  console.error(`browser: FAILED: ${e.stack || e.message}`);
  code = 1;
} finally {
  clearTimeout(watchdog);
  if (browser) {
    await Promise.race([browser.close().catch(() => {}), new Promise((r) => setTimeout(r, 5000))]);
    browser.process()?.kill("SIGKILL");
  }
}
process.exit(code);
