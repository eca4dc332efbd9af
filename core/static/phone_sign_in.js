// Residents' phone sign-in (/auth/phone): Firebase phone authentication when the server has a Firebase
// web config, the development code (written to the server log) in dev. Either way the browser ends with
// our HttpOnly session cookie (`web: true`), never a token in script, then goes to /auth/continue.
(() => {
  const root = document.getElementById('phone-sign-in');
  if (!root) return;
  const text = JSON.parse(root.dataset.texts);
  const firebaseConfig = root.dataset.firebase ? JSON.parse(root.dataset.firebase) : null;
  const phoneStep = document.getElementById('phone-step');
  const codeStep = document.getElementById('code-step');
  const errorBox = document.getElementById('sign-in-error');
  let phone = '';
  let confirmation = null;
  let verifier = null;

  const mode = () => {
    const chosen = phoneStep.querySelector('input[name=mode]:checked');
    if (chosen) return chosen.value;
    return firebaseConfig ? 'firebase' : 'dev';
  };
  const fail = (message) => { errorBox.textContent = message; errorBox.hidden = false; };
  const clear = () => { errorBox.hidden = true; errorBox.textContent = ''; };
  const busy = (form, on) => form.querySelectorAll('button').forEach((b) => { b.disabled = on; });
  // Firebase wants E.164: 0912 345 678 -> +84912345678 (the server does the same for the dev code).
  const e164 = (value) => {
    let digits = value.replace(/[\s.\-()]/g, '');
    if (digits.startsWith('0')) digits = '+84' + digits.slice(1);
    else if (digits.startsWith('84')) digits = '+' + digits;
    return digits;
  };
  const messageFor = (problem) => {
    const field = String(problem.field || '');
    if (problem.status === 429) return text.too_many;
    if (field.includes('phone') || problem.code === 'auth/invalid-phone-number') return text.bad_phone;
    if (field.includes('code') || problem.code === 'auth/invalid-verification-code'
        || problem.code === 'auth/code-expired') return text.bad_code;
    if (problem.code === 'auth/too-many-requests') return text.too_many;
    if (problem.offline) return text.offline;
    return text.failed;
  };
  const post = async (url, body) => {
    let response;
    try {
      response = await fetch(url, {method: 'POST', credentials: 'same-origin',
                                   headers: {'Content-Type': 'application/json'}, body: JSON.stringify(body)});
    } catch (error) {
      throw {offline: true};
    }
    if (!response.ok) {
      let problem = {};
      try { problem = await response.json(); } catch (error) { /* not JSON */ }
      problem.status = response.status;
      throw problem;
    }
    return response;
  };
  const firebaseAuth = () => {
    if (!window.firebase.apps.length) window.firebase.initializeApp(firebaseConfig);
    const auth = window.firebase.auth();
    if (firebaseConfig.emulator && !auth.emulatorConfig) auth.useEmulator(firebaseConfig.emulator);
    auth.languageCode = document.documentElement.lang;
    return auth;
  };

  phoneStep.addEventListener('submit', async (event) => {
    event.preventDefault();
    clear();
    phone = phoneStep.querySelector('[name=phone]').value.trim();
    if (!/^\+84\d{9,10}$/.test(e164(phone))) { fail(text.bad_phone); return; }
    busy(phoneStep, true);
    try {
      let sent;
      if (mode() === 'firebase') {
        const auth = firebaseAuth();
        verifier = verifier || new window.firebase.auth.RecaptchaVerifier('recaptcha', {size: 'invisible'});
        confirmation = await auth.signInWithPhoneNumber(e164(phone), verifier);
        sent = text.sent_sms;
      } else {
        await post('/api/auth/dev/code', {phone});
        sent = text.sent_dev;
      }
      document.getElementById('code-sent').textContent = `${sent} ${e164(phone)}.`;
      phoneStep.hidden = true;
      codeStep.hidden = false;
      codeStep.querySelector('[name=code]').focus();
    } catch (problem) {
      fail(messageFor(problem));
    } finally {
      busy(phoneStep, false);
    }
  });

  codeStep.addEventListener('submit', async (event) => {
    event.preventDefault();
    clear();
    const code = codeStep.querySelector('[name=code]').value.trim();
    if (!/^\d{6}$/.test(code)) { fail(text.bad_code); return; }
    busy(codeStep, true);
    try {
      if (mode() === 'firebase') {
        const credential = await confirmation.confirm(code);
        const idToken = await credential.user.getIdToken();
        await post('/api/auth/firebase', {id_token: idToken, web: true});
        await firebaseAuth().signOut();  // our cookie is the session from here on
      } else {
        await post('/api/auth/dev/verify', {phone, code, web: true});
      }
      window.location.assign('/auth/continue?next=' + encodeURIComponent(root.dataset.next || '/'));
    } catch (problem) {
      fail(messageFor(problem));
      busy(codeStep, false);
    }
  });

  document.getElementById('change-phone').addEventListener('click', () => {
    clear();
    codeStep.hidden = true;
    phoneStep.hidden = false;
    phoneStep.querySelector('[name=phone]').focus();
  });
})();
