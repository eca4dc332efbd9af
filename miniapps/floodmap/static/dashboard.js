// Posts to the JSON API with the page's session cookie (same origin), then shows the outcome.
document.getElementById('manual-warning').addEventListener('submit', async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const response = await fetch('/api/miniapps/floodmap/warnings', {method: 'POST', headers: {'Content-Type': 'application/json'},
    body: JSON.stringify({unit_ids: form.getAll('unit_ids'), level: Number(form.get('level')),
      title: {vi: form.get('title_vi'), en: form.get('title_en')}, body: {vi: form.get('body_vi'), en: form.get('body_en')}})});
  const body = await response.json();
  document.querySelector('[data-testid=manual-result]').textContent = response.ok ? `#${body.id} ✓` : body.detail;
});
