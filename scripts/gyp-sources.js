// Prints the C++ sources of the addon for binding.gyp (one per line):
// every native/core/*.cc except tests, plus every native/binding/*.cc.
// Paths are relative to the package root (gyp runs this from there).
'use strict';
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const out = [];
for (const dir of ['native/core', 'native/binding']) {
  const abs = path.join(root, dir);
  if (!fs.existsSync(abs)) continue;
  for (const name of fs.readdirSync(abs).sort()) {
    if (!name.endsWith('.cc') || /_test\.cc$/.test(name) || /_bench\.cc$/.test(name)) continue;
    out.push(`${dir}/${name}`);
  }
}
process.stdout.write(out.join('\n') + '\n');
