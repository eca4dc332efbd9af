// Live updates for the shell's pages over /ws: subscribe to channels, call back on every event,
// reconnect with back-off, and resume from the last event id seen on each channel.
window.superappLive = {
  connect(channels, onEvent, statusEl) {
    const cursor = {};
    let delay = 500;
    const open = () => {
      const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
      const ws = new WebSocket(`${scheme}://${location.host}/ws`);
      ws.onopen = () => {
        delay = 500;
        ws.send(JSON.stringify({type: 'subscribe', channels, cursor}));
      };
      ws.onmessage = (message) => {
        const frame = JSON.parse(message.data);
        if (frame.type === 'ping') { ws.send(JSON.stringify({type: 'pong'})); return; }
        if (frame.type === 'subscribed' && statusEl) { statusEl.dataset.state = 'live'; statusEl.textContent = '●'; }
        if (frame.type === 'event') { cursor[frame.channel] = frame.id; onEvent(frame); }
      };
      ws.onclose = () => {
        if (statusEl) statusEl.dataset.state = 'offline';
        setTimeout(open, delay);
        delay = Math.min(delay * 2, 15000);
      };
    };
    open();
  },
};
