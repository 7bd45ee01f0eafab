// The pupil page (#/pupil/UPN), as the home school's member of staff sees it: reached
// from the overview's live view, it shows Grace Hopper, her two registrations, the
// attendance summaries (the PRU's "/" of the current school day counted as present; the
// derived D marks not counted as possible sessions), the weekly chart, the grid of both
// schools' marks with each code's meaning on hover and on focus, and the history of the
// session chosen. A UPN the school may not see gets one sentence and a link back. The
// flow ends on the overview.

// A valid UPN (check letter fixed up, as daemon/domain/upn.c computes it) from 12 digits.
function upnOf(digits) {
  const alphabet = "ABCDEFGHJKLMNPQRTUVWXYZ";
  let sum = 0;
  for (let i = 0; i < 12; i++) sum += Number(digits[i]) * (i + 2);
  return `${alphabet[sum % 23]}${digits}`;
}

async function cells(page, selector) {
  return page.$$eval(selector, (tds) => tds.map((td) => td.textContent.trim()));
}

export async function pupilPageFlow(page, h) {
  const { env, fail, log, visible, text, isVisible, checkState, WAIT_MS } = h;
  const upn = env.DUALREG_PUPIL_UPN;
  const pru = env.DUALREG_PRU_URN;
  const school = env.DUALREG_USER_SCHOOL;
  if (!upn || !pru || !school) fail("the pupil page needs DUALREG_PUPIL_UPN, _PRU_URN, _USER_SCHOOL");
  const t0 = Date.now();
  const day = h.schoolDay();

  // from the overview: the pupil's name links to the page
  const link = `#pupils-body tr[data-upn="${upn}"] a`;
  await visible(page, link);
  await page.click(link);
  await visible(page, "#pupil");
  const cell = `#pupil-grid .cell-btn[data-date="${day}"][data-session="AM"]`;
  await page.waitForSelector(cell, { timeout: WAIT_MS });
  if (!/#\/pupil\//.test(page.url())) fail(`the pupil page's address: ${page.url()}`);

  // 1. the pupil
  const title = await text(page, "#pupil-title");
  if (title !== "Grace Hopper") fail(`the pupil page's heading: ${title}`);
  const details = await text(page, "#pupil-details");
  if (!details.includes(upn)) fail(`the pupil's details do not give the UPN: ${details}`);
  if (!details.includes("9 December 2012")) fail(`the pupil's details do not give the date of birth: ${details}`);

  // 2. both registrations, the PRU's expecting her every weekday morning
  const main = await text(page, '#pupil-placements li[data-urn="100001"][data-role="main"]');
  if (!main.includes(school) || !/Main registration/.test(main) || !/In force/.test(main)) {
    fail(`the main registration: ${main}`);
  }
  if (!/every weekday afternoon/.test(main)) fail(`the main registration's sessions: ${main}`);
  const sub = await text(page, `#pupil-placements li[data-urn="${pru}"][data-role="subsidiary"]`);
  if (!sub.includes(`River PRU (URN ${pru})`) || !/Subsidiary registration/.test(sub)) {
    fail(`the PRU's registration: ${sub}`);
  }
  if (!/every weekday morning/.test(sub)) fail(`the PRU's schedule: ${sub}`);

  // 3. summaries: the "/" is the only real mark, at the school expected; the D marks
  // (derived at Hill School for the mornings) are not possible sessions
  // cells: possible, present, aea, authorised, unauthorised, not possible, rate
  const combined = await cells(page, '#pupil-summary-region tr[data-summary="combined"] td');
  if (combined.join("|") !== "1|1|0|0|0|0|100.0%") fail(`combined summary: ${combined.join(" | ")}`);
  const atPru = await cells(page, `#pupil-summary-region tr[data-summary="${pru}"] td`);
  if (atPru[0] !== "1" || atPru[1] !== "1" || atPru[6] !== "100.0%") fail(`the PRU's summary: ${atPru.join(" | ")}`);
  const atHill = await cells(page, '#pupil-summary-region tr[data-summary="100001"] td');
  if (atHill[0] !== "0" || !(Number(atHill[5]) > 0) || atHill[6] !== "No possible sessions") {
    fail(`Hill School's summary (its D marks must not be possible sessions): ${atHill.join(" | ")}`);
  }
  const note = await text(page, "#pupil-content .summary-note");
  if (!/not counted as a possible session/.test(note)) fail(`the summaries' note: ${note}`);

  // 4. the chart, its figures stated in its name and as a table
  const label = await page.$eval("#pupil-chart", (c) =>
    `${c.getAttribute("role")}: ${c.getAttribute("aria-label") || ""}`);
  if (!/^img: Weekly combined attendance rate .*highest 100\.0%/.test(label)) fail(`the chart: ${label}`);
  const bars = await page.$$eval("#pupil-chart rect", (r) => r.length);
  if (bars !== 1) fail(`the chart has ${bars} bars, not 1 (one week with possible sessions)`);

  // 5. the grid: this week first, the PRU's "/" primary in the morning, both codes named
  const firstWeek = await page.$eval("#pupil-grid tbody tr", (tr) => tr.dataset.week);
  const monday = new Date(`${day}T00:00:00Z`);
  monday.setUTCDate(monday.getUTCDate() - ((monday.getUTCDay() + 6) % 7));
  if (firstWeek !== monday.toISOString().slice(0, 10)) fail(`the grid's first week: ${firstWeek}`);
  const primary = await text(page, `${cell} .code-primary`);
  const secondary = await text(page, `${cell} .code-secondary`);
  if (primary !== "/" || secondary !== "D") fail(`the morning's codes: ${primary} then ${secondary}`);
  const name = await page.$eval(cell, (b) => b.getAttribute("aria-label"));
  if (!new RegExp(`River PRU \\(expected\\) /, present at the morning register; ${school} D, dual registered`)
    .test(name)) {
    fail(`the morning's accessible name: ${name}`);
  }
  const tip = `td:has(> ${cell.replace("#pupil-grid ", "")}) .tip`;
  const tipShown = async () => page.$eval(`#pupil-grid ${tip}`, (t) =>
    getComputedStyle(t).display !== "none" ? t.textContent : "");
  await page.hover(cell);
  if (!/present at the morning register/.test(await tipShown())) fail("hovering the morning does not show its meaning");
  await page.mouse.move(0, 0);
  if (await tipShown()) fail("the meaning stays after the pointer left");
  await page.focus(cell);
  if (!/present at the morning register/.test(await tipShown())) fail("focusing the morning does not show its meaning");
  await page.keyboard.press("Escape");
  if (await tipShown()) fail("Escape does not hide the meaning");
  await page.focus(`#pupil-grid tbody th`);
  await page.focus(cell);
  await checkState(page, "pupil-page");

  // activating the session shows its history below the grid, focus on its heading
  await page.focus(cell);
  await page.keyboard.press("Enter");
  await visible(page, "#pupil-history");
  await page.waitForSelector("#pupil-history-region tbody tr", { timeout: WAIT_MS });
  const focused = await page.evaluate(() => document.activeElement && document.activeElement.id);
  if (focused !== "pupil-history-title") fail(`focus after choosing a session is on ${focused}`);
  const rows = await page.$$eval("#pupil-history-region tbody tr", (trs) =>
    trs.map((tr) => [...tr.children].map((c) => c.textContent.trim())));
  // columns: when, school, code, minutes late, recorded by, reason
  const slash = rows.find((r) => r[1].includes("River PRU") && r[2].startsWith("/"));
  if (!slash || !/present at the morning register/.test(slash[2]) || !/through the API/.test(slash[4])) {
    fail(`the history does not show the PRU's mark: ${JSON.stringify(rows)}`);
  }
  const derived = rows.find((r) => r[1].includes(school) && r[2].startsWith("D"));
  if (!derived || !/^dualreg, derived/.test(derived[4])) fail(`the history does not show the derived D: ${JSON.stringify(rows)}`);
  await checkState(page, "pupil-history");

  // a pupil the school may not see (here: no such pupil): one sentence, nothing else
  const unknown = upnOf("801200009871");
  await page.evaluate((u) => { location.hash = `#/pupil/${u}`; }, unknown);
  await page.waitForFunction(() => document.getElementById("pupil-not-found"), { timeout: WAIT_MS });
  const said = await text(page, "#pupil-not-found");
  if (said !== `No pupil with UPN ${unknown} is on your school's roll, or you may not see this pupil.`) {
    fail(`an unknown pupil: ${said}`);
  }
  if (await page.$("#pupil-details, #pupil-placements, #pupil-grid")) fail("an unknown pupil's page shows more");
  if (await isVisible(page, "#pupil-alert")) fail("an unknown pupil's page shows an alert");
  await checkState(page, "pupil-not-found");

  // back to the overview, which later flows expect
  await page.click("#pupil-content .back-link a");
  await visible(page, "#pupils");
  await visible(page, `#pupils-body tr[data-upn="${upn}"]`);
  log(`the pupil page held (${Date.now() - t0} ms)`);
}
