/*
 * Internal header of microkws.features._frontend: TFLM's audio frontend
 * ("micro" features), batched and bit-exact.
 *
 * This reimplements, from the published algorithm, what TensorFlow's
 * audio_microfrontend op computes for each frame of 16-bit audio: Hann
 * window in Q12, a shift that uses the full int16 range, kissfft's int16
 * real FFT (FIXED_POINT=16: Q15 twiddles, every stage scaled down, rounding
 * half up), energies, a triangular mel filterbank with Q12 weights, a
 * rounded integer square root, noise reduction, PCAN gain control and a
 * fixed-point log. The output is the op's uint16 [frames, channels], bit for
 * bit, for every option, and so TFLM's device features.
 *
 * Why our own code rather than the op: the op runs one clip per call and
 * one frame at a time. Frames are independent up to the square root, so
 * here LANES frames (of one or several signals) go through the FFT side by
 * side, each array element holding one value per frame, which maps onto
 * SIMD registers; only noise reduction, PCAN and log carry state and run
 * per signal afterwards. With the GIL released that is 12x the op called
 * per clip, on two cores (bench/RESULTS.md).
 *
 * The source is split by layer, one file each:
 *   _frontend_plan.c      Plan(...) checks and tables (window, twiddles,
 *                         filterbank, gain and log tables)
 *   _frontend_fft.c       stateless stage, portable C: window, FFT,
 *                         energies, filterbank, square roots
 *   _frontend_avx2.c      the same stage with AVX2 intrinsics
 *   _frontend_stateful.c  noise reduction, PCAN, log: the frame-to-frame
 *                         state
 *   _frontend_module.c    the Python type and module, and the batch driver
 * and built as one translation unit, _frontend.c, which includes them all
 * (see there why). This header holds what they share: the Plan, the
 * keyword list, compiler guards, and small helpers for the hot loops.
 *
 * Exactness notes (each one matters to match the op):
 *  - int16 arithmetic wraps, as it does in the op: every narrowing is an
 *    explicit cast, and int32 sums that may overflow are done unsigned, so
 *    nothing depends on how the compiler treats signed overflow.
 *  - Tables are computed in C with the op's float/double mix (see
 *    _frontend_plan.c); numpy would round differently.
 *  - The op stores energies in int32 and widens them with sign extension,
 *    so an energy of exactly 2^31 would count as 2^64 - 2^31 in the
 *    filterbank. That needs a bin of (-32768, -32768), which the real-FFT
 *    split cannot produce outside DC and Nyquist (never in the filterbank),
 *    but the rule is followed anyway (fe_finish_channel).
 *  - Its square root saturates at 0xFFFF below 2^32, not at 0x10000.
 */
#ifndef MICROKWS_FRONTEND_H
#define MICROKWS_FRONTEND_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(_MSC_VER)
#include <malloc.h>
#endif

/* ---- compiler guards ----------------------------------------------------
   GCC and Clang builds use their built-ins; every other compiler (MSVC)
   gets plain C that computes the same values. Defining
   MICROKWS_FRONTEND_PLAIN_C builds the plain-C side with GCC too, which is
   how the fallbacks are tested. */
#if (defined(__GNUC__) || defined(__clang__)) && !defined(MICROKWS_FRONTEND_PLAIN_C)
#define FE_GNU 1
#else
#define FE_GNU 0
#endif

/* The AVX2 path needs target("avx2") on single functions, so that one
   binary runs everywhere and picks its path at run time: without that
   attribute there is no AVX2 path, only the portable one. */
#if FE_GNU && defined(__x86_64__)
#define HAVE_AVX2_PATH 1
#define AVX2_FN __attribute__((target("avx2")))
#else
#define HAVE_AVX2_PATH 0
#endif

#if FE_GNU
#define FE_ALWAYS_INLINE inline __attribute__((always_inline))
/* Goes before the type. Only the AVX2 path relies on it (aligned stores),
   and that path only exists on GCC and Clang. */
#define FE_ALIGNED(n) __attribute__((aligned(n)))
#elif defined(_MSC_VER)
#define FE_ALWAYS_INLINE __forceinline
#define FE_ALIGNED(n) __declspec(align(n))
#else
#define FE_ALWAYS_INLINE inline
#define FE_ALIGNED(n)
#endif

/* Functions one layer file offers the others. In the build (_frontend.c
   includes every layer) they are static, so the compiler sees the whole
   extension at once; a layer file compiled on its own (to check it for
   warnings) gets them as hidden externs. */
#if defined(FE_ONE_UNIT)
#define FE_INTERNAL static
#elif FE_GNU
#define FE_INTERNAL __attribute__((visibility("hidden")))
#else
#define FE_INTERNAL
#endif

/* MSVC's C mode before /std:c11 spells it __restrict. */
#if defined(_MSC_VER) && !defined(__clang__) && (!defined(__STDC_VERSION__) || __STDC_VERSION__ < 201112L)
#define restrict __restrict
#endif

/* Lets GCC vectorize lane loops it cannot prove alias-free. */
#if defined(__GNUC__) && !defined(__clang__)
#define LANE_LOOP _Pragma("GCC ivdep") for
#else
#define LANE_LOOP for
#endif

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* ---- sizes and fixed-point formats ------------------------------------- */

/* Frames processed side by side: 16 int16 fill one AVX2 register. */
#define LANES 16
/* Frames per group: the stateless stage runs over a whole group, then the
   stateful stage walks each signal of the group. */
#define GROUP_FRAMES 512

#define WINDOW_BITS 12     /* Q12 window coefficients */
#define FILTER_BITS 12     /* Q12 filterbank weights */
#define NR_BITS 14         /* Q14 noise-reduction coefficients */
#define SNR_BITS 12
#define PCAN_OUT_BITS 6
#define GAIN_INTERVALS 32  /* the gain table covers 32-bit noise estimates */
#define GAIN_LUT_SIZE (4 * GAIN_INTERVALS - 3)
#define LOG_Q 16           /* fraction bits of the log2 */
#define LOG_SEG_BITS 7     /* 128 segments in the log2 correction table */
#define LN2_Q16 45426      /* ln(2) in Q16 */
#define MAX_STAGES 32

/* ---- Plan's keyword arguments, listed once ------------------------------
   X(name, kind), kind INT, REAL or BOOL. This list makes Plan's fields of
   FeArgs, its PyArg format string and keyword names, and the PLAN_OPTIONS
   tuple that features/config.py builds MICRO_FRONTEND_OPTIONS from.
   Adding an option of the op: one line in FE_OPTIONS, its use in
   fe_plan_init, and a FeatureConfig field of the same name. */
#define FE_GEOMETRY(X) \
    X(sample_rate, INT) X(window_size, INT) X(window_step, INT) X(num_channels, INT)
/* The op's options beyond window, stride and channels, in the op's order. */
#define FE_OPTIONS(X)                                                                           \
    X(lower_band_limit, REAL) X(upper_band_limit, REAL) X(smoothing_bits, INT)                   \
    X(even_smoothing, REAL) X(odd_smoothing, REAL) X(min_signal_remaining, REAL)                 \
    X(enable_pcan, BOOL) X(pcan_strength, REAL) X(pcan_offset, REAL) X(gain_bits, INT)           \
    X(enable_log, BOOL) X(scale_shift, INT)
#define FE_KEYWORDS(X) FE_GEOMETRY(X) FE_OPTIONS(X)

#define FE_CTYPE_INT int
#define FE_CTYPE_REAL double
#define FE_CTYPE_BOOL int
#define FE_ARG_FIELD(name, kind) FE_CTYPE_##kind name;
typedef struct {
    FE_KEYWORDS(FE_ARG_FIELD)
    int simd;  /* optional: 0 forces the portable path */
} FeArgs;

/* ---- one configuration's tables ---------------------------------------- */

typedef struct {
    PyObject_HEAD
    int sample_rate;
    int window_size;  /* samples */
    int window_step;  /* samples */
    int fft_size;     /* real FFT length: the power of two >= window_size */
    int half;         /* complex FFT length, fft_size / 2 */
    int channels;
    int use_avx2;

    int16_t *window;  /* [window_size] Q12 Hann */

    /* Complex FFT of `half` points, decimation in time: radix-4 stages and
       at most one radix-2 stage, outermost first (kissfft's factoring). */
    int n_stages;
    int radix[MAX_STAGES];
    int span[MAX_STAGES];      /* distance between a butterfly's inputs */
    int stride[MAX_STAGES];    /* twiddle index step */
    int32_t *order;            /* [half] input element at each position */
    int16_t *tw_re, *tw_im;    /* [half] Q15 twiddles */
    int16_t *stw_re, *stw_im;  /* [half / 2] twiddles of the real split */
    /* The same twiddles as int16 pairs for pmaddwd: (re, -im) gives the
       real part of a product, (im, re) the imaginary part. */
    uint32_t *tw_for_re, *tw_for_im, *stw_for_re, *stw_for_im;

    /* Filterbank: channel c sums ch_coef[ch_off[c] + j] * energy over bins
       ch_lo[c] + j, j < ch_len[c] (see build_filterbank). */
    int bin_lo, bin_hi;  /* bins whose energy is used */
    int *ch_lo, *ch_len, *ch_off;
    uint32_t *ch_coef;

    /* noise reduction */
    int smoothing_bits;
    uint32_t even_smoothing, odd_smoothing, min_signal_remaining;

    /* PCAN */
    int enable_pcan;
    int snr_shift;
    int16_t gain_lut[GAIN_LUT_SIZE + 3];

    /* log */
    int enable_log;
    int scale_shift;
    int log_correction;
    int32_t log_lut[(1 << LOG_SEG_BITS) + 2];
} Plan;

/* Per-thread work arrays of the stateless stage, 64-byte aligned. */
typedef struct {
    int16_t *time;     /* portable: [fft_size][LANES] windowed samples */
    int16_t *re, *im;  /* portable: [half][LANES] complex FFT */
    int16_t *out_re, *out_im; /* portable: [half + 1][LANES] spectrum */
    int16_t *lanes;    /* AVX2: [LANES][fft_size] windowed samples */
    int16_t *z;        /* AVX2: [half][LANES] (re, im) pairs */
    uint32_t *energy;  /* both: [half + 1][LANES] */
} Scratch;

/* ---- small shared helpers ---------------------------------------------- */

/* Leading zeros of x != 0. The plain-C version is a binary search. */
static inline int fe_clz32(uint32_t x) {
#if FE_GNU
    return __builtin_clz(x);
#else
    int n = 0;
    if (x < 0x10000u) { n += 16; x <<= 16; }
    if (x < 0x1000000u) { n += 8; x <<= 8; }
    if (x < 0x10000000u) { n += 4; x <<= 4; }
    if (x < 0x40000000u) { n += 2; x <<= 2; }
    if (x < 0x80000000u) n += 1;
    return n;
#endif
}

/* Bits needed for x: 0 for 0. */
static inline int msb32(uint32_t x) { return x ? 32 - fe_clz32(x) : 0; }

/* Most significant bit of x > 0, 1-based. */
static inline int msb_of_positive(uint32_t x) { return 32 - fe_clz32(x); }

static inline uint32_t pair16(int16_t low, int16_t high) {
    return (uint32_t)(uint16_t)low | ((uint32_t)(uint16_t)high << 16);
}

/* aligned_alloc is C11 but MSVC has only _aligned_malloc, whose blocks
   need their own free. */
static inline void *fe_aligned_alloc(size_t align, size_t bytes) {
#if defined(_MSC_VER)
    return _aligned_malloc(bytes, align);
#else
    return aligned_alloc(align, bytes);
#endif
}

static inline void fe_aligned_free(void *m) {
#if defined(_MSC_VER)
    _aligned_free(m);
#else
    free(m);
#endif
}

/* Square root rounded to nearest, with the op's saturation quirks: below
   2^32 the result stops at 0xFFFF, above at 0xFFFFFFFF. Branch-free: the
   double estimate is within one of the floor, whatever the size of v. */
static inline uint32_t sqrt_round(uint64_t v) {
    uint64_t r = (uint64_t)sqrt((double)v);
    r = r > 0xFFFFFFFFu ? 0xFFFFFFFFu : r;
    r -= r * r > v;
    r += (r < 0xFFFFFFFFu) & ((r + 1) * (r + 1) <= v);
    const uint64_t cap = (v >> 32) ? 0xFFFFFFFFu : 0xFFFFu;
    return (uint32_t)(r + ((v - r * r > r) & (r != cap)));
}

/* Window, and the shift that brings the peak up to bit 14. */
static inline int16_t window_frame(const Plan *p, const int16_t *x, int16_t *out, ptrdiff_t out_step) {
    int16_t peak = 0;
    for (int i = 0; i < p->window_size; ++i) {
        const int16_t v = (int16_t)(((int32_t)x[i] * p->window[i]) >> WINDOW_BITS);
        out[i * out_step] = v;
        /* |v| as int16: -32768 stays negative and never counts, as in the op */
        const int16_t a = (int16_t)(v < 0 ? -v : v);
        peak = a > peak ? a : peak;
    }
    return peak;
}

/* ---- between the units ------------------------------------------------- */

/* _frontend_plan.c: checks the arguments and builds every table; -1 with a
   Python exception set. fe_plan_free releases the tables. */
FE_INTERNAL int fe_plan_init(Plan *p, const FeArgs *a);
FE_INTERNAL void fe_plan_free(Plan *p);

/* _frontend_fft.c: `lanes` frames (starting at frame[l]) to filterbank
   square roots rows[l][channel]. */
FE_INTERNAL void fe_frames_to_filterbank_portable(const Plan *p, Scratch *sc, const int16_t *const *frame,
                                                  uint32_t *rows, int lanes);
FE_INTERNAL void fe_finish_channel(const Plan *p, const uint32_t *energy, int c, uint64_t *acc, uint32_t top_bits,
                                   const int *shift, uint32_t *rows, int lanes);

/* _frontend_avx2.c */
FE_INTERNAL int fe_cpu_has_avx2(void);
#if HAVE_AVX2_PATH
FE_INTERNAL void fe_frames_to_filterbank_avx2(const Plan *p, Scratch *sc, const int16_t *const *frame,
                                              uint32_t *rows, int lanes);
FE_INTERNAL void fe_sqrt_round4_store(uint64_t *four);
#endif

/* _frontend_stateful.c: one signal's frames, in order; `value` is scratch
   of p->channels entries. */
FE_INTERNAL void fe_filterbank_to_features(const Plan *p, const uint32_t *rows, int frames, uint32_t *estimate,
                                           uint16_t *out, uint32_t *value);

#endif /* MICROKWS_FRONTEND_H */
