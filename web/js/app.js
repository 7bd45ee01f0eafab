// /app/: sign in (email and password, then a 6-digit code or a recovery code), and the
// signed-in pages, chosen by the address's fragment:
//   #/             overview: who you are, your school, sign out; for a home school its
//                  pupils in alternative provision (web/js/pupils.js); for any school
//                  its registration requests (web/js/requests.js)
//   #/pupil/UPN    one pupil (web/js/pupil.js)
//   #/register     today's register, for a PRU or alternative provider (web/js/register.js)
//   #/sync         sync health: the school's, or every school's for an administrator
//                  (web/js/sync.js)
// On load GET /app/api/session says whether to show sign-in or a signed-in page.
import {
  api, ApiError, setCsrfToken, $, showSection, setFieldError, clearErrors, setAlert,
  setStatus, problemText, setBusy, isBusy, setSessionEndedHandler,
} from "./api.js";
import { startPupils, stopPupils } from "./pupils.js";
import { startRequests, stopRequests } from "./requests.js";
import { startPupil, stopPupil } from "./pupil.js";
import { startRegister, stopRegister } from "./register.js";
import { startSync, stopSync } from "./sync.js";

const PROVIDER_KINDS = new Set(["pru", "ap"]);

// The signed-in views: the section shown, and how it starts (with the user and the
// fragment's parameters) and stops (it ends its requests and timers).
const VIEWS = {
  home: {
    start: (user) => { startPupils(user); startRequests(user); },
    stop: () => { stopPupils(); stopRequests(); },
  },
  pupil: { start: (user, params) => startPupil(user, params[0] || ""), stop: stopPupil },
  register: { start: startRegister, stop: stopRegister },
  sync: { start: startSync, stop: stopSync },
};
const SECTIONS = ["signin", "code", ...Object.keys(VIEWS)];
const ROLES = { staff: "Staff", lead: "Lead", admin: "Administrator" };

let loaded = false; // the first view after loading does not take the focus

function show(id) {
  $("loading").hidden = true;
  showSection(id, SECTIONS, loaded);
  loaded = true;
  document.title = `${$(`${id}-title`).textContent} – dualreg`;
}

let current = null; // the signed-in view shown, or null
let session = null; // GET /app/api/session's answer while signed in

function stopView() {
  if (current) VIEWS[current].stop();
  current = null;
}

// "#/pupil/1234" -> ["pupil", ["1234"]]; anything unknown is the overview.
function parseFragment() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter((p) => p !== "")
    .map((p) => { try { return decodeURIComponent(p); } catch { return ""; } });
  const name = parts.shift() || "home";
  return VIEWS[name] ? [name, parts] : ["home", []];
}

function showView() {
  const [name, params] = parseFragment();
  stopView();
  for (const a of $("app-nav").querySelectorAll("a")) {
    if (a.dataset.view === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  $("app-nav").hidden = false;
  setAlert(`${name}-alert`, "");
  show(name);
  current = name;
  VIEWS[name].start(session.user || {}, params);
}

window.addEventListener("hashchange", () => {
  if (session) showView();
});

function showSignIn(message) {
  stopView();
  session = null;
  $("app-nav").hidden = true;
  setCsrfToken(null);
  $("signin-form").reset();
  clearErrors($("signin-form"), "signin-alert");
  show("signin");
  if (message) setStatus(message);
}

// A request of a signed-in page was refused as not signed in: the session ended.
function sessionEnded() {
  if (!session) return;
  showSignIn("");
  setAlert("signin-alert", "Your session has ended: you were away for a while, signed out " +
    "in another window, or your account was changed. Sign in again to carry on.");
}

function showHome(answer) {
  session = answer;
  setSessionEndedHandler(sessionEnded);
  const user = session.user || {};
  setCsrfToken(session.csrf_token);
  $("nav-register-item").hidden = !(user.school && PROVIDER_KINDS.has(user.school.kind));
  $("user-name").textContent = user.name || "";
  $("user-email").textContent = user.email || "";
  $("user-role").textContent = ROLES[user.role] || user.role || "";
  const school = user.school;
  $("user-school").textContent = school
    ? `${school.name} (URN ${school.urn})`
    : "None: an administrator acts for every school";
  showView();
}

// The signed-in page needs the session's details and CSRF token. True when signed in.
async function loadSession() {
  try {
    showHome(await api("GET", "/app/api/session"));
    setStatus("");
    return true;
  } catch (err) {
    showSignIn("");
    if (!(err instanceof ApiError && err.status === 401)) setAlert("signin-alert", problemText(err));
    return false;
  }
}

async function onSignIn(event) {
  event.preventDefault();
  const form = event.currentTarget;
  if (isBusy(form)) return;
  clearErrors(form, "signin-alert");
  const email = $("email").value.trim();
  const password = $("password").value;
  let first = null;
  if (email === "" || !email.includes("@")) {
    setFieldError("email", email === "" ? "Enter your email address." :
      "Enter an email address like name@school.example.");
    first = first || "email";
  }
  if (password === "") {
    setFieldError("password", "Enter your password.");
    first = first || "password";
  }
  if (first) {
    $(first).focus();
    return;
  }
  setBusy(form, true);
  setStatus("Signing in…");
  try {
    await api("POST", "/app/api/session", { email, password });
    $("code-form").reset();
    clearErrors($("code-form"), "code-alert");
    show("code");
    setStatus("Password accepted. Enter your code.");
    $("otp").focus();
  } catch (err) {
    setStatus("");
    setAlert("signin-alert", err instanceof ApiError && err.status === 401
      ? "The email address or password is not right."
      : problemText(err));
    $("password").value = "";
    $("password").focus();
  } finally {
    setBusy(form, false);
  }
}

async function onCode(event) {
  event.preventDefault();
  const form = event.currentTarget;
  if (isBusy(form)) return;
  clearErrors(form, "code-alert");
  const code = $("otp").value.replace(/\s+/g, "");
  if (code === "") {
    setFieldError("otp", "Enter the code from your authenticator app, or a recovery code.");
    $("otp").focus();
    return;
  }
  setBusy(form, true);
  setStatus("Checking the code…");
  try {
    await api("POST", "/app/api/session/second-factor", { code });
    if (await loadSession()) setStatus("You are signed in.");
  } catch (err) {
    setStatus("");
    if (err instanceof ApiError && err.status === 401) {
      showSignIn("");
      setAlert("signin-alert", "Your sign-in has expired. Sign in again.");
    } else if (err instanceof ApiError && err.status === 422) {
      setFieldError("otp", err.fieldErrors("code")[0] || problemText(err));
      $("otp").select();
      $("otp").focus();
    } else {
      setAlert("code-alert", problemText(err));
      $("otp").focus();
    }
  } finally {
    setBusy(form, false);
  }
}

async function onSignOut() {
  const button = $("signout");
  if (button.dataset.busy === "1") return;
  button.dataset.busy = "1";
  setStatus("Signing out…");
  try {
    await api("DELETE", "/app/api/session");
    showSignIn("You have signed out.");
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      showSignIn("You have signed out.");
    } else {
      setStatus("");
      setAlert("home-alert", problemText(err));
    }
  } finally {
    button.dataset.busy = "";
  }
}

$("signin-form").addEventListener("submit", onSignIn);
$("code-form").addEventListener("submit", onCode);
$("code-restart").addEventListener("click", () => showSignIn(""));
$("signout").addEventListener("click", onSignOut);
loadSession();
