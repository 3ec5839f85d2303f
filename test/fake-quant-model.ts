// The model as it stands in memory at the end of optimization: the source checkpoint's embeddings, norms and head
// with every quantized linear replaced by its dense effective weight Ŵ. Used to check that the written checkpoint,
// loaded through the runtime path, is the same model.
import type { Backend, Tensor } from '../src/engine/backend.js';
import { Checkpoint } from '../src/io/checkpoint.js';
import { loadModelConfig } from '../src/io/config.js';
import { Decoder } from '../src/model/decoder.js';
import { LINEAR_KEYS, loadModelWeights, type LinearKey } from '../src/model/weights.js';

export function fakeQuantDecoder(
  be: Backend, modelDir: string, effective: { weights: Record<LinearKey, Tensor>; biases: Partial<Record<LinearKey, Tensor>> }[],
): Decoder {
  const cfg = loadModelConfig(modelDir);
  const ck = Checkpoint.open(modelDir);
  try {
    const w = loadModelWeights(be, ck, cfg, { weightDtype: 'f32' });
    w.layers.forEach((layer, l) => {
      for (const k of LINEAR_KEYS) {
        const lin = layer[k];
        be.free(lin.weight, lin.bias);
        layer[k] = { kind: 'dense', weight: effective[l].weights[k], bias: effective[l].biases[k], outFeatures: lin.outFeatures, inFeatures: lin.inFeatures };
      }
    });
    // The written checkpoint stores unquantized tensors in fp16: mirror that here.
    const f16 = (t: Tensor) => {
      const r = be.cast(t, 'f16');
      be.free(t);
      return r;
    };
    const tied = w.lmHead === w.embed;
    w.embed = f16(w.embed);
    w.lmHead = tied ? w.embed : f16(w.lmHead);
    w.finalNorm = f16(w.finalNorm);
    for (const layer of w.layers) {
      layer.inputNorm = f16(layer.inputNorm);
      layer.postNorm = f16(layer.postNorm);
      if (layer.qNorm) layer.qNorm = f16(layer.qNorm);
      if (layer.kNorm) layer.kNorm = f16(layer.kNorm);
    }
    return new Decoder(be, cfg, w);
  } finally {
    ck.close();
  }
}
