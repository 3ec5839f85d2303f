// The release bundle's model card: Hub front matter that parses as YAML with the fields the Hub reads, the figures and
// gates it was given, and serving instructions for the drafter only when there is one.
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { detectLicense, renderModelCard, type ModelCardInput } from '../src/jobs/model-card.js';

function input(withDrafter: boolean): ModelCardInput {
  return {
    name: 'acme/Qwen3-8B-PARO',
    source: { repoId: 'Qwen/Qwen3-8B', revision: 'main', commit: '9c925d64d72725edaf899c6cb9c377fd0709d9c5', architecture: 'Qwen3ForCausalLM' },
    quantization: { method: 'paro', bits: 4, groupSize: 128, krot: 8, settings: { samples: 128, seq_len: 512, epochs: '10,10', calib: 'calib.parquet', seed: 0 } },
    quality: { data: 'eval.jsonl: 40 windows of 512 tokens', fpPerplexity: 9.7254, quantizedPerplexity: 10.0131, kl: 0.031207, top1Agreement: 0.9123 },
    gates: [
      { name: 'max_ppl_increase', value: (10.0131 - 9.7254) / 9.7254, limit: 0.05, passed: true },
      { name: 'min_top1_agreement', value: 0.9123, limit: 0.9, passed: true },
      ...(withDrafter ? [{ name: 'min_tau', value: 3.41, limit: 3, passed: true }] : []),
    ],
    drafter: withDrafter
      ? { dir: 'drafter', blockSize: 16, layers: 5, targetLayerIds: [1, 9, 17, 25, 33], tau: 3.41, tauData: '32 prompts, greedy', trainingPrompts: 'prompts.jsonl', remoteCode: false }
      : undefined,
    license: { id: 'apache-2.0', files: ['LICENSE'] },
    tool: { name: 'paro-dflash', version: '0.1.0' },
    modelDir: 'model',
  };
}

function frontMatter(card: string): Record<string, unknown> {
  const m = /^---\n([\s\S]*?)\n---\n/.exec(card);
  expect(m).not.toBeNull();
  return parse(m![1]) as Record<string, unknown>;
}

describe('renderModelCard', () => {
  it('renders a card without a drafter: metadata, settings, figures, gates, serving, licence', () => {
    const card = renderModelCard(input(false));
    expect(frontMatter(card)).toEqual({
      license: 'apache-2.0',
      base_model: ['Qwen/Qwen3-8B'],
      base_model_relation: 'quantized',
      library_name: 'transformers',
      pipeline_tag: 'text-generation',
      tags: ['paroquant', 'int4', 'quantized', 'paro-dflash'],
    });
    expect(card).toContain('# acme/Qwen3-8B-PARO');
    expect(card).toContain('| Commit | `9c925d64d72725edaf899c6cb9c377fd0709d9c5` |');
    expect(card).toContain('| Perplexity | 9.7254 | 10.0131 (+2.96 %) |');
    expect(card).toContain('| Top-1 agreement with FP | 100 % | 91.23 % |');
    expect(card).toMatch(/\| `max_ppl_increase` \| 0\.02958 \| ≤ 0\.05 \| pass \|/);
    expect(card).toMatch(/\| `min_top1_agreement` \| 0\.9123 \| ≥ 0\.9 \| pass \|/);
    expect(card).toContain('hf download acme/Qwen3-8B-PARO --local-dir Qwen3-8B-PARO');
    expect(card).toContain('vllm serve Qwen3-8B-PARO/model --port 8000');
    expect(card).toContain('pip install "paroquant[vllm]"');
    expect(card).toContain('`model/LICENSE`');
    expect(card).not.toMatch(/speculative|## Drafter|drafter\//i);
  });

  it('adds τ, the drafter and its vLLM / SGLang / Transformers instructions when there is one', () => {
    const card = renderModelCard(input(true));
    const meta = frontMatter(card);
    expect(meta.tags).toEqual(['paroquant', 'int4', 'quantized', 'paro-dflash', 'dflash', 'speculative-decoding']);
    expect(card).toContain('**τ = 3.41**');
    expect(card).toContain('"method": "dflash", "model": "Qwen3-8B-PARO/drafter", "num_speculative_tokens": 15');
    expect(card).toContain('--speculative-algorithm DFLASH');
    expect(card).toContain('--speculative-num-draft-tokens 16');
    expect(card).toContain('from dflash.model import DFlashDraftModel');
    const remote = renderModelCard({ ...input(true), drafter: { ...input(true).drafter!, remoteCode: true } });
    expect(remote).toContain('trust_remote_code=True');
    expect(remote).not.toContain('from dflash.model import');
  });

  it('handles a local source, a custom licence and no figures', () => {
    const card = renderModelCard({
      ...input(false),
      name: undefined,
      source: { localName: 'tiny-qwen3', architecture: 'Qwen3ForCausalLM' },
      quality: undefined,
      gates: [],
      license: { id: 'other', name: 'qwen-research', link: 'model/LICENSE', files: ['LICENSE'] },
    });
    const meta = frontMatter(card);
    expect(meta.base_model).toBeUndefined();
    expect(meta).toMatchObject({ license: 'other', license_name: 'qwen-research', license_link: 'model/LICENSE' });
    expect(card).toContain('# tiny-qwen3-PARO');
    expect(card).toContain('vllm serve ./model --port 8000');
    expect(card).not.toContain('hf download');
    expect(card).not.toContain('## Release gates');
    expect(card).not.toContain('## Quality');
    const unlicensed = renderModelCard({ ...input(false), license: undefined });
    expect(frontMatter(unlicensed).license).toBeUndefined();
    expect(unlicensed).toMatch(/no licence file was found/);
  });

  it('marks a failed gate', () => {
    const i = input(false);
    i.gates = [{ name: 'max_kl', value: 0.2, limit: 0.1, passed: false }];
    expect(renderModelCard(i)).toContain('| `max_kl` | 0.2 | ≤ 0.1 | FAIL |');
  });
});

describe('detectLicense', () => {
  it('reads the front matter of the source README first, then recognises LICENSE texts', () => {
    expect(detectLicense({ readme: '---\nlicense: apache-2.0\npipeline_tag: text-generation\n---\n# Qwen3', licenseText: 'MIT License' })).toEqual({ id: 'apache-2.0' });
    expect(detectLicense({ readme: '---\nlicense: other\nlicense_name: qwen-research\n---\n' })).toEqual({ id: 'other', name: 'qwen-research' });
    expect(detectLicense({ licenseText: '\n                                 Apache License\n                           Version 2.0, January 2004' })).toEqual({ id: 'apache-2.0' });
    expect(detectLicense({ licenseText: 'LLAMA 3.1 COMMUNITY LICENSE AGREEMENT\nLlama 3.1 Version Release Date: July 23, 2024' })).toEqual({ id: 'llama3.1' });
    expect(detectLicense({ readme: '# no front matter', licenseText: 'Some bespoke terms' })).toBeUndefined();
  });
});
