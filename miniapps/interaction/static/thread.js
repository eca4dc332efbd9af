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
    // Unit names come in both languages ({vi, en}); show the page's.
    const unit = unitNames[reply.author_unit_id];
    const unitName = unit ? (unit[list.dataset.locale] || unit.vi) : reply.author_unit_id;
    who.textContent = `${labels.kind[reply.kind]} · ${reply.author_name} · ${unitName}`;
    const body = document.createElement('p');
    body.textContent = reply.body;
    li.append(who, body);
    if (reply.kind === 'answer' && list.dataset.acceptUrl) {
      // The asker may settle the question with this answer at once, as after a reload.
      const form = document.createElement('form');
      form.method = 'post';
      form.action = list.dataset.acceptUrl;
      const id = document.createElement('input');
      id.type = 'hidden'; id.name = 'reply_id'; id.value = reply.id;
      const button = document.createElement('button');
      button.type = 'submit'; button.dataset.testid = 'accept'; button.textContent = list.dataset.acceptLabel;
      form.append(id, button);
      li.append(form);
    }
    list.append(li);
    document.querySelector('[data-testid=thread-empty]')?.remove();
  }, document.querySelector('[data-testid=live-status]'));
})();
