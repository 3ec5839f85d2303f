// `paro eval`: flags → job settings (defaults live in src/jobs/eval.ts), a progress bar over the windows.
import type { Backend } from '../engine/backend.js';
import { runEvalJob, type EvalJob, type EvalReport } from '../jobs/eval.js';
import { Progress } from './progress.js';

export function runEval(be: Backend, job: EvalJob, showProgress = true): EvalReport {
  let bar: Progress | null = null;
  return runEvalJob(be, job, {
    onStart: (n) => { if (showProgress) bar = new Progress('eval windows', n); },
    onProgress: (done) => bar?.update(done),
    onEnd: () => bar?.stop(),
  });
}
