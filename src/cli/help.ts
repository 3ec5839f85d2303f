// Shared shape of every command's --help: options in named groups (commander's optionsGroup) and an Examples
// section after them, so `paro` and `dflash` help pages read alike.
import type { Command } from 'commander';

/** Option group headings, in the order they appear where a command has them. */
export const HELP_GROUPS = {
  io: 'Input and output:',
  quantization: 'Quantization:',
  optimization: 'Optimization:',
  drafter: 'Drafter:',
  training: 'Training:',
  generation: 'Generation:',
  decoding: 'Decoding:',
  encoding: 'Prompt encoding:',
  monitoring: 'Evaluation during training:',
  evaluation: 'Evaluation:',
  device: 'Device and memory:',
  format: 'Output format:',
} as const;

/** One example: the command line and what it does. */
export type HelpExample = [command: string, what: string];

/** Adds an Examples section after the options of cmd's --help. */
export function addExamples(cmd: Command, examples: HelpExample[]): Command {
  const lines = examples.flatMap(([command, what]) => [`  # ${what}`, `  $ ${command}`, '']);
  return cmd.addHelpText('after', `\nExamples:\n${lines.join('\n').trimEnd()}\n`);
}
