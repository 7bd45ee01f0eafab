// What a signed-in browser must not be able to do, as a member of staff of Far School (a
// school no pupil here was ever registered at) sees it:
//   - open the pupil page of another school's pupil: the page says it cannot be shown and
//     nothing of the pupil appears; the API answers 404 to the same session;
//   - change anything without the session's CSRF token, or with a wrong one (403
//     csrf-failed, nothing changed: the session still works afterwards);
//   - carry on after the session has ended (idle for longer than [web] session_idle): the
//     next request is refused and the page asks to sign in again.
import { execFileSync } from "node:child_process";

// fetch from inside the page, with its cookie: [status, problem slug or ""]
async function pageFetch(page, method, path, headers = {}, body = undefined) {
  return page.evaluate(async (m, p, h, b) => {
    const res = await fetch(p, {
      method: m, headers: { "Content-Type": "application/json", ...h },
      body: b === undefined ? undefined : JSON.stringify(b), credentials: "same-origin",
    });
    let slug = "";
    try {
      const j = await res.json();
      slug = typeof j.type === "string" ? j.type.replace(/^.*\/problems\//, "") : "";
    } catch {
      slug = "";
    }
    return [res.status, slug];
  }, method, path, headers, body);
}

export async function accessFlow(_homePage, h) {
  const { env, fail, log } = h;
  const upn = env.DUALREG_PUPIL_UPN;
  const link = env.DUALREG_FAR_SETUP_LINK;
  const db = env.DUALREG_DATABASE_URL;
  if (!upn || !link || !db) fail("the access flow needs DUALREG_PUPIL_UPN, _FAR_SETUP_LINK, _DATABASE_URL");
  const { cookie } = await h.setUpByApi(link, "copper kettle orbit 58 slowly");
  const page = await h.signedInPage(cookie, `#/pupil/${encodeURIComponent(upn)}`);
  try {
    // 1. another school's pupil
    await page.waitForFunction((u) => {
      const s = document.getElementById("pupil");
      return s && !s.hidden && s.textContent.includes(`No pupil with UPN ${u}`);
    }, { timeout: h.WAIT_MS }, upn);
    const shown = await page.$eval("main", (m) => m.innerText);
    if (/Grace|Hopper|River PRU|2012/.test(shown)) fail(`another school's pupil page shows: ${shown}`);
    const [st] = await pageFetch(page, "GET", `/v1/pupils/${encodeURIComponent(upn)}/status`);
    if (st !== 404) fail(`Far School's session read another school's pupil: ${st}`);
    await h.checkState(page, "pupil-not-yours");
    log("another school's pupil page shows nothing of the pupil");

    // 2. CSRF: no token, a wrong token
    const csrf = await page.evaluate(async () =>
      (await (await fetch("/app/api/session", { credentials: "same-origin" })).json()).csrf_token);
    const mark = { marks: [{ upn, urn: env.DUALREG_FAR_URN, date: h.schoolDay(), session: "PM", code: "/" }] };
    for (const [what, headers] of [["without", {}], ["with a wrong", { "X-CSRF-Token": `${csrf}x` }]]) {
      const [s1, slug1] = await pageFetch(page, "POST", "/v1/marks", headers, mark);
      if (s1 !== 403 || slug1 !== "csrf-failed") fail(`POST /v1/marks ${what} CSRF token: ${s1} ${slug1}`);
      const [s2, slug2] = await pageFetch(page, "DELETE", "/app/api/session", headers);
      if (s2 !== 403 || slug2 !== "csrf-failed") fail(`sign-out ${what} CSRF token: ${s2} ${slug2}`);
    }
    const [still] = await pageFetch(page, "GET", "/app/api/session");
    if (still !== 200) fail(`after the refused requests the session answers ${still}`);
    log("requests without the CSRF token, or with a wrong one, were refused (403 csrf-failed)");

    // 3. the session ends while the page is open: idle for longer than session_idle
    await page.evaluate(() => { location.hash = "#/"; });
    await h.visible(page, "#home");
    execFileSync("psql", ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db, "-c",
      "UPDATE staff_sessions SET last_seen_at = now() - interval '1 day' WHERE user_id = " +
      "(SELECT id FROM staff_users WHERE lower(email) = 'isaac.newton@far.example')"],
    { encoding: "utf8", timeout: h.WAIT_MS });
    await page.click('#app-nav a[data-view="sync"]');
    await h.visible(page, "#signin");
    await page.waitForFunction(() => /session has ended/.test(
      document.getElementById("signin-alert").textContent), { timeout: h.WAIT_MS });
    const [after] = await pageFetch(page, "GET", "/app/api/session");
    if (after !== 401) fail(`an idle session still answers ${after}`);
    await h.checkState(page, "session-ended");
    log("an ended session sends the page back to sign-in, saying why");
  } finally {
    await page.browserContext().close();
  }
}
