// @ts-check
import { api } from './api.js';
import { h, badge, duration } from './dom.js';

/** The usage page: the plan tier and the tool-call log. Token and cost accounting arrive with a later issue. */
export class UsageView {
  constructor() {
    this.plan = h('div');
    this.perTool = h('div');
    this.rows = h('tbody');
    this.more = /** @type {HTMLButtonElement} */ (h('button', { type: 'button', class: 'secondary', hidden: true, onclick: () => this.load(false) }, 'Load more'));
    this.error = h('p', { class: 'error', role: 'alert' });
    /** @type {string | null} */
    this.cursor = null;
    /** @type {any[]} */
    this.items = [];
    this.el = h('div', { class: 'page usage-page' },
      h('h1', null, 'Usage'),
      h('section', { 'aria-labelledby': 'plan-title' }, h('h2', { id: 'plan-title' }, 'Plan'), this.plan),
      h('section', { 'aria-labelledby': 'tokens-title' }, h('h2', { id: 'tokens-title' }, 'Tokens and cost'),
        h('p', { class: 'muted' }, 'Apex does not record the tokens and cost of its own model calls yet; that comes with the model-stack issue. Until then this page shows no such figures rather than estimated ones.')),
      h('section', { 'aria-labelledby': 'tools-title' }, h('h2', { id: 'tools-title' }, 'Tool calls'), this.perTool,
        h('div', { class: 'table-wrap' }, h('table', null, h('caption', { class: 'visually-hidden' }, 'Tool calls, newest first'),
          h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'When'), h('th', { scope: 'col' }, 'Tool'), h('th', { scope: 'col' }, 'Status'), h('th', { scope: 'col' }, 'Duration'))),
          this.rows)), this.more, this.error));
  }

  async show() {
    this.error.textContent = '';
    try {
      const me = await api('GET', '/api/auth/me');
      this.plan.replaceChildren(h('p', null, 'Your plan: ', h('strong', { class: 'tier' }, me.tier), '. ',
        me.tier === 'free' ? 'The routing what-if and anomaly tools need the pro plan; the team works around them and the timeline shows them as denied.' : ''));
    } catch (error) {
      this.error.textContent = /** @type {Error} */ (error).message;
    }
    await this.load(true);
  }

  /** @param {boolean} first */
  async load(first) {
    if (first) { this.cursor = null; this.items = []; this.rows.replaceChildren(); }
    try {
      const page = await api('GET', `/api/usage/tools?limit=100${this.cursor ? `&cursor=${encodeURIComponent(this.cursor)}` : ''}`);
      this.items.push(...page.items);
      this.cursor = page.next_cursor;
      this.more.hidden = !this.cursor;
      for (const row of page.items) {
        this.rows.append(h('tr', null, h('td', null, new Date(row.created_at).toLocaleString()), h('td', null, h('code', null, row.tool)),
          h('td', null, badge(row.status)), h('td', null, duration(row.duration_ms))));
      }
      if (this.items.length === 0) this.rows.append(h('tr', null, h('td', { colspan: 4, class: 'muted' }, 'No tool calls yet: send a message in the chat.')));
      this.summarise();
    } catch (error) {
      this.error.textContent = /** @type {Error} */ (error).message;
    }
  }

  summarise() {
    /** @type {Map<string, Map<string, number>>} */
    const byDay = new Map();
    for (const row of this.items) {
      const day = new Date(row.created_at).toLocaleDateString();
      const counts = byDay.get(day) ?? new Map();
      counts.set(row.status, (counts.get(row.status) ?? 0) + 1);
      byDay.set(day, counts);
    }
    this.perTool.replaceChildren(...[...byDay].map(([day, counts]) => h('p', null, 'Calls on ', h('strong', null, day), ': ',
      [...counts].map(([status, n]) => `${n} ${status}`).join(', '), this.cursor ? ' (of the calls loaded so far)' : '')));
  }
}
