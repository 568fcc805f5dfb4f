// `npm run lint`'s repository check: fails when a tracked file reads a path outside the repository, so the suite never
// again passes only on the machine it was written on. Plain JavaScript because lint runs before the TypeScript build.
//
// Usage: node scripts/check-outside-paths.mjs [repository root, default: this script's repository]
// Prints one line per offence (file:line: what and why) and exits 1 when there is any.
import { execFileSync } from 'node:child_process';
import console from 'node:console';
import { readFileSync } from 'node:fs';
import { dirname, join, posix, resolve } from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

/** Files that may mention such paths without reading them: prose, and third-party fixtures kept verbatim. */
const EXEMPT = [/^docs\//, /\.md$/i, /^test\/fixtures\//, /(^|\/)package-lock\.json$/, /(^|\/)LICEN[CS]E[^/]*$/i];

/** A path that climbs out of the repository into a neighbouring folder (the old `../shared` reference material). */
const SIBLING_FOLDER = /\.\.[\\/]shared\b/;

/**
 * An absolute path into a home, work or temporary directory of some machine, where a path starts: after a quote,
 * whitespace, `=`, `:`, a bracket or a comma, or as a file URL. `https://host/work/x` is a URL path, not matched.
 */
const MACHINE_PATH = /(?:^|[\s'"`=:,([{]|file:\/\/)(\/(?:home|root|work|tmp|Users|var\/tmp)(?=[/'"`\s]|$)[^\s'"`]*)/;

/** `new URL('<relative>', import.meta.url)`: resolved from where the file runs, it must stay inside the repository. */
const MODULE_RELATIVE_URL = /new URL\(\s*(['"`])(\.{1,2}\/[^'"`]*)\1\s*,\s*import\.meta\.url\s*\)/g;

const COMMENT_LINE = /^\s*(?:\/\/|\/\*|\*|#(?!!))/;

/** The folder a file's code runs from: TypeScript is compiled to `dist/` with the same layout (tsconfig rootDir "."). */
function runtimeDir(file) {
  const dir = posix.dirname(file);
  return /\.(?:m|c)?ts$/.test(file) && !file.endsWith('.d.ts') ? posix.join('dist', dir) : dir;
}

/** Every offence in one file's text, as `line: message`. */
export function offencesIn(file, text) {
  const found = [];
  text.split('\n').forEach((line, index) => {
    const at = `${file}:${index + 1}`;
    if (COMMENT_LINE.test(line)) return;
    if (SIBLING_FOLDER.test(line)) found.push(`${at}: reads a folder beside the repository (${line.match(SIBLING_FOLDER)?.[0]})`);
    const machine = line.match(MACHINE_PATH);
    if (machine) found.push(`${at}: absolute path on some machine (${machine[1]}); use a path inside the repository or os.tmpdir()`);
    for (const match of line.matchAll(MODULE_RELATIVE_URL)) {
      const target = posix.normalize(posix.join(runtimeDir(file), match[2]));
      if (target === '..' || target.startsWith('../')) found.push(`${at}: ${match[2]} resolves outside the repository (from ${runtimeDir(file)}/)`);
    }
  });
  return found;
}

/** Tracked files (git's index) that are not exempt. */
function trackedFiles(root) {
  const listing = execFileSync('git', ['-C', root, 'ls-files', '-z'], { encoding: 'utf8' });
  return listing.split('\0').filter((file) => file !== '' && !EXEMPT.some((pattern) => pattern.test(file)));
}

function main() {
  const root = resolve(process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), '..'));
  let files;
  try {
    files = trackedFiles(root);
  } catch (err) {
    console.error(`check-outside-paths: cannot list the tracked files of ${root} (is it a git checkout?): ${err.message}`);
    process.exitCode = 2;
    return;
  }
  const offences = [];
  for (const file of files) {
    let text;
    try {
      text = readFileSync(join(root, file), 'utf8');
    } catch {
      continue; // deleted in the working tree but still in the index: nothing to read
    }
    if (text.includes('\0')) continue; // binary
    offences.push(...offencesIn(file, text));
  }
  if (offences.length > 0) {
    console.error(`check-outside-paths: ${offences.length} reference(s) to paths outside the repository:`);
    for (const offence of offences) console.error(`  ${offence}`);
    process.exitCode = 1;
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
