// The small helpers every page builds its content with: elements made with text only
// (never HTML from data), term/value rows, counted nouns, and days as people read them.

// <tag class="cls">text</tag>; text undefined or null: none.
export function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

// A <div><dt>term</dt><dd>value</dd></div> row appended to the description list dl.
export function detail(dl, term, value) {
  const div = el("div");
  div.append(el("dt", term), el("dd", value));
  dl.append(div);
}

// "1 pupil", "3 pupils".
export function plural(n, one, many) {
  return `${n} ${n === 1 ? one : many}`;
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

// "2026-11-27" -> "Friday, 27 November 2026" (weekday: false -> "27 November 2026");
// anything that is not a date is returned as it is.
export function dayText(iso, weekday = true) {
  if (typeof iso !== "string" || !/^\d{4}-\d{2}-\d{2}$/.test(iso)) return iso || "";
  const [y, m, d] = iso.split("-").map(Number);
  return new Intl.DateTimeFormat("en-GB", {
    timeZone: "UTC", weekday: weekday ? "long" : undefined, day: "numeric", month: "long",
    year: "numeric",
  }).format(new Date(Date.UTC(y, m - 1, d)));
}
