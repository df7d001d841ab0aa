// nn: modules, layers, initialisers and functional losses/activations. Exported as kiln.nn.

export { Module, ModuleList, ModuleDict, Parameter, type StateDict, type LoadOptions, type LoadResult } from './module.js';
export { Linear, type LinearOptions } from './layers/linear.js';
export { Embedding } from './layers/embedding.js';
export { LayerNorm, RMSNorm, type LayerNormOptions } from './layers/norm.js';
export { ReLU, Tanh, Sigmoid, SiLU, GELU, Identity, Dropout } from './layers/activation.js';
export { Conv2d, type Conv2dLayerOptions } from './layers/conv.js';
export { MaxPool2d, AvgPool2d, AdaptiveAvgPool2d } from './layers/pool.js';
export { BatchNorm1d, BatchNorm2d, type BatchNormLayerOptions } from './layers/batch-norm.js';
export { Flatten } from './layers/flatten.js';
export { Sequential, MLP, type MLPOptions, type Forward } from './layers/sequential.js';
export { RNN, LSTM, GRU, type RNNOptions, type RNNBaseOptions, type Kind as RNNKind } from './layers/rnn.js';
export * as init from './init.js';
export * as functional from './functional.js';
export { freezeParameters, namePattern, allParameterNames, type FreezeReport } from './freeze.js';
export { applyLoRA, mergeLoRA, LoRALinear, loraLayers, adapterStateDict, adapterConfig, loadAdapter, weightLayoutOf, targetMatches, type LoRAOptions, type LoRAReport, type AdapterConfig, type WeightLayout, type LinearLike } from './lora.js';
export { checkpoint } from '../tensor/checkpoint.js';
