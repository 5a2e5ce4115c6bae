// backpain-cds review page: behaves like an EHR — calls the service, renders cards, sends feedback.
"use strict";
const $ = (id) => document.getElementById(id);
let cases = [];

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

async function fire() {
  $("status").textContent = "calling…";
  $("cards").innerHTML = "";
  const built = await (await fetch(`/sandbox/api/request?case=${encodeURIComponent($("case").value)}&call=${$("call").value}`)).json();
  $("request").textContent = JSON.stringify(built.request, null, 2);
  const resp = await fetch(`/cds-services/${built.serviceId}`, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(built.request) });
  const data = await resp.json();
  if (!resp.ok) { $("status").textContent = `HTTP ${resp.status}`; return; }
  const html = await (await fetch("/sandbox/api/markdown", { method: "POST", headers: { "Content-Type": "application/json" },
                                                            body: JSON.stringify({ texts: data.cards.map((c) => c.detail || "") }) })).json();
  data.cards.forEach((card, i) => $("cards").append(renderCard(built.serviceId, card, html[i])));
  $("status").textContent = `${data.cards.length} card(s) from ${built.serviceId}`;
}

$("case").addEventListener("change", fillCalls);
$("fire").addEventListener("click", fire);
loadCases();
