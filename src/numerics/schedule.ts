// Learning-rate schedules, as functions of the optimizer step (no scheduler objects to keep in sync).

/**
 * ParoQuant's per-stage cosine schedule (paroquant-spec §6.5): η(t) = lr/20 + (lr − lr/20)·(1 + cos(π·t/T))/2 for
 * t < T, else lr/20. The reference advances its scheduler after each optimizer step and the first call returns η(0),
 * so optimizer step n (1-based) uses η(max(n − 2, 0)); step 1 uses the optimizer's initial lr itself (bit-exactly lr,
 * whereas η(0) may differ from lr in the last bit). Operation order follows the reference for bit parity.
 */
export function paroCosineLr(lr: number, step1Based: number, totalSteps: number): number {
  if (!Number.isInteger(step1Based) || step1Based < 1) throw new RangeError(`step must be a 1-based integer, got ${step1Based}`);
  if (!Number.isInteger(totalSteps) || totalSteps < 1) throw new RangeError(`totalSteps must be a positive integer, got ${totalSteps}`);
  if (step1Based === 1) return lr;
  const t = step1Based - 2;
  const end = lr / 20;
  if (t >= totalSteps) return end;
  const cosVal = Math.cos((Math.PI * t) / totalSteps);
  return end + ((lr - end) * (1 + cosVal)) / 2;
}

/** Warmup length of the DFlash schedule: W = int(fraction·T) as SpecForge computes it (truncation, not rounding). */
export function warmupSteps(totalSteps: number, warmupFraction: number): number {
  return Math.floor(warmupFraction * totalSteps);
}

/**
 * DFlash schedule (dflash-spec §3.6; SpecForge CosineAnnealingWarmupLR): with W = floor(warmupFraction·T),
 * scheduler step e (0-based; optimizer step n uses e = n − 1) gives lr·(e + 1)/W for e < W, then the cosine
 * lr·(1 + cos(π·(e − W)/(T − W)))/2 from lr down to 0 (the PyTorch recursive form equals this closed form).
 * W = 0 (T < 1/fraction) means no warmup, as in SpecForge. For e ≥ T (past the last step) the result is 0.
 */
export function warmupCosineLr(lr: number, step0Based: number, totalSteps: number, warmupFraction: number): number {
  if (!Number.isInteger(step0Based) || step0Based < 0) throw new RangeError(`step must be a 0-based integer, got ${step0Based}`);
  if (!Number.isInteger(totalSteps) || totalSteps < 1) throw new RangeError(`totalSteps must be a positive integer, got ${totalSteps}`);
  if (!(warmupFraction >= 0 && warmupFraction < 1)) throw new RangeError(`warmupFraction must be in [0, 1), got ${warmupFraction}`);
  const w = warmupSteps(totalSteps, warmupFraction);
  const e = step0Based;
  if (e < w) return ((e + 1) / w) * lr;
  if (e >= totalSteps) return 0;
  return (lr * (1 + Math.cos((Math.PI * (e - w)) / (totalSteps - w)))) / 2;
}
