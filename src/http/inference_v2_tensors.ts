/**
 * Tensors of the Open Inference Protocol (KServe V2) and `predict`'s JSON,
 * both ways, with no help from the worker:
 *
 * - **Request -> sample**: the sample is a JSON object, one key per input
 *   tensor: its name -> its data as nested lists of its shape (row-major;
 *   `data` may come flat or nested). A shape of `[]` is a scalar: the value
 *   itself. Elements must fit the datatype (BOOL booleans, INT and UINT
 *   integers in range, FP numbers, BYTES strings). A BYTES input with the
 *   parameter `content_type: "json"` holds JSON text, passed on parsed.
 * - **Prediction -> outputs**: a JSON object gives one output per key, any
 *   other value one output named `output-0`. A value that is a number,
 *   boolean or string, or a rectangular nest of lists of one of them, is a
 *   tensor of that shape (a scalar has shape `[]`): BOOL, INT64 (integers
 *   only), FP64 (any number written with a fraction or exponent) or BYTES.
 *   Anything else (null, objects, ragged lists, mixed kinds) is a BYTES
 *   scalar holding its JSON text, with the parameter `content_type: "json"`.
 *
 * @module
 */
import { ApiError } from "../errors/api_error.ts";

/** The protocol's tensor element types. */
export const DATATYPES = [
  "BOOL",
  "UINT8",
  "UINT16",
  "UINT32",
  "UINT64",
  "INT8",
  "INT16",
  "INT32",
  "INT64",
  "FP16",
  "FP32",
  "FP64",
  "BYTES",
] as const;

export type Datatype = (typeof DATATYPES)[number];

/** A tensor as the protocol writes it (`$request_input`, `$response_output`). */
export interface Tensor {
  readonly name: string;
  readonly shape: number[];
  readonly datatype: Datatype;
  readonly data: unknown[];
  readonly parameters?: Record<string, string | number | boolean>;
}

/** An inference request, checked and turned into `predict`'s sample. */
export interface InferCall {
  /** The JSON sample passed to `predict`. */
  readonly sample: Record<string, unknown>;
  /** The request's `id`, echoed in the answer. */
  readonly id: string | undefined;
  /** Names of the outputs asked for; all when undefined. */
  readonly outputs: readonly string[] | undefined;
}

/** Smallest and largest value of each integer type (64-bit ones as far as a double holds them). */
const INTEGER_RANGES: Readonly<Partial<Record<Datatype, readonly [number, number]>>> = {
  UINT8: [0, 0xff],
  UINT16: [0, 0xffff],
  UINT32: [0, 0xffff_ffff],
  UINT64: [0, Number.MAX_SAFE_INTEGER],
  INT8: [-0x80, 0x7f],
  INT16: [-0x8000, 0x7fff],
  INT32: [-0x8000_0000, 0x7fff_ffff],
  INT64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
};

function badRequest(message: string): ApiError {
  return new ApiError("BAD_REQUEST", message);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Checks an inference request (`$inference_request`) and builds the sample.
 *
 * @throws {ApiError} BAD_REQUEST naming the input and field at fault
 */
export function inferCall(body: unknown): InferCall {
  if (!isRecord(body)) throw badRequest("The inference request must be a JSON object with 'inputs'");
  const { id, inputs, outputs } = body;
  if (id !== undefined && typeof id !== "string") throw badRequest("'id' must be a string");
  if (!Array.isArray(inputs) || inputs.length === 0) {
    throw badRequest("'inputs' must be a non-empty array of {name, shape, datatype, data}");
  }
  const sample: Record<string, unknown> = {};
  inputs.forEach((input, i) => {
    const { name, value } = inputValue(input, i);
    if (Object.hasOwn(sample, name)) throw badRequest(`Input '${name}' is given twice`);
    sample[name] = value;
  });
  return { sample, id, outputs: requestedOutputs(outputs) };
}

function requestedOutputs(outputs: unknown): string[] | undefined {
  if (outputs === undefined) return undefined;
  if (!Array.isArray(outputs)) throw badRequest("'outputs' must be an array of {name}");
  return outputs.map((output, i) => {
    if (!isRecord(output) || typeof output.name !== "string") {
      throw badRequest(`outputs[${i}] must be an object with a string 'name'`);
    }
    return output.name;
  });
}

/** One `$request_input` as the sample's value. */
function inputValue(input: unknown, i: number): { name: string; value: unknown } {
  if (!isRecord(input)) throw badRequest(`inputs[${i}] must be an object {name, shape, datatype, data}`);
  const { name, shape, datatype, data } = input;
  if (typeof name !== "string" || name === "") {
    throw badRequest(`inputs[${i}].name must be a non-empty string`);
  }
  const where = `Input '${name}'`;
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw badRequest(
      `${where}: 'shape' must be an array of non-negative integers, got ${JSON.stringify(shape)}`,
    );
  }
  if (!(DATATYPES as readonly unknown[]).includes(datatype)) {
    throw badRequest(
      `${where}: 'datatype' must be one of ${DATATYPES.join(", ")}, got ${JSON.stringify(datatype)}`,
    );
  }
  if (!Array.isArray(data)) throw badRequest(`${where}: 'data' must be an array`);
  const flat = data.flat(Infinity);
  const size = (shape as number[]).reduce((a, b) => a * b, 1);
  if (flat.length !== size) {
    throw badRequest(
      `${where}: shape [${shape.join(", ")}] holds ${size} elements, 'data' has ${flat.length}`,
    );
  }
  const problem = flat.findIndex((element) => !fits(element, datatype as Datatype));
  if (problem >= 0) {
    throw badRequest(
      `${where}: element ${problem} (${JSON.stringify(flat[problem])}) is not a valid ${datatype}`,
    );
  }
  const elements = isJsonText(input) ? flat.map((text, at) => parseElement(where, text as string, at)) : flat;
  return { name, value: reshape(elements, shape as number[]) };
}

/** A BYTES tensor whose elements are JSON text (`parameters.content_type` is `"json"`). */
function isJsonText(input: Record<string, unknown>): boolean {
  return input.datatype === "BYTES" && isRecord(input.parameters) && input.parameters.content_type === "json";
}

function parseElement(where: string, text: string, at: number): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw badRequest(
      `${where}: element ${at} is not JSON text (content_type "json"): ${(error as Error).message}`,
    );
  }
}

function fits(element: unknown, datatype: Datatype): boolean {
  if (datatype === "BOOL") return typeof element === "boolean";
  if (datatype === "BYTES") return typeof element === "string";
  if (typeof element !== "number" || !Number.isFinite(element)) return false;
  const range = INTEGER_RANGES[datatype];
  if (range === undefined) return true; // FP16, FP32, FP64
  return Number.isInteger(element) && element >= range[0] && element <= range[1];
}

/** `flat` (row-major) as nested lists of `shape`; the single element for shape `[]`. */
export function reshape(flat: readonly unknown[], shape: readonly number[]): unknown {
  if (shape.length === 0) return flat[0];
  const build = (offset: number, depth: number): unknown[] => {
    const length = shape[depth]!;
    if (depth === shape.length - 1) return flat.slice(offset, offset + length);
    const stride = shape.slice(depth + 1).reduce((a, b) => a * b, 1);
    return Array.from({ length }, (_, i) => build(offset + i * stride, depth + 1));
  };
  return build(0, 0);
}

/** A number the worker wrote with a fraction or an exponent (`1.0`, `3e2`): an FP64 element. */
export class Fraction {
  constructor(readonly value: number) {}
  toJSON(): number {
    return this.value;
  }
}

/**
 * Parses the worker's JSON answer, keeping which numbers were written as
 * floats ({@link Fraction}), which `JSON.parse` alone forgets (`1.0` -> `1`).
 */
export function parsePrediction(text: string): unknown {
  return JSON.parse(text, (_key, value, context?: { source?: string }) => {
    if (typeof value === "number" && context?.source !== undefined && /[.eE]/.test(context.source)) {
      return new Fraction(value);
    }
    return value;
  });
}

/** The output tensors of a prediction (parsed by {@link parsePrediction}). */
export function outputsOf(prediction: unknown): Tensor[] {
  if (isRecord(prediction) && !(prediction instanceof Fraction)) {
    return Object.entries(prediction).map(([name, value]) => tensorOf(name, value));
  }
  return [tensorOf("output-0", prediction)];
}

type Kind = "BOOL" | "INT64" | "FP64" | "BYTES";

/** One value as a tensor: see the module comment. */
export function tensorOf(name: string, value: unknown): Tensor {
  const shape: number[] = [];
  for (let level = value; Array.isArray(level); level = level[0]) {
    shape.push(level.length);
    if (level.length === 0) break;
  }
  const data: unknown[] = [];
  let kind: Kind | undefined;
  const walk = (node: unknown, depth: number): boolean => {
    if (depth < shape.length) {
      return Array.isArray(node) && node.length === shape[depth] && node.every((n) => walk(n, depth + 1));
    }
    const element = elementOf(node);
    if (element === undefined) return false;
    kind = kind === undefined ? element.kind : merge(kind, element.kind);
    if (kind === undefined) return false;
    data.push(element.value);
    return true;
  };
  if (!walk(value, 0)) {
    return {
      name,
      shape: [],
      datatype: "BYTES",
      data: [JSON.stringify(value)],
      parameters: { content_type: "json" },
    };
  }
  return { name, shape, datatype: kind ?? "FP64", data };
}

function elementOf(node: unknown): { kind: Kind; value: unknown } | undefined {
  if (node instanceof Fraction) return { kind: "FP64", value: node.value };
  switch (typeof node) {
    case "boolean":
      return { kind: "BOOL", value: node };
    case "number":
      return { kind: Number.isInteger(node) ? "INT64" : "FP64", value: node };
    case "string":
      return { kind: "BYTES", value: node };
    default:
      return undefined;
  }
}

/** The kind of a tensor holding elements of kinds `a` and `b`; undefined when they do not mix. */
function merge(a: Kind, b: Kind): Kind | undefined {
  if (a === b) return a;
  const numbers = new Set<Kind>(["INT64", "FP64"]);
  return numbers.has(a) && numbers.has(b) ? "FP64" : undefined;
}
