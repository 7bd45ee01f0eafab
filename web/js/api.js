// The web app's calls to dualreg's JSON API (/app/api/...), and the helpers the pages
// share to show what happened: field errors tied to their inputs, alerts and status.
//
// Every answer that is not 2xx becomes an ApiError holding the RFC 9457 problem the
// server sent (type, title, detail, errors[]); a request that gets no answer at all is
// an ApiError with status 0. State-changing requests carry the session's CSRF token
// (X-CSRF-Token) once the page knows it (setCsrfToken).

const TIMEOUT_MS = 20000;
let csrfToken = null;

export class ApiError extends Error {
  constructor(status, problem, retryAfter) {
    const p = problem && typeof problem === "object" ? problem : {};
    super(p.detail || p.title || (status ? `The server answered ${status}.` :
      "The server could not be reached."));
    this.status = status;
    this.problem = p;
    this.slug = typeof p.type === "string" ? p.type.replace(/^.*\/problems\//, "") : "";
    this.retryAfter = retryAfter ? Number(retryAfter) : null;
  }

  // The errors[] of the problem whose pointer names field (e.g. "/password").
  fieldErrors(field) {
    const errs = Array.isArray(this.problem.errors) ? this.problem.errors : [];
    return errs.filter((e) => e && e.pointer === `/${field}`).map((e) => e.detail || "");
  }
}

// Called (once per signed-in session) when a request made with the session cookie is
// answered 401: the session has ended (idle or absolute expiry, signed out elsewhere,
// the account disabled). The app then shows the sign-in form.
let onSessionEnded = null;

export function setSessionEndedHandler(fn) {
  onSessionEnded = fn;
}

export function setCsrfToken(token) {
  csrfToken = typeof token === "string" && token !== "" ? token : null;
}

// A fresh Idempotency-Key: 128 random bits as hex (crypto.getRandomValues works on pages
// served over plain http too, unlike crypto.randomUUID).
function idempotencyKey() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

// method, path (under /app/api/ or /v1/), body (an object, or undefined); options:
// timeoutMs (default TIMEOUT_MS; a long poll needs more), signal (an AbortSignal that
// also ends the request) and idempotent (send an Idempotency-Key, so that a request the
// network may have delivered twice acts once). Resolves to the parsed JSON answer (null
// for 204); rejects with an ApiError.
export async function api(method, path, body, { timeoutMs = TIMEOUT_MS, signal, idempotent } = {}) {
  const headers = { Accept: "application/json, application/problem+json" };
  if (idempotent) headers["Idempotency-Key"] = idempotencyKey();
  const init = { method, headers, credentials: "same-origin", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (method !== "GET" && method !== "HEAD" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  const cancel = () => controller.abort();
  signal?.addEventListener("abort", cancel, { once: true });
  init.signal = controller.signal;
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    throw new ApiError(0, {
      title: "No connection",
      detail: "The server could not be reached. Check your connection and try again.",
    });
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", cancel);
  }
  if (res.status === 204) return null;
  let data = null;
  const type = (res.headers.get("Content-Type") || "").toLowerCase();
  if (type.includes("json")) {
    try {
      data = await res.json();
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const err = new ApiError(res.status, data, res.headers.get("Retry-After"));
    if (res.status === 401 && csrfToken && onSessionEnded) {
      const fn = onSessionEnded;
      onSessionEnded = null;
      fn(err);
    }
    throw err;
  }
  return data;
}

// ---- showing things ----

export function $(id) {
  return document.getElementById(id);
}

// Shows one of the page's sections (by id) and hides the others; unless focus is false
// (the first view after loading), moves focus to its heading so that keyboard and
// screen-reader users land at the start of the new step.
export function showSection(id, sections, focus = true) {
  for (const s of sections) $(s).hidden = s !== id;
  const heading = $(id).querySelector("h1");
  if (heading && focus) heading.focus();
}

// A field's error: shown above the input, tied to it by aria-describedby (set in the
// HTML), and the input marked aria-invalid. message "" clears it.
export function setFieldError(inputId, message) {
  const input = $(inputId);
  const err = $(`${inputId}-error`);
  if (message) {
    err.textContent = message;
    err.hidden = false;
    input.setAttribute("aria-invalid", "true");
  } else {
    err.textContent = "";
    err.hidden = true;
    input.removeAttribute("aria-invalid");
  }
}

export function clearErrors(form, alertId) {
  for (const input of form.querySelectorAll("input")) {
    if (input.id && $(`${input.id}-error`)) setFieldError(input.id, "");
  }
  if (alertId) setAlert(alertId, "");
}

// An alert (role="alert": read out as it appears) above a form; "" hides it.
export function setAlert(id, message) {
  const el = $(id);
  el.textContent = message || "";
  el.hidden = !message;
}

// The polite status line ("Signing in…", "You have signed out.").
export function setStatus(message) {
  $("status").textContent = message || "";
}

// What to tell the user about an ApiError.
export function problemText(err) {
  if (!(err instanceof ApiError)) return "Something went wrong. Try again.";
  let text = err.message;
  if (err.status === 429 && err.retryAfter) {
    const minutes = Math.ceil(err.retryAfter / 60);
    text += ` Try again in ${minutes} minute${minutes === 1 ? "" : "s"}.`;
  }
  return text;
}

// Marks a form busy while its request is in flight; a second submit is ignored then
// (isBusy). The controls stay enabled, so that focus stays where the user left it.
export function setBusy(form, busy) {
  form.dataset.busy = busy ? "1" : "";
  form.setAttribute("aria-busy", busy ? "true" : "false");
}

export function isBusy(form) {
  return form.dataset.busy === "1";
}
