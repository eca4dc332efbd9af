/* Hue-S web mini-app bridge, protocol version 1. Load it from the host that opens you:
 *   <script src="https://HOST/static/core/bridge.js"></script>
 * It talks to the host page only (its origin is where this file came from) and ignores every other window.
 * docs/webapps.md describes the methods. */
(function () {
  "use strict";
  var PROTOCOL = 1;
  var script = document.currentScript;
  var hostOrigin = new URL(script ? script.src : location.href).origin;
  var pending = {};
  var listeners = {};
  var serial = 0;

  window.addEventListener("message", function (event) {
    // Answers come only from the host page that framed us, at the host's origin.
    if (event.source !== window.parent || event.origin !== hostOrigin) return;
    var data = event.data;
    if (data && data.superapp === PROTOCOL && typeof data.event === "string") {
      (listeners[data.event] || []).slice().forEach(function (fn) { fn(data.data); });
      return;
    }
    if (!data || data.superapp !== PROTOCOL || !pending[data.id]) return;
    var waiter = pending[data.id];
    delete pending[data.id];
    if (data.ok) waiter.resolve(data.result);
    else {
      var error = new Error((data.error && data.error.reason) || "refused");
      error.code = data.error && data.error.code;
      waiter.reject(error);
    }
  });

  function call(method, params) {
    if (window.parent === window) return Promise.reject(new Error("not inside the Hue-S shell"));
    var id = "m" + (++serial);
    return new Promise(function (resolve, reject) {
      pending[id] = { resolve: resolve, reject: reject };
      window.parent.postMessage({ superapp: PROTOCOL, id: id, method: method, params: params || {} }, hostOrigin);
    });
  }

  function launchToken() {
    var hash = new URLSearchParams(location.hash.replace(/^#/, ""));
    return hash.get("superapp_launch");
  }

  // Events from the shell (backButton, themeChanged) reach the page once it has made a call (e.g. ready()).
  function on(name, fn) {
    (listeners[name] = listeners[name] || []).push(fn);
    return function off() { listeners[name] = (listeners[name] || []).filter(function (f) { return f !== fn; }); };
  }

  window.SuperApp = {
    version: "1.1.0",
    protocol: PROTOCOL,
    hostOrigin: hostOrigin,
    call: call,
    launchToken: launchToken,
    capabilities: function () { return call("capabilities"); },
    ready: function () { return call("ready"); },
    close: function () { return call("close"); },
    setTitle: function (title) { return call("setTitle", { title: String(title) }); },
    launchData: function () { return call("launchData"); },
    reportError: function (message) { return call("reportError", { message: String(message).slice(0, 200) }); },
    requestScope: function (scope) { return call("requestScope", { scope: scope }); },
    // {token: true} adds a one-time token the mini-app's backend exchanges for the same position.
    getLocation: function (options) { return call("location", { token: !!(options && options.token) }); },
    on: on,
    isSupported: function (method) {
      return call("capabilities").then(function (c) { return c.methods.indexOf(method) >= 0; });
    },
    backButton: {
      show: function () { return call("setBackButton", { visible: true }); },
      hide: function () { return call("setBackButton", { visible: false }); },
      onClick: function (fn) { return on("backButton", fn); }
    },
    getTheme: function () { return call("theme"); },
    onThemeChanged: function (fn) { return on("themeChanged", fn); },
    getPhoneToken: function () { return call("phoneToken"); },
    openMiniApp: function (id, start) { return call("openMiniApp", { id: String(id), start: start || "" }); },
    share: function (text, url) { return call("share", { text: String(text || ""), url: url || "" }); },
    openLink: function (url) { return call("openLink", { url: String(url) }); },
    alert: function (message) { return call("alert", { message: String(message) }); },
    confirm: function (message) { return call("confirm", { message: String(message) }); }
  };
})();
