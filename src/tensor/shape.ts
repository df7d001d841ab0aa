// Shape helpers: sizes, axis normalisation, broadcasting rules. Pure functions on number arrays.

/** The dimensions of a tensor, outermost first. */
export type Shape = readonly number[];

/** The number of elements of a shape (1 for []). */
export function sizeOf(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function fmt(shape: Shape): string { return `[${shape.join(', ')}]`; }

/** Normalises a possibly negative axis against a rank; names the op in the error. */
export function normAxis(axis: number, rank: number, op: string): number {
  if (!Number.isInteger(axis)) throw new Error(`${op}: axis must be an integer, got ${axis}`);
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new Error(`${op}: axis ${axis} is out of range for a tensor of rank ${rank}`);
  return a;
}

/** Sorted, unique, normalised axes; undefined means all axes. */
export function normAxes(axes: number | readonly number[] | undefined, rank: number, op: string): number[] {
  if (axes === undefined) return Array.from({ length: rank }, (_, i) => i);
  const list = typeof axes === 'number' ? [axes] : axes;
  const out = [...new Set(list.map((a) => normAxis(a, rank, op)))].sort((x, y) => x - y);
  if (out.length !== list.length) throw new Error(`${op}: repeated axis in ${fmt(list)}`);
  return out;
}

/** The shape a and b broadcast to (NumPy rules); throws naming op when they cannot. */
export function broadcastShapes(a: Shape, b: Shape, op: string): number[] {
  const rank = Math.max(a.length, b.length);
  const out = new Array<number>(rank);
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new Error(`${op}: shapes ${fmt(a)} and ${fmt(b)} cannot be broadcast together (dimension ${i}: ${da} vs ${db})`);
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** The shape padded with leading ones to a rank. */
export function padShape(shape: Shape, rank: number): number[] {
  return [...new Array<number>(rank - shape.length).fill(1), ...shape];
}

/** Resolves one -1 in a requested shape against a total size. */
export function inferShape(requested: Shape, total: number, op: string, from: Shape): number[] {
  const shape = [...requested];
  const neg = shape.filter((d) => d === -1).length;
  if (neg > 1) throw new Error(`${op}: only one dimension can be -1, got ${fmt(requested)}`);
  for (const d of shape) {
    if (!Number.isInteger(d) || d < -1) throw new Error(`${op}: invalid dimension ${d} in ${fmt(requested)}`);
  }
  if (neg === 1) {
    const known = shape.reduce((p, d) => (d === -1 ? p : p * d), 1);
    if (known === 0 || total % known !== 0) {
      throw new Error(`${op}: cannot reshape a tensor of shape ${fmt(from)} (${total} elements) into ${fmt(requested)}`);
    }
    shape[shape.indexOf(-1)] = total / known;
  }
  if (sizeOf(shape) !== total) {
    throw new Error(`${op}: cannot reshape a tensor of shape ${fmt(from)} (${total} elements) into ${fmt(requested)}`);
  }
  return shape;
}

/** Splits a shape around an axis into (outer, dim, inner) sizes. */
export function around(shape: Shape, axis: number): [number, number, number] {
  return [sizeOf(shape.slice(0, axis)), shape[axis], sizeOf(shape.slice(axis + 1))];
}
