// Installable and offline-tolerant (docs/feedback.md, "Offline drafts"): registers the service worker, and
// keeps a form marked data-offline-draft that is submitted without a connection in IndexedDB on the
// device, then sends it when the browser is back online (from whichever page of the site is open).
(function () {
  "use strict";
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/sw.js", {scope: "/"}).catch(() => {});
  }
  const DB = "hue-s-drafts", STORE = "drafts";

  function open() {
    return new Promise((resolve, reject) => {
      const request = indexedDB.open(DB, 1);
      request.onupgradeneeded = () => request.result.createObjectStore(STORE, {keyPath: "id", autoIncrement: true});
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
  }
  async function run(mode, work) {
    const db = await open();
    return new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode), result = work(tx.objectStore(STORE));
      tx.oncomplete = () => { db.close(); resolve(result && "result" in result ? result.result : undefined); };
      tx.onerror = () => { db.close(); reject(tx.error); };
    });
  }
  const all = () => run("readonly", store => store.getAll());
  const remove = id => run("readwrite", store => store.delete(id));

  function status() { return document.getElementById("draft-status"); }
  function say(text, link) {
    const box = status();
    if (!box) return;
    box.textContent = text;
    if (link) {
      const a = document.createElement("a");
      a.href = link; a.textContent = " " + box.dataset.open; a.dataset.testid = "draft-sent-link";
      box.append(a);
    }
    box.hidden = false;
  }

  // A form's fields as IndexedDB stores them (files are Blobs, kept with their names).
  function snapshot(form) {
    const fields = [];
    for (const [name, value] of new FormData(form)) {
      if (value instanceof File) {
        if (value.size) fields.push({name, blob: value, filename: value.name, type: value.type});
      } else {
        fields.push({name, value});
      }
    }
    return {kind: form.dataset.offlineDraft, action: form.action, fields, saved_at: new Date().toISOString()};
  }

  document.addEventListener("submit", async event => {
    const form = event.target;
    if (form.matches && form.matches("form[action='/auth/logout']") && "caches" in window) {
      // Signing out: no copy of this person's pages stays on the device.
      const keys = await caches.keys();
      keys.filter(k => k.startsWith("hue-s-")).forEach(k => caches.delete(k));
      return;
    }
    if (!form.dataset || !form.dataset.offlineDraft || navigator.onLine) return;
    event.preventDefault();
    await run("readwrite", store => store.add(snapshot(form)));
    form.reset();
    say(status().dataset.saved);
    document.body.dataset.drafts = String((await all()).length);
  });

  let sending = false;
  async function sendDrafts() {
    if (sending || !navigator.onLine || !("indexedDB" in window)) return;
    sending = true;
    try {
      for (const draft of await all()) {
        const body = new FormData();
        for (const f of draft.fields) {
          if (f.blob) body.append(f.name, new File([f.blob], f.filename || "photo", {type: f.type})); else body.append(f.name, f.value);
        }
        let answer;
        try {
          answer = await fetch(draft.action, {method: "POST", body, credentials: "same-origin"});
        } catch (error) {
          return;  // the connection dropped again: the draft stays for the next "online"
        }
        const landed = new URL(answer.url, location.href);
        if (landed.pathname.startsWith("/auth/")) { say(status().dataset.signIn); return; }  // kept until signed in
        if (answer.status >= 500 || answer.status === 429) return;  // the server's trouble: try again later
        await remove(draft.id);
        if (answer.ok) say(status().dataset.sent, landed.pathname + landed.search);
        else say(status().dataset.refused);
      }
    } finally {
      sending = false;
      document.body.dataset.drafts = String((await all()).length);
    }
  }
  window.addEventListener("online", sendDrafts);
  document.addEventListener("DOMContentLoaded", async () => {
    if (!("indexedDB" in window)) return;
    const waiting = await all();
    document.body.dataset.drafts = String(waiting.length);
    if (waiting.length && !navigator.onLine) say(status().dataset.waiting + " " + waiting.length);
    sendDrafts();
  });
})();
