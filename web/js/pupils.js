// The signed-in page of a home school (mainstream or special): its pupils in alternative
// provision on the current school day. One row per pupil on the school's register who is
// dual-registered (another school is on roll, has a mark, or is expected that session),
// with, for the morning and the afternoon, the school expected to record the real mark,
// the mark at each school and a state.
//
// Two reads make the view: GET /v1/schools/{urn}/register for AM and for PM (each entry
// holds this school's mark, the expected school and the other school's mark). It stays
// current without reloading: a long poll on GET /v1/changes (from the feed's end when the
// view opens) reads the registers again whenever an event arrives.
import { ApiError, $, api, problemText } from "./api.js";

const HOME_KINDS = new Set(["mainstream", "special"]);
const WAIT_S = 25;
const POLL_TIMEOUT_MS = (WAIT_S + 20) * 1000;
const READ_TIMEOUT_MS = 20000;
const RETRY_MS = 5000;
const SESSIONS = [["AM", "Morning"], ["PM", "Afternoon"]];

let generation = 0; // bumped by stopPupils: a poll of an older view ends
let controller = null;

// GET a /v1 JSON answer with the session cookie; rejects with an ApiError. stopPupils
// aborts the request in flight.
function getJson(path, timeoutMs) {
  const ctl = new AbortController();
  controller = ctl;
  return api("GET", path, undefined, { timeoutMs, signal: ctl.signal });
}

// The current school day in Europe/London as YYYY-MM-DD: today, or on a Saturday or
// Sunday the Friday before (weekends have no sessions).
export function schoolDay(now = new Date()) {
  const parts = new Intl.DateTimeFormat("en-GB", {
    timeZone: "Europe/London", year: "numeric", month: "2-digit", day: "2-digit",
  }).formatToParts(now);
  const get = (t) => Number(parts.find((p) => p.type === t).value);
  const d = new Date(Date.UTC(get("year"), get("month") - 1, get("day")));
  const wd = d.getUTCDay();
  if (wd === 6) d.setUTCDate(d.getUTCDate() - 1);
  if (wd === 0) d.setUTCDate(d.getUTCDate() - 2);
  return d.toISOString().slice(0, 10);
}

function dayText(iso) {
  const [y, m, d] = iso.split("-").map(Number);
  return new Intl.DateTimeFormat("en-GB", {
    timeZone: "UTC", weekday: "long", day: "numeric", month: "long", year: "numeric",
  }).format(new Date(Date.UTC(y, m - 1, d)));
}

function markText(mark) {
  if (!mark) return "None";
  let t = mark.code;
  if (mark.minutes_late) t += ` (${mark.minutes_late} min late)`;
  if (mark.source === "derived") t += " (derived)";
  return t;
}

// The state of one session, by the mark at the school expected to record it.
function stateOf(entry) {
  if (!entry || !entry.expected_urn) return "Not expected";
  const mark = entry.expected_here ? entry.mark
    : entry.expected_urn === entry.other_urn ? entry.other_mark : null;
  if (!mark || mark.source === "derived" || mark.code === "D") return "Not yet marked";
  switch (mark.category) {
    case "present":
      return mark.code === "L" || mark.minutes_late ? "Late" : "Present";
    case "aea":
      return "Present";
    case "authorised":
    case "unauthorised":
    case "not_possible":
      return "Absent";
    default: // administrative: # (closed) or Z (not on roll)
      return "Not expected";
  }
}

function expectedText(entry, school) {
  if (!entry || !entry.expected_urn) return "Nowhere";
  if (entry.expected_urn === school.urn) return school.name;
  return `Other school (URN ${entry.expected_urn})`;
}

const STATE_CLASS = {
  Present: "state-present", Late: "state-late", Absent: "state-absent",
  "Not yet marked": "state-unmarked", "Not expected": "state-none",
};

function cell(tag, textValue, cls) {
  const el = document.createElement(tag);
  el.textContent = textValue;
  if (cls) el.className = cls;
  return el;
}

// The rows: every pupil of either register who is dual-registered in either session.
function rowsOf(registers) {
  const byUpn = new Map();
  registers.forEach((reg, i) => {
    for (const p of reg.pupils || []) {
      const dual = p.other_urn || p.other_mark || (p.expected_urn && !p.expected_here);
      if (!byUpn.has(p.upn)) byUpn.set(p.upn, { pupil: p, sessions: [null, null], dual: false });
      const row = byUpn.get(p.upn);
      row.sessions[i] = p;
      if (dual) row.dual = true;
    }
  });
  return [...byUpn.values()].filter((r) => r.dual);
}

function render(school, date, registers) {
  const rows = rowsOf(registers);
  $("pupils-date").textContent = dayText(date);
  $("pupils-caption").textContent =
    `Pupils in alternative provision on ${dayText(date)}: where each is expected, ` +
    "the marks at both schools and the state, morning and afternoon";
  const body = $("pupils-body");
  body.replaceChildren();
  for (const r of rows) {
    const tr = document.createElement("tr");
    tr.dataset.upn = r.pupil.upn;
    const name = cell("th", `${r.pupil.given_name} ${r.pupil.family_name}`);
    name.scope = "row";
    name.append(document.createElement("br"), cell("span", `UPN ${r.pupil.upn}`, "muted upn"));
    tr.append(name);
    SESSIONS.forEach(([code], i) => {
      const e = r.sessions[i];
      const state = stateOf(e);
      const td = (t, cls) => {
        const c = cell("td", t, cls);
        c.dataset.session = code;
        return c;
      };
      tr.append(td(expectedText(e, school)), td(markText(e && e.mark), "mark-here"),
        td(markText(e && e.other_mark), "mark-other"), td(state, `state ${STATE_CLASS[state]}`));
    });
    body.append(tr);
  }
  $("pupils-table-region").hidden = rows.length === 0;
  $("pupils-scroll-hint").hidden = rows.length === 0;
  $("pupils-none").hidden = rows.length !== 0;
  $("pupils-updated").textContent = `Last brought up to date at ${new Intl.DateTimeFormat("en-GB", {
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  }).format(new Date())}.`;
}

async function refresh(school, date, gen) {
  const urn = encodeURIComponent(school.urn);
  const registers = await Promise.all(SESSIONS.map(([s]) =>
    getJson(`/v1/schools/${urn}/register?date=${date}&session=${s}`, READ_TIMEOUT_MS)));
  if (gen !== generation) return;
  render(school, date, registers);
  $("pupils-alert").hidden = true;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The feed's current end: pages of 1000 until one comes back short.
async function feedEnd() {
  let cursor = null;
  for (;;) {
    const q = cursor ? `since=${encodeURIComponent(cursor)}&` : "";
    const page = await getJson(`/v1/changes?${q}limit=1000`, READ_TIMEOUT_MS);
    cursor = page.next_cursor;
    if (!page.changes || page.changes.length < 1000) return cursor;
  }
}

function showError(err) {
  const el = $("pupils-alert");
  el.textContent = problemText(err);
  el.hidden = false;
}

async function follow(school, gen) {
  let date = schoolDay();
  let cursor = null;
  for (;;) {
    if (gen !== generation) return;
    try {
      if (cursor === null) {
        cursor = await feedEnd();
        await refresh(school, date, gen);
      }
      const page = await getJson(
        `/v1/changes?since=${encodeURIComponent(cursor)}&limit=1000&wait=${WAIT_S}`, POLL_TIMEOUT_MS);
      if (gen !== generation) return;
      cursor = page.next_cursor;
      const day = schoolDay();
      if ((page.changes && page.changes.length > 0) || day !== date) {
        date = day;
        await refresh(school, date, gen);
      }
    } catch (err) {
      if (gen !== generation) return;
      if (err instanceof ApiError && err.status === 401) return; // signed out or expired
      showError(err);
      const wait = err instanceof ApiError && err.retryAfter ? err.retryAfter * 1000 : RETRY_MS;
      await sleep(Math.min(wait, 60000));
      if (err instanceof ApiError && err.slug === "invalid-cursor") cursor = null;
    }
  }
}

// Shows the view for the signed-in user's school when it is a home school (else hides
// it) and keeps it current until stopPupils.
export function startPupils(user) {
  stopPupils();
  const school = user && user.school;
  const section = $("pupils");
  if (!school || !HOME_KINDS.has(school.kind)) {
    section.hidden = true;
    return;
  }
  section.hidden = false;
  $("pupils-body").replaceChildren();
  $("pupils-table-region").hidden = true;
  $("pupils-scroll-hint").hidden = true;
  $("pupils-none").hidden = true;
  $("pupils-alert").hidden = true;
  $("pupils-updated").textContent = "Loading…";
  follow(school, generation);
}

export function stopPupils() {
  generation++;
  if (controller) controller.abort();
  controller = null;
}
