"""Vectorisable exp/log polynomials, float bit casts and typed constants.

Shared by the numba kernels of :mod:`skmonge._kernels.separable` (the
logarithm of the STVS regulariser) and :mod:`skmonge._kernels.sinkhorn` (the
``exp`` of every Gibbs kernel), and by :mod:`skmonge._epsilon`.

* numba's ``math.log`` / ``math.exp`` are scalar libm calls that keep loops
  scalar. ``_log_poly`` / ``_log1p_poly`` are polynomial logarithms
  (exponent split on the bit pattern, polynomial in s = f / (2 + f)) for
  float32 and float64; ``_fexp`` is a float64 exponential (Cody-Waite
  reduction, degree-13 Taylor polynomial, exponent assembled with integer
  arithmetic). All of them vectorise.
* Float constants go through ``_tc``: a float64 literal would promote
  float32 arithmetic to float64.
* One ln 2 split serves both: ``_LN2_HI64 + _LN2_LO64`` (``_LN2_HI32 +
  _LN2_LO32`` for the float32 logarithm), ``hi`` with trailing zero bits so
  that ``k * hi`` is exact.
"""

import numpy as np
from llvmlite import ir
from numba import njit, prange
from numba.core import types
from numba.extending import intrinsic, overload

# The logarithm relies on exact (Sterbenz) subtractions and a split ln 2, so
# it gets contraction only.
_FM_SCALAR = {"contract"}


# ---------------------------------------------------------------------------
# typed constants and float bit manipulation
# ---------------------------------------------------------------------------


def _tc(x, c32, c64):  # pragma: no cover - replaced in jitted code
    """Constant ``c32`` (float32 ``x``) or ``c64`` (float64 ``x``) of x's type."""
    return np.float32(c32) if np.asarray(x).dtype == np.float32 else np.float64(c64)


@overload(_tc, jit_options={"cache": True})
def _ol_tc(x, c32, c64):
    ty = x.dtype if isinstance(x, types.Array) else x
    if ty == types.float32:
        return lambda x, c32, c64: np.float32(c32)
    if ty == types.float64:
        return lambda x, c32, c64: np.float64(c64)
    return None


def _bits_info(fty):
    """(integer width, mantissa bits) of a numba float type."""
    return (32, 23) if fty == types.float32 else (64, 52)


@intrinsic
def _log_split(typingctx, x):
    """Split positive normal ``x = 2^k z``, z in [sqrt(1/2), sqrt(2)).

    Returns ``(k, z)`` with ``k`` a float of x's type. Subtracting the bit
    pattern of sqrt(1/2) leaves k in the exponent field of the difference
    (arithmetic shift keeps its sign); removing k from x's exponent gives z.
    """
    if not isinstance(x, types.Float):
        return None
    width, mbits = _bits_info(x)
    fdt, idt = (np.float32, np.int32) if width == 32 else (np.float64, np.int64)
    off = int(np.array(np.sqrt(0.5), dtype=fdt).view(idt))

    def codegen(context, builder, sig, args):
        ity = ir.IntType(width)
        bits = builder.bitcast(args[0], ity)
        k = builder.ashr(builder.sub(bits, ity(off)), ity(mbits))
        z = builder.bitcast(builder.sub(bits, builder.shl(k, ity(mbits))), args[0].type)
        kf = builder.sitofp(k, args[0].type)
        return context.make_tuple(builder, sig.return_type, (kf, z))

    return types.UniTuple(x, 2)(x), codegen


# float64 <-> int64 bit casts (the exponent assembly of _fexp). _log_split
# keeps its casts inside its own LLVM code: written with these and numba
# integer arithmetic, which promotes int32 to int64, its float32 path would
# no longer run in 32-bit lanes.
@intrinsic
def _i64_bits_as_f64(typingctx, x):
    """Reinterpret the bits of an int64 as a float64 (no conversion)."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return sig, codegen


@intrinsic
def _f64_bits_as_i64(typingctx, x):
    """Reinterpret the bits of a float64 as an int64 (no conversion)."""
    sig = types.int64(types.float64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return sig, codegen


# ---------------------------------------------------------------------------
# polynomial logarithm
# ---------------------------------------------------------------------------

# log1p(f) = f - f^2/2 + s (f^2/2 + z P(z)),  s = f / (2 + f),  z = s^2.
# (Exact: log1p(f) = 2 atanh(s) = 2 s + s z P(z) with P(z) = sum_k 2 z^(k-1)/(2k+1),
# and 2 s = f - s f = f - f^2/2 + s f^2/2.) P is a weighted least-squares fit
# on Chebyshev nodes of [0, 0.02944] (|s| <= (sqrt2-1)/(sqrt2+1)); its
# relative error is 1.1e-15 (float64, degree 6) / 2.8e-7 (float32, degree 2),
# and z P(z) is at most 2 % of the result, so the fit costs < 0.1 ulp.
_P64 = (
    0.6666666666666667,
    0.39999999999901126,
    0.2857142862565846,
    0.22222211147749651,
    0.18182889739298672,
    0.15331673545871868,
    0.14617211248304815,
)
_P32 = (0.666666849874236, 0.39988794848003467, 0.2957946297871649)
# ln 2 rounded once (the k log 2 terms of the pairwise STVS kernel)
_LN2 = 0.6931471805599453
# ln 2 = hi + lo, hi with trailing zero bits so that k * hi is exact.
_LN2_HI64 = 6.93147180369123816490e-01
_LN2_LO64 = 1.90821492927058770002e-10
_LN2_HI32 = 0.693145751953125
_LN2_LO32 = 1.428606765330187e-06


@njit(cache=True, fastmath=_FM_SCALAR, error_model="numpy")
def _log_core64(k, f):
    # k log 2 + log1p(f), |f| <= 0.415
    s = f / (2.0 + f)
    z = s * s
    p = _P64[5] + z * _P64[6]
    p = _P64[4] + z * p
    p = _P64[3] + z * p
    p = _P64[2] + z * p
    p = _P64[1] + z * p
    p = _P64[0] + z * p
    hfsq = 0.5 * f * f
    return k * _LN2_HI64 + ((k * _LN2_LO64 + s * (hfsq + z * p)) - hfsq + f)


@njit(cache=True, fastmath=_FM_SCALAR, error_model="numpy")
def _log_core32(k, f):
    s = f / (np.float32(2.0) + f)
    z = s * s
    p = np.float32(_P32[0]) + z * (np.float32(_P32[1]) + z * np.float32(_P32[2]))
    hfsq = np.float32(0.5) * f * f
    lo = k * np.float32(_LN2_LO32) + s * (hfsq + z * p)
    return k * np.float32(_LN2_HI32) + (lo - hfsq + f)


def _log_core(k, f):  # pragma: no cover - jit only
    raise NotImplementedError


@overload(_log_core, jit_options={"cache": True})
def _ol_log_core(k, f):
    if f == types.float32:
        return lambda k, f: _log_core32(k, f)
    if f == types.float64:
        return lambda k, f: _log_core64(k, f)
    return None


@njit(cache=True, fastmath=_FM_SCALAR, error_model="numpy")
def _log_special(y, res):
    # log(0) = -inf, log(y < 0) = NaN, log(inf) = inf, log(NaN) = NaN
    if y == 0:
        res = _tc(y, -np.inf, -np.inf)
    elif y < 0:
        res = _tc(y, np.nan, np.nan)
    elif not y < _tc(y, np.inf, np.inf):
        res = y
    return res


@njit(cache=True, fastmath=_FM_SCALAR, error_model="numpy")
def _log_poly(y):
    """Natural logarithm, vectorisable, ~1 ulp (float32 or float64).

    log(y) = k log 2 + log1p(f),  y = 2^k (1 + f),  1 + f in [sqrt(1/2), sqrt(2)).
    Subnormal y are first scaled by 2^64.
    """
    tiny = y < _tc(y, 2.0**-126, 2.0**-1022)
    ys = y * _tc(y, 2.0**64, 2.0**64) if tiny else y
    k, z = _log_split(ys)
    if tiny:
        k = k - _tc(y, 64.0, 64.0)
    return _log_special(y, _log_core(k, z - _tc(y, 1.0, 1.0)))


@njit(cache=True, fastmath=_FM_SCALAR, error_model="numpy")
def _log1p_poly(x):
    """log(1 + x) for x > -1, vectorisable, ~1 ulp also for tiny |x|.

    When 1 + x lies in [sqrt(1/2), sqrt(2)) the reduced argument f is x
    itself, so the rounding of 1 + x is never seen; elsewhere log(1 + x) >=
    0.34 and that rounding is below one ulp of the result.
    """
    y = x + _tc(x, 1.0, 1.0)
    k, z = _log_split(y)
    f = x if k == 0 else z - _tc(x, 1.0, 1.0)
    return _log_special(y, _log_core(k, f))


# vectorised array front-ends of the polynomial logs (tests / diagnostics)
@njit(parallel=True, cache=True, error_model="numpy")
def _log_poly_array(a, out):
    for i in prange(a.size):
        out[i] = _log_poly(a[i])


@njit(parallel=True, cache=True, error_model="numpy")
def _log1p_poly_array(a, out):
    for i in prange(a.size):
        out[i] = _log1p_poly(a[i])


# ---------------------------------------------------------------------------
# vectorisable exp
# ---------------------------------------------------------------------------
# 1 / ln 2; the Cody-Waite reduction of _fexp uses the float64 ln 2 split of
# the logarithm (_LN2_HI64 + _LN2_LO64).
_LOG2E = 1.4426950408889634


@njit(cache=True, error_model="numpy")
def _fexp(x):
    r"""Vectorisable :math:`e^x` for float64, relative error below 5e-14.

    :math:`e^x = 2^k e^r` with :math:`k = \operatorname{round}(x / \ln 2)`,
    :math:`r = x - k \ln 2 \in [-\ln 2 / 2, \ln 2 / 2]` (Cody-Waite, two-term
    ln 2), :math:`e^r` by its degree-13 Taylor polynomial (truncation
    < 2e-17) and :math:`2^k` written directly into the exponent bits. ``x`` is
    clamped to [-708, 709]; below -708 the result is flushed to 0.
    """
    if x < -708.0:
        return 0.0
    x = min(x, 709.0)
    kf = np.floor(x * _LOG2E + 0.5)  # stays float64 (math.floor gives an int)
    r = x - kf * _LN2_HI64
    r = r - kf * _LN2_LO64
    p = 1.6059043836821613e-10
    p = p * r + 2.08767569878681e-09
    p = p * r + 2.505210838544172e-08
    p = p * r + 2.755731922398589e-07
    p = p * r + 2.7557319223985893e-06
    p = p * r + 2.48015873015873e-05
    p = p * r + 0.0001984126984126984
    p = p * r + 0.001388888888888889
    p = p * r + 0.008333333333333333
    p = p * r + 0.041666666666666664
    p = p * r + 0.16666666666666666
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    # 2**k without a float -> int conversion (not vectorisable on AVX2): the
    # low mantissa bits of 2**52 + 1023 + k hold the biased exponent k + 1023.
    bits = _f64_bits_as_i64(kf + 4503599627371519.0)
    return p * _i64_bits_as_f64(bits << 52)
