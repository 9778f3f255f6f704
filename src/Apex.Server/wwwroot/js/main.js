// @ts-check
import { api, signIn, signOut, currentUser, onSessionChange } from './api.js';
import { h } from './dom.js';
import { Live } from './live.js';
import { ChatView } from './chat.js';
import { DataView } from './data.js';
import { UsageView } from './usage.js';

/** The shell: sign-in, the top bar, the threads list and the router over `#/`, `#/t/<id>`, `#/data`, `#/usage`. */

const root = /** @type {HTMLElement} */ (document.getElementById('app'));

const live = new Live(frame => chat.handleFrame(frame), state => setConnection(state), () => chat.resume());
const chat = new ChatView(live, { onThreadsChanged: () => threads.reload(), navigate: hash => go(hash) });
const data = new DataView();
const usage = new UsageView();

/** The threads list, newest first, one page at a time. */
const threads = new (class {
  constructor() {
    this.list = h('ul', { class: 'thread-list' });
    this.more = /** @type {HTMLButtonElement} */ (h('button', { type: 'button', class: 'secondary', hidden: true, onclick: () => this.load(false) }, 'Load older threads'));
    this.error = h('p', { class: 'error', role: 'alert' });
    /** @type {string | null} */
    this.cursor = null;
    this.el = h('nav', { class: 'sidebar', 'aria-labelledby': 'threads-title' },
      h('div', { class: 'sidebar-head' }, h('h2', { id: 'threads-title' }, 'Threads'),
        h('a', { href: '#/', class: 'button' }, 'New thread')),
      this.list, this.more, this.error);
  }

  reload() { return this.load(true); }

  /** @param {boolean} first */
  async load(first) {
    try {
      const page = await api('GET', `/api/threads?limit=30${!first && this.cursor ? `&cursor=${encodeURIComponent(this.cursor)}` : ''}`);
      if (first) this.list.replaceChildren();
      for (const thread of page.items) {
        this.list.append(h('li', null, h('a', { href: `#/t/${encodeURIComponent(thread.id)}`, dataset: { threadId: thread.id }, title: thread.title }, thread.title)));
      }
      if (first && page.items.length === 0) this.list.append(h('li', { class: 'muted' }, 'No threads yet.'));
      this.cursor = page.next_cursor;
      this.more.hidden = !this.cursor;
      this.error.textContent = '';
      this.mark();
    } catch (error) {
      this.error.textContent = /** @type {Error} */ (error).message;
    }
  }

  mark() {
    for (const a of this.list.querySelectorAll('a')) {
      if (a.dataset.threadId === chat.threadId) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
  }
})();

const connection = h('span', { class: 'connection', role: 'status' });
/** @param {'connecting' | 'online' | 'offline'} state */
function setConnection(state) {
  connection.dataset.state = state;
  connection.textContent = { connecting: 'Connecting…', online: 'Live', offline: 'Offline: reconnecting' }[state];
}

const nav = h('nav', { class: 'main-nav', 'aria-label': 'Main' },
  h('a', { href: '#/', dataset: { page: 'chat' } }, 'Chat'), h('a', { href: '#/data', dataset: { page: 'data' } }, 'Data'), h('a', { href: '#/usage', dataset: { page: 'usage' } }, 'Usage'));
const who = h('span', { class: 'who' });
const main = h('main', { id: 'main', tabindex: '-1' });
const shell = h('div', { class: 'shell' },
  h('header', { class: 'topbar' }, h('a', { href: '#/', class: 'brand' }, 'Apex'), nav, h('div', { class: 'topbar-end' }, connection, who,
    h('button', { type: 'button', class: 'secondary', onclick: () => signOut() }, 'Sign out'))),
  h('div', { class: 'layout' }, threads.el, main));

/** The sign-in form: one form, two ways to submit it. */
function authView() {
  const email = /** @type {HTMLInputElement} */ (h('input', { id: 'email', name: 'email', type: 'email', autocomplete: 'username', required: true }));
  const password = /** @type {HTMLInputElement} */ (h('input', { id: 'password', name: 'password', type: 'password', autocomplete: 'current-password', required: true }));
  const error = h('p', { class: 'error', role: 'alert', id: 'auth-error' });
  /** @param {'login' | 'register'} kind */
  const submit = async kind => {
    error.textContent = '';
    for (const b of form.querySelectorAll('button')) b.disabled = true;
    try {
      await signIn(kind, email.value, password.value);
    } catch (err) {
      error.textContent = /** @type {Error} */ (err).message;
      for (const b of form.querySelectorAll('button')) b.disabled = false;
      email.focus();
    }
  };
  const form = h('form', { class: 'auth card', 'aria-labelledby': 'auth-title', 'aria-describedby': 'auth-error', novalidate: true,
    onsubmit: (/** @type {SubmitEvent} */ e) => { e.preventDefault(); submit(/** @type {HTMLButtonElement} */ (e.submitter)?.value === 'register' ? 'register' : 'login'); } },
    h('h1', { id: 'auth-title' }, 'Sign in to Apex'),
    h('p', { class: 'muted' }, 'A team of agents that reads your LLM usage and shows, step by step, how to cut its cost and latency.'),
    h('label', { for: 'email' }, 'Email'), email,
    h('label', { for: 'password' }, 'Password'), password,
    h('p', { class: 'muted hint' }, 'New here? Choose a password of at least 8 characters and create an account.'),
    error,
    h('div', { class: 'row' }, h('button', { type: 'submit', value: 'login' }, 'Sign in'), h('button', { type: 'submit', value: 'register', class: 'secondary' }, 'Create account')));
  return h('main', { id: 'main', class: 'auth-page' }, form);
}

/** @param {string} hash */
function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

let signedInShown = false;

async function route() {
  const user = currentUser();
  if (!user) {
    if (signedInShown || !root.querySelector('.auth-page')) {
      signedInShown = false;
      live.stop();
      chat.threadId = null;
      root.replaceChildren(authView());
      /** @type {HTMLInputElement} */ (root.querySelector('#email')).focus();
    }
    document.title = 'Sign in · Apex';
    return;
  }
  if (!signedInShown) {
    signedInShown = true;
    who.textContent = user.email;
    root.replaceChildren(shell);
    live.start();
    threads.reload();
  }
  const hash = location.hash || '#/';
  if (hash === '#main') return;
  const thread = /^#\/t\/([^/]+)$/.exec(hash);
  const page = hash === '#/data' ? 'data' : hash === '#/usage' ? 'usage' : 'chat';
  for (const a of nav.querySelectorAll('a')) {
    if (/** @type {HTMLElement} */ (a).dataset.page === page) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  shell.dataset.page = page;
  if (page === 'chat') {
    if (main.firstChild !== chat.el) main.replaceChildren(chat.el);
    await chat.open(thread ? decodeURIComponent(thread[1]) : null);
    document.title = `${chat.title.textContent} · Apex`;
    threads.mark();
  } else {
    const view = page === 'data' ? data : usage;
    main.replaceChildren(view.el);
    document.title = `${page === 'data' ? 'Data' : 'Usage'} · Apex`;
    main.focus({ preventScroll: true });
    await view.show();
  }
}

window.addEventListener('hashchange', () => route());
// Threads created in another tab appear when this one is looked at again.
window.addEventListener('focus', () => { if (signedInShown) threads.reload(); });
// The skip link must not become a route.
document.querySelector('.skip')?.addEventListener('click', e => {
  e.preventDefault();
  /** @type {HTMLElement | null} */ (document.getElementById('main'))?.focus();
});
onSessionChange(() => route());
route();
