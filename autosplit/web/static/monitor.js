// autosplit monitor: keeps a page up to date while its task runs.
// The element with data-live-url is re-rendered by the server at that URL; every data-refresh seconds
// we fetch it and swap it in. Once the task's state is final (data-final="true") we stop asking.
(function () {
  "use strict";

  function schedule(box) {
    const seconds = Number(box.dataset.refresh) || 5;
    box.dataset.live = "on";
    window.setTimeout(function () { refresh(box); }, seconds * 1000);
  }

  async function refresh(box) {
    let next = box;
    try {
      const response = await fetch(box.dataset.liveUrl, { cache: "no-store", headers: { Accept: "text/html" } });
      if (response.ok) {
        const holder = document.createElement("div");
        holder.innerHTML = await response.text();
        const fresh = holder.querySelector("[data-live-url]");
        if (fresh) {
          box.replaceWith(fresh);
          next = fresh;
        }
      }
    } catch (error) {
      // The server is restarting or the network hiccuped: keep the last view and try again later.
    }
    if (next.dataset.final === "true") {
      next.dataset.live = "off";
    } else {
      schedule(next);
    }
  }

  function start() {
    const box = document.querySelector("[data-live-url]");
    if (!box) return;
    if (box.dataset.final === "true") {
      box.dataset.live = "off";
    } else {
      schedule(box);
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
