// mapper console: the little the pages need beyond HTML. Nothing here
// writes markup from data: text goes in with textContent.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  for (const all of document.querySelectorAll("input[data-select-all]")) {
    all.addEventListener("change", () => {
      for (const box of document.querySelectorAll(all.dataset.selectAll)) box.checked = all.checked;
    });
  }
  const tail = document.getElementById("tail");
  if (tail) follow(tail);
});

// follow fills the live tail from the server's event stream.
function follow(tbody) {
  const state = document.getElementById("tail-state");
  const seen = new Set();
  const source = new EventSource(tbody.dataset.stream);
  source.addEventListener("open", () => { state.textContent = "live"; });
  source.addEventListener("error", () => { state.textContent = "reconnecting…"; });
  source.addEventListener("webhook", (message) => {
    const ev = JSON.parse(message.data);
    if (seen.has(ev.id)) return;
    seen.add(ev.id);
    const row = document.createElement("tr");
    row.className = "new";
    row.dataset.event = ev.id;
    const cell = (text) => {
      const td = document.createElement("td");
      td.textContent = text;
      row.appendChild(td);
      return td;
    };
    cell(ev.received_at.replace("T", " ").replace("Z", ""));
    const link = document.createElement("a");
    link.href = ev.url;
    link.className = "mono";
    link.textContent = ev.id;
    cell("").appendChild(link);
    const status = document.createElement("span");
    status.className = "status status-" + ev.status;
    status.textContent = ev.status;
    cell("").appendChild(status);
    cell((ev.accounts || []).join(", ")).className = "mono";
    cell((ev.fields || []).join(", "));
    cell(String(ev.items));
    tbody.prepend(row);
    while (tbody.rows.length > 500) tbody.deleteRow(-1);
  });
}
