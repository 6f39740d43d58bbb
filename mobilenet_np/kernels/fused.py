"""The whole forward pass in one compiled call: register-tiled kernels and the row pipeline that runs them.

:mod:`mobilenet_np.executor` turns a model into *stages* (one int64 row each: input, stem conv, V2 expand,
[depthwise -> pointwise (+ residual)], pointwise, pool), the *tensors* they read and write, a *schedule*
(which stage computes which output rows, in what order) and one flat float32 *parameter buffer* (packed weights
and biases). :func:`forward` then runs the schedule for every image, and the logits, without returning to
Python. The per-layer kernels (``conv.py``, ``depthwise.py``, ``pointwise.py``) say what is computed; these say
how to compute it fast, and give the same numbers up to float32 rounding (``tests/test_fused.py``).

Memory: a row pipeline. A stage computes an output row as soon as the rows it reads exist, so a tensor only ever
needs the few rows its consumers have still to read: tensors are *rings* of a few rows (the planner finds how
many), and one image's whole network works in a few hundred kilobytes that stay in the CPU's caches, image after
image. Small maps (<= 256 pixels, and narrow ones up to 20x20: ``executor.NARROW_MAP_PIXELS``) are the exception:
a layer there makes all its rows in one step, one GEMM whose weights stream through once instead of once per row.
Tensors whose lifetimes do not overlap share arena memory (V2 0.5/160: 0.4 MB instead of 1.75 MB). Tensors read
by a 3x3 convolution carry a one-column zero border on each side, which their writers zero, and their top and
bottom border rows are a shared row of zeros, so 'SAME' padding costs nothing and no kernel tests bounds. Channel
counts are rounded up to a multiple of 8 with zero weights and biases, so padded channels stay exactly zero and
every loop runs over whole SIMD vectors; the arena and the parameter buffer start on a cache line, so no vector
load straddles two.

Arithmetic, all with the vectors of :mod:`mobilenet_np.kernels.simd`:

* pointwise (1x1), V2's expand, the full 3x3 stem and the logits are one *tiled GEMM*: PT pixels x NV vectors
  of output channels held in registers (4 x 64, 8 x 32, 8 x 16 or 8 x 8 channels) while the inputs stream past;
  past 160 inputs the 64-wide blocks give way to 32-wide ones (:func:`widest_block`), and while one block
  computes, the next block's weights are prefetched.
  The stem's inputs are its K*K*Cin taps in (ky, kx, c) order: K runs of K*Cin contiguous values, one per input
  row. Weights are packed per block of output channels (:func:`packed_block`) so their loads are contiguous.
  For the stem, whose pixel step (3 channels x stride 2) is known in advance, :func:`stem_row` runs tiles of
  16 pixels x 16 channels instead (one pointer per input row rather than one per pixel) when its channels
  come in 16s. With only 8 or 16 inputs the narrow blocks (16 and 8 channels; with 8 inputs also a 32-wide
  one) keep all their weights in registers instead (:func:`_gemm_stationary`); the logits of one image are a
  matrix-vector product streaming 256 channels at a time (:func:`_gemv_quad`).
* depthwise 3x3: along an output row, 16 (or 8) channels per vector, the nine weights in registers; at stride 1,
  8 pixels at a time, each input pixel loaded once for the up to three sums it feeds.
* a depthwise row goes to a scratch row (in L1) and straight through the following pointwise, whose epilogue
  applies ReLU6 and adds the residual.

Integer models (uint8/int8 ``.tflite``, :mod:`mobilenet_np.integer_executor`) run on the same kernels with
integer-valued floats, exact below 2**24, and integer epilogues after each layer (:func:`requant_run`,
:func:`add_run`, :func:`pool_finish`); float models pass ``qprm=None`` and compile without them.

Summation order is the per-layer kernels' own: the bias first, then input channels (or taps, in (ky, kx, c)
order) ascending, one multiply-add each (fused on CPUs with FMA). Nothing is reassociated.

Compilation: every function here is compiled once (``cache=True``; ~15-25 s the first time, then loaded from
Numba's cache in a fraction of a second). Calls between them pass typed values, never literal constants, so
Numba does not compile one version per constant; ``_nrt=False`` turns off reference counting, whose atomic
increments on every call cost 15 % of the run time. Numba re-optimizes a function's whole call tree when it
finishes compiling it, and emits machine code for it: each level of calls between :func:`forward` and the
tiled kernels costs one more optimization and code generation of everything below it. So the levels in
between are inlined into their callers (``inline="always"``): :func:`run_image`, the row kernels it calls
(:func:`_conv_row`, :func:`_pw_rows`, :func:`_dwpw_rows`), :func:`dense` and :func:`_stationary_block`. The
kernels called from several places (:func:`gemm`, :func:`dw_row`, ...) and the register-tiled ones stay
functions of their own; inlining small kernels that loop (:func:`_record_rows`, :func:`_input_row`, ...) costs
Numba more typing than it saves LLVM. Functions only ever called from compiled code are built without
the wrapper that lets Python call them (``no_cpython_wrapper=True``): that wrapper is code too, linked into
every caller's module and compiled again with it (1.1 s, 6 %, of the first uint8 compile).
"""
import numpy as np
from numba import njit, prange

from .integer_fixedpoint import requantize_one, xnnpack_centered
from .integer_ops import ADD_LEFT_SHIFT, add_one, add_xnnpack_one, mean_from_sum, rounded_mean
from .simd import (NARROW_LEFT_MAX, add_narrow16, add_reference8, add_widened8, clamp6, cycle_counter,
                   deinterleave_rgb32, dup8, fma, lanes_above, load_int16_like, load_like, load_pixels16, load_row16,
                   load_row8, load_rows_like, max_bits, narrow_multipliers8, narrow_multipliers16, offsets,
                   offsets2d_like, offsets_like, prefetch, repeat_vector, requant_narrow, requant_reference8,
                   rows_clamp6, rows_fma_pairs, run_offsets, run_offsets_like, store, store_affine, store_pairs,
                   tile_add, tile_clamp6, tile_dot_rows, tile_dw_taps, tile_fma, tile_init, tile_store, zeros16)

# the digest of the sibling modules compiled into this one's kernels (see cache_key.py)
COMPILED_IN = "b0a0fd00e171694e"

LANES = 8   # channel padding granularity (the narrowest vector)


def _has_wide_registers():
    """Whether Numba compiles for AVX-512 (32 vector registers of 16 floats): then the GEMM's register tiles
    are 4 pixels x 64 channels; with 16 registers of 8 floats (AVX2 and the like) such tiles would spill, so
    blocks are at most 16 channels wide. Numba's cache is per CPU, so each machine compiles its own choice."""
    import llvmlite.binding as ll
    from numba.core import config

    features = config.CPU_FEATURES if config.CPU_FEATURES is not None else ll.get_host_cpu_features().flatten()
    return "+avx512f" in features.split(",")


WIDE = _has_wide_registers()
WIDEST = 64 if WIDE else 16   # the widest block of output channels (see executor.gemm_blocks)
# A 64-wide block's weights for K inputs are a [K, 64] panel, read once per tile of 4 pixels: up to K = 160
# (40 KB) it stays in L1 (48 KB here); past that it streams from L2 for every tile, and 32-wide panels with
# tiles of 8 pixels, half the weight traffic per multiply-add, are faster (measured on V2's layers: K = 256,
# 320, 960 gain 10-20 %; K = 16..160 lose as much).
WIDE_PANEL_MAX_K = 160


@njit(cache=True)
def widest_block(k):
    """The widest block of output channels of a GEMM with ``k`` inputs (64, 32 past WIDE_PANEL_MAX_K, or 16
    with AVX2-sized registers)."""
    return 32 if WIDE and k > WIDE_PANEL_MAX_K else WIDEST


@njit(cache=True)
def packed_block(left, k):
    """The width of the packed block of output channels that starts where ``left`` channels remain (a multiple
    of 8), for ``k`` inputs: as wide as :func:`widest_block` allows while that many remain, then 32, 16, 8 --
    the order :func:`gemm` walks and ``executor.pack_gemm`` packs them in."""
    widest = widest_block(k)
    if left >= widest:
        return widest
    return 32 if left >= 32 else (16 if left >= 16 else 8)

# ------------------------------------------------------------------------------------------ the plan format
ST_INPUT, ST_CONV, ST_EXPAND, ST_DWPW, ST_PW, ST_POOL = range(6)
# Stage columns. TIN/TOUT/TRES are tensor ids (-1: none); W*/B* offsets into the parameter buffer; REC* offsets
# (per image, times N) into the endpoint buffer, -1 = not recorded; CR* the real (unpadded) channel counts;
# GROUP the number of output rows one schedule step makes (1, or all rows: one GEMM over a small map, so its
# weights stream through once rather than once per row). Schedule rows: (stage, first row, rows).
# Q1/Q2/Q3: offsets of integer requantization records in ``qprm`` (-1: a float layer; see :func:`requant_run`;
# float models pass ``qprm=None``, and Numba then compiles the kernels without any integer code)
# for the stage's first layer, its second (the pointwise of depthwise -> pointwise) and its residual ADD; for
# the input stage W1 is the offset of its map ``(a, b, lo, hi)``: value ``a x + b``, valid for lo <= x <= hi;
# for a stem with planar input, W2/B2 are its weights and biases with every value twice (see
# :func:`_stem_planar_row`);
# for the pool, Q1 >= 0 is the record of an integer pool (see :func:`pool_finish`).
# PF0/PF1: a range of the parameter buffer that the stage's GEMM prefetches into L2 besides its own weights,
# one cache line per reduction step (empty: PF0 = PF1; a step of rows takes its share, :func:`_side_range`):
# the logits' weights, during the last stages of the last image, so that they come from L2 rather than L3 when
# the logits layer reads them (see ``executor.side_prefetch``).
(OP, TIN, TOUT, TRES, STRIDE, PAD_T, PAD_L, K, W1, B1, RELU1, W2, B2, RELU2, SCRATCH,
 REC1, REC2, REC3, CR1, CR2, GROUP, Q1, Q2, Q3, PF0, PF1, NCOLS) = range(27)
# Tensor columns: arena offset, rows kept (a ring; = H when all are), floats per stored row, border (0/1:
# one zero pixel left and right, zero rows above and below), height, width, channels (padded), and T_PLANE: 0
# for pixels stored one after another (NHWC), else the image rows are stored planar for the stem
# (:func:`_stem_planar_row`), runs of T_PLANE values per channel and column parity.
# Tensors other than the input may share arena memory (when their lifetimes do not overlap), so whoever
# writes rows of a bordered tensor zeroes their border pixels (:func:`_zero_borders`).
T_BASE, T_RING, T_ROWLEN, T_BORDER, T_H, T_W, T_C, T_PLANE, T_NCOLS = range(9)
ZERO_ROW = 0   # tensor 0 is the shared row of zeros at the arena's start (its T_BASE, 0), never written; its
#                T_ROWLEN: how many floats from the arena's start (that row and the input rows) each image zeroes


# ------------------------------------------------------------------------------------------ tiled GEMM
# Reduction steps per trip of the tiled GEMM's inner loop. A trip of one step spends a counter, a compare and
# branch and two prefetch checks beside its 8-16 multiply-adds, scalar work that competes for the same ports;
# 8 steps a trip (their prefetches issued together, the rate unchanged): V1 0.25/224 -2.8 % cycles, V2 0.5/160
# without top -2.5 %, V1 0.25/128 -2.2 % (hot A/B in one process; 4 steps a trip: V1 0.25/224 -2.1 %).
GEMM_UNROLL = 8


@njit(cache=True, _nrt=False, no_cpython_wrapper=True)
def _gemm_block(src, seg0, seg1, seg2, nseg, seglen, s_step, npx, prm, w, nb, brow, tmpl, relu6,
                dst, d_base, d_step, d_rowpx, d_rowstride, res, r_base, r_step, sp, sp_end):
    """One block of ``nb`` output channels for ``npx`` pixels, ``len(tmpl)`` pixels at a time (the last tile
    repeats the last pixel, storing its values twice), accumulated in registers. Meanwhile the next panel of
    weights (the next block's, or the next layer's) is prefetched, one cache line per step of the reduction
    (:data:`GEMM_UNROLL` lines at a time), so that when the weights come from memory rather than from cache,
    they arrive while this block computes; and so is the side range ``prm[sp:sp_end]`` (a later layer's
    weights: see ``PF0``), one more line per step until it is done (the last batch of lines may reach past it:
    a hint). Returns where the side range's prefetching stopped.

    Pixel p reads ``src[seg_k + p*s_step + t]`` for k < nseg, t < seglen (its inputs, in this order) and
    writes ``nb`` values at ``dst[d_base + (p // d_rowpx) * d_rowstride + (p % d_rowpx) * d_step]``; weights are
    ``prm[w + (k*seglen + t)*nb : ... + nb]``.
    """
    last = npx - 1
    panel = nseg * seglen * nb
    pf, pf_end = w + panel, min(w + 2 * panel, prm.size)    # the next panel (of this layer or the next)
    col, d_row = 0, d_base      # the tile's first pixel: column ``col`` of the output row at ``d_row``
    for p in range(0, npx, len(tmpl)):
        whole = p + len(tmpl) <= npx    # no pixel repeated: offsets by a multiply-add, without clamping
        so = run_offsets_like(tmpl, p * s_step, s_step) if whole else offsets_like(tmpl, 0, p, last, s_step)
        acc = tile_init(brow, so)
        wp = w
        for k in range(nseg):
            base = seg0 if k == 0 else (seg1 if k == 1 else seg2)
            t = 0
            while t + GEMM_UNROLL <= seglen:    # GEMM_UNROLL steps a trip, their prefetches issued together
                if pf < pf_end:
                    for u in range(GEMM_UNROLL):
                        prefetch(prm, pf + 16 * u)
                    pf += 16 * GEMM_UNROLL
                if sp < sp_end:
                    for u in range(GEMM_UNROLL):
                        prefetch(prm, sp + 16 * u)
                    sp += 16 * GEMM_UNROLL
                for u in range(GEMM_UNROLL):
                    acc = tile_fma(src, so, base + t + u, load_like(brow, prm, wp + u * nb), acc)
                wp += GEMM_UNROLL * nb
                t += GEMM_UNROLL
            while t < seglen:                   # the rest one step at a time: the same sums in the same order
                if pf < pf_end:
                    prefetch(prm, pf)
                    pf += 16
                if sp < sp_end:
                    prefetch(prm, sp)
                    sp += 16
                acc = tile_fma(src, so, base + t, load_like(brow, prm, wp), acc)
                wp += nb
                t += 1
        if relu6:
            acc = tile_clamp6(acc)
        if res:
            ro = run_offsets_like(tmpl, r_base + p * r_step, r_step) if whole else offsets_like(tmpl, r_base, p, last,
                                                                                                  r_step)
            acc = tile_add(dst, ro, acc)
        if whole and col + len(tmpl) <= d_rowpx:    # within one output row
            do = run_offsets_like(tmpl, d_row + col * d_step, d_step)
        else:
            do = offsets2d_like(tmpl, d_base, p, last, d_step, d_rowpx, d_rowstride)
        tile_store(dst, do, acc)
        col += len(tmpl)
        while col >= d_rowpx:
            col -= d_rowpx
            d_row += d_rowstride
    return sp


@njit(cache=True, _nrt=False, inline="always")
def _stationary_tile(src, so, rows, brow, relu6, dst, do, res, ro):
    """One tile of :func:`_gemm_stationary`: the pixels at offsets ``so`` times the weight rows ``rows`` (in
    registers), plus the biases ``brow``; ReLU6, the residual at ``ro`` if ``res``; stored at ``do``."""
    acc = tile_dot_rows(src, so, rows, tile_init(brow, so))
    if relu6:
        acc = tile_clamp6(acc)
    if res:
        acc = tile_add(dst, ro, acc)
    tile_store(dst, do, acc)


@njit(cache=True, _nrt=False)
def _gemm_stationary(src, s_base, s_step, npx, rows, brow, relu6, dst, d_base, d_step, d_rowpx, d_rowstride,
                     res, r_base, r_step):
    """The GEMM for few inputs (8 or 16) and few outputs (8 or 16; 32 for 8 inputs): the whole weight block
    ``rows`` stays in registers and the pixels stream past along each output row, eight at a time for blocks
    one vector wide (8 independent multiply-add chains, enough to keep both FMA units busy; V1 0.25/224's
    8 -> 16 pointwise 7 % faster than four) and four at a time for 32-wide ones, whose 16 weight registers
    leave room for no more (same sums, same order as :func:`_gemm_block`)."""
    p = 0
    d_row = d_base
    while p < npx:
        n = min(d_rowpx, npx - p)       # pixels of this output row
        s0, d0, r0 = s_base + p * s_step, d_row, r_base + p * r_step
        j = 0
        while j < n:
            if len(rows[0]) == 1 and j + 8 <= n:      # one vector wide: 8 accumulators fit beside the weights
                _stationary_tile(src, run_offsets(s0 + j * s_step, s_step, 8), rows, brow, relu6, dst,
                                 run_offsets(d0 + j * d_step, d_step, 8), res, run_offsets(r0 + j * r_step, r_step, 8))
                j += 8
            elif j + 4 <= n:
                _stationary_tile(src, run_offsets(s0 + j * s_step, s_step, 4), rows, brow, relu6, dst,
                                 run_offsets(d0 + j * d_step, d_step, 4), res, run_offsets(r0 + j * r_step, r_step, 4))
                j += 4
            else:
                _stationary_tile(src, run_offsets(s0 + j * s_step, s_step, 1), rows, brow, relu6, dst,
                                 run_offsets(d0 + j * d_step, d_step, 1), res, run_offsets(r0 + j * r_step, r_step, 1))
                j += 1
        p += n
        d_row += d_rowstride


@njit(cache=True, _nrt=False, inline="always")
def _stationary_block(src, s_base, seglen, s_step, npx, prm, w, nb, brow, relu6, dst, d_base, d_step, d_rowpx,
                      d_rowstride, res, r_base, r_step):
    """:func:`_gemm_stationary` for one block of ``nb`` output channels (``brow``: its biases) with ``seglen``
    = 8 or 16 inputs, its weights ``[seglen, nb]`` at ``prm[w]`` (a register count must be a compile-time
    constant, hence two branches)."""
    if seglen == 8:
        rows8 = load_rows_like(brow, prm, w, nb, 8)
        _gemm_stationary(src, s_base, s_step, npx, rows8, brow, relu6, dst, d_base, d_step, d_rowpx, d_rowstride,
                         res, r_base, r_step)
    else:
        rows16 = load_rows_like(brow, prm, w, nb, 16)
        _gemm_stationary(src, s_base, s_step, npx, rows16, brow, relu6, dst, d_base, d_step, d_rowpx, d_rowstride,
                         res, r_base, r_step)


@njit(cache=True, _nrt=False, inline="always")
def fitted_tile(npx, first, lo, hi):
    """Pixels per tile for ``npx`` pixels: ``first``, unless a count in [lo, hi] repeats fewer pixels in the last
    tile (the fewest; on a tie ``first``, then the larger count). A 7x7 map in tiles of 8 computed 56 pixels for
    its 49, in tiles of 7 it computes 49."""
    best, waste = first, -npx % first
    if waste == 0:      # (the usual case: one test per GEMM call, the counts being constants after inlining)
        return first
    for t in range(hi, lo - 1, -1):
        if -npx % t < waste:
            best, waste = t, -npx % t
    return best


@njit(cache=True, _nrt=False, inline="always")
def _fitted_block(src, seg0, seg1, seg2, nseg, seglen, s_step, npx, prm, w, nb, brow, usual, fitted, use_fitted,
                  relu6, dst, d_base, d_step, d_rowpx, d_rowstride, res, r_base, r_step, sp, sp_end):
    """A wide block of :func:`gemm` by :func:`_gemm_block`, in tiles of ``len(usual)`` pixels, or of
    ``len(fitted)`` when ``use_fitted`` (:func:`gemm` asks :func:`fitted_tile` once per call): 64-wide blocks in
    tiles of 4 (16 accumulators) or 5 (20; with the 4 weight vectors and a broadcast still within 32 registers),
    32-wide ones in tiles of 8 or 7 (14 independent sums), for 7x7 and 5x5 maps."""
    if use_fitted:
        return _gemm_block(src, seg0, seg1, seg2, nseg, seglen, s_step, npx, prm, w, nb, brow, fitted, relu6, dst,
                           d_base, d_step, d_rowpx, d_rowstride, res, r_base, r_step, sp, sp_end)
    return _gemm_block(src, seg0, seg1, seg2, nseg, seglen, s_step, npx, prm, w, nb, brow, usual, relu6, dst,
                       d_base, d_step, d_rowpx, d_rowstride, res, r_base, r_step, sp, sp_end)


@njit(cache=True, _nrt=False)
def gemm(src, seg0, seg1, seg2, nseg, seglen, s_step, npx, prm, w_off, b_off, cout, relu6,
         dst, d_base, d_step, d_rowpx, d_rowstride, res, r_base, r_step, sp, sp_end):
    """``dst[pixel, :cout] = act(bias + sum_i in_i * w[i, :])`` [``+ dst[residual pixel]``] for ``npx`` pixels.

    A pixel's inputs are ``nseg`` (1 to 3) runs of ``seglen`` values starting at ``seg0``, ``seg1``, ``seg2``
    (plus ``p * s_step`` for pixel p). ``cout`` is a multiple of 8; weights ``[nseg*seglen, cout]`` are packed
    as :func:`mobilenet_np.executor.pack_gemm` does (blocks of 64, then 32, 16 and 8 output channels; with
    AVX2-sized registers blocks of 16, then 8). The
    outputs go to ``dst`` rows of ``d_rowpx`` pixels, ``d_rowstride`` apart (``d_rowpx = npx``: one run). The
    residual, when ``res``, is read from ``dst``'s buffer at ``r_base + p * r_step``. The blocks with their
    weights in registers aside, each step of the reduction also prefetches one cache line of ``prm[sp:sp_end]``
    into L2 until the range is done (see ``PF0``; ``sp = sp_end`` for none).
    """
    kin = nseg * seglen
    ob = 0
    if not WIDE:     # 16 registers: tiles of 4 pixels x 16 channels (8 ymm accumulators), then 8 x 8
        while cout - ob >= 16:
            sp = _gemm_block(src, seg0, seg1, seg2, nseg, seglen, s_step, npx, prm, w_off + ob * kin, 16,
                             load_row16(prm, b_off + ob, 1), offsets(0, 0, 0, 0, 4), relu6,
                             dst, d_base + ob, d_step, d_rowpx, d_rowstride, res, r_base + ob, r_step, sp, sp_end)
            ob += 16
        if cout - ob >= 8:
            sp = _gemm_block(src, seg0, seg1, seg2, nseg, seglen, s_step, npx, prm, w_off + ob * kin, 8,
                             load_row8(prm, b_off + ob, 1), offsets(0, 0, 0, 0, 8), relu6,
                             dst, d_base + ob, d_step, d_rowpx, d_rowstride, res, r_base + ob, r_step, sp, sp_end)
        return
    if nseg == 1 and (seglen == 8 or seglen == 16):
        # Few inputs: the narrow blocks (16 and 8 channels) keep their weights in registers.
        end = cout - cout % 16 if cout % 16 == 8 else cout
        cout16 = end - end % 32 if end % 32 == 16 else end      # up to here: tiles (64/32-wide blocks)
        if cout16 < end:
            _stationary_block(src, seg0, seglen, s_step, npx, prm, w_off + cout16 * seglen, np.int64(16),
                              load_row16(prm, b_off + cout16, 1), relu6, dst, d_base + cout16, d_step, d_rowpx,
                              d_rowstride, res, r_base + cout16, r_step)
        if end < cout:
            _stationary_block(src, seg0, seglen, s_step, npx, prm, w_off + end * seglen, np.int64(8),
                              load_row8(prm, b_off + end, 1), relu6, dst, d_base + end, d_step, d_rowpx,
                              d_rowstride, res, r_base + end, r_step)
        if seglen == 8 and cout16 % 64 == 32:
            # 8 inputs: a 32-wide block's weights (16 registers) stay in registers too; for V2 0.5's first
            # expansion (8 -> 48 channels at 80x80) 21-24 % fewer cycles than its tiles, which reload the weights
            # for every 8 pixels and spend a larger share of their short (8-step) reductions on set-up
            cout16 -= 32
            brow32 = load_row16(prm, b_off + cout16, 2)
            _gemm_stationary(src, seg0, s_step, npx, load_rows_like(brow32, prm, w_off + cout16 * 8, 32, 8), brow32,
                             relu6, dst, d_base + cout16, d_step, d_rowpx, d_rowstride, res, r_base + cout16, r_step)
        cout = cout16     # the wide blocks, below
        ob = 0
    # the wide blocks' tiles, chosen once for all blocks of this call
    five = fitted_tile(npx, np.int64(4), np.int64(5), np.int64(5)) == 5
    seven = fitted_tile(npx, np.int64(8), np.int64(7), np.int64(7)) == 7
    while cout - ob >= 64 and widest_block(kin) == 64:
        sp = _fitted_block(src, seg0, seg1, seg2, nseg, seglen, s_step, npx, prm, w_off + ob * kin, 64,
                           load_row16(prm, b_off + ob, 4), offsets(0, 0, 0, 0, 4), offsets(0, 0, 0, 0, 5), five,
                           relu6, dst, d_base + ob, d_step, d_rowpx, d_rowstride, res, r_base + ob, r_step, sp, sp_end)
        ob += 64
    while cout - ob >= 32:
        sp = _fitted_block(src, seg0, seg1, seg2, nseg, seglen, s_step, npx, prm, w_off + ob * kin, 32,
                           load_row16(prm, b_off + ob, 2), offsets(0, 0, 0, 0, 8), offsets(0, 0, 0, 0, 7), seven,
                           relu6, dst, d_base + ob, d_step, d_rowpx, d_rowstride, res, r_base + ob, r_step, sp, sp_end)
        ob += 32
    if cout - ob >= 16:
        sp = _gemm_block(src, seg0, seg1, seg2, nseg, seglen, s_step, npx, prm, w_off + ob * kin, 16,
                         load_row16(prm, b_off + ob, 1), offsets(0, 0, 0, 0, 8), relu6,
                         dst, d_base + ob, d_step, d_rowpx, d_rowstride, res, r_base + ob, r_step, sp, sp_end)
        ob += 16
    if cout - ob >= 8:
        sp = _gemm_block(src, seg0, seg1, seg2, nseg, seglen, s_step, npx, prm, w_off + ob * kin, 8,
                         load_row8(prm, b_off + ob, 1), offsets(0, 0, 0, 0, 8), relu6,
                         dst, d_base + ob, d_step, d_rowpx, d_rowstride, res, r_base + ob, r_step, sp, sp_end)


@njit(cache=True, _nrt=False, inline="always")
def _weight_row(brow, prm, at, int16):
    """A row of weights shaped like ``brow`` from ``prm[at:]``, or with ``int16`` from its ``at``-th int16 on."""
    return load_int16_like(brow, prm, at) if int16 else load_like(brow, prm, at)


@njit(cache=True, _nrt=False, no_cpython_wrapper=True)
def _gemv_quad(src, s_base, cin, prm, w, b_off, nb, brow, dst, d_base, int16):
    """Four packed ``nb``-wide blocks of output channels side by side for one pixel (``brow``: a bias row of
    one block, for the shape), i.e. 16 (AVX-512) or 8 (AVX2) independent FMA chains. The weights stream from
    memory at its bandwidth (measured: ~22 GB/s, 5 MB for V2's logits in ~0.23 ms; software prefetching does
    not help); with ``int16`` they are read as int16 (:func:`load_int16_like`, ``w`` counting int16 values),
    half the bytes: same products, same sums (integer models' logits, 1.8-2.6x faster measured alone)."""
    o = offsets(s_base, 0, 0, 0, 1)
    a0 = tile_init(load_like(brow, prm, b_off), o)
    a1 = tile_init(load_like(brow, prm, b_off + nb), o)
    a2 = tile_init(load_like(brow, prm, b_off + 2 * nb), o)
    a3 = tile_init(load_like(brow, prm, b_off + 3 * nb), o)
    p0, p1, p2, p3 = w, w + cin * nb, w + cin * 2 * nb, w + cin * 3 * nb
    for t in range(cin):
        q = t * nb
        a0 = tile_fma(src, o, t, _weight_row(brow, prm, p0 + q, int16), a0)
        a1 = tile_fma(src, o, t, _weight_row(brow, prm, p1 + q, int16), a1)
        a2 = tile_fma(src, o, t, _weight_row(brow, prm, p2 + q, int16), a2)
        a3 = tile_fma(src, o, t, _weight_row(brow, prm, p3 + q, int16), a3)
    tile_store(dst, offsets(d_base, 0, 0, 0, 1), a0)
    tile_store(dst, offsets(d_base + nb, 0, 0, 0, 1), a1)
    tile_store(dst, offsets(d_base + 2 * nb, 0, 0, 0, 1), a2)
    tile_store(dst, offsets(d_base + 3 * nb, 0, 0, 0, 1), a3)


@njit(cache=True, _nrt=False, inline="always")
def dense(f, n, cin, prm, w_off, b_off, cout, out, w16):
    """``out[i, :cout] = f[i, :cin] @ W + b`` for the flat ``f`` [n, cin] (the logits layer). Small batches
    take the rows one at a time, four of the widest blocks at once: a matrix-vector product is limited by how
    fast the weights stream in, not by arithmetic. ``w16 >= 0``: the same packed weights are also stored as
    int16 from the ``w16``-th int16 of ``prm`` on (integer weights), and those four-block runs read them."""
    Z, NO = np.int64(0), np.bool_(False)   # typed, not literals: one compiled gemm for every caller
    if n >= 4:
        gemm(f, Z, Z, Z, Z + 1, cin, cin, n, prm, w_off, b_off, cout, NO, out, Z, cout, n, Z, NO, Z, Z, Z, Z)
        return
    nb = widest_block(cin)
    int16 = w16 >= 0
    for i in range(n):
        ob = 0
        while cout - ob >= 4 * nb:
            w = (w16 if int16 else w_off) + ob * cin
            if nb == 64:
                _gemv_quad(f, i * cin, cin, prm, w, b_off + ob, nb, load_row16(prm, b_off, 4), out, i * cout + ob,
                           int16)
            elif nb == 32:
                _gemv_quad(f, i * cin, cin, prm, w, b_off + ob, nb, load_row16(prm, b_off, 2), out, i * cout + ob,
                           int16)
            else:
                _gemv_quad(f, i * cin, cin, prm, w, b_off + ob, nb, load_row16(prm, b_off, 1), out, i * cout + ob,
                           int16)
            ob += 4 * nb
        if ob < cout:
            gemm(f, i * cin, Z, Z, Z + 1, cin, cin, Z + 1, prm, w_off + ob * cin, b_off + ob, cout - ob, NO,
                 out, i * cout + ob, cout, Z + 1, Z, NO, Z, Z, Z, Z)


# ------------------------------------------------------------------------------------------ depthwise row
@njit(cache=True, _nrt=False, no_cpython_wrapper=True)
def _dw_weights(brow, prm, w, c):
    """The nine weight vectors (taps in (ky, kx) order) of one block of channels shaped like ``brow``; the
    weights are ``[9, c]`` at ``w``."""
    return (load_like(brow, prm, w)[0], load_like(brow, prm, w + c)[0], load_like(brow, prm, w + 2 * c)[0],
            load_like(brow, prm, w + 3 * c)[0], load_like(brow, prm, w + 4 * c)[0], load_like(brow, prm, w + 5 * c)[0],
            load_like(brow, prm, w + 6 * c)[0], load_like(brow, prm, w + 7 * c)[0], load_like(brow, prm, w + 8 * c)[0])


@njit(cache=True, _nrt=False, no_cpython_wrapper=True)
def _dw_block(src, r0, r1, r2, cstep, ow, prm, w, c, brow, relu6, dst, d_base, d_step):
    """One vector of channels along an output row, its nine weights held in registers: per pixel the bias,
    then the 9 taps in (ky, kx) order."""
    b = brow[0]
    w0, w1, w2, w3, w4, w5, w6, w7, w8 = _dw_weights(brow, prm, w, c)
    for j in range(ow):
        x = j * cstep
        acc = fma(load_like(brow, src, r0 + x)[0], w0, b)
        acc = fma(load_like(brow, src, r0 + x + c)[0], w1, acc)
        acc = fma(load_like(brow, src, r0 + x + 2 * c)[0], w2, acc)
        acc = fma(load_like(brow, src, r1 + x)[0], w3, acc)
        acc = fma(load_like(brow, src, r1 + x + c)[0], w4, acc)
        acc = fma(load_like(brow, src, r1 + x + 2 * c)[0], w5, acc)
        acc = fma(load_like(brow, src, r2 + x)[0], w6, acc)
        acc = fma(load_like(brow, src, r2 + x + c)[0], w7, acc)
        acc = fma(load_like(brow, src, r2 + x + 2 * c)[0], w8, acc)
        if relu6:
            acc = clamp6(acc)
        store(dst, d_base + j * d_step, acc)


@njit(cache=True, _nrt=False, inline="always")
def _dw_group(src, r0, r1, r2, c, step, wts, brow, tmpl, relu6, dst, d, d_step):
    """``len(tmpl)`` neighbouring output vectors of one block of channels at stride 1 (``step`` 1: a pixel each;
    2: two pixels of 8 channels each), from the three input rows' runs at ``r0``, ``r1``, ``r2`` (their leftmost
    taps): the bias, then the nine taps ``wts`` in (ky, kx) order (:func:`~mobilenet_np.kernels.simd.tile_dw_taps`:
    each input vector loaded once); stored from ``dst[d]`` on, ``d_step`` apart."""
    acc = tile_dw_taps(src, r0, c, step, (wts[0], wts[1], wts[2]), tile_init(brow, tmpl))
    acc = tile_dw_taps(src, r1, c, step, (wts[3], wts[4], wts[5]), acc)
    acc = tile_dw_taps(src, r2, c, step, (wts[6], wts[7], wts[8]), acc)
    if relu6:
        acc = tile_clamp6(acc)
    tile_store(dst, run_offsets_like(tmpl, d, d_step), acc)


@njit(cache=True, _nrt=False, no_cpython_wrapper=True)
def _dw_block8(src, r0, r1, r2, ow, prm, w, c, brow, relu6, dst, d_base, d_step):
    """:func:`_dw_block` at stride 1, 8 pixels at a time (:func:`_dw_group`): 8 independent chains of
    multiply-adds, and 30 loads for their 72 taps; the last ``ow % 8`` pixels by :func:`_dw_block`."""
    wts = _dw_weights(brow, prm, w, c)
    tmpl = run_offsets(0, 0, 8)
    j = 0
    while j + 8 <= ow:
        _dw_group(src, r0 + j * c, r1 + j * c, r2 + j * c, c, 1, wts, brow, tmpl, relu6, dst, d_base + j * d_step,
                  d_step)
        j += 8
    if j < ow:
        _dw_block(src, r0 + j * c, r1 + j * c, r2 + j * c, c, ow - j, prm, w, c, brow, relu6, dst,
                  d_base + j * d_step, d_step)


# A whole small map (the 14x14 and 7x7 maps at 224 pixels, 10x10 and 5x5 at 160) takes its depthwise layer one
# vector of channels at a time over all its rows, in groups of pixels that divide the row: by rows, a 14-pixel
# row was a group of 8 and 6 single pixels and a 7-pixel row 7 single ones, each row and call loading the nine
# weights again. Measured alone on 14x14 maps of 64-128 channels: 0.74-0.84x the cycles (see docs/speed.md).
@njit(cache=True, _nrt=False, inline="always")
def map_group(ow):
    """The pixel group :func:`_dw_map_block` uses for rows of ``ow`` pixels, or 0 (rows of 8, 16, ...
    pixels keep :func:`_dw_block8`, which has no single pixels to save)."""
    if ow % 8 == 0:
        return 0
    return 7 if ow % 7 == 0 else (5 if ow % 5 == 0 else 0)


@njit(cache=True, _nrt=False, no_cpython_wrapper=True)
def _dw_map_block(src, t, ti, top, col, nrows, ow, prm, w, c, brow, tmpl, relu6, dst, d_base, d_step):
    """``nrows`` output rows of a depthwise layer at stride 1 for one block of channels shaped like ``brow``
    (its biases): output row y reads bordered input rows ``top + y`` to ``top + y + 2`` of tensor ``ti`` from
    their column ``col`` (the block's first channel included) and goes to ``dst[d_base + y ow d_step:]``. The
    nine weights are loaded once; the pixels go ``len(tmpl)`` at a time (a divisor of ``ow``), each group's
    input vectors loaded once (:func:`_dw_group`). Same sums, same order, as :func:`dw_row`."""
    wts = _dw_weights(brow, prm, w, c)
    g = len(tmpl)
    for y in range(nrows):
        r0 = _padded_row(t, ti, top + y) + col
        r1 = _padded_row(t, ti, top + y + 1) + col
        r2 = _padded_row(t, ti, top + y + 2) + col
        for j in range(0, ow, g):
            _dw_group(src, r0 + j * c, r1 + j * c, r2 + j * c, c, 1, wts, brow, tmpl, relu6, dst,
                      d_base + (y * ow + j) * d_step, d_step)


@njit(cache=True, _nrt=False)
def _dw_pairs(src, r0, r1, r2, ow, prm, w, brow8, relu6, dst, d_base):
    """Stride 1 and 8 channels (V1 0.25's first depthwise), outputs stored densely (8 floats per pixel): two
    pixels per 16-lane vector, the weights and bias repeated in both halves (:func:`dup8`), 16 pixels (8
    vectors, 17 loads per input row) at a time (:func:`_dw_group` with step 2); the last ``ow % 16`` pixels by
    :func:`_dw_block`. Same sums, same order."""
    eight = np.int64(8)     # (no literal: one compile)
    v = _dw_weights(brow8, prm, w, eight)
    wts = (dup8(v[0]), dup8(v[1]), dup8(v[2]), dup8(v[3]), dup8(v[4]), dup8(v[5]), dup8(v[6]), dup8(v[7]), dup8(v[8]))
    bias = (dup8(brow8[0]),)
    tmpl = run_offsets(0, 0, 8)
    j = 0
    while j + 16 <= ow:
        x = j * 8
        _dw_group(src, r0 + x, r1 + x, r2 + x, eight, 2, wts, bias, tmpl, relu6, dst, d_base + x, 16)
        j += 16
    if j < ow:
        _dw_block(src, r0 + j * 8, r1 + j * 8, r2 + j * 8, eight, ow - j, prm, w, eight, brow8, relu6,
                  dst, d_base + j * 8, eight)


@njit(cache=True, _nrt=False)
def dw_row(src, r0, r1, r2, c, stride, ow, prm, w_off, b_off, relu6, dst, d_base, d_step):
    """One output row of a 3x3 depthwise convolution over zero-bordered input rows (stride 1 or 2).

    ``r0``, ``r1``, ``r2``: element offsets of the leftmost tap of output pixel 0 in the three input rows
    (bordered column ``1 - pad_left``); output pixel j goes to ``dst[d_base + j*d_step : ... + c]``.
    Weights ``[9, c]`` (tap-major), biases ``[c]``; ``c`` a multiple of 8.
    """
    cstep = stride * c
    if WIDE and c == 8 and stride == 1 and d_step == 8 and ow >= 16:
        _dw_pairs(src, r0, r1, r2, ow, prm, w_off, load_row8(prm, b_off, 1), relu6, dst, d_base)
        return
    cb = 0
    while WIDE and c - cb >= 16:     # (with 16 registers, 9 weights of 16 floats would not fit: 8 at a time)
        if stride == 1 and ow >= 8:
            _dw_block8(src, r0 + cb, r1 + cb, r2 + cb, ow, prm, w_off + cb, c, load_row16(prm, b_off + cb, 1),
                       relu6, dst, d_base + cb, d_step)
        else:
            _dw_block(src, r0 + cb, r1 + cb, r2 + cb, cstep, ow, prm, w_off + cb, c,
                      load_row16(prm, b_off + cb, 1), relu6, dst, d_base + cb, d_step)
        cb += 16
    while c - cb >= 8:
        if WIDE and stride == 1 and ow >= 8:
            _dw_block8(src, r0 + cb, r1 + cb, r2 + cb, ow, prm, w_off + cb, c, load_row8(prm, b_off + cb, 1),
                       relu6, dst, d_base + cb, d_step)
        else:
            _dw_block(src, r0 + cb, r1 + cb, r2 + cb, cstep, ow, prm, w_off + cb, c,
                      load_row8(prm, b_off + cb, 1), relu6, dst, d_base + cb, d_step)
        cb += 8


# ------------------------------------------------------------------------------------------ stem, planar
STEM_PLANAR_CHANNELS = 8   # the stem kernel below is for 3 input and 8 output channels (V1 0.25's stem)


@njit(cache=True, _nrt=False)
def _stem_planar_row(a, r0, r1, r2, plane, left, ow, prm, w_off, b_off, relu6, dst, d_base):
    """One output row of a 3x3, stride-2 convolution from 3 to 8 channels, the input rows stored *planar*: per
    row, for channel c and column parity q, a run of ``plane`` values, bordered column b at
    ``(2c + q) * plane + b // 2`` (q = b % 2). At stride 2, output pixels j and j + 1 then read neighbouring
    values for every tap, so one 64-bit broadcast gives both pixels' input in every other lane, and one
    multiply-add with the tap's 8 weights, each twice (``[w0, w0, w1, w1, ...]`` at ``prm[w_off]``, 16 per tap;
    biases likewise at ``b_off``), advances 8 channels of both pixels. The accumulators are pair rows (lane
    2c + q: channel c of pixel q of the pair; :func:`~mobilenet_np.kernels.simd.rows_fma_pairs`), 8 of them for
    16 pixels, and one permute per pair puts them in NHWC order as they are stored -- where vectors of 16
    pixels of one channel needed a transpose of the whole 8 x 16 block (24 % more cycles for this stem). Same
    sums in the same order as :func:`gemm` (bias, then the 27 taps in (ky, kx, c) order). ``r0``..``r2``:
    offsets of the three input rows (their left border pixel); ``left``: 'SAME' padding on the left (0 or 1);
    ``ow >= 16`` (the last 16 pixels may overlap the previous ones, which are then stored twice, equal)."""
    bias = load_row16(prm, b_off, 1)[0]
    for jt in range(0, ow, 16):
        j0 = min(jt, ow - 16)
        acc = repeat_vector(bias, 8)
        tap = w_off
        for ky in range(3):
            row = r0 if ky == 0 else (r1 if ky == 1 else r2)
            for kx in range(3):
                b = kx + 1 - left          # bordered column of pixel 0's tap: 2 j + b for pixel j
                base = row + (b % 2) * plane + b // 2 + j0
                for c in range(3):
                    acc = rows_fma_pairs(a, base + 2 * c * plane, load_row16(prm, tap, 1)[0], acc)
                    tap += 16
        if relu6:
            acc = rows_clamp6(acc)
        store_pairs(dst, d_base + j0 * 8, acc)


# A stem is always a 3x3 convolution, stride 2, from the 3 channels of the image: pixel p of an output row
# reads its 27 taps at ``seg_ky + 6 p + (3 kx + c)``. With that pixel step a compile-time constant, one
# pointer per input row addresses every pixel of a tile (the GEMM needs one per pixel), so a tile can hold 16
# pixels: 16 independent accumulator chains, twice what keeps both FMA units busy.
STEM_TILE = 16


@njit(cache=True, _nrt=False, no_cpython_wrapper=True)
def _stem_tiles(src, seg0, seg1, seg2, ow, prm, w, nb, brow, relu6, dst, d_base, d_step):
    """16 output channels (``brow``: their biases) of a stem row, STEM_TILE pixels at a time (the last tile
    may overlap the one before and store its pixels again, equal). Tap t's weights are ``prm[w + t*nb:][:16]``
    (``nb``: the width of the packed block they are part of). Same sums in the same order as :func:`gemm`."""
    for jt in range(0, ow, STEM_TILE):
        j0 = min(jt, ow - STEM_TILE)
        so = run_offsets(j0 * 6, 6, STEM_TILE)
        acc = tile_init(brow, so)
        wp = w
        for ky in range(3):
            base = seg0 if ky == 0 else (seg1 if ky == 1 else seg2)
            for t in range(9):
                acc = tile_fma(src, so, base + t, load_like(brow, prm, wp), acc)
                wp += nb
        if relu6:
            acc = tile_clamp6(acc)
        tile_store(dst, run_offsets(d_base + j0 * d_step, d_step, STEM_TILE), acc)


@njit(cache=True, _nrt=False)
def stem_tiles_fit(cout, ow):
    """Does :func:`stem_row` serve this stem? (AVX-512, whole blocks of 16 channels, rows of at least a tile.)"""
    return WIDE and cout % 16 == 0 and ow >= STEM_TILE


@njit(cache=True, _nrt=False)
def stem_row(src, seg0, seg1, seg2, ow, prm, w_off, b_off, cout, relu6, dst, d_base):
    """One output row of the stem (3x3, stride 2, 3 -> ``cout`` channels; ``seg*``: the three input rows at
    pixel 0's first tap; weights packed as for :func:`gemm`) by :func:`_stem_tiles`, walking the packed blocks
    16 channels at a time; only where :func:`stem_tiles_fit` (else :func:`gemm` runs the stem). Same bytes as
    :func:`gemm`."""
    ob = 0
    while ob < cout:
        nb = packed_block(cout - ob, np.int64(27))
        for s in range(0, nb, 16):
            _stem_tiles(src, seg0, seg1, seg2, ow, prm, w_off + ob * 27 + s, nb,
                        load_row16(prm, b_off + ob + s, 1), relu6, dst, d_base + ob + s, cout)
        ob += nb


@njit(cache=True, _nrt=False, inline="always")
def conv_row(src, seg0, seg1, seg2, kk, cin, stride, ow, prm, w_off, b_off, cout, relu6, dst, d_base):
    """One output row of a full KxK convolution from pixel-major input rows (``seg*``: the K input rows at
    pixel 0's first tap), NHWC out: a stem (3x3, stride 2, 3 channels) by :func:`stem_row` where
    :func:`stem_tiles_fit`, any other by :func:`gemm` over its K*K*Cin taps."""
    if cin == 3 and stride == 2 and kk == 3 and stem_tiles_fit(cout, ow):
        stem_row(src, seg0, seg1, seg2, ow, prm, w_off, b_off, cout, relu6, dst, d_base)
    else:
        gemm(src, seg0, seg1, seg2, kk, kk * cin, stride * cin, ow, prm, w_off, b_off, cout, relu6,
             dst, d_base, cout, ow, np.int64(0), np.bool_(False), np.int64(0), np.int64(0), np.int64(0),
             np.int64(0))


# ------------------------------------------------------------------------------------------ tensors
# Scalar loops index with unsigned integers: Numba then skips Python's negative-index wrap-around, which
# would otherwise stop LLVM from vectorizing them.
@njit(cache=True, _nrt=False, no_cpython_wrapper=True)
def _row(t, ti, r):
    """Offset of pixel (r, 0) of tensor ``ti`` (past the left border, if any)."""
    return t[ti, T_BASE] + (r % t[ti, T_RING]) * t[ti, T_ROWLEN] + t[ti, T_BORDER] * t[ti, T_C]


@njit(cache=True, _nrt=False, no_cpython_wrapper=True)
def _padded_row(t, ti, r):
    """Offset of the left border pixel of row ``r`` (-1 to H) of a bordered tensor; rows -1 and H are the
    shared row of zeros."""
    if r < 0 or r >= t[ti, T_H]:
        return t[ZERO_ROW, T_BASE]
    return t[ti, T_BASE] + (r % t[ti, T_RING]) * t[ti, T_ROWLEN]


@njit(cache=True, _nrt=False, no_cpython_wrapper=True)
def _zero_borders(t, to, a, i, rows):
    """Zero the left and right border pixels of rows ``i`` to ``i + rows - 1`` of tensor ``to`` (if it has a
    border): its memory may have held another tensor before."""
    if t[to, T_BORDER] == 0:
        return
    c = t[to, T_C]
    right = (t[to, T_W] + 1) * c
    for r in range(i, i + rows):
        base = _padded_row(t, to, r)
        for ch in range(c):
            a[np.uint64(base + ch)] = 0.0
            a[np.uint64(base + right + ch)] = 0.0


@njit(cache=True, _nrt=False, no_cpython_wrapper=True)
def _record(a, src, npx, cpad, ends, e_off, creal):
    """Copy ``npx`` pixels (``cpad`` channels apart, the first ``creal`` of each) to ``ends[e_off:]``."""
    for p in range(npx):
        for ch in range(creal):
            ends[np.uint64(e_off + p * creal + ch)] = a[np.uint64(src + p * cpad + ch)]


# ------------------------------------------------------------------------------------------ integer epilogues
# The integer models (mobilenet_np.integer_executor) run on these same kernels: a tensor holds its integers
# minus their zero point (``q - z``, exact in float32), weights are ``q_w - z_w``, biases the int32 biases, so
# every product and partial sum is an integer; the loader checks that no partial sum can reach 2**24, below which
# float32 arithmetic is exact in any order. The accumulators a layer stores are then the exact int32 sums, and
# these passes turn them into the next tensor's ``q - z``, by the formulas of integer_fixedpoint / integer_ops.
# qprm records (int64), built by :func:`requant_record` and :func:`add_record`: requantization ``[mode, z_y,
# act_min, act_max, fscale offset in prm, C, narrow, qm[C], shift[C]]``; residual ADD ``[mode, z_y, act_min,
# act_max, narrow, a_mult, b_mult, shift]`` (XNNPACK, mode 1) or ``[mode, z_y, act_min, act_max, narrow, qa, sa,
# qb, sb, qo, so]`` (reference, mode 0). ``narrow`` = 1: every intermediate of the reference formula fits in
# int32, so the pass may run it on int32 lanes (decided once, when the model loads).
def requant_record(mode, zy, lo, hi, fs, qm, shift):
    """The requantization record of a layer of ``C = len(qm)`` channels. Its ``narrow`` flag says whether every
    multiplier is in [0, 2**31) and every shift in [-31, NARROW_LEFT_MAX], which :func:`requant_narrow` needs
    (TFLite's multipliers are in [2**30, 2**31) or 0; a layer's scales could still put its left shift past 7)."""
    qm, shift = np.asarray(qm, np.int64), np.asarray(shift, np.int64)
    narrow = mode == 0 and bool(np.all((qm >= 0) & (qm < 1 << 31) & (shift >= -31) & (shift <= NARROW_LEFT_MAX)))
    return np.concatenate([[mode, zy, lo, hi, fs, len(qm), narrow], qm, shift]).astype(np.int64)


def add_record(mode, zy, lo, hi, params):
    """The residual ADD record, ``params`` those of ``add_params`` (mode 0) or ``add_params_xnnpack`` (mode 1).
    ``narrow`` (mode 0): the inputs are 8-bit differences (|d| <= 255), so ``d 2**left`` < 2**28 for left <= 20;
    with input shifts <= 0 each rescaled input stays below 2**28 and their sum below 2**29, which an output left
    shift <= 1 keeps below 2**31 (:func:`add_narrow16`). TFLite's ADD (left 20, input multipliers at most 1/2,
    an output multiplier far below 1) always fits."""
    narrow = mode == 0 and ADD_LEFT_SHIFT <= 20 and all(
        0 <= params[2 * k] < 1 << 31 and -31 <= params[2 * k + 1] <= (1 if k == 2 else 0) for k in range(3))
    return np.array([mode, zy, lo, hi, narrow, *params], np.int64)


@njit(cache=True, _nrt=False, no_cpython_wrapper=True)
def requant_run(a, start, npx, c, prm, qprm, q):
    """``a[start + p*c + ch]``: exact accumulator -> ``q_y - z_y`` for ``npx`` pixels of ``c`` channels."""
    mode, zy, lo, hi, fs = qprm[q], qprm[q + 1], qprm[q + 2], qprm[q + 3], qprm[q + 4]
    qm, sh = q + 7, q + 7 + qprm[q + 5]
    if mode == 1:      # XNNPACK, float32 throughout: a loop LLVM vectorizes
        flo, fhi = np.float32(lo - zy), np.float32(hi - zy)
        for p in range(npx):
            base = start + p * c
            for ch in range(c):
                i = np.uint64(base + ch)
                a[i] = xnnpack_centered(a[i], prm[np.uint64(fs + ch)], flo, fhi)
        return
    if mode == 0 and c % 8 == 0:      # TFLite's reference fixed point
        if qprm[q + 6]:       # on int32 lanes: 16 channels per vector, then 8
            c16 = c - c % 16
            for cb in range(0, c16, 16):
                m = narrow_multipliers16(qprm, qm + cb, sh + cb)
                for p in range(npx):
                    requant_narrow(a, start + p * c + cb, m, lo - zy, hi - zy)
            if c16 < c:
                m8 = narrow_multipliers8(qprm, qm + c16, sh + c16)
                for p in range(npx):
                    requant_narrow(a, start + p * c + c16, m8, lo - zy, hi - zy)
            return
        for p in range(npx):      # 8 channels per vector on int64 lanes
            base = start + p * c
            for cb in range(0, c, 8):
                requant_reference8(a, base + cb, qprm, qm + cb, sh + cb, lo - zy, hi - zy)
        return
    for p in range(npx):
        base = start + p * c
        for ch in range(c):
            i = np.uint64(base + ch)
            v = requantize_one(np.int64(a[i]), qprm[np.uint64(qm + ch)], qprm[np.uint64(sh + ch)],
                               prm[np.uint64(fs + ch)], zy, lo, hi, mode)
            a[i] = np.float32(v - zy)


@njit(cache=True, _nrt=False, no_cpython_wrapper=True)
def add_run(a, start, res, count, qprm, q):
    """``a[start + i] = ADD(a[start + i], a[res + i]) - z_y`` for ``count`` values (both inputs ``q - z``)."""
    mode, zy, lo, hi = qprm[q], qprm[q + 1], qprm[q + 2], qprm[q + 3]
    left = np.int64(ADD_LEFT_SHIFT)
    first = 0
    if qprm[q + 4]:     # narrow (mode 0): the reference formula on int32 lanes, 16 at a time
        while first + 16 <= count:
            add_narrow16(a, start + first, a, res + first, left, qprm[q + 5], qprm[q + 6], qprm[q + 7],
                         qprm[q + 8], qprm[q + 9], qprm[q + 10], lo - zy, hi - zy)
            first += 16
    if mode == 0:       # on int64 lanes, 8 at a time, then one at a time
        while first + 8 <= count:
            add_reference8(a, start + first, a, res + first, left, qprm[q + 5], qprm[q + 6], qprm[q + 7],
                           qprm[q + 8], qprm[q + 9], qprm[q + 10], lo - zy, hi - zy)
            first += 8
    for i in range(first, count):
        da, db = np.int64(a[np.uint64(start + i)]), np.int64(a[np.uint64(res + i)])
        if mode == 1:
            v = add_xnnpack_one(da, db, qprm[q + 5], qprm[q + 6], qprm[q + 7]) + zy
        else:
            v = add_one(da, db, qprm[q + 5], qprm[q + 6], qprm[q + 7], qprm[q + 8], qprm[q + 9], qprm[q + 10],
                        left) + zy
        a[np.uint64(start + i)] = np.float32(min(max(v, lo), hi) - zy)


@njit(cache=True, _nrt=False, no_cpython_wrapper=True)
def pool_finish(s, prm, qprm, q):
    """The integer global pool's output minus its zero point, from the exact sum ``s`` of ``q - z_in``; record
    ``[kind, mode, count, z_in, z_out, act_min, act_max, qm, shift, fscale offset]``, kind 0 = AVERAGE_POOL_2D
    (``z_out = z_in``; the mean of the integers themselves), 1 = MEAN."""
    kind, mode, count, zin, zout, lo, hi = qprm[q], qprm[q + 1], qprm[q + 2], qprm[q + 3], qprm[q + 4], \
        qprm[q + 5], qprm[q + 6]
    si = np.int64(s)
    if kind == 0:
        v = rounded_mean(si + count * zin, count)
    else:
        v = mean_from_sum(si, qprm[q + 7], qprm[q + 8], prm[qprm[q + 9]], mode) + zout
    return np.float32(min(max(v, lo), hi) - zout)


@njit(cache=True, _nrt=False, no_cpython_wrapper=True)
def _requant_rows(t, to, a, i, rows, prm, qprm, q):
    """Requantize output rows ``i`` to ``i + rows - 1`` of tensor ``to`` (each row on its own: a ring may wrap and
    bordered rows have border pixels that must stay zero)."""
    for r in range(i, i + rows):
        requant_run(a, _row(t, to, r), t[to, T_W], t[to, T_C], prm, qprm, q)


# ------------------------------------------------------------------------------------------ one row of a stage
@njit(cache=True, _nrt=False, no_cpython_wrapper=True)
def _input_row(st, k, t, xf, h, w, n, r, a, prm):
    """Image ``n``, row ``r`` (of the flat C-ordered batch ``xf``: float32, or an 8-bit model's own integers),
    mapped by ``(scale, offset, lo, hi)`` at ``prm[W1]``: ``v -> scale v + offset`` (float models: [0, 1] ->
    [-1, 1]; integer ones: ``q -> q - z``).
    Returns a count that is 0 exactly when every value is in [lo, hi] (no NaN or infinity either; the vectors
    are checked by :func:`~mobilenet_np.kernels.simd.max_bits`), so the caller can refuse the image."""
    src = (n * h + r) * w * 3
    to = st[k, TOUT]
    m = st[k, W1]
    scale, offset, lo, hi = prm[m], prm[m + 1], prm[m + 2], prm[m + 3]
    shift, limit = np.float32(0.0) - lo, hi - lo
    plane = t[to, T_PLANE]
    worst = zeros16()   # of the vectors' values minus lo, the one whose bits are largest as an unsigned integer
    outside = 0         # values of the scalar tail not in [lo, hi]
    if plane > 0:        # planar rows for the stem: one run per channel c and parity q of bordered columns
        row = _padded_row(t, to, r)
        x0 = 0
        while x0 + 32 <= w:     # 32 columns at a time: even ones (bordered b = x + 1 odd) and odd ones
            v6 = deinterleave_rgb32(xf, src + x0 * 3)
            for c in range(3):
                worst = max_bits(max_bits(worst, v6[2 * c], shift), v6[2 * c + 1], shift)
                store_affine(a, row + (2 * c + 1) * plane + x0 // 2, v6[2 * c], scale, offset)
                store_affine(a, row + 2 * c * plane + x0 // 2 + 1, v6[2 * c + 1], scale, offset)
            x0 += 32
        for x in range(x0, w):
            dst = row + (x + 1) % 2 * plane + (x + 1) // 2
            for c in range(3):
                v = np.float32(xf[np.uint64(src + x * 3 + c)])
                outside += not ((v >= lo) & (v <= hi))
                a[np.uint64(dst + 2 * c * plane)] = v * scale + offset
        return outside + lanes_above(worst, limit)
    dst = _row(t, to, r)
    q = 0
    while q + 16 <= w * 3:
        v16 = load_pixels16(xf, src + q)
        worst = max_bits(worst, v16, shift)
        store_affine(a, dst + q, v16, scale, offset)
        q += 16
    for q in range(q, w * 3):
        v = np.float32(xf[np.uint64(src + q)])
        outside += not ((v >= lo) & (v <= hi))
        a[np.uint64(dst + q)] = v * scale + offset
    return outside + lanes_above(worst, limit)


@njit(cache=True, _nrt=False, inline="always")
def _conv_row(st, k, t, a, prm, qprm, i):
    """Row ``i`` of a full KxK convolution (the stem): from planar input rows by :func:`_stem_planar_row`, else
    by :func:`conv_row`."""
    Z = np.int64(0)   # typed, not a literal
    ti, to = st[k, TIN], st[k, TOUT]
    cin, stride, kk = t[ti, T_C], st[k, STRIDE], st[k, K]
    top = i * stride - st[k, PAD_T]
    col = (1 - st[k, PAD_L]) * cin
    r0 = _padded_row(t, ti, top)                      # the K input rows' left border pixels
    r1 = _padded_row(t, ti, top + 1) if kk > 1 else Z
    r2 = _padded_row(t, ti, top + 2) if kk > 2 else Z
    cout, ow = t[to, T_C], t[to, T_W]
    plane = t[ti, T_PLANE]
    if plane > 0:       # (a 3x3 stem)
        _stem_planar_row(a, r0, r1, r2, plane, st[k, PAD_L], ow, prm, st[k, W2], st[k, B2], st[k, RELU1] != 0,
                         a, _row(t, to, i))
    else:
        conv_row(a, r0 + col, r1 + col if kk > 1 else Z, r2 + col if kk > 2 else Z, kk, cin, stride, ow, prm,
                 st[k, W1], st[k, B1], cout, st[k, RELU1] != 0, a, _row(t, to, i))
    if qprm is not None:                # (None: a float model; Numba then compiles no integer code)
        if st[k, Q1] >= 0:
            _requant_rows(t, to, a, i, np.int64(1), prm, qprm, st[k, Q1])   # (no literal: one compile)


@njit(cache=True, _nrt=False, inline="always")
def _side_range(st, k, t, i, rows, side):
    """The part of stage ``k``'s side range (``PF0``) that its output rows ``i`` to ``i + rows - 1`` prefetch: a
    share in proportion, whole cache lines, all of it for the whole map; none unless ``side``."""
    lo, hi = st[k, PF0], st[k, PF1]
    if not side or lo == hi:
        return lo, lo
    h = t[st[k, TOUT], T_H]
    return lo + (hi - lo) * i // h // 16 * 16, (hi if i + rows >= h else lo + (hi - lo) * (i + rows) // h // 16 * 16)


@njit(cache=True, _nrt=False, inline="always")
def _pw_rows(st, k, t, a, prm, qprm, i, rows, side):
    """Rows ``i`` to ``i + rows - 1`` of a pointwise layer (V2's expand, or a pointwise layer on its own) as one
    GEMM; the input rows are one contiguous run (a borderless tensor whose ring holds them in order). With
    ``side``, the GEMM also prefetches the stage's side range (``PF0``)."""
    Z, NO = np.int64(0), np.bool_(False)   # typed, not literals: one compiled gemm for every caller
    ti, to = st[k, TIN], st[k, TOUT]
    cin, cout, w = t[ti, T_C], t[to, T_C], t[to, T_W]
    sp, sp_end = _side_range(st, k, t, i, rows, side)
    gemm(a, _row(t, ti, i), Z, Z, Z + 1, cin, cin, rows * w, prm, st[k, W1], st[k, B1], cout, st[k, RELU1] != 0,
         a, _row(t, to, i), cout, w, t[to, T_ROWLEN], NO, Z, Z, sp, sp_end)
    if qprm is not None:
        if st[k, Q1] >= 0:
            _requant_rows(t, to, a, i, rows, prm, qprm, st[k, Q1])


@njit(cache=True, _nrt=False, inline="always")
def _dwpw_rows(st, k, t, a, prm, qprm, i, rows, fuse_residual, side):
    """Rows ``i`` to ``i + rows - 1`` of depthwise -> pointwise [+ residual]: the depthwise rows into the
    scratch rows, then one pointwise GEMM from there (adding the residual in its epilogue when
    ``fuse_residual``; integer layers requantize after each kernel and add the residual by their ADD). With
    ``side``, the GEMM also prefetches the stage's side range (``PF0``)."""
    Z = np.int64(0)   # typed, not a literal: one compiled version of gemm for every caller
    ti, to, tr = st[k, TIN], st[k, TOUT], st[k, TRES]
    c, stride, cout, ow = t[ti, T_C], st[k, STRIDE], t[to, T_C], t[to, T_W]
    col = (1 - st[k, PAD_L]) * c
    scratch = st[k, SCRATCH]
    group = map_group(ow) if WIDE and rows > 1 and stride == 1 and c % 16 == 0 else 0
    if group > 0:    # a whole small map: one block of channels at a time over all rows (see map_group)
        for cb in range(0, c, 16):
            brow = load_row16(prm, st[k, B1] + cb, 1)
            if group == 7:
                _dw_map_block(a, t, ti, i - st[k, PAD_T], col + cb, rows, ow, prm, st[k, W1] + cb, c, brow,
                              run_offsets(0, 0, 7), st[k, RELU1] != 0, a, scratch + cb, c)
            else:
                _dw_map_block(a, t, ti, i - st[k, PAD_T], col + cb, rows, ow, prm, st[k, W1] + cb, c, brow,
                              run_offsets(0, 0, 5), st[k, RELU1] != 0, a, scratch + cb, c)
    else:
        for r in range(rows):
            top = (i + r) * stride - st[k, PAD_T]
            dw_row(a, _padded_row(t, ti, top) + col, _padded_row(t, ti, top + 1) + col,
                   _padded_row(t, ti, top + 2) + col, c, stride, ow, prm, st[k, W1], st[k, B1], st[k, RELU1] != 0,
                   a, scratch + r * ow * c, c)
    integer = False
    if qprm is not None:
        integer = st[k, Q2] >= 0
        if st[k, Q1] >= 0:
            requant_run(a, scratch, rows * ow, c, prm, qprm, st[k, Q1])
    res = fuse_residual and tr >= 0 and not integer
    sp, sp_end = _side_range(st, k, t, i, rows, side)
    gemm(a, scratch, Z, Z, Z + 1, c, c, rows * ow, prm, st[k, W2], st[k, B2], cout, st[k, RELU2] != 0,
         a, _row(t, to, i), cout, ow, t[to, T_ROWLEN], res, _row(t, tr, i) if res else Z, cout, sp, sp_end)
    if qprm is not None:
        if integer:
            _requant_rows(t, to, a, i, rows, prm, qprm, st[k, Q2])
            if tr >= 0:
                for r in range(i, i + rows):
                    add_run(a, _row(t, to, r), _row(t, tr, r), ow * cout, qprm, st[k, Q3])


@njit(cache=True, _nrt=False, no_cpython_wrapper=True)
def _pool_row(st, k, t, a, prm, qprm, i, acc, pooled, n):
    """Add row ``i`` to the float64 sums; after the last row, ``pooled[n] = sums / (H W)`` (global average
    pool, summed like :func:`mobilenet_np.kernels.global_avg_pool`), or an integer pool's output."""
    ti = st[k, TIN]
    h, w, c = t[ti, T_H], t[ti, T_W], t[ti, T_C]
    if i == 0:
        acc[:c] = 0.0
    base = _row(t, ti, i)
    for p in range(w):
        for ch in range(0, c, 8):       # c is a multiple of 8
            add_widened8(acc, ch, a, base + p * c + ch)
    if i == h - 1:
        if qprm is not None:
            if st[k, Q1] >= 0:
                for ch in range(c):
                    pooled[np.uint64(n * c + ch)] = pool_finish(acc[np.uint64(ch)], prm, qprm, st[k, Q1])
                return
        for ch in range(c):
            pooled[np.uint64(n * c + ch)] = acc[np.uint64(ch)] / (h * w)


@njit(cache=True, _nrt=False, no_cpython_wrapper=True)
def _record_rows(st, k, t, a, i, n, nimg, ends):
    """Copy output row ``i`` of stage ``k`` to the endpoint buffer (for depthwise -> pointwise also the depthwise
    row, from the scratch row(s); and for a V2 block with a residual, the residual is added only now, after
    recording the projection without it)."""
    op, to = st[k, OP], st[k, TOUT]
    ow, cout = t[to, T_W], t[to, T_C]
    row = (n * t[to, T_H] + i) * ow
    out = _row(t, to, i)
    cr1, cr2 = st[k, CR1], st[k, CR2]
    if op == ST_DWPW:
        if st[k, REC1] >= 0:
            c = t[st[k, TIN], T_C]
            group_row = i % st[k, GROUP]
            _record(a, st[k, SCRATCH] + group_row * ow * c, ow, c, ends, st[k, REC1] * nimg + row * cr1, cr1)
        if st[k, REC2] >= 0:
            _record(a, out, ow, cout, ends, st[k, REC2] * nimg + row * cr2, cr2)
        if st[k, TRES] >= 0:
            res = _row(t, st[k, TRES], i)
            for q in range(ow * cout):
                a[np.uint64(out + q)] += a[np.uint64(res + q)]
        if st[k, REC3] >= 0:
            _record(a, out, ow, cout, ends, st[k, REC3] * nimg + row * cr2, cr2)
    elif st[k, REC1] >= 0:
        _record(a, out, ow, cout, ends, st[k, REC1] * nimg + row * cr1, cr1)


# ------------------------------------------------------------------------------------------ the interpreter
@njit(cache=True, _nrt=False, inline="always")
def run_image(xf, nimg, h, w, n, stages, tensors, schedule, prm, qprm, a, acc, pooled, ends, record, cycles,
              side):
    """Every (stage, first row, rows) step of ``schedule`` for image ``n`` of the flat batch ``xf``
    [nimg, h, w, 3]; pooled features to ``pooled[n]``. A non-empty ``cycles`` [stages] adds up the CPU cycles
    each stage takes (the profile). ``side``: prefetch the stages' side ranges (``PF0``; the logits' weights,
    for the image after which the logits layer runs). Returns the number of input values outside [0, 1] (or
    NaN)."""
    profile = cycles.size > 0
    bad = 0
    for q in range(tensors[ZERO_ROW, T_ROWLEN]):    # the zero row and the input rows (borders included)
        a[np.uint64(q)] = 0.0
    for q in range(schedule.shape[0]):
        k = schedule[q, 0]
        i = schedule[q, 1]
        rows = schedule[q, 2]
        op = stages[k, OP]
        if profile:
            start = cycle_counter()
        if op == ST_DWPW:
            _dwpw_rows(stages, k, tensors, a, prm, qprm, i, rows, not record, side)
        elif op == ST_EXPAND or op == ST_PW:
            _pw_rows(stages, k, tensors, a, prm, qprm, i, rows, side)
        elif op == ST_CONV:
            _conv_row(stages, k, tensors, a, prm, qprm, i)
        elif op == ST_INPUT:
            bad += _input_row(stages, k, tensors, xf, h, w, n, i, a, prm)
        elif op == ST_POOL:
            _pool_row(stages, k, tensors, a, prm, qprm, i, acc, pooled, n)
        if op != ST_INPUT and op != ST_POOL:
            _zero_borders(tensors, stages[k, TOUT], a, i, rows)
        if record and op != ST_INPUT and op != ST_POOL:
            for r in range(i, i + rows):
                _record_rows(stages, k, tensors, a, r, n, nimg, ends)
        if profile:
            cycles[k] += cycle_counter() - start
    return bad


@njit(cache=True, _nrt=False, inline="always")
def _logits_stage(pooled, nimg, prm, qprm, head, scratch, logits):
    """The logits layer of ``head`` (see :func:`forward`) for the ``nimg`` pooled feature vectors, into ``logits``
    [N, classes]. :func:`dense` writes rows padded to ``head[3]`` classes into ``scratch`` (an arena, free once
    the images are done), as many images at a time as it holds; integer models requantize them there (``head[4]``:
    their record, -1 for none); then each row's real classes are copied out, so that the caller gets its array
    as it is to be returned. Inlined into both callers, so it costs no compile of its own."""
    cin, cout, classes = head[2], head[3], logits.shape[1]
    per = scratch.size // cout
    for i0 in range(0, nimg, per):
        m = min(per, nimg - i0)
        dense(pooled[i0 * cin:], m, cin, prm, head[0], head[1], cout, scratch, head[5])
        if qprm is not None:
            if head[4] >= 0:
                requant_run(scratch, np.int64(0), m, cout, prm, qprm, head[4])
        for i in range(m):
            for j in range(classes):
                logits[i0 + i, j] = scratch[i * cout + j]


@njit(cache=True, _nrt=False, nogil=True)
def forward(x, stages, tensors, schedule, prm, qprm, arena, acc, pooled, ends, record, head, logits, cycles):
    """All images of ``x`` [N, H, W, 3] (C-contiguous float32 in [0, 1], or an 8-bit model's own integers) one
    after another in one arena; pooled features into the flat ``pooled`` [N, C]; with ``record``, every endpoint
    into ``ends``. When ``head`` = (weights, biases, C, classes, requantization record or -1, int16 weights or -1:
    see :func:`dense`) of the logits layer has classes > 0, the logits go to ``logits`` [N, classes] (the real
    classes, ``classes`` <= ``head[3]``; the arena is at least one padded row, see :func:`_logits_stage`).
    ``cycles``: see :func:`run_image` (the logits are counted as one more stage, the last entry). Returns how many
    input values are outside the input stage's range ([0, 1] for float models; NaN included), so the caller can
    refuse the batch. Releases the GIL (``nogil``): other Python threads, such as the command line's image
    readers, run meanwhile."""
    nimg, h, w = x.shape[0], x.shape[1], x.shape[2]
    xf = x.reshape(x.size)
    bad = 0
    for n in range(nimg):
        bad += run_image(xf, nimg, h, w, n, stages, tensors, schedule, prm, qprm, arena, acc, pooled, ends, record,
                         cycles, n == nimg - 1 and head[3] > 0)
    if head[3] > 0 and nimg > 0:
        start = cycle_counter()
        _logits_stage(pooled, nimg, prm, qprm, head, arena, logits)
        if cycles.size > 0:
            cycles[cycles.size - 1] += cycle_counter() - start
    return bad


@njit(cache=True, parallel=True, nogil=True)
def forward_parallel(x, stages, tensors, schedule, prm, qprm, arenas, accs, pooled, ends, record, head, logits,
                     cycles):
    """:func:`forward` with the images shared among ``arenas.shape[0]`` threads, one arena each (``cycles``
    must be empty); returns the same count."""
    nimg, h, w = x.shape[0], x.shape[1], x.shape[2]
    xf = x.reshape(x.size)
    threads = arenas.shape[0]
    bad = np.zeros(nimg, np.int64)      # per image: each thread writes its own
    for th in prange(threads):
        for n in range(th, nimg, threads):
            bad[n] = run_image(xf, nimg, h, w, n, stages, tensors, schedule, prm, qprm, arenas[th], accs[th],
                               pooled, ends, record, cycles, np.bool_(False))   # (the logits run elsewhere)
    if head[3] > 0 and nimg > 0:
        _logits_stage(pooled, nimg, prm, qprm, head, arenas[0], logits)
    return bad.sum()
