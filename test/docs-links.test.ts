/**
 * README.md and docs/*.md stand on their own: every relative link resolves to a file inside the repository (and a
 * `#fragment` to a heading of that file), and no doc sends readers to material outside it.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative, sep } from 'node:path';
import { describe, it } from 'node:test';
import { headings, REPO_ROOT } from './support/markdown.js';

const DOCS = ['README.md', 'test/fixtures/schemas/README.md', ...readdirSync(join(REPO_ROOT, 'docs')).filter((name) => name.endsWith('.md')).map((name) => `docs/${name}`)];

/** GitHub's heading anchors: lower-cased, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading.toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
}

function anchorsOf(file: string): Set<string> {
  const text = readFileSync(file, 'utf8');
  return new Set([1, 2, 3, 4, 5, 6].flatMap((level) => headings(text, level)).map(slug));
}

/** Link targets of inline Markdown links outside code blocks and code spans. */
function linkTargets(markdown: string): string[] {
  const prose = markdown.replace(/^```[\s\S]*?^```/gm, '').replace(/`[^`\n]*`/g, '');
  return [...prose.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)].map((match) => match[1] as string);
}

describe('links in README.md and docs/', () => {
  it('the anchor rule matches GitHub for the headings the docs link to', () => {
    assert.equal(slug('Claims a rule can match (`rules[].when`)'), 'claims-a-rule-can-match-ruleswhen');
    assert.equal(slug('Broker JWT claims'), 'broker-jwt-claims');
  });

  for (const doc of DOCS) {
    it(`${doc}: every relative link resolves to a file in the repository`, () => {
      const text = readFileSync(join(REPO_ROOT, doc), 'utf8');
      const problems: string[] = [];
      for (const target of linkTargets(text)) {
        if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto: …
        const [path = '', fragment] = target.split('#');
        const file = path === '' ? join(REPO_ROOT, doc) : normalize(join(REPO_ROOT, dirname(doc), decodeURIComponent(path)));
        const inside = relative(REPO_ROOT, file);
        if (inside.startsWith('..') || inside.startsWith(sep)) problems.push(`${target}: outside the repository`);
        else if (!existsSync(file)) problems.push(`${target}: no such file (${inside})`);
        else if (fragment && statSync(file).isFile() && file.endsWith('.md') && !anchorsOf(file).has(fragment)) problems.push(`${target}: no heading #${fragment} in ${inside}`);
      }
      assert.deepEqual(problems, [], `${doc} has broken links`);
    });
  }

  it('no doc points readers to a shared folder or a contract outside the repository', () => {
    for (const doc of DOCS) {
      const text = readFileSync(join(REPO_ROOT, doc), 'utf8');
      assert.doesNotMatch(text, /shared folder|CONTRACT\.md|\.\.\/shared\//, doc);
    }
  });
});
