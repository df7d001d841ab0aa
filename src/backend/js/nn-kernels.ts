// Reference fused kernels: softmax, layer norm, cross-entropy, attention, AdamW. Each has a composed
// counterpart in src/tensor/ that tests hold it against.

import type { FloatArray } from '../backend.js';

export function softmax(x: FloatArray, rows: number, cols: number, log: boolean, out: FloatArray): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let max = -Infinity;
    for (let j = 0; j < cols; j++) if (x[o + j] > max) max = x[o + j];
    if (max === -Infinity) max = 0; // a row of -inf gives NaN below, as in PyTorch, without inf - inf here
    let sum = 0;
    if (log) {
      for (let j = 0; j < cols; j++) sum += Math.exp(x[o + j] - max);
      const lse = max + Math.log(sum);
      for (let j = 0; j < cols; j++) out[o + j] = x[o + j] - lse;
    } else {
      for (let j = 0; j < cols; j++) { const e = Math.exp(x[o + j] - max); out[o + j] = e; sum += e; }
      const inv = 1 / sum;
      for (let j = 0; j < cols; j++) out[o + j] *= inv;
    }
  }
}

export function softmaxBackward(y: FloatArray, dy: FloatArray, rows: number, cols: number, log: boolean, dx: FloatArray): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let s = 0;
    if (log) {
      for (let j = 0; j < cols; j++) s += dy[o + j];
      for (let j = 0; j < cols; j++) dx[o + j] = dy[o + j] - Math.exp(y[o + j]) * s;
    } else {
      for (let j = 0; j < cols; j++) s += dy[o + j] * y[o + j];
      for (let j = 0; j < cols; j++) dx[o + j] = y[o + j] * (dy[o + j] - s);
    }
  }
}

export function layerNorm(x: FloatArray, weight: FloatArray | null, bias: FloatArray | null, rows: number, C: number,
  eps: number, out: FloatArray, mean: FloatArray, rstd: FloatArray): void {
  for (let r = 0; r < rows; r++) {
    const o = r * C;
    let m = 0;
    for (let c = 0; c < C; c++) m += x[o + c];
    m /= C;
    let v = 0;
    for (let c = 0; c < C; c++) { const d = x[o + c] - m; v += d * d; }
    v /= C;
    const s = 1 / Math.sqrt(v + eps);
    for (let c = 0; c < C; c++) {
      const n = (x[o + c] - m) * s;
      out[o + c] = n * (weight ? weight[c] : 1) + (bias ? bias[c] : 0);
    }
    mean[r] = m;
    rstd[r] = s;
  }
}

export function layerNormBackward(dy: FloatArray, x: FloatArray, weight: FloatArray | null, mean: FloatArray,
  rstd: FloatArray, rows: number, C: number, dx: FloatArray, dweight: FloatArray | null, dbias: FloatArray | null): void {
  for (let r = 0; r < rows; r++) {
    const o = r * C;
    const m = mean[r];
    const s = rstd[r];
    // dnorm = dy * w; dx = s * (dnorm - mean(dnorm) - norm * mean(dnorm * norm))
    let sumD = 0;
    let sumDN = 0;
    for (let c = 0; c < C; c++) {
      const n = (x[o + c] - m) * s;
      const d = dy[o + c] * (weight ? weight[c] : 1);
      sumD += d;
      sumDN += d * n;
      if (dweight) dweight[c] += dy[o + c] * n;
      if (dbias) dbias[c] += dy[o + c];
    }
    sumD /= C;
    sumDN /= C;
    for (let c = 0; c < C; c++) {
      const n = (x[o + c] - m) * s;
      const d = dy[o + c] * (weight ? weight[c] : 1);
      dx[o + c] = s * (d - sumD - n * sumDN);
    }
  }
}

export function crossEntropy(logits: FloatArray, targets: Int32Array, N: number, V: number, ignoreIndex: number,
  labelSmoothing: number, losses: FloatArray, lse: FloatArray): void {
  for (let n = 0; n < N; n++) {
    const o = n * V;
    let max = -Infinity;
    for (let j = 0; j < V; j++) if (logits[o + j] > max) max = logits[o + j];
    let sum = 0;
    for (let j = 0; j < V; j++) sum += Math.exp(logits[o + j] - max);
    const l = max + Math.log(sum);
    lse[n] = l;
    const t = targets[n];
    if (t === ignoreIndex) { losses[n] = 0; continue; }
    if (t < 0 || t >= V) throw new Error(`crossEntropy: target ${t} at row ${n} is outside [0, ${V})`);
    let loss = (1 - labelSmoothing) * (l - logits[o + t]);
    if (labelSmoothing > 0) {
      let sumLogits = 0;
      for (let j = 0; j < V; j++) sumLogits += logits[o + j];
      loss += labelSmoothing * (l - sumLogits / V);
    }
    losses[n] = loss;
  }
}

export function crossEntropyBackward(logits: FloatArray, targets: Int32Array, lse: FloatArray, dlosses: FloatArray,
  N: number, V: number, ignoreIndex: number, labelSmoothing: number, dlogits: FloatArray): void {
  const smooth = labelSmoothing / V;
  for (let n = 0; n < N; n++) {
    const o = n * V;
    const t = targets[n];
    if (t === ignoreIndex) { dlogits.fill(0, o, o + V); continue; }
    const g = dlosses[n];
    const l = lse[n];
    for (let j = 0; j < V; j++) dlogits[o + j] = (Math.exp(logits[o + j] - l) - smooth) * g;
    dlogits[o + t] -= (1 - labelSmoothing) * g;
  }
}

export function attention(q: FloatArray, k: FloatArray, v: FloatArray, B: number, Tq: number, Tk: number, NH: number,
  HS: number, causal: boolean, scale: number, out: FloatArray, lse: FloatArray, ld = NH * HS): void {
  const C = NH * HS;
  const off = Tk - Tq;
  const scores = new Float64Array(Tk);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < NH; h++) {
      for (let i = 0; i < Tq; i++) {
        const qo = (b * Tq + i) * ld + h * HS;
        const last = causal ? Math.min(Tk - 1, i + off) : Tk - 1;
        let max = -Infinity;
        for (let j = 0; j <= last; j++) {
          const ko = (b * Tk + j) * ld + h * HS;
          let s = 0;
          for (let d = 0; d < HS; d++) s += q[qo + d] * k[ko + d];
          s *= scale;
          scores[j] = s;
          if (s > max) max = s;
        }
        let sum = 0;
        for (let j = 0; j <= last; j++) { scores[j] = Math.exp(scores[j] - max); sum += scores[j]; }
        const oo = (b * Tq + i) * C + h * HS;
        for (let d = 0; d < HS; d++) out[oo + d] = 0;
        for (let j = 0; j <= last; j++) {
          const p = scores[j] / sum;
          const vo = (b * Tk + j) * ld + h * HS;
          for (let d = 0; d < HS; d++) out[oo + d] += p * v[vo + d];
        }
        lse[(b * NH + h) * Tq + i] = last < 0 ? -Infinity : max + Math.log(sum);
      }
    }
  }
}

export function attentionBackward(dout: FloatArray, q: FloatArray, k: FloatArray, v: FloatArray, out: FloatArray,
  lse: FloatArray, B: number, Tq: number, Tk: number, NH: number, HS: number, causal: boolean, scale: number,
  dq: FloatArray, dk: FloatArray, dv: FloatArray, ld = NH * HS): void {
  const C = NH * HS;
  const off = Tk - Tq;
  // Only the rows' C channels belong to dq, dk, dv: with ld > C they interleave in one buffer.
  for (let r = 0; r < B * Tq; r++) dq.fill(0, r * ld, r * ld + C);
  for (let r = 0; r < B * Tk; r++) {
    dk.fill(0, r * ld, r * ld + C);
    dv.fill(0, r * ld, r * ld + C);
  }
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < NH; h++) {
      for (let i = 0; i < Tq; i++) {
        const qo = (b * Tq + i) * ld + h * HS;
        const oo = (b * Tq + i) * C + h * HS;
        const last = causal ? Math.min(Tk - 1, i + off) : Tk - 1;
        const l = lse[(b * NH + h) * Tq + i];
        // D = sum_d dout * out: the softmax backward's row constant.
        let D = 0;
        for (let d = 0; d < HS; d++) D += dout[oo + d] * out[oo + d];
        for (let j = 0; j <= last; j++) {
          const ko = (b * Tk + j) * ld + h * HS;
          let s = 0;
          for (let d = 0; d < HS; d++) s += q[qo + d] * k[ko + d];
          const p = Math.exp(s * scale - l);
          let dp = 0;
          for (let d = 0; d < HS; d++) {
            dv[ko + d] += p * dout[oo + d];
            dp += dout[oo + d] * v[ko + d];
          }
          const ds = p * (dp - D) * scale;
          for (let d = 0; d < HS; d++) {
            dq[qo + d] += ds * k[ko + d];
            dk[ko + d] += ds * q[qo + d];
          }
        }
      }
    }
  }
}

export function adamw(param: FloatArray, grad: FloatArray, m: FloatArray, v: FloatArray, lr: number, beta1: number,
  beta2: number, eps: number, weightDecay: number, bc1: number, bc2: number): void {
  const decay = 1 - lr * weightDecay;
  const stepSize = lr / bc1;
  const bc2Sqrt = Math.sqrt(bc2);
  for (let i = 0; i < param.length; i++) {
    const g = grad[i];
    const mi = beta1 * m[i] + (1 - beta1) * g;
    const vi = beta2 * v[i] + (1 - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    param[i] = param[i] * decay - stepSize * mi / (Math.sqrt(vi) / bc2Sqrt + eps);
  }
}
