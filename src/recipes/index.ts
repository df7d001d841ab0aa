// recipes: the pipelines as library functions. The `kiln` command only parses flags and calls them.
// Exported as kiln.recipes: kiln.recipes.pretrain.pretrain(settings), kiln.recipes.finetune.finetune(options).

export * as finetune from './finetune/index.js';
export * as pretrain from './pretrain.js';
