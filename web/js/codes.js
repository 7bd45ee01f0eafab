// The attendance codes, as the server's rules hold them (GET /v1/attendance-codes): the
// web app names a code from this list and never keeps its own copy. Loaded once per page
// load; a failed load is forgotten so that the next call tries again.
import { api } from "./api.js";

let loading = null;

// A Map code -> {code, meaning, category, possible, valid_from, valid_to}.
export function loadCodes() {
  if (!loading) {
    loading = api("GET", "/v1/attendance-codes").then(
      (answer) => new Map((answer.codes || []).map((c) => [c.code, c])),
      (err) => {
        loading = null;
        throw err;
      });
  }
  return loading;
}

// "/" -> "present at the morning register"; an unknown code -> "".
export function codeMeaning(codes, code) {
  const c = codes && codes.get(code);
  return c ? c.meaning : "";
}
