// A thread kept live: new answers and comments arrive on the question's channel and are appended
// (once: a reply already on the page is not added again when history is replayed on reconnect).
(() => {
  const list = document.querySelector('[data-testid=thread]');
  if (!list) return;
  const labels = JSON.parse(list.dataset.labels);
  const unitNames = JSON.parse(list.dataset.units);
  superappLive.connect([list.dataset.channel], (frame) => {
    const event = frame.data;
    if (event.type === 'status') {
      const status = document.querySelector('[data-testid=status]');
      if (status && labels.status[event.status]) status.textContent = labels.status[event.status];
      return;
    }
    if (event.type !== 'reply' || list.querySelector(`[data-id="${event.reply.id}"]`)) return;
    const reply = event.reply;
    const li = document.createElement('li');
    li.className = `${reply.kind} fresh`;
    li.id = `reply-${reply.id}`;
    li.dataset.id = reply.id;
    li.dataset.testid = 'reply';
    const who = document.createElement('div');
    who.className = 'who';
    who.textContent = `${labels.kind[reply.kind]} · ${reply.author_name} · ${unitNames[reply.author_unit_id] || reply.author_unit_id}`;
    const body = document.createElement('p');
    body.textContent = reply.body;
    li.append(who, body);
    list.append(li);
    document.querySelector('[data-testid=thread-empty]')?.remove();
  }, document.querySelector('[data-testid=live-status]'));
})();
