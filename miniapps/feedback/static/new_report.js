// The report form's map: a tap, "use my location" or a photo's GPS places the report; the ward or commune
// it falls in is looked up at once and shown (the resident may change it); possible duplicates nearby.
(function () {
  const lat = document.getElementById("lat"), lon = document.getElementById("lon");
  const category = document.getElementById("category_id"), unit = document.getElementById("unit_id");
  const status = document.getElementById("place-status"), photos = document.getElementById("photos");
  const box = document.getElementById("pick-map"), locale = box.dataset.locale || "vi";
  const map = L.map("pick-map").setView([16.4637, 107.5909], 13);
  box.leafletMap = map;  // tests find where on screen a place is drawn, then tap it as a person would
  if (box.dataset.tileUrl) L.tileLayer(box.dataset.tileUrl, {maxZoom: 19, attribution: "© OpenStreetMap"}).addTo(map);
  let marker = null, chosenByHand = unit.value !== "";
  unit.addEventListener("change", () => { chosenByHand = unit.value !== ""; });

  async function place(la, lo, from) {
    lat.value = la.toFixed(6); lon.value = lo.toFixed(6);
    if (marker) marker.setLatLng([la, lo]); else marker = L.marker([la, lo]).addTo(map);
    const answer = await fetch("/api/miniapps/feedback/locate?" + new URLSearchParams({lat: lat.value, lon: lon.value}));
    box.dataset.located = String(Number(box.dataset.located || 0) + 1);  // lookups done (tests wait on it)
    if (!answer.ok) {
      lat.value = ""; lon.value = ""; status.textContent = status.dataset.outside; box.dataset.unit = "";
      return;
    }
    const found = await answer.json(), name = found.name[locale] || found.name.vi;
    if (!chosenByHand) unit.value = found.id;
    box.dataset.unit = found.id;
    marker.bindTooltip(name, {permanent: true, direction: "top"}).openTooltip();
    status.textContent = (from === "photo" ? status.dataset.photo + " " : "") + name;
    suggest();
  }
  map.on("click", e => place(e.latlng.lat, e.latlng.lng, "map"));
  document.getElementById("use-location").addEventListener("click", () => {
    if (navigator.geolocation) navigator.geolocation.getCurrentPosition(p => {
      place(p.coords.latitude, p.coords.longitude, "gps"); map.setView([p.coords.latitude, p.coords.longitude], 16);
    });
  });
  photos.addEventListener("change", async () => {
    if (lat.value) return;  // a place chosen already wins over the photo's
    for (const file of photos.files) {
      const found = window.exifGps(await file.slice(0, 256 * 1024).arrayBuffer());
      if (found) { place(found[0], found[1], "photo"); map.setView(found, 16); return; }
    }
  });
  async function suggest() {
    if (!lat.value || !lon.value) return;
    const q = new URLSearchParams({category_id: category.value, lat: lat.value, lon: lon.value});
    const answer = await fetch("/api/miniapps/feedback/duplicates?" + q);
    const shown = document.getElementById("duplicates"), list = document.getElementById("duplicate-list");
    list.innerHTML = "";
    if (!answer.ok) { shown.hidden = true; return; }
    const found = await answer.json();
    for (const r of found) {
      const li = document.createElement("li");
      const a = document.createElement("a");
      a.href = "/m/feedback/reports/" + r.id + "?lang=" + locale; a.textContent = "#" + r.id + " " + r.description.slice(0, 80);
      li.appendChild(a); list.appendChild(li);
    }
    shown.hidden = found.length === 0;
  }
  category.addEventListener("change", suggest);
  if (lat.value && lon.value) place(parseFloat(lat.value), parseFloat(lon.value), "map");
})();
