"use strict";
// A small, safe markdown renderer for model answers. All text is HTML-escaped first; only the
// constructs below become markup: fenced code blocks (with light highlighting and a copy button),
// headings, lists (nested by indentation), block quotes, tables, rules, paragraphs, and inline
// code, bold, italics, strike-through and http(s) links. An unclosed fence (a streaming answer)
// renders as a code block up to the end.
const Markdown = (() => {
  const esc = (s) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

  function inline(src) {
    const codes = [];
    let s = src.replace(/`([^`\n]+)`/g, (_, c) => {
      codes.push(c);
      return "\u0000" + (codes.length - 1) + "\u0000";
    });
    s = esc(s);
    s = s.replace(/\[([^\]\n]+)\]\((https?:\/\/[^\s)]+)\)/g,
      (_, t, u) => `<a href="${u}" target="_blank" rel="noopener noreferrer">${t}</a>`);
    s = s.replace(/\*\*([^*\n]+)\*\*/g, "<strong>$1</strong>").replace(/(^|\W)__([^_\n]+)__(?=\W|$)/g, "$1<strong>$2</strong>");
    s = s.replace(/(^|[^*\w])\*([^*\s](?:[^*\n]*[^*\s])?)\*(?=[^*\w]|$)/g, "$1<em>$2</em>");
    s = s.replace(/(^|[^_\w])_([^_\s](?:[^_\n]*[^_\s])?)_(?=[^_\w]|$)/g, "$1<em>$2</em>");
    s = s.replace(/~~([^~\n]+)~~/g, "<del>$1</del>");
    return s.replace(/\u0000(\d+)\u0000/g, (_, i) => `<code>${esc(codes[+i])}</code>`);
  }

  const KEYWORDS = new Set((
    "def class return if elif else for while in not and or is import from as with try except finally raise " +
    "lambda yield pass break continue None True False async await function const let var new this typeof " +
    "instanceof switch case default throw catch null undefined true false public private protected static " +
    "void int float double char bool struct fn mut impl use pub match enum interface type package func go " +
    "defer select export extends implements self super global nonlocal del assert println printf"
  ).split(" "));
  const HASH_COMMENTS = new Set(["python", "py", "sh", "bash", "shell", "zsh", "ruby", "rb", "yaml", "yml", "toml", "r", "perl", "dockerfile", "make", "makefile"]);

  function highlight(code, lang) {
    lang = (lang || "").toLowerCase();
    const comment = HASH_COMMENTS.has(lang) ? "#[^\\n]*" : lang === "json" ? "(?!)" : "\\/\\/[^\\n]*|\\/\\*[\\s\\S]*?\\*\\/";
    const re = new RegExp(`(${comment})|("(?:[^"\\\\\\n]|\\\\.)*"|'(?:[^'\\\\\\n]|\\\\.)*'|\`(?:[^\`\\\\]|\\\\.)*\`)|(\\b\\d+(?:\\.\\d+)?(?:e[+-]?\\d+)?\\b)|([A-Za-z_]\\w*)`, "g");
    let out = "";
    let last = 0;
    for (let m; (m = re.exec(code));) {
      out += esc(code.slice(last, m.index));
      last = re.lastIndex;
      const [tok, com, str, num, word] = m;
      if (com !== undefined) out += `<span class="tok-com">${esc(tok)}</span>`;
      else if (str !== undefined) out += `<span class="tok-str">${esc(tok)}</span>`;
      else if (num !== undefined) out += `<span class="tok-num">${esc(tok)}</span>`;
      else if (word !== undefined && KEYWORDS.has(word)) out += `<span class="tok-kw">${esc(tok)}</span>`;
      else out += esc(tok);
      if (tok === "") re.lastIndex++;
    }
    return out + esc(code.slice(last));
  }

  function codeBlock(code, lang) {
    const label = esc(lang || "code");
    return `<div class="codeblock"><div class="codehead"><span>${label}</span>` +
      `<button type="button" class="copy">Copy</button></div>` +
      `<pre><code data-lang="${label}">${highlight(code, lang)}</code></pre></div>`;
  }

  const FENCE = /^\s{0,3}(`{3,}|~{3,})\s*([\w+#.-]*)[^`]*$/;
  const LIST = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/;
  const RULE = /^\s{0,3}([-*_])(\s*\1){2,}\s*$/;
  const HEADING = /^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
  const TABLE_SEP = /^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$/;

  function startsBlock(line, next) {
    return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || /^\s*>/.test(line) || LIST.test(line) ||
      (line.includes("|") && next !== undefined && TABLE_SEP.test(next));
  }

  function dedent(lines) {
    const widths = lines.filter((l) => l.trim()).map((l) => l.match(/^\s*/)[0].length);
    const cut = widths.length ? Math.min(...widths) : 0;
    return lines.map((l) => l.slice(Math.min(cut, l.match(/^\s*/)[0].length)));
  }

  function cells(row) {
    return row.trim().replace(/^\|/, "").replace(/\|$/, "").split("|").map((c) => c.trim());
  }

  function list(lines, i) {
    const first = lines[i].match(LIST);
    const indent = first[1].length;
    const ordered = /\d/.test(first[2]);
    const items = [];
    while (i < lines.length) {
      const line = lines[i];
      const m = line.match(LIST);
      if (m && m[1].length === indent && /\d/.test(m[2]) === ordered) {
        items.push([m[3]]);
        i++;
      } else if (line.trim() && line.match(/^\s*/)[0].length > indent) {
        items[items.length - 1].push(line);
        i++;
      } else if (!line.trim() && i + 1 < lines.length && lines[i + 1].match(/^\s*/)[0].length > indent && lines[i + 1].trim()) {
        items[items.length - 1].push("");
        i++;
      } else {
        break;
      }
    }
    const tag = ordered ? "ol" : "ul";
    const start = ordered && parseInt(first[2], 10) !== 1 ? ` start="${parseInt(first[2], 10)}"` : "";
    const html = items.map(([head, ...rest]) => `<li>${inline(head)}${rest.length ? render(dedent(rest).join("\n")) : ""}</li>`);
    return [`<${tag}${start}>${html.join("")}</${tag}>`, i];
  }

  function render(md) {
    const lines = (md || "").replace(/\r\n?/g, "\n").split("\n");
    const out = [];
    let i = 0;
    while (i < lines.length) {
      const line = lines[i];
      const fence = line.match(FENCE);
      if (fence) {
        const marker = fence[1];
        const body = [];
        i++;
        while (i < lines.length && !new RegExp(`^\\s{0,3}${marker[0] === "`" ? "`" : "~"}{${marker.length},}\\s*$`).test(lines[i])) {
          body.push(lines[i]);
          i++;
        }
        i++; // the closing fence (or past the end of a streaming answer)
        out.push(codeBlock(body.join("\n"), fence[2]));
        continue;
      }
      if (!line.trim()) { i++; continue; }
      const h = line.match(HEADING);
      if (h) {
        out.push(`<h${h[1].length}>${inline(h[2])}</h${h[1].length}>`);
        i++;
        continue;
      }
      if (RULE.test(line)) { out.push("<hr>"); i++; continue; }
      if (/^\s*>/.test(line)) {
        const body = [];
        while (i < lines.length && /^\s*>/.test(lines[i])) body.push(lines[i++].replace(/^\s*>\s?/, ""));
        out.push(`<blockquote>${render(body.join("\n"))}</blockquote>`);
        continue;
      }
      if (line.includes("|") && i + 1 < lines.length && TABLE_SEP.test(lines[i + 1])) {
        const head = cells(line);
        i += 2;
        const rows = [];
        while (i < lines.length && lines[i].includes("|") && lines[i].trim()) rows.push(cells(lines[i++]));
        out.push(`<div class="tablewrap"><table><thead><tr>${head.map((c) => `<th>${inline(c)}</th>`).join("")}</tr></thead>` +
          `<tbody>${rows.map((r) => `<tr>${r.map((c) => `<td>${inline(c)}</td>`).join("")}</tr>`).join("")}</tbody></table></div>`);
        continue;
      }
      if (LIST.test(line)) {
        const [html, next] = list(lines, i);
        out.push(html);
        i = next;
        continue;
      }
      const para = [];
      while (i < lines.length && lines[i].trim() && (para.length === 0 || !startsBlock(lines[i], lines[i + 1]))) para.push(lines[i++]);
      out.push(`<p>${para.map((l) => inline(l.trim())).join("<br>")}</p>`);
    }
    return out.join("");
  }

  // JSON re-indented token by token: numbers and strings are copied as written (JSON.parse would turn a
  // 30-digit integer into a float), only whitespace outside strings changes.
  function prettyJSON(text) {
    let out = "";
    let depth = 0;
    let inString = false;
    const nl = () => "\n" + "  ".repeat(depth);
    for (let i = 0; i < text.length; i++) {
      const ch = text[i];
      if (inString) {
        out += ch;
        if (ch === "\\") out += text[++i] ?? "";
        else if (ch === '"') inString = false;
      } else if (ch === '"') {
        inString = true;
        out += ch;
      } else if (ch === "{" || ch === "[") {
        const close = ch === "{" ? "}" : "]";
        let j = i + 1;
        while (j < text.length && /\s/.test(text[j])) j++;
        if (text[j] === close) { out += ch + close; i = j; continue; }
        depth++;
        out += ch + nl();
      } else if (ch === "}" || ch === "]") {
        depth = Math.max(0, depth - 1);
        out += nl() + ch;
      } else if (ch === ",") {
        out += "," + nl();
      } else if (ch === ":") {
        out += ": ";
      } else if (!/\s/.test(ch)) {
        out += ch;
      }
    }
    return out;
  }

  return { render, escape: esc, highlight, codeBlock, prettyJSON };
})();
