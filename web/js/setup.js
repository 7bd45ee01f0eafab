// /app/setup#<token>: a new account's set-up, from the link an administrator made
// (dualregctl user add). The token is read from the fragment, which browsers never send
// in a request, and is only ever sent in a request body:
//   1. a password (and again)            POST /app/api/setup {token, password}
//   2. the QR code and key for an authenticator app, then its 6-digit code
//                                        POST /app/api/setup/confirm {token, code}
//   3. the recovery codes, shown once, then on to /app/ (signed in already).
import {
  api, ApiError, $, showSection, setFieldError, clearErrors, setAlert, setStatus,
  problemText, setBusy, isBusy,
} from "./api.js";

const SECTIONS = ["invalid", "password-step", "totp-step", "codes-step"];
const token = (() => {
  try {
    return decodeURIComponent(window.location.hash.replace(/^#/, "")).trim();
  } catch {
    return "";
  }
})();
let loaded = false;

function show(id) {
  $("loading").hidden = true;
  showSection(id, SECTIONS, loaded);
  loaded = true;
  document.title = `${$(`${id}-title`).textContent} – dualreg`;
}

function showInvalid(err) {
  if (err) $("invalid-text").textContent = `${problemText(err)} Ask an administrator for a new link.`;
  show("invalid");
}

// The QR code arrives as SVG markup. It is parsed as XML and imported as SVG elements
// (never as HTML, never through innerHTML); only drawing elements and their plain
// attributes are kept, so nothing in it can run or load anything.
const SVG_ELEMENTS = new Set(["svg", "g", "path", "rect", "title", "desc"]);
function qrElement(markup) {
  const doc = new DOMParser().parseFromString(markup, "image/svg+xml");
  const root = doc.documentElement;
  if (!root || root.localName !== "svg" || doc.getElementsByTagName("parsererror").length) {
    return null;
  }
  for (const el of [root, ...root.querySelectorAll("*")]) {
    if (!SVG_ELEMENTS.has(el.localName)) {
      el.remove();
      continue;
    }
    for (const attr of [...el.attributes]) {
      const name = attr.name.toLowerCase();
      if (name.startsWith("on") || name === "style" || name.includes("href")) {
        el.removeAttribute(attr.name);
      }
    }
  }
  const svg = document.importNode(root, true);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "QR code to scan with your authenticator app");
  svg.setAttribute("focusable", "false");
  return svg;
}

// "JBSWY3DPEHPK3PXP" -> "JBSW Y3DP EHPK 3PXP": easier to copy by hand.
function grouped(secret) {
  return secret.replace(/\s+/g, "").replace(/(.{4})(?=.)/g, "$1 ");
}

function showTotp(setup) {
  $("account-line").textContent = `Account: ${setup.name} (${setup.email})`;
  const qr = $("qr");
  qr.replaceChildren();
  const svg = typeof setup.qr_svg === "string" ? qrElement(setup.qr_svg) : null;
  if (svg) qr.append(svg);
  qr.hidden = !svg;
  $("secret").textContent = grouped(setup.totp_secret || "");
  $("totp-form").reset();
  clearErrors($("totp-form"), "totp-alert");
  show("totp-step");
}

async function onPassword(event) {
  event.preventDefault();
  const form = event.currentTarget;
  if (isBusy(form)) return;
  clearErrors(form, "password-alert");
  const password = $("new-password").value;
  const confirm = $("confirm-password").value;
  let first = null;
  if (password === "") {
    setFieldError("new-password", "Enter a password.");
    first = "new-password";
  } else if ([...password].length < 12) {
    setFieldError("new-password", "Use at least 12 characters.");
    first = "new-password";
  }
  if (!first && confirm !== password) {
    setFieldError("confirm-password", "The two passwords are not the same.");
    first = "confirm-password";
  }
  if (first) {
    $(first).focus();
    return;
  }
  setBusy(form, true);
  setStatus("Saving your password…");
  try {
    const setup = await api("POST", "/app/api/setup", { token, password });
    setStatus("Password saved.");
    showTotp(setup);
  } catch (err) {
    setStatus("");
    if (err instanceof ApiError && err.status === 404) {
      showInvalid(err);
    } else if (err instanceof ApiError && err.status === 422) {
      const reasons = err.fieldErrors("password");
      setFieldError("new-password", reasons.length ? reasons.join(" ") : problemText(err));
      $("confirm-password").value = "";
      $("new-password").focus();
    } else {
      setAlert("password-alert", problemText(err));
    }
  } finally {
    setBusy(form, false);
  }
}

async function onCode(event) {
  event.preventDefault();
  const form = event.currentTarget;
  if (isBusy(form)) return;
  clearErrors(form, "totp-alert");
  const code = $("totp-code").value.replace(/\s+/g, "");
  if (!/^[0-9]{6}$/.test(code)) {
    setFieldError("totp-code", "Enter the 6 digits your authenticator app shows.");
    $("totp-code").focus();
    return;
  }
  setBusy(form, true);
  setStatus("Checking the code…");
  try {
    const done = await api("POST", "/app/api/setup/confirm", { token, code });
    const list = $("recovery-codes");
    list.replaceChildren(...(done.recovery_codes || []).map((c) => {
      const li = document.createElement("li");
      const el = document.createElement("code");
      el.textContent = c;
      li.append(el);
      return li;
    }));
    setStatus("Your authenticator app is set up.");
    show("codes-step");
  } catch (err) {
    setStatus("");
    if (err instanceof ApiError && err.status === 404) {
      showInvalid(err);
    } else if (err instanceof ApiError && err.status === 422) {
      setFieldError("totp-code", err.fieldErrors("code")[0] ||
        "That code is not right. Check the time on your phone and enter the newest code.");
      $("totp-code").select();
      $("totp-code").focus();
    } else {
      setAlert("totp-alert", problemText(err));
    }
  } finally {
    setBusy(form, false);
  }
}

$("password-form").addEventListener("submit", onPassword);
$("totp-form").addEventListener("submit", onCode);
$("codes-done").addEventListener("click", () => window.location.assign("/app/"));
if (/^[A-Za-z0-9._~-]{16,512}$/.test(token)) {
  show("password-step");
} else {
  showInvalid(null);
}
