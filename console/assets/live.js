// live.js: each part of a page marked data-src follows the server-sent
// events at data-events: on each change, the fragment at data-src is
// fetched again and swapped in, without a reload.
"use strict";
for (const el of document.querySelectorAll("[data-src][data-events]")) {
  let shown = null; // the fragment last swapped in
  const refresh = () =>
    fetch(el.dataset.src, { credentials: "same-origin" })
      .then((r) => (r.ok ? r.text() : Promise.reject(r.status)))
      .then((html) => {
        if (html !== shown) {
          el.innerHTML = html;
          shown = html;
        }
      })
      .catch(() => {});
  const events = new EventSource(el.dataset.events);
  events.addEventListener("change", refresh);
}
