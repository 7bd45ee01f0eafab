// Sync health: #/sync. Whether a school's integration with dualreg works.
//
// For a member of a school's staff: GET /v1/schools/{urn}/sync, shown as an overall
// "Healthy" or "Needs attention" line with its reasons, then each webhook subscription
// (address, deliveries waiting and the oldest one's age, delivered and failed in the
// last 24 hours, the latest error), the pulled MIS feed's state, and when the API last
// recorded a mark for the school.
//
// For an administrator (no school): every school (GET /v1/schools, pages of 100, at most
// MAX_SCHOOLS) in a table with each school's overall state, its sync health read four
// schools at a time; each row's details open in place (details/summary).
import { ApiError, $, api, problemText, setAlert, setStatus } from "./api.js";
import { detail, el, plural } from "./dom.js";

const READ_TIMEOUT_MS = 20000;
const MAX_SCHOOLS = 200;
const PAGE_SIZE = 100;
const WORKERS = 4;
const WAITING_TOO_LONG_S = 900; // a delivery waiting longer needs attention
const KINDS = {
  mainstream: "Mainstream school", special: "Special school", pru: "Pupil Referral Unit",
  ap: "Alternative provider",
};

let generation = 0; // bumped by stopSync: older answers are dropped
let controller = null;

function get(path, signal) {
  return api("GET", path, undefined, { timeoutMs: READ_TIMEOUT_MS, signal });
}

// ---- words for times ----

function timeText(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return new Intl.DateTimeFormat("en-GB", {
    timeZone: "Europe/London", day: "numeric", month: "short", year: "numeric",
    hour: "2-digit", minute: "2-digit",
  }).format(d);
}

function durationText(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return plural(s, "second", "seconds");
  if (s < 3600) return plural(Math.floor(s / 60), "minute", "minutes");
  if (s < 172800) return plural(Math.floor(s / 3600), "hour", "hours");
  return plural(Math.floor(s / 86400), "day", "days");
}

// "27 Nov 2026, 14:05 (3 hours ago)"
function whenText(iso) {
  if (!iso) return "";
  const t = new Date(iso).getTime();
  if (Number.isNaN(t)) return iso;
  const ago = (Date.now() - t) / 1000;
  const rel = ago >= 0 ? `${durationText(ago)} ago` : `in ${durationText(-ago)}`;
  return `${timeText(iso)} (${rel})`;
}

// ---- the assessment ----

// What needs attention, as sentences; none: healthy.
function problemsOf(h) {
  const out = [];
  for (const s of h.subscriptions || []) {
    if (s.state === "disabled") {
      out.push(`The webhook to ${s.url} is turned off: its endpoint answered 410 Gone.`);
    } else if (s.oldest_undelivered_age_s !== null && s.oldest_undelivered_age_s >= WAITING_TOO_LONG_S) {
      out.push(`Events for ${s.url} have waited ${durationText(s.oldest_undelivered_age_s)} ` +
        "to be delivered.");
    }
    if (s.failed_24h > 0) {
      out.push(`${plural(s.failed_24h, "delivery", "deliveries")} to ${s.url} failed in the ` +
        "last 24 hours.");
    }
  }
  if (h.pull && h.pull.state === "failing") {
    out.push(`The MIS feed is failing${h.pull.last_error ? `: ${h.pull.last_error}` : ""}.`);
  }
  return out;
}

// Why it is healthy, as one sentence.
function healthyText(h) {
  const subs = h.subscriptions || [];
  const parts = [subs.length === 0 ? "no webhook subscriptions"
    : "webhook deliveries are up to date"];
  if (!h.pull) parts.push("no pulled MIS feed");
  else if (h.pull.state === "never-pulled") parts.push("the MIS feed has not been pulled yet");
  else parts.push("the MIS feed works");
  return `Nothing is failing or waiting too long: ${parts.join(", ")}.`;
}

function overall(h) {
  const problems = problemsOf(h);
  return { healthy: problems.length === 0, problems, why: problems.length ? problems : [healthyText(h)] };
}

function stateBadge(healthy) {
  return el("strong", healthy ? "Healthy" : "Needs attention",
    `sync-state ${healthy ? "sync-healthy" : "sync-attention"}`);
}

// ---- one school's details ----

function subscriptionItem(s, level) {
  const li = el("li", undefined, "sync-item");
  li.append(el(`h${level}`, s.url, "sync-url"));
  const dl = el("dl", undefined, "sync-details");
  detail(dl, "State", s.state === "disabled"
    ? "Turned off: the endpoint answered 410 Gone, nothing is sent to it" : "Active");
  detail(dl, "Waiting to be delivered", String(s.backlog));
  detail(dl, "Oldest waiting", s.oldest_undelivered_age_s === null ? "Nothing is waiting"
    : `${durationText(s.oldest_undelivered_age_s)}`);
  detail(dl, "Delivered in the last 24 hours", String(s.delivered_24h));
  detail(dl, "Failed in the last 24 hours", String(s.failed_24h));
  detail(dl, "Latest error", s.last_error
    ? `${s.last_error}${s.last_error_at ? `, ${whenText(s.last_error_at)}` : ""}` : "None");
  li.append(dl);
  return li;
}

const PULL_STATES = {
  ok: "Working", failing: "Failing", "never-pulled": "Not pulled yet",
};

function pullDetails(p) {
  const dl = el("dl", undefined, "sync-details");
  detail(dl, "Address", p.url);
  detail(dl, "State", PULL_STATES[p.state] || p.state);
  detail(dl, "Last success", p.last_ok_at ? whenText(p.last_ok_at) : "Never");
  detail(dl, "Latest error", p.last_error
    ? `${p.last_error}${p.last_error_at ? `, ${whenText(p.last_error_at)}` : ""}` : "None");
  detail(dl, "Failed attempts in a row", String(p.failures));
  detail(dl, "Next pull", p.next_at ? whenText(p.next_at) : "Not planned");
  detail(dl, "Items refused", String(p.rejected));
  return dl;
}

// The details of one school's health, with headings from level down; who names the
// school in sentences ("your school", "Hill School").
function healthDetails(h, level, who, idPrefix) {
  const box = el("div", undefined, "sync-school");
  const subsTitle = el(`h${level}`, "Webhook subscriptions");
  box.append(subsTitle);
  const subs = h.subscriptions || [];
  if (subs.length === 0) {
    const none = el("p", `${who} has no webhook subscriptions: dualreg sends no events to ` +
      `${who === "Your school" ? "your" : "its"} systems.`);
    none.id = `${idPrefix}-subscriptions-none`;
    box.append(none);
  } else {
    subsTitle.id = `${idPrefix}-subscriptions-title`;
    const ul = el("ul", undefined, "sync-list");
    ul.setAttribute("aria-labelledby", subsTitle.id);
    ul.append(...subs.map((s) => subscriptionItem(s, level + 1)));
    box.append(ul);
  }
  box.append(el(`h${level}`, "Pulled MIS feed"));
  if (!h.pull) {
    box.append(el("p", `${who} has no pulled MIS feed: dualreg does not fetch marks from ` +
      `${who === "Your school" ? "your" : "its"} MIS.`));
  } else {
    box.append(pullDetails(h.pull));
  }
  box.append(el(`h${level}`, "Marks through the API"));
  box.append(el("p", h.last_api_mark_at
    ? `The API last recorded a mark for ${who === "Your school" ? "your school" : who} on ` +
      `${whenText(h.last_api_mark_at)}.`
    : `The API has never recorded a mark for ${who === "Your school" ? "your school" : who}.`));
  return box;
}

function overallLine(h, id) {
  const o = overall(h);
  const wrap = el("div", undefined, `sync-overall ${o.healthy ? "sync-overall-healthy" : "sync-overall-attention"}`);
  wrap.id = id;
  const p = el("p", undefined, "sync-overall-line");
  p.append(stateBadge(o.healthy));
  if (o.why.length === 1) {
    p.append(`. ${o.why[0]}`);
    wrap.append(p);
  } else {
    p.append(":");
    const ul = el("ul", undefined, "sync-reasons");
    ul.append(...o.why.map((w) => el("li", w)));
    wrap.append(p, ul);
  }
  return wrap;
}

function checkedLine() {
  return `Checked at ${new Intl.DateTimeFormat("en-GB", {
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  }).format(new Date())}.`;
}

// ---- a school's own view ----

async function showSchool(school, gen) {
  const content = $("sync-content");
  const ctl = new AbortController();
  controller = ctl;
  content.replaceChildren(el("p", "Loading…", "muted"));
  try {
    const h = await get(`/v1/schools/${encodeURIComponent(school.urn)}/sync`, ctl.signal);
    if (gen !== generation) return;
    const again = el("button", "Check again", "button button-secondary");
    again.type = "button";
    again.addEventListener("click", () => {
      setStatus("Checking the sync health again…");
      showSchool(school, generation).then(() => {
        if (gen === generation) setStatus("Sync health checked again.");
      });
    });
    content.replaceChildren(
      el("p", `${school.name} (URN ${school.urn}): how your school's systems and dualreg ` +
        "exchange marks and events."),
      overallLine(h, "sync-overall"),
      healthDetails(h, 2, "Your school", "sync"),
      el("p", checkedLine(), "muted"),
      again);
    setAlert("sync-alert", "");
  } catch (err) {
    if (gen !== generation) return;
    if (err instanceof ApiError && err.status === 401) return;
    content.replaceChildren();
    setAlert("sync-alert", `The sync health could not be read. ${problemText(err)}`);
  }
}

// ---- every school, for an administrator ----

async function listSchools(signal, gen) {
  const all = [];
  let cursor = null;
  let more = false;
  while (all.length < MAX_SCHOOLS) {
    const limit = Math.min(PAGE_SIZE, MAX_SCHOOLS - all.length);
    const q = cursor ? `&cursor=${encodeURIComponent(cursor)}` : "";
    const page = await get(`/v1/schools?limit=${limit}${q}`, signal);
    if (gen !== generation) return null;
    all.push(...(page.schools || []));
    cursor = page.next_cursor;
    more = Boolean(cursor);
    if (!cursor) break;
  }
  return { schools: all.slice(0, MAX_SCHOOLS), more };
}

// A school's two rows: its name, kind and state; under them, its details (closed).
function schoolRow(school) {
  const tr = el("tr", undefined, "sync-row");
  tr.dataset.urn = school.urn;
  const th = el("th");
  th.scope = "row";
  th.append(el("span", school.name, "sync-school-name"), el("br"),
    el("span", `URN ${school.urn}`, "muted sync-urn"), el("br"),
    el("span", KINDS[school.kind] || school.kind, "muted sync-kind"));
  const state = el("td", undefined, "sync-state-cell");
  const badge = el("span", "Checking…", "muted");
  const why = el("p", "", "sync-why");
  state.append(badge, why);
  tr.append(th, state);
  const more = el("tr", undefined, "sync-more-row");
  more.dataset.detailsFor = school.urn;
  const details = el("td");
  details.colSpan = 2;
  more.append(details);
  return { rows: [tr, more], tr, badge, why, details };
}

function fillRow(row, school, h) {
  const o = overall(h);
  row.tr.dataset.state = o.healthy ? "healthy" : "attention";
  const badge = stateBadge(o.healthy);
  row.badge.replaceWith(badge);
  row.badge = badge;
  row.why.textContent = o.why.join(" ");
  const d = el("details", undefined, "sync-expand");
  const summary = el("summary", "Details");
  summary.append(el("span", ` of ${school.name}`, "sync-hidden"));
  d.append(summary, healthDetails(h, 3, school.name, `sync-${school.urn}`));
  row.details.replaceChildren(d);
}

function failRow(row, err) {
  row.tr.dataset.state = "unknown";
  const badge = el("strong", "Not known", "sync-state sync-attention");
  row.badge.replaceWith(badge);
  row.badge = badge;
  row.why.textContent = `Could not be checked: ${problemText(err)}`;
  row.details.replaceChildren();
}

async function showAdmin(gen) {
  const content = $("sync-content");
  const ctl = new AbortController();
  controller = ctl;
  content.replaceChildren(el("p", "Loading…", "muted"));
  let listed;
  try {
    listed = await listSchools(ctl.signal, gen);
  } catch (err) {
    if (gen !== generation) return;
    if (err instanceof ApiError && err.status === 401) return;
    content.replaceChildren();
    setAlert("sync-alert", `The schools could not be read. ${problemText(err)}`);
    return;
  }
  if (!listed || gen !== generation) return;
  const { schools, more } = listed;
  const title = el("h2", "Schools");
  title.id = "sync-schools-title";
  const summary = el("p", "", "sync-summary");
  summary.id = "sync-summary";
  summary.setAttribute("aria-live", "polite");
  const nodes = [el("p", "Every school's integration: webhook deliveries, the pulled MIS feed " +
    "and marks through the API. Open a school's details for more."), title, summary];
  if (more) {
    nodes.push(el("p", `Only the first ${MAX_SCHOOLS} schools by URN are shown.`, "muted"));
  }
  if (schools.length === 0) {
    summary.textContent = "There are no schools yet.";
    content.replaceChildren(...nodes);
    return;
  }
  const region = el("div", undefined, "table-region");
  region.setAttribute("role", "region");
  region.setAttribute("aria-labelledby", "sync-schools-title");
  region.tabIndex = 0;
  const table = el("table", undefined, "sync-table");
  const caption = el("caption");
  caption.append(el("span", "Each school's sync health: healthy, or what needs attention; " +
    "its details under it", "caption-text"));
  const head = el("thead");
  const hr = el("tr");
  for (const h of ["School", "State"]) {
    const th = el("th", h);
    th.scope = "col";
    hr.append(th);
  }
  head.append(hr);
  const body = el("tbody");
  body.id = "sync-schools-body";
  const rows = schools.map(schoolRow);
  body.append(...rows.flatMap((r) => r.rows));
  table.append(caption, head, body);
  region.append(table);
  const updated = el("p", "", "muted");
  content.replaceChildren(...nodes, region, updated);
  summary.textContent = `Checking ${plural(schools.length, "school", "schools")}…`;

  let next = 0;
  let attention = 0;
  let done = 0;
  const worker = async () => {
    while (next < schools.length) {
      const i = next++;
      const school = schools[i];
      try {
        const h = await get(`/v1/schools/${encodeURIComponent(school.urn)}/sync`, ctl.signal);
        if (gen !== generation) return;
        fillRow(rows[i], school, h);
        if (!overall(h).healthy) attention++;
      } catch (err) {
        if (gen !== generation) return;
        if (err instanceof ApiError && err.status === 401) return;
        failRow(rows[i], err);
        attention++;
      }
      done++;
    }
  };
  await Promise.all(Array.from({ length: Math.min(WORKERS, schools.length) }, worker));
  if (gen !== generation) return;
  summary.textContent = `${plural(schools.length, "school", "schools")}: ` +
    (attention === 0 ? "every one is healthy."
      : `${plural(attention, "needs", "need")} attention.`);
  if (done < schools.length) summary.textContent += " Some could not be checked.";
  updated.textContent = checkedLine();
  setAlert("sync-alert", "");
}

// Shows the signed-in user's school's sync health, or every school's for an
// administrator.
export function startSync(user) {
  stopSync();
  setStatus("");
  const gen = generation;
  const school = user && user.school;
  if (school) showSchool(school, gen);
  else showAdmin(gen);
}

export function stopSync() {
  generation++;
  if (controller) controller.abort();
  controller = null;
}
