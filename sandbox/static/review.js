// backpain-cds review page: behaves like an EHR — calls the service, renders cards, sends feedback, and applies a
// suggestion whole (every create, update and delete, as the CDS Hooks spec says) to its draft orders or chart, then
// calls the hook again with the result, as an EHR does when the order changes.
"use strict";
const $ = (id) => document.getElementById(id);
let cases = [];
let current = null;  // {serviceId, request}: the last request sent, the state the next call starts from
let created = 0;

const PREFETCH_KEY = { MedicationRequest: "medications", ServiceRequest: "serviceRequests" };

async function loadCases() {
  cases = await (await fetch("/sandbox/api/cases")).json();
  for (const c of cases) $("case").add(new Option(c.name, c.name));
  const wanted = new URLSearchParams(location.search).get("case");
  if (wanted) $("case").value = wanted;
  fillCalls();
}

function fillCalls() {
  const c = cases.find((x) => x.name === $("case").value);
  $("call").innerHTML = "";
  for (const call of c.calls) $("call").add(new Option(`${call.hook}: ${call.label}`, call.index));
  $("description").textContent = c.description;
}

function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

async function sendFeedback(serviceId, item) {
  const resp = await fetch(`/cds-services/${serviceId}/feedback`, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ feedback: [item] }) });
  return resp.ok;
}

function renderCard(serviceId, card, detailHtml) {
  const node = el("article", { class: `card ${card.indicator}`, "data-topic": card.source.topic.code });
  node.append(el("div", { class: "indicator" }, card.indicator));
  node.append(el("div", { class: "summary" }, card.summary));
  const detail = el("div", { class: "detail" });
  detail.innerHTML = detailHtml;  // server-rendered Markdown; record text is HTML-escaped before rendering
  node.append(detail);
  const source = el("div", { class: "source" }, "Source: ");
  const link = el("a", { href: card.source.url, target: "_blank", rel: "noopener" }, card.source.label);
  source.append(link, document.createTextNode(` · topic ${card.source.topic.code}`));
  node.append(source);
  const outcome = el("div", { class: "outcome" });
  const actions = el("div", { class: "actions" });
  if (card.suggestions) {
    const box = el("div", { class: "suggestions" });
    for (const s of card.suggestions) {
      const b = el("button", { type: "button", class: s.isRecommended ? "recommended" : "" }, s.label);
      b.addEventListener("click", async () => {
        const ok = await sendFeedback(serviceId, { card: card.uuid, outcome: "accepted", acceptedSuggestions: [{ id: s.uuid }],
                                                   outcomeTimestamp: new Date().toISOString() });
        outcome.textContent = ok ? `Accepted: ${s.label}` : "Feedback failed";
        actions.innerHTML = "";
        actions.append(el("pre", {}, JSON.stringify(s.actions, null, 2)));
        applySuggestion(s);
        const after = await send();
        const entry = el("li", {}, `Applied "${s.label}" → next ${current.request.hook} call: ${after} card(s)`);
        $("history").append(entry);
      });
      box.append(b);
    }
    node.append(box);
  }
  if (card.overrideReasons) {
    const form = el("div", { class: "override" }, "Override: ");
    const select = el("select", { "aria-label": "override reason" });
    for (const r of card.overrideReasons) select.add(new Option(r.display, r.code));
    const b = el("button", { type: "button" }, "Override");
    b.addEventListener("click", async () => {
      const reason = card.overrideReasons.find((r) => r.code === select.value);
      const ok = await sendFeedback(serviceId, { card: card.uuid, outcome: "overridden", overrideReason: { reason },
                                                 outcomeTimestamp: new Date().toISOString() });
      outcome.textContent = ok ? `Overridden: ${reason.display}` : "Feedback failed";
    });
    form.append(select, b);
    node.append(form);
  }
  node.append(outcome, actions);
  return node;
}

function refOf(r) { return `${r.resourceType}/${r.id}`; }

function drafts() {
  const bundle = current.request.context.draftOrders;
  return bundle ? bundle.entry.map((e) => e.resource) : null;
}

function describe(r) {
  const concept = r.medicationCodeableConcept || r.code || {};
  const name = concept.text || (concept.coding && concept.coding[0] && concept.coding[0].display) || "(nothing named)";
  const dosage = (r.dosageInstruction && r.dosageInstruction[0]) || {};
  const dose = dosage.text || (dosage.doseAndRate && dosage.doseAndRate[0].doseQuantity &&
    `${dosage.doseAndRate[0].doseQuantity.value} ${dosage.doseAndRate[0].doseQuantity.unit}`) || "";
  const supply = r.dispenseRequest && r.dispenseRequest.expectedSupplyDuration;
  return [refOf(r), name, dose, supply ? `supply ${supply.value} ${supply.unit}` : "", r.status].filter(Boolean).join(" — ");
}

function renderOrders() {
  const list = drafts();
  $("drafts").innerHTML = "";
  if (list === null) { $("drafts").append(el("li", { class: "hint" }, "(no draft orders on this hook)")); }
  else if (!list.length) { $("drafts").append(el("li", { class: "hint" }, "(no draft orders)")); }
  else for (const r of list) $("drafts").append(el("li", { "data-ref": refOf(r) }, describe(r)));
}

// Apply every action of a suggestion, in full: on an order hook to the draft orders, on patient-view to the chart (the
// prefetch), so the next call sees what an EHR would send after the clinician accepted it.
function applySuggestion(s) {
  const req = current.request;
  const list = drafts();
  for (const a of s.actions) {
    if (a.type === "delete") {
      if (list !== null) req.context.draftOrders.entry = req.context.draftOrders.entry.filter((e) => refOf(e.resource) !== a.resourceId);
      for (const value of Object.values(req.prefetch || {})) {
        if (value && value.entry) value.entry = value.entry.filter((e) => refOf(e.resource) !== a.resourceId);
      }
      continue;
    }
    const resource = JSON.parse(JSON.stringify(a.resource));
    if (!resource.id) resource.id = `accepted-${++created}`;
    if (list !== null) {
      const entries = req.context.draftOrders.entry;
      const at = entries.findIndex((e) => refOf(e.resource) === refOf(resource));
      if (at >= 0) entries[at] = { resource }; else entries.push({ resource });
    } else {
      if (resource.status === "draft") resource.status = "active";  // signed when accepted on the chart
      const key = PREFETCH_KEY[resource.resourceType];
      if (key && req.prefetch[key]) {
        const bundle = req.prefetch[key];
        bundle.entry = (bundle.entry || []).filter((e) => refOf(e.resource) !== refOf(resource));
        bundle.entry.push({ resource });
      }
      $("placed").append(el("li", { "data-ref": refOf(resource) }, describe(resource)));
    }
  }
  if (req.context.selections) req.context.selections = req.context.draftOrders.entry.map((e) => refOf(e.resource));
  req.hookInstance = crypto.randomUUID();
}

async function send() {
  $("status").textContent = "calling…";
  $("cards").innerHTML = "";
  renderOrders();
  $("request").textContent = JSON.stringify(current.request, null, 2);
  const resp = await fetch(`/cds-services/${current.serviceId}`, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(current.request) });
  const data = await resp.json();
  if (!resp.ok) { $("status").textContent = `HTTP ${resp.status}`; return -1; }
  const html = await (await fetch("/sandbox/api/markdown", { method: "POST", headers: { "Content-Type": "application/json" },
                                                            body: JSON.stringify({ texts: data.cards.map((c) => c.detail || "") }) })).json();
  data.cards.forEach((card, i) => $("cards").append(renderCard(current.serviceId, card, html[i])));
  $("status").textContent = `${data.cards.length} card(s) from ${current.serviceId}`;
  return data.cards.length;
}

async function fire() {
  const built = await (await fetch(`/sandbox/api/request?case=${encodeURIComponent($("case").value)}&call=${$("call").value}`)).json();
  current = { serviceId: built.serviceId, request: built.request };
  $("placed").innerHTML = "";
  $("history").innerHTML = "";
  await send();
}

$("case").addEventListener("change", fillCalls);
$("fire").addEventListener("click", fire);
loadCases();
