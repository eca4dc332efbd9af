// The service worker (served as /sw.js by core/pwa.py, which fills in the names in capitals).
// Static assets: cache first. The pages in PAGES: network first, the last copy when offline.
// Everything else goes to the network untouched (API answers and other pages are never cached).
const CACHE = "__CACHE__";
const PRECACHE = __PRECACHE__;
const PAGES = __PAGES__;

self.addEventListener("install", event => {
  event.waitUntil(caches.open(CACHE).then(cache => cache.addAll(PRECACHE)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", event => {
  event.waitUntil(caches.keys()
    .then(keys => Promise.all(keys.filter(k => k.startsWith("hue-s-") && k !== CACHE).map(k => caches.delete(k))))
    .then(() => self.clients.claim()));
});

self.addEventListener("fetch", event => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (url.pathname.startsWith("/static/")) {
    event.respondWith(caches.match(request).then(hit => hit || fetch(request).then(answer => {
      if (answer.ok) { const copy = answer.clone(); caches.open(CACHE).then(c => c.put(request, copy)); }
      return answer;
    })));
    return;
  }
  if (request.mode === "navigate" && PAGES.includes(url.pathname)) {
    // Kept by path and language only: the copy is the one this browser last saw.
    const key = url.pathname + "?lang=" + (url.searchParams.get("lang") || "");
    event.respondWith(fetch(request).then(answer => {
      if (answer.ok && !answer.redirected) { const copy = answer.clone(); caches.open(CACHE).then(c => c.put(key, copy)); }
      return answer;
    }).catch(() => caches.match(key).then(hit => hit || caches.match(url.pathname + "?lang=")
      .then(other => other || Response.error()))));
  }
});
