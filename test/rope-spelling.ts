// The two spellings of a checkpoint's RoPE settings in config.json (transformers 4.x: rope_theta + rope_scaling;
// transformers 5: rope_parameters), converted both ways so tests can show that either spelling loads the same.
type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** transformers-5 spelling → 4.x: top-level rope_theta plus rope_scaling ({rope_type, ...} or null). */
export function ropeConfigToLegacy(raw: Json): Json {
  const out: Json = { ...raw };
  const params = raw.rope_parameters;
  delete out.rope_parameters;
  if (!isObject(params)) return out;
  const { rope_theta: theta, ...rest } = params;
  if (theta !== undefined) out.rope_theta = theta;
  const type = rest.rope_type ?? rest.type ?? 'default';
  out.rope_scaling = type === 'default' ? null : { ...rest };
  return out;
}

/** 4.x spelling → transformers 5: rope_parameters {rope_theta, rope_type, ...}; drops rope_theta and rope_scaling. */
export function ropeConfigToV5(raw: Json): Json {
  const out: Json = { ...raw };
  if (isObject(raw.rope_parameters)) return out;
  delete out.rope_theta;
  delete out.rope_scaling;
  const params: Json = {};
  if (raw.rope_theta !== undefined) params.rope_theta = raw.rope_theta;
  if (isObject(raw.rope_scaling)) {
    const { type, rope_type: ropeType, ...rest } = raw.rope_scaling;
    params.rope_type = ropeType ?? type ?? 'default';
    Object.assign(params, rest);
  } else {
    params.rope_type = 'default';
  }
  out.rope_parameters = params;
  return out;
}
