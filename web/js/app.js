// /app/: sign in (email and password, then a 6-digit code or a recovery code), and the
// signed-in page (who you are, your school, sign out; for a home school its pupils in
// alternative provision, web/js/pupils.js; for any school its registration requests,
// web/js/requests.js). On load GET /app/api/session
// says which of them to show.
import {
  api, ApiError, setCsrfToken, $, showSection, setFieldError, clearErrors, setAlert,
  setStatus, problemText, setBusy, isBusy,
} from "./api.js";
import { startPupils, stopPupils } from "./pupils.js";
import { startRequests, stopRequests } from "./requests.js";

const SECTIONS = ["signin", "code", "home"];
const ROLES = { staff: "Staff", lead: "Lead", admin: "Administrator" };

let loaded = false; // the first view after loading does not take the focus

function show(id) {
  $("loading").hidden = true;
  showSection(id, SECTIONS, loaded);
  loaded = true;
  document.title = `${$(`${id}-title`).textContent} – dualreg`;
}

function showSignIn(message) {
  stopPupils();
  stopRequests();
  setCsrfToken(null);
  $("signin-form").reset();
  clearErrors($("signin-form"), "signin-alert");
  show("signin");
  if (message) setStatus(message);
}

function showHome(session) {
  const user = session.user || {};
  setCsrfToken(session.csrf_token);
  $("user-name").textContent = user.name || "";
  $("user-email").textContent = user.email || "";
  $("user-role").textContent = ROLES[user.role] || user.role || "";
  const school = user.school;
  $("user-school").textContent = school
    ? `${school.name} (URN ${school.urn})`
    : "None: an administrator acts for every school";
  setAlert("home-alert", "");
  show("home");
  startPupils(user);
  startRequests(user);
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
