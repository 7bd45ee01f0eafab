// Today's register for a provider (a PRU or an alternative provider): #/register.
//
// The pupils expected at the school this session on the current school day (GET
// /v1/schools/{urn}/register, the entries with expected_here), a card each, with the
// pupil's mark and one tap per usual mark: Present (/ in the morning, \ in the
// afternoon), Late (with the minutes late) and Absent (with a code chosen from the
// absence codes in force, GET /v1/attendance-codes through codes.js). Changing a real
// mark is an amendment and needs a reason (unless the mark was N, "no reason yet").
// A mark is saved through POST /v1/marks (one item, with an Idempotency-Key); the card
// and the page's status line say what happened. The register is read again every
// minute while shown and after each save; a Morning/Afternoon switch picks the session.
//
// Home schools' registers are kept in their MIS: they get a sentence saying so.
import { ApiError, $, api, problemText, setAlert, setStatus } from "./api.js";
import { codeMeaning, loadCodes } from "./codes.js";
import { dayText, el, plural, schoolDay } from "./dom.js";

const PROVIDER_KINDS = new Set(["pru", "ap"]);
const READ_TIMEOUT_MS = 20000;
const RELOAD_MS = 60000;
const LATE_MIN = 1;
const LATE_MAX = 300;
const REASON_MAX = 1000;
const SESSION_NAMES = { AM: "morning", PM: "afternoon" };
const PRESENT = { AM: "/", PM: "\\" };
// the absence codes offered first, most used first; the others follow by code
const FIRST_ABSENCES = ["I", "M", "N", "O"];

let generation = 0; // bumped by stopRegister: older answers and timers are dropped
let controller = null;
let timer = null;
let view = null; // {school, date, session, codes, cards: Map upn -> card, seq}

// AM before noon in Europe/London, else PM.
function sessionNow(now = new Date()) {
  const hour = Number(new Intl.DateTimeFormat("en-GB", {
    timeZone: "Europe/London", hour: "2-digit", hourCycle: "h23",
  }).format(now));
  return hour < 12 ? "AM" : "PM";
}

// A mark a person recorded: not none, not a derived D.
function isReal(mark) {
  return Boolean(mark) && mark.source !== "derived" && mark.code !== "D";
}

// Whether saving code over the card's mark needs a reason: a different code over a real
// mark other than N (the server's rule).
function reasonNeeded(card, code) {
  const m = card.entry.mark;
  return isReal(m) && m.code !== code && m.code !== "N";
}

// Whether any save over the card's mark is an amendment that asks for a reason.
function mayNeedReason(card) {
  const m = card.entry.mark;
  return isReal(m) && m.code !== "N";
}

// The absence codes in force on date: category authorised or unauthorised.
function absenceCodes(codes, date) {
  const list = [...codes.values()].filter((c) =>
    (c.category === "authorised" || c.category === "unauthorised") &&
    (!c.valid_from || c.valid_from <= date) && (!c.valid_to || date <= c.valid_to));
  const rank = (c) => {
    const i = FIRST_ABSENCES.indexOf(c.code);
    return i < 0 ? FIRST_ABSENCES.length : i;
  };
  return list.sort((a, b) => rank(a) - rank(b) || a.code.localeCompare(b.code));
}

function markSentence(mark) {
  if (!mark) return "";
  let t = codeMeaning(view.codes, mark.code);
  if (mark.minutes_late) t += `${t ? ", " : ""}${plural(mark.minutes_late, "minute", "minutes")} late`;
  if (mark.source === "derived") t += `${t ? " " : ""}(set by dualreg)`;
  return t;
}

function markShort(code, minutes) {
  return minutes ? `${code} (${plural(minutes, "minute", "minutes")} late)` : code;
}

// ---- the cards ----

function pupilName(entry) {
  return `${entry.given_name} ${entry.family_name}`;
}

function updateMark(card) {
  const m = card.entry.mark;
  card.li.dataset.code = m ? m.code : "";
  card.code.textContent = m ? m.code : "None";
  card.meaning.textContent = m ? markSentence(m) : "no mark yet";
  card.code.className = `reg-code${isReal(m) ? "" : " reg-code-none"}`;
}

function newCard(entry) {
  const id = `reg-${entry.upn}`;
  const card = { entry, li: el("li", undefined, "reg-card"), form: null, action: null };
  card.li.dataset.upn = entry.upn;
  card.name = el("h2", pupilName(entry), "reg-name");
  card.name.id = `${id}-name`;
  card.li.append(card.name, el("p", `UPN ${entry.upn}`, "muted reg-upn"));
  const markLine = el("p", undefined, "reg-mark");
  card.code = el("strong");
  card.meaning = el("span", undefined, "reg-meaning");
  markLine.append(el("span", "Mark: ", "reg-mark-label"), card.code, " ", card.meaning);
  card.li.append(markLine);
  const actions = el("div", undefined, "reg-actions");
  actions.setAttribute("role", "group");
  actions.setAttribute("aria-labelledby", card.name.id);
  card.buttons = {};
  for (const [action, label, cls] of [["present", "Present", "button"],
    ["late", "Late", "button button-secondary"], ["absent", "Absent", "button button-secondary"]]) {
    const b = el("button", label, cls);
    b.type = "button";
    b.dataset.action = action;
    if (action !== "present") b.setAttribute("aria-expanded", "false");
    b.addEventListener("click", () => choose(card, action));
    card.buttons[action] = b;
    actions.append(b);
  }
  card.li.append(actions);
  card.panel = el("div", undefined, "reg-panel");
  card.panel.hidden = true;
  card.result = el("p", undefined, "reg-result");
  card.result.hidden = true;
  card.li.append(card.panel, card.result);
  updateMark(card);
  return card;
}

function showResult(card, message, ok) {
  card.result.textContent = message;
  card.result.className = `reg-result ${ok ? "reg-result-ok" : "reg-result-refused"}`;
  card.result.hidden = !message;
}

function closeForm(card, focusAction) {
  card.panel.replaceChildren();
  card.panel.hidden = true;
  card.form = null;
  card.action = null;
  for (const [action, b] of Object.entries(card.buttons)) {
    if (action === "present") b.removeAttribute("aria-expanded");
    else b.setAttribute("aria-expanded", "false");
  }
  if (focusAction && card.buttons[focusAction]) card.buttons[focusAction].focus();
}

// A labelled field: {wrap, input, error}; the input is described by its error.
function field(card, name, labelText, input, hint) {
  const id = `reg-${card.entry.upn}-${name}`;
  const wrap = el("div", undefined, "field");
  const label = el("label", labelText);
  label.htmlFor = id;
  wrap.append(label);
  const described = [];
  if (hint) {
    const h = el("p", hint, "muted reg-hint");
    h.id = `${id}-hint`;
    wrap.append(h);
    described.push(h.id);
  }
  const error = el("p", undefined, "field-error");
  error.id = `${id}-error`;
  error.hidden = true;
  described.push(error.id);
  input.id = id;
  input.setAttribute("aria-describedby", described.join(" "));
  wrap.append(error, input);
  return { wrap, input, error };
}

function setError(f, message) {
  f.error.textContent = message || "";
  f.error.hidden = !message;
  if (message) f.input.setAttribute("aria-invalid", "true");
  else f.input.removeAttribute("aria-invalid");
}

// The form of a choice that needs more than a tap: minutes late, the absence code, or
// the reason for an amendment.
function openForm(card, action, note) {
  closeForm(card, null);
  const entry = card.entry;
  const name = pupilName(entry);
  const session = view.session;
  const form = el("form", undefined, "reg-form");
  form.noValidate = true;
  const titles = {
    present: `Mark ${name} present`, late: `Mark ${name} late`, absent: `Mark ${name} absent`,
  };
  const title = el("h3", titles[action], "reg-form-title");
  title.id = `reg-${entry.upn}-form-title`;
  form.setAttribute("aria-labelledby", title.id);
  form.append(title);
  if (note) form.append(el("p", note, "reg-note"));
  const fields = {};
  if (action === "late") {
    const input = el("input", undefined, "reg-minutes");
    input.type = "number";
    input.inputMode = "numeric";
    input.min = String(LATE_MIN);
    input.max = String(LATE_MAX);
    input.step = "1";
    input.required = true;
    input.autocomplete = "off";
    if (entry.mark && entry.mark.code === "L" && entry.mark.minutes_late) {
      input.value = String(entry.mark.minutes_late);
    }
    fields.minutes = field(card, "minutes", "Minutes late", input,
      `A whole number from ${LATE_MIN} to ${LATE_MAX}.`);
    form.append(fields.minutes.wrap);
  }
  if (action === "absent") {
    const select = el("select", undefined, "reg-select");
    for (const c of absenceCodes(view.codes, view.date)) {
      const o = el("option", `${c.code}: ${c.meaning}`);
      o.value = c.code;
      select.append(o);
    }
    if (entry.mark && isReal(entry.mark) && [...select.options].some((o) => o.value === entry.mark.code)) {
      select.value = entry.mark.code;
    }
    fields.code = field(card, "code", "Absence code", select);
    form.append(fields.code.wrap);
  }
  const code = action === "present" ? PRESENT[session] : action === "late" ? "L" : null;
  if (code === null ? mayNeedReason(card) : reasonNeeded(card, code)) {
    const input = el("input");
    input.type = "text";
    input.maxLength = REASON_MAX;
    input.autocomplete = "off";
    input.required = true;
    fields.reason = field(card, "reason", "Reason for the change", input,
      `${name} already has the mark ${entry.mark.code}: say why it changes.`);
    form.append(fields.reason.wrap);
  }
  const buttons = el("div", undefined, "actions");
  const save = el("button", "Save", "button");
  save.type = "submit";
  const cancel = el("button", "Cancel", "button button-secondary");
  cancel.type = "button";
  cancel.addEventListener("click", () => closeForm(card, action));
  buttons.append(save, cancel);
  form.append(buttons);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    submitForm(card, action, fields);
  });
  card.panel.append(form);
  card.panel.hidden = false;
  card.form = form;
  card.action = action;
  card.buttons[action].setAttribute("aria-expanded", "true");
  const first = fields.minutes || fields.code || fields.reason;
  if (first) first.input.focus();
  else save.focus();
}

function submitForm(card, action, fields) {
  if (card.busy) return;
  let code = action === "present" ? PRESENT[view.session] : "L";
  const item = {};
  let first = null;
  if (fields.minutes) {
    const raw = fields.minutes.input.value.trim();
    const n = Number(raw);
    if (raw === "" || !Number.isInteger(n) || n < LATE_MIN || n > LATE_MAX) {
      setError(fields.minutes, raw === "" ? "Enter how many minutes late the pupil arrived."
        : `Enter a whole number of minutes from ${LATE_MIN} to ${LATE_MAX}.`);
      first = first || fields.minutes;
    } else {
      setError(fields.minutes, "");
      item.minutes_late = n;
    }
  }
  if (fields.code) code = fields.code.input.value;
  if (reasonNeeded(card, code) && !fields.reason) {
    // the mark changed since the form opened: it now needs a reason
    openForm(card, action, "The mark changed meanwhile: give a reason for the change.");
    return;
  }
  if (fields.reason) {
    const reason = fields.reason.input.value.trim();
    if (reason === "" && reasonNeeded(card, code)) {
      setError(fields.reason, "Enter the reason for changing the mark.");
      first = first || fields.reason;
    } else {
      setError(fields.reason, "");
      if (reason !== "") item.reason = reason;
    }
  }
  if (first) {
    first.input.focus();
    return;
  }
  save(card, code, item, action);
}

// A tap on Present, Late or Absent.
function choose(card, action) {
  if (card.busy) return;
  if (card.action === action) {
    closeForm(card, action);
    return;
  }
  showResult(card, "", true);
  if (action === "present" && !reasonNeeded(card, PRESENT[view.session])) {
    closeForm(card, null);
    save(card, PRESENT[view.session], {}, action);
    return;
  }
  openForm(card, action);
}

function resultMessage(name, result) {
  const m = result.mark;
  const mark = m ? markShort(m.code, m.minutes_late) : "";
  switch (result.status) {
    case "created": return `${name}: saved, ${mark}.`;
    case "amended": return `${name}: changed to ${mark}.`;
    case "unchanged": return `${name}: no change, the mark was already ${mark}.`;
    default: return `${name}: not saved. ${(result.error && result.error.detail) || ""}`.trim();
  }
}

async function save(card, code, extra, action) {
  const gen = generation;
  const v = view;
  const entry = card.entry;
  const name = pupilName(entry);
  card.busy = true;
  card.li.setAttribute("aria-busy", "true");
  setStatus(`Saving the mark for ${name}…`);
  const item = { upn: entry.upn, urn: v.school.urn, date: v.date, session: v.session, code, ...extra };
  try {
    const answer = await api("POST", "/v1/marks", { marks: [item] }, { idempotent: true });
    if (gen !== generation || v !== view) return;
    const result = (answer && answer.results && answer.results[0]) || { status: "rejected" };
    const ok = result.status !== "rejected";
    const message = resultMessage(name, result);
    showResult(card, message, ok);
    setStatus(message);
    if (ok) {
      if (result.mark) {
        const c = v.codes.get(result.mark.code);
        card.entry = { ...entry, mark: {
          code: result.mark.code, category: c ? c.category : "", minutes_late: result.mark.minutes_late,
          source: result.mark.source, recorded_at: result.mark.recorded_at,
        } };
        updateMark(card);
      }
      if (card.form) closeForm(card, action);
      reload(gen);
    }
  } catch (err) {
    if (gen !== generation || v !== view) return;
    const message = `${name}: not saved. ${problemText(err)}`;
    showResult(card, message, false);
    setStatus(message);
  } finally {
    card.busy = false;
    card.li.removeAttribute("aria-busy");
  }
}

// ---- the register ----

function render(v, register) {
  const expected = (register.pupils || []).filter((p) => p.expected_here);
  const sessionName = SESSION_NAMES[v.session];
  $("register-day").textContent = `School day: ${dayText(v.date)}.`;
  $("register-count").textContent = expected.length === 0
    ? `No pupil is expected here this ${sessionName}.`
    : `${plural(expected.length, "pupil is", "pupils are")} expected here this ${sessionName}. ` +
      "Pupils on your roll who are expected at another school this session are not listed.";
  $("register-closed").hidden = !register.closed;
  const list = $("register-list");
  const seen = new Set();
  const order = [];
  for (const entry of expected) {
    seen.add(entry.upn);
    let card = v.cards.get(entry.upn);
    if (card) {
      if (!card.busy) card.entry = entry;
      card.name.textContent = pupilName(card.entry);
      updateMark(card);
    } else {
      card = newCard(entry);
      v.cards.set(entry.upn, card);
    }
    order.push(card.li);
  }
  for (const [upn, card] of v.cards) {
    if (!seen.has(upn)) {
      card.li.remove();
      v.cards.delete(upn);
    }
  }
  // move cards only when the order changed (moving a card would take its focus away)
  const now = [...list.children];
  if (now.length !== order.length || now.some((li, i) => li !== order[i])) list.replaceChildren(...order);
  list.hidden = order.length === 0;
  $("register-updated").textContent = `Last brought up to date at ${new Intl.DateTimeFormat("en-GB", {
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  }).format(new Date())}.`;
}

// Reads the register of the view's day and session again (and again in a minute).
async function reload(gen) {
  if (gen !== generation || !view) return;
  const v = view;
  clearTimeout(timer);
  timer = setTimeout(() => reload(gen), RELOAD_MS);
  const seq = ++v.seq;
  const day = schoolDay();
  if (day !== v.date) {
    v.date = day;
    v.cards.clear();
    $("register-list").replaceChildren();
  }
  const session = v.session;
  if (controller) controller.abort();
  const ctl = new AbortController();
  controller = ctl;
  try {
    if (!v.codes) v.codes = await loadCodes();
    const urn = encodeURIComponent(v.school.urn);
    const register = await api("GET", `/v1/schools/${urn}/register?date=${v.date}&session=${session}`,
      undefined, { timeoutMs: READ_TIMEOUT_MS, signal: ctl.signal });
    if (gen !== generation || v !== view || seq !== v.seq || session !== v.session) return;
    render(v, register);
    setAlert("register-alert", "");
  } catch (err) {
    if (gen !== generation || v !== view || seq !== v.seq) return;
    if (err instanceof ApiError && err.status === 401) return; // signed out or expired
    setAlert("register-alert", `The register could not be read. ${problemText(err)}`);
    if (v.cards.size === 0) $("register-count").textContent = "";
  }
}

function setSession(session) {
  if (!view || view.session === session) return;
  view.session = session;
  for (const [s, b] of Object.entries(view.switches)) b.setAttribute("aria-pressed", String(s === session));
  view.cards.clear();
  $("register-list").replaceChildren();
  $("register-list").hidden = true;
  $("register-count").textContent = "Loading…";
  setStatus(`Showing the ${SESSION_NAMES[session]} register.`);
  reload(generation);
}

function buildPage(school) {
  const content = $("register-content");
  const intro = el("p", `${school.name} (URN ${school.urn}): the pupils expected here, with their ` +
    "marks. Tap a mark to record it; the register updates by itself every minute.");
  const day = el("p", undefined, "reg-day");
  day.id = "register-day";
  const group = el("div", undefined, "session-switch");
  group.setAttribute("role", "group");
  group.setAttribute("aria-label", "Session");
  const switches = {};
  for (const [s, label] of [["AM", "Morning"], ["PM", "Afternoon"]]) {
    const b = el("button", label, "session-button");
    b.type = "button";
    b.id = `register-session-${s}`;
    b.setAttribute("aria-pressed", "false");
    b.addEventListener("click", () => setSession(s));
    switches[s] = b;
    group.append(b);
  }
  const count = el("p", "Loading…", "reg-count");
  count.id = "register-count";
  const closed = el("p", "The school is closed on this day: marks may still be recorded.", "reg-closed");
  closed.id = "register-closed";
  closed.hidden = true;
  const list = el("ul", undefined, "reg-list");
  list.id = "register-list";
  list.setAttribute("aria-labelledby", "register-title");
  list.hidden = true;
  const updated = el("p", undefined, "muted");
  updated.id = "register-updated";
  content.replaceChildren(intro, day, group, count, closed, list, updated);
  return switches;
}

// Shows the register of the signed-in user's school (a provider's), or a sentence for
// anyone else; keeps it current until stopRegister.
export function startRegister(user) {
  stopRegister();
  setStatus("");
  const school = user && user.school;
  const content = $("register-content");
  if (!school || !PROVIDER_KINDS.has(school.kind)) {
    content.replaceChildren(el("p", school
      ? `${school.name} keeps its register in its own management information system (MIS), ` +
        "which sends the marks to dualreg. This page is for a Pupil Referral Unit or an " +
        "alternative provider."
      : "An administrator has no register of its own: this page is for the staff of a Pupil " +
        "Referral Unit or an alternative provider."));
    return;
  }
  const switches = buildPage(school);
  const session = sessionNow();
  view = { school, date: schoolDay(), session, codes: null, cards: new Map(), seq: 0, switches };
  switches[session].setAttribute("aria-pressed", "true");
  $("register-day").textContent = `School day: ${dayText(view.date)}.`;
  reload(generation);
}

export function stopRegister() {
  generation++;
  if (controller) controller.abort();
  controller = null;
  clearTimeout(timer);
  timer = null;
  view = null;
}
