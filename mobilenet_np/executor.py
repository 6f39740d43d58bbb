"""The fast executor: a model's layers as one plan, run by one compiled call (:mod:`mobilenet_np.kernels.fused`).

:class:`FastExecutor` is built once per :class:`~mobilenet_np.model.Model` from its prepared (BN-folded) steps:

* the *parameter buffer*: every kernel and bias in one float32 array, channel counts padded to multiples of 8
  with zeros, pointwise kernels packed in blocks of output channels (:func:`pack_gemm`);
* per input size, a :class:`Plan`: the stages (input, stem conv, V2 expand, depthwise -> pointwise
  [+ residual], pointwise, pool), the tensors between them with their arena offsets (tensors never live at
  the same time share memory: :func:`assign_offsets`), and the *schedule*: the
  order in which stages compute their output rows. The schedule is found by pulling: to make the pool's
  next row, make the rows it reads first, recursively; so each row is consumed soon after it is made and each
  tensor only keeps a few rows (the ring size, measured on the schedule itself). Plans are cached by input
  size; arenas are kept with their plan for reuse, one per call running at the same time (calls from several
  Python threads run at once).
"""
import collections
import glob
import threading

import numpy as np

from .inputs import check_values
from .kernels import fused
from .kernels.padding import same_padding

ALIGN = 16   # floats: every buffer starts on a 64-byte boundary (a cache line, one AVX-512 vector)
WHOLE_MAP_PIXELS = 256   # maps up to this many pixels are computed in one step per layer, and maps up to
# NARROW_MAP_PIXELS (20x20) too when no whole map the step then reads or writes (input, depthwise scratch,
# output) holds more than NARROW_MAP_FLOATS (160 KB, which stays in L2 beside the weights). One GEMM over 400
# pixels instead of 20 rows of 20, whose last 8-pixel tile repeats 4, made V2 0.5/160's 20x20 expansions and
# blocks 10-25 % faster and its pass 2.6-3.5 % (V2 0.35/160 1.6 %, V1 0.25/160 2.2 %; A/B in one process);
# grouping wider maps as well (20x20 in V2 1.0 and 1.4 at 160, 28x28 in V2 1.0 and V1 0.5 at 224) made those
# 1-2 % slower.
NARROW_MAP_PIXELS = 400
NARROW_MAP_FLOATS = 40 * 1024
SIDE_STEPS_PER_LINE = 2   # reduction steps per cache line of the logits' weights prefetched (see side_prefetch)


def l2_cache_bytes(cache_dir="/sys/devices/system/cpu/cpu0/cache"):
    """The L2 cache of a core in bytes, as Linux reports it (``index*/level``, ``type``, ``size`` such as
    ``2048K`` under ``cache_dir``); 0 when unknown (another system, or a value that does not parse)."""
    for index in sorted(glob.glob(f"{cache_dir}/index*")):
        try:
            with open(f"{index}/level") as f, open(f"{index}/type") as g, open(f"{index}/size") as h:
                level, kind, size = f.read().strip(), g.read().strip(), h.read().strip()
        except OSError:
            continue
        if level == "2" and kind in ("Unified", "Data"):
            scale = {"K": 1 << 10, "M": 1 << 20}.get(size[-1:], 1)
            digits = size[:-1] if scale > 1 else size
            return int(digits) * scale if digits.isdigit() else 0
    return 0


L2_BYTES = l2_cache_bytes()


def side_prefetch(rows, stages, head, l2_bytes):
    """Set the side-prefetch ranges (``fused.PF0``/``PF1`` of the stage ``rows``) that bring the logits' weights
    into L2 while the last stages compute. At batch 1 the logits layer is a matrix-vector product that reads each
    weight once; from L3 they stream at a quarter of L2's rate (V1 0.25's 1 MB alone: 28 against 113 GB/s).

    Only when those weights (``head``: offsets and sizes as the executor keeps them, ``[w, b, C, classes,
    requantization, int16 weights]``; an integer model's int16 copy, which ``fused.dense`` reads at batch 1-3)
    take at most half of ``l2_bytes``: more pushes out the last stages' own weights (V2 0.5's 5 MB, of which
    0.5-2 MB prefetched: the pass no faster, or slower). Walking back from the last stage, each stage whose
    pointwise GEMM runs on the prefetching blocks (``fused._gemm_block``, a step per 256 multiply-adds) takes one
    line per ``SIDE_STEPS_PER_LINE`` of its steps until the range is covered.

    Measured (same compiled pass, the ranges set or emptied between rounds, 200-300 rounds): V1 0.25/224 logits
    71 -> 34 k cycles, the last four stages +1-7 % each, the pass -1.8 %, a call after the other engines -11 us
    (1-2 %); V1 0.25/128 -2.7 % and -6 us; the uint8 V1 0.25/128 (0.5 MB of int16 weights) no change."""
    if head is None or l2_bytes <= 0:
        return
    w, _, cin, cout, _, w16 = (int(v) for v in head)
    start, size = (w16 // 2, cin * cout // 2) if w16 >= 0 else (w, cin * cout)
    if 4 * size > l2_bytes // 2:
        return
    end = start + size
    for row, st in zip(reversed(rows), reversed(stages)):
        if end <= start:
            break
        if st.op not in (fused.ST_DWPW, fused.ST_PW, fused.ST_EXPAND):
            continue
        k = st.inputs[0][0].c
        if k in (8, 16):        # (these keep their narrow blocks' weights in registers: no prefetching steps)
            continue
        lines = st.out.h * st.out.w * k * st.out.c // 256 // SIDE_STEPS_PER_LINE
        row[fused.PF0], row[fused.PF1] = max(start, end - 16 * lines), end
        end = row[fused.PF0]


def aligned_zeros(shape, dtype=np.float32):
    """Zeros whose first element sits on a 64-byte boundary. NumPy only promises 16 bytes (large arrays
    here started 16, 32 or 48 bytes past a cache line), and a vector load that straddles two cache lines
    costs two: the kernels' offsets are multiples of 16 floats from the start of the parameter buffer and
    of the arena, so those must start on a line for any vector to be aligned."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    raw = np.zeros(nbytes + 64, np.uint8)
    skip = -raw.ctypes.data % 64
    return raw[skip:skip + nbytes].view(dtype).reshape(shape)


def padded(c):
    """Channel count rounded up to a multiple of 8 (the vector granularity)."""
    return -(-c // fused.LANES) * fused.LANES


def gemm_blocks(cout, k):
    """``[(start, width)]``: output channels as :func:`~mobilenet_np.kernels.fused.gemm` walks them for ``k``
    inputs (blocks as wide as :func:`~mobilenet_np.kernels.fused.widest_block` allows, then 32, 16, 8:
    :func:`~mobilenet_np.kernels.fused.packed_block`)."""
    blocks, ob = [], 0
    while ob < cout:
        width = int(fused.packed_block(cout - ob, k))
        blocks.append((ob, width))
        ob += width
    assert ob == cout, cout
    return blocks


def pack_gemm(w):
    """``[K, Cout]`` (Cout a multiple of 8) -> flat panels, one per output block: ``w[:, ob:ob + width]``
    row-major, so the GEMM reads each block's weights for one input as one contiguous run."""
    return np.concatenate([np.ascontiguousarray(w[:, ob:ob + width]).ravel()
                           for ob, width in gemm_blocks(w.shape[1], w.shape[0])])


def as_int16_pairs(w):
    """Integer-valued float32 weights as int16, two per float32 element (for :func:`fused.dense`'s ``w16``)."""
    q = np.asarray(w, np.float32).ravel()
    if q.size % 2 or not np.array_equal(q, np.clip(np.rint(q), -32768, 32767)):
        raise ValueError("int16 weights must be an even number of integers in [-32768, 32767]")
    return q.astype(np.int16).view(np.float32)


class _Params:
    """Grows the flat parameter buffer; ``add`` returns the offset of what it appended."""

    def __init__(self):
        self.parts, self.size = [], 0

    def add(self, values):
        values = np.asarray(values, np.float32).ravel()
        offset = self.size
        pad = (-values.size) % ALIGN
        self.parts.append(values)
        if pad:
            self.parts.append(np.zeros(pad, np.float32))
        self.size += values.size + pad
        return offset

    def buffer(self):
        out = aligned_zeros(self.size + ALIGN)
        out[:self.size] = np.concatenate(self.parts) if self.parts else 0.0
        return out


def _pad_to(a, shape):
    out = np.zeros(shape, np.float32)
    out[tuple(slice(0, n) for n in a.shape)] = a
    return out


def _aligned(n):
    return -(-n // ALIGN) * ALIGN


def _lifetimes(stages, schedule, tensor_ids):
    """Per tensor (in id order, from 1), the first and last schedule step that writes or reads it."""
    life = np.full((len(tensor_ids), 2), -1, np.int64)
    for q, k in enumerate(schedule[:, 0]):
        st = stages[k]
        touched = [src for src, _ in st.inputs] + ([st.out] if id(st.out) in tensor_ids else [])
        for t in touched:
            j = tensor_ids[id(t)] - 1
            life[j, 0] = q if life[j, 0] < 0 else life[j, 0]
            life[j, 1] = q
    return life


def assign_offsets(sizes, lifetimes):
    """Offsets for buffers of ``sizes`` live over the closed step ranges ``lifetimes`` [(first, last)], so that
    buffers live at the same time never overlap: the largest first, each at the lowest offset that fits
    among the ones already placed whose lifetimes meet its own. Returns (offsets, total size)."""
    offsets = [0] * len(sizes)
    placed = []
    for j in sorted(range(len(sizes)), key=lambda j: (-sizes[j], lifetimes[j][0])):
        first, last = lifetimes[j]
        at = 0
        for o, size in sorted((offsets[i], sizes[i]) for i in placed
                              if lifetimes[i][0] <= last and first <= lifetimes[i][1]):
            if o >= at + sizes[j]:
                break
            at = max(at, o + size)
        offsets[j] = at
        placed.append(j)
    return offsets, max((o + s for o, s in zip(offsets, sizes)), default=0)


class Plan:
    """The stages, tensors and schedule for one input size (int64 arrays for :func:`fused.forward`), the
    arena size in floats, the padded feature count and the endpoint layout (``ends``: name -> (offset per
    image, shape without N); ``ends_size``: floats per image). ``free``: per thread count, the buffer sets no
    call is using (see :meth:`FastExecutor._new_buffers`)."""

    def __init__(self, stages, tensors, schedule, arena_size, features, ends, ends_size, names):
        self.stages, self.tensors, self.schedule = stages, tensors, schedule
        self.names = names   # per stage, the layers it computes
        self.arena_size, self.features, self.ends, self.ends_size = arena_size, features, ends, ends_size
        self.free = collections.defaultdict(list)


class _Stage:
    def __init__(self, op, out, inputs=(), stride=1, pad_t=0, kernel=1, group=1, **cols):
        self.op, self.out, self.stride, self.pad_t, self.kernel = op, out, stride, pad_t, kernel
        self.inputs = list(inputs)         # (tensor, rows read: "conv" (a KxK window) or "same" (row i))
        self.group = group                 # output rows per schedule step: 1 or all
        self.cols = cols
        self.names = []                    # the layers it computes (for profiles)


class _Tensor:
    def __init__(self, h, w, c, border, producer=None):
        self.h, self.w, self.c, self.border, self.producer = h, w, c, border, producer
        self.plane = 0      # > 0: rows stored planar for the stem (fused._stem_planar_row)

    @property
    def size(self):
        """Floats in the whole map (borders aside)."""
        return self.h * self.w * self.c


class FastExecutor:
    """Runs a model's folded steps with :func:`mobilenet_np.kernels.fused.forward`."""

    integer_weights = False   # True: every weight is an integer (integer models; the logits then also go as int16)

    def __init__(self, architecture, steps, threads=1):
        self.architecture = architecture
        self.threads = int(threads)
        params = _Params()
        input_map = self._input_transform()
        if not (input_map[0] > 0 and np.frexp(np.float32(input_map[0]))[0] == 0.5):
            # the input stage maps v -> scale v + offset with one multiply-add, the same values as a multiply
            # and an add only when scale v is exact (simd.store_affine)
            raise ValueError(f"the input map's scale must be a power of two, not {input_map[0]}")
        self._input_map = params.add(input_map)
        self._layers = []     # (layer, dict of parameter offsets)
        for layer, w, bias, bn in steps:
            if bn is not None:
                raise ValueError("the fast executor needs batch norm folded into the weights")
            cin, cout = padded(layer.in_channels), padded(layer.out_channels)
            bias = _pad_to(bias, (cout,))
            b = params.add(bias)
            extra = {}
            if layer.op == "conv":
                k = layer.kernel
                if k > 3:
                    raise ValueError("bordered tensors hold 'SAME' padding for kernels up to 3x3")
                taps = _pad_to(w.reshape(k * k * layer.in_channels, layer.out_channels),
                               (k * k * layer.in_channels, cout))
                off = params.add(pack_gemm(taps))
                if (k, cout) == (3, fused.STEM_PLANAR_CHANNELS):
                    # the planar stem (fused._stem_planar_row) reads every weight and bias twice in a row
                    extra = dict(w_pairs=params.add(np.repeat(taps, 2, axis=1)),
                                 b_pairs=params.add(np.repeat(bias, 2)))
            elif layer.op == "depthwise":
                if layer.kernel != 3 or w.shape[3] != 1:
                    raise ValueError("the fast executor's depthwise is 3x3 with channel multiplier 1")
                off = params.add(_pad_to(w.reshape(9, layer.in_channels), (9, cin)))
            else:   # pointwise, logits: [Cin, Cout]
                packed = pack_gemm(_pad_to(w, (cin, cout)))
                off = params.add(packed)
                if layer.op == "logits" and self.integer_weights:
                    extra = dict(w16=2 * params.add(as_int16_pairs(packed)))
            self._layers.append((layer, dict(w=off, b=b, cin=cin, cout=cout, **extra)))
        self._quantize(params)
        self.params = params.buffer()
        layer, p = self._layers[-1]
        self._head = np.array([p["w"], p["b"], p["cin"], p["cout"], self._requant.get(layer.name, -1),
                               p.get("w16", -1)], np.int64) if layer.op == "logits" else None
        # the real (unpadded) widths of the pooled features and the logits (0: no logits layer)
        self.num_classes = layer.out_channels if layer.op == "logits" else 0
        self.num_features = self._layers[-2 if self.num_classes else -1][0].out_channels
        self._no_head = np.array([0, 0, 0, 0, -1, -1], np.int64)
        self._no_cycles = np.zeros(0, np.int64)
        self._no_ends = np.zeros(0, np.float32)
        self._no_logits = np.zeros((0, 0), np.float32)
        self._plans = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------------------ hooks
    # (the integer executor, mobilenet_np.integer_executor, overrides these)
    def _input_transform(self):
        """``(scale, offset, lo, hi)`` of the input stage: ``x -> scale x + offset``, valid in [lo, hi]."""
        return (2.0, -1.0, 0.0, 1.0)

    def _quantize(self, params):
        """Add integer requantization data (float models: none): sets ``qparams`` (int64 records or None),
        ``_requant`` ({layer name: record offset}), ``_add`` ({name of a block's last layer: ADD record}) and
        ``_pool_record`` (-1: a float pool)."""
        self.qparams = None
        self._requant, self._add, self._pool_record = {}, {}, -1

    # ------------------------------------------------------------------------------------------ planning
    def plan(self, height, width, record=False):
        key = (height, width, record)
        plan = self._plans.get(key)
        if plan is None:
            with self._lock:        # one plan per key, however many threads ask for it at once
                plan = self._plans.get(key)
                if plan is None:
                    plan = self._plans[key] = self._make_plan(height, width, record)
        return plan

    def _stages(self, height, width, record):
        """The network as stages and tensors (before scheduling)."""
        stages, ends = [], {}
        ends_size = 0

        def rec(name, t, channels):
            nonlocal ends_size
            if not record:
                return -1
            ends[name] = (ends_size, (t.h, t.w, channels))
            ends_size += t.h * t.w * channels
            return ends_size - t.h * t.w * channels

        def add(stage):
            stages.append(stage)
            stage.out.producer = stage
            return stage.out

        layers = [entry for entry in self._layers if entry[0].op != "logits"]

        def feeds_depthwise(i):   # does layer i's output go into a 3x3 convolution (needs a border)?
            return i < len(layers) and layers[i][0].op == "depthwise"

        def group(h, w, floats):
            """All rows in one step for small maps (one GEMM, weights streamed once), else one at a time;
            ``floats``: the largest whole map such a step would read or write (see NARROW_MAP_PIXELS)."""
            small = h * w <= WHOLE_MAP_PIXELS or (h * w <= NARROW_MAP_PIXELS and floats <= NARROW_MAP_FLOATS)
            return h if small else 1

        def q(layer):     # the layer's requantization record, -1 for a float layer
            return self._requant.get(layer.name, -1)

        cur = add(_Stage(fused.ST_INPUT, _Tensor(height, width, 3, 1), W1=self._input_map))
        cur.producer.names = ["input"]
        i = 0
        while i < len(layers):
            layer, p = layers[i]
            if layer.op == "conv":
                oh, top, _ = same_padding(cur.h, layer.kernel, layer.stride)
                ow, left, _ = same_padding(cur.w, layer.kernel, layer.stride)
                if (cur.producer.op == fused.ST_INPUT and fused.WIDE and (layer.kernel, layer.stride) == (3, 2)
                        and p["cout"] == fused.STEM_PLANAR_CHANNELS and ow >= 16):
                    cur.plane = (cur.w + 3) // 2       # bordered columns 0..w+1, half of them per parity
                out = _Tensor(oh, ow, p["cout"], int(feeds_depthwise(i + 1)))
                pairs = dict(W2=p["w_pairs"], B2=p["b_pairs"]) if cur.plane else {}
                cur = add(_Stage(fused.ST_CONV, out, [(cur, "conv")], layer.stride, top, layer.kernel, **pairs,
                                 PAD_L=left, W1=p["w"], B1=p["b"], RELU1=layer.relu6, Q1=q(layer),
                                 REC1=rec(layer.name, out, layer.out_channels), CR1=layer.out_channels))
                cur.producer.names = [layer.name]
                i += 1
            elif layer.op == "pointwise" and feeds_depthwise(i + 1):      # V2's expand
                out = _Tensor(cur.h, cur.w, p["cout"], 1)
                cur = add(_Stage(fused.ST_EXPAND, out, [(cur, "same")],
                                 group=group(out.h, out.w, max(cur.size, out.size)),
                                 W1=p["w"], B1=p["b"], RELU1=layer.relu6, Q1=q(layer),
                                 REC1=rec(layer.name, out, layer.out_channels), CR1=layer.out_channels))
                cur.producer.names = [layer.name]
                i += 1
            elif layer.op == "pointwise":                                 # on its own (V2's Conv_1)
                out = _Tensor(cur.h, cur.w, p["cout"], int(feeds_depthwise(i + 1)))
                cur = add(_Stage(fused.ST_PW, out, [(cur, "same")],
                                 group=group(out.h, out.w, max(cur.size, out.size)),
                                 W1=p["w"], B1=p["b"], RELU1=layer.relu6, Q1=q(layer),
                                 REC1=rec(layer.name, out, layer.out_channels), CR1=layer.out_channels))
                cur.producer.names = [layer.name]
                i += 1
            else:                                                         # depthwise -> pointwise [+ residual]
                dw, pdw = layer, p
                pw, ppw = layers[i + 1]
                if pw.op != "pointwise":
                    raise ValueError(f"{dw.name} is not followed by a pointwise layer")
                oh, top, _ = same_padding(cur.h, 3, dw.stride)
                ow, left, _ = same_padding(cur.w, 3, dw.stride)
                out = _Tensor(oh, ow, ppw["cout"], int(feeds_depthwise(i + 2)))
                inputs = [(cur, "conv")]
                block_input = None
                if pw.residual:
                    # the block's input: what its expand layer (or, without one, the depthwise) read
                    block_input = cur.producer.inputs[0][0] if cur.producer.op == fused.ST_EXPAND else cur
                    if (block_input.border or (block_input.h, block_input.w, block_input.c) != (oh, ow, ppw["cout"])):
                        raise ValueError(f"{pw.name}: residual shapes do not match")
                    inputs.append((block_input, "same"))
                dw_rec = rec(dw.name, out, dw.out_channels)
                pw_rec = rec(pw.name, out, pw.out_channels)
                block_rec = rec(pw.block, out, pw.out_channels) if pw.ends_block else -1
                whole = max(cur.size, oh * ow * cur.c, out.size)       # input, depthwise scratch, output
                stage = _Stage(fused.ST_DWPW, out, inputs, dw.stride, top, 3, group(oh, ow, whole), PAD_L=left,
                               W1=pdw["w"], B1=pdw["b"], RELU1=dw.relu6, W2=ppw["w"], B2=ppw["b"],
                               RELU2=pw.relu6, REC1=dw_rec, REC2=pw_rec, REC3=block_rec,
                               Q1=q(dw), Q2=q(pw), Q3=self._add.get(pw.name, -1),
                               CR1=dw.out_channels, CR2=pw.out_channels)
                stage.residual = block_input
                stage.names = [dw.name, pw.name]
                cur = add(stage)
                i += 2
        add(_Stage(fused.ST_POOL, _Tensor(1, 1, cur.c, 0), [(cur, "same")],
                   Q1=self._pool_record)).producer.names = ["pool"]
        stages[-1].out.h = cur.h      # the pool "produces" one step per input row
        return stages, cur.c, ends, ends_size

    @staticmethod
    def _schedule(stages):
        """Pull every row of the last stage; returns the (stage, row) order and, per tensor, how many of its
        rows must be kept (the largest distance between the newest row made and a row still read)."""
        index = {id(st): k for k, st in enumerate(stages)}
        made = [0] * len(stages)
        keep = [1] * len(stages)
        order = []

        def rows_read(stage, kind, i, src):
            if kind == "same":
                return i, i
            top = i * stage.stride - stage.pad_t
            return max(top, 0), min(top + stage.kernel - 1, src.h - 1)

        def make(k):
            stage = stages[k]
            i = made[k]
            rows = min(stage.group, stage.out.h - i)
            for src, kind in stage.inputs:
                j = index[id(src.producer)]
                while made[j] <= rows_read(stage, kind, i + rows - 1, src)[1]:
                    make(j)
            for src, kind in stage.inputs:     # measured after all pulls: one may have advanced another
                j = index[id(src.producer)]
                keep[j] = max(keep[j], made[j] - rows_read(stage, kind, i, src)[0])
            order.append((k, i, rows))
            made[k] += rows

        last = len(stages) - 1
        while made[last] < stages[last].out.h:
            make(last)
        return np.array(order, np.int64).reshape(-1, 3), keep

    def _make_plan(self, height, width, record):
        stages, features, ends, ends_size = self._stages(height, width, record)
        schedule, keep = self._schedule(stages)
        # The arena: [zero row | input rows | tensors, sharing memory | depthwise scratch]. The zero row and
        # the input rows are private and zeroed by every call (their borders are never written); the other
        # tensors share memory when their lifetimes do not overlap, and their writers zero their borders.
        tensors = [np.zeros(fused.T_NCOLS, np.int64)]   # tensor 0: the shared row of zeros
        tensor_ids, sizes = {}, []
        zero_len = 0
        scratch = 0
        for k, st in enumerate(stages):
            t = st.out
            if st.op == fused.ST_POOL:
                continue
            rowlen = 6 * t.plane if t.plane else (t.w + 2 * t.border) * t.c
            ring = t.h if st.group > 1 else min(keep[k], t.h)   # a group's rows are written as one run
            tensor_ids[id(t)] = len(tensors)
            row = np.zeros(fused.T_NCOLS, np.int64)
            row[[fused.T_RING, fused.T_ROWLEN, fused.T_BORDER, fused.T_H, fused.T_W, fused.T_C,
                 fused.T_PLANE]] = (ring, rowlen, t.border, t.h, t.w, t.c, t.plane)
            tensors.append(row)
            sizes.append(_aligned(ring * rowlen))
            if t.border:
                zero_len = max(zero_len, rowlen)
            if st.op == fused.ST_DWPW:
                scratch = max(scratch, st.group * t.w * st.inputs[0][0].c)
        private = _aligned(zero_len) + sizes[0]        # the zero row, then the input stage's rows
        tensors[0][fused.T_ROWLEN] = private
        tensors[1][fused.T_BASE] = _aligned(zero_len)
        shared, shared_size = assign_offsets(sizes[1:], _lifetimes(stages, schedule, tensor_ids)[1:])
        for ti, offset in enumerate(shared, start=2):
            tensors[ti][fused.T_BASE] = private + offset
        scratch_at = private + shared_size
        offset = scratch_at + _aligned(scratch)
        rows = []
        for st in stages:
            row = np.full(fused.NCOLS, -1, np.int64)
            row[fused.OP] = st.op
            row[fused.TOUT] = tensor_ids.get(id(st.out), -1)
            row[fused.TIN] = tensor_ids[id(st.inputs[0][0])] if st.inputs else -1
            residual = getattr(st, "residual", None)
            row[fused.TRES] = tensor_ids[id(residual)] if residual is not None else -1
            row[fused.STRIDE], row[fused.PAD_T], row[fused.K], row[fused.GROUP] = st.stride, st.pad_t, st.kernel, st.group
            row[fused.SCRATCH] = scratch_at
            for col in ("PAD_L", "RELU1", "RELU2", "PF0", "PF1"):    # (PF0 = PF1: nothing prefetched)
                row[getattr(fused, col)] = 0
            for col, value in st.cols.items():
                row[getattr(fused, col)] = int(value)
            rows.append(row)
        side_prefetch(rows, stages, self._head, L2_BYTES)
        # the arena is also where the logits layer writes its padded rows (fused._logits_stage): at least one
        arena = max(offset + ALIGN, _aligned(self._head[3]) if self._head is not None else 0)
        return Plan(np.stack(rows), np.stack(tensors), schedule, arena, features, ends, ends_size,
                    [st.names for st in stages])

    # ------------------------------------------------------------------------------------------ running
    # Everything here runs on every call, and right after a pass whose weights and maps have pushed the
    # interpreter's own code and data out of the caches, or after other engines that did: there each Python or
    # NumPy operation costs several times what it costs in a loop of its own (measured: a 15 us snippet of
    # allocations and a reduction took 38 us right after a V1 0.25/224 pass; the steps of a classify() call
    # took 6-23 us each right after other engines, 1-12 us in a loop). So the calls below do few of them:
    # few function calls, buffers kept with their plan and taken without a lock, the out-of-range count returned
    # by the pass, the logits written by the pass into the array returned, no array made for an unasked output.
    def _new_buffers(self, plan, threads):
        """``[arenas, accumulators, arenas[0], accumulators[0], pooled scratch]`` for ``plan``: the buffers of one
        call. :meth:`_call` takes a free set kept on the plan from an earlier call, else makes one, and keeps it
        there afterwards; so calls from several Python threads run at once (the compiled pass releases the GIL),
        each in its own arena."""
        arenas = aligned_zeros((threads, plan.arena_size))
        accs = np.zeros((threads, plan.features), np.float64)
        return [arenas, accs, arenas[0], accs[0], np.empty(plan.features, np.float32)]

    def run(self, x, logits=False, record=False, cycles=None):
        """``(features [N, C], logits [N, classes] or None, endpoints or None)`` for checked images ``x``
        [N, H, W, 3] (values are checked on the way: NaN, infinities or values outside [0, 1] raise
        :class:`~mobilenet_np.errors.InputError`): one compiled call for the whole batch. With ``record``, the
        endpoints are ``{name: [N, h, w, c]}`` for every layer (in network order). ``cycles``: an int64 array of
        ``len(plan.stages) + 1`` to which each stage's CPU cycles are added (the last entry: the logits);
        single-threaded."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if logits and self._head is None:
            raise ValueError("this model has no logits layer")
        n = len(x)
        plan = self.plan(x.shape[1], x.shape[2], record)
        pooled, z, ends = self._call(x, plan, self._head if logits else self._no_head, record, cycles)
        features = self._features_of(pooled, n, plan)
        if not logits:
            z = None
        if not record:
            return features, z, None
        endpoints = {}
        for name, (offset, shape) in plan.ends.items():
            size = int(np.prod(shape))
            endpoints[name] = ends[n * offset:n * (offset + size)].reshape(n, *shape)
        return features, z, endpoints

    def classify(self, x):
        """The logits ``[N, classes]`` of images ``x`` already checked by
        :func:`~mobilenet_np.inputs.check_images` (C-contiguous float32): :meth:`run` without its features."""
        if self._head is None:
            raise ValueError("this model has no logits layer")
        return self._call(x, self.plan(x.shape[1], x.shape[2]), self._head, False, None, features=False)[1]

    def features(self, x):
        """The pooled features ``[N, C]`` of images ``x`` already checked (see :meth:`classify`)."""
        plan = self.plan(x.shape[1], x.shape[2])
        return self._features_of(self._call(x, plan, self._no_head, False, None)[0], len(x), plan)

    def _features_of(self, pooled, n, plan):
        c = self.num_features
        f = pooled.reshape(n, plan.features)
        return f if c == plan.features else np.ascontiguousarray(f[:, :c])

    def _call(self, x, plan, head, record, cycles, features=True):
        """One compiled call for the batch ``x`` (C-contiguous float32, or an 8-bit model's own integers):
        ``(pooled, logits, endpoints)``: the pooled features as a flat float32 buffer ``[N * padded features]``
        (without ``features``, a scratch buffer the next call reuses), the logits ``[N, classes]`` (float32; an
        empty array when ``head`` is ``_no_head``) and the flat endpoint buffer. Refuses images with values
        outside the input stage's range."""
        n = x.shape[0]
        out = self._no_logits if head is self._no_head else np.empty((n, self.num_classes), np.float32)
        ends = np.empty(n * plan.ends_size, np.float32) if record else self._no_ends
        threads = 1 if cycles is not None or n <= 1 else min(self.threads, n)
        free = plan.free[threads]       # list.pop and append are atomic: no lock is needed
        try:
            bufs = free.pop()
        except IndexError:
            bufs = self._new_buffers(plan, threads)
        try:
            if features:
                pooled = np.empty(n * plan.features, np.float32)
            else:
                pooled = bufs[4]
                if pooled.size < n * plan.features:
                    pooled = bufs[4] = np.empty(n * plan.features, np.float32)
            if threads == 1:
                bad = fused.forward(x, plan.stages, plan.tensors, plan.schedule, self.params, self.qparams, bufs[2],
                                    bufs[3], pooled, ends, record, head, out,
                                    self._no_cycles if cycles is None else cycles)
            else:
                bad = fused.forward_parallel(x, plan.stages, plan.tensors, plan.schedule, self.params, self.qparams,
                                             bufs[0], bufs[1], pooled, ends, record, head, out, self._no_cycles)
        finally:
            free.append(bufs)
        if bad:
            check_values(x)      # raises InputError naming the problem
        return pooled, out, ends

    def logits(self, features):
        """``features @ W + b`` of the logits layer, ``[N, num_classes]``."""
        if self._head is None:
            raise ValueError("this model has no logits layer")
        n = features.shape[0]
        cin, cout = self._head[2], self._head[3]
        f = np.zeros((n, cin), np.float32)
        f[:, :features.shape[1]] = features
        z = np.empty((n, self.num_classes), np.float32)
        # (the pass's own logits step: padded rows into a scratch buffer, the real classes copied out)
        fused._logits_stage(f.ravel(), n, self.params, None, self._head, np.empty(max(n, 1) * cout, np.float32), z)
        return z


# ---------------------------------------------------------------------------------------------------------
# The fused kernels on whole tensors, with the per-layer kernels' signatures (for tests and for study): each
# pads channels to multiples of 8, packs the weights, lays the input out as the executor does (zero border for
# 3x3 convolutions) and calls the kernel row by row. NHWC float32 in, NHWC float32 out.
# ---------------------------------------------------------------------------------------------------------
def _params(*arrays):
    """One parameter buffer from ``arrays`` (flattened), and their offsets."""
    params = _Params()
    offsets = [params.add(a) for a in arrays]
    return params.buffer(), offsets


def fused_pointwise(x, w, bias, relu6, residual=None):
    """:func:`~mobilenet_np.kernels.pointwise_conv2d` [+ ``residual``] by :func:`fused.gemm` (one GEMM over all
    pixels, the residual added in its epilogue)."""
    n, h, wd, cin = x.shape
    cout = w.shape[1]
    cp, op = padded(cin), padded(cout)
    npx = n * h * wd
    out_at, res_at = npx * cp, npx * (cp + op)     # one buffer: inputs, outputs, residual
    buf = np.zeros(npx * (cp + 2 * op) + ALIGN, np.float32)
    buf[:out_at].reshape(npx, cp)[:, :cin] = x.reshape(npx, cin)
    res = residual is not None
    if res:
        buf[res_at:res_at + npx * op].reshape(npx, op)[:, :cout] = residual.reshape(npx, cout)
    prm, (w_off, b_off) = _params(pack_gemm(_pad_to(w, (cp, op))), _pad_to(bias, (op,)))
    fused.gemm(buf, 0, 0, 0, 1, cp, cp, npx, prm, w_off, b_off, op, bool(relu6), buf, out_at, op, npx, 0,
               res, res_at, op, 0, 0)
    return buf[out_at:out_at + npx * op].reshape(n, h, wd, op)[..., :cout].copy()


def _bordered(x, c):
    """``x`` [N, H, W, C] inside a zero border of one pixel, channels padded to ``c``."""
    n, h, wd, cin = x.shape
    xp = np.zeros((n, h + 2, wd + 2, c), np.float32)
    xp[:, 1:h + 1, 1:wd + 1, :cin] = x
    return xp


def fused_conv(x, w, bias, stride, relu6):
    """:func:`~mobilenet_np.kernels.conv2d` with TF 'SAME' padding (K <= 3), row by row with
    :func:`fused.conv_row` as the executor runs it (the K*K*Cin taps of an output row are three runs of K*Cin
    values, one per input row)."""
    n, h, wd, cin = x.shape
    k, cout = w.shape[0], w.shape[3]
    op = padded(cout)
    oh, top, _ = same_padding(h, k, stride)
    ow, left, _ = same_padding(wd, k, stride)
    xp = _bordered(x, cin)
    rowlen = (wd + 2) * cin
    src = np.concatenate([xp.ravel(), np.zeros(ALIGN, np.float32)])
    prm, (w_off, b_off) = _params(pack_gemm(_pad_to(w.reshape(k * k * cin, cout), (k * k * cin, op))),
                                  _pad_to(bias, (op,)))
    out = np.zeros(n * oh * ow * op + ALIGN, np.float32)
    for b in range(n):
        for i in range(oh):
            seg = [(b * (h + 2) + i * stride - top + 1 + r) * rowlen + (1 - left) * cin for r in range(k)] + [0, 0]
            fused.conv_row(src, seg[0], seg[1], seg[2], k, cin, stride, ow, prm, w_off, b_off, op, bool(relu6), out,
                           (b * oh + i) * ow * op)
    return out[:n * oh * ow * op].reshape(n, oh, ow, op)[..., :cout].copy()


def fused_depthwise(x, w, bias, stride, relu6):
    """:func:`~mobilenet_np.kernels.depthwise_conv2d` (3x3, multiplier 1, TF 'SAME') by :func:`fused.dw_row`."""
    n, h, wd, c = x.shape
    cp = padded(c)
    oh, top, _ = same_padding(h, 3, stride)
    ow, left, _ = same_padding(wd, 3, stride)
    src = np.concatenate([_bordered(x, cp).ravel(), np.zeros(ALIGN, np.float32)])
    rowlen = (wd + 2) * cp
    prm, (w_off, b_off) = _params(_pad_to(w.reshape(9, c), (9, cp)), _pad_to(bias, (cp,)))
    out = np.zeros(n * oh * ow * cp + ALIGN, np.float32)
    for b in range(n):
        for i in range(oh):
            r0 = (b * (h + 2) + i * stride - top + 1) * rowlen + (1 - left) * cp
            fused.dw_row(src, r0, r0 + rowlen, r0 + 2 * rowlen, cp, stride, ow, prm, w_off, b_off, bool(relu6),
                         out, (b * oh + i) * ow * cp, cp)
    return out[:n * oh * ow * cp].reshape(n, oh, ow, cp)[..., :c].copy()


def fused_dense(f, w, bias, int16=False):
    """:func:`~mobilenet_np.kernels.logits` by :func:`fused.dense` (matrix-vector products for N < 4; with
    ``int16``, integer weights read as int16)."""
    n, cin = f.shape
    cout = w.shape[1]
    cp, op = padded(cin), padded(cout)
    fp = np.zeros((n, cp), np.float32)
    fp[:, :cin] = f
    packed = pack_gemm(_pad_to(w, (cp, op)))
    prm, (w_off, b_off, w16) = _params(packed, _pad_to(bias, (op,)),
                                       as_int16_pairs(packed) if int16 else np.zeros(0, np.float32))
    out = np.zeros(max(n, 1) * op, np.float32)
    fused.dense(fp.ravel(), n, cp, prm, w_off, b_off, op, out, 2 * w16 if int16 else -1)
    return out[:n * op].reshape(n, op)[:, :cout].copy()

