"""Scalar math for the kernels: exp, log, log1p that vectorise, and the stable forms built on
them (softplus, sigmoid). float64 in, float64 out.

``math.exp`` and ``math.log`` stay scalar library calls in a Numba loop (this Numba has no
SVML), and a loss with many classes is bound by them. ``exp`` and ``log`` here are range
reduction plus a polynomial, written with plain arithmetic and bit casts, so LLVM vectorises
the loops that call them. Both are within a few ulp of the correctly rounded result over the
whole float64 range, and give the IEEE results at the edges: ``exp(-inf) = 0``,
``exp(inf) = inf``, underflow to subnormals and 0, overflow to inf, ``log(0) = -inf``,
``log(x < 0) = nan``, and NaN for NaN.

>>> round(softplus(0.0), 6)
0.693147
>>> round(exp(1.0), 12), round(log(10.0), 12)
(2.718281828459, 2.302585092994)
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

from lossjit._jit import jit


@intrinsic
def _bits(typingctx, x):
    """The IEEE-754 bits of a float64, as an int64 (a bit cast, no conversion)."""
    if x != types.float64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


@intrinsic
def _float(typingctx, bits):
    """The float64 whose IEEE-754 bits are the int64 ``bits`` (a bit cast)."""
    if bits != types.int64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


@intrinsic
def _bits32(typingctx, x):
    """The IEEE-754 bits of a float32, as an int32 (a bit cast)."""
    if x != types.float32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return types.int32(types.float32), codegen


@intrinsic
def _float32(typingctx, bits):
    """The float32 whose IEEE-754 bits are the int32 ``bits`` (a bit cast)."""
    if bits != types.int32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.int32), codegen


_LOG2E = 1.4426950408889634
_LN2_HI = 0.6931471803691238  # ln 2 split in two, so k * _LN2_HI is exact for |k| < 2^11
_LN2_LO = 1.9082149292705877e-10
_SQRT2 = 1.4142135623730951


@jit(inline=True)
def _pow2(k):
    """2^k for an integer-valued float k in [-1022, 1023]."""
    return _float((int(k) + 1023) << 52)


@jit(inline=True)
def _times_pow2(v, k):
    """v 2^k for an integer-valued float k, in two halves (so that subnormal results and the
    overflow edge come out right)."""
    half = math.floor(k * 0.5)
    return v * _pow2(half) * _pow2(k - half)


@jit(inline=True)
def _expm1_reduced(r):
    """e^r - 1 for |r| <= ln2/2: r times the Taylor polynomial of e^r's terms after the
    leading 1, to degree 13 (truncation below 1e-17)."""
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    return p * r


@jit(inline=True)
def exp(x):
    """e^x: x = k ln2 + r with |r| <= ln2/2, e^r by its Taylor polynomial of degree 13
    (truncation below 1e-17), then scaled by 2^k in two halves so that subnormal results and
    the overflow edge come out right."""
    clamped = min(max(x, -746.0), 710.0)
    k = math.floor(clamped * _LOG2E + 0.5)
    r = (clamped - k * _LN2_HI) - k * _LN2_LO
    p = _expm1_reduced(r) + 1.0
    value = _times_pow2(p, k)
    return value if x == x else x


_F32 = np.float32


@jit(inline=True)
def _expm1_reduced32(r):
    """``_expm1_reduced`` in float32: to degree 7 (truncation below 1e-8)."""
    p = _F32(1.0 / 5040.0)
    p = p * r + _F32(1.0 / 720.0)
    p = p * r + _F32(1.0 / 120.0)
    p = p * r + _F32(1.0 / 24.0)
    p = p * r + _F32(1.0 / 6.0)
    p = p * r + _F32(0.5)
    p = p * r + _F32(1.0)
    return p * r


@jit(inline=True)
def _times_pow2_32(v, k):
    """v 2^k in float32, for an integer-valued k, in two halves (so that subnormal results and
    the overflow edge come out right)."""
    half = np.floor(k * _F32(0.5))
    rest = k - half
    return (v * _float32(np.int32((np.int32(half) + 127) << 23))
            * _float32(np.int32((np.int32(rest) + 127) << 23)))


@jit(inline=True)
def exp32(x):
    """e^x in float32 arithmetic, for float32 data: the same range reduction as ``exp``
    and a degree-7 polynomial (truncation below 1e-8), twice as many lanes per vector."""
    clamped = min(max(x, _F32(-104.0)), _F32(89.0))
    k = np.floor(clamped * _F32(_LOG2E) + _F32(0.5))
    r = (clamped - k * _F32(_LN2_HI32)) - k * _F32(_LN2_LO32)
    value = _times_pow2_32(_expm1_reduced32(r) + _F32(1.0), k)
    return value if x == x else x


@jit(inline=True)
def log(x):
    """ln x: x = m 2^e with m in [sqrt(1/2), sqrt(2)), ln m = 2 atanh(s), s = (m-1)/(m+1),
    by its odd series to s^23 (|s| <= 0.172, truncation below 1e-18)."""
    tiny = x < 2.2250738585072014e-308  # subnormal (or zero, negative, NaN): scale up first
    scaled = x * 18014398509481984.0 if tiny else x  # 2^54
    bits = _bits(scaled)
    e = ((bits >> 52) & 0x7FF) - 1023 - (54 if tiny else 0)
    m = _float((bits & 0x000FFFFFFFFFFFFF) | 0x3FF0000000000000)
    if m > _SQRT2:
        m *= 0.5
        e += 1
    s = (m - 1.0) / (m + 1.0)
    s2 = s * s
    q = 2.0 / 23.0
    q = q * s2 + 2.0 / 21.0
    q = q * s2 + 2.0 / 19.0
    q = q * s2 + 2.0 / 17.0
    q = q * s2 + 2.0 / 15.0
    q = q * s2 + 2.0 / 13.0
    q = q * s2 + 2.0 / 11.0
    q = q * s2 + 2.0 / 9.0
    q = q * s2 + 2.0 / 7.0
    q = q * s2 + 2.0 / 5.0
    q = q * s2 + 2.0 / 3.0
    q = q * s2 + 2.0
    fe = float(e)
    value = fe * _LN2_HI + (s * q + fe * _LN2_LO)
    if x == 0.0:
        return -math.inf
    if x < 0.0 or x != x:
        return math.nan
    if x == math.inf:
        return x
    return value


@jit(inline=True)
def log1p(u):
    """ln(1 + u), accurate for small u: log(w) * u / (w - 1) with w = 1 + u."""
    w = 1.0 + u
    if w == 1.0:
        return u
    if w == math.inf:
        return w
    return log(w) * (u / (w - 1.0))


@jit(inline=True)
def softplus(x):
    """log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)); finite for every finite x."""
    return (x if x > 0.0 else 0.0) + log1p(exp(-abs(x)))  # a select: max() would not vectorise


@jit(inline=True)
def sigmoid(x):
    """1 / (1 + exp(-x)), evaluated so that neither tail overflows."""
    z = exp(-abs(x))
    if x >= 0.0:
        return 1.0 / (1.0 + z)
    return z / (1.0 + z)


@jit(inline=True)
def logistic(x):
    """(softplus(-x), sigmoid(x), sigmoid(-x)) from a single exp(-|x|): what the logistic
    losses need, at a third of the cost of computing each alone."""
    z = exp(-abs(x))
    tail = log1p(z)
    inverse = 1.0 / (1.0 + z)
    if x >= 0.0:
        return tail, inverse, z * inverse
    return tail - x, z * inverse, inverse


@jit(inline=True)
def sign(x):
    """-1, 0 or 1 (0 at x = 0, NaN for NaN), as torch.sign."""
    if x > 0.0:
        return 1.0
    if x < 0.0:
        return -1.0
    return x


@jit(inline=True)
def log32(x):
    """ln x in float32 arithmetic: the reduction of ``log`` and its series to s^9."""
    tiny = x < _F32(1.1754944e-38)  # subnormal (or zero, negative, NaN): scale up first
    scaled = x * _F32(16777216.0) if tiny else x  # 2^24
    bits = _bits32(scaled)
    e = ((bits >> 23) & 0xFF) - 127 - (24 if tiny else 0)
    m = _float32(np.int32((bits & 0x007FFFFF) | 0x3F800000))
    if m > _F32(_SQRT2):
        m *= _F32(0.5)
        e += 1
    s = (m - _F32(1.0)) / (m + _F32(1.0))
    s2 = s * s
    q = _F32(2.0 / 9.0)
    q = q * s2 + _F32(2.0 / 7.0)
    q = q * s2 + _F32(2.0 / 5.0)
    q = q * s2 + _F32(2.0 / 3.0)
    q = q * s2 + _F32(2.0)
    fe = _F32(e)
    value = fe * _F32(0.693359375) + (s * q + fe * _F32(-2.12194440e-4))
    if x == _F32(0.0):
        return _F32(-np.inf)
    if x < _F32(0.0) or x != x:
        return _F32(np.nan)
    if x == _F32(np.inf):
        return x
    return value


@jit(inline=True)
def log1p32(u):
    """ln(1 + u) in float32 arithmetic, as ``log1p``."""
    w = _F32(1.0) + u
    if w == _F32(1.0):
        return u
    if w == _F32(np.inf):
        return w
    return log32(w) * (u / (w - _F32(1.0)))


@jit(inline=True)
def logistic32(x):
    """``logistic`` in float32 arithmetic."""
    z = exp32(-abs(x))
    tail = log1p32(z)
    inverse = _F32(1.0) / (_F32(1.0) + z)
    if x >= _F32(0.0):
        return tail, inverse, z * inverse
    return tail - x, z * inverse, inverse


# In the precision of the argument: float32 data gets float32 math (twice as many lanes at a
# time, results within a few float32 ulp), float64 data float64 math.


def exp_as(x):
    """e^x: ``exp32`` for a float32, ``exp`` otherwise."""
    raise NotImplementedError("for use inside compiled kernels")


def log_as(x):
    """ln x: ``log32`` for a float32, ``log`` otherwise."""
    raise NotImplementedError("for use inside compiled kernels")


def log1p_as(x):
    """ln(1 + x): ``log1p32`` for a float32, ``log1p`` otherwise."""
    raise NotImplementedError("for use inside compiled kernels")


def logistic_as(x):
    """(softplus(-x), sigmoid(x), sigmoid(-x)): ``logistic32`` for a float32, ``logistic``
    otherwise."""
    raise NotImplementedError("for use inside compiled kernels")


# Inlining these overloads trips a pedantic check in Numba's IR inliner about the names it
# generates ("variable '_lossjit_precision__locals...' is not in scope"); the code is right
# (the golden and float32 tests check it). lossjit.plan.call_kernel silences that one message
# while a kernel compiles; nothing here changes the importer's warning filters.


def _lossjit_precision(stub, single, double, *, convert=True):
    """Make ``stub`` call ``single`` on a float32 and ``double`` otherwise (on ``float(x)``
    with ``convert``, else on ``x`` as it is), inlined."""
    if convert:
        @overload(stub, inline="always")
        def _choose(x):
            if x == types.float32:
                return lambda x: single(x)
            return lambda x: double(float(x))
    else:
        @overload(stub, inline="always")
        def _choose_as_is(x):
            if x == types.float32:
                return lambda x: single(x)
            return lambda x: double(x)


_lossjit_precision(exp_as, exp32, exp)
_lossjit_precision(log_as, log32, log)
_lossjit_precision(log1p_as, log1p32, log1p)
_lossjit_precision(logistic_as, logistic32, logistic)


# --- precision-generic building blocks --------------------------------------------------------
#
# The loss formulas below are written once and compiled in the data's precision: every constant
# goes through ``const_as(x, value)`` (a float32 for float32 ``x``, a float64 otherwise), so
# float32 data is computed in float32 lanes (twice the SIMD width) and float64 data in float64.
# Only the polynomials differ (their degree follows the precision).

_LN2_HI32 = 0.693359375  # ln 2 in two float32 parts (k * _LN2_HI32 exact for |k| < 2^9)
_LN2_LO32 = -2.12194440e-4
_SQRT2M1 = 0.41421356237309503


def const_as(x, value):
    """``value`` in the precision of ``x``: float32 for a float32 ``x``, float64 otherwise."""
    raise NotImplementedError("for use inside compiled kernels")


def in_precision(x, value):
    """``value`` converted to the precision of ``x`` (as ``const_as``, for data)."""
    raise NotImplementedError("for use inside compiled kernels")


def _lossjit_precision_of(stub):
    """Make ``stub(x, value)`` give ``value`` as a float32 for a float32 ``x``, else as a
    float64 (named as ``_lossjit_precision``: the same pedantic warning, silenced alike)."""
    @overload(stub, inline="always")
    def _choose(x, value):
        if x == types.float32:
            return lambda x, value: np.float32(value)
        return lambda x, value: float(value)


_lossjit_precision_of(const_as)
_lossjit_precision_of(in_precision)


@jit(inline=True)
def atanh2_64(s):
    """2 atanh(s) = ln((1+s)/(1-s)) for |s| <= 0.172: the odd series of ``log`` (float64)."""
    s2 = s * s
    q = 2.0 / 23.0
    q = q * s2 + 2.0 / 21.0
    q = q * s2 + 2.0 / 19.0
    q = q * s2 + 2.0 / 17.0
    q = q * s2 + 2.0 / 15.0
    q = q * s2 + 2.0 / 13.0
    q = q * s2 + 2.0 / 11.0
    q = q * s2 + 2.0 / 9.0
    q = q * s2 + 2.0 / 7.0
    q = q * s2 + 2.0 / 5.0
    q = q * s2 + 2.0 / 3.0
    return s * (q * s2) + 2.0 * s


@jit(inline=True)
def atanh2_32(s):
    """2 atanh(s) for |s| <= 0.172 in float32: the series of ``log32``."""
    s2 = s * s
    q = _F32(2.0 / 9.0)
    q = q * s2 + _F32(2.0 / 7.0)
    q = q * s2 + _F32(2.0 / 5.0)
    q = q * s2 + _F32(2.0 / 3.0)
    return s * (q * s2) + _F32(2.0) * s


@jit(inline=True)
def mantissa64(x):
    """(m, e) with x = m 2^e, m in [sqrt(1/2), sqrt(2)) (x > 0 finite; subnormals scaled), e as
    a float64."""
    tiny = x < 2.2250738585072014e-308
    scaled = x * 18014398509481984.0 if tiny else x
    bits = _bits(scaled)
    e = ((bits >> 52) & 0x7FF) - 1023 - (54 if tiny else 0)
    m = _float((bits & 0x000FFFFFFFFFFFFF) | 0x3FF0000000000000)
    big = m > _SQRT2
    return (m * 0.5 if big else m), float(e + (1 if big else 0))


@jit(inline=True)
def mantissa32(x):
    """``mantissa64`` in float32."""
    tiny = x < _F32(1.1754944e-38)
    scaled = x * _F32(16777216.0) if tiny else x
    bits = _bits32(scaled)
    e = ((bits >> 23) & 0xFF) - 127 - (24 if tiny else 0)
    m = _float32(np.int32((bits & 0x007FFFFF) | 0x3F800000))
    big = m > _F32(_SQRT2)
    return (m * _F32(0.5) if big else m), _F32(e + (1 if big else 0))


@jit(inline=True)
def exp_om64(t):
    """(e^-t, 1 - e^-t) for t >= 0 (float64), the second without cancellation as t -> 0 (it
    is -expm1(-t)): the reduction of ``exp``, its polynomial without the leading 1."""
    x = -t
    clamped = max(x, -746.0)
    k = math.floor(clamped * _LOG2E + 0.5)
    r = (clamped - k * _LN2_HI) - k * _LN2_LO
    pm = _expm1_reduced(r)  # e^r - 1
    value = _times_pow2(pm + 1.0, k)
    # 1 - e^-t: -(e^r - 1) for k = 0, (1 - (e^r - 1)) / 2 for k = -1 (no cancellation in
    # either), 1 - e^-t below (at least 0.65, rounded once)
    om = -pm if k == 0.0 else ((0.5 - 0.5 * pm) if k == -1.0 else 1.0 - value)
    return (value if t == t else t), (om if t == t else t)


@jit(inline=True)
def exp_om32(t):
    """``exp_om64`` in float32."""
    x = -t
    clamped = max(x, _F32(-104.0))
    k = np.floor(clamped * _F32(_LOG2E) + _F32(0.5))
    r = (clamped - k * _F32(_LN2_HI32)) - k * _F32(_LN2_LO32)
    pm = _expm1_reduced32(r)
    value = _times_pow2_32(pm + _F32(1.0), k)
    om = (-pm if k == _F32(0.0) else
          ((_F32(0.5) - _F32(0.5) * pm) if k == _F32(-1.0) else _F32(1.0) - value))
    return (value if t == t else t), (om if t == t else t)


def atanh2_as(s):
    """2 atanh(s), |s| <= 0.172, in the precision of ``s``."""
    raise NotImplementedError("for use inside compiled kernels")


def mantissa_as(x):
    """(m, e), x = m 2^e, m in [sqrt(1/2), sqrt(2)), in the precision of ``x``."""
    raise NotImplementedError("for use inside compiled kernels")


def exp_om_as(t):
    """(e^-t, 1 - e^-t) for t >= 0, in the precision of ``t``."""
    raise NotImplementedError("for use inside compiled kernels")


_lossjit_precision(atanh2_as, atanh2_32, atanh2_64, convert=False)
_lossjit_precision(mantissa_as, mantissa32, mantissa64, convert=False)
_lossjit_precision(exp_om_as, exp_om32, exp_om64, convert=False)


@jit(inline=True)
def ln2_parts(x):
    """ln 2 as (hi, lo) in the precision of ``x``, hi times a small integer exact."""
    return const_as(x, _LN2_HI32), const_as(x, _LN2_LO32)


@jit(inline=True)
def log1p_unit_parts(z):
    """For z in [0, 1]: (numerator, denominator, log1p(z) - 2 atanh(num / den)) so that
    log1p(z) = 2 atanh(num / den) + offset, |num / den| <= 0.172, the division left to the
    caller (who shares one reciprocal among several). The offset is ln 2 where z > sqrt(2) - 1
    (1 + z = 2 (1 + s) / (1 - s), s = (z - 1) / (z + 3)), else 0 (s = z / (z + 2))."""
    one = const_as(z, 1.0)
    big = z > const_as(z, _SQRT2M1)
    num = (z - one) if big else z
    den = (z + const_as(z, 3.0)) if big else (z + const_as(z, 2.0))
    hi, lo = ln2_parts(z)
    zero = const_as(z, 0.0)
    return num, den, (hi if big else zero), (lo if big else zero)


@jit(inline=True)
def logistic_shared(x):
    """(log1p(exp(-|x|)), sigmoid(x), sigmoid(-x)) in the precision of ``x``, with a single
    division: 1 / ((1 + z) d) serves both the sigmoid's 1 / (1 + z) and the logarithm's
    s = n / d (z = exp(-|x|))."""
    z = exp_as(-abs(x))
    one = const_as(x, 1.0)
    opz = one + z
    num, den, hi, lo = log1p_unit_parts(z)
    shared = one / (opz * den)
    s = num * (opz * shared)
    inverse = den * shared
    tail = hi + (atanh2_as(s) + lo)
    low = z * inverse
    positive = x >= const_as(x, 0.0)
    return tail, (inverse if positive else low), (low if positive else inverse)
