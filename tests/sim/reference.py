"""An independent, slow, loop-by-loop reading of graph.py's step semantics in numpy (float64), for tests."""
import numpy as np


def conv_loops(x, w, stride, padding, dilation, groups):
    """Cross-correlation of x [C, H, W] with w [C_out, C_in/groups, kH, kW], written as plain loops."""
    c_in, h, wd = x.shape
    c_out, cg, kh, kw = w.shape
    xp = np.zeros((c_in, h + 2 * padding[0], wd + 2 * padding[1]))
    xp[:, padding[0]:padding[0] + h, padding[1]:padding[1] + wd] = x
    ho = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (wd + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((c_out, ho, wo))
    per_group = c_out // groups
    for o in range(c_out):
        g = o // per_group
        for i in range(ho):
            for j in range(wo):
                acc = 0.0
                for c in range(cg):
                    for a in range(kh):
                        for b in range(kw):
                            acc += w[o, c, a, b] * xp[g * cg + c, i * stride[0] + a * dilation[0],
                                                      j * stride[1] + b * dilation[1]]
                out[o, i, j] = acc
    return out


def reference_float(graph, x):
    """x: [N, *input_shape, T] for the single input population. Returns {name: (s, u, v)} each [N, *shape, T]."""
    n, steps = x.shape[0], x.shape[-1]
    pops = {p.name: p for p in graph.populations}
    s = {p.name: np.zeros((n, *p.shape, steps)) for p in graph.populations}
    u = {p.name: np.zeros((n, *p.shape, steps)) for p in graph.populations}
    v = {p.name: np.zeros((n, *p.shape, steps)) for p in graph.populations}
    for b in range(n):
        for t in range(steps):
            for p in graph.populations:
                if p.is_input:
                    a = x[b, ..., t].astype(np.float64)
                else:
                    a = np.zeros(p.shape)
                    for q in graph.into(p.name):
                        src = pops[q.source]
                        lag = np.broadcast_to(np.asarray(graph.lag(q)), src.shape)
                        delayed = np.zeros(src.shape)
                        for idx in np.ndindex(*src.shape):
                            tt = t - lag[idx]
                            if tt >= 0:
                                delayed[idx] = s[q.source][(b, *idx, tt)]
                        if q.kind == "dense":
                            a = a + (q.weight @ delayed.reshape(-1)).reshape(p.shape)
                        else:
                            a = a + conv_loops(delayed, q.weight, q.stride, q.padding, q.dilation, q.groups)
                nrn = p.neuron
                if nrn.graded:
                    s[p.name][..., t][b] = a
                    u[p.name][..., t][b] = a
                    v[p.name][..., t][b] = a
                    continue
                bias = 0.0 if p.bias is None else np.broadcast_to(p.bias, p.shape)
                u_prev = u[p.name][b, ..., t - 1] if t else np.zeros(p.shape)
                v_prev = v[p.name][b, ..., t - 1] if t else np.zeros(p.shape)
                uu = (1 - nrn.du) * u_prev + a
                vv = (1 - nrn.dv) * v_prev + uu + bias
                spk = np.zeros(p.shape) if nrn.threshold is None else (vv > nrn.threshold).astype(float)
                if nrn.reset == "hard":
                    vv = np.where(spk > 0, nrn.reset_value, vv)
                elif nrn.reset == "soft":
                    vv = vv - spk * nrn.reset_amount
                s[p.name][b, ..., t], u[p.name][b, ..., t], v[p.name][b, ..., t] = spk, uu, vv
    return {name: (s[name], u[name], v[name]) for name in s}
