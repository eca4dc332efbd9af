// The live flood map: markers coloured by level from the GeoJSON layer; signed-in pages get every
// change over /ws (channel miniapp:floodmap:map), anonymous ones re-read the layer every 30 seconds.
(() => {
  const data = JSON.parse(document.getElementById('floodmap-data').textContent);
  const map = L.map('floodmap', {zoomControl: true}).setView([16.46, 107.59], 11);
  if (data.tile_url) L.tileLayer(data.tile_url, {maxZoom: 18, attribution: '&copy; OpenStreetMap'}).addTo(map);
  const markers = {};
  const levelNames = (feature) => feature.properties.level_name[data.locale];

  const draw = (feature) => {
    const p = feature.properties;
    const [lon, lat] = feature.geometry.coordinates;
    let marker = markers[p.code];
    if (!marker) {
      marker = markers[p.code] = L.circleMarker([lat, lon], {radius: 9, weight: 2, fillOpacity: 0.85}).addTo(map);
      marker.on('click', () => { location.href = p.url; });
    }
    marker.setStyle({color: '#222', fillColor: p.colour});
    marker.bindTooltip(`${p.name}: ${levelNames(feature)}`);
    const item = document.querySelector(`[data-station="${CSS.escape(p.code)}"]`);
    if (item) {
      item.dataset.level = p.level;
      item.dataset.stale = p.stale ? 'true' : 'false';
      item.querySelector('.dot').style.background = p.colour;
      // A silent station's name says so itself ("no signal"); cameras have no level.
      item.querySelector('.level').textContent = p.kind === 'camera' ? '' : levelNames(feature);
      item.querySelector('.value').textContent = p.value === null ? '' :
        `${p.value.toLocaleString(data.locale === 'vi' ? 'vi-VN' : 'en-GB', {maximumFractionDigits: 2})} ${p.unit_of_measurement || ''}`;
    }
  };
  data.collection.features.forEach(draw);

  const showWarning = (warning) => {
    const box = document.querySelector('[data-testid=warnings]');
    if (box.querySelector(`[data-warning="${warning.id}"]`)) return;
    const article = document.createElement('article');
    article.className = `note ${warning.severity}`;
    article.dataset.warning = warning.id;
    const title = document.createElement('strong');
    title.textContent = warning.title[data.locale];
    const body = document.createElement('p');
    body.textContent = warning.body[data.locale];
    const link = document.createElement('a');
    link.href = warning.url;
    link.textContent = data.details;
    article.append(title, body, link);
    box.prepend(article);
  };

  if (data.live) {
    superappLive.connect([data.channel], (frame) => {
      if (frame.data.type === 'station') draw(frame.data.feature);
      if (frame.data.type === 'warning') showWarning(frame.data.warning);
    }, document.querySelector('[data-testid=live-status]'));
  } else {
    setInterval(async () => {
      const response = await fetch('/api/miniapps/floodmap/stations.geojson');
      if (response.ok) (await response.json()).features.forEach(draw);
    }, 30000);
  }
})();
