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
  var shellDialog = document.getElementById("shell-dialog");
  var backButton = document.getElementById("webapp-back");
  var darkScheme = window.matchMedia("(prefers-color-scheme: dark)");
  var CAPABILITIES = ["capabilities", "ready", "close", "setTitle", "launchData", "requestScope", "location",
    "reportError", "setBackButton", "theme", "phoneToken", "openMiniApp", "share", "openLink", "alert", "confirm"];
  // The mini-app's origin as its first accepted call showed it: events go to that origin only.
  var peerOrigin = null;

  function say(text) { if (statusLine) statusLine.textContent = text; }

  function emit(name, data) {
    if (!peerOrigin) return;
    frame.contentWindow.postMessage({ superapp: PROTOCOL, event: name, data: data || {} }, peerOrigin);
  }

  function theme() {
    var style = getComputedStyle(document.body);
    return { theme: darkScheme.matches ? "dark" : "light",
      colors: { background: style.backgroundColor, text: style.color } };
  }
  darkScheme.addEventListener("change", function () { emit("themeChanged", theme()); });

  if (backButton) backButton.addEventListener("click", function () { emit("backButton", {}); });

  function api(path, options) {
    return fetch("/api/webapps/" + encodeURIComponent(webapp) + path, Object.assign({ credentials: "same-origin",
      headers: { "Accept": "application/json" } }, options || {}));
  }

  // The shell's own dialog for alert, confirm, external links and sharing: the mini-app's name is on it, so the
  // resident knows who asks; one at a time.
  function shellAsk(kind, text, link) {
    if (shellDialog.open) return refuse("busy", "another dialog of the shell is open");
    var labels = shellDialog.dataset;
    document.getElementById("shell-dialog-kind").textContent = labels[kind] || "";
    var textLine = document.getElementById("shell-dialog-text");
    textLine.textContent = String(text || "").slice(0, 500);
    textLine.hidden = !textLine.textContent;
    var linkLine = document.getElementById("shell-dialog-link");
    linkLine.textContent = link || "";
    linkLine.hidden = !link;
    var ok = document.getElementById("shell-dialog-ok");
    ok.textContent = kind === "openLink" ? labels.open : kind === "share" ? labels.copy : labels.ok;
    document.getElementById("shell-dialog-cancel").hidden = kind === "alert";
    return new Promise(function (resolve) {
      shellDialog.returnValue = "";
      shellDialog.addEventListener("close", function once() {
        shellDialog.removeEventListener("close", once);
        resolve(shellDialog.returnValue === "ok");
      });
      shellDialog.showModal();
    });
  }

  function webUrl(value) {
    try {
      var url = new URL(String(value || ""));
      return url.protocol === "https:" || url.protocol === "http:" ? url : null;
    } catch (e) { return null; }
  }

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
      return api("/errors", { method: "POST" }).then(function () { return {}; });
    },
    setBackButton: function (params) {
      // Visible: the shell's back button asks the mini-app (event backButton) instead of leaving it.
      backButton.hidden = !params.visible;
      return Promise.resolve({ visible: !backButton.hidden });
    },
    theme: function () { return Promise.resolve(theme()); },
    phoneToken: function () {
      return granted().then(function (state) {
        if (state.granted.indexOf("phone") < 0) {
          return refuse("scope_not_granted", "the resident has not granted phone to " + webapp);
        }
        return api("/phone-token", { method: "POST" }).then(function (r) {
          if (!r.ok) throw { code: r.status === 403 ? "scope_not_granted" : "unavailable",
            reason: "the host refused (" + r.status + ")" };
          return r.json();
        });
      });
    },
    openMiniApp: function (params) {
      var id = String(params.id || "");
      var start = String(params.start || "");
      if (start && !/^[A-Za-z0-9_\-.]{1,200}$/.test(start)) return refuse("invalid", "start must be A-Z, 0-9, _ - .");
      return fetch("/api/miniapps", { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (r) { return r.json(); })
        .then(function (body) {
          var target = (body.miniapps || []).filter(function (m) { return m.id === id; })[0];
          if (!target || !target.entry_url) return refuse("not_found", "no mini-app " + id + " is available here");
          var url = target.entry_url + (target.kind === "web" && start ? "?start=" + encodeURIComponent(start) : "");
          location.href = url;
          return { id: id };
        });
    },
    share: function (params) {
      var url = params.url ? webUrl(params.url) : null;
      if (params.url && !url) return refuse("invalid", "url must be an http(s) address");
      var text = String(params.text || "").slice(0, 500);
      var shared = { text: text, url: url ? url.href : undefined };
      if (navigator.share) {
        return navigator.share(shared).then(function () { return { shared: true, via: "system" }; },
          function () { return { shared: false }; });
      }
      return shellAsk("share", text, shared.url).then(function (yes) {
        if (!yes) return { shared: false };
        var copied = [text, shared.url].filter(Boolean).join(" ");
        return navigator.clipboard.writeText(copied).then(function () { return { shared: true, via: "clipboard" }; },
          function () { return { shared: false, reason: "the clipboard refused" }; });
      });
    },
    openLink: function (params) {
      var url = webUrl(params.url);
      if (!url) return refuse("invalid", "url must be an http(s) address");
      return shellAsk("openLink", "", url.href).then(function (yes) {
        // A new top-level browsing context without a way back to this page (noopener) and no Referer.
        if (yes) window.open(url.href, "_blank", "noopener,noreferrer");
        return { opened: yes };
      });
    },
    alert: function (params) { return shellAsk("alert", params.message).then(function () { return {}; }); },
    confirm: function (params) {
      return shellAsk("confirm", params.message).then(function (yes) { return { confirmed: yes }; });
    },
    requestScope: function (params) {
      var scope = String(params.scope || "");
      return granted().then(function (state) {
        if (state.declared.indexOf(scope) < 0) return refuse("scope_not_declared", "the mini-app did not declare " + scope);
        if (state.granted.indexOf(scope) >= 0) return { scope: scope, granted: true };
        return askConsent(scope).then(function (yes) {
          if (!yes) return { scope: scope, granted: false };
          return api("/consents", { method: "POST",
            headers: { "Content-Type": "application/json", "Accept": "application/json" },
            body: JSON.stringify({ scope: scope })
          }).then(function (r) { return { scope: scope, granted: r.ok }; });
        });
      });
    },
    location: function (params) {
      return granted().then(function (state) {
        if (state.granted.indexOf("location") < 0) {
          return refuse("scope_not_granted", "the resident has not granted location to " + webapp);
        }
        return new Promise(function (resolve, reject) {
          navigator.geolocation.getCurrentPosition(function (p) {
            resolve({ lat: p.coords.latitude, lon: p.coords.longitude, accuracy: p.coords.accuracy,
              taken_at: new Date(p.timestamp).toISOString() });
          }, function (e) { reject({ code: "unavailable", reason: e.message }); }, { timeout: 10000 });
        }).then(function (position) {
          if (!params.token) return position;
          // The shell, not the page, hands the position to the host: the backend can trust what it exchanges.
          return api("/location-token", { method: "POST",
            headers: { "Content-Type": "application/json", "Accept": "application/json" },
            body: JSON.stringify(position)
          }).then(function (r) {
            if (!r.ok) throw { code: r.status === 403 ? "scope_not_granted" : "unavailable",
              reason: "the host refused (" + r.status + ")" };
            return r.json();
          }).then(function (t) {
            position.token = t.token;
            position.expires_in = t.expires_in;
            return position;
          });
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
    peerOrigin = event.origin;
    var method = Object.prototype.hasOwnProperty.call(methods, data.method) ? methods[data.method] : null;
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
