"""Explicit SIMD for Numba: a float32 vector type and the few intrinsics the fast executor is built from.

Numba's auto-vectorizer (LLVM's) does well on simple loops but cannot keep a *register tile* -- a small block of
accumulators reused across a long reduction -- in registers: it sees arrays in memory, not values. So the fast
kernels (:mod:`mobilenet_np.kernels.fused`) say what they mean with portable LLVM vector types:

* ``f32x16`` / ``f32x8``: 16 or 8 float32 lanes (an AVX-512 ``zmm`` / AVX ``ymm`` register; LLVM splits them
  into whatever the host has -- two ``ymm`` on AVX2, four ``xmm`` on SSE or NEON -- so the code runs anywhere,
  just fastest where the registers are that wide);
* vectors: loads and stores at any float32 element (unaligned), ``a * b + c``, ReLU6;
* *tiles*: ``UniTuple(UniTuple(vector, NV), PT)`` values -- PT pixels x NV vectors of output channels -- which
  LLVM keeps entirely in registers, with one intrinsic per step of the reduction (:func:`tile_fma`: broadcast
  one input of each pixel, multiply-add it with a row of weights), or with a small weight matrix held in
  registers too (:func:`load_rows_like`, :func:`tile_dot_rows`);
* pixel offsets for tiles (:func:`offsets`, :func:`run_offsets`, ...), and the CPU's cycle counter;
* the integer models' reference-rounding epilogues, TFLite's fixed-point formulas, exact, each branch a
  select: on 16 (or 8) int32 lanes where every intermediate fits in 32 bits (:func:`requant_narrow`,
  :func:`add_narrow16`), else on 8 int64 lanes (:func:`requant_reference8`, :func:`add_reference8`).

Numerics: every multiply-add is LLVM's ``fmuladd``: fused (one rounding) where the CPU has FMA (every x86-64
since 2013, every ARMv8), otherwise a multiply and an add. Nothing here reorders a sum: each lane accumulates
its own products in the order the caller feeds them.

All array arguments are 1-D C-contiguous float32 buffers and all indices are element offsets; there is no
bounds checking (the callers' buffer plans guarantee every access is inside).

Numba's on-disk cache keys a compiled function on its own source file only: after editing this file, update
``fused.COMPILED_IN`` (``tests/test_cache_key.py`` prints the new value; see :mod:`.cache_key`).
"""
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model


class F32Vector(types.Type):
    """A SIMD vector of ``lanes`` float32 values (an LLVM ``<lanes x float>``)."""

    def __init__(self, lanes):
        self.lanes = lanes
        super().__init__(name=f"f32x{lanes}")


f32x8 = F32Vector(8)
f32x16 = F32Vector(16)
_I32 = ir.IntType(32)


@register_model(F32Vector)
class _F32VectorModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, ir.VectorType(ir.FloatType(), fe_type.lanes))


def _is_buffer(t):
    return isinstance(t, types.Array) and t.dtype == types.float32 and t.ndim == 1 and t.layout == "C"


def _is_pixels(t):
    """Image values the input stage reads: a 1-D C-contiguous float32, uint8 or int8 buffer."""
    return (isinstance(t, types.Array) and t.dtype in (types.float32, types.uint8, types.int8) and t.ndim == 1
            and t.layout == "C")


def _load_as_float(builder, ptr, lanes, dtype):
    """``lanes`` values at ``ptr`` (float32, or uint8 / int8 / int16 converted exactly) as a float32 vector."""
    if dtype == types.float32:
        return _vector_load(builder, ptr, lanes)
    vty = ir.VectorType(ir.IntType(dtype.bitwidth), lanes)
    v = builder.load(builder.bitcast(ptr, vty.as_pointer()), align=dtype.bitwidth // 8, typ=vty)
    to = ir.VectorType(ir.FloatType(), lanes)
    return builder.sitofp(v, to) if dtype.signed else builder.uitofp(v, to)


def _literal_int(t):
    return t.literal_value if isinstance(t, types.IntegerLiteral) else None


def _element_pointer(context, builder, arrty, arr, idxty, idx):
    data = context.make_array(arrty)(context, builder, arr).data
    return builder.gep(data, [context.cast(builder, idx, idxty, types.intp)])


def _vector_load(builder, ptr, lanes):
    vty = ir.VectorType(ir.FloatType(), lanes)
    return builder.load(builder.bitcast(ptr, vty.as_pointer()), align=4, typ=vty)


def _splat(builder, scalar, lanes):
    """``lanes`` copies of ``scalar`` (a float, or the i64 holding two floats) as one vector."""
    vty = ir.VectorType(scalar.type, lanes)
    v = builder.insert_element(ir.Constant(vty, ir.Undefined), scalar, ir.Constant(_I32, 0))
    return builder.shuffle_vector(v, ir.Constant(vty, ir.Undefined), ir.Constant(ir.VectorType(_I32, lanes), [0] * lanes))


def _fmuladd(builder, a, b, c):
    vty = a.type
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [vty, vty, vty]),
                                        f"llvm.fmuladd.v{vty.count}f32")
    return builder.call(fn, [a, b, c])


def _clamp6(builder, v):
    zero = ir.Constant(v.type, [0.0] * v.type.count)
    six = ir.Constant(v.type, [6.0] * v.type.count)
    v = builder.select(builder.fcmp_ordered(">", v, zero), v, zero)   # max(v, 0)
    return builder.select(builder.fcmp_ordered("<", v, six), v, six)  # min(v, 6)


# ------------------------------------------------------------------------------------------ single vectors
@intrinsic
def store(typingctx, buf, i, v):
    """``buf[i : i + lanes] = v``."""
    if not (_is_buffer(buf) and isinstance(i, types.Integer) and isinstance(v, F32Vector)):
        return None

    def codegen(context, builder, sig, args):
        ptr = _element_pointer(context, builder, sig.args[0], args[0], sig.args[1], args[1])
        builder.store(args[2], builder.bitcast(ptr, args[2].type.as_pointer()), align=4)
        return context.get_dummy_value()
    return types.none(buf, i, v), codegen


@intrinsic
def fma(typingctx, a, b, c):
    """``a * b + c`` lane by lane (fused where the CPU has FMA)."""
    if not (isinstance(a, F32Vector) and a == b == c):
        return None

    def codegen(context, builder, sig, args):
        return _fmuladd(builder, *args)
    return a(a, b, c), codegen


@intrinsic
def clamp6(typingctx, a):
    """ReLU6: ``min(max(a, 0), 6)`` lane by lane."""
    if not isinstance(a, F32Vector):
        return None

    def codegen(context, builder, sig, args):
        return _clamp6(builder, args[0])
    return a(a), codegen


# ------------------------------------------------------------------------------------------------- tiles
def _tile_shape(acc):
    """``(PT, NV, vector type)`` of a tile type, or None."""
    if (isinstance(acc, types.UniTuple) and isinstance(acc.dtype, types.UniTuple)
            and isinstance(acc.dtype.dtype, F32Vector)):
        return acc.count, acc.dtype.count, acc.dtype.dtype
    return None


def _is_offsets(t):
    return isinstance(t, types.UniTuple) and isinstance(t.dtype, types.Integer)


@intrinsic(prefer_literal=True)
def offsets(typingctx, base, p, last, stride, count):
    """``(base + min(p + k, last) * stride for k in range(count))``: element offsets of ``count`` consecutive
    pixels, the ones past ``last`` replaced by ``last`` (a tile over the end of a row recomputes the last
    pixel and stores the same values twice instead of needing a narrower kernel)."""
    n = _literal_int(count)
    if n is None or not all(isinstance(t, types.Integer) for t in (base, p, last, stride)):
        return None
    rtype = types.UniTuple(types.intp, n)

    def codegen(context, builder, sig, args):
        b, q, lst, s = (context.cast(builder, v, t, types.intp) for v, t in zip(args[:4], sig.args[:4]))
        out = ir.Constant(context.get_value_type(rtype), ir.Undefined)
        for k in range(n):
            pk = builder.add(q, ir.Constant(q.type, k))
            pk = builder.select(builder.icmp_signed("<", pk, lst), pk, lst)
            out = builder.insert_value(out, builder.add(b, builder.mul(pk, s)), k)
        return out
    return rtype(base, p, last, stride, count), codegen


@intrinsic(prefer_literal=True)
def run_offsets(typingctx, base, stride, count):
    """``(base + k * stride for k in range(count))``: ``count`` pixels in a row, no clamping."""
    n = _literal_int(count)
    if n is None or not (isinstance(base, types.Integer) and isinstance(stride, types.Integer)):
        return None
    rtype = types.UniTuple(types.intp, n)

    def codegen(context, builder, sig, args):
        return _run_offsets(context, builder, rtype, args[:2], sig.args[:2])
    return rtype(base, stride, count), codegen


def _run_offsets(context, builder, rtype, args, types_):
    """``(base + k * stride for k < len(rtype))`` from the values ``args = (base, stride)``."""
    b, s = (context.cast(builder, v, t, types.intp) for v, t in zip(args, types_))
    out = ir.Constant(context.get_value_type(rtype), ir.Undefined)
    for k in range(rtype.count):
        out = builder.insert_value(out, builder.add(b, builder.mul(s, ir.Constant(s.type, k))), k)
    return out


def _make_load_row(lanes):
    vtype = F32Vector(lanes)

    def load_row(typingctx, buf, i, count):
        n = _literal_int(count)
        if n is None or not (_is_buffer(buf) and isinstance(i, types.Integer)):
            return None
        rtype = types.UniTuple(vtype, n)

        def codegen(context, builder, sig, args):
            ptr = _element_pointer(context, builder, sig.args[0], args[0], sig.args[1], args[1])
            out = ir.Constant(context.get_value_type(rtype), ir.Undefined)
            for v in range(n):
                at = builder.gep(ptr, [ir.Constant(ir.IntType(64), v * lanes)])
                out = builder.insert_value(out, _vector_load(builder, at, lanes), v)
            return out
        return rtype(buf, i, count), codegen
    load_row.__name__ = f"load_row{lanes}"
    load_row.__doc__ = f"``count`` consecutive ``f32x{lanes}`` vectors from ``buf[i:]`` (a tuple)."
    return intrinsic(prefer_literal=True)(load_row)


load_row8, load_row16 = _make_load_row(8), _make_load_row(16)


@intrinsic
def tile_init(typingctx, row, offs):
    """A tile with every pixel's accumulators set to ``row`` (one tuple of vectors, e.g. the biases); the
    tile has as many pixels as ``offs`` has offsets."""
    if not (isinstance(row, types.UniTuple) and isinstance(row.dtype, F32Vector) and _is_offsets(offs)):
        return None
    rtype = types.UniTuple(row, offs.count)

    def codegen(context, builder, sig, args):
        out = ir.Constant(context.get_value_type(rtype), ir.Undefined)
        for p in range(offs.count):
            out = builder.insert_value(out, args[0], p)
        return out
    return rtype(row, offs), codegen


@intrinsic
def tile_fma(typingctx, src, offs, c, row, acc):
    """One step of the reduction: ``acc[p][v] += src[offs[p] + c] * row[v]`` for every pixel p, vector v."""
    shape = _tile_shape(acc)
    if (shape is None or not _is_buffer(src) or not _is_offsets(offs) or offs.count != shape[0]
            or not isinstance(c, types.Integer) or row != acc.dtype):
        return None
    pt, nv, vtype = shape

    def codegen(context, builder, sig, args):
        src_v, offs_v, c_v, row_v, acc_v = args
        c_v = context.cast(builder, c_v, sig.args[2], types.intp)
        data = context.make_array(sig.args[0])(context, builder, src_v).data
        weights = [builder.extract_value(row_v, v) for v in range(nv)]
        out = acc_v
        for p in range(pt):
            ptr = builder.gep(data, [builder.add(builder.extract_value(offs_v, p), c_v)])
            x = _splat(builder, builder.load(ptr, align=4, typ=ir.FloatType()), vtype.lanes)
            for v in range(nv):
                out = builder.insert_value(out, _fmuladd(builder, x, weights[v], builder.extract_value(out, [p, v])), [p, v])
        return out
    return acc(src, offs, c, row, acc), codegen


@intrinsic(prefer_literal=True)
def tile_dw_taps(typingctx, src, r, c, step, taps, acc):
    """One input row of a 3x3 depthwise convolution at stride 1 for a tile of output vectors ``step`` input
    vectors apart (``step`` a literal: 1 for one pixel of ``c`` channels per vector; 2 for 8 channels of two
    pixels per 16-lane vector, ``c`` = 8): ``acc[p][0] += src[r + (p step + kx) c :][:lanes] * taps[kx]`` for
    kx = 0, 1, 2. Each input vector is loaded once and feeds every sum that reads it, and every output adds its
    taps left to right: the same sums in the same order as one output at a time."""
    shape = _tile_shape(acc)
    st = _literal_int(step)
    if (shape is None or shape[1] != 1 or st not in (1, 2) or not _is_buffer(src) or not isinstance(r, types.Integer)
            or not isinstance(c, types.Integer) or not isinstance(taps, types.UniTuple) or taps.count != 3
            or taps.dtype != shape[2]):
        return None
    pt, _, vtype = shape

    def codegen(context, builder, sig, args):
        src_v, r_v, c_v, _, taps_v, out = args
        r_v, c_v = (context.cast(builder, v, t, types.intp) for v, t in zip((r_v, c_v), sig.args[1:3]))
        data = context.make_array(sig.args[0])(context, builder, src_v).data
        w = [builder.extract_value(taps_v, kx) for kx in range(3)]
        for q in range((pt - 1) * st + 3):        # input vector q is tap kx of output p when p step + kx = q
            x = _vector_load(builder, builder.gep(data, [builder.add(r_v, builder.mul(c_v, ir.Constant(c_v.type, q)))]),
                             vtype.lanes)
            for kx in (2, 1, 0):
                p, rest = divmod(q - kx, st)
                if rest == 0 and 0 <= p < pt:
                    out = builder.insert_value(out, _fmuladd(builder, x, w[kx], builder.extract_value(out, [p, 0])),
                                               [p, 0])
        return out
    return acc(src, r, c, step, taps, acc), codegen


@intrinsic
def tile_clamp6(typingctx, acc):
    """ReLU6 of every accumulator of a tile."""
    shape = _tile_shape(acc)
    if shape is None:
        return None

    def codegen(context, builder, sig, args):
        out = args[0]
        for p in range(shape[0]):
            for v in range(shape[1]):
                out = builder.insert_value(out, _clamp6(builder, builder.extract_value(out, [p, v])), [p, v])
        return out
    return acc(acc), codegen


@intrinsic
def tile_add(typingctx, src, offs, acc):
    """``acc[p][v] += src[offs[p] + v * lanes : ... + lanes]`` (the residual connection)."""
    shape = _tile_shape(acc)
    if shape is None or not _is_buffer(src) or not _is_offsets(offs) or offs.count != shape[0]:
        return None
    pt, nv, vtype = shape

    def codegen(context, builder, sig, args):
        data = context.make_array(sig.args[0])(context, builder, args[0]).data
        out = args[2]
        for p in range(pt):
            base = builder.gep(data, [builder.extract_value(args[1], p)])
            for v in range(nv):
                x = _vector_load(builder, builder.gep(base, [ir.Constant(ir.IntType(64), v * vtype.lanes)]), vtype.lanes)
                out = builder.insert_value(out, builder.fadd(builder.extract_value(out, [p, v]), x), [p, v])
        return out
    return acc(src, offs, acc), codegen


@intrinsic
def tile_store(typingctx, dst, offs, acc):
    """``dst[offs[p] + v * lanes : ... + lanes] = acc[p][v]``."""
    shape = _tile_shape(acc)
    if shape is None or not _is_buffer(dst) or not _is_offsets(offs) or offs.count != shape[0]:
        return None
    pt, nv, vtype = shape

    def codegen(context, builder, sig, args):
        data = context.make_array(sig.args[0])(context, builder, args[0]).data
        for p in range(pt):
            base = builder.gep(data, [builder.extract_value(args[1], p)])
            for v in range(nv):
                ptr = builder.gep(base, [ir.Constant(ir.IntType(64), v * vtype.lanes)])
                builder.store(builder.extract_value(args[2], [p, v]),
                              builder.bitcast(ptr, ir.VectorType(ir.FloatType(), vtype.lanes).as_pointer()), align=4)
        return context.get_dummy_value()
    return types.none(dst, offs, acc), codegen


# ------------------------------------------------------------------------------ "shaped like" helpers
# A generic kernel receives a template value (a bias row, a tuple of offsets) and makes more values of the
# same shape; so one Numba function serves every tile shape without literal arguments.
@intrinsic
def load_like(typingctx, row, buf, i):
    """A tuple of vectors shaped like ``row``, loaded from consecutive elements ``buf[i:]``."""
    if not (isinstance(row, types.UniTuple) and isinstance(row.dtype, F32Vector) and _is_buffer(buf)
            and isinstance(i, types.Integer)):
        return None
    lanes = row.dtype.lanes

    def codegen(context, builder, sig, args):
        ptr = _element_pointer(context, builder, sig.args[1], args[1], sig.args[2], args[2])
        out = ir.Constant(context.get_value_type(row), ir.Undefined)
        for v in range(row.count):
            out = builder.insert_value(out, _vector_load(builder, builder.gep(ptr, [ir.Constant(ir.IntType(64), v * lanes)]), lanes), v)
        return out
    return row(row, buf, i), codegen


@intrinsic
def load_int16_like(typingctx, row, buf, i):
    """A tuple of vectors shaped like ``row``, converted (exactly) from the int16 values stored in ``buf``'s bytes
    from the ``i``-th int16 on (``buf`` viewed as int16: a float32 buffer holds two per element). Integer weights
    (the integer models' logits) stream in at half the bytes of float32 ones."""
    if not (isinstance(row, types.UniTuple) and isinstance(row.dtype, F32Vector) and _is_buffer(buf)
            and isinstance(i, types.Integer)):
        return None
    lanes = row.dtype.lanes

    def codegen(context, builder, sig, args):
        base = builder.bitcast(context.make_array(sig.args[1])(context, builder, args[1]).data,
                               ir.IntType(16).as_pointer())
        ptr = builder.gep(base, [context.cast(builder, args[2], sig.args[2], types.intp)])
        out = ir.Constant(context.get_value_type(row), ir.Undefined)
        for v in range(row.count):
            at = builder.gep(ptr, [ir.Constant(ir.IntType(64), v * lanes)])
            out = builder.insert_value(out, _load_as_float(builder, at, lanes, types.int16), v)
        return out
    return row(row, buf, i), codegen


@intrinsic
def offsets_like(typingctx, template, base, p, last, stride):
    """:func:`offsets` with as many pixels as ``template`` has."""
    if not (_is_offsets(template) and all(isinstance(t, types.Integer) for t in (base, p, last, stride))):
        return None
    n = template.count
    rtype = types.UniTuple(types.intp, n)

    def codegen(context, builder, sig, args):
        b, q, lst, s = (context.cast(builder, v, t, types.intp) for v, t in zip(args[1:], sig.args[1:]))
        out = ir.Constant(context.get_value_type(rtype), ir.Undefined)
        for k in range(n):
            pk = builder.add(q, ir.Constant(q.type, k))
            pk = builder.select(builder.icmp_signed("<", pk, lst), pk, lst)
            out = builder.insert_value(out, builder.add(b, builder.mul(pk, s)), k)
        return out
    return rtype(template, base, p, last, stride), codegen


@intrinsic
def run_offsets_like(typingctx, template, base, stride):
    """:func:`run_offsets` with as many pixels as ``template`` has: ``base + k * stride``, no clamping."""
    if not (_is_offsets(template) and isinstance(base, types.Integer) and isinstance(stride, types.Integer)):
        return None
    n = template.count
    rtype = types.UniTuple(types.intp, n)

    def codegen(context, builder, sig, args):
        return _run_offsets(context, builder, rtype, args[1:], sig.args[1:])
    return rtype(template, base, stride), codegen


@intrinsic
def offsets2d_like(typingctx, template, base, p, last, step, rowpx, rowstride):
    """Offsets of pixels ``min(p + k, last)`` of a map stored row by row: pixel q at
    ``base + (q // rowpx) * rowstride + (q % rowpx) * step`` (rows of ``rowpx`` pixels, ``rowstride`` apart --
    e.g. rows with a border). One division for the first pixel; the others step along from it."""
    if not (_is_offsets(template)
            and all(isinstance(t, types.Integer) for t in (base, p, last, step, rowpx, rowstride))):
        return None
    n = template.count
    rtype = types.UniTuple(types.intp, n)

    def codegen(context, builder, sig, args):
        b, q, lst, s, rp, rs = (context.cast(builder, v, t, types.intp) for v, t in zip(args[1:], sig.args[1:]))
        one, zero = ir.Constant(q.type, 1), ir.Constant(q.type, 0)
        q0 = builder.select(builder.icmp_signed("<", q, lst), q, lst)
        row = builder.sdiv(q0, rp)
        col = builder.sub(q0, builder.mul(row, rp))
        out = ir.Constant(context.get_value_type(rtype), ir.Undefined)
        for k in range(n):
            if k:   # advance one pixel unless clamped at `last`; wrap to the next row
                step_on = builder.icmp_signed("<=", builder.add(q, ir.Constant(q.type, k)), lst)
                col = builder.add(col, builder.select(step_on, one, zero))
                wrap = builder.icmp_signed("==", col, rp)
                col = builder.select(wrap, zero, col)
                row = builder.add(row, builder.select(wrap, one, zero))
            out = builder.insert_value(out, builder.add(b, builder.add(builder.mul(row, rs), builder.mul(col, s))), k)
        return out
    return rtype(template, base, p, last, step, rowpx, rowstride), codegen


@intrinsic(prefer_literal=True)
def load_rows_like(typingctx, row, buf, i, stride, count):
    """``count`` rows shaped like ``row`` (a tuple of vectors), row r from ``buf[i + r * stride:]``: a small
    weight matrix to keep in registers."""
    n = _literal_int(count)
    if (n is None or not (isinstance(row, types.UniTuple) and isinstance(row.dtype, F32Vector)) or not _is_buffer(buf)
            or not isinstance(i, types.Integer) or not isinstance(stride, types.Integer)):
        return None
    lanes = row.dtype.lanes
    rtype = types.UniTuple(row, n)

    def codegen(context, builder, sig, args):
        base = _element_pointer(context, builder, sig.args[1], args[1], sig.args[2], args[2])
        st = context.cast(builder, args[3], sig.args[3], types.intp)
        out = ir.Constant(context.get_value_type(rtype), ir.Undefined)
        for r in range(n):
            ptr = builder.gep(base, [builder.mul(st, ir.Constant(st.type, r))])
            for v in range(row.count):
                vec = _vector_load(builder, builder.gep(ptr, [ir.Constant(ir.IntType(64), v * lanes)]), lanes)
                out = builder.insert_value(out, vec, [r, v])
        return out
    return rtype(row, buf, i, stride, count), codegen


@intrinsic
def tile_dot_rows(typingctx, src, offs, rows, acc):
    """``acc[p][v] += sum over r (in order) of src[offs[p] + r] * rows[r][v]``: one step per input channel, the
    weights ``rows`` (from :func:`load_rows_like`) already in registers."""
    shape = _tile_shape(acc)
    if (shape is None or not _is_buffer(src) or not _is_offsets(offs) or offs.count != shape[0]
            or not (isinstance(rows, types.UniTuple) and rows.dtype == acc.dtype)):
        return None
    pt, nv, vtype = shape

    def codegen(context, builder, sig, args):
        data = context.make_array(sig.args[0])(context, builder, args[0]).data
        out = args[3]
        for r in range(rows.count):
            for p in range(pt):
                ptr = builder.gep(data, [builder.add(builder.extract_value(args[1], p), ir.Constant(ir.IntType(64), r))])
                x = _splat(builder, builder.load(ptr, align=4, typ=ir.FloatType()), vtype.lanes)
                for v in range(nv):
                    out = builder.insert_value(out, _fmuladd(builder, x, builder.extract_value(args[2], [r, v]),
                                                             builder.extract_value(out, [p, v])), [p, v])
        return out
    return acc(src, offs, rows, acc), codegen


# ------------------------------------------------------------------------------ pixel-pair rows
# A "pair row" is a tuple of NV f32x16 vectors, vector v holding 8 channels of two neighbouring pixels with
# the channels interleaved: lane 2c + q is channel c of pixel 2v + q (the 8-channel stem, fused._stem_planar_row:
# two pixels' inputs are one 64-bit broadcast, the weights a vector with each channel's weight twice).
@intrinsic(prefer_literal=True)
def repeat_vector(typingctx, v, count):
    """A tuple of ``count`` copies of the vector ``v``."""
    n = _literal_int(count)
    if n is None or not isinstance(v, F32Vector):
        return None
    rtype = types.UniTuple(v, n)

    def codegen(context, builder, sig, args):
        out = ir.Constant(context.get_value_type(rtype), ir.Undefined)
        for k in range(n):
            out = builder.insert_value(out, args[0], k)
        return out
    return rtype(v, count), codegen


@intrinsic
def rows_fma_pairs(typingctx, buf, i, w, acc):
    """``acc[v] += [x0, x1, x0, x1, ...] * w`` for every vector v of a pair row, where ``x0, x1`` =
    ``buf[i + 2 v], buf[i + 2 v + 1]`` (one 64-bit broadcast load, no shuffle) and ``w`` an f32x16."""
    if not (_is_buffer(buf) and isinstance(i, types.Integer) and w == f32x16 and isinstance(acc, types.UniTuple)
            and acc.dtype == f32x16):
        return None

    def codegen(context, builder, sig, args):
        ptr = _element_pointer(context, builder, sig.args[0], args[0], sig.args[1], args[1])
        i64 = ir.IntType(64)
        out = args[3]
        for v in range(acc.count):
            at = builder.bitcast(builder.gep(ptr, [ir.Constant(i64, 2 * v)]), i64.as_pointer())
            pair = _splat(builder, builder.load(at, align=4, typ=i64), 8)      # the two floats as one i64, x8
            x = builder.bitcast(pair, ir.VectorType(ir.FloatType(), 16))
            out = builder.insert_value(out, _fmuladd(builder, x, args[2], builder.extract_value(out, v)), v)
        return out
    return acc(buf, i, w, acc), codegen


@intrinsic
def rows_clamp6(typingctx, acc):
    """ReLU6 of every vector of a pair row (or any tuple of vectors)."""
    if not (isinstance(acc, types.UniTuple) and isinstance(acc.dtype, F32Vector)):
        return None

    def codegen(context, builder, sig, args):
        out = args[0]
        for c in range(acc.count):
            out = builder.insert_value(out, _clamp6(builder, builder.extract_value(out, c)), c)
        return out
    return acc(acc), codegen


@intrinsic
def store_pairs(typingctx, dst, i, acc):
    """Store a pair row as pixels: ``dst[i + (2 v + q) * 8 + c] = acc[v][2 c + q]`` (NHWC, 8 channels), one
    in-register permute and one contiguous store per vector."""
    if not (_is_buffer(dst) and isinstance(i, types.Integer) and isinstance(acc, types.UniTuple)
            and acc.dtype == f32x16):
        return None

    def codegen(context, builder, sig, args):
        ptr = _element_pointer(context, builder, sig.args[0], args[0], sig.args[1], args[1])
        order = ir.Constant(ir.VectorType(_I32, 16), [2 * (k % 8) + k // 8 for k in range(16)])
        vty = ir.VectorType(ir.FloatType(), 16)
        for v in range(acc.count):
            vec = builder.extract_value(args[2], v)
            px = builder.shuffle_vector(vec, ir.Constant(vty, ir.Undefined), order)
            at = builder.gep(ptr, [ir.Constant(ir.IntType(64), 16 * v)])
            builder.store(px, builder.bitcast(at, vty.as_pointer()), align=4)
        return context.get_dummy_value()
    return types.none(dst, i, acc), codegen


@intrinsic
def deinterleave_rgb32(typingctx, buf, i):
    """32 RGB pixels ``buf[i : i + 96]`` (float32, or uint8 / int8 as floats) as 6 vectors of 16: vector ``2 c + e``
    holds channel c of the pixels of parity e (pixels e, e + 2, ..., e + 30); a few permutes instead of 96
    scalar moves."""
    if not (_is_pixels(buf) and isinstance(i, types.Integer)):
        return None
    rtype = types.UniTuple(f32x16, 6)

    def codegen(context, builder, sig, args):
        ptr = _element_pointer(context, builder, sig.args[0], args[0], sig.args[1], args[1])
        block = _load_as_float(builder, ptr, 96, sig.args[0].dtype)
        def mask(idx):
            return ir.Constant(ir.VectorType(_I32, len(idx)), idx)

        whole = ir.Constant(block.type, ir.Undefined)
        vec = [builder.shuffle_vector(block, whole, mask(list(range(16 * v, 16 * v + 16)))) for v in range(6)]
        undef = ir.Constant(vec[0].type, ir.Undefined)
        out = ir.Constant(context.get_value_type(rtype), ir.Undefined)
        for c in range(3):
            halves = []
            for h in range(2):          # channel c of pixels 16h .. 16h + 15: float 3p + c of the half's 48
                a, b, cc = vec[3 * h: 3 * h + 3]
                first = builder.shuffle_vector(a, b, mask([3 * p + c if 3 * p + c < 32 else 0 for p in range(16)]))
                third = builder.shuffle_vector(cc, undef, mask([max(3 * p + c - 32, 0) for p in range(16)]))
                pick = ir.Constant(ir.VectorType(ir.IntType(1), 16), [int(3 * p + c >= 32) for p in range(16)])
                halves.append(builder.select(pick, third, first))
            for e in range(2):
                out = builder.insert_value(out, builder.shuffle_vector(
                    halves[0], halves[1], mask([2 * p + e for p in range(8)] + [16 + 2 * p + e for p in range(8)])),
                    2 * c + e)
        return out
    return rtype(buf, i), codegen


@intrinsic
def dup8(typingctx, v):
    """An f32x8 twice, as one f32x16: ``[v, v]`` (the same 8 channels' weights for two pixels side by side)."""
    if v != f32x8:
        return None

    def codegen(context, builder, sig, args):
        return builder.shuffle_vector(args[0], args[0], ir.Constant(ir.VectorType(_I32, 16), list(range(8)) * 2))
    return f32x16(v), codegen


@intrinsic
def load_pixels16(typingctx, buf, i):
    """``buf[i : i + 16]`` (float32, or uint8 / int8 converted exactly) as one ``f32x16``."""
    if not (_is_pixels(buf) and isinstance(i, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        ptr = _element_pointer(context, builder, sig.args[0], args[0], sig.args[1], args[1])
        return _load_as_float(builder, ptr, 16, sig.args[0].dtype)
    return f32x16(buf, i), codegen


@intrinsic
def zeros16(typingctx):
    """An ``f32x16`` of +0.0."""
    def codegen(context, builder, sig, args):
        return ir.Constant(ir.VectorType(ir.FloatType(), 16), [0.0] * 16)
    return f32x16(), codegen


@intrinsic
def max_bits(typingctx, worst, v, shift):
    """Lane by lane, whichever of ``worst`` and ``v + shift`` has the larger bit pattern read as an unsigned
    integer: one add and one integer max, where two compares and a population count took a port that the
    input's permutes need too. From +0.0 up, the bit patterns of floats are in the order of their values, and
    every negative value, infinity and NaN lies above all finite non-negative ones; ``-0.0 + 0.0`` is +0.0. So
    with ``shift = +0.0 - lo``, :func:`lanes_above` of the result and ``hi - lo`` counts the lanes where some
    ``v`` was outside [lo, hi] (NaN included) -- exactly, as long as ``v - lo`` is exact: lo = 0, or integer
    values (every input map here)."""
    if not (worst == f32x16 and v == f32x16 and shift == types.float32):
        return None

    def codegen(context, builder, sig, args):
        i32x16 = ir.VectorType(_I32, 16)
        shifted = builder.fadd(args[1], _splat(builder, args[2], 16))
        umax = cgutils.get_or_insert_function(builder.module, ir.FunctionType(i32x16, [i32x16, i32x16]),
                                              "llvm.umax.v16i32")
        m = builder.call(umax, [builder.bitcast(args[0], i32x16), builder.bitcast(shifted, i32x16)])
        return builder.bitcast(m, args[0].type)
    return f32x16(worst, v, shift), codegen


@intrinsic
def lanes_above(typingctx, worst, limit):
    """How many lanes of ``worst`` have a bit pattern above that of ``limit`` (a float >= +0.0), compared as
    unsigned integers: see :func:`max_bits`."""
    if not (worst == f32x16 and limit == types.float32):
        return None

    def codegen(context, builder, sig, args):
        i32x16 = ir.VectorType(_I32, 16)
        above = builder.icmp_unsigned(">", builder.bitcast(args[0], i32x16),
                                      builder.bitcast(_splat(builder, args[1], 16), i32x16))
        bits = ir.IntType(16)
        ctpop = cgutils.get_or_insert_function(builder.module, ir.FunctionType(bits, [bits]), "llvm.ctpop.i16")
        return builder.zext(builder.call(ctpop, [builder.bitcast(above, bits)]), ir.IntType(64))
    return types.int64(worst, limit), codegen


@intrinsic
def add_widened8(typingctx, acc, i, src, j):
    """``acc[i : i + 8] += src[j : j + 8]``, float32 values added to float64 sums (one vector each)."""
    if not (isinstance(acc, types.Array) and acc.dtype == types.float64 and acc.ndim == 1 and acc.layout == "C"
            and _is_buffer(src) and isinstance(i, types.Integer) and isinstance(j, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        dty = ir.VectorType(ir.DoubleType(), 8)
        x = builder.fpext(_vector_load(builder, _element_pointer(context, builder, sig.args[2], args[2],
                                                                 sig.args[3], args[3]), 8), dty)
        at = builder.bitcast(_element_pointer(context, builder, sig.args[0], args[0], sig.args[1], args[1]),
                             dty.as_pointer())
        builder.store(builder.fadd(builder.load(at, align=8, typ=dty), x), at, align=8)
        return context.get_dummy_value()
    return types.none(acc, i, src, j), codegen


@intrinsic
def store_affine(typingctx, dst, i, v, scale, offset):
    """``dst[i : i + lanes] = v * scale + offset`` as one multiply-add (one rounding where the CPU fuses them):
    the same values as a multiply, then an add, when ``v * scale`` is exact -- ``scale`` a power of two, which
    the fast executor requires of its input map."""
    if not (_is_buffer(dst) and isinstance(i, types.Integer) and isinstance(v, F32Vector)
            and scale == types.float32 and offset == types.float32):
        return None

    def codegen(context, builder, sig, args):
        lanes = sig.args[2].lanes
        y = _fmuladd(builder, args[2], _splat(builder, args[3], lanes), _splat(builder, args[4], lanes))
        ptr = _element_pointer(context, builder, sig.args[0], args[0], sig.args[1], args[1])
        builder.store(y, builder.bitcast(ptr, y.type.as_pointer()), align=4)
        return context.get_dummy_value()
    return types.none(dst, i, v, scale, offset), codegen


@intrinsic
def prefetch(typingctx, buf, i):
    """Ask the CPU to bring the cache line holding ``buf[i]`` into its caches (LLVM ``prefetch``, read, into
    L2 and up: ``prefetcht1`` on x86); a hint with no other effect, even past the buffer's end."""
    if not (_is_buffer(buf) and isinstance(i, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        ptr = _element_pointer(context, builder, sig.args[0], args[0], sig.args[1], args[1])
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [ptr.type, i32, i32, i32]),
                                            "llvm.prefetch.p0")
        builder.call(fn, [ptr, ir.Constant(i32, 0), ir.Constant(i32, 2), ir.Constant(i32, 1)])
        return context.get_dummy_value()
    return types.none(buf, i), codegen


@intrinsic
def cycle_counter(typingctx):
    """The CPU's cycle counter (LLVM ``readcyclecounter``: ``rdtsc`` on x86, 0 where there is none), for the
    per-stage profile; only differences of it mean anything."""
    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(64), []),
                                            "llvm.readcyclecounter")
        return builder.call(fn, [])
    return types.int64(), codegen


# ------------------------------------------------------------------------------------------ integer lanes
def _i64_splat(value, lanes):
    return ir.Constant(ir.VectorType(ir.IntType(64), lanes), [value] * lanes)


def _select_max(builder, a, b):
    return builder.select(builder.icmp_signed(">", a, b), a, b)


def _select_min(builder, a, b):
    return builder.select(builder.icmp_signed("<", a, b), a, b)


def _split_shift(builder, sh):
    """``(max(sh, 0), max(-sh, 0))``: a shift as MBQM's left and right shifts."""
    zero = ir.Constant(sh.type, None)
    return _select_max(builder, sh, zero), _select_max(builder, builder.sub(zero, sh), zero)


def _mbqm_lanes(builder, x, qm, sh):
    """MultiplyByQuantizedMultiplier lane by lane on int64 vectors: RDBPOT(SRDHM(x * 2**left, qm), right) with
    ``left = max(sh, 0)``, ``right = max(-sh, 0)``; the formulas of
    :func:`~mobilenet_np.kernels.integer_fixedpoint.mbqm`, each branch a select."""
    n = x.type.count
    zero = _i64_splat(0, n)
    left, right = _split_shift(builder, sh)
    av = builder.shl(x, left)
    # SRDHM(av, qm): (av qm + nudge) / 2**31 toward zero; saturates for av = qm = -2**31
    p = builder.mul(av, qm)
    nudge = builder.select(builder.icmp_signed(">=", p, zero), _i64_splat(1 << 30, n),
                           _i64_splat(1 - (1 << 30), n))
    s = builder.add(p, nudge)
    s = builder.add(s, builder.select(builder.icmp_signed("<", s, zero), _i64_splat((1 << 31) - 1, n), zero))
    q = builder.ashr(s, _i64_splat(31, n))
    int_min = _i64_splat(-(1 << 31), n)
    saturate = builder.and_(builder.icmp_signed("==", av, int_min), builder.icmp_signed("==", qm, int_min))
    q = builder.select(saturate, _i64_splat((1 << 31) - 1, n), q)
    # RDBPOT(q, right): to nearest, ties away from zero
    mask = builder.sub(builder.shl(_i64_splat(1, n), right), _i64_splat(1, n))
    remainder = builder.and_(q, mask)
    negative = builder.zext(builder.icmp_signed("<", q, zero), x.type)
    threshold = builder.add(builder.ashr(mask, _i64_splat(1, n)), negative)
    return builder.add(builder.ashr(q, right), builder.zext(builder.icmp_signed(">", remainder, threshold), x.type))


def _lanes_in(context, builder, sig, args, k, n, bits):
    """Argument ``k`` (float32 buffer, then index at ``k + 1``): its ``n`` values from there, as ``bits``-bit
    integer lanes, and the pointer to them."""
    ptr = _element_pointer(context, builder, sig.args[k], args[k], sig.args[k + 1], args[k + 1])
    return builder.fptosi(_vector_load(builder, ptr, n), ir.VectorType(ir.IntType(bits), n)), ptr


def _splat_arg(context, builder, sig, args, k, bits, lanes):
    """Integer argument ``k`` cast to ``bits`` bits, in ``lanes`` lanes."""
    return _splat(builder, context.cast(builder, args[k], sig.args[k], getattr(types, f"int{bits}")), lanes)


def _store_clamped(context, builder, sig, args, ptr, r, lo, hi):
    """``min(max(r, lo), hi)`` (integer lanes; ``lo``, ``hi``: argument numbers) as float32 lanes at ``ptr``. The
    epilogues clamp to the activation range minus the output zero point, ``min(max(r + z, lo), hi) - z`` without
    the sum that could leave int32."""
    def splat(k):
        return _splat_arg(context, builder, sig, args, k, r.type.element.width, r.type.count)

    v = _select_min(builder, _select_max(builder, r, splat(lo)), splat(hi))
    y = builder.sitofp(v, ir.VectorType(ir.FloatType(), r.type.count))
    builder.store(y, builder.bitcast(ptr, y.type.as_pointer()), align=4)


@intrinsic
def requant_reference8(typingctx, a, i, qprm, qm_at, sh_at, lo, hi):
    """TFLite's reference requantization of 8 channels in place: ``a[i + l]`` (an exact integer accumulator
    held in float32) becomes ``min(max(MBQM(acc, qm, shift), lo), hi)`` with channel l's multiplier
    ``qprm[qm_at + l]`` and shift ``qprm[sh_at + l]`` (:func:`_mbqm_lanes`; ``lo``, ``hi``: the activation range
    minus the output zero point). LLVM's own vectorization of the scalar loop used 4-lane vectors and ran 1.5x
    slower."""
    if not (_is_buffer(a) and isinstance(qprm, types.Array) and qprm.dtype == types.int64 and qprm.ndim == 1
            and all(isinstance(t, types.Integer) for t in (i, qm_at, sh_at, lo, hi))):
        return None

    def codegen(context, builder, sig, args):
        vty = ir.VectorType(ir.IntType(64), 8)
        x, ptr = _lanes_in(context, builder, sig, args, 0, 8, 64)

        def load_i64(k):
            p = _element_pointer(context, builder, sig.args[2], args[2], sig.args[k], args[k])
            return builder.load(builder.bitcast(p, vty.as_pointer()), align=8, typ=vty)

        _store_clamped(context, builder, sig, args, ptr, _mbqm_lanes(builder, x, load_i64(3), load_i64(4)), 5, 6)
        return context.get_dummy_value()
    return types.none(a, i, qprm, qm_at, sh_at, lo, hi), codegen


class I32Vector(types.Type):
    """A SIMD vector of ``lanes`` int32 values (an LLVM ``<lanes x i32>``): the narrow multipliers below."""

    def __init__(self, lanes):
        self.lanes = lanes
        super().__init__(name=f"i32x{lanes}")


@register_model(I32Vector)
class _I32VectorModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, ir.VectorType(_I32, fe_type.lanes))


# The narrow (int32-lane) epilogues. Their inputs are exact integers below 2**24 in magnitude (the loader's
# exactness bound), or 8-bit differences (|q - z| <= 255) shifted left by 20 for the ADD; TFLite's multipliers
# are in [2**30, 2**31) (or 0). So x 2**left fits in int32 for left <= NARROW_LEFT_MAX, every product is one
# signed 32 x 32 -> 64-bit multiply (x86 ``pmuldq``, one instruction per 8 products, where the int64 lanes of
# :func:`_mbqm_lanes` need ``pmullq``, three), and every result fits in int32 again, so the rest runs twice as
# many lanes per instruction. The loader checks the multipliers and shifts (``fused.requant_record``).
NARROW_LEFT_MAX = 7   # |acc| < 2**24, times 2**7, is below 2**31


def _mbqm_narrow(builder, x, qm, left, right):
    """MBQM on int32 lanes (``x``, ``qm``, ``left``, ``right``: ``<n x i32>``, n even), the same integers as
    :func:`_mbqm_lanes` when ``|x 2**left| < 2**31`` and ``0 <= qm < 2**31``. With ``p = x 2**left qm``, SRDHM's
    nudge and truncation toward zero is ``floor((p + 2**30) / 2**31)`` for either sign of p (for p < 0,
    ``ceil((p + 1 - 2**30) / 2**31)`` is that floor), one add and one arithmetic shift; the products are taken
    on the even lanes and on the odd lanes as int64, each lane's int32 sign-extended (which LLVM turns into
    ``pmuldq``), and their low halves interleaved back. RDBPOT: to nearest, ties away from zero."""
    n = x.type.count
    v32, v64 = ir.VectorType(_I32, n), ir.VectorType(ir.IntType(64), n // 2)
    c32 = ir.Constant(v64, [32] * (n // 2))
    x64, q64 = builder.bitcast(builder.shl(x, left), v64), builder.bitcast(qm, v64)

    def srdhm(xs, qs):
        p = builder.mul(xs, qs)
        return builder.ashr(builder.add(p, ir.Constant(v64, [1 << 30] * (n // 2))), ir.Constant(v64, [31] * (n // 2)))

    even = srdhm(builder.ashr(builder.shl(x64, c32), c32), builder.ashr(builder.shl(q64, c32), c32))
    odd = srdhm(builder.ashr(x64, c32), builder.ashr(q64, c32))
    q = builder.shuffle_vector(builder.bitcast(even, v32), builder.bitcast(odd, v32),
                               ir.Constant(ir.VectorType(_I32, n), [k + (n - 1) * (k % 2) for k in range(n)]))
    one = ir.Constant(v32, [1] * n)
    mask = builder.sub(builder.shl(one, right), one)
    negative = builder.zext(builder.icmp_signed("<", q, ir.Constant(v32, [0] * n)), v32)
    threshold = builder.add(builder.ashr(mask, one), negative)
    up = builder.zext(builder.icmp_signed(">", builder.and_(q, mask), threshold), v32)
    return builder.add(builder.ashr(q, right), up)


def _make_narrow_multipliers(lanes):
    out = types.UniTuple(I32Vector(lanes), 3)

    def narrow_multipliers(typingctx, qprm, qm_at, sh_at):
        if not (isinstance(qprm, types.Array) and qprm.dtype == types.int64 and qprm.ndim == 1
                and isinstance(qm_at, types.Integer) and isinstance(sh_at, types.Integer)):
            return None

        def codegen(context, builder, sig, args):
            v64, v32 = ir.VectorType(ir.IntType(64), lanes), ir.VectorType(_I32, lanes)

            def load(k):
                p = _element_pointer(context, builder, sig.args[0], args[0], sig.args[k], args[k])
                return builder.trunc(builder.load(builder.bitcast(p, v64.as_pointer()), align=8, typ=v64), v32)

            return context.make_tuple(builder, out, [load(1), *_split_shift(builder, load(2))])
        return out(qprm, qm_at, sh_at), codegen
    narrow_multipliers.__name__ = f"narrow_multipliers{lanes}"
    narrow_multipliers.__doc__ = (f"{lanes} channels' (multiplier, left shift, right shift) as int32 lanes for "
                                  ":func:`requant_narrow`, from ``qprm[qm_at:]`` and ``qprm[sh_at:]`` (int64).")
    return intrinsic(narrow_multipliers)


narrow_multipliers8, narrow_multipliers16 = _make_narrow_multipliers(8), _make_narrow_multipliers(16)


@intrinsic
def requant_narrow(typingctx, a, i, m, lo, hi):
    """TFLite's reference requantization in place, on int32 lanes: ``a[i + l]`` (an exact integer accumulator,
    |acc| < 2**24, held in float32) becomes ``min(max(MBQM(acc, qm, shift), lo), hi)``, with ``m`` the lanes'
    multipliers and shifts from :func:`narrow_multipliers16` (or ``8``) and ``lo``, ``hi`` the activation range
    minus the output zero point (which keeps every value in int32). The same integers as
    :func:`requant_reference8` (:func:`_mbqm_narrow`)."""
    if not (_is_buffer(a) and isinstance(i, types.Integer) and isinstance(m, types.UniTuple) and m.count == 3
            and isinstance(m.dtype, I32Vector) and isinstance(lo, types.Integer) and isinstance(hi, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        x, ptr = _lanes_in(context, builder, sig, args, 0, m.dtype.lanes, 32)
        qm, left, right = (builder.extract_value(args[2], k) for k in range(3))
        _store_clamped(context, builder, sig, args, ptr, _mbqm_narrow(builder, x, qm, left, right), 3, 4)
        return context.get_dummy_value()
    return types.none(a, i, m, lo, hi), codegen


def _make_add(lanes, narrow):
    bits = 32 if narrow else 64

    def add(typingctx, a, i, b, j, left, qa, sa, qb, sb, qo, so, lo, hi):
        if not (_is_buffer(a) and _is_buffer(b)
                and all(isinstance(t, types.Integer) for t in (i, j, left, qa, sa, qb, sb, qo, so, lo, hi))):
            return None

        def codegen(context, builder, sig, args):
            da, ptr = _lanes_in(context, builder, sig, args, 0, lanes, bits)
            db, _ = _lanes_in(context, builder, sig, args, 2, lanes, bits)

            def splat(k):
                return _splat_arg(context, builder, sig, args, k, bits, lanes)

            def mbqm(x, q, s):
                if narrow:
                    return _mbqm_narrow(builder, x, splat(q), *_split_shift(builder, splat(s)))
                return _mbqm_lanes(builder, x, splat(q), splat(s))

            left = splat(4)
            r = mbqm(builder.add(mbqm(builder.shl(da, left), 5, 6), mbqm(builder.shl(db, left), 7, 8)), 9, 10)
            _store_clamped(context, builder, sig, args, ptr, r, 11, 12)
            return context.get_dummy_value()
        return types.none(a, i, b, j, left, qa, sa, qb, sb, qo, so, lo, hi), codegen
    add.__name__ = f"add_{'narrow' if narrow else 'reference'}{lanes}"
    add.__doc__ = (f"TFLite's reference ADD of {lanes} pairs in place, on int{bits} lanes: ``a[i + l]`` and "
                   "``b[j + l]`` (8-bit values minus their zero points, held in float32) become ``min(max(MBQM("
                   "MBQM(da 2**left, qa, sa) + MBQM(db 2**left, qb, sb), qo, so), lo), hi)`` (``lo``, ``hi``: the "
                   "range minus the output zero point), as :func:`~mobilenet_np.kernels.integer_ops.add_one` does "
                   "for one pair" + (", where every intermediate fits in int32 (``fused.add_record``)."
                                     if narrow else "."))
    return intrinsic(add)


add_reference8, add_narrow16 = _make_add(8, False), _make_add(16, True)
