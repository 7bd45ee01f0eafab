// The signed-in page's registration requests, for any school user: those awaiting this
// school's decision (with the pupil's name and date of birth, a Confirm and a Decline
// button, and an optional reason for declining) and those this school made, waiting for
// the other school. One read makes the view: GET /v1/registrations?status=pending (pages
// of 100 until next_cursor is null). A decision (POST /v1/registrations/{id}/confirm or
// .../decline) reads the list again and says what happened in the page's status line.
import { ApiError, $, api, problemText, setStatus } from "./api.js";
import { dayText, detail, el } from "./dom.js";

const READ_TIMEOUT_MS = 20000;
const MAX_PAGES = 20;

let generation = 0; // bumped by stopRequests: an older read's answer is dropped
let controller = null;
let current = null; // the signed-in user's school

// A school as the request names it: the registration's own school by its name.
function schoolText(r, urn) {
  return urn === r.urn && r.school_name ? `${r.school_name} (URN ${urn})` : `URN ${urn}`;
}

function setAlert(message) {
  const el = $("requests-alert");
  el.textContent = message || "";
  el.hidden = !message;
}

// The school a request awaits (a pending registration, or a pending change of one in
// force) and the school that made it.
function awaitingOf(r) {
  return r.awaiting || (r.pending_change && r.pending_change.awaiting) || null;
}

function requesterOf(r) {
  return r.pending_change ? r.pending_change.requested_by : r.requested_by;
}

function pupilName(r) {
  const p = r.pupil;
  return p ? `${p.given_name} ${p.family_name}` : `the pupil with UPN ${r.upn}`;
}

function whatText(r) {
  const role = r.role === "main" ? "main" : "subsidiary";
  let t = r.pending_change
    ? `A change to the ${role} registration at ${schoolText(r, r.urn)}`
    : `A ${role} registration at ${schoolText(r, r.urn)} from ${dayText(r.start_date, false)}`;
  if (!r.pending_change && r.end_date) t += ` to ${dayText(r.end_date, false)}`;
  return `${t}.`;
}

function incomingItem(r) {
  const li = el("li", undefined, "request");
  li.dataset.id = String(r.id);
  const name = pupilName(r);
  li.append(el("h4", name, "request-name"));
  const dl = el("dl", undefined, "request-details");
  if (r.pupil) {
    detail(dl, "Date of birth", dayText(r.pupil.date_of_birth, false));
    detail(dl, "UPN", r.pupil.upn);
  }
  detail(dl, "Request", whatText(r));
  detail(dl, "Asked by", requesterOf(r) ? schoolText(r, requesterOf(r)) : "An administrator");
  li.append(dl);
  const reasonId = `request-reason-${r.id}`;
  const field = el("div", undefined, "field");
  const label = el("label", `Reason for declining (optional)`);
  label.htmlFor = reasonId;
  const input = el("input");
  input.id = reasonId;
  input.type = "text";
  input.maxLength = 500;
  input.autocomplete = "off";
  field.append(label, input);
  li.append(field);
  const actions = el("div", undefined, "actions");
  const confirm = el("button", "Confirm", "button");
  confirm.type = "button";
  confirm.dataset.action = "confirm";
  confirm.setAttribute("aria-label", `Confirm the request for ${name}`);
  const decline = el("button", "Decline", "button button-secondary");
  decline.type = "button";
  decline.dataset.action = "decline";
  decline.setAttribute("aria-label", `Decline the request for ${name}`);
  confirm.addEventListener("click", () => decide(r, "confirm", confirm));
  decline.addEventListener("click", () => decide(r, "decline", decline, input));
  actions.append(confirm, decline);
  li.append(actions);
  return li;
}

function outgoingItem(r) {
  const li = el("li", undefined, "request");
  li.dataset.id = String(r.id);
  li.append(el("h4", pupilName(r), "request-name"));
  const dl = el("dl", undefined, "request-details");
  detail(dl, "Request", whatText(r));
  detail(dl, "Waiting for", schoolText(r, awaitingOf(r)));
  if (r.expires_at || (r.pending_change && r.pending_change.expires_at)) {
    const at = new Date(r.expires_at || r.pending_change.expires_at);
    detail(dl, "Expires", new Intl.DateTimeFormat("en-GB", {
      day: "numeric", month: "long", year: "numeric", hour: "2-digit", minute: "2-digit",
    }).format(at));
  }
  li.append(dl);
  return li;
}

function render(school, list) {
  const incoming = list.filter((r) => awaitingOf(r) === school.urn);
  const outgoing = list.filter((r) => awaitingOf(r) !== school.urn && requesterOf(r) === school.urn);
  $("requests-incoming").replaceChildren(...incoming.map(incomingItem));
  $("requests-outgoing").replaceChildren(...outgoing.map(outgoingItem));
  $("requests-incoming").hidden = incoming.length === 0;
  $("requests-outgoing").hidden = outgoing.length === 0;
  $("requests-incoming-none").hidden = incoming.length !== 0;
  $("requests-outgoing-none").hidden = outgoing.length !== 0;
  $("requests-loading").hidden = true;
}

async function load(gen) {
  const school = current;
  const ctl = new AbortController();
  controller = ctl;
  const all = [];
  let cursor = null;
  for (let i = 0; i < MAX_PAGES; i++) {
    const q = cursor ? `&cursor=${encodeURIComponent(cursor)}` : "";
    const page = await api("GET", `/v1/registrations?status=pending&limit=100${q}`, undefined,
      { timeoutMs: READ_TIMEOUT_MS, signal: ctl.signal });
    if (gen !== generation) return;
    all.push(...(page.registrations || []));
    cursor = page.next_cursor;
    if (!cursor) break;
  }
  render(school, all);
  setAlert("");
}

async function refresh() {
  const gen = generation;
  try {
    await load(gen);
  } catch (err) {
    if (gen !== generation) return;
    if (err instanceof ApiError && err.status === 401) return;
    $("requests-loading").hidden = true;
    setAlert(problemText(err));
  }
}

async function decide(r, action, button, reasonInput) {
  if (button.dataset.busy === "1") return;
  button.dataset.busy = "1";
  const name = pupilName(r);
  const gen = generation;
  let body;
  if (action === "decline") {
    const reason = reasonInput ? reasonInput.value.trim() : "";
    body = reason ? { reason } : {};
  }
  setStatus(action === "confirm" ? `Confirming the request for ${name}…` :
    `Declining the request for ${name}…`);
  try {
    await api("POST", `/v1/registrations/${encodeURIComponent(r.id)}/${action}`, body,
      { idempotent: true });
    if (gen !== generation) return;
    await refresh();
    setStatus(action === "confirm"
      ? `The request for ${name} is confirmed: the registration is in force.`
      : `The request for ${name} is declined.`);
    $("requests-title").focus();
  } catch (err) {
    if (gen !== generation) return;
    setStatus("");
    setAlert(problemText(err));
    if (err instanceof ApiError && err.status === 409) await refresh();
  } finally {
    button.dataset.busy = "";
  }
}

// Shows the requests of the signed-in user's school (hidden for a user without one).
export function startRequests(user) {
  stopRequests();
  const school = user && user.school;
  const section = $("requests");
  if (!school) {
    section.hidden = true;
    return;
  }
  current = school;
  section.hidden = false;
  $("requests-incoming").replaceChildren();
  $("requests-outgoing").replaceChildren();
  for (const id of ["requests-incoming", "requests-outgoing", "requests-incoming-none",
    "requests-outgoing-none"]) $(id).hidden = true;
  $("requests-loading").hidden = false;
  setAlert("");
  refresh();
}

export function stopRequests() {
  generation++;
  if (controller) controller.abort();
  controller = null;
  current = null;
}
