// Every command's --help: options in named groups and an Examples section whose lines run the command they document.
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { buildDflashProgram } from '../src/cli/dflash.js';
import { buildParoProgram } from '../src/cli/paro.js';
import { HELP_GROUPS } from '../src/cli/help.js';

function helpOf(cmd: Command): string {
  let out = '';
  cmd.configureOutput({ writeOut: (s) => { out += s; }, writeErr: (s) => { out += s; } });
  cmd.outputHelp();
  return out;
}

function checkCommand(tool: string, cmd: Command, groups: string[]): void {
  const help = helpOf(cmd);
  for (const g of [HELP_GROUPS.format, ...groups]) expect(help, `${tool} ${cmd.name()} --help lacks "${g}"`).toContain(`\n${g}\n`);
  const examples = help.slice(help.indexOf('\nExamples:\n'));
  expect(help).toContain('\nExamples:\n');
  const lines = examples.split('\n').filter((l) => l.trim().startsWith('$ '));
  expect(lines.length).toBeGreaterThan(0);
  for (const l of lines) {
    expect(l.trim().startsWith(`$ ${tool} ${cmd.name()} `)).toBe(true);
    // Every flag an example uses is one the command has.
    for (const flag of l.match(/\s--[a-z][a-z0-9-]*/g) ?? []) {
      const name = flag.trim();
      expect(cmd.options.some((o) => o.long === name), `${tool} ${cmd.name()}: example flag ${name} is not an option`).toBe(true);
    }
  }
  // Every option sits in a named group (the default "Options:" holds only --help).
  const ungrouped = cmd.options.filter((o) => !o.helpGroupHeading).map((o) => o.long);
  expect(ungrouped).toEqual([]);
}

describe('--help: examples and option groups', () => {
  const dflash = buildDflashProgram();
  const groups: Record<string, string[]> = {
    'generate-data': [HELP_GROUPS.io, HELP_GROUPS.generation, HELP_GROUPS.encoding, HELP_GROUPS.device],
    'train-drafter': [HELP_GROUPS.io, HELP_GROUPS.drafter, HELP_GROUPS.training, HELP_GROUPS.encoding, HELP_GROUPS.monitoring, HELP_GROUPS.device],
    eval: [HELP_GROUPS.io, HELP_GROUPS.decoding, HELP_GROUPS.encoding, HELP_GROUPS.device],
  };
  it.each(Object.keys(groups))('dflash %s', (name) => {
    const cmd = dflash.commands.find((c) => c.name() === name);
    expect(cmd).toBeDefined();
    checkCommand('dflash', cmd as Command, groups[name]);
  });
  it('covers every dflash command', () => {
    expect(dflash.commands.map((c) => c.name()).sort()).toEqual(Object.keys(groups).sort());
  });
});

describe('paro --help: examples and option groups', () => {
  const paro = buildParoProgram();
  const groups: Record<string, string[]> = {
    quantize: [HELP_GROUPS.io, HELP_GROUPS.quantization, HELP_GROUPS.optimization, HELP_GROUPS.device],
    eval: [HELP_GROUPS.io, HELP_GROUPS.evaluation, HELP_GROUPS.device],
    doctor: [],
  };
  it.each(Object.keys(groups))('paro %s', (name) => {
    const cmd = paro.commands.find((c) => c.name() === name);
    expect(cmd).toBeDefined();
    checkCommand('paro', cmd as Command, groups[name]);
  });
});
