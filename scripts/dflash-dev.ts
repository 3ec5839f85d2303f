// Run the dflash CLI from the TypeScript sources (development: `npx tsx scripts/dflash-dev.ts eval ...`).
import { main } from '../src/cli/dflash.js';

await main(process.argv);
