#!/usr/bin/env node
/*
 * Builds what Node cannot do itself, from native/, on this machine:
 *
 * 1. fuse-native with per-file direct I/O. fuse-native 2.2.6 passes only the handle
 *    number back from open/create, so a file system cannot ask for direct I/O on one
 *    open file. Pipe-mode (grid buffer) handles need it: through the page cache the
 *    kernel stops a reader at the size getattr reported. native/fuse-native-patches.cjs
 *    describes the change: a handle number with bit 30 set asks for direct_io. The
 *    binding is rebuilt from its own source with node-gyp (npm's bundled copy).
 *    Without a compiler the prebuilt binding stays, and the mount falls back to
 *    direct I/O on the whole mount when the name service uses buffers (it says so).
 * 2. The preload shim of `kangaroo run` (native/kangaroo-preload.c): `make -C native`
 *    gives native/build/libkangaroo-preload.so. Without make or a C compiler only
 *    `kangaroo run` is missing, and it says so. (Argument `shim`: build only this.)
 * 3. The allocator tuning module relays and mounts load (native/malloc-tuning.c):
 *    `make -C native malloc` gives native/build/kangaroo-malloc.node. Without it (no
 *    compiler, no Node headers) they run with glibc's defaults, and say so in their
 *    debug log.
 *
 * Never fails the install: it reports what it could not build and why.
 */
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const say = (m) => process.stderr.write(`build-native: ${m}\n`);

function nodeGyp() {
  const candidates = [];
  try {
    const npmCli = fs.realpathSync(execFileSync('bash', ['-c', 'command -v npm']).toString().trim());
    candidates.push(path.join(path.dirname(npmCli), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  } catch {}
  candidates.push('/usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js');
  candidates.push(path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  return candidates.find((c) => fs.existsSync(c));
}

function nodeHeaders() {
  for (const d of [path.join(path.dirname(process.execPath), '..'), '/usr', '/usr/local']) {
    if (fs.existsSync(path.join(d, 'include', 'node', 'node_api.h'))) return d;
  }
  return undefined;
}

function buildFuseNative() {
  let dir;
  try {
    dir = path.dirname(require.resolve('fuse-native/package.json', { paths: [root] }));
  } catch {
    say('fuse-native is not installed; the mount will not be available');
    return;
  }
  const { patchSource, isPatched, VERSION } = require(path.join(root, 'native', 'fuse-native-patches.cjs'));
  const src = path.join(dir, 'fuse-native.c');
  const built = path.join(dir, 'build', 'Release', 'fuse.node');
  const stamp = path.join(dir, 'build', 'Release', 'kangaroo-direct-io');
  // the patches always apply to the source as published, kept beside it the first time
  const pristine = `${src}.orig`;
  if (!fs.existsSync(pristine)) fs.copyFileSync(src, pristine);
  const stamped = fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8').includes(VERSION);
  if (stamped && fs.existsSync(built) && isPatched(fs.readFileSync(src, 'utf8'))) {
    say('fuse-native with per-file direct I/O and write-behind is already built');
    return;
  }
  try {
    fs.writeFileSync(src, patchSource(fs.readFileSync(pristine, 'utf8')));
  } catch (err) {
    return say(`${err.message}; reinstall it (rm -rf node_modules/fuse-native && npm install). Keeping the binding as it is`);
  }
  const gyp = nodeGyp();
  const headers = nodeHeaders();
  if (!gyp) return say('node-gyp not found: keeping the prebuilt fuse-native (pipe mode uses mount-wide direct I/O)');
  try {
    const args = [gyp, 'rebuild', ...(headers ? [`--nodedir=${headers}`] : [])];
    execFileSync(process.execPath, args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    fs.writeFileSync(stamp, `fuse-native rebuilt with: ${VERSION}\n`);
    say('built fuse-native with per-file direct I/O and write-behind');
  } catch (err) {
    fs.rmSync(path.join(dir, 'build'), { recursive: true, force: true });
    say(`could not build fuse-native (${String(err.stderr || err.message).trim().split('\n').pop()}); keeping the prebuilt binding (pipe mode uses mount-wide direct I/O)`);
  }
}

function has(cmd) {
  try {
    execFileSync('bash', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function buildPreloadShim() {
  const hint = 'kangaroo run (literal /kangaroo/HOST/PATH names) is unavailable; everything else works. Install gcc and make (scripts/setup.sh does), then run: node scripts/build-native.cjs';
  const cc = process.env.CC || 'cc';
  if (!has('make')) return say(`make not found: the preload shim was not built. ${hint}`);
  if (!has(cc)) return say(`no C compiler (${cc}) found: the preload shim was not built. ${hint}`);
  const dir = path.join(root, 'native');
  try {
    execFileSync('make', ['-q', '-C', dir], { stdio: 'ignore' });
    return say('the preload shim native/build/libkangaroo-preload.so is up to date');
  } catch {
    /* not built yet, or older than its source */
  }
  try {
    execFileSync('make', ['-C', dir, '--no-print-directory'], { stdio: ['ignore', 'ignore', 'pipe'] });
    say('built the preload shim native/build/libkangaroo-preload.so');
  } catch (err) {
    const lines = String(err.stderr || err.message).trim().split('\n').slice(-5).join('\n  ');
    say(`could not build the preload shim:\n  ${lines}\n${hint}`);
  }
}

function buildMallocTuning() {
  const cc = process.env.CC || 'cc';
  const headers = nodeHeaders();
  if (!has('make') || !has(cc) || !headers) {
    return say('the allocator tuning module was not built (it needs make, a C compiler and Node\'s headers); relays run with glibc\'s defaults');
  }
  const dir = path.join(root, 'native');
  const args = ['-C', dir, '--no-print-directory', 'malloc', `NODE_INCLUDE=${path.join(headers, 'include', 'node')}`];
  try {
    execFileSync('make', ['-q', ...args], { stdio: 'ignore' });
    return say('the allocator tuning module native/build/kangaroo-malloc.node is up to date');
  } catch {
    /* not built yet, or older than its source */
  }
  try {
    execFileSync('make', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    say('built the allocator tuning module native/build/kangaroo-malloc.node');
  } catch (err) {
    say(`could not build the allocator tuning module (${String(err.stderr || err.message).trim().split('\n').pop()}); relays run with glibc's defaults`);
  }
}

// `node scripts/build-native.cjs shim` builds only the preload shim
if (process.argv[2] !== 'shim') buildFuseNative();
buildPreloadShim();
if (process.argv[2] !== 'shim') buildMallocTuning();
