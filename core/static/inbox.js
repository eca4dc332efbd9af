// New inbox items arrive as events on the user's and units' channels; the page then re-reads the
// inbox from the API (the event carries only ids, never the text) and draws it as the server does:
// each item a link that marks it read, with its time in Hue time.
const hueTime = new Intl.DateTimeFormat('en-GB', {
  timeZone: 'Asia/Ho_Chi_Minh', day: '2-digit', month: '2-digit', year: 'numeric',
  hour: '2-digit', minute: '2-digit', hour12: false,
});

superappLive.connect(document.querySelector('[data-testid=inbox]').dataset.channels.split(','), async () => {
  const list = document.querySelector('[data-testid=inbox]');
  const page = await (await fetch('/api/inbox?limit=50', {headers: {'Accept-Language': list.dataset.locale}})).json();
  list.replaceChildren(...page.items.map((item) => {
    const li = document.createElement('li');
    li.className = `note ${item.severity}${item.read ? '' : ' unread'}`;
    li.id = `note-${item.id}`;
    li.dataset.id = item.id;
    li.dataset.testid = 'inbox-item';
    const link = document.createElement('a');
    link.className = 'open';
    link.href = `/inbox/${item.id}/open`;
    if (!item.read) {
      const state = document.createElement('span');
      state.className = 'state';
      state.dataset.testid = 'unread-mark';
      state.textContent = list.dataset.newLabel;
      link.append(state);
    }
    const title = document.createElement('strong');
    title.textContent = item.title;
    const body = document.createElement('p');
    body.textContent = item.body;
    const time = document.createElement('time');
    time.dateTime = item.created_at;
    time.textContent = hueTime.format(new Date(item.created_at)).replace(',', '');
    link.append(title, body, time);
    li.append(link);
    return li;
  }));
  document.querySelector('[data-testid=unread]').textContent = page.unread;
}, document.querySelector('[data-testid=live-status]'));
