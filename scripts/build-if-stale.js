#!/usr/bin/env node
// The `prepare` script: compiles lib/ into dist/ unless dist/ is already
// newer than every source. npm runs `prepare` of this repository in place
// whenever `npx vfio-user` is run inside it, so it must cost nothing when
// there is nothing to do.
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');

function newest(dir) {
  let time = fs.statSync(dir).mtimeMs;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name);
    time = Math.max(time, entry.isDirectory() ? newest(file) : fs.statSync(file).mtimeMs);
  }
  return time;
}

function builtAt() {
  try {
    return fs.statSync(path.join(root, 'dist', 'cli.js')).mtimeMs;
  } catch {
    return -Infinity;
  }
}

const sources = Math.max(newest(path.join(root, 'lib')), ...['tsconfig.json', 'tsconfig.build.json'].map((f) => fs.statSync(path.join(root, f)).mtimeMs));
if (builtAt() < sources) {
  execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit' });
}
