/* The sample mini-app's page: verify the launch with our backend, then use the host's bridge. */
(function () {
  "use strict";
  function $(id) { return document.getElementById(id); }
  function show(id) {
    return [function (text) { $(id).textContent = text; },
      function (e) { $(id).textContent = "refused: " + e.code + ": " + e.message; }];
  }
  var verified = $("verified");
  fetch("/verify", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ token: SuperApp.launchToken() }) })
    .then(function (r) { return r.json(); })
    .then(function (answer) {
      if (answer.ok) {
        verified.dataset.sub = answer.sub; verified.dataset.theme = answer.theme;
        verified.textContent = "verified " + answer.sub;
      } else verified.textContent = "refused: " + answer.reason;
    });
  SuperApp.ready();
  SuperApp.setTitle("Youth Union sample");
  function paintTheme(t) { $("theme").textContent = "theme " + t.theme; document.body.dataset.theme = t.theme; }
  SuperApp.getTheme().then(paintTheme);
  SuperApp.onThemeChanged(paintTheme);
  function ask(scope) {
    SuperApp.requestScope(scope).then(function (r) {
      $("scope-result").textContent = scope + (r.granted ? " granted" : " denied");
    }, function (e) { $("scope-result").textContent = "refused: " + e.message; });
  }
  $("ask-location").addEventListener("click", function () { ask("location"); });
  $("ask-notifications").addEventListener("click", function () { ask("notifications"); });
  $("ask-phone").addEventListener("click", function () { ask("phone"); });
  $("get-location").addEventListener("click", function () {
    SuperApp.getLocation({ token: true }).then(function (p) {
      $("location").textContent = "at " + p.lat.toFixed(3) + "," + p.lon.toFixed(3);
      // Our backend gets the same position from the host, by the one-time token, not from this page.
      return fetch("/location", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ token: p.token }) }).then(function (r) { return r.json(); })
        .then(function (a) {
          $("location-backend").textContent = a.status === 200 ?
            "backend at " + a.answer.lat.toFixed(3) + "," + a.answer.lon.toFixed(3) : "backend got " + a.status;
        });
    }, function (e) { $("location").textContent = "refused: " + e.code + ": " + e.message; });
  });
  // The page never sees the number: it passes the one-time token to our backend, which exchanges it.
  $("get-phone").addEventListener("click", function () {
    SuperApp.getPhoneToken().then(function (t) {
      $("phone").dataset.token = t.token;
      return fetch("/phone", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ token: t.token }) }).then(function (r) { return r.json(); })
        .then(function (a) { $("phone").textContent = a.status === 200 ? "phone " + a.answer.phone : "backend got " + a.status; });
    }, show("phone")[1]);
  });
  var pressed = 0;
  SuperApp.backButton.onClick(function () {
    $("back-pressed").textContent = String(++pressed);
    if (pressed >= 2) SuperApp.backButton.hide();
  });
  $("show-back").addEventListener("click", function () { SuperApp.backButton.show(); });
  $("open-other").addEventListener("click", function () {
    SuperApp.openMiniApp($("other-id").value, "from-sample").then(function () { $("open-result").textContent = "opening"; },
      show("open-result")[1]);
  });
  var dialogs = show("dialog-result");
  $("share").addEventListener("click", function () {
    SuperApp.share("Chủ nhật xanh", location.origin + "/app?event=12").then(function (r) {
      dialogs[0]("shared " + r.shared);
    }, dialogs[1]);
  });
  $("open-link").addEventListener("click", function () {
    SuperApp.openLink(location.origin + "/about").then(function (r) { dialogs[0]("opened " + r.opened); }, dialogs[1]);
  });
  $("open-bad-link").addEventListener("click", function () {
    SuperApp.openLink("javascript:alert(1)").then(function (r) { dialogs[0]("opened " + r.opened); }, dialogs[1]);
  });
  $("alert").addEventListener("click", function () {
    SuperApp.alert("Đã lưu đăng ký").then(function () { dialogs[0]("alert closed"); }, dialogs[1]);
  });
  $("confirm").addEventListener("click", function () {
    SuperApp.confirm("Huỷ đăng ký?").then(function (r) { dialogs[0]("confirmed " + r.confirmed); }, dialogs[1]);
  });
  // The same server at another origin (127.0.0.1 instead of localhost): not a registered origin.
  $("load-foreign").addEventListener("click", function () {
    var nested = document.createElement("iframe");
    nested.id = "foreign";
    nested.src = "http://127.0.0.1:" + location.port + "/foreign";
    document.body.appendChild(nested);
  });
})();
