// The signed-in page of a home school (mainstream or special): its pupils in alternative
// provision on the current school day. One row per pupil on the school's register who is
// dual-registered (another school is on roll, has a mark, or is expected that session),
// with, for the morning and the afternoon, the school expected to record the real mark,
// the mark at each school and a state.
//
// Above the table, the day's absence and missing-mark alerts (GET /v1/alerts), most
// urgent first: a missing mark (nobody has said where the pupil is), an absence without
// an authorised reason, other absences, then those resolved since by a mark.
//
// Two reads make the table: GET /v1/schools/{urn}/register for AM and for PM (each entry
// holds this school's mark, the expected school and the other school's mark). It stays
// current without reloading: a long poll on GET /v1/changes (from the feed's end when the
// view opens) reads the registers again whenever an event arrives.
import { ApiError, $, api, problemText } from "./api.js";
import { codeMeaning, loadCodes } from "./codes.js";
import { dayText, el, schoolDay } from "./dom.js";

const HOME_KINDS = new Set(["mainstream", "special"]);
const WAIT_S = 25;
const POLL_TIMEOUT_MS = (WAIT_S + 20) * 1000;
const READ_TIMEOUT_MS = 20000;
const RETRY_MS = 5000;
const SESSIONS = [["AM", "Morning"], ["PM", "Afternoon"]];

let generation = 0; // bumped by stopPupils: a poll of an older view ends
let controller = null;

// GET a /v1 JSON answer with the session cookie; rejects with an ApiError. stopPupils
// aborts every request in flight.
function getJson(path, timeoutMs) {
  return api("GET", path, undefined, { timeoutMs, signal: controller?.signal });
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
  if (entry.expected_urn === entry.other_urn && entry.other_school_name) {
    return `${entry.other_school_name} (URN ${entry.expected_urn})`;
  }
  return `Other school (URN ${entry.expected_urn})`;
}

const STATE_CLASS = {
  Present: "state-present", Late: "state-late", Absent: "state-absent",
  "Not yet marked": "state-unmarked", "Not expected": "state-none",
};

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
    const name = document.createElement("th");
    name.scope = "row";
    const link = el("a", `${r.pupil.given_name} ${r.pupil.family_name}`);
    link.href = `#/pupil/${encodeURIComponent(r.pupil.upn)}`;
    name.append(link);
    name.append(document.createElement("br"), el("span", `UPN ${r.pupil.upn}`, "muted upn"));
    tr.append(name);
    SESSIONS.forEach(([code], i) => {
      const e = r.sessions[i];
      const state = stateOf(e);
      const td = (t, cls) => {
        const c = el("td", t, cls);
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

const URGENCY = {
  1: ["Missing mark", "alert-missing"],
  2: ["Absent, no authorised reason", "alert-unexplained"],
  3: ["Absent", "alert-absent"],
  4: ["Resolved", "alert-resolved"],
};

function codeText(codes, code) {
  const meaning = codeMeaning(codes, code);
  return meaning ? `${code} (${meaning})` : code;
}

function alertItem(a, codes) {
  const li = document.createElement("li");
  const [label, cls] = URGENCY[a.urgency] || URGENCY[3];
  li.className = cls;
  li.dataset.upn = a.upn;
  li.dataset.session = a.session;
  li.dataset.type = a.type;
  li.append(el("span", label, "urgency"));
  const link = el("a", `${a.given_name} ${a.family_name}`);
  link.href = `#/pupil/${encodeURIComponent(a.upn)}`;
  const when = a.session === "AM" ? "in the morning" : "in the afternoon";
  const where = `${a.school_name} (URN ${a.urn})`;
  const what = a.type === "attendance.missing"
    ? `: expected at ${where} ${when}, and not marked by the time its register closed.`
    : `: marked absent at ${where} ${when}, ${codeText(codes, a.code)}.`;
  li.append(link, what);
  if (a.resolved && a.current_code) {
    li.append(` Since marked ${codeText(codes, a.current_code)}.`);
  }
  const at = new Date(a.raised_at);
  if (!Number.isNaN(at.getTime())) {
    li.append(" ", el("span", `Raised at ${new Intl.DateTimeFormat("en-GB", {
      hour: "2-digit", minute: "2-digit", timeZone: "Europe/London",
    }).format(at)}.`, "muted"));
  }
  return li;
}

function renderAlerts(answer, codes) {
  const alerts = answer.alerts || [];
  $("alerts-list").replaceChildren(...alerts.map((a) => alertItem(a, codes)));
  $("alerts-list").hidden = alerts.length === 0;
  $("alerts-none").hidden = alerts.length !== 0;
  $("alerts-more").hidden = !answer.truncated;
}

async function refresh(school, date, gen) {
  const urn = encodeURIComponent(school.urn);
  const [codes, alerts, ...registers] = await Promise.all([
    loadCodes(),
    getJson(`/v1/alerts?date=${date}`, READ_TIMEOUT_MS),
    ...SESSIONS.map(([s]) =>
      getJson(`/v1/schools/${urn}/register?date=${date}&session=${s}`, READ_TIMEOUT_MS))]);
  if (gen !== generation) return;
  renderAlerts(alerts, codes);
  render(school, date, registers);
  $("pupils-alert").hidden = true;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The feed's current end (since=now: one read, however long the history).
async function feedEnd() {
  return (await getJson("/v1/changes?since=now", READ_TIMEOUT_MS)).next_cursor;
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
  controller = new AbortController();
  $("alerts-list").replaceChildren();
  $("alerts-list").hidden = true;
  $("alerts-none").hidden = true;
  $("alerts-more").hidden = true;
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
