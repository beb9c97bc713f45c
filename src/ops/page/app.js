// The ops status page (issue 14). Served by the ops port with a strict CSP: this file is the
// only script, it talks only to the same origin, and it writes the DOM with textContent and
// createElement only, so nothing the gateway reports can run as code. The token lives in this
// closure only (not in storage): a reload logs out.
"use strict";
(function () {
  const POLL_MS = 2000;
  const HISTORY = 120;
  let token = null;
  let role = null;
  let timer = null;
  let eventsNext = null;
  let lastCounters = null;
  const history = [];
  const $ = (id) => document.getElementById(id);

  function say(el, text, kind) {
    el.textContent = text || "";
    el.className = "message" + (kind ? " " + kind : "");
  }

  async function api(method, path, body) {
    const headers = { "Accept": "application/json" };
    if (token) headers["Authorization"] = "Bearer " + token;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const r = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store", credentials: "omit",
    });
    const text = await r.text();
    let json = null;
    try { json = JSON.parse(text); } catch (_) { json = null; }
    if (r.status === 401 && path !== "/api/v1/login") {
      loggedOut("Your session ended (token expired or revoked): log in again.");
    }
    return { status: r.status, json, text, retryAfter: r.headers.get("Retry-After") };
  }

  function errorText(r) {
    if (r.json && typeof r.json.error === "string") return r.json.error;
    return "HTTP " + r.status;
  }

  // ---- login -------------------------------------------------------------------------------

  async function login(ev) {
    ev.preventDefault();
    const body = { user: $("login-user").value, password: $("login-password").value };
    const totp = $("login-totp").value.trim();
    if (totp) body.totp = totp;
    $("login-submit").disabled = true;
    try {
      const r = await api("POST", "/api/v1/login", body);
      if (r.status === 200 && r.json && r.json.token) {
        token = r.json.token;
        $("login-password").value = "";
        $("login-totp").value = "";
        say($("login-message"), "");
        const who = await api("GET", "/api/v1/whoami");
        role = who.json ? who.json.role : null;
        $("who").textContent = who.json ? who.json.user + " (" + who.json.role + ")" : "";
        $("login-view").hidden = true;
        $("status-view").hidden = false;
        $("logout").hidden = false;
        controlsForRole();
        poll();
      } else if (r.status === 429) {
        say($("login-message"), errorText(r) + (r.retryAfter ? " (retry in " + r.retryAfter + " s)" : ""), "error");
      } else {
        say($("login-message"), "Login refused: " + errorText(r), "error");
      }
    } catch (e) {
      say($("login-message"), "The ops port did not answer: " + e, "error");
    } finally {
      $("login-submit").disabled = false;
    }
  }

  function loggedOut(message) {
    token = null;
    role = null;
    if (timer) clearTimeout(timer);
    timer = null;
    $("status-view").hidden = true;
    $("login-view").hidden = false;
    $("logout").hidden = true;
    $("who").textContent = "";
    say($("login-message"), message, message ? "error" : "");
  }

  async function logout() {
    if (token) await api("POST", "/api/v1/logout", {});
    loggedOut("");
  }

  function controlsForRole() {
    const may = role === "risk-officer" || role === "admin";
    $("control-kill").title = may ? "" : "needs the risk-officer role";
    $("control-unkill").title = $("control-kill").title;
  }

  // ---- controls ----------------------------------------------------------------------------

  async function control(kill, scope, name) {
    const msg = $("message");
    const reason = $("control-reason").value.trim();
    if (!reason) {
      say(msg, "Enter a reason first: every kill and unkill is audited with it.", "error");
      $("control-reason").focus();
      return;
    }
    const body = { scope, reason };
    if (scope !== "global") {
      if (!name) { say(msg, "Enter the " + scope + " to " + (kill ? "kill" : "unkill") + ".", "error"); return; }
      body.name = name;
    }
    const what = scope === "global" ? "everything" : scope + " " + name;
    const r = await api("POST", kill ? "/api/v1/kill" : "/api/v1/unkill", body);
    if (r.status === 200) {
      let extra = "";
      if (r.json && typeof r.json.orders_canceled === "number") extra = " (" + r.json.orders_canceled + " open orders canceled)";
      say(msg, (kill ? "Killed " : "Unkilled ") + what + extra + ".", "info");
    } else if (r.status === 403) {
      say(msg, "Not allowed: " + errorText(r) + ". Ask a risk officer.", "error");
    } else {
      say(msg, (kill ? "Kill" : "Unkill") + " of " + what + " failed: " + errorText(r), "error");
    }
    poll();
  }

  // ---- rendering ---------------------------------------------------------------------------

  function cellText(v) {
    if (v === null || v === undefined) return "—";
    if (Array.isArray(v)) return v.map(cellText).join(", ");
    if (typeof v === "object") {
      return Object.entries(v).map(([k, x]) => k.replace(/_/g, " ") + " " + cellText(x)).join(" · ");
    }
    return String(v);
  }

  // A table from a list of objects: the columns of `cols` (or of the first row), a class per
  // cell from `cls(key, value, row)`, and extra cells from `extra(row, tr)`.
  function table(el, rows, cols, cls, extra) {
    el.replaceChildren();
    if (!rows || rows.length === 0) {
      const tr = el.insertRow();
      tr.insertCell().textContent = "none";
      return;
    }
    const keys = cols || Object.keys(rows[0]);
    const head = el.createTHead().insertRow();
    for (const k of keys) {
      const th = document.createElement("th");
      th.textContent = k.replace(/_/g, " ");
      head.appendChild(th);
    }
    if (extra) head.appendChild(document.createElement("th"));
    const body = el.createTBody();
    for (const row of rows) {
      const tr = body.insertRow();
      for (const k of keys) {
        const td = tr.insertCell();
        td.textContent = cellText(row[k]);
        const c = (cls ? cls(k, row[k], row) : "") + (row[k] && typeof row[k] === "object" ? " wrap" : "");
        if (c.trim()) td.className = c.trim();
      }
      if (extra) extra(row, tr.insertCell(), tr);
    }
  }

  function boolClass(bad) {
    return (k, v) => {
      if (bad.includes(k)) return v === true ? "bad" : (v === false ? "ok" : "");
      return "";
    };
  }

  function fmtUs(v) {
    if (v === null || v === undefined) return "—";
    if (v >= 1000) return (v / 1000).toFixed(2) + " ms";
    return v.toFixed(1) + " µs";
  }

  function renderLatency(l) {
    const rows = [];
    for (const [key, label] of [["order", "order in → first answer"], ["venue_round_trip", "venue round trip"]]) {
      const s = l[key];
      if (!s) continue;
      const q = s.quantiles_us || {};
      rows.push({ series: label, count: s.count, p50: fmtUs(q.p50), p90: fmtUs(q.p90), p99: fmtUs(q.p99), "p99.9": fmtUs(q["p99.9"]), max: fmtUs(s.max_us) });
    }
    table($("latency"), rows);
    const o = l.order && l.order.quantiles_us;
    history.push({ p50: o ? o.p50 : null, p99: o ? o.p99 : null });
    while (history.length > HISTORY) history.shift();
    chart();
  }

  function chart() {
    const c = $("latency-chart");
    const g = c.getContext("2d");
    g.clearRect(0, 0, c.width, c.height);
    const vals = history.flatMap((h) => [h.p50, h.p99]).filter((v) => typeof v === "number");
    if (vals.length === 0) return;
    const top = Math.max(...vals) * 1.1 || 1;
    const line = (key, color) => {
      g.strokeStyle = color;
      g.beginPath();
      let started = false;
      history.forEach((h, i) => {
        if (typeof h[key] !== "number") { started = false; return; }
        const x = (i / (HISTORY - 1)) * c.width;
        const y = c.height - (h[key] / top) * (c.height - 4);
        if (started) g.lineTo(x, y); else g.moveTo(x, y);
        started = true;
      });
      g.stroke();
    };
    line("p50", "#3fb950");
    line("p99", "#d29922");
    g.fillStyle = "#8a949e";
    g.fillText("p50 (green) p99 (amber), top " + fmtUs(top), 4, 12);
  }

  function parseMetrics(text) {
    const m = {};
    for (const line of text.split("\n")) {
      if (!line || line.startsWith("#") || line.includes("{")) continue;
      const i = line.lastIndexOf(" ");
      m[line.slice(0, i)] = Number(line.slice(i + 1));
    }
    return m;
  }

  function renderFlow(text, at) {
    const m = parseMetrics(text);
    const names = ["orders_received", "orders_accepted", "orders_rejected", "fills", "risk_rejects",
      "throttle_rejects", "venue_down_rejects", "clock_halt_rejects", "audit_halt_rejects",
      "permission_denied", "business_rejects", "kill_cancels", "garbled_messages"];
    const rows = [];
    for (const n of names) {
      const v = m["portcullis_" + n + "_total"];
      if (v === undefined) continue;
      let rate = null;
      if (lastCounters && lastCounters.m["portcullis_" + n + "_total"] !== undefined && at > lastCounters.at) {
        rate = ((v - lastCounters.m["portcullis_" + n + "_total"]) * 1000) / (at - lastCounters.at);
      }
      rows.push({ counter: n.replace(/_/g, " "), total: v, per_second: rate === null ? "—" : rate.toFixed(1) });
    }
    lastCounters = { m, at };
    table($("flow"), rows, null, (k, v, row) => (k === "total" && /reject|denied|garbled/.test(row.counter) && v > 0 ? "warn" : ""));
  }

  function renderAccounts(list) {
    const may = role === "risk-officer" || role === "admin";
    const rows = (list || []).map((a) => {
      const r = { account: a.account, killed: a.killed, disabled: a.disabled };
      for (const [k, v] of Object.entries(a)) {
        if (!(k in r) && k !== "ok" && k !== "seq") r[k] = v;
      }
      return r;
    });
    const cols = rows.length ? Object.keys(rows[0]) : null;
    table($("accounts"), rows, cols, boolClass(["killed", "disabled"]), (row, td) => {
      const masked = String(row.account).includes("*");
      for (const kill of [true, false]) {
        const b = document.createElement("button");
        b.type = "button";
        b.textContent = kill ? "Kill" : "Unkill";
        b.className = kill ? "danger" : "";
        b.dataset.account = row.account;
        b.dataset.action = kill ? "kill" : "unkill";
        if (masked) { b.disabled = true; b.title = "masked: use the kill switch form with the full account"; }
        else if (!may) b.title = "needs the risk-officer role";
        b.addEventListener("click", () => control(kill, "account", row.account));
        td.appendChild(b);
      }
    });
  }

  function renderClock(c) {
    const el = $("clock");
    el.replaceChildren();
    const p = document.createElement("p");
    p.textContent = c.summary || c.state;
    p.className = c.halted || c.breach ? "bad" : (c.state === "synchronised" || c.state === "synced" ? "ok" : "warn");
    el.appendChild(p);
  }

  function renderTls(t) {
    const warn = t.warn_days || 30;
    table($("tls"), (t.certificates || []).map((c) => ({ name: c.name, not_after: c.not_after, days_to_expiry: c.days_to_expiry })), null,
      (k, v) => (k === "days_to_expiry" ? (v <= 0 ? "bad" : v <= warn ? "warn" : "ok") : ""));
  }

  function renderKill(sessions, accounts) {
    const el = $("kill-state");
    el.replaceChildren();
    const killed = (accounts || []).filter((a) => a.killed).map((a) => a.account);
    const p = document.createElement("p");
    p.textContent = killed.length ? "Killed accounts: " + killed.join(", ") : "No account killed.";
    p.className = killed.length ? "bad" : "ok";
    el.appendChild(p);
  }

  function renderLog(el, lines, max) {
    for (const line of lines) {
      const li = document.createElement("li");
      li.textContent = typeof line === "string" ? line : JSON.stringify(line);
      el.prepend(li);
    }
    while (el.children.length > max) el.lastChild.remove();
  }

  // ---- polling -----------------------------------------------------------------------------

  async function poll() {
    if (timer) clearTimeout(timer);
    timer = null;
    if (!token) return;
    const msg = $("message");
    try {
      const at = Date.now();
      const [sessions, accounts, venues, clock, tls, latency, metrics, events, alerts] = await Promise.all([
        api("GET", "/api/v1/sessions"), api("GET", "/api/v1/accounts"), api("GET", "/api/v1/venues"),
        api("GET", "/api/v1/clock"), api("GET", "/api/v1/tls"), api("GET", "/api/v1/latency"),
        api("GET", "/metrics"),
        api("GET", eventsNext === null ? "/api/v1/events" : "/api/v1/events?since=" + eventsNext),
        api("GET", "/api/v1/alerts"),
      ]);
      if (!token) return;
      const failed = [sessions, accounts, venues, clock, tls, latency, metrics, events, alerts].filter((r) => r.status !== 200);
      if (sessions.json && sessions.json.sessions) {
        table($("sessions"), sessions.json.sessions, null, (k, v) => (k === "logged_on" ? (v ? "ok" : "") : ""));
      }
      if (accounts.json && accounts.json.accounts) {
        renderAccounts(accounts.json.accounts);
        renderKill(sessions.json && sessions.json.sessions, accounts.json.accounts);
      }
      if (venues.json && venues.json.venues) table($("venues"), venues.json.venues, null, (k, v) => (k === "up" ? (v ? "ok" : "bad") : ""));
      if (clock.json) renderClock(clock.json);
      if (tls.json) renderTls(tls.json);
      if (latency.json) renderLatency(latency.json);
      if (metrics.status === 200) renderFlow(metrics.text, at);
      if (events.json && Array.isArray(events.json.events)) {
        renderLog($("events"), events.json.events, 200);
        eventsNext = events.json.next;
      }
      if (alerts.json && Array.isArray(alerts.json.alerts)) {
        $("alerts").replaceChildren();
        renderLog($("alerts"), alerts.json.alerts.slice(-50), 50);
      }
      if (failed.length && !msg.className.includes("info")) {
        say(msg, "Some reads failed: " + failed.map(errorText).join("; "), "error");
      }
      $("updated").textContent = new Date().toLocaleTimeString();
      document.body.dataset.polls = String(Number(document.body.dataset.polls || 0) + 1);
    } catch (e) {
      say(msg, "The ops port did not answer: " + e, "error");
    }
    if (token) timer = setTimeout(poll, POLL_MS);
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").addEventListener("submit", login);
    $("logout").addEventListener("click", logout);
    $("control-kill").addEventListener("click", () => control(true, $("control-scope").value, $("control-name").value.trim()));
    $("control-unkill").addEventListener("click", () => control(false, $("control-scope").value, $("control-name").value.trim()));
  });
})();
