// Similar answered questions while the title is typed: one request per pause (debounced), only the
// latest answer is shown, and the list links to threads the official can reuse.
(() => {
  const title = document.querySelector('[data-testid=ask-title]');
  const list = document.querySelector('[data-testid=suggestions]');
  if (!title || !list) return;
  let timer = null;
  let asked = 0;
  const show = (hits) => {
    list.replaceChildren(...hits.map((hit) => {
      const li = document.createElement('li');
      const link = document.createElement('a');
      link.href = hit.url;
      link.textContent = hit.title;
      const snippet = document.createElement('div');
      snippet.textContent = hit.snippet;
      li.append(link, snippet);
      return li;
    }));
    list.hidden = hits.length === 0;
  };
  const ask = async () => {
    const text = title.value.trim();
    const mine = ++asked;
    if (text.length < 3) { show([]); return; }
    const params = new URLSearchParams({q: text});
    const response = await fetch(`/api/miniapps/interaction/suggestions?${params}`, {credentials: 'same-origin'});
    if (!response.ok || mine !== asked) return;
    show(await response.json());
  };
  title.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(ask, 250); });
})();
