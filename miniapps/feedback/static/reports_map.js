// The map of reports: every report the caller may see, from the GeoJSON layer, with a popup link each.
(async function () {
  const map = L.map("reports-map").setView([16.4637, 107.5909], 12);
  const box = document.getElementById("reports-map");
  const tiles = box.dataset.tileUrl;
  if (tiles) L.tileLayer(tiles, {maxZoom: 19, attribution: "© OpenStreetMap"}).addTo(map);
  const answer = await fetch("/api/miniapps/feedback/reports.geojson");
  const data = await answer.json();
  const layer = L.geoJSON(data, {
    pointToLayer: (f, latlng) => L.circleMarker(latlng, {radius: 7, color: f.properties.status === "open" ? "#c00" : "#080"}),
    onEachFeature: (f, l) => {
      const box = document.createElement("div");
      const a = document.createElement("a");
      a.href = f.properties.url; a.textContent = "#" + f.properties.id + " " + f.properties.description.slice(0, 80);
      box.appendChild(a); l.bindPopup(box);
    },
  }).addTo(map);
  const count = document.getElementById("map-count");
  const n = data.features.length;  // "1 report", "2 reports"; Vietnamese has one form
  count.textContent = n.toLocaleString(count.dataset.locale === "en" ? "en-GB" : "vi-VN") + " " +
    (n === 1 ? count.dataset.labelOne : count.dataset.label);
  if (data.features.length) map.fitBounds(layer.getBounds(), {maxZoom: 15});
})();
