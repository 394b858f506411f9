// ocpi-gateway dashboard: a small page over the admin API (/admin/...), signed in by
// the session cookie. Hand-written, no build step, no third-party code.
// Safety rule: every value from the API reaches the page as text (textContent,
// attributes set one by one), never as markup.
"use strict";

const state = { csrf: null, route: null, onChange: null, onResync: null, timers: [] };

// -- helpers -----------------------------------------------------------------------

function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function show(...nodes) {
  const main = document.getElementById("main");
  main.replaceChildren(...nodes);
}

function when(value) {
  if (!value) return "—";
  const d = new Date(value);
  return isNaN(d) ? String(value) : d.toLocaleString();
}

function ago(value) {
  if (!value) return "—";
  const s = Math.round((Date.now() - new Date(value)) / 1000);
  if (!isFinite(s)) return String(value);
  if (s < 60) return `${Math.max(s, 0)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return when(value);
}

function kwh(wh) {
  if (wh === null || wh === undefined) return "—";
  return `${(Number(wh) / 1000).toFixed(3)} kWh`;
}

function money(cost, currency) {
  if (!cost) return "—";
  const incl = cost.incl_vat ?? cost.excl_vat;
  return `${incl} ${currency || ""}`.trim();
}

function badge(text, kind) {
  return h("span", { class: `badge st-${kind || text}` }, text);
}

function table(columns, rows, rowProps) {
  const head = h("tr", {}, columns.map((c) => h("th", {}, c[0])));
  const body = rows.map((row) =>
    h("tr", rowProps ? rowProps(row) : {}, columns.map((c) => h("td", { class: c[2] || null }, c[1](row)))),
  );
  if (!rows.length) body.push(h("tr", {}, h("td", { colspan: columns.length, class: "muted" }, "none")));
  return h("table", {}, h("thead", {}, head), h("tbody", {}, body));
}

function kv(pairs) {
  return h("dl", { class: "kv" }, pairs.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v ?? "—")]));
}

function json(value) {
  return h("pre", {}, JSON.stringify(value, null, 2));
}

function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

function throttle(fn, ms) {
  // At most one call per ms, the last one always made (a burst ends up shown).
  let timer = null;
  let last = 0;
  return () => {
    if (timer) return;
    const wait = Math.max(0, last + ms - Date.now());
    timer = setTimeout(() => { timer = null; last = Date.now(); fn(); }, wait);
  };
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = state.csrf;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(`/admin${path}`, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) {
    location.assign("/dashboard/sign-in");
    throw new Error("signed out");
  }
  let data = null;
  if ((response.headers.get("Content-Type") || "").includes("json")) data = await response.json();
  return { status: response.status, data, total: Number(response.headers.get("X-Total-Count") || 0) };
}

async function get(path) {
  const r = await api("GET", path);
  if (r.status >= 400) throw new Error(`${path}: ${r.status} ${(r.data && r.data.error) || ""}`);
  return r;
}

function answerBox(r) {
  const ok = r.status < 400;
  return h("div", { class: ok ? "answer" : "answer bad", "data-status": r.status },
    h("strong", {}, `HTTP ${r.status}`), r.data && r.data.status ? ` — ${r.data.status}` : "",
    json(r.data));
}

function failed(error) {
  return h("p", { class: "error" }, String(error.message || error));
}

// -- chargers -----------------------------------------------------------------------

const COMMANDS = {
  reset: { type: "soft" },
  unlock: { evse_id: 1, connector_id: 1 },
  "remote-start": { id_token: "TAG-1", evse_id: 1 },
  "remote-stop": { transaction_id: "" },
  "change-availability": { operative: true, evse_id: 0 },
  "trigger-message": { message: "Heartbeat" },
  "get-configuration": { keys: [] },
  "set-configuration": { key: "HeartbeatInterval", value: "300" },
  "get-variables": { variables: [{ component: "OCPPCommCtrlr", variable: "HeartbeatInterval" }] },
  "set-variables": { variables: [{ component: "OCPPCommCtrlr", variable: "HeartbeatInterval", value: "300" }] },
  "update-firmware": { location: "https://example.com/fw.bin", retrieve_at: new Date().toISOString() },
  "get-diagnostics": { location: "ftp://example.com/diagnostics/" },
  "get-log": { location: "ftp://example.com/logs/", log_type: "DiagnosticsLog" },
  "reserve-now": { reservation_id: 1, id_token: "TAG-1", expiry: new Date(Date.now() + 3600e3).toISOString(), evse_id: 1 },
  "cancel-reservation": { reservation_id: 1 },
};

const PAGE_SIZE = 50;

function connectorBadges(c) {
  if (!c.connectors.length) return h("span", { class: "muted" }, "—");
  return c.connectors.map((k) =>
    badge(`${k.evse_id}/${k.connector_id} ${k.status}${k.error_code && k.error_code !== "NoError" ? " " + k.error_code : ""}`, k.status));
}

function chargerCells(c) {
  return [
    h("td", { class: "c-id" }, h("a", { href: `#/chargers/${encodeURIComponent(c.id)}` }, c.id)),
    h("td", { class: "c-connected" }, c.connected ? badge("online") : badge("offline")),
    h("td", { class: "c-version" }, c.ocpp_version || "—"),
    h("td", { class: "c-model" }, [c.vendor, c.model].filter(Boolean).join(" ") || "—"),
    h("td", { class: "c-firmware" }, c.firmware_version || "—"),
    h("td", { class: "c-heartbeat", title: c.last_heartbeat || "" }, ago(c.last_heartbeat)),
    h("td", { class: "c-connectors" }, connectorBadges(c)),
    h("td", { class: "c-location" }, c.location_id || "—"),
  ];
}

async function chargersPage(params) {
  const q = { q: params.get("q") || "", connected: params.get("connected") || "",
    version: params.get("version") || "", offset: Number(params.get("offset") || 0) };
  const search = h("input", { type: "search", id: "search", placeholder: "id, location, vendor, model, firmware", value: q.q });
  const connected = h("select", { id: "connected" },
    h("option", { value: "" }, "online and offline"), h("option", { value: "true" }, "online"),
    h("option", { value: "false" }, "offline"));
  connected.value = q.connected;
  const version = h("select", { id: "version" },
    h("option", { value: "" }, "any OCPP version"), h("option", { value: "1.6" }, "1.6"),
    h("option", { value: "2.0.1" }, "2.0.1"), h("option", { value: "2.1" }, "2.1"));
  version.value = q.version;
  const count = h("span", { class: "muted", id: "count" });
  const holder = h("div", { id: "chargers" });
  const pager = h("div", { class: "pager" });
  const go = (changes) => {
    const next = new URLSearchParams({ q: search.value, connected: connected.value, version: version.value, offset: q.offset, ...changes });
    for (const [k, v] of [...next]) if (!v || v === "0") next.delete(k);
    location.hash = `#/chargers${next.toString() ? "?" + next : ""}`;
  };
  search.addEventListener("input", debounce(() => go({ offset: 0 }), 300));
  connected.addEventListener("change", () => go({ offset: 0 }));
  version.addEventListener("change", () => go({ offset: 0 }));
  show(h("h1", {}, "Chargers"), h("div", { class: "toolbar" }, search, connected, version, count), holder, pager);
  if (q.q) { search.focus(); search.setSelectionRange(q.q.length, q.q.length); }

  const rows = new Map();
  async function load() {
    const query = new URLSearchParams({ limit: PAGE_SIZE, offset: q.offset });
    if (q.q) query.set("q", q.q);
    if (q.connected) query.set("connected", q.connected);
    if (q.version) query.set("ocpp_version", q.version);
    const r = await get(`/chargers?${query}`);
    rows.clear();
    const t = table(
      [["Charger"], ["Connection"], ["OCPP"], ["Vendor / model"], ["Firmware"], ["Last heartbeat"], ["Connectors"], ["Location"]].map((c) => [c[0], () => ""]),
      [],
    );
    const tbody = t.querySelector("tbody");
    tbody.replaceChildren(...r.data.map((c) => {
      const tr = h("tr", { dataset: { charger: c.id } }, chargerCells(c));
      rows.set(c.id, tr);
      return tr;
    }));
    if (!r.data.length) tbody.append(h("tr", {}, h("td", { colspan: 8, class: "muted" }, "no charger matches")));
    holder.replaceChildren(t);
    count.textContent = `${r.total} charger${r.total === 1 ? "" : "s"}`;
    const last = Math.min(q.offset + PAGE_SIZE, r.total);
    pager.replaceChildren(
      h("button", { class: "secondary", disabled: q.offset === 0, onclick: () => go({ offset: Math.max(q.offset - PAGE_SIZE, 0) }) }, "← previous"),
      h("span", { class: "muted" }, r.total ? `${q.offset + 1}–${last} of ${r.total}` : ""),
      h("button", { class: "secondary", disabled: last >= r.total, onclick: () => go({ offset: q.offset + PAGE_SIZE }) }, "next →"),
    );
  }
  const reload = throttle(() => load().catch(() => {}), 500);
  const pending = new Map();
  async function refresh(id) {
    const r = await api("GET", `/chargers/${encodeURIComponent(id)}`);
    const tr = rows.get(id);
    if (!tr) return;
    if (r.status === 404) { reload(); return; }
    if (r.status >= 400) return;
    tr.replaceChildren(...chargerCells(r.data));
    tr.classList.remove("flash"); void tr.offsetWidth; tr.classList.add("flash");
  }
  state.onChange = (m) => {
    if (!m.charger_id) return;
    if (rows.has(m.charger_id) && m.kind !== "configured") {
      // Several events of one charger in a burst: one read.
      clearTimeout(pending.get(m.charger_id));
      pending.set(m.charger_id, setTimeout(() => refresh(m.charger_id).catch(() => {}), 100));
    } else if (m.kind === "configured" || m.kind === "booted" || q.connected || q.version || rows.has(m.charger_id)) {
      // The list itself may change: a charger registered (by the operator, or by its
      // first boot when auto-registration is on), removed, or now (un)matching a filter.
      reload();
    }
  };
  state.onResync = reload;
  await load();
}

async function chargerPage(id) {
  const info = h("div", { class: "card", id: "charger-info" });
  const connectors = h("div", { id: "charger-connectors" });
  const txs = h("div", { id: "charger-transactions" });
  const select = h("select", { id: "command" }, Object.keys(COMMANDS).map((name) => h("option", { value: name }, name)));
  const body = h("textarea", { id: "command-body", spellcheck: "false" });
  const answers = h("div", { id: "answers" });
  const send = h("button", { id: "send-command", type: "button" }, "Send");
  const fill = () => { body.value = JSON.stringify(COMMANDS[select.value], null, 2); };
  select.addEventListener("change", fill);
  fill();
  send.addEventListener("click", async () => {
    let payload;
    try { payload = body.value.trim() ? JSON.parse(body.value) : {}; } catch (e) {
      answers.prepend(h("p", { class: "error" }, `not JSON: ${e.message}`)); return;
    }
    send.disabled = true;
    const started = new Date();
    try {
      const r = await api("POST", `/chargers/${encodeURIComponent(id)}/commands/${select.value}`, payload);
      answers.prepend(h("div", { class: "command-answer" },
        h("div", { class: "muted" }, `${started.toLocaleTimeString()} ${select.value}`), answerBox(r)));
    } finally { send.disabled = false; }
  });
  const trail = h("div", { id: "charger-trail" });
  show(
    h("p", {}, h("a", { href: "#/chargers" }, "← chargers")),
    h("h1", {}, `Charger ${id}`),
    h("div", { class: "grid" },
      info,
      h("div", { class: "card" }, h("h2", {}, "Remote command"), h("div", { class: "toolbar" }, select, send), body, answers)),
    h("h2", {}, "Connectors"), connectors,
    h("h2", {}, "Transactions"), txs,
    h("h2", {}, "Message trail"), trail,
  );
  async function load() {
    const r = await api("GET", `/chargers/${encodeURIComponent(id)}`);
    if (r.status === 404) { info.replaceChildren(h("p", { class: "error" }, "no such charger")); return; }
    const c = r.data;
    info.replaceChildren(kv([
      ["Connection", c.connected ? badge("online") : badge("offline")],
      ["OCPP version", c.ocpp_version],
      ["Vendor / model", [c.vendor, c.model].filter(Boolean).join(" ") || null],
      ["Firmware", c.firmware_version],
      ["Serial number", c.reported_serial_number || c.serial_number],
      ["Booted", when(c.booted_at)],
      ["Last heartbeat", when(c.last_heartbeat)],
      ["Location", c.location_id],
      ["EVSEs", c.evses.map((e) => `${e.ocpp_id}: ${e.evse_uid}`).join(", ") || null],
    ]));
    info.dataset.connected = String(c.connected);
    connectors.replaceChildren(table([
      ["EVSE", (k) => k.evse_id], ["Connector", (k) => k.connector_id],
      ["Status", (k) => badge(k.status), "c-status"], ["Error", (k) => k.error_code || "—"],
      ["Since", (k) => when(k.timestamp)],
    ], c.connectors, (k) => ({ dataset: { connector: `${k.evse_id}/${k.connector_id}` } })));
    const t = await get(`/transactions?charger_id=${encodeURIComponent(id)}&limit=10`);
    txs.replaceChildren(transactionsTable(t.data));
  }
  await loadTrail(id, trail);
  // The trail is written in batches (about every half second): read it a moment after.
  const trailLater = debounce(() => loadTrail(id, trail).catch(() => {}), 1000);
  state.onChange = debounce((m) => {
    if (m.charger_id !== id) return;
    load().catch(() => {});
    trailLater();
  }, 100);
  state.onResync = () => { load().catch(() => {}); trailLater(); };
  await load();
}

async function loadTrail(id, holder) {
  // The message trail (GET /admin/trail) is another part of the gateway: shown when the
  // running gateway serves it.
  const r = await api("GET", `/trail?charger_id=${encodeURIComponent(id)}&limit=50`);
  if (r.status === 404 && !(r.data && Array.isArray(r.data))) {
    holder.replaceChildren(h("p", { class: "muted" }, "The message trail is not available on this gateway."));
    return;
  }
  if (r.status >= 400) { holder.replaceChildren(h("p", { class: "error" }, `HTTP ${r.status}: ${(r.data && r.data.error) || ""}`)); return; }
  const items = Array.isArray(r.data) ? r.data : (r.data.entries || r.data.items || []);
  const wanted = ["at", "direction", "action", "message_type", "message_id", "status", "size", "transaction_id"];
  const cols = items.length ? wanted.filter((k) => k in items[0]) : ["at"];
  holder.replaceChildren(table(cols.map((k) => [k, (row) => typeof row[k] === "object" && row[k] !== null ? JSON.stringify(row[k]) : row[k] ?? "—"]), items));
}

// -- sessions and CDRs ----------------------------------------------------------------

function transactionsTable(list) {
  return table([
    ["Started", (t) => when(t.started_at)], ["Charger", (t) => h("a", { href: `#/chargers/${encodeURIComponent(t.charger_id)}` }, t.charger_id)],
    ["EVSE", (t) => t.evse_id], ["Status", (t) => badge(t.status, t.status === "Active" ? "Charging" : "ok")],
    ["Token", (t) => t.id_token || "—"], ["Energy", (t) => kwh(t.energy_wh)],
    ["Stopped", (t) => when(t.stopped_at)], ["Reason", (t) => t.stop_reason || "—"],
  ], list, (t) => ({ dataset: { transaction: t.id } }));
}

async function sessionsPage() {
  const txs = h("div", { id: "transactions" });
  const sessions = h("div", { id: "ocpi-sessions" });
  const cdrs = h("div", { id: "cdrs" });
  show(h("h1", {}, "Sessions and CDRs"),
    h("h2", {}, "Transactions (newest first)"), txs,
    h("h2", {}, "Roaming sessions"), sessions,
    h("h2", {}, "CDRs"), cdrs);
  async function load() {
    const [t, s, c] = await Promise.all([get("/transactions?limit=50"), get("/sessions?limit=50"), get("/cdrs?limit=50")]);
    const active = t.data.filter((x) => x.status === "Active");
    txs.replaceChildren(h("p", { class: "muted" }, `${active.length} active among the latest ${t.data.length}`), transactionsTable(t.data));
    sessions.replaceChildren(table([
      ["Session", (x) => x.id], ["Partner", (x) => x.partner_id], ["Status", (x) => badge(x.status, x.status === "ACTIVE" ? "Charging" : "ok")],
      ["Start", (x) => when(x.start_date_time)], ["End", (x) => when(x.end_date_time)],
      ["Energy", (x) => (x.kwh ?? "—") + (x.kwh !== null && x.kwh !== undefined ? " kWh" : "")],
      ["Cost (incl. VAT)", (x) => money(x.total_cost, x.currency)], ["Location / EVSE", (x) => `${x.location_id || "—"} / ${x.evse_uid || "—"}`],
    ], s.data));
    cdrs.replaceChildren(table([
      ["CDR", (x) => x.id], ["Partner", (x) => x.partner_id], ["Start", (x) => when(x.start_date_time)], ["End", (x) => when(x.end_date_time)],
      ["Energy", (x) => `${x.total_energy ?? "—"} kWh`], ["Time", (x) => `${x.total_time ?? "—"} h`],
      ["Cost (incl. VAT)", (x) => money(x.total_cost, x.currency)], ["Location", (x) => x.location_id || "—"],
    ], c.data));
  }
  state.onChange = debounce((m) => { if (m.kind === "transaction") load().catch(() => {}); }, 1000);
  state.onResync = () => load().catch(() => {});
  await load();
}

// -- partners and the outbox ------------------------------------------------------------

async function roamingPage() {
  const partners = h("div", { id: "partners" });
  const outbox = h("div", { id: "outbox" });
  const failedList = h("div", { id: "outbox-failed" });
  const results = h("div", { id: "outbox-results" });
  show(h("h1", {}, "Roaming partners and the outbox"), h("h2", {}, "Partners"), partners,
    h("h2", {}, "Outbox per partner"), outbox, h("h2", {}, "Failed pushes"), results, failedList);
  async function act(item, action) {
    const r = await api("POST", `/outbox/${encodeURIComponent(item.id)}/${action}`);
    results.prepend(h("div", {}, h("div", { class: "muted" }, `${action} ${item.id}`), answerBox(r)));
    await load();
  }
  async function load() {
    const p = await get("/partners");
    partners.replaceChildren(table([
      ["Partner", (x) => x.id], ["Name", (x) => x.name], ["Kind", (x) => x.kind], ["Status", (x) => badge(x.status, x.status === "REGISTERED" ? "ok" : "pending")],
      ["Parties", (x) => x.parties.map((y) => `${y.country_code}*${y.party_id} ${y.role || ""}`.trim()).join(", ") || "—"],
      ["OCPI", (x) => x.version || "—"], ["Since", (x) => when(x.created_at)],
    ], p.data));
    const depth = await Promise.all(p.data.map(async (x) => {
      const [pend, fail] = await Promise.all([
        get(`/outbox?status=pending&partner_id=${encodeURIComponent(x.id)}&limit=1000`),
        get(`/outbox?status=failed&partner_id=${encodeURIComponent(x.id)}&limit=1000`),
      ]);
      const oldest = pend.data.reduce((m, i) => (!m || i.created_at < m ? i.created_at : m), null);
      return { id: x.id, pending: pend.data.length, failed: fail.data.length, oldest };
    }));
    const more = (n) => (n >= 1000 ? "1000+" : String(n));
    outbox.replaceChildren(table([
      ["Partner", (x) => x.id], ["Waiting", (x) => more(x.pending), "c-pending"], ["Failed", (x) => more(x.failed), "c-failed"],
      ["Oldest waiting", (x) => ago(x.oldest)],
    ], depth));
    const f = await get("/outbox?status=failed&limit=100");
    failedList.replaceChildren(table([
      ["Item", (x) => x.id], ["Partner", (x) => x.partner_id], ["Module", (x) => x.module], ["Request", (x) => `${x.method} ${x.url}`],
      ["Attempts", (x) => x.attempts], ["Last error", (x) => x.last_error || "—"], ["Created", (x) => when(x.created_at)],
      ["", (x) => [h("button", { class: "replay", onclick: () => act(x, "replay") }, "Replay"), " ",
        h("button", { class: "danger discard", onclick: () => act(x, "discard") }, "Discard")]],
    ], f.data, (x) => ({ dataset: { item: x.id } })));
  }
  await load();
}

// -- hub --------------------------------------------------------------------------------

async function hubPage() {
  const parties = h("div", { id: "hub-parties" });
  const rules = h("div", { id: "hub-rules" });
  const out = h("div", {});
  const action = h("select", { id: "rule-action" }, h("option", { value: "deny" }, "deny"), h("option", { value: "allow" }, "allow"));
  const party = h("input", { id: "rule-party", placeholder: "party, e.g. NL*EM1" });
  const counterpart = h("input", { id: "rule-counterpart", placeholder: "counterpart, e.g. BE*CPX" });
  const add = h("button", { type: "button", id: "rule-add" }, "Add rule");
  add.addEventListener("click", async () => {
    const r = await api("POST", "/hub/rules", { action: action.value, party: party.value, counterpart: counterpart.value });
    out.replaceChildren(answerBox(r));
    await load();
  });
  show(h("h1", {}, "Hub"), h("h2", {}, "Parties"), parties, h("h2", {}, "Routing rules"),
    h("div", { class: "toolbar" }, action, party, counterpart, add), out, rules);
  async function load() {
    const [p, r] = await Promise.all([get("/hub/parties"), get("/hub/rules")]);
    parties.replaceChildren(table([
      ["Party", (x) => x.party], ["Roles", (x) => x.roles.join(", ")], ["Platform", (x) => x.platform || "hosted"],
      ["Status", (x) => badge(x.status, x.status === "CONNECTED" ? "ok" : "pending")], ["Changed", (x) => when(x.status_changed_at)],
    ], p.data));
    rules.replaceChildren(table([
      ["Action", (x) => x.action], ["Party", (x) => x.party], ["Counterpart", (x) => x.counterpart], ["Created", (x) => when(x.created_at)],
      ["", (x) => h("button", { class: "danger", onclick: async () => { out.replaceChildren(answerBox(await api("DELETE", `/hub/rules/${encodeURIComponent(x.id)}`))); await load(); } }, "Delete")],
    ], r.data));
  }
  await load();
}

// -- locations and tariffs --------------------------------------------------------------

function tariffPrice(t) {
  return (t.elements || []).flatMap((e) => (e.price_components || []).map((p) => `${p.type} ${p.price}${p.vat !== undefined ? ` (+${p.vat}% VAT)` : ""}`)).join(", ");
}

async function catalogPage() {
  const locations = h("div", { id: "locations" });
  const tariffs = h("div", { id: "tariffs" });
  show(h("h1", {}, "Locations and tariffs"), h("h2", {}, "Locations"), locations, h("h2", {}, "Tariffs"), tariffs);
  const [l, t] = await Promise.all([get("/locations"), get("/tariffs")]);
  locations.replaceChildren(table([
    ["Location", (x) => x.id], ["Name", (x) => x.name || "—"], ["Address", (x) => [x.address, x.postal_code, x.city, x.country].filter(Boolean).join(", ")],
    ["Party", (x) => `${x.country_code}*${x.party_id}`], ["Time zone", (x) => x.time_zone || "—"],
    ["EVSEs", (x) => (x.evses || []).map((e) => badge(`${e.uid} ${e.status}`, e.status === "AVAILABLE" ? "ok" : e.status === "CHARGING" ? "Charging" : "offline"))],
    ["Updated", (x) => when(x.last_updated)],
  ], l.data));
  tariffs.replaceChildren(table([
    ["Tariff", (x) => x.id], ["Currency", (x) => x.currency], ["Type", (x) => x.type || "—"], ["Prices", tariffPrice],
    ["Updated", (x) => when(x.last_updated)],
  ], t.data));
}

// -- smart charging ---------------------------------------------------------------------

function flatRows(value) {
  // A generic view of the allocation: each list of objects as a table, the rest as pairs.
  const blocks = [];
  const pairs = [];
  for (const [key, v] of Object.entries(value || {})) {
    if (Array.isArray(v) && v.length && typeof v[0] === "object") {
      const cols = Object.keys(v[0]);
      blocks.push(h("h3", {}, key), table(cols.map((c) => [c, (row) => (typeof row[c] === "object" && row[c] !== null ? JSON.stringify(row[c]) : row[c] ?? "—")]), v));
    } else {
      pairs.push([key, typeof v === "object" && v !== null ? JSON.stringify(v) : v]);
    }
  }
  return [kv(pairs), ...blocks];
}

async function smartPage(params) {
  const list = h("div", { id: "sites" });
  const detail = h("div", { id: "site" });
  show(h("h1", {}, "Smart charging"), list, detail);
  const s = await get("/sites");
  list.replaceChildren(table([
    ["Site", (x) => h("a", { href: `#/smart?site=${encodeURIComponent(x.id)}` }, x.id)],
    ["Capacity", (x) => `${x.capacity} ${x.capacity_unit}`], ["Phases", (x) => x.phases], ["Policy", (x) => x.policy],
    ["EVSEs", (x) => x.evses.length],
  ], s.data));
  const id = params.get("site") || (s.data[0] && s.data[0].id);
  if (!id) return;
  async function load() {
    const [site, limits] = await Promise.all([get(`/sites/${encodeURIComponent(id)}`), get(`/sites/${encodeURIComponent(id)}/limits`)]);
    detail.replaceChildren(h("h2", {}, `Site ${id}: live allocation`), ...flatRows(site.data.allocation),
      h("h2", {}, "Limits in force and planned"),
      table(limits.data.length ? Object.keys(limits.data[0]).map((c) => [c, (row) => (typeof row[c] === "object" && row[c] !== null ? JSON.stringify(row[c]) : row[c] ?? "—")]) : [["limits", () => ""]], limits.data));
  }
  state.onChange = debounce(() => load().catch(() => {}), 1000);
  state.onResync = () => load().catch(() => {});
  await load();
}

// -- reports ----------------------------------------------------------------------------

const REPORT_PLOTS = {
  usage: ["energy_kwh", "utilization"],
  revenue: ["revenue_incl_vat"],
  uptime: ["uptime"],
  faults: ["faults"],
};

function isoDay(d) {
  return d.toISOString().slice(0, 10);
}

async function reportsPage(params) {
  const today = new Date();
  const q = {
    kind: params.get("kind") || "usage", by: params.get("by") || "location", period: params.get("period") || "day",
    from: params.get("from") || isoDay(new Date(today.getTime() - 6 * 86400e3)),
    to: params.get("to") || isoDay(new Date(today.getTime() + 86400e3)),
    tz: params.get("tz") || "UTC",
  };
  const field = (id, options, value) => {
    const el = h("select", { id }, options.map((o) => h("option", { value: o }, o)));
    el.value = value;
    return el;
  };
  const kind = field("report-kind", Object.keys(REPORT_PLOTS), q.kind);
  const by = field("report-by", ["location", "charger", "evse", "partner"], q.by);
  const period = field("report-period", ["day", "week", "month", "range"], q.period);
  const from = h("input", { id: "report-from", type: "date", value: q.from });
  const to = h("input", { id: "report-to", type: "date", value: q.to });
  const tz = h("input", { id: "report-tz", value: q.tz, size: 16 });
  const run = h("button", { id: "report-run", type: "button" }, "Show");
  run.addEventListener("click", () => {
    const next = new URLSearchParams({ kind: kind.value, by: by.value, period: period.value, from: from.value, to: to.value, tz: tz.value });
    location.hash = `#/reports?${next}`;
  });
  const query = new URLSearchParams({ from: q.from, to: q.to, by: q.by, period: q.period, tz: q.tz });
  const csv = h("a", { id: "report-csv", href: `/admin/reports/${q.kind}?${query}&format=csv`, download: "" }, "Download CSV");
  const plots = h("div", { id: "report-plots", class: "grid" });
  const rows = h("div", { id: "report-rows" });
  show(h("h1", {}, "Reports"),
    h("div", { class: "toolbar" }, kind, "by", by, "per", period, "from", from, "to", to, "time zone", tz, run, csv),
    plots, h("h2", {}, "Rows"), rows);
  const r = await api("GET", `/reports/${q.kind}?${query}`);
  if (r.status >= 400) { rows.replaceChildren(h("p", { class: "error" }, `HTTP ${r.status}: ${(r.data && r.data.error) || ""}`)); return; }
  for (const metric of REPORT_PLOTS[q.kind]) {
    if (!r.data.columns.includes(metric)) continue;
    const src = `/dashboard/plot.svg?kind=${q.kind}&metric=${metric}&${query}`;
    plots.append(h("img", { class: "plot", src, alt: `${metric} per ${q.period} and ${q.by}`, dataset: { metric } }));
  }
  rows.replaceChildren(table(r.data.columns.map((c) => [c, (row) => row[c] ?? "—"]), r.data.rows));
}

// -- the frame: routing, live updates, sign-out -------------------------------------------

const ROUTES = [
  [/^#\/chargers\/(.+)$/, (m) => chargerPage(decodeURIComponent(m[1]))],
  [/^#\/chargers$/, (m, p) => chargersPage(p)],
  [/^#\/sessions$/, () => sessionsPage()],
  [/^#\/roaming$/, () => roamingPage()],
  [/^#\/hub$/, () => hubPage()],
  [/^#\/catalog$/, () => catalogPage()],
  [/^#\/smart$/, (m, p) => smartPage(p)],
  [/^#\/reports$/, (m, p) => reportsPage(p)],
];

async function route() {
  if (!location.hash) history.replaceState(null, "", "#/chargers");
  const hash = location.hash;
  const [path, query] = hash.split("?");
  state.onChange = null;
  state.onResync = null;
  for (const a of document.querySelectorAll("nav a")) {
    a.classList.toggle("active", path.startsWith(a.getAttribute("href")));
  }
  for (const [pattern, page] of ROUTES) {
    const m = path.match(pattern);
    if (m) {
      try { await page(m, new URLSearchParams(query || "")); } catch (e) { show(failed(e)); }
      return;
    }
  }
  location.hash = "#/chargers";
}

function live() {
  const badgeEl = document.getElementById("live");
  const source = new EventSource("/admin/events");
  source.addEventListener("hello", () => { badgeEl.textContent = "live"; badgeEl.classList.remove("off"); });
  source.addEventListener("change", (e) => {
    if (state.onChange) state.onChange(JSON.parse(e.data));
  });
  source.addEventListener("resync", () => { if (state.onResync) state.onResync(); });
  source.addEventListener("error", () => { badgeEl.textContent = "reconnecting"; badgeEl.classList.add("off"); });
}

async function signOut() {
  await fetch("/dashboard/sign-out", { method: "POST", headers: { "X-CSRF-Token": state.csrf }, credentials: "same-origin" });
  location.assign("/dashboard/sign-in");
}

async function start() {
  const r = await fetch("/dashboard/session", { credentials: "same-origin" });
  if (r.status !== 200) { location.assign("/dashboard/sign-in"); return; }
  state.csrf = (await r.json()).csrf_token;
  document.getElementById("sign-out").addEventListener("click", signOut);
  window.addEventListener("hashchange", route);
  live();
  await route();
}

start();
