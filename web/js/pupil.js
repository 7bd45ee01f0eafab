// The pupil page, #/pupil/UPN: one pupil as a member of staff of a school the pupil is or
// was registered at sees them (an administrator sees every pupil; the API decides).
//
//   1. the pupil: name, UPN, date of birth            GET /v1/pupils/{upn}
//   2. each registration and its schedule             GET /v1/pupils/{upn}/registrations
//   3. attendance summaries per school and combined,  GET /v1/pupils/{upn}/attendance
//      over the current placement (at most 366 days up to the current school day)
//   4. a chart of the weekly combined attendance rate, with its figures as a table
//   5. a week-by-week grid of both schools' marks; a session's button shows its changes
//      GET /v1/pupils/{upn}/marks/{date}/{session}/history
// Every read is the API's own route, so the access audit records each like an API read.
// A pupil the API does not show (404) gets one sentence and a link back, nothing else.
import { ApiError, $, api, problemText, setAlert } from "./api.js";
import { loadCodes, codeMeaning } from "./codes.js";
import { detail, el, schoolDay } from "./dom.js";

const READ_TIMEOUT_MS = 20000;
const WEEKS_SHOWN = 6; // the grid's most recent weeks; the rest behind a button
const MAX_DAYS = 365; // the attendance read covers at most 366 days, both ends included
const DAYS = ["mon", "tue", "wed", "thu", "fri"];
const DAY_NAMES = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"];
const DAY_SHORT = ["Mon", "Tue", "Wed", "Thu", "Fri"];
const SESSIONS = [["AM", "morning"], ["PM", "afternoon"]];
const POSSIBLE = new Set(["present", "aea", "authorised", "unauthorised"]);
const SVG = "http://www.w3.org/2000/svg";

let generation = 0; // bumped by stopPupil: an older view's answers are dropped
let controller = null;

// ---- small helpers ----

// A part of the page: <section aria-labelledby="id"><h2 id="id">title</h2>...
function part(id, title) {
  const section = el("section", undefined, "pupil-part");
  section.setAttribute("aria-labelledby", id);
  const h2 = el("h2", title);
  h2.id = id;
  section.append(h2);
  return section;
}

function svg(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  return e;
}

function get(path) {
  const signal = controller ? controller.signal : undefined;
  return api("GET", path, undefined, { timeoutMs: READ_TIMEOUT_MS, signal });
}

const isIso = (s) => typeof s === "string" && /^\d{4}-\d{2}-\d{2}$/.test(s);

function utc(iso) {
  const [y, m, d] = iso.split("-").map(Number);
  return new Date(Date.UTC(y, m - 1, d));
}

function addDays(iso, n) {
  const d = utc(iso);
  d.setUTCDate(d.getUTCDate() + n);
  return d.toISOString().slice(0, 10);
}

// 0 for Monday ... 6 for Sunday
const weekdayOf = (iso) => (utc(iso).getUTCDay() + 6) % 7;
const mondayOf = (iso) => addDays(iso, -weekdayOf(iso));

function fmt(iso, opts) {
  if (!isIso(iso)) return iso || "";
  return new Intl.DateTimeFormat("en-GB", { timeZone: "UTC", ...opts }).format(utc(iso));
}
const dateLong = (iso) => fmt(iso, { day: "numeric", month: "long", year: "numeric" });
const dateShort = (iso) => fmt(iso, { day: "numeric", month: "short" });
const dayMonth = (iso) => `${DAY_SHORT[weekdayOf(iso)] || ""} ${dateShort(iso)}`;

function timeText(stamp) {
  const d = new Date(stamp);
  if (Number.isNaN(d.getTime())) return stamp || "";
  return new Intl.DateTimeFormat("en-GB", {
    timeZone: "Europe/London", day: "numeric", month: "short", year: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  }).format(d);
}

function percent(rate) {
  return typeof rate === "number" ? `${(rate * 100).toFixed(1)}%` : "No possible sessions";
}

// A table inside a scrolling region that keyboard users can reach (as the overview's).
function tableRegion(id, captionText) {
  const region = el("div", undefined, "table-region");
  region.setAttribute("role", "region");
  region.tabIndex = 0;
  const table = el("table", undefined, "pupil-table");
  const caption = el("caption");
  const span = el("span", captionText, "caption-text");
  span.id = `${id}-caption`;
  caption.append(span);
  table.append(caption);
  region.setAttribute("aria-labelledby", span.id);
  region.append(table);
  return [region, table];
}

function headRow(table, names) {
  const thead = el("thead");
  const tr = el("tr");
  for (const n of names) {
    const th = el("th", n);
    th.scope = "col";
    tr.append(th);
  }
  thead.append(tr);
  table.append(thead);
}

// ---- what the page knows ----

// The view's data, filled as the reads answer.
function newState(user, upn) {
  return {
    user, upn, pupil: null, regs: [], names: new Map(), codes: new Map(), from: null, to: null,
    attendance: null, marks: new Map(), history: null,
  };
}

function schoolLabel(st, urn) {
  const name = st.names.get(urn);
  return name ? `${name} (URN ${urn})` : `URN ${urn}`;
}

function schoolShort(st, urn) {
  return st.names.get(urn) || `URN ${urn}`;
}

// Registrations in force whose period has not ended by `day`.
function current(regs, day) {
  return regs.filter((r) => r.status === "in_force" && (!r.end_date || r.end_date >= day));
}

// The schedule version of a subsidiary registration on a day (null before the first).
function scheduleOn(reg, day) {
  let found = null;
  for (const v of reg.schedules || []) if (v.effective_from <= day) found = v.schedule;
  return found || (reg.schedules && reg.schedules.length ? null : reg.schedule);
}

// The school expected to record the real mark of a session, by the registrations in
// force that day (null when the pupil is on no roll the page knows of).
function expectedUrn(st, day, session) {
  const on = st.regs.filter((r) => r.status === "in_force" && r.start_date <= day &&
    (!r.end_date || r.end_date >= day));
  const main = on.find((r) => r.role === "main");
  const sub = on.find((r) => r.role === "subsidiary");
  if (!sub) return main ? main.urn : null;
  if (!main) return sub.urn;
  const sched = scheduleOn(sub, day);
  const list = sched ? sched[DAYS[weekdayOf(day)]] || [] : [];
  return list.includes(session) ? sub.urn : main.urn;
}

// "every weekday morning", "Monday afternoon; Wednesday afternoon", "no sessions".
function scheduleText(sched) {
  const sets = DAYS.map((d) => {
    const list = (sched && sched[d]) || [];
    return SESSIONS.filter(([s]) => list.includes(s)).map(([, name]) => name);
  });
  const same = sets.every((s) => s.join() === sets[0].join());
  if (same && sets[0].length === 2) return "every weekday session, morning and afternoon";
  if (same && sets[0].length === 1) return `every weekday ${sets[0][0]}`;
  const parts = sets.map((s, i) => (s.length ? `${DAY_NAMES[i]} ${s.join(" and ")}` : ""))
    .filter((p) => p !== "");
  return parts.length ? parts.join("; ") : "no sessions";
}

// The sessions a main registration expects: those no subsidiary registration takes.
function mainText(st, reg) {
  const day = st.to || schoolDay();
  const sub = current(st.regs, day).find((r) => r.role === "subsidiary" && r.urn !== reg.urn);
  if (!sub) return "every weekday session, morning and afternoon";
  const taken = sub.schedule || {};
  const rest = {};
  for (const d of DAYS) rest[d] = ["AM", "PM"].filter((s) => !(taken[d] || []).includes(s));
  return `${scheduleText(rest)} (the other sessions are at ${schoolShort(st, sub.urn)})`;
}

const STATUS = {
  pending: "Pending: awaiting the other school's decision", in_force: "In force",
  declined: "Declined", withdrawn: "Withdrawn", expired: "Expired without a decision",
};

// ---- 1 and 2: the pupil and the placements ----

function renderPupil(st, box) {
  const p = st.pupil;
  const dl = el("dl", undefined, "summary");
  detail(dl, "Name", `${p.given_name} ${p.family_name}`);
  detail(dl, "UPN", p.upn);
  detail(dl, "Date of birth", dateLong(p.date_of_birth));
  dl.id = "pupil-details";
  box.append(dl);
}

function renderPlacements(st, box) {
  const section = part("pupil-placements-title", "Placement and schedule");
  if (st.regs.length === 0) {
    section.append(el("p", "No registration of this pupil is visible to your school."));
    box.append(section);
    return;
  }
  const ul = el("ul", undefined, "placements");
  ul.id = "pupil-placements";
  const today = schoolDay();
  for (const r of st.regs) {
    const li = el("li", undefined, "placement");
    li.dataset.urn = r.urn;
    li.dataset.role = r.role;
    li.append(el("h3", schoolLabel(st, r.urn), "placement-school"));
    const dl = el("dl", undefined, "placement-details");
    detail(dl, "Registration", r.role === "main" ? "Main registration" : "Subsidiary registration");
    detail(dl, "From", dateLong(r.start_date));
    detail(dl, "To", r.end_date ? dateLong(r.end_date) : "No end date");
    let status = STATUS[r.status] || r.status;
    if (r.status === "pending" && r.awaiting) {
      status = r.awaiting === (st.user.school && st.user.school.urn)
        ? "Pending: awaiting your school's decision"
        : `Pending: awaiting the decision of ${schoolShort(st, r.awaiting)}`;
    }
    if (r.status === "in_force" && r.end_date && r.end_date < today) status = "Ended";
    if (r.status === "in_force" && r.start_date > today) status = "In force from its start date";
    if (r.pending_change) status += "; a change is awaiting a decision";
    detail(dl, "Status", status);
    if (r.role === "main") {
      detail(dl, "Expected", mainText(st, r));
    } else {
      detail(dl, "Expected", r.schedule ? scheduleText(r.schedule) : "no sessions");
      const versions = r.schedules || [];
      if (versions.length > 1) {
        detail(dl, "Schedule changes", versions.map((v) =>
          `from ${dateLong(v.effective_from)}: ${scheduleText(v.schedule)}`).join(". "));
      }
    }
    li.append(dl);
    ul.append(li);
  }
  section.append(ul);
  box.append(section);
}

// ---- 3: the summaries ----

function renderSummaries(st, box) {
  const a = st.attendance;
  const section = part("pupil-summary-title", "Attendance");
  section.append(el("p", `From ${dateLong(a.from)} to ${dateLong(a.to)}, the current ` +
    "placement up to the current school day."));
  const meaningD = codeMeaning(st.codes, "D");
  section.append(el("p", "A D mark (" + (meaningD || "dual registered") + ") is not counted " +
    "as a possible session: the session counts at the school the pupil is expected at. " +
    "The combined figures count each session once, by the mark at the school expected " +
    "that session.", "summary-note"));
  const [region, table] = tableRegion("pupil-summary", "Attendance summaries per school and combined");
  region.id = "pupil-summary-region";
  headRow(table, ["School", "Possible sessions", "Present", "Approved educational activity",
    "Authorised absence", "Unauthorised absence", "Not possible (such as D)", "Attendance rate"]);
  const tbody = el("tbody");
  const schools = a.summary.schools || {};
  const order = [...new Set([...st.regs.map((r) => r.urn), ...Object.keys(schools)])]
    .filter((u) => schools[u]);
  const row = (label, s, key) => {
    const tr = el("tr");
    tr.dataset.summary = key;
    const th = el("th", label);
    th.scope = "row";
    tr.append(th);
    for (const v of [s.possible, s.present, s.aea, s.authorised, s.unauthorised, s.not_possible]) {
      tr.append(el("td", String(v), "num"));
    }
    tr.append(el("td", percent(s.rate), "num"));
    tbody.append(tr);
  };
  for (const urn of order) row(schoolLabel(st, urn), schools[urn], urn);
  row("Combined", a.summary.combined, "combined");
  table.append(tbody);
  section.append(region);
  box.append(section);
}

// ---- 4: the weekly chart ----

// Per week (oldest first): sessions possible and attended, by the marks at the school
// expected each session.
function weeklyFigures(st) {
  const weeks = [];
  for (let m = mondayOf(st.from); m <= st.to; m = addDays(m, 7)) {
    weeks.push({ monday: m, possible: 0, attended: 0 });
  }
  for (const mark of st.attendance.marks || []) {
    if (!mark.expected) continue;
    const code = st.codes.get(mark.code);
    const possible = code ? code.possible : POSSIBLE.has(mark.category);
    if (!possible) continue;
    const w = weeks.find((x) => mark.date >= x.monday && mark.date < addDays(x.monday, 7));
    if (!w) continue;
    w.possible++;
    if (mark.category === "present" || mark.category === "aea") w.attended++;
  }
  for (const w of weeks) w.rate = w.possible ? w.attended / w.possible : null;
  return weeks;
}

function chartLabel(weeks) {
  const span = `from the week of ${dateLong(weeks[0].monday)} to the week of ` +
    dateLong(weeks[weeks.length - 1].monday);
  const rates = weeks.filter((w) => w.rate !== null).map((w) => w.rate);
  if (rates.length === 0) {
    return `Weekly combined attendance rate ${span}: no week has a possible session yet.`;
  }
  return `Weekly combined attendance rate ${span}: lowest ${percent(Math.min(...rates))}, ` +
    `highest ${percent(Math.max(...rates))}; ${rates.length} of ${weeks.length} ` +
    `week${weeks.length === 1 ? "" : "s"} had possible sessions.`;
}

function renderChart(st, box) {
  const weeks = weeklyFigures(st);
  const section = part("pupil-chart-title", "Attendance week by week");
  section.append(el("p", "The combined attendance rate of each week of the placement: " +
    "sessions present or at an approved educational activity out of the possible sessions. " +
    "A week without a bar had no possible session.", "muted"));
  const W = 400;
  const H = 210;
  const L = 42;
  const R = 8;
  const T = 12;
  const B = 34;
  const plotW = W - L - R;
  const plotH = H - T - B;
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", focusable: "false",
    class: "chart", id: "pupil-chart" });
  chart.setAttribute("aria-label", chartLabel(weeks));
  for (const pct of [0, 50, 100]) {
    const y = T + plotH - (pct / 100) * plotH;
    chart.append(svg("line", { x1: L, x2: W - R, y1: y, y2: y, stroke: pct ? "#d1d5db" : "#4a4f57",
      "stroke-width": 1 }));
    const t = svg("text", { x: L - 6, y: y + 4, "text-anchor": "end", "font-size": 13,
      fill: "#1b1b1b" });
    t.textContent = `${pct}%`;
    chart.append(t);
  }
  const slot = plotW / weeks.length;
  const barW = Math.max(2, Math.min(40, slot * 0.7));
  weeks.forEach((w, i) => {
    const x = L + i * slot + (slot - barW) / 2;
    if (w.rate !== null) {
      const h = Math.max(1, w.rate * plotH);
      chart.append(svg("rect", { x, y: T + plotH - h, width: barW, height: h, fill: "#1d4ed8" }));
    }
  });
  // x labels: the first and last weeks, and one between when there is room
  const ticks = [...new Set([0, weeks.length > 4 ? Math.floor((weeks.length - 1) / 2) : 0,
    weeks.length - 1])];
  for (const i of ticks) {
    const anchor = i === 0 ? "start" : i === weeks.length - 1 ? "end" : "middle";
    const x = anchor === "start" ? L + i * slot : anchor === "end" ? L + (i + 1) * slot
      : L + (i + 0.5) * slot;
    const t = svg("text", { x, y: H - 12, "text-anchor": anchor, "font-size": 13, fill: "#1b1b1b" });
    t.textContent = dateShort(weeks[i].monday);
    chart.append(t);
  }
  const figure = el("div", undefined, "chart-box");
  figure.append(chart);
  section.append(figure);
  const details = el("details", undefined, "chart-figures");
  details.append(el("summary", "The weekly figures as a table"));
  const [region, table] = tableRegion("pupil-chart-table", "Weekly combined attendance");
  headRow(table, ["Week beginning", "Possible sessions", "Present or approved activity",
    "Attendance rate"]);
  const tbody = el("tbody");
  for (const w of [...weeks].reverse()) {
    const tr = el("tr");
    const th = el("th", dateLong(w.monday));
    th.scope = "row";
    tr.append(th, el("td", String(w.possible), "num"), el("td", String(w.attended), "num"),
      el("td", percent(w.rate), "num"));
    tbody.append(tr);
  }
  table.append(tbody);
  details.append(region);
  section.append(details);
  box.append(section);
}

// ---- 5: the grid of marks and a session's history ----

function markWords(st, mark) {
  let t = `${mark.code}, ${codeMeaning(st.codes, mark.code) || "a code this page does not know"}`;
  if (mark.minutes_late) t += `, ${mark.minutes_late} minutes late`;
  if (mark.source === "derived") t += " (recorded by dualreg)";
  return t;
}

// The marks of one session, the expected school's first.
function sessionMarks(st, day, session) {
  const marks = [...(st.marks.get(`${day}|${session}`) || [])];
  const flagged = marks.find((m) => m.expected);
  const exp = flagged ? flagged.urn : expectedUrn(st, day, session);
  marks.sort((a, b) => (b.urn === exp) - (a.urn === exp));
  return [exp, marks];
}

function cellFor(st, day, session, sessionName, dayIndex) {
  const td = el("td", undefined, "cell");
  const [exp, marks] = sessionMarks(st, day, session);
  const primary = marks.find((m) => m.urn === exp);
  const others = marks.filter((m) => m !== primary);
  const btn = el("button", undefined, "cell-btn");
  btn.type = "button";
  btn.dataset.date = day;
  btn.dataset.session = session;
  btn.append(el("span", primary ? primary.code : "–", primary ? "code-primary" : "code-primary code-none"));
  for (const m of others) btn.append(el("span", m.code, "code-secondary"));
  const parts = [];
  const tips = [];
  if (exp && !primary) {
    parts.push(`${schoolShort(st, exp)} (expected) no mark yet`);
    tips.push(`${schoolShort(st, exp)} (expected): no mark yet`);
  }
  for (const m of marks) {
    const who = `${schoolShort(st, m.urn)}${m.urn === exp ? " (expected)" : ""}`;
    parts.push(`${who} ${markWords(st, m)}`);
    tips.push(`${who}: ${markWords(st, m)}`);
  }
  if (parts.length === 0) parts.push("no mark");
  btn.setAttribute("aria-label",
    `${dayMonth(day)} ${session}: ${parts.join("; ")}. Show the changes to this session.`);
  btn.addEventListener("click", () => showHistory(st, day, session, sessionName, btn));
  const tip = el("span", undefined, dayIndex >= 3 ? "tip tip-end" : "tip");
  tip.setAttribute("aria-hidden", "true");
  for (const t of tips.length ? tips : ["No mark"]) tip.append(el("span", t, "tip-line"));
  td.append(btn, tip);
  // content shown on hover or focus can be dismissed with Escape (WCAG 1.4.13)
  btn.addEventListener("keydown", (e) => {
    if (e.key === "Escape") td.classList.add("tip-off");
  });
  const back = () => td.classList.remove("tip-off");
  btn.addEventListener("blur", back);
  td.addEventListener("mouseleave", back);
  return td;
}

function renderGrid(st, box) {
  const section = part("pupil-grid-title", "Marks at both schools");
  section.append(el("p", "Each session shows the mark at the school expected that session " +
    "first and larger, then the other school's. Point at a session or move to it to see " +
    "what its codes mean; choose it to see every change to its marks below the grid.", "muted"));
  const [region, table] = tableRegion("pupil-grid", "Marks at both schools, week by week, " +
    "most recent week first");
  region.classList.add("grid-region");
  region.id = "pupil-grid-region";
  table.classList.add("grid-table");
  table.id = "pupil-grid";
  const names = ["Week beginning"];
  for (const d of DAY_SHORT) for (const [s] of SESSIONS) names.push(`${d} ${s}`);
  headRow(table, names);
  const tbody = el("tbody");
  const weeks = [];
  for (let m = mondayOf(st.to); m >= mondayOf(st.from); m = addDays(m, -7)) weeks.push(m);
  weeks.forEach((monday, w) => {
    const tr = el("tr");
    tr.dataset.week = monday;
    if (w >= WEEKS_SHOWN) tr.hidden = true;
    const th = el("th", dateLong(monday));
    th.scope = "row";
    th.tabIndex = -1;
    tr.append(th);
    DAYS.forEach((_, i) => {
      const day = addDays(monday, i);
      for (const [s, name] of SESSIONS) {
        if (day < st.from || day > st.to) tr.append(el("td", undefined, "cell cell-out"));
        else tr.append(cellFor(st, day, s, name, i));
      }
    });
    tbody.append(tr);
  });
  table.append(tbody);
  section.append(region);
  if (weeks.length > WEEKS_SHOWN) {
    const more = el("button", `Show earlier weeks (${weeks.length - WEEKS_SHOWN} more)`,
      "button button-secondary");
    more.type = "button";
    more.id = "pupil-grid-more";
    more.addEventListener("click", () => {
      const rows = [...tbody.querySelectorAll("tr[hidden]")];
      for (const r of rows) r.hidden = false;
      more.hidden = true;
      if (rows[0]) rows[0].querySelector("th").focus();
    });
    section.append(more);
  }
  // the history of the session chosen
  const panel = el("section", undefined, "history-panel");
  panel.id = "pupil-history";
  panel.hidden = true;
  panel.setAttribute("aria-labelledby", "pupil-history-title");
  const h3 = el("h3", "Changes to a session");
  h3.id = "pupil-history-title";
  h3.tabIndex = -1;
  const body = el("div");
  body.id = "pupil-history-body";
  panel.append(h3, body);
  section.append(panel);
  box.append(section);
}

const SOURCE = {
  api: "through the API", pull: "from the school's MIS feed", derived: "derived from the schedule",
};

function historyRow(st, h) {
  const tr = el("tr");
  const th = el("th", timeText(h.changed_at));
  th.scope = "row";
  tr.append(th, el("td", schoolLabel(st, h.urn)));
  const mark = h.new;
  if (mark) {
    const meaning = codeMeaning(st.codes, mark.code);
    const td = el("td");
    td.append(el("span", mark.code, "history-code"));
    if (meaning) td.append(el("span", ` ${meaning}`));
    tr.append(td);
  } else {
    tr.append(el("td", h.old ? `Removed (was ${h.old.code})` : "Removed"));
  }
  tr.append(el("td", mark && mark.minutes_late ? String(mark.minutes_late) : "–", "num"));
  const name = h.key && h.key.name ? h.key.name : "an unnamed key";
  tr.append(el("td", `${name}, ${SOURCE[h.source] || h.source}`));
  let reason = h.reason || "–";
  if (mark && mark.comment) reason += `. Comment: ${mark.comment}`;
  tr.append(el("td", reason));
  return tr;
}

async function showHistory(st, day, session, sessionName, btn) {
  const gen = generation;
  const panel = $("pupil-history");
  const title = $("pupil-history-title");
  const body = $("pupil-history-body");
  for (const b of document.querySelectorAll("#pupil-grid .cell-btn[aria-current]")) {
    b.removeAttribute("aria-current");
  }
  btn.setAttribute("aria-current", "true");
  panel.hidden = false;
  title.textContent = `Changes to the marks of ${DAY_NAMES[weekdayOf(day)]} ${dateLong(day)}, ` +
    sessionName;
  body.replaceChildren(el("p", "Loading…", "muted"));
  body.setAttribute("aria-busy", "true");
  title.focus();
  const ctl = { day, session };
  st.history = ctl;
  let answer;
  try {
    answer = await get(`/v1/pupils/${encodeURIComponent(st.upn)}/marks/${day}/${session}/history`);
  } catch (err) {
    if (gen !== generation || st.history !== ctl) return;
    body.removeAttribute("aria-busy");
    body.replaceChildren(el("p", problemText(err), "alert"));
    return;
  }
  if (gen !== generation || st.history !== ctl) return;
  body.removeAttribute("aria-busy");
  const list = answer.history || [];
  const nodes = [];
  if (list.length === 0) {
    nodes.push(el("p", "No mark was ever recorded for this session."));
  } else {
    const [region, table] = tableRegion("pupil-history-table",
      "Every version of the session's marks at both schools, oldest first");
    region.id = "pupil-history-region";
    headRow(table, ["When", "School", "Code", "Minutes late", "Recorded by", "Reason"]);
    const tbody = el("tbody");
    for (const h of list) tbody.append(historyRow(st, h));
    table.append(tbody);
    nodes.push(region);
  }
  const back = el("button", "Back to the session in the grid", "button button-secondary");
  back.type = "button";
  back.addEventListener("click", () => btn.focus());
  nodes.push(back);
  body.replaceChildren(...nodes);
}

// ---- loading the page ----

function backLink() {
  const p = el("p", undefined, "back-link");
  const a = el("a", "Back to the overview");
  a.href = "#/";
  p.append(a);
  return p;
}

function setTitle(text) {
  const h1 = $("pupil-title");
  const refocus = document.activeElement === h1;
  h1.textContent = text;
  document.title = `${text} – dualreg`;
  if (refocus) h1.focus();
}

// The period the page covers: from the start of the current placement (the earliest
// start of the registrations in force; at most 366 days back) to the current school
// day, or the placement's end when it has ended. Null when no registration is in force.
function periodOf(regs) {
  const today = schoolDay();
  const inForce = regs.filter((r) => r.status === "in_force" && r.start_date <= today);
  if (inForce.length === 0) return null;
  const now = current(inForce, today);
  const placement = now.length ? now : inForce;
  let to = today;
  if (!now.length) to = placement.map((r) => r.end_date).sort().pop();
  if (weekdayOf(to) > 4) to = addDays(to, 4 - weekdayOf(to));
  let from = placement.map((r) => r.start_date).sort()[0];
  if (from < addDays(to, -MAX_DAYS)) from = addDays(to, -MAX_DAYS);
  return from <= to ? [from, to] : null;
}

// Each school's name, as the registrations give it (and the user's own school).
function schoolNames(st) {
  const school = st.user.school;
  if (school) st.names.set(school.urn, school.name);
  for (const r of st.regs) if (r.school_name) st.names.set(r.urn, r.school_name);
}

async function load(st, gen) {
  const box = $("pupil-content");
  const upn = st.upn;
  const path = `/v1/pupils/${encodeURIComponent(upn)}`;
  try {
    st.pupil = await get(path);
  } catch (err) {
    if (gen !== generation) return;
    box.removeAttribute("aria-busy");
    if (err instanceof ApiError && err.status === 404) {
      setTitle("Pupil not found");
      const p = el("p", `No pupil with UPN ${upn} is on your school's roll, or you may not ` +
        "see this pupil.");
      p.id = "pupil-not-found";
      box.replaceChildren(p, backLink());
    } else {
      setAlert("pupil-alert", problemText(err));
      box.replaceChildren(backLink());
    }
    return;
  }
  if (gen !== generation) return;
  setTitle(`${st.pupil.given_name} ${st.pupil.family_name}`);
  const errors = [];
  const [regs, codes] = await Promise.all([
    get(`${path}/registrations`).catch((e) => { errors.push(e); return null; }),
    loadCodes().catch((e) => { errors.push(e); return null; }),
  ]);
  if (gen !== generation) return;
  if (regs) st.regs = (regs.registrations || []).slice();
  if (codes) st.codes = codes;
  const order = { main: 0, subsidiary: 1 };
  st.regs.sort((a, b) => (order[a.role] - order[b.role]) || a.start_date.localeCompare(b.start_date));
  schoolNames(st);
  const period = regs ? periodOf(st.regs) : null;
  if (period) {
    [st.from, st.to] = period;
    try {
      st.attendance = await get(`${path}/attendance?from=${st.from}&to=${st.to}`);
    } catch (err) {
      errors.push(err);
    }
    if (gen !== generation) return;
  }
  if (st.attendance) {
    for (const m of st.attendance.marks || []) {
      const key = `${m.date}|${m.session}`;
      if (!st.marks.has(key)) st.marks.set(key, []);
      st.marks.get(key).push(m);
    }
  }
  const nodes = document.createDocumentFragment();
  nodes.append(backLink());
  renderPupil(st, nodes);
  if (regs) renderPlacements(st, nodes);
  if (st.attendance) {
    renderSummaries(st, nodes);
    renderChart(st, nodes);
    renderGrid(st, nodes);
  } else if (regs && !period) {
    nodes.append(el("p", "No registration of this pupil is in force: there is no attendance " +
      "to show.", "pupil-part"));
  }
  box.replaceChildren(nodes);
  box.removeAttribute("aria-busy");
  if (errors.length) setAlert("pupil-alert", problemText(errors[0]));
}

export function startPupil(user, upn) {
  stopPupil();
  controller = new AbortController();
  const gen = generation;
  setAlert("pupil-alert", "");
  const box = $("pupil-content");
  box.setAttribute("aria-busy", "true");
  box.replaceChildren(el("p", "Loading…", "muted"));
  setTitle("Pupil");
  const wanted = String(upn || "").trim().toUpperCase();
  if (wanted === "") {
    box.removeAttribute("aria-busy");
    box.replaceChildren(el("p", "This address does not name a pupil."), backLink());
    return;
  }
  load(newState(user || {}, wanted), gen).catch((err) => {
    if (gen !== generation) return;
    box.removeAttribute("aria-busy");
    setAlert("pupil-alert", problemText(err));
  });
}

export function stopPupil() {
  generation++;
  if (controller) controller.abort();
  controller = null;
}
