/* The shell's side of the web mini-app bridge (protocol 1): answers the framed mini-app's postMessage calls
 * after checking the sender's origin against the registered ones and the capability against the resident's
 * consents, read fresh from the host on every call so a revocation counts at once. */
(function () {
  "use strict";
  var PROTOCOL = 1;
  var frame = document.getElementById("webapp-frame");
  if (!frame) return;
  var webapp = frame.dataset.webapp;
  var origins = (frame.dataset.origins || "").split(" ").filter(Boolean);
  var lang = frame.dataset.lang || "vi";
  var statusLine = document.getElementById("webapp-status");
  var dialog = document.getElementById("consent-dialog");
  var CAPABILITIES = ["capabilities", "ready", "close", "setTitle", "launchData", "requestScope", "location",
    "reportError"];

  function say(text) { if (statusLine) statusLine.textContent = text; }

  function reply(event, id, ok, payload) {
    var message = { superapp: PROTOCOL, id: id, ok: ok };
    if (ok) message.result = payload; else message.error = payload;
    event.source.postMessage(message, event.origin);
  }

  function refuse(code, reason) { return Promise.reject({ code: code, reason: reason }); }

  function granted() {
    return fetch("/api/webapps/" + encodeURIComponent(webapp) + "/consents", { credentials: "same-origin",
      headers: { "Accept": "application/json" } }).then(function (r) {
      if (!r.ok) throw { code: "unavailable", reason: "the host refused (" + r.status + ")" };
      return r.json();
    });
  }

  function askConsent(scope) {
    return new Promise(function (resolve) {
      document.getElementById("consent-scope").textContent = scope;
      dialog.querySelectorAll(".consent-reason").forEach(function (p) { p.hidden = p.dataset.scope !== scope; });
      dialog.returnValue = "";
      dialog.addEventListener("close", function once() {
        dialog.removeEventListener("close", once);
        resolve(dialog.returnValue === "grant");
      });
      dialog.showModal();
    });
  }

  var methods = {
    capabilities: function () { return Promise.resolve({ protocol: PROTOCOL, methods: CAPABILITIES }); },
    ready: function () { say(""); frame.dataset.ready = "yes"; return Promise.resolve({}); },
    close: function () { location.href = "/?lang=" + lang; return Promise.resolve({}); },
    setTitle: function (params) {
      var title = String(params.title || "").slice(0, 80);
      document.getElementById("webapp-title").textContent = title;
      return Promise.resolve({ title: title });
    },
    launchData: function () { return Promise.resolve({ webapp: webapp, locale: lang, protocol: PROTOCOL }); },
    reportError: function () {
      // Only counted (the analytics' errors per day); the message stays with the mini-app.
      return fetch("/api/webapps/" + encodeURIComponent(webapp) + "/errors", { method: "POST",
        credentials: "same-origin", headers: { "Accept": "application/json" } }).then(function () { return {}; });
    },
    requestScope: function (params) {
      var scope = String(params.scope || "");
      return granted().then(function (state) {
        if (state.declared.indexOf(scope) < 0) return refuse("scope_not_declared", "the mini-app did not declare " + scope);
        if (state.granted.indexOf(scope) >= 0) return { scope: scope, granted: true };
        return askConsent(scope).then(function (yes) {
          if (!yes) return { scope: scope, granted: false };
          return fetch("/api/webapps/" + encodeURIComponent(webapp) + "/consents", {
            method: "POST", credentials: "same-origin",
            headers: { "Content-Type": "application/json", "Accept": "application/json" },
            body: JSON.stringify({ scope: scope })
          }).then(function (r) { return { scope: scope, granted: r.ok }; });
        });
      });
    },
    location: function () {
      return granted().then(function (state) {
        if (state.granted.indexOf("location") < 0) {
          return refuse("scope_not_granted", "the resident has not granted location to " + webapp);
        }
        return new Promise(function (resolve, reject) {
          navigator.geolocation.getCurrentPosition(function (p) {
            resolve({ lat: p.coords.latitude, lon: p.coords.longitude, accuracy: p.coords.accuracy });
          }, function (e) { reject({ code: "unavailable", reason: e.message }); }, { timeout: 10000 });
        });
      });
    }
  };

  window.addEventListener("message", function (event) {
    var data = event.data;
    if (!data || data.superapp !== PROTOCOL || typeof data.id !== "string") return;
    if (event.source !== frame.contentWindow || origins.indexOf(event.origin) < 0) {
      // Not our mini-app: say why, to that origin only, and do nothing else.
      say("refused a bridge call from " + event.origin);
      if (event.source) reply(event, data.id, false, { code: "origin_refused",
        reason: "origin " + event.origin + " is not registered for " + webapp });
      return;
    }
    var method = methods[data.method];
    if (!method) {
      reply(event, data.id, false, { code: "unsupported", reason: "no capability " + data.method });
      return;
    }
    method(data.params || {}).then(function (result) { reply(event, data.id, true, result); },
      function (error) {
        reply(event, data.id, false, { code: (error && error.code) || "failed",
          reason: (error && error.reason) || String(error) });
      });
  });
})();
