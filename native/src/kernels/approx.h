/* Constants of the vector sigmoid/tanh approximations, shared by every SIMD kernel file so all ISAs compute
 * the same function (docs/kernels.md). Header-only constants: each ISA file writes its own vector code.
 *
 * exp(z) = 2^n (1 + u) with n = round(z / ln2), r = z - n ln2 in [-ln2/2, ln2/2] by one FMA with a one-part ln2
 * (its rounding, 1.4e-8 relative, moves r by n * 1e-8: that much relative error only where the result is within
 * |n| * 1e-8 of its limit, i.e. invisible in absolute terms), u = expm1(r) = r + r^2 P(r), P of degree 4 fitted
 * (Lawson minimax, float64) for the relative error of expm1 on that interval: 1.3e-8, below half an ulp.
 *
 *   sigmoid(x) = 1 / (1 + exp(-x)),  -x clamped to [SIGMOID_ZLO, SIGMOID_ZHI] so 2^n stays a normal float;
 *                x <= SIGMOID_ZERO_BELOW gives exactly 0 (the true value is below 6e-39).
 *   tanh(x)    = sign(x) * e / (e + 2),  e = expm1(2|x|) = 2^n u + (2^n - 1): no cancellation near 0, so tanh is
 *                relatively accurate for small |x| too; |x| clamped to TANH_CLAMP, where tanh rounds to 1.
 *
 * Measured maximum error against double-precision libm over a dense sweep of [-30, 30] and of tiny magnitudes
 * (native/tests/test_kernels.c prints it with -v, and fails above 1e-6): AVX-512 (reciprocal: 14-bit estimate
 * + one Newton step) sigmoid 1.4e-7, tanh 1.8e-7 abs; AVX2 (true division) sigmoid 0.9e-7, tanh 1.2e-7 abs. So
 * every ISA stays below 2e-7 = about 3 ulp of 1 (libm's own sigmoid is 0.9e-7 off). ±inf saturate to
 * the exact limits (0, 1, ±1); NaN propagates (every clamp keeps NaN, see the operand order in the ISA files). */
#ifndef LSTMRT_APPROX_H
#define LSTMRT_APPROX_H

#define LSTMRT_LOG2E 1.44269504088896341f
#define LSTMRT_LN2 0.693147181f
#define LSTMRT_EXP_SHIFTER 12583039.0f   /* 1.5 * 2^23 + 127: rounds to an integer, biased for the exponent */
#define LSTMRT_EXPM1_P0 4.999999702e-01f /* P(r) = P0 + P1 r + P2 r^2 + P3 r^3 + P4 r^4 */
#define LSTMRT_EXPM1_P1 1.666654348e-01f
#define LSTMRT_EXPM1_P2 4.166720062e-02f
#define LSTMRT_EXPM1_P3 8.366513997e-03f
#define LSTMRT_EXPM1_P4 1.388252247e-03f

#define LSTMRT_SIGMOID_ZLO -87.0f /* 2^-126: smallest normal scale, exp(-87) = 1.6e-38 */
#define LSTMRT_SIGMOID_ZHI 88.0f  /* exp(88) = 1.7e38 < FLT_MAX, 1 + it still finite */
#define LSTMRT_SIGMOID_ZERO_BELOW -88.0f
#define LSTMRT_TANH_CLAMP 10.0f /* 1 - tanh(10) = 4e-9 < half an ulp of 1 */

#endif
