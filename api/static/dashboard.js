"use strict";
// The tenant dashboard: reads the tenant API as the signed-in person (session cookie and
// CSRF header) or with an API key kept in this tab, through auth.js (VoicegwAuth); shows
// only what the role or the key's scope allows, and follows GET /v1/live (server-sent
// events) for the balance, the live sessions and settled conversations.
// docs/dashboard.md describes it.
const $ = (id) => document.getElementById(id);
const auth = window.VoicegwAuth;
// What the caller may see and do (null: nobody signed in). Hidden parts are never read,
// so a role never meets a 403 in the console.
let can = null;
const EVENTS = ["success.created", "session.completed", "handoff.requested", "balance.low",
  "balance.depleted", "balance.restored", "topup.applied", "invoice.finalized"];
const CHANNELS = ["phone", "whatsapp", "sms", "web"];
const COLORS = { phone: "#2563eb", whatsapp: "#16a34a", sms: "#f59e0b", web: "#9333ea" };
const PALETTE = ["#2563eb", "#16a34a", "#f59e0b", "#9333ea", "#dc2626", "#0891b2", "#65a30d",
  "#db2777", "#475569", "#ea580c", "#4f46e5", "#0d9488", "#a16207"];
const charts = {};
let cursor = null;

// ---- requests ---------------------------------------------------------------------
class ApiError extends Error {
  constructor(message, status, code) { super(message); this.status = status; this.code = code; }
}
async function send(method, path, json) {
  const r = await auth.api(method, path, json);
  if (r.status === 204) return null;
  const body = r.body && typeof r.body === "object" ? r.body : {};
  if (!r.response.ok) throw new ApiError(body.detail || r.response.statusText, r.status, body.code);
  return body;
}
// A file (CSV, PDF) fetched with the same credentials, saved under `name`.
async function download(path, name, what) {
  const r = await auth.request("GET", path);
  if (!r.ok) throw new ApiError(`${what} could not be fetched (${r.status})`, r.status);
  const url = URL.createObjectURL(await r.blob());
  const a = document.createElement("a");
  a.href = url; a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}
const get = (path) => send("GET", path);
// An endpoint this gateway does not have yet answers 404: its panel says so, the page goes on.
async function optional(path) {
  try { return await get(path); } catch (e) { if (e.status === 404 || e.status === 405) return null; throw e; }
}
function showError(e) {
  $("error").textContent = e.status === 401 ? "Sign-in failed: " + e.message : e.message;
}
function clearError() { $("error").textContent = ""; }

// ---- formatting -------------------------------------------------------------------
const fmtInt = (n) => n == null ? "–" : Number(n).toLocaleString("en-US");
const fmtPct = (r) => r == null ? "–" : (r * 100).toFixed(1) + "%";
function fmtCredits(text) {
  if (text == null) return "–";
  const n = Number(text);
  return n.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
}
function fmtDuration(ms) {
  if (ms == null) return "–";
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}
function fmtTime(iso) {
  if (!iso) return "–";
  return new Date(iso).toLocaleString("en-GB", { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}
// Raw meter units as a person reads them: *_seconds meters count milliseconds.
function fmtUnits(meter, units) {
  if (meter.endsWith("_seconds")) return fmtDuration(units);
  const unit = meter.endsWith("_tokens") ? "tokens" : meter.endsWith("_characters") ? "characters"
    : meter.endsWith("_segments") ? "segments" : meter.endsWith("_messages") ? "messages"
    : meter.endsWith("_months") ? "number-months" : meter === "tool_calls" ? "calls" : "";
  return `${fmtInt(units)} ${unit}`.trim();
}
const customerOf = (c) => c == null ? "–" : typeof c === "string" ? c : c.masked;
function cell(row, text) { const td = row.insertCell(); td.textContent = text; return td; }

// ---- filters ----------------------------------------------------------------------
const isoDay = (d) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
function parseDay(text) { const [y, m, d] = text.split("-").map(Number); return new Date(y, m - 1, d); }
function addDays(text, n) { const d = parseDay(text); d.setDate(d.getDate() + n); return isoDay(d); }
function defaultRange() {
  const to = isoDay(new Date());
  return { from: addDays(to, -29), to };
}
function filters() {
  const range = defaultRange();
  if (!$("from").value) $("from").value = range.from;
  if (!$("to").value) $("to").value = range.to;
  return { from: $("from").value, to: $("to").value, channel: $("channel").value };
}
function query(f, more = {}) {
  const q = new URLSearchParams({ from: f.from, to: f.to });
  if (f.channel) q.set("channel", f.channel);
  for (const [k, v] of Object.entries(more)) q.set(k, v);
  return q.toString();
}
function previousPeriod(f) {
  const days = Math.round((parseDay(f.to) - parseDay(f.from)) / 86400000) + 1;
  return { ...f, from: addDays(f.from, -days), to: addDays(f.from, -1) };
}

// ---- cards ------------------------------------------------------------------------
// Green when the change is good: more successes, fewer operators brought in.
function showDelta(id, now, before, rate, fewerIsBetter = false) {
  const el = $(id);
  el.className = "delta";
  if (now == null || before == null) { el.textContent = "no previous figure"; return; }
  const change = now - before;
  if (rate) {
    el.textContent = `${change >= 0 ? "+" : ""}${(change * 100).toFixed(1)} pts vs previous period`;
  } else {
    const ratio = before ? ` (${change >= 0 ? "+" : ""}${Math.round(change / before * 100)}%)` : "";
    el.textContent = `${change >= 0 ? "+" : ""}${fmtInt(change)}${ratio} vs previous period`;
  }
  if (change !== 0) el.classList.add((change > 0) !== fewerIsBetter ? "up" : "down");
}
function showCards(current, previous) {
  const t = current.totals, p = previous ? previous.totals : {};
  $("card-success-rate").textContent = fmtPct(t.success_rate);
  $("card-successes").textContent = fmtInt(t.successes);
  $("card-handoffs").textContent = fmtInt(t.handoffs);
  $("card-appointments").textContent = fmtInt(t.appointments);
  showDelta("delta-success-rate", t.success_rate, p.success_rate, true);
  showDelta("delta-successes", t.successes, p.successes, false);
  showDelta("delta-handoffs", t.handoffs, p.handoffs, false, true);
  showDelta("delta-appointments", t.appointments, p.appointments, false);
}

// ---- charts -----------------------------------------------------------------------
function draw(id, config) {
  if (typeof Chart === "undefined") return;
  if (charts[id]) charts[id].destroy();
  config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false,
    plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } } }, config.options || {});
  charts[id] = new Chart($(id), config);
}
function seriesByChannel(reports, days, field) {
  return reports.map(([channel, report]) => {
    const byDay = Object.fromEntries(report.series.map((s) => [s.period, s[field]]));
    return { channel, values: days.map((d) => byDay[d] ?? 0) };
  });
}
function showCharts(current, perChannel, usage) {
  const days = current.series.map((s) => s.period);
  const conversations = seriesByChannel(perChannel, days, "conversations").map((s) => ({
    type: "bar", label: `${s.channel} conversations`, data: s.values, stack: "conversations",
    backgroundColor: COLORS[s.channel] + "99" }));
  const successes = seriesByChannel(perChannel, days, "successes").map((s) => ({
    type: "line", label: `${s.channel} successes`, data: s.values, borderColor: COLORS[s.channel],
    backgroundColor: COLORS[s.channel], tension: .25, pointRadius: 2 }));
  draw("chart-conversations", { data: { labels: days, datasets: [...conversations, ...successes] },
    options: { scales: { x: { stacked: true }, y: { beginAtZero: true, ticks: { precision: 0 } } } } });
  draw("chart-success-rate", { type: "line", data: { labels: days, datasets: [{ label: "success rate",
    data: current.series.map((s) => s.success_rate == null ? null : +(s.success_rate * 100).toFixed(2)),
    borderColor: "#16a34a", backgroundColor: "#16a34a33", fill: true, tension: .25, spanGaps: true }] },
    options: { scales: { y: { min: 0, max: 100, ticks: { callback: (v) => v + "%" } } } } });
  const meters = (usage ? usage.rows : []).filter((r) => Number(r.credits) > 0 || r.micro_credits > 0);
  draw("chart-credits", { type: "bar", data: { labels: meters.map((r) => r.meter), datasets: [{
    label: "credits", data: meters.map((r) => Number(r.credits)),
    backgroundColor: meters.map((_, i) => PALETTE[i % PALETTE.length]) }] },
    options: { indexAxis: "y", plugins: { legend: { display: false } } } });
  draw("chart-handling", { type: "line", data: { labels: days, datasets: [
    { label: "AHT (s)", data: current.series.map((s) => s.aht_s), borderColor: "#2563eb", yAxisID: "y", spanGaps: true },
    { label: "ASA (ms)", data: current.series.map((s) => s.asa_ms), borderColor: "#f59e0b", yAxisID: "y1", spanGaps: true }] },
    options: { scales: { y: { beginAtZero: true, position: "left" }, y1: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false } } } } });
  const dispositions = Object.entries(current.dispositions || {}).sort((a, b) => b[1] - a[1]);
  draw("chart-dispositions", { type: "bar", data: { labels: dispositions.map((d) => d[0]), datasets: [{
    label: "conversations", data: dispositions.map((d) => d[1]),
    backgroundColor: dispositions.map((_, i) => PALETTE[i % PALETTE.length]) }] },
    options: { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } } });
  const mix = Object.entries(current.channel_mix || {}).filter((c) => c[1] > 0);
  draw("chart-channels", { type: "doughnut", data: { labels: mix.map((c) => c[0]), datasets: [{
    data: mix.map((c) => c[1]), backgroundColor: mix.map((c) => COLORS[c[0]] || "#475569") }] } });
  fillCounts("dispositions", dispositions);
  fillCounts("channel-mix", mix);
}
function fillCounts(id, entries) {
  const body = $(id);
  body.replaceChildren();
  const total = entries.reduce((n, e) => n + e[1], 0);
  for (const [name, count] of entries) {
    const tr = body.insertRow();
    cell(tr, name); cell(tr, fmtInt(count)); cell(tr, total ? fmtPct(count / total) : "–");
  }
}

// ---- KPIs, usage, conversations ---------------------------------------------------
async function refreshKpis() {
  const f = filters();
  const channels = f.channel ? [f.channel] : CHANNELS;
  const [current, previous, usage, commentary, ...perChannel] = await Promise.all([
    optional(`/v1/kpis?${query(f, { granularity: "day" })}`),
    optional(`/v1/kpis?${query(previousPeriod(f), { granularity: "day" })}`),
    get(`/v1/usage?group_by=meter&from=${f.from}&to=${addDays(f.to, 1)}`),
    optional(`/v1/kpis/commentary?from=${f.from}&to=${f.to}`).catch(() => null),
    ...channels.map((c) => optional(`/v1/kpis?${query({ ...f, channel: c }, { granularity: "day" })}`)),
  ]);
  showUsage(usage);
  if (!current) {
    $("kpi-note").textContent = "KPIs are not available on this gateway yet.";
    showCharts({ series: [], dispositions: {}, channel_mix: {} }, [], usage);
    return;
  }
  $("kpi-note").textContent = `${f.from} to ${f.to}; changes are against ${previousPeriod(f).from} to ${previousPeriod(f).to}.`;
  showCards(current, previous);
  showCharts(current, channels.map((c, i) => [c, perChannel[i]]).filter((p) => p[1]), usage);
  $("commentary-panel").hidden = !(commentary && commentary.text);
  if (commentary) $("commentary").textContent = commentary.text;
}
function showUsage(usage) {
  const body = $("usage");
  body.replaceChildren();
  for (const row of usage.rows) {
    const tr = body.insertRow();
    cell(tr, row.meter);
    cell(tr, Object.entries(row.units).map(([meter, units]) => fmtUnits(meter, units)).join(", "));
    cell(tr, fmtCredits(row.credits));
  }
}
async function refreshConversations(append = false) {
  const f = filters();
  if (!append) cursor = null;
  const page = await optional(`/v1/conversations?${query(f, { limit: 20, ...(cursor ? { cursor } : {}) })}`);
  const body = $("conversations");
  if (!append) body.replaceChildren();
  if (!page) { cell(body.insertRow(), "Conversations are not available on this gateway yet."); return; }
  for (const c of page.conversations) {
    const tr = body.insertRow();
    tr.className = "clickable"; tr.dataset.id = c.id;
    cell(tr, fmtTime(c.started_at)); cell(tr, c.channel); cell(tr, customerOf(c.customer));
    cell(tr, c.ended_at ? fmtDuration(new Date(c.ended_at) - new Date(c.started_at)) : "live");
    cell(tr, c.disposition || "–");
    cell(tr, (c.outcomes || []).map((o) => o.kind).join(", ") || (c.handoff ? "handoff" : "–"));
    cell(tr, fmtCredits(c.credits)); cell(tr, c.rating ?? "–");
    tr.addEventListener("click", () => openDrawer(c.id).catch(showError));
  }
  if (!append && !page.conversations.length) cell(body.insertRow(), "No conversation in this period.");
  cursor = page.next_cursor;
  $("more").hidden = !cursor;
}
async function openDrawer(id) {
  const c = await get(`/v1/conversations/${id}`);
  $("drawer-title").textContent = `${c.channel} conversation with ${customerOf(c.customer)}`;
  $("drawer-meta").textContent = `${fmtTime(c.started_at)} · ${c.direction} · ` +
    `${c.ended_at ? fmtDuration(new Date(c.ended_at) - new Date(c.started_at)) : "in progress"} · ${c.disposition || "open"}`;
  $("drawer-summary").textContent = c.summary || "No summary yet.";
  const charges = $("drawer-charges");
  charges.replaceChildren();
  for (const [label, value] of [["credits", fmtCredits(c.credits)],
    ["outcomes", (c.outcomes || []).map((o) => o.kind).join(", ") || "none"],
    ["handed to a human", c.handoff ? "yes" : "no"], ["resolved", c.resolved ? "yes" : "no"],
    ["rating", c.rating ?? "–"]]) {
    const tr = charges.insertRow(); cell(tr, label); cell(tr, value);
  }
  const transcript = $("drawer-transcript");
  transcript.replaceChildren();
  for (const turn of c.transcript || []) {
    const div = document.createElement("div");
    div.className = `turn ${turn.role}`;
    const who = document.createElement("div");
    who.className = "who";
    who.textContent = `${turn.role === "agent" ? "Agent" : "Customer"} · ${fmtTime(turn.started_at)}` +
      (turn.interrupted ? " · interrupted" : "");
    const text = document.createElement("div");
    text.textContent = turn.text;
    div.append(who, text);
    if (turn.interrupted && turn.heard_text != null) {
      const heard = document.createElement("div");
      heard.className = "heard"; heard.textContent = `heard: ${turn.heard_text}`;
      div.append(heard);
    }
    transcript.append(div);
  }
  if (!c.transcript) transcript.textContent = "The transcript was deleted after the retention period.";
  const tools = $("drawer-tools");
  tools.replaceChildren();
  for (const call of c.tool_calls || []) {
    const tr = tools.insertRow();
    cell(tr, call.name); cell(tr, JSON.stringify(call.arguments)); cell(tr, JSON.stringify(call.result));
  }
  $("drawer").hidden = false;
}
async function downloadCsv(ev) {
  ev.preventDefault();
  const f = filters();
  await download($("csv").href, `conversations-${f.from}-${f.to}.csv`, "the export");
}

// ---- live (GET /v1/live) ----------------------------------------------------------
let live = null, liveRetry = 1000, reloadTimer = null;
function showBalance(balance) {
  $("available").textContent = fmtCredits(balance.available_credits);
  $("reserved").textContent = fmtCredits(balance.reserved_credits);
  $("state").textContent = balance.paused ? "paused: top up" : "active";
  $("state").className = balance.paused ? "paused" : "";
}
function showSessions(sessions) {
  $("live-count").textContent = sessions.length;
  const body = $("live-sessions");
  body.replaceChildren();
  for (const s of sessions) {
    const tr = body.insertRow();
    cell(tr, fmtTime(s.started_at)); cell(tr, s.channel); cell(tr, s.customer); cell(tr, fmtCredits(s.credits));
  }
  if (!sessions.length) cell(body.insertRow(), "Nobody on the line right now.");
}
function liveState(on, text) {
  $("live-dot").className = on ? "dot on" : "dot";
  $("live-status").textContent = text;
}
async function connectLive() {
  if (live) { live.close(); live = null; }
  if (!can) return;
  let ticket;
  try { ticket = await send("POST", "/v1/live/token"); } catch (e) {
    liveState(false, "offline");
    if (e.status === 401) { showError(e); return; }
    setTimeout(connectLive, liveRetry = Math.min(liveRetry * 2, 30000));
    return;
  }
  const source = new EventSource(ticket.url);
  live = source;
  source.onopen = () => { liveRetry = 1000; liveState(true, "live"); };
  source.addEventListener("balance", (ev) => showBalance(JSON.parse(ev.data)));
  source.addEventListener("sessions", (ev) => showSessions(JSON.parse(ev.data).sessions));
  source.addEventListener("conversations", () => {
    clearTimeout(reloadTimer);  // a burst of settlements: one reload
    reloadTimer = setTimeout(() => Promise.all([refreshConversations(), refreshKpis()]).catch(showError), 300);
  });
  // A token opens one stream only: every reconnection asks for a new one.
  const reconnect = () => {
    if (live !== source) return;
    source.close(); live = null;
    liveState(false, "reconnecting");
    setTimeout(connectLive, liveRetry = Math.min(liveRetry * 2, 30000));
  };
  source.addEventListener("bye", reconnect);
  source.onerror = reconnect;
}

// ---- billing (plan, invoices, webhooks, alerts) ----------------------------------
function button(row, label, action) {
  const b = document.createElement("button");
  b.type = "button"; b.className = "link"; b.textContent = label;
  b.addEventListener("click", () => action().catch(showError));
  row.insertCell().append(b);
  return b;
}
function describe(plan) {
  return `${plan.name} (${plan.id} v${plan.version}): ${plan.monthly_fee} ${plan.currency} a month, ` +
    `${plan.success_fee} per success, ${plan.included_credits} credits included`;
}
async function refreshPlan() {
  const [view, offered] = await Promise.all([get("/v1/plan"), get("/v1/plans?limit=100")]);
  $("plan").textContent = view.current ? describe(view.current) + `, since ${view.current.effective_from}`
    : "No plan: prepaid top-ups only.";
  $("pending").textContent = view.pending ? `From ${view.pending.effective_from}: ${describe(view.pending)}` : "";
  const choice = $("plan-choice");
  choice.replaceChildren();
  for (const plan of offered.plans) choice.add(new Option(`${plan.name} (${plan.id})`, plan.id));
  const wanted = view.pending || view.current;
  if (wanted) choice.value = wanted.id;
}
async function refreshDraft() {
  const lines = $("draft-lines");
  let draft;
  try { draft = await get("/v1/invoices/upcoming"); }
  catch (e) { if (e.status !== 404) throw e; lines.replaceChildren(); $("draft-total").textContent = "–"; return; }
  $("draft-period").textContent = draft.period;
  lines.replaceChildren();
  for (const line of draft.lines) {
    const tr = lines.insertRow();
    cell(tr, line.description); cell(tr, line.quantity); cell(tr, line.unit_price); cell(tr, line.amount);
  }
  $("draft-total").textContent = `${draft.total} ${draft.currency}`;
  $("draft-successes").textContent = draft.successes;
  $("draft-cps").textContent = draft.cost_per_success ?? "–";
}
async function openPdf(invoice) {
  await download(`/v1/invoices/${invoice.id}/pdf`, `${invoice.number || "draft-" + invoice.period}.pdf`,
    "the PDF");
}
async function refreshInvoices() {
  const page = await get("/v1/invoices?limit=24");
  const body = $("invoices");
  body.replaceChildren();
  for (const invoice of page.invoices) {
    const tr = body.insertRow();
    cell(tr, invoice.number || "–"); cell(tr, invoice.period); cell(tr, invoice.status);
    cell(tr, `${invoice.total} ${invoice.currency}`);
    button(tr, "PDF", () => openPdf(invoice));
  }
}
async function showDeliveries(hook) {
  const page = await get(`/v1/webhooks/${hook.id}/deliveries?limit=20`);
  $("deliveries-title").hidden = $("deliveries-table").hidden = false;
  $("deliveries-title").textContent = `Deliveries to ${hook.url}`;
  const body = $("deliveries");
  body.replaceChildren();
  for (const d of page.deliveries) {
    const tr = body.insertRow();
    cell(tr, d.attempted_at); cell(tr, d.event_type); cell(tr, d.attempt); cell(tr, d.status);
    cell(tr, d.response_code ?? d.error ?? "–");
  }
  if (!page.deliveries.length) cell(body.insertRow(), "no attempt yet");
}
async function refreshWebhooks() {
  const page = await get("/v1/webhooks?limit=100");
  const body = $("webhooks");
  body.replaceChildren();
  for (const hook of page.webhooks) {
    const tr = body.insertRow();
    cell(tr, hook.url); cell(tr, hook.events.join(", ")); cell(tr, hook.enabled ? "enabled" : "disabled");
    const actions = tr.insertCell();
    const entries = [["Deliveries", () => showDeliveries(hook)]];
    if (can.write) {
      entries.unshift(["Test", async () => { await send("POST", `/v1/webhooks/${hook.id}/test`); await showDeliveries(hook); }]);
      entries.push(["Delete", async () => { await send("DELETE", `/v1/webhooks/${hook.id}`); await refreshWebhooks(); }]);
    }
    for (const [label, action] of entries) {
      const b = document.createElement("button");
      b.type = "button"; b.className = "link"; b.textContent = label;
      b.addEventListener("click", () => action().catch(showError));
      actions.append(b, " ");
    }
  }
}
async function refreshAlerts() {
  const alerts = await get("/v1/alerts");
  $("alert-threshold").value = alerts.low_balance_credits ?? "";
  $("alert-emails").value = alerts.emails.join(", ");
}

// ---- wiring -----------------------------------------------------------------------
function updateCsvLink() { $("csv").href = `/v1/conversations.csv?${query(filters())}`; }
async function loadAll() {
  if (!can) return;
  updateCsvLink();
  try {
    if (can.money) showBalance(await get("/v1/balance"));
    clearError();
    connectLive();
    const parts = [refreshKpis(), refreshConversations()];
    if (can.money) parts.push(refreshPlan(), refreshDraft(), refreshInvoices(), refreshAlerts());
    if (can.manage) parts.push(refreshWebhooks());
    await Promise.all(parts);
  } catch (e) { showError(e); }
}

// ---- who is here ------------------------------------------------------------------
const MONEY_ROLES = ["owner", "admin", "billing"], MANAGE_ROLES = ["owner", "admin"];
// A pasted key: its scope, from the keys list (a read key may read it too); the key
// itself is checked here first, so a wrong one is one clear error.
async function keyRights() {
  const keys = await get("/v1/api-keys").catch((e) => {
    if (e.status === 401) throw e;
    return null;
  });
  const mine = keys && keys.api_keys.find((k) => auth.key().startsWith(k.prefix));
  const full = !!mine && mine.scope === "full";
  return { who: `API key ${mine ? mine.name : ""} (${mine ? mine.scope : "read"})`,
    money: true, manage: true, write: full, people: full };
}
async function whoIsHere() {
  if (auth.key()) return keyRights();
  const session = await auth.session();
  if (!session) return null;
  const { email, role, tenant_id: tenant } = session.user;
  if (!tenant) {
    throw new ApiError("This is a business's dashboard: operators use the operator dashboard (/admin/dashboard).", 403);
  }
  return { who: `${email} (${role})`, money: MONEY_ROLES.includes(role),
    manage: MANAGE_ROLES.includes(role), write: true, people: MANAGE_ROLES.includes(role) };
}
function showSignIn() {
  can = null;
  if (live) { live.close(); live = null; }
  liveState(false, "offline");
  $("signin").hidden = false;
  $("content").hidden = $("account").hidden = true;
}
function showParts() {
  $("signin").hidden = true;
  $("content").hidden = $("account").hidden = false;
  $("who").textContent = can.who;
  $("users-link").hidden = $("keys-link").hidden = !can.people;
  $("balance-panel").hidden = $("billing").hidden = $("alerts-section").hidden = !can.money;
  $("live-grid").classList.toggle("single", !can.money);
  $("webhooks-section").hidden = !can.manage;
  $("plan-form").hidden = $("webhook-form").hidden = !can.write;
  for (const el of $("alerts-form").querySelectorAll("input, button")) el.disabled = !can.write;
}
async function start() {
  clearError();
  try { can = await whoIsHere(); } catch (e) {
    if (e.status === 401) auth.useKey(null);  // a refused key is not kept
    showSignIn(); showError(e); return;
  }
  if (!can) { showSignIn(); return; }
  showParts();
  await loadAll();
}
for (const name of EVENTS) {
  const label = document.createElement("label");
  const box = document.createElement("input");
  box.type = "checkbox"; box.value = name; box.checked = name.startsWith("balance.");
  label.append(box, " " + name + " ");
  $("webhook-events").append(label);
}
$("login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const key = $("key").value.trim();
  $("key").value = "";
  if (!key) return;
  auth.useKey(key);
  start();
});
$("logout").addEventListener("click", async () => {
  if (auth.key()) auth.useKey(null); else await auth.logout();
  $("drawer").hidden = true;
  showSignIn();
});
$("filters").addEventListener("submit", (ev) => {
  ev.preventDefault();
  updateCsvLink();
  Promise.all([refreshKpis(), refreshConversations()]).then(clearError).catch(showError);
});
$("channel").addEventListener("change", () => $("filters").requestSubmit());
$("csv").addEventListener("click", (ev) => downloadCsv(ev).catch(showError));
$("more").addEventListener("click", () => refreshConversations(true).catch(showError));
$("drawer-close").addEventListener("click", () => { $("drawer").hidden = true; });
document.addEventListener("keydown", (ev) => { if (ev.key === "Escape") $("drawer").hidden = true; });
$("plan-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  send("PUT", "/v1/plan", { plan_id: $("plan-choice").value })
    .then(() => Promise.all([refreshPlan(), refreshDraft()])).catch(showError);
});
$("webhook-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const events = [...$("webhook-events").querySelectorAll("input:checked")].map((b) => b.value);
  send("POST", "/v1/webhooks", { url: $("webhook-url").value.trim(), events }).then((hook) => {
    const shown = $("webhook-secret");
    shown.hidden = false;
    shown.replaceChildren("Signing secret (shown once, copy it now): ");
    const code = document.createElement("code");
    code.id = "secret-value"; code.textContent = hook.secret;
    shown.append(code);
    $("webhook-url").value = "";
    return refreshWebhooks();
  }).catch(showError);
});
$("alerts-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const threshold = $("alert-threshold").value.trim();
  const emails = $("alert-emails").value.split(",").map((e) => e.trim()).filter(Boolean);
  send("PUT", "/v1/alerts", { low_balance_credits: threshold ? Number(threshold) : null, emails })
    .then((saved) => { $("alerts-saved").textContent = `saved (${saved.low_balance_credits ?? "off"})`; })
    .catch(showError);
});
// The draft invoice moves with usage; it is the one figure still read on a timer (once a minute).
setInterval(() => { if (can && can.money) refreshDraft().catch(showError); }, 60000);
filters();
start();
