// Run the paro CLI from the TypeScript sources (development: `npx tsx scripts/paro-dev.ts eval ...`).
import { main } from '../src/cli/paro.js';

await main(process.argv);
