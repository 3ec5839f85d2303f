// Types of native/install-policy.mjs for the TypeScript tests.
export declare const PREBUILT_ARCHS: string[];
export declare function prebuiltDir(platform?: string, arch?: string): string;
export declare function nvidiaDriverPresent(env?: Record<string, string | undefined>): boolean;
export declare function cudaMode(value: string | undefined): '0' | '1' | undefined;
export interface InstallFacts {
  env: Record<string, string | undefined>;
  force: boolean;
  prebuild: boolean;
  driver: boolean;
  localBuild: boolean;
  prebuilt: boolean;
}
export declare function decideInstall(facts: InstallFacts): { action: 'skip' | 'build' | 'use-prebuilt'; reason: string };
