// live.js: the part of a page marked data-src follows the server-sent
// events at data-events: on each, the fragment is fetched again and
// swapped in, without a reload.
"use strict";
for (const el of document.querySelectorAll("[data-src][data-events]")) {
  const refresh = () =>
    fetch(el.dataset.src, { credentials: "same-origin" })
      .then((r) => (r.ok ? r.text() : Promise.reject(r.status)))
      .then((html) => { el.innerHTML = html; })
      .catch(() => {});
  const events = new EventSource(el.dataset.events);
  events.addEventListener("regions", refresh);
}
