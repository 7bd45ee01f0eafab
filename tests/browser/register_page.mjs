// Today's register (#/register), as a member of the PRU's staff marks it, and sync health
// (#/sync), as a school's member of staff and as an administrator see it.
//
// registerFlow: Mary Seacole (River PRU) opens the morning register: Grace Hopper, expected
// at the PRU every weekday morning, is listed with the PRU's "/" from the earlier flow.
// Changing it to Late is an amendment: the form asks for the minutes and a reason, and
// refuses to save without them; saved, the card shows L, the home school's live overview
// (Ada Lovelace, on `page`) shows "Late" without a reload, and the mark's history says it
// came from the web app (source "web"). The afternoon register does not list Grace.
//
// syncFlow: Ada's school's sync health (no webhook subscriptions, no pulled feed:
// healthy); an administrator made with dualregctl sees every school in a table.
import { execFileSync } from "node:child_process";

async function pupilCells(page, upn) {
  return page.$$eval(`#pupils-body tr[data-upn="${upn}"] td`,
    (tds) => tds.map((td) => td.textContent.trim()));
}

// The home school's page is on its overview (the live view), its long poll running.
async function onOverview(page, h) {
  if (!(await page.$eval("#pupils", (e) => !e.closest("[hidden]")).catch(() => false))) {
    await page.click('#app-nav a[data-view="home"]');
  }
  await h.visible(page, "#pupils");
  await h.visible(page, `#pupils-body tr[data-upn="${h.env.DUALREG_PUPIL_UPN}"]`);
}

async function markHistory(h, upn, date, session) {
  const res = await fetch(`${h.BASE}/v1/pupils/${encodeURIComponent(upn)}/marks/${date}/${session}/history`, {
    headers: { Authorization: `Bearer ${h.env.DUALREG_PRU_TOKEN}` },
  });
  const answer = await res.text();
  if (res.status !== 200) h.fail(`GET mark history: ${res.status} ${answer}`);
  return JSON.parse(answer).history || [];
}

export async function registerFlow(page, h) {
  const { env, fail, log, visible, text, checkState, typeInto } = h;
  const upn = env.DUALREG_PUPIL_UPN;
  const pru = env.DUALREG_PRU_URN;
  if (!upn || !pru || !env.DUALREG_PRU_SETUP_LINK) {
    fail("the register flow needs DUALREG_PUPIL_UPN, _PRU_URN, _PRU_SETUP_LINK");
  }
  await onOverview(page, h);
  const { cookie } = await h.setUpByApi(env.DUALREG_PRU_SETUP_LINK, "a long enough passphrase 93");
  const pruPage = await h.signedInPage(cookie, "#/register");
  try {
    await visible(pruPage, "#register-session-AM");
    if (await pruPage.$eval("#nav-register-item", (e) => e.hidden)) {
      fail("the PRU's member of staff has no \"Today's register\" link");
    }
    // the morning register: Grace is listed with the PRU's "/"
    await pruPage.click("#register-session-AM");
    const card = `#register-list li[data-upn="${upn}"]`;
    await visible(pruPage, card);
    await pruPage.waitForFunction((sel) => document.querySelector(sel).dataset.code === "/",
      { timeout: h.WAIT_MS }, card);
    const pressed = await pruPage.$eval("#register-session-AM", (b) => b.getAttribute("aria-pressed"));
    if (pressed !== "true") fail(`the Morning switch is not pressed: ${pressed}`);
    const count = await text(pruPage, "#register-count");
    if (!/^\d+ pupils? (is|are) expected here this morning/.test(count)) fail(`morning count: ${count}`);
    const shown = await text(pruPage, card);
    if (!shown.includes("Grace Hopper") || !shown.includes("present at the morning register")) {
      fail(`Grace's card: ${shown}`);
    }
    await checkState(pruPage, "register");

    // Late, over a real mark: the form asks for the minutes and a reason, both required
    await pruPage.click(`${card} button[data-action="late"]`);
    const minutes = `#reg-${upn}-minutes`;
    const reason = `#reg-${upn}-reason`;
    await visible(pruPage, minutes);
    await visible(pruPage, reason);
    const focused = await pruPage.evaluate(() => document.activeElement && document.activeElement.id);
    if (focused !== `reg-${upn}-minutes`) fail(`focus on opening Late is on ${focused}`);
    await pruPage.click(`${card} form button[type=submit]`);
    await visible(pruPage, `${minutes}-error`);
    await visible(pruPage, `${reason}-error`);
    await typeInto(pruPage, minutes, "12");
    await pruPage.click(`${card} form button[type=submit]`);
    await visible(pruPage, `${reason}-error`);
    if (await pruPage.$eval(`${minutes}-error`, (e) => !e.hidden)) fail("12 minutes is refused");
    if ((await pruPage.$eval(card, (e) => e.dataset.code)) !== "/") fail("a mark was saved without a reason");
    await checkState(pruPage, "register-amend-reason");

    await typeInto(pruPage, reason, "Arrived at 9:12: the taxi was late");
    await pruPage.click(`${card} form button[type=submit]`);
    await pruPage.waitForFunction((sel) => {
      const li = document.querySelector(sel);
      const r = li && li.querySelector(".reg-result");
      return li && li.dataset.code === "L" && r && !r.hidden && /changed to L/.test(r.textContent);
    }, { timeout: h.WAIT_MS }, card);
    const cardCode = await text(pruPage, `${card} .reg-mark strong`);
    if (cardCode !== "L") fail(`the card shows ${cardCode}, not L`);
    const status = await text(pruPage, "#status");
    if (!/Grace Hopper: changed to L \(12 minutes late\)/.test(status)) fail(`status: ${status}`);
    if (await pruPage.$(`${card} form`)) fail("the form stays open after saving");
    const t0 = Date.now();
    await checkState(pruPage, "register-saved");

    // the home school's live overview shows Late, without a reload
    await page.waitForFunction((u) => {
      const tds = document.querySelectorAll(`#pupils-body tr[data-upn="${u}"] td`);
      return tds.length === 8 && tds[3].textContent.trim() === "Late";
    }, { timeout: Math.max(1000, 10000 - (Date.now() - t0)) }, upn).catch(async () => {
      fail(`the overview did not show Late within 10 s: ${JSON.stringify(await pupilCells(page, upn))}`);
    });
    log(`the web app's amendment appeared on the home school's overview within ${Date.now() - t0} ms`);

    // the history: the newest version at the PRU came from the web app, with the reason
    const date = h.schoolDay();
    const history = (await markHistory(h, upn, date, "AM")).filter((e) => e.urn === pru);
    const newest = history[history.length - 1];
    if (!newest || !newest.new || newest.new.code !== "L" || newest.new.minutes_late !== 12) {
      fail(`the newest history entry at the PRU: ${JSON.stringify(newest)}`);
    }
    if (newest.reason !== "Arrived at 9:12: the taxi was late") fail(`the reason kept: ${newest.reason}`);
    if (newest.source !== "web") {
      fail(`the web app's mark has source ${JSON.stringify(newest.source)}, not "web"`);
    }
    log("the mark's history records source web and the reason");

    // Absent offers the absence codes in force, the most used first; Cancel changes nothing
    await pruPage.click(`${card} button[data-action="absent"]`);
    await visible(pruPage, `#reg-${upn}-code`);
    const options = await pruPage.$$eval(`#reg-${upn}-code option`, (os) => os.map((o) => o.value));
    if (options.slice(0, 4).join(" ") !== "I M N O" || !options.includes("C2") ||
        options.includes("H") || options.includes("/") || options.includes("D")) {
      fail(`the absence codes offered: ${options.join(" ")}`);
    }
    await visible(pruPage, reason); // L is a real mark: a change needs a reason
    await pruPage.click(`${card} form button[type=button]`);
    if (await pruPage.$(`${card} form`)) fail("Cancel leaves the form open");
    const back = await pruPage.evaluate(() => document.activeElement && document.activeElement.dataset.action);
    if (back !== "absent") fail(`after Cancel the focus is on ${back}`);

    // the afternoon register: Grace is expected at the home school then, so not listed
    await pruPage.click("#register-session-PM");
    await pruPage.waitForFunction(() => /this afternoon/.test(
      document.getElementById("register-count").textContent), { timeout: h.WAIT_MS });
    if (await pruPage.$(card)) fail("Grace is listed on the afternoon register");
    const pm = await pruPage.$eval("#register-session-PM", (b) => b.getAttribute("aria-pressed"));
    if (pm !== "true") fail(`the Afternoon switch is not pressed: ${pm}`);
    log(`afternoon: ${await text(pruPage, "#register-count")}`);
  } finally {
    await pruPage.browserContext().close();
  }
}

export async function syncFlow(page, h) {
  const { env, fail, log, visible, text, checkState } = h;
  // a school's own sync health: no webhook subscription, no feed: healthy
  await page.click('#app-nav a[data-view="sync"]');
  await visible(page, "#sync-overall");
  const overall = await text(page, "#sync-overall");
  if (!/^Healthy/.test(overall)) fail(`Hill School's sync health: ${overall}`);
  await visible(page, "#sync-subscriptions-none");
  const none = await text(page, "#sync-subscriptions-none");
  if (!/no webhook subscriptions/.test(none)) fail(`no subscriptions: ${none}`);
  if (!(await text(page, "#sync-content")).includes("pulled MIS feed")) fail("the feed's state is not shown");
  await checkState(page, "sync");

  // an administrator: every school in a table. Far School's pulled feed is failing (set
  // in the database; its next attempt is an hour away, so nothing pulls it meanwhile).
  const far = env.DUALREG_FAR_URN;
  execFileSync("psql", ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", env.DUALREG_DATABASE_URL,
    "-c", "UPDATE schools SET pull_url = 'https://mis.far.example/marks', pull_failures = 3, " +
      "pull_last_error = 'HTTP 500', pull_last_error_at = now(), " +
      `pull_next_at = now() + interval '1 hour' WHERE urn = '${far}'`],
  { encoding: "utf8", timeout: h.WAIT_MS });
  const out = execFileSync(env.DUALREG_CTL, ["-c", env.DUALREG_CTL_CONF, "user", "add", "--admin",
    "--email", "katherine.johnson@dualreg.example", "--name", "Katherine Johnson"],
  { encoding: "utf8", timeout: h.WAIT_MS });
  const link = out.split("\n").map((l) => l.trim()).find((l) => l.includes("/app/setup#"));
  if (!link) fail(`no set-up link from dualregctl user add --admin: ${out}`);
  const { cookie } = await h.setUpByApi(link, "an administrator's passphrase 58");
  const adminPage = await h.signedInPage(cookie, "#/sync");
  try {
    await visible(adminPage, "#sync-schools-body");
    // every row checked (each has a state), then the names
    await adminPage.waitForFunction(() => {
      const rows = [...document.querySelectorAll("#sync-schools-body tr[data-urn]")];
      return rows.length > 0 && rows.every((r) => r.dataset.state);
    }, { timeout: h.WAIT_MS });
    const rows = await adminPage.$$eval("#sync-schools-body tr[data-urn]", (trs) => trs.map((tr) =>
      [tr.querySelector(".sync-school-name").textContent.trim(), tr.dataset.state]));
    for (const name of ["Hill School", "River PRU", "Far School"]) {
      const row = rows.find(([n]) => n === name);
      if (!row) fail(`the administrator's table does not list ${name}: ${JSON.stringify(rows)}`);
      if (row[1] === "unknown") fail(`${name}'s sync health could not be read`);
    }
    const farRow = `#sync-schools-body tr[data-urn="${far}"]`;
    const farState = await adminPage.$eval(farRow, (tr) => [tr.dataset.state, tr.textContent]);
    if (farState[0] !== "attention" || !/Needs attention/.test(farState[1]) ||
        !/The MIS feed is failing: HTTP 500/.test(farState[1])) {
      fail(`Far School's failing feed: ${JSON.stringify(farState)}`);
    }
    for (const urn of ["100001", env.DUALREG_PRU_URN]) {
      const st = await adminPage.$eval(`#sync-schools-body tr[data-urn="${urn}"]`, (tr) => tr.dataset.state);
      if (st !== "healthy") fail(`${urn} is ${st}, not healthy`);
    }
    const summary = await text(adminPage, "#sync-summary");
    if (summary !== "3 schools: 1 needs attention.") fail(`summary: ${summary}`);
    // a school's details open in place
    await adminPage.click('#sync-schools-body tr[data-details-for="100001"] summary');
    await visible(adminPage, "#sync-100001-subscriptions-none");
    await adminPage.click(`#sync-schools-body tr[data-details-for="${far}"] summary`);
    await visible(adminPage, `#sync-schools-body tr[data-details-for="${far}"] .sync-details`);
    const farDetails = await text(adminPage, `#sync-schools-body tr[data-details-for="${far}"] .sync-details`);
    if (!/https:\/\/mis\.far\.example\/marks/.test(farDetails) || !/Failing/.test(farDetails)) {
      fail(`Far School's feed details: ${farDetails}`);
    }
    await checkState(adminPage, "sync-admin");
    log(`the administrator's table: ${rows.map(([n, s]) => `${n} ${s}`).join("; ")}`);
  } finally {
    await adminPage.browserContext().close();
  }

  // back to the overview
  await page.click('#app-nav a[data-view="home"]');
  await visible(page, "#pupils");
}
