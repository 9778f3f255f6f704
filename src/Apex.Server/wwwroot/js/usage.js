// @ts-check
import { api } from './api.js';
import { h, badge, duration } from './dom.js';

/** The usage page: the plan tier, model tokens and cost by day (GET /api/usage) and the tool-call log. */
export class UsageView {
  constructor() {
    this.plan = h('div');
    this.perTool = h('div');
    this.tokens = h('div');
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
        this.tokens),
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
    await this.loadTokens();
    await this.load(true);
  }

  async loadTokens() {
    try {
      const usage = await api('GET', '/api/usage?days=30');
      const money = (/** @type {number | null} */ v) => v === null || v === undefined ? 'no price' : `$${v.toFixed(v >= 1 ? 2 : 4)}`;
      const rows = usage.by_day.map((/** @type {any} */ d) => h('tr', null, h('td', null, d.day), h('td', null, h('code', null, d.model)),
        h('td', null, String(d.calls)), h('td', null, d.input_tokens.toLocaleString()), h('td', null, d.output_tokens.toLocaleString()), h('td', null, money(d.cost_usd))));
      if (rows.length === 0) rows.push(h('tr', null, h('td', { colspan: 6, class: 'muted' }, 'No model calls in the last 30 days.')));
      this.tokens.replaceChildren(
        h('p', null, 'Last 30 days: ', h('strong', { class: 'token-total' }, `${(usage.input_tokens + usage.output_tokens).toLocaleString()} tokens`),
          ` (${usage.input_tokens.toLocaleString()} in, ${usage.output_tokens.toLocaleString()} out), `, h('strong', null, money(usage.cost_usd)), '.'),
        h('div', { class: 'table-wrap' }, h('table', null, h('caption', { class: 'visually-hidden' }, 'Model tokens and cost by day'),
          h('thead', null, h('tr', null, ...['Day', 'Model', 'Calls', 'Input tokens', 'Output tokens', 'Cost'].map(c => h('th', { scope: 'col' }, c)))),
          h('tbody', null, ...rows))),
        h('p', { class: 'muted' }, 'The built-in model counts four characters a token and costs nothing; a real model\'s tokens are as its provider reports them, priced from the server\'s price table.'));
    } catch (error) {
      this.error.textContent = /** @type {Error} */ (error).message;
    }
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
