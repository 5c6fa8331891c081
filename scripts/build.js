#!/usr/bin/env node
// Compiles the TypeScript to dist/ and places each node's editor .html, icons and locales beside its
// .js, as Node-RED expects. The shared catalog (nodes/shared/locales) is merged into every node's own
// catalog, because Node-RED gives each node file its own i18n namespace.
"use strict";
const { execFileSync } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");

const root = path.resolve(__dirname, "..");
const dist = path.join(root, "dist");

fs.rmSync(dist, { recursive: true, force: true });
execFileSync(process.execPath, [require.resolve("typescript/bin/tsc"), "-p", root], { stdio: "inherit" });

const sharedLocales = path.join(root, "nodes", "shared", "locales");
const readJson = (file) => JSON.parse(fs.readFileSync(file, "utf8"));

// Nodes and editor plugins alike: each folder's .html (and icons, locales) beside its compiled .js.
const folders = ["nodes", "plugins"].flatMap((kind) => fs.readdirSync(path.join(root, kind)).map((name) => ({ kind, name })));
for (const { kind, name } of folders) {
  const source = path.join(root, kind, name);
  const target = path.join(dist, kind, name);
  if (name === "shared" || !fs.statSync(source).isDirectory()) continue;
  for (const entry of fs.readdirSync(source)) {
    if (entry.endsWith(".html")) fs.copyFileSync(path.join(source, entry), path.join(target, entry));
    if (entry === "icons") fs.cpSync(path.join(source, entry), path.join(target, entry), { recursive: true });
  }
  const locales = path.join(source, "locales");
  if (!fs.existsSync(locales)) continue;
  for (const lang of fs.readdirSync(locales)) {
    const out = path.join(target, "locales", lang);
    fs.mkdirSync(out, { recursive: true });
    for (const file of fs.readdirSync(path.join(locales, lang))) {
      const from = path.join(locales, lang, file);
      if (!file.endsWith(".json")) {
        fs.copyFileSync(from, path.join(out, file));
        continue;
      }
      const catalog = readJson(from);
      const shared = path.join(sharedLocales, lang, "peer-mesh.json");
      if (fs.existsSync(shared)) Object.assign(catalog, readJson(shared));
      fs.writeFileSync(path.join(out, file), JSON.stringify(catalog, null, 2));
    }
  }
}
