// Settings objects: a job's defaults are defined once, and an input's undefined fields fall back to them.

/** The defaults overridden by every field of input that is not undefined. */
export function withDefaults<D extends object, I extends object>(defaults: D, input: I): D & I {
  const given = Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined));
  return { ...defaults, ...given } as D & I;
}

/** What a job records about how it was started (manifest.json); not settings. */
export interface RunInfo {
  /** The tool version (package.json); 'unknown' when not given. */
  toolVersion?: string;
  /** The command line (default: process.argv after the script). */
  argv?: string[];
}
