// The single-customer-view page: search a profile through the worker's profile API and show
// it. Every value shown comes from events that outsiders can write, so text is only ever set
// with textContent / createTextNode, never parsed as markup, and attributes get no URLs from data.
"use strict";

(() => {
  const TOKEN_KEY = "scv-api-token";
  const SVG = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);

  // --- small DOM helpers -------------------------------------------------------------------
  function el(tag, className, ...children) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function clear(node) {
    node.replaceChildren();
    return node;
  }

  function when(ts) {
    if (ts === null || ts === undefined) return "—";
    const date = new Date(Number(ts) * 1000);
    if (Number.isNaN(date.getTime())) return "—";
    return date.toISOString().slice(0, 19).replace("T", " ") + " UTC";
  }

  function money(value) {
    return Number(value || 0).toFixed(2);
  }

  function badge(text, kind) {
    return el("span", "badge " + (kind || ""), text);
  }

  function channelBadge(source) {
    const known = ["web", "email", "transactions", "callcenter", "action"];
    return badge(source, "ch-" + (known.includes(source) ? source : "other"));
  }

  function row(table, ...cells) {
    const tr = el("tr", "");
    for (const cell of cells) tr.append(el("td", "", cell));
    table.append(tr);
    return tr;
  }

  function empty(text) {
    return el("p", "empty", text);
  }

  // --- the API -----------------------------------------------------------------------------
  function token() {
    return sessionStorage.getItem(TOKEN_KEY);
  }

  async function api(path) {
    const headers = { Accept: "application/json" };
    const t = token();
    if (t) headers.Authorization = "Bearer " + t;
    for (let attempt = 0; ; attempt++) {
      const response = await fetch(path, { headers, cache: "no-store" });
      let body = null;
      try {
        body = await response.json();
      } catch (err) {
        body = null;
      }
      // 503: a rebalance is moving the data between workers; it is back within seconds.
      if (response.status === 503 && attempt < 4) {
        await new Promise((resolve) => setTimeout(resolve, 1000));
        continue;
      }
      return { status: response.status, body };
    }
  }

  function guessType(value) {
    if (value.includes("@")) return "email";
    if (/^p_[0-9a-f]{8,}$/.test(value)) return "profile";
    if (/^\+?[\d\s().-]{7,}$/.test(value)) return "phone";
    return "customer_id";
  }

  function pathFor(type, value) {
    if (type === "profile") return "/profiles/" + encodeURIComponent(value);
    return (
      "/profiles/lookup?type=" + encodeURIComponent(type) + "&value=" + encodeURIComponent(value)
    );
  }

  // --- state of the page -------------------------------------------------------------------
  let pending = null; // the search to run again after signing in

  function setStatus(text, kind) {
    const status = $("status");
    status.textContent = text || "";
    status.className = "status " + (kind || "");
  }

  function showLogin(message) {
    $("login").hidden = false;
    $("profile").hidden = true;
    setStatus(message, "warn");
    $("token").focus();
  }

  async function search(type, value) {
    pending = { type, value };
    setStatus("Searching…", "");
    document.body.dataset.state = "searching";
    const { status, body } = await api(pathFor(type, value));
    const reason = body && body.error ? body.error : "HTTP " + status;
    if (status === 401) {
      document.body.dataset.state = "login";
      showLogin(token() ? "That token was refused. Sign in again." : "Sign in to search.");
      return;
    }
    $("login").hidden = true;
    if (status === 200 && body) {
      render(body);
      setStatus("", "");
      document.body.dataset.state = "shown";
      return;
    }
    $("profile").hidden = true;
    document.body.dataset.state = status === 404 ? "not-found" : "error";
    setStatus(status === 404 ? "Not found: " + reason : "Could not search: " + reason, "warn");
    if (status === 404 && body && body.household) {
      // A landline or family address: offer the household's members, one of whom called.
      for (const member of body.household.members) {
        const link = el("a", "member", member);
        link.href = "#" + member;
        link.addEventListener("click", (event) => { event.preventDefault(); search("profile", member); });
        $("status").append(" ", link);
      }
    }
  }

  // --- rendering ---------------------------------------------------------------------------
  function render(view) {
    const profile = view.profile || null;
    renderSummary(view, profile);
    renderGraph(view.graph);
    renderIdentifiers(view.graph);
    renderTimeline(profile);
    renderConsent(profile);
    renderActions(profile);
    renderTraits(profile);
    renderCommerce(profile);
    renderHistory(view, profile);
    $("profile").hidden = false;
    $("profile").dataset.profileId = view.profile_id;
  }

  function fullName(traits) {
    const parts = [traits.first_name, traits.last_name].filter((p) => typeof p === "string" && p);
    return parts.length ? parts.join(" ") : "Unnamed customer";
  }

  function renderSummary(view, profile) {
    const box = clear($("summary"));
    const traits = (profile && profile.traits) || {};
    const title = el("div", "title", el("h1", "", fullName(traits)), el("code", "pid", view.profile_id));
    box.append(title);
    if (!profile) {
      box.append(empty("The profile's first event is still on its way; its state follows shortly."));
      return;
    }
    const facts = el("dl", "facts");
    const fact = (name, ...value) => facts.append(el("dt", "", name), el("dd", "", ...value));
    const channels = el("span", "chips");
    for (const [source, count] of Object.entries(profile.channels || {}).sort()) {
      channels.append(channelBadge(source + " " + count));
    }
    fact("Events", String(profile.event_count));
    fact("Channels", channels);
    fact("First seen", when(profile.created_ts));
    fact("Last activity", when(profile.updated_ts));
    const orders = profile.orders || {};
    fact("Orders", String(orders.count || 0) + " · " + money(orders.total) + " total");
    if (profile.churn_risk) {
      fact("Churn risk", badge("cancel intent " + when(profile.churn_risk.flagged_ts), "bad"));
    }
    const tickets = profile.open_tickets || [];
    if (tickets.length) {
      // What the agent must know before selling anything: a critical ticket also keeps the
      // person out of every marketing action until it is solved.
      const list = el("span", "chips tickets");
      for (const t of tickets) {
        const level = t.priority === "critical" ? "bad" : t.priority === "high" ? "warn" : "";
        list.append(badge(`${t.ticket_id} · ${t.priority} · since ${when(t.opened_ts)}`, level));
      }
      fact("Open tickets", list);
    }
    const home = view.household;
    if (home) {
      // The people this person lives with: shared values link them into a household,
      // never into one person (a landline's call may be any of them).
      const shared = Object.entries(home.identifiers || {}).flatMap(([kind, values]) =>
        values.map((v) => kind + ":" + v));
      const others = home.members.filter((m) => m !== view.profile_id);
      const line = el("span", "household", el("code", "", home.household_id),
        ` · ${home.members.length} people` + (shared.length ? " · shares " + shared.join(", ") : "")
        + (home.address ? ` · ${home.address.street || ""} ${home.address.postcode || ""}` : ""));
      for (const other of others) {
        const link = el("a", "member", other);
        link.href = "#" + other;
        link.addEventListener("click", (event) => { event.preventDefault(); search("profile", other); });
        line.append(" ", link);
      }
      fact("Household", line);
    }
    box.append(facts);
  }

  // The graph as an SVG: the identifier holding the profile id in the middle, the others
  // around it, one line per recorded link labelled with its rule.
  function renderGraph(graph) {
    const box = clear($("graph"));
    const ids = graph.identifiers.map((item) => item.identifier);
    const width = 720;
    const height = ids.length > 1 ? 300 : 120;
    const cx = width / 2;
    const cy = height / 2;
    const pos = {};
    const others = ids.filter((key) => key !== graph.keeper);
    if (graph.keeper) pos[graph.keeper] = [cx, cy];
    others.forEach((key, i) => {
      const angle = (2 * Math.PI * i) / Math.max(others.length, 1) - Math.PI / 2;
      pos[key] = [cx + 270 * Math.cos(angle), cy + 110 * Math.sin(angle)];
    });
    const root = svg("svg", {
      viewBox: `0 0 ${width} ${height}`,
      width: "100%",
      role: "img",
      "aria-label": "identity graph",
    });
    for (const link of graph.links) {
      const a = pos[link.a];
      const b = pos[link.b];
      if (!a || !b) continue;
      root.append(svg("line", { x1: a[0], y1: a[1], x2: b[0], y2: b[1], class: "edge" }));
      const score = link.score === null || link.score === undefined ? "" : " " + Number(link.score).toFixed(2);
      const label = svg("text", {
        x: (a[0] + b[0]) / 2,
        y: (a[1] + b[1]) / 2 - 5,
        class: "edge-label",
        "text-anchor": "middle",
      }, link.rule + score);
      label.append(svg("title", {}, `event ${link.event_id} at ${when(link.ts)}`));
      root.append(label);
    }
    for (const item of graph.identifiers) {
      const [x, y] = pos[item.identifier] || [cx, cy];
      const group = svg("g", { class: "node t-" + item.type + (item.holds_id ? " keeper" : "") });
      const text = item.value.length > 30 ? item.value.slice(0, 29) + "…" : item.value;
      const w = Math.max(110, 7.2 * Math.max(text.length, item.type.length) + 24);
      group.append(svg("rect", { x: x - w / 2, y: y - 22, width: w, height: 44, rx: 10 }));
      group.append(svg("text", { x, y: y - 5, "text-anchor": "middle", class: "node-type" }, item.type));
      group.append(svg("text", { x, y: y + 12, "text-anchor": "middle", class: "node-value" }, text));
      group.append(svg("title", {}, item.identifier));
      root.append(group);
    }
    box.append(root);
  }

  function renderIdentifiers(graph) {
    const table = clear($("identifiers"));
    const head = el("tr", "", el("th", "", "Type"), el("th", "", "Value"), el("th", "", "First seen"), el("th", "", "Why it belongs here"));
    table.append(head);
    for (const item of graph.identifiers) {
      let why;
      if (item.holds_id) {
        why = "holds the profile id (oldest identifier)";
      } else if (item.path.length) {
        const hop = item.path[0];
        const score = hop.score === null || hop.score === undefined ? "" : ` (score ${Number(hop.score).toFixed(2)})`;
        why = `linked to ${hop.to} by ${hop.rule}${score}, event ${hop.event_id}, ${when(hop.ts)}`;
      } else {
        why = "no recorded link";
      }
      const tr = row(table, item.type, item.value, when(item.first_seen.ts), why);
      tr.className = "identifier";
      tr.dataset.type = item.type;
    }
  }

  function renderTimeline(profile) {
    const list = clear($("timeline"));
    if (!profile) return;
    const entries = [];
    for (const a of profile.activity || []) {
      entries.push({ ts: a.ts, source: a.source, what: a.type.replace(/_/g, " "), id: a.event_id });
    }
    for (const a of (profile.actions && profile.actions.recent) || []) {
      entries.push({ ts: a.ts, source: "action", what: `${a.type.replace(/_/g, " ")} via ${a.channel}`, id: a.action_id });
    }
    entries.sort((x, y) => y.ts - x.ts);
    if (!entries.length) list.append(el("li", "empty", "No activity recorded."));
    for (const entry of entries) {
      const li = el("li", "entry", el("time", "", when(entry.ts)), channelBadge(entry.source), el("span", "what", entry.what), el("code", "eid", entry.id));
      li.dataset.source = entry.source;
      list.append(li);
    }
  }

  function renderConsent(profile) {
    const table = clear($("consent"));
    const consent = (profile && profile.consent) || {};
    const purposes = Object.keys(consent).sort();
    if (!purposes.length) {
      row(table, "No consent recorded: no marketing.");
      return;
    }
    for (const purpose of purposes) {
      const record = consent[purpose];
      const tr = row(
        table,
        purpose,
        badge(record.granted ? "granted" : "denied", record.granted ? "good" : "bad"),
        when(record.ts),
        "via " + record.source,
      );
      tr.className = "consent";
      tr.dataset.purpose = purpose;
      tr.dataset.granted = String(Boolean(record.granted));
    }
  }

  function renderActions(profile) {
    const box = clear($("actions"));
    const actions = (profile && profile.actions) || { recent: [], last_by_type: {}, sent: 0 };
    if (!actions.recent.length) {
      box.append(empty(actions.sent ? `${actions.sent} sent; none kept in the recent list.` : "No actions sent."));
      return;
    }
    const table = el("table", "rows");
    for (const a of actions.recent) {
      row(table, when(a.ts), a.type.replace(/_/g, " "), a.channel, "trigger " + a.trigger_event_id);
    }
    box.append(table, el("p", "note", `${actions.sent} sent in total.`));
  }

  function flatten(prefix, value, out) {
    if (value && typeof value === "object" && !Array.isArray(value)) {
      for (const [key, inner] of Object.entries(value)) flatten(prefix ? `${prefix}.${key}` : key, inner, out);
    } else {
      out.push([prefix, Array.isArray(value) ? value.join(", ") : String(value)]);
    }
    return out;
  }

  function renderTraits(profile) {
    const table = clear($("traits"));
    const traits = flatten("", (profile && profile.traits) || {}, []).sort();
    if (!traits.length) row(table, "No traits recorded.");
    for (const [name, value] of traits) row(table, name.replace(/_/g, " "), value);
  }

  function renderCommerce(profile) {
    const box = clear($("commerce"));
    if (!profile) return;
    const orders = profile.orders || {};
    const table = el("table", "rows");
    for (const o of orders.recent || []) {
      row(table, when(o.ts), "order " + o.order_id, money(o.total));
    }
    for (const cart of profile.open_carts || []) {
      const items = (cart.items || []).reduce((n, item) => n + Number(item.qty || 1), 0);
      row(table, when(cart.updated_ts), `open cart ${cart.cart_id} · ${items} item(s)`, cart.due_at ? "due " + when(cart.due_at) : "");
    }
    if (orders.returns) row(table, "", `${orders.returns} return(s)`, "");
    box.append(table.childElementCount ? table : empty("No orders or open carts."));
  }

  function renderHistory(view, profile) {
    const box = clear($("history"));
    const list = el("ul", "history");
    if (view.merged_away && view.merged_away.length) {
      list.append(el("li", "", `You asked for ${view.merged_away[0]}, since merged into this profile.`));
    }
    const merged = (profile && profile.merged_from) || [];
    list.append(el("li", "", `${view.graph.absorbed} profile(s) merged in over its life` + (merged.length ? ": " + merged.join(", ") : ".")));
    for (const split of (profile && profile.splits) || []) {
      list.append(el("li", "", `${split.identifier} left in a split` + (split.to ? ` to ${split.to}` : " (found generic)")));
    }
    for (const [key, other] of view.graph.bans || []) {
      list.append(el("li", "", `${key} must never be linked with ${other}`));
    }
    box.append(list);
  }

  // --- wiring ------------------------------------------------------------------------------
  function start() {
    $("signout").hidden = !token();
    $("search").addEventListener("submit", (event) => {
      event.preventDefault();
      const value = $("search-value").value.trim();
      if (!value) return;
      const chosen = $("search-type").value;
      search(chosen === "auto" ? guessType(value) : chosen, value);
    });
    $("login-form").addEventListener("submit", (event) => {
      event.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, $("token").value);
      $("token").value = "";
      $("login").hidden = true;
      $("signout").hidden = false;
      setStatus("", "");
      if (pending) search(pending.type, pending.value);
    });
    $("signout").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      $("signout").hidden = true;
      $("profile").hidden = true;
      showLogin("Signed out.");
    });
    document.body.dataset.state = "ready";
  }

  start();
})();
