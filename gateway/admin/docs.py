"""``GET /admin/openapi.json`` (the admin API's OpenAPI document, behind the admin token
like the rest of the API) and ``GET /admin/docs``, a page that renders it and tries
requests out: open, as it holds no data (the page asks for the token, keeps it in the
tab's memory only and sends it in the ``Authorization`` header, never in a URL).

The page is written here, no third-party code: its script and style are inline and
allowed by their hashes in the Content-Security-Policy, and everything the document says
reaches the page as text (``textContent``), never as markup.
"""

from __future__ import annotations

import base64
import hashlib

from aiohttp import web

from gateway.admin import openapi as api
from gateway.admin.openapi import document_bytes

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;max-width:70rem;padding:1rem;color:#222}
h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:1.5rem;border-bottom:1px solid #ccc}
details{border:1px solid #ddd;border-radius:4px;margin:.3rem 0;padding:.3rem .6rem}
summary{cursor:pointer}
.m{display:inline-block;min-width:4.2rem;font-weight:bold;font-family:monospace}
.GET{color:#06c}.PUT{color:#a60}.POST{color:#080}.DELETE{color:#c00}
code,pre,textarea,input{font-family:ui-monospace,monospace;font-size:13px}
pre{background:#f6f6f6;padding:.5rem;overflow:auto;max-height:30rem}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2rem .4rem;text-align:left}
textarea{width:100%;min-height:8rem}.err{color:#c00}label{margin-right:.6rem}
"""

_SCRIPT = """
"use strict";
let token = null, doc = null;
const $ = (id) => document.getElementById(id);
function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}
function resolve(schema, seen) {
  // $refs inlined (a repeated one shown by name), for reading.
  seen = seen || [];
  if (Array.isArray(schema)) return schema.map((s) => resolve(s, seen));
  if (!schema || typeof schema !== "object") return schema;
  if (schema.$ref) {
    const name = schema.$ref.split("/").pop();
    if (seen.includes(name)) return {"$ref": name};
    return resolve(doc.components.schemas[name], seen.concat([name]));
  }
  const out = {};
  for (const [k, v] of Object.entries(schema)) out[k] = resolve(v, seen);
  return out;
}
function example(schema, depth) {
  // A starting body from the schema: required fields only, defaults where given.
  depth = depth || 0;
  schema = resolve(schema);
  if (!schema || depth > 6) return null;
  if ("default" in schema) return schema.default;
  if (schema.enum) return schema.enum[0];
  const options = schema.anyOf || schema.oneOf;
  if (options) return example(options.find((o) => o.type !== "null") || options[0], depth + 1);
  switch (schema.type) {
    case "object": {
      const out = {};
      for (const name of schema.required || []) {
        out[name] = example((schema.properties || {})[name], depth + 1);
      }
      return out;
    }
    case "array": return schema.minItems ? [example(schema.items, depth + 1)] : [];
    case "integer": case "number": return schema.minimum || 0;
    case "boolean": return false;
    case "string": return schema.format === "date-time" ? new Date().toISOString() : "";
    default: return null;
  }
}
function tryIt(box, path, method, op) {
  const form = el("form");
  const inputs = {};
  for (const p of op.parameters || []) {
    const label = el("label", p.name + (p.required ? "*" : "") + " (" + p.in + ") ");
    const input = el("input");
    input.name = p.name;
    inputs[p.in + ":" + p.name] = input;
    label.appendChild(input);
    form.appendChild(label);
  }
  let body = null;
  if (op.requestBody) {
    const schema = op.requestBody.content["application/json"].schema;
    body = el("textarea");
    body.value = JSON.stringify(example(schema), null, 2);
    form.appendChild(el("div", "body (JSON):"));
    form.appendChild(body);
  }
  const send = el("button", "Send " + method.toUpperCase());
  send.type = "submit";
  form.appendChild(el("div")).appendChild(send);
  const result = el("pre");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    let url = path, query = new URLSearchParams();
    for (const p of op.parameters || []) {
      const value = inputs[p.in + ":" + p.name].value;
      if (p.in === "path") url = url.replace("{" + p.name + "}", encodeURIComponent(value));
      else if (value !== "") query.set(p.name, value);
    }
    const base = doc.servers[0].url.replace(/\\/$/, "");
    const init = {method: method.toUpperCase(), headers: {}};
    if (!op.security || op.security.length) init.headers["Authorization"] = "Bearer " + token;
    if (body && body.value.trim()) {
      init.headers["Content-Type"] = "application/json";
      init.body = body.value;
    }
    result.textContent = "...";
    try {
      const qs = query.toString();
      const answer = await fetch(base + url + (qs ? "?" + qs : ""), init);
      const text = await answer.text();
      let shown = text;
      try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (e) { /* not JSON */ }
      result.textContent = answer.status + " " + answer.statusText + "\\n" + shown;
    } catch (e) {
      result.textContent = String(e);
    }
  });
  box.appendChild(el("h4", "Try it"));
  box.appendChild(form);
  box.appendChild(result);
}
function render() {
  const root = $("ops");
  root.replaceChildren();
  $("title").textContent = doc.info.title;
  const byTag = {};
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const tag = (op.tags || ["other"])[0];
      (byTag[tag] = byTag[tag] || []).push([path, method, op]);
    }
  }
  for (const tag of Object.keys(byTag).sort()) {
    root.appendChild(el("h2", tag));
    for (const [path, method, op] of byTag[tag]) {
      const box = el("details");
      const head = el("summary");
      head.appendChild(el("span", method.toUpperCase(), "m " + method.toUpperCase()));
      head.appendChild(el("code", path));
      head.appendChild(document.createTextNode(" " + (op.summary || "")));
      box.appendChild(head);
      box.addEventListener("toggle", () => {
        if (!box.open || box.dataset.filled) return;
        box.dataset.filled = "1";
        if (op.description) box.appendChild(el("p", op.description));
        if (op.parameters && op.parameters.length) {
          const table = el("table");
          const row = table.insertRow();
          for (const h of ["parameter", "in", "required", "schema"]) row.appendChild(el("th", h));
          for (const p of op.parameters) {
            const r = table.insertRow();
            r.insertCell().textContent = p.name;
            r.insertCell().textContent = p.in;
            r.insertCell().textContent = p.required ? "yes" : "no";
            r.insertCell().appendChild(el("code", JSON.stringify(resolve(p.schema))));
          }
          box.appendChild(table);
        }
        if (op.requestBody) {
          box.appendChild(el("h4", "Body" + (op.requestBody.required ? "" : " (optional)")));
          const schema = op.requestBody.content["application/json"].schema;
          box.appendChild(el("pre", JSON.stringify(resolve(schema), null, 1)));
        }
        box.appendChild(el("h4", "Responses"));
        for (const [status, answer] of Object.entries(op.responses)) {
          const line = el("details");
          line.appendChild(el("summary", status + " " + answer.description));
          const content = answer.content && Object.values(answer.content)[0];
          const shown = content ? JSON.stringify(resolve(content.schema), null, 1) : null;
          if (shown) line.appendChild(el("pre", shown));
          box.appendChild(line);
        }
        tryIt(box, path, method, op);
      });
      root.appendChild(box);
    }
  }
}
$("signin").addEventListener("submit", async (event) => {
  event.preventDefault();
  token = $("token").value.trim();
  $("token").value = "";
  $("status").textContent = "loading...";
  $("status").className = "";
  const answer = await fetch("openapi.json", {headers: {"Authorization": "Bearer " + token}});
  if (!answer.ok) {
    $("status").textContent = answer.status + ": " + ((await answer.json()).error || "");
    $("status").className = "err";
    return;
  }
  doc = await answer.json();
  $("status").textContent = "signed in for this tab; openapi.json is the document";
  render();
});
"""


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


_PAGE = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>ocpi-gateway admin API</title><style>{_STYLE}</style></head>
<body>
<h1 id="title">ocpi-gateway admin API</h1>
<form id="signin" autocomplete="off">
<label>Admin token <input id="token" type="password" size="40" autocomplete="off" required></label>
<button type="submit">Show the API</button> <span id="status"></span>
</form>
<div id="ops"></div>
<script>{_SCRIPT}</script>
</body></html>
"""

_HEADERS = {
    # Only this page's own script and style run; it talks to this origin only.
    "Content-Security-Policy": (
        f"default-src 'none'; script-src {_hash(_SCRIPT)}; style-src {_hash(_STYLE)}; "
        "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


async def openapi_json(request: web.Request) -> web.Response:
    route = request.match_info.route.resource
    assert route is not None
    prefix = route.canonical.removesuffix("/openapi.json")
    return web.Response(body=document_bytes(request.app, prefix), content_type="application/json")


async def docs_page(request: web.Request) -> web.Response:
    return web.Response(text=_PAGE, content_type="text/html", headers=_HEADERS)


def docs_routes() -> list[api.Operation]:
    return [
        api.get(
            "/openapi.json",
            openapi_json,
            "This document (OpenAPI 3.1)",
            tag="documentation",
            response=dict[str, object],
        ),
        api.get(
            "/docs",
            docs_page,
            "A page that renders this document and tries requests (asks for the token)",
            tag="documentation",
            public=True,
            content_type="text/html",
            response=str,
        ),
    ]
