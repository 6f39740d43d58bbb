"""Integer ``.tflite`` MobileNets on the fast executor: exact integer arithmetic carried in float32.

A uint8/int8 model's convolutions are integer dot products, ``acc = b + sum (q_x - z_x)(q_w - z_w)``, then a
requantization to the next tensor (:mod:`mobilenet_np.kernels.integer_fixedpoint`). Every term is an integer, and
float32 holds every integer of magnitude up to ``2**24`` exactly; so if no partial sum can reach ``2**24``, a
float32 multiply-add chain computes ``acc`` *exactly*, in any order. The fast executor
(:mod:`mobilenet_np.executor`, :mod:`mobilenet_np.kernels.fused`) therefore runs these models unchanged, with

* tensors holding ``q - z`` (their zero point subtracted; the zero border of 'SAME' padding is then exactly the
  zero point, as TFLite pads), weights ``q_w - z_w``, biases the int32 biases;
* after each layer, the requantization of TFLite's reference kernels or of XNNPACK (``requant_run``), giving
  the next tensor's ``q - z``; V2's residual ADD by its integer formula (``add_run``);
* the global pool (AVERAGE_POOL_2D or MEAN, ``pool_finish``) and the logits layer
  (:func:`~mobilenet_np.kernels.fused.dense` + requantization) in the same compiled call; a SOFTMAX of the
  logits (after RESHAPE / SQUEEZE) straight from its float32 ``q - z``, which serve as they are since softmax sees
  only differences; whatever ops follow by :class:`~mobilenet_np.integer.IntegerModel`'s own per-op kernels.

**Exactness bound**, checked per layer when the model is loaded: with ``M`` the largest ``|q - z|`` the layer's
input can hold (from the producer's activation range), every partial sum is at most
``max_o (|b_o| + M sum_k |w_ko - z_w|)``, which must stay below ``2**24``. A model that fails it (or whose graph
is not a MobileNet chain: input -> convolutions [-> residual ADDs] -> global pool [-> logits] -> ...) runs on the
per-op kernels instead; :attr:`IntegerModel.fast_path` says which and why. Outputs are the same bytes either way
(``tests/test_integer_fast.py`` checks them against TFLite).
"""
import math

import numpy as np

from .architectures import Layer
from .executor import FastExecutor
from .kernels import fused
from .kernels import integer_fixedpoint as FP
from .kernels import integer_ops as IO

EXACT_LIMIT = 2 ** 24   # float32 represents every integer of magnitude <= 2**24


class NotAChain(ValueError):
    """The model cannot run on the fast executor (the message says why); the per-op kernels run it."""


def _padded_to(values, n, dtype):
    out = np.zeros(n, dtype)
    out[:len(values)] = values
    return out


class _Chain:
    """What :func:`read_chain` finds: the executor's layers and steps, requantization per layer, ADDs, the pool
    and logits, and where the per-op tail starts."""

    def __init__(self):
        self.input = self.size = None           # (z_x, qmin, qmax) of the input tensor; its (H, W)
        self.layers, self.steps = [], []        # dicts (Layer fields) and (w, b) float32
        self.requant = {}                       # layer name -> (mode, zy, lo, hi, fscale, qm, shift)
        self.adds = {}                          # name of a block's last layer -> its ADD's (mode, zy, lo, hi, params)
        self.pool = self.logits = None
        self.tail = None                        # index of the first op the per-op kernels run
        self.tail_reads_pool = False            # whether one of those reads the pool's output
        self.softmax = None                     # (the tensors it skips, its op index, its output tensor,
        #                                         int_softmax arguments) when the tail starts with a SOFTMAX of
        #                                         the logits


def _max_abs(lo, hi, z):
    return max(abs(lo - z), abs(hi - z))


def read_chain(model):
    """Walk ``model``'s (an :class:`~mobilenet_np.integer.IntegerModel`) operators and describe them for the
    fast executor; raises :class:`NotAChain` when they do not fit."""
    ops, tensors = model.tflite.operators, model.tflite.tensors
    x = model.input_tensor
    if x.dtype not in (np.dtype(np.uint8), np.dtype(np.int8)) or x.shape[3] != 3:
        raise NotAChain(f"input is {x.type_name} with {x.shape[3]} channels (needs 8-bit RGB)")
    qmin, qmax = FP.dtype_range(x.dtype)
    chain = _Chain()
    chain.input = (x.zero_point, qmin, qmax)
    chain.size = tuple(x.shape[1:3])
    reach = {x.index: _max_abs(qmin, qmax, x.zero_point)}    # tensor -> largest |q - z| it can hold
    cur = x.index
    kinds = []                                               # per op: "conv", "depthwise", "pointwise", "add"
    for k, op in enumerate(ops):
        ins = [tensors[i] if i >= 0 else None for i in op.inputs]
        out = tensors[op.outputs[0]]
        if k == 0 and op.name == "QUANTIZE" and _is_shift(model, op, ins[0], out):
            cur = out.index       # uint8 -> int8 of the same scale: q - z does not change
            reach[cur] = reach[x.index]
            continue
        if op.name == "ADD":
            if len(kinds) < 2 or kinds[-1] != "pointwise" or kinds[-2] != "depthwise":
                raise NotAChain(f"operator {k} (ADD) does not end a depthwise -> pointwise block")
            dw = ops[k - 2]
            expand = k >= 3 and kinds[-3] == "pointwise" and ops[k - 3].outputs[0] == dw.inputs[0]
            block_in = ops[k - 3].inputs[0] if expand else dw.inputs[0]
            if sorted(op.inputs[:2]) != sorted([cur, block_in]):
                raise NotAChain(f"operator {k} (ADD) does not add a block's input to its output")
            other = tensors[block_in]
            proj = tensors[cur]
            sa, _ = model._quant(op, proj, "first input")
            sb, _ = model._quant(op, other, "second input")
            sy, zy = model._quant(op, out, "output")
            lo, hi = model._act(op, out)
            # (ADD is symmetric: add_run takes the block output first, whatever the file's order)
            if model._mode == FP.MODE_XNNPACK:
                params = IO.add_params_xnnpack(sa, sb, sy)
            else:
                params = IO.add_params(sa, sb, sy)
            chain.adds[chain.layers[-1]["name"]] = (model._mode, zy, lo, hi, params)
            chain.layers[-1]["residual"] = chain.layers[-1]["ends_block"] = True
            reach[out.index] = _max_abs(lo, hi, zy)
            kinds.append("add")
            cur = out.index
            continue
        if not ins or op.inputs[0] != cur:
            raise NotAChain(f"operator {k} ({op.name}) does not read the previous operator's output")
        if op.name in ("AVERAGE_POOL_2D", "MEAN"):
            _read_pool(model, chain, k, op, ins, out, reach)
            break
        if op.name not in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            raise NotAChain(f"operator {k} is {op.name}")
        kinds.append(_read_conv(model, chain, k, op, ins, out, reach, first=not chain.layers))
        cur = out.index
    else:
        raise NotAChain("no global pool")
    pooled = chain.pool[0].outputs[0]
    chain.tail_reads_pool = any(pooled in op.inputs for op in ops[chain.tail:])
    return chain


def keeps_batch(x, y):
    """Whether a RESHAPE / SQUEEZE from tensor ``x`` to ``y`` maps a batch of N images to N (the file's shapes
    both start with 1 and hold as many values per image), rather than to one fixed shape."""
    src, dst = x.shape, y.shape
    return (len(src) >= 1 and len(dst) >= 1 and src[0] == 1 and dst[0] == 1
            and math.prod(src[1:]) == math.prod(dst[1:]))


def _is_shift(model, op, x, y):
    """Whether a QUANTIZE from integers ``x`` to integers ``y`` only moves the zero point (same scale, same range
    around it): then ``q_y - z_y = q_x - z_x`` for every input."""
    if x.dtype not in (np.dtype(np.uint8), np.dtype(np.int8)) or y.dtype not in (np.dtype(np.uint8), np.dtype(np.int8)):
        return False
    (sx, zx), (sy, zy) = model._quant(op, x, "input"), model._quant(op, y, "output")
    return sx == sy and zy - zx == FP.dtype_range(y.dtype)[0] - FP.dtype_range(x.dtype)[0]


def _read_conv(model, chain, k, op, ins, out, reach, first):
    o = op.options
    xt, wt, bt = (ins + [None])[:3]
    if o.get("dilation_h_factor", 1) != 1 or o.get("dilation_w_factor", 1) != 1 or o["stride_h"] != o["stride_w"]:
        raise NotAChain(f"operator {k} ({op.name}): dilation or unequal strides")
    wdata = model._const(op, wt.index, "filter")
    one_by_one = wdata.shape[1:3] == (1, 1) and o["stride_h"] == 1     # where VALID and SAME are the same
    if (o["padding"] != "SAME" and not one_by_one) or o["stride_h"] not in (1, 2):
        raise NotAChain(f"operator {k} ({op.name}): {o['padding']} padding, stride {o['stride_h']}")
    depthwise = op.name == "DEPTHWISE_CONV_2D"
    cout = wdata.shape[3] if depthwise else wdata.shape[0]
    zx, b, (qm, shift, fscale, zy, lo, hi) = model._conv_params(op, xt, wt, bt, out, cout, 3 if depthwise else 0)
    kh, kw = wdata.shape[1:3]
    if depthwise:
        if (kh, kw) != (3, 3) or cout != xt.shape[3]:
            raise NotAChain(f"operator {k}: depthwise {kh}x{kw} with multiplier {cout // xt.shape[3]}")
        w = model._filter(op, wt, "hwc").reshape(9, cout)                                      # [taps, C]
        kind = "depthwise"
    else:
        w = model._filter(op, wt, "hwio").reshape(-1, cout)                                    # [taps, C_out]
        kind = "pointwise" if (kh, kw) == (1, 1) and o["stride_h"] == 1 else "conv"
        if kind == "conv" and (kh != kw or kh > 3 or not first):
            raise NotAChain(f"operator {k}: a {kh}x{kw} convolution that is not the 3x3 stem")
    bound = int((np.abs(b.astype(np.int64)) + reach[xt.index] * np.abs(w).sum(axis=0)).max())
    if bound >= EXACT_LIMIT:
        raise NotAChain(f"operator {k} ({op.name}): partial sums up to {bound} may exceed 2**24")
    name = f"op{k}"
    chain.layers.append(dict(name=name, op=kind, kernel=kh, stride=o["stride_h"], in_channels=xt.shape[3],
                             out_channels=cout, residual=False, ends_block=False))
    shape = {"depthwise": (3, 3, cout, 1), "conv": (kh, kw, xt.shape[3], cout), "pointwise": (xt.shape[3], cout)}
    chain.steps.append((w.astype(np.float32).reshape(shape[kind]), b.astype(np.float32)))
    chain.requant[name] = (model._mode, zy, lo, hi, fscale, qm, shift)
    reach[out.index] = _max_abs(lo, hi, zy)
    return kind


def _read_pool(model, chain, k, op, ins, out, reach):
    xt = ins[0]
    n, h, w, c = xt.shape
    count = h * w
    if op.name == "AVERAGE_POOL_2D":
        o = op.options
        if (o["filter_height"], o["filter_width"]) != (h, w) or o["padding"] != "VALID":
            raise NotAChain(f"operator {k}: AVERAGE_POOL_2D is not a global pool")
        sx, zx = model._quant(op, xt, "input")
        sy, zy = model._quant(op, out, "output")
        if (sx, zx) != (sy, zy):
            raise NotAChain(f"operator {k}: AVERAGE_POOL_2D changes quantization")
        lo, hi = model._act(op, out)
        chain.pool = (op, [0, model._mode, count, zx, zy, lo, hi, 0, 0], np.float32(0))
    else:
        axes = sorted(int(a) % 4 for a in np.asarray(model._const(op, ins[1].index, "axes")).reshape(-1))
        if axes != [1, 2]:
            raise NotAChain(f"operator {k}: MEAN over axes {axes}")
        sx, zx = model._quant(op, xt, "input")
        sy, zy = model._quant(op, out, "output")
        qm, shift = IO.mean_params(sx, sy, count)
        lo, hi = FP.dtype_range(out.dtype)
        chain.pool = (op, [1, model._mode, count, zx, zy, lo, hi, qm, shift], IO.mean_scale_xnnpack(sx, sy, count))
    reach[out.index] = _max_abs(*FP.dtype_range(out.dtype), out.zero_point)
    chain.tail = k + 1
    ops = model.tflite.operators
    if k + 1 < len(ops) and ops[k + 1].name in ("CONV_2D", "FULLY_CONNECTED") and ops[k + 1].inputs[0] == out.index:
        _read_logits(model, chain, k + 1, ops[k + 1], reach)


def _read_logits(model, chain, k, op, reach):
    tensors = model.tflite.tensors
    xt, wt = tensors[op.inputs[0]], tensors[op.inputs[1]]
    bt = tensors[op.inputs[2]] if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
    out = tensors[op.outputs[0]]
    wdata = model._const(op, wt.index, "filter")
    if op.name == "CONV_2D" and wdata.shape[1:3] != (1, 1) or op.options.get("keep_num_dims"):
        return
    cout = wdata.shape[0]
    zx, b, (qm, shift, fscale, zy, lo, hi) = model._conv_params(op, xt, wt, bt, out, cout, 0)
    w = model._filter(op, wt, "io")
    bound = int((np.abs(b.astype(np.int64)) + reach[xt.index] * np.abs(w).sum(axis=0)).max())
    if bound >= EXACT_LIMIT:
        return
    mode = model._mode
    if mode == FP.MODE_REFERENCE and op.name == "FULLY_CONNECTED" and wt.quantization.per_channel \
            and xt.dtype == np.int8:
        mode = FP.MODE_SINGLE_ROUNDING     # as IntegerModel._prep_fully_connected
    chain.layers.append(dict(name="logits", op="logits", kernel=1, stride=1, in_channels=w.shape[0],
                             out_channels=cout, residual=False, ends_block=False))
    chain.steps.append((w.astype(np.float32), b.astype(np.float32)))
    chain.requant["logits"] = (mode, zy, lo, hi, fscale, qm, shift)
    chain.logits = op
    chain.tail = k + 1
    _read_softmax(model, chain)


def _read_softmax(model, chain):
    """``chain.softmax`` when the ops after the logits start with RESHAPE / SQUEEZE (each keeping the batch axis)
    and then a SOFTMAX of their result, and no later op reads the tensors in between: :func:`finish` then takes
    the softmax straight from the executor's logits."""
    ops, tensors = model.tflite.operators, model.tflite.tensors
    skipped = [chain.logits.outputs[0]]
    for k in range(chain.tail, len(ops)):
        op = ops[k]
        x, out = tensors[op.inputs[0]], tensors[op.outputs[0]]
        if op.inputs[0] != skipped[-1]:
            return
        if op.name == "SOFTMAX":
            one_row = x.shape[-1] == math.prod(x.shape[1:])       # each image's logits: one softmax row
            if one_row and not any(i in skipped for later in ops[k + 1:] for i in later.inputs):
                chain.softmax = (frozenset(skipped), k, out, model._softmax_params(op, x, out))
            return
        if op.name not in ("RESHAPE", "SQUEEZE") or not keeps_batch(x, out):
            return
        skipped.append(out.index)


class IntegerExecutor(FastExecutor):
    """The fast executor for a chain read by :func:`read_chain`."""

    integer_weights = True      # q_w - z_w: the logits' weights also go as int16, half the bytes to stream

    def __init__(self, chain, threads=1):
        self.chain = chain
        layers = [Layer(d["name"], d["op"], d["kernel"], d["stride"], d["in_channels"], d["out_channels"],
                        batch_norm=False, relu6=False, bias=True, block=d["name"] if d["residual"] else None,
                        ends_block=d["ends_block"], residual=d["residual"]) for d in chain.layers]
        steps = [(layer, w, b, None) for layer, (w, b) in zip(layers, chain.steps)]
        try:
            super().__init__(None, steps, threads)
            self.plan(*chain.size)   # raises on shapes the planner cannot take (a residual with a border...)
        except ValueError as exc:
            raise NotAChain(str(exc)) from None

    def _input_transform(self):
        zx, qmin, qmax = self.chain.input
        return (1.0, -float(zx), float(qmin), float(qmax))

    def _quantize(self, params):
        records = [np.zeros(1, np.int64)]
        size = 1

        def add(record):
            nonlocal size
            records.append(np.asarray(record, np.int64))
            size += records[-1].size
            return size - records[-1].size

        self._requant, self._add = {}, {}
        for layer, p in self._layers:
            mode, zy, lo, hi, fscale, qm, shift = self.chain.requant[layer.name]
            c = p["cout"]
            fs = params.add(_padded_to(fscale, c, np.float32))
            self._requant[layer.name] = add(fused.requant_record(mode, zy, lo, hi, fs, _padded_to(qm, c, np.int64),
                                                                 _padded_to(shift, c, np.int64)))
            if layer.name in self.chain.adds:
                self._add[layer.name] = add(fused.add_record(*self.chain.adds[layer.name]))
        _, record, fscale = self.chain.pool
        self._pool_record = add(record + [params.add([fscale])])
        self.qparams = np.concatenate(records)

    def run_integer(self, q, logits=True, pooled=True):
        """``(pooled, logits)``: the integer global pool's output ``[N, C]`` (None without ``pooled``) and the
        logits layer's ``[N, classes]`` (None without one, or when ``logits`` is false: the pass then skips that
        layer) for the images ``q`` (the input tensor's integers, ``[N, H, W, 3]``), as float32 ``q - z`` (each
        exact: add the zero point)."""
        # 8-bit images go in as they are (the input stage converts them: a quarter of the bytes to read, and no
        # float copy made here)
        x = np.ascontiguousarray(q)
        plan = self.plan(x.shape[1], x.shape[2])
        head = self._head if logits and self._head is not None else self._no_head
        f, out, _ = self._call(x, plan, head, False, None, features=pooled)
        return (self._features_of(f, len(x), plan) if pooled else None), (None if head is self._no_head else out)


def finish(chain, executor, model, q, want):
    """The value of tensor ``want`` for input integers ``q``: the pool's output, or a tensor of the per-op tail
    (the ops after the pool and logits, run by the per-op kernels on the executor's logits; a SOFTMAX of the
    logits straight from the executor's, see :func:`_read_softmax`). Asked for the pool's output, the executor
    skips the logits layer."""
    tensors = model.tflite.tensors
    pool = tensors[chain.pool[0].outputs[0]]
    need_pool = want == pool.index or chain.tail_reads_pool
    pooled, logits = executor.run_integer(q, logits=want != pool.index, pooled=need_pool)
    values = {}
    if need_pool:
        values[pool.index] = _as_tensor(pooled, pool, chain.pool[1][4], len(q))
    first = chain.tail
    if logits is not None and chain.softmax is not None and want not in chain.softmax[0]:
        # the SOFTMAX straight from the executor's q - z: it sees only differences of its inputs, so the zero
        # point need not be added (nor the tensors in between made)
        _, k, t, params = chain.softmax
        y = IO.int_softmax_into(logits, *params, np.empty(logits.shape, t.dtype))
        values[t.index] = y.reshape((len(q),) + tuple(t.shape[1:]))
        first = k + 1
    elif logits is not None:
        t = tensors[chain.logits.outputs[0]]
        values[t.index] = _as_tensor(logits, t, chain.requant["logits"][1], len(q))
    if want not in values:
        model.run_ops(values, first)
    return values[want]


def _as_tensor(v, t, z, n):
    """Tensor ``t``'s integers ``[N, ...]`` from the executor's float32 ``q - z`` (exact integers)."""
    return np.add(v, np.float32(z)).astype(t.dtype).reshape((n,) + tuple(t.shape[1:]))
