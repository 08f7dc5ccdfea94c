/**
 * A TF.js weights manifest's bytes as plain typed arrays, and back, without TF.js.
 *
 * Why without TF.js: a model's weights can then be prepared (decoded, their quantized kernels
 * rebuilt: graph-model.js) on a thread that is not starting the wasm runtime, while it starts.
 * Decoding follows tf.io.decodeWeights: float32 and int32 as stored, float16 and
 * uint8/uint16 ({min, scale}) quantization expanded to float32.
 */

let float16Table = null;

/**
 * `await pause()` between steps of a long job: yields to the event loop once the current
 * slice has run 8 ms, so a page that prepares a model keeps answering taps (a cheap phone's
 * CPU makes the whole job several hundred ms).
 */
export function timeSlicer(sliceMs = 8) {
  let sliceStart = performance.now();
  return async () => {
    if (performance.now() - sliceStart < sliceMs) return;
    await (globalThis.scheduler?.yield?.() ?? new Promise((resolve) => setTimeout(resolve, 0)));
    sliceStart = performance.now();
  };
}

/** Every float16 bit pattern's float32 value (built once, 256 kB). */
function float16Values() {
  if (float16Table) return float16Table;
  float16Table = new Float32Array(65536);
  for (let bits = 0; bits < 65536; bits += 1) {
    const sign = bits & 0x8000 ? -1 : 1;
    const exponent = (bits >> 10) & 0x1f;
    const fraction = bits & 0x3ff;
    if (exponent === 0) float16Table[bits] = sign * 2 ** -14 * (fraction / 1024);
    else if (exponent === 0x1f) float16Table[bits] = fraction ? NaN : sign * Infinity;
    else float16Table[bits] = sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
  }
  return float16Table;
}

/** float16 bit patterns -> their float32 values (weights here, open-set arrays in openset.js). */
export function decodeFloat16(halves) {
  const table = float16Values();
  const values = new Float32Array(halves.length);
  for (let i = 0; i < halves.length; i += 1) values[i] = table[halves[i]];
  return values;
}

const size = (shape) => shape.reduce((product, dim) => product * dim, 1);

function decodeQuantized(bytes, offset, count, { dtype, min, scale }) {
  if (dtype === 'float16') {
    const halves = new Uint16Array(bytes.slice(offset, offset + 2 * count).buffer);
    return { values: decodeFloat16(halves), length: 2 * count };
  }
  const values = new Float32Array(count);
  if (dtype === 'uint8' || dtype === 'uint16') {
    const width = dtype === 'uint8' ? 1 : 2;
    const codes = width === 1 ? bytes.subarray(offset, offset + count)
      : new Uint16Array(bytes.slice(offset, offset + 2 * count).buffer);
    for (let i = 0; i < count; i += 1) values[i] = codes[i] * scale + min;
    return { values, length: width * count };
  }
  throw new Error(`weights quantized as ${dtype} are not supported`);
}

/**
 * The tensors of `weightData` described by `weightSpecs`:
 * Map name -> {shape, dtype: 'float32' | 'int32', values: Float32Array | Int32Array}.
 */
export async function decodeWeights(weightData, weightSpecs, pause = timeSlicer()) {
  const bytes = new Uint8Array(weightData);
  const tensors = new Map();
  let offset = 0;
  for (const spec of weightSpecs) {
    await pause();
    const count = size(spec.shape);
    let decoded;
    if (spec.quantization) {
      if (spec.dtype !== 'float32') throw new Error(`quantized ${spec.dtype} weights are not supported`);
      decoded = decodeQuantized(bytes, offset, count, spec.quantization);
    } else if (spec.dtype === 'float32' || spec.dtype === 'int32') {
      const copy = bytes.slice(offset, offset + 4 * count).buffer; // aligned for the view
      decoded = { values: spec.dtype === 'float32' ? new Float32Array(copy) : new Int32Array(copy), length: 4 * count };
    } else {
      throw new Error(`weights of type ${spec.dtype} are not supported`);
    }
    if (offset + decoded.length > bytes.length) throw new Error(`the weights end before ${spec.name}`);
    tensors.set(spec.name, { shape: spec.shape, dtype: spec.dtype === 'int32' ? 'int32' : 'float32', values: decoded.values });
    offset += decoded.length;
  }
  return tensors;
}

/** [{name, shape, dtype, values}] -> {specs, data}: float32 and int32, as stored by TF.js. */
export function encodeWeights(named) {
  const total = named.reduce((sum, tensor) => sum + tensor.values.byteLength, 0);
  const data = new Uint8Array(total);
  const specs = [];
  let offset = 0;
  for (const { name, shape, dtype, values } of named) {
    data.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), offset);
    offset += values.byteLength;
    specs.push({ name, shape, dtype });
  }
  return { specs, data: data.buffer };
}
