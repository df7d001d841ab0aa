// `kiln chat --model DIR`: an interactive chat in the terminal. Each turn is rendered with the model's chat
// template (a plain "User:/Assistant:" one for base models) and the reply streams as it is generated.
// Commands: /reset forgets the conversation, /exit (or end of input) quits; Ctrl-C stops a reply, or quits at the
// prompt. Works with piped stdin too.

import type { Command } from 'commander';
import { createInterface } from 'node:readline';
import * as kiln from '../index.js';
import { openModel, samplingFlags, samplingOptions, VERIFY_HELP, type SamplingFlags } from './generate.js';

export function register(program: Command): void {
  samplingFlags(program
    .command('chat')
    .description('Chat with a model in the terminal, using its chat template (base models get a plain User/Assistant one). ' +
      'Type /reset to start over, /exit or Ctrl-D to quit.')
    .requiredOption('--model <dir>', 'a run folder (its best checkpoint), a frozen model folder or a Hugging Face GPT-2 or LlamaForCausalLM folder')
    .option('--system <text>', 'a system message that opens the conversation')
    .option('--no-verify', VERIFY_HELP), { maxTokens: 200 })
    .action(async (f: SamplingFlags & { model: string; system?: string; verify: boolean }) => {
      const m = openModel(f.model, f.verify);
      const template = new kiln.infer.ChatTemplate(m.chatTemplate, m.specialTokens);
      const context = m.model.config.context;
      const interactive = process.stdin.isTTY === true;
      const out = process.stdout;
      out.write(`kiln chat: ${m.name} (${m.kind !== 'model' ? `checkpoint step ${m.step ?? '?'}` : 'model folder'}, ` +
        `context ${context}, ${template.isDefault ? 'plain default template' : 'its chat template'}). /reset starts over, /exit quits.\n`);
      const start: kiln.infer.ChatMessage[] = f.system ? [{ role: 'system', content: f.system }] : [];
      let history = [...start];
      const rl = createInterface({ input: process.stdin, output: interactive ? out : undefined, terminal: interactive });
      const ask = (): void => { if (interactive) rl.prompt(); };
      // Ctrl-C stops the reply being generated; at the prompt it quits.
      let replying: AbortController | null = null;
      rl.on('SIGINT', () => {
        if (replying) replying.abort();
        else rl.close();
      });
      rl.setPrompt('you> ');
      if (!interactive) out.write('you> ');
      ask();
      for await (const raw of rl) {
        const line = raw.trim();
        if (!interactive) out.write(`${line}\n`);
        if (line === '/exit' || line === '/quit') break;
        if (line === '/reset') {
          history = [...start];
          out.write('(conversation cleared)\n');
        } else if (line !== '') {
          history.push({ role: 'user', content: line });
          // Oldest turns go first when the conversation outgrows the context (the system message stays).
          let ids: number[] | null = null;
          for (;;) {
            try {
              ids = template.encode(history, m.tokenizer); // typed text is plain text, as in serve
            } catch (err) {
              out.write(`(cannot use that message: ${(err as Error).message})\n`);
              history.pop();
              ids = null;
              break;
            }
            if (ids.length + Math.min(16, f.maxTokens) <= context) break;
            const first = history.findIndex((msg) => msg.role !== 'system');
            if (first < 0 || history.length - first <= 1) {
              out.write(`(that message is too long for the model's context of ${context} tokens)\n`);
              history.pop();
              ids = null;
              break;
            }
            history.splice(first, history[first + 1]?.role === 'assistant' ? 2 : 1);
          }
          if (ids) {
            out.write('assistant> ');
            let reply = '';
            replying = new AbortController();
            const signal = replying.signal;
            for await (const c of kiln.infer.streamGenerate(m.model, m.tokenizer, ids, { ...samplingOptions(f), stop: template.stops, signal })) {
              // The reply's leading blank space (the template ends in "Assistant:") is not shown.
              const text = reply.trim() === '' ? c.text.trimStart() : c.text;
              out.write(text);
              reply += c.text;
            }
            replying = null;
            out.write(signal.aborted ? ' (stopped)\n' : '\n');
            history.push({ role: 'assistant', content: reply.trim() });
          }
        }
        if (!interactive) out.write('you> ');
        ask();
      }
      if (!interactive) out.write('\n');
      rl.close();
    });
}
