// Entry point bundled for machines without node_modules: `node .gpu/cli.mjs paro|dflash <command> ...`.
import { main as paro } from '../src/cli/paro.js';
import { main as dflash } from '../src/cli/dflash.js';

const [tool, ...rest] = process.argv.slice(2);
const argv = [process.argv[0], tool ?? 'paro', ...rest];
if (tool === 'dflash') await dflash(argv);
else if (tool === 'paro') await paro(argv);
else {
  process.stderr.write('usage: node cli.mjs paro|dflash <command> [options]\n');
  process.exitCode = 2;
}
