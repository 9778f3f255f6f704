// @ts-check
/**
 * Markdown for untrusted text, safe by construction: the whole input is HTML-escaped first, then a
 * small subset is turned into tags that this module writes itself (headings, paragraphs, lists,
 * quotes, code, bold, italic, links to http(s) only). No tag or attribute from the input survives.
 */

/** @param {string} text */
export function escapeHtml(text) {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

/**
 * Inline markup over already escaped text.
 * @param {string} escaped
 */
function inline(escaped) {
  /** @type {string[]} */
  const codes = [];
  // Code spans first, so that nothing inside them is formatted.
  let out = escaped.replace(/`([^`]+)`/g, (_, code) => `\u0000${codes.push(code) - 1}\u0000`);
  // Backslash escapes (CommonMark): the server escapes names from uploaded data this way; the character stays literal.
  /** @type {string[]} */
  const literals = [];
  out = out.replace(/\\(&lt;|&gt;|&amp;|&quot;|&#39;|[!-\/:-@[-`{-~])/g, (_, c) => `\u0001${literals.push(c) - 1}\u0001`);
  out = out.replace(/\[([^\]]+)\]\((https?:\/\/[^\s()]+)\)/g, (_, label, url) => `<a href="${url}" rel="noopener noreferrer nofollow" target="_blank">${label}</a>`);
  out = out.replace(/\*\*([^*]+)\*\*/g, '<strong>$1</strong>');
  out = out.replace(/(^|[^*\w])\*([^*\s][^*]*)\*(?!\w)/g, '$1<em>$2</em>');
  out = out.replace(/(^|[^_\w])_([^_\s][^_]*)_(?!\w)/g, '$1<em>$2</em>');
  out = out.replace(/\u0001(\d+)\u0001/g, (_, i) => literals[Number(i)]);
  return out.replace(/\u0000(\d+)\u0000/g, (_, i) => `<code>${codes[Number(i)]}</code>`);
}

/**
 * @param {string} source untrusted Markdown
 * @returns {string} HTML made only of the tags above
 */
export function renderMarkdown(source) {
  const lines = escapeHtml(source.replace(/\r\n?/g, '\n').replace(/\u0000/g, '')).split('\n');
  /** @type {string[]} */
  const html = [];
  /** @type {string[]} */
  let paragraph = [];
  /** @type {{ tag: string, items: string[] } | null} */
  let list = null;
  const flushParagraph = () => {
    if (paragraph.length) html.push(`<p>${inline(paragraph.join(' '))}</p>`);
    paragraph = [];
  };
  const flushList = () => {
    if (list) html.push(`<${list.tag}>${list.items.map(i => `<li>${inline(i)}</li>`).join('')}</${list.tag}>`);
    list = null;
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (/^```/.test(line)) {
      flushParagraph(); flushList();
      const code = [];
      for (i++; i < lines.length && !/^```/.test(lines[i]); i++) code.push(lines[i]);
      html.push(`<pre><code>${code.join('\n')}</code></pre>`);
      continue;
    }
    const heading = /^(#{1,6})\s+(.*)$/.exec(line);
    if (heading) {
      flushParagraph(); flushList();
      // Headings inside an answer start at level 3: the page owns h1 and h2.
      const level = Math.min(6, heading[1].length + 2);
      html.push(`<h${level}>${inline(heading[2])}</h${level}>`);
      continue;
    }
    const bullet = /^\s*[-*+]\s+(.*)$/.exec(line);
    const numbered = /^\s*\d+[.)]\s+(.*)$/.exec(line);
    if (bullet || numbered) {
      flushParagraph();
      const tag = bullet ? 'ul' : 'ol';
      if (list && list.tag !== tag) flushList();
      if (!list) list = { tag, items: [] };
      list.items.push((bullet ?? numbered)?.[1] ?? '');
      continue;
    }
    const quote = /^&gt;\s?(.*)$/.exec(line);
    if (quote) {
      flushParagraph(); flushList();
      html.push(`<blockquote><p>${inline(quote[1])}</p></blockquote>`);
      continue;
    }
    if (line.trim() === '') {
      flushParagraph(); flushList();
      continue;
    }
    if (list && /^\s{2,}\S/.test(line)) {
      list.items[list.items.length - 1] += ' ' + line.trim();
      continue;
    }
    flushList();
    paragraph.push(line.trim());
  }
  flushParagraph(); flushList();
  return html.join('\n');
}
