/* The sample mini-app's page: verify the launch with our backend, then use the host's bridge. */
(function () {
  "use strict";
  var verified = document.getElementById("verified");
  var scopeResult = document.getElementById("scope-result");
  var where = document.getElementById("location");
  fetch("/verify", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ token: SuperApp.launchToken() }) })
    .then(function (r) { return r.json(); })
    .then(function (answer) {
      if (answer.ok) { verified.dataset.sub = answer.sub; verified.textContent = "verified " + answer.sub; }
      else verified.textContent = "refused: " + answer.reason;
    });
  SuperApp.ready();
  SuperApp.setTitle("Youth Union sample");
  function ask(scope) {
    SuperApp.requestScope(scope).then(function (r) {
      scopeResult.textContent = scope + (r.granted ? " granted" : " denied");
    }, function (e) { scopeResult.textContent = "refused: " + e.message; });
  }
  document.getElementById("ask-location").addEventListener("click", function () { ask("location"); });
  document.getElementById("ask-notifications").addEventListener("click", function () { ask("notifications"); });
  document.getElementById("get-location").addEventListener("click", function () {
    SuperApp.getLocation().then(function (p) { where.textContent = "at " + p.lat.toFixed(3) + "," + p.lon.toFixed(3); },
      function (e) { where.textContent = "refused: " + e.code + ": " + e.message; });
  });
})();
