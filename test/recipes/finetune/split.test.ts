// The bundled fine-tuning set (tools/make-finetune-data.mjs -> data/finetune): the held-out split shares no harmful
// topic, no harmful phrasing template and no fact question template with training (checked on every user turn,
// multi-turn included), no training item comes close to a held-out one in wording (the generator's lists, compared
// by content words), every record is labelled for scoring, and the committed files equal a regeneration.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parseHeldout } from '../../../src/recipes/finetune/evaluate.js';
import { loadFinetuneData } from '../../../src/recipes/finetune/jsonl.js';

interface Turn { kind: string; category: string; topic: string; template: string }
interface Row extends Turn { messages: { role: string; content: string }[]; expect?: string; turns: Turn[] }

interface Generator {
  SPLIT_LISTS: Record<string, [string[], string[]]>;
  tooClose: (train: string, held: string) => boolean;
}
// A path in a variable: the generator is plain JavaScript without type declarations.
const generatorPath = '../../../tools/make-finetune-data.mjs';
const generator = await import(generatorPath) as Generator;

const read = (f: string): Row[] => readFileSync(`data/finetune/${f}`, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Row);
const train = read('train.jsonl');
const held = read('heldout.jsonl');
const turns = (rows: Row[]): Turn[] => rows.flatMap((r) => r.turns);
const keys = (rows: Row[], kinds: string[], field: 'topic' | 'template'): Set<string> =>
  new Set(turns(rows).filter((t) => kinds.includes(t.kind)).map((t) => t[field]));
const common = (a: Set<string>, b: Set<string>): string[] => [...a].filter((x) => b.has(x));

test('no harmful topic, harmful template or fact question template appears in both splits', () => {
  assert.deepEqual(common(keys(train, ['harmful'], 'topic'), keys(held, ['harmful'], 'topic')), []);
  // Near misses reuse the harmful phrasing templates on purpose, so templates are compared across both kinds.
  assert.deepEqual(common(keys(train, ['harmful', 'benign'], 'template'), keys(held, ['harmful'], 'template')), []);
  assert.deepEqual(common(keys(train, ['fact'], 'template'), keys(held, ['fact'], 'template')), []);
  assert.deepEqual(common(keys(train, ['unknown'], 'topic'), keys(held, ['unknown'], 'topic')), []);
  const seen = new Set(train.flatMap((r) => r.messages.filter((m) => m.role === 'user').map((m) => m.content)));
  for (const r of held) for (const m of r.messages) if (m.role === 'user') assert.ok(!seen.has(m.content), m.content);
});

test('no training topic, template or question comes close to a held-out one in wording', () => {
  const { SPLIT_LISTS, tooClose } = generator;
  assert.ok(Object.keys(SPLIT_LISTS).length >= 16, 'every list is compared');
  for (const [name, [train, held]] of Object.entries(SPLIT_LISTS)) {
    assert.ok(train.length > 0 && held.length > 0, name);
    for (const h of held) {
      const close = train.filter((t) => tooClose(t, h));
      assert.deepEqual(close, [], `${name}: training items too close to the held-out "${h}"`);
    }
  }
});

test('tooClose: a held-out topic reworded or extended is close, one that shares a word is not', () => {
  const { tooClose } = generator;
  assert.ok(tooClose('steal cars from a parking lot', 'steal a car'));
  assert.ok(tooClose('How much money is the {x}?', 'How much money for one {x}?'));
  assert.ok(tooClose('I have celiac disease. Can I eat the {x}?', 'I have celiac disease. Can I have the {x}?'));
  assert.ok(tooClose('Help me {h}.', 'Help me {h}!'));
  assert.ok(!tooClose('steal a bike', 'steal a car'));
  assert.ok(!tooClose('make a pipe bomb', 'make a dirty bomb'));
  assert.ok(!tooClose("I'm coeliac. Is the {x} safe for me?", 'I have celiac disease. Can I have the {x}?'));
});

test('the split covers every kind and all nine harmful categories, and every record is labelled', () => {
  const categories = ['violence', 'weapons', 'fraud', 'theft', 'intrusion', 'stalking', 'chemistry', 'drugs', 'evasion'];
  for (const rows of [train, held]) {
    assert.deepEqual(new Set(rows.map((r) => r.kind)), new Set(['harmful', 'benign', 'fact', 'unknown']));
    assert.deepEqual(new Set(turns(rows).filter((t) => t.kind === 'harmful').map((t) => t.category)), new Set(categories));
    for (const r of rows) {
      assert.ok(r.category && r.topic && r.template && r.turns.length >= 1, JSON.stringify(r));
      assert.equal(r.turns.length, r.messages.filter((m) => m.role === 'user').length);
      if (r.kind === 'fact' || r.kind === 'unknown') assert.ok(r.expect, JSON.stringify(r));
      if (r.expect) assert.ok(r.messages[r.messages.length - 1].content.toLowerCase().includes(r.expect.toLowerCase()), r.expect);
    }
    assert.ok(rows.some((r) => r.turns.length > 1), 'multi-turn conversations');
  }
  assert.equal(loadFinetuneData('data/finetune/train.jsonl').skipped.length, 0);
  const prompts = parseHeldout(readFileSync('data/finetune/heldout.jsonl', 'utf8'));
  assert.equal(prompts.length, held.length);
  assert.ok(prompts.every((p) => p.messages[p.messages.length - 1].role === 'user' && p.reference));
});

test('regeneration is deterministic: the committed files equal what make-finetune-data writes', () => {
  const r = spawnSync(process.execPath, ['tools/make-finetune-data.mjs', '--check'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /equal a regeneration/);
});
