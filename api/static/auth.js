// voicegw: calling the API from a dashboard page (docs/accounts.md).
//
// Signed in (POST /auth/login), the browser holds an HttpOnly session cookie this script
// never sees; every request that is not GET carries the session's CSRF token in
// X-CSRF-Token. A tab may instead hold an API key (sessionStorage, this tab only): it is
// then sent as Authorization: Bearer and the cookie is not used.
//
//   const me = await VoicegwAuth.session();          // {user, csrf_token} or null
//   const r = await VoicegwAuth.api("GET", "/v1/usage");   // {status, body}
//   await VoicegwAuth.login(email, password); await VoicegwAuth.logout();
//   VoicegwAuth.useKey(key) / VoicegwAuth.useKey(null)
//   VoicegwAuth.keySlot("voicegw-admin-token")   // the operator page keeps its token apart
//   const r = await VoicegwAuth.request("GET", "/v1/conversations.csv");  // a raw Response
(function () {
  "use strict";
  let KEY = "voicegw.api_key";
  const CSRF = "voicegw.csrf";

  function store() {
    try { return window.sessionStorage; } catch (e) { return null; }
  }

  async function parse(response) {
    const type = response.headers.get("Content-Type") || "";
    if (response.status === 204) return null;
    if (type.includes("json")) return response.json();
    return response.text();
  }

  const auth = {
    key() { const s = store(); return s ? s.getItem(KEY) : null; },
    useKey(key) {
      const s = store();
      if (!s) return;
      if (key) s.setItem(KEY, key); else s.removeItem(KEY);
    },
    // Where this page keeps its bearer (the tenant pages share one; the operator page
    // keeps the admin token under another name, so neither is sent to the other's API).
    keySlot(name) { KEY = name; },
    csrf() { const s = store(); return s ? s.getItem(CSRF) : null; },

    // The raw Response (a file to download): the same credentials as api().
    async request(method, path, body, extraHeaders) {
      const headers = Object.assign({}, extraHeaders || {});
      const key = auth.key();
      if (key) headers["Authorization"] = "Bearer " + key;
      else if (method !== "GET" && method !== "HEAD" && auth.csrf()) {
        headers["X-CSRF-Token"] = auth.csrf();
      }
      const init = { method, headers, credentials: "same-origin" };
      if (body !== undefined) {
        headers["Content-Type"] = "application/json";
        init.body = JSON.stringify(body);
      }
      return fetch(path, init);
    },

    async api(method, path, body, extraHeaders) {
      const response = await auth.request(method, path, body, extraHeaders);
      return { status: response.status, body: await parse(response), response };
    },

    async session() {
      const r = await fetch("/auth/session", { credentials: "same-origin" });
      if (r.status !== 200) return null;
      const body = await r.json();
      const s = store();
      if (s) s.setItem(CSRF, body.csrf_token);
      return body;
    },

    async login(email, password) {
      const r = await fetch("/auth/login", {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ email, password }),
      });
      const body = await parse(r);
      if (r.status === 200) {
        const s = store();
        if (s) s.setItem(CSRF, body.csrf_token);
      }
      return { status: r.status, body };
    },

    async logout() {
      const r = await auth.api("POST", "/auth/logout");
      const s = store();
      if (s) s.removeItem(CSRF);
      return r;
    },

    // A problem document's detail, or a fallback line.
    message(result) {
      const b = result && result.body;
      return (b && b.detail) ? b.detail : "the request failed (" + (result && result.status) + ")";
    },
  };
  window.VoicegwAuth = auth;
})();
