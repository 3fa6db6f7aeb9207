/*
 * TFLM's audio frontend ("micro" features), batched and bit-exact.
 *
 * This reimplements, from the published algorithm, what TensorFlow's
 * audio_microfrontend op computes for each frame of 16-bit audio: Hann
 * window in Q12, a shift that uses the full int16 range, kissfft's int16
 * real FFT (FIXED_POINT=16: Q15 twiddles, every stage scaled down, rounding
 * half up), energies, a triangular mel filterbank with Q12 weights, a
 * rounded integer square root, noise reduction, PCAN gain control and a
 * fixed-point log. The output is the op's uint16 [frames, channels], bit for
 * bit, for every option.
 *
 * Speed comes from layout, not shortcuts. Frames are independent up to the
 * square root, so LANES frames (of one or several signals) go through the
 * FFT side by side, each array element holding one value per frame, which
 * maps onto SIMD registers: an AVX2 path written with intrinsics (pmulhrsw
 * is exactly kissfft's scaling, pmaddwd its complex product) and a portable
 * path in plain C for other machines. Only noise reduction, PCAN and log
 * carry state from frame to frame; they run per signal afterwards.
 *
 * Exactness notes (each one matters to match the op):
 *  - int16 arithmetic wraps, as it does in the op: every narrowing is an
 *    explicit cast, and int32 sums that may overflow are done unsigned, so
 *    nothing depends on how the compiler treats signed overflow.
 *  - Tables are computed here, in C, with the same float/double mix as the
 *    op's setup code: float mel scale and weights, double window and
 *    twiddles, powf for the PCAN gains. numpy would round differently.
 *  - The op stores energies in int32 and widens them with sign extension,
 *    so an energy of exactly 2^31 would count as 2^64 - 2^31 in the
 *    filterbank. That needs a bin of (-32768, -32768), which the real-FFT
 *    split cannot produce outside DC and Nyquist (never in the filterbank),
 *    but the rule is followed anyway.
 *  - Its square root saturates at 0xFFFF below 2^32, not at 0x10000.
 *
 * Plan(...) holds the tables of one configuration; Plan.run() processes a
 * batch [signals, samples] with the GIL released, so Python threads can
 * share a batch between cores.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_AVX2_PATH 1
#include <immintrin.h>
#define AVX2_FN __attribute__((target("avx2")))
#else
#define HAVE_AVX2_PATH 0
#endif

#if defined(__GNUC__) && !defined(__clang__)
#define LANE_LOOP _Pragma("GCC ivdep") for
#else
#define LANE_LOOP for
#endif

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

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

static int msb32(uint32_t x) { return x ? 32 - __builtin_clz(x) : 0; }

/* ------------------------------------------------------------------------ */
/* One configuration's tables                                                */

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

static float hz_to_mel(float hz) { return (float)(1127.0 * log1p(hz / 700.0)); }

static int build_window(Plan *p) {
    p->window = PyMem_Calloc(p->window_size, sizeof(int16_t));
    if (!p->window) return -1;
    /* float step, double cosine, float value, as the op's setup does */
    const float step = (float)(M_PI * 2.0 / ((float)p->window_size));
    for (int i = 0; i < p->window_size; ++i) {
        const float value = (float)(0.5 - 0.5 * cos(step * (i + 0.5)));
        p->window[i] = (int16_t)floor(value * (float)(1 << WINDOW_BITS) + 0.5);
    }
    return 0;
}

static int16_t q15_of(double x) { return (int16_t)floor(0.5 + 32767 * x); }

static uint32_t pair16(int16_t low, int16_t high) { return (uint32_t)(uint16_t)low | ((uint32_t)(uint16_t)high << 16); }

static int build_fft(Plan *p) {
    const int n = p->half;
    const double pi = 3.14159265358979323846264338327950288;

    int rest = n, k = 0;
    while (rest > 1) {
        const int r = (rest % 4 == 0) ? 4 : 2;
        p->radix[k] = r;
        rest /= r;
        p->span[k] = rest;
        ++k;
    }
    p->n_stages = k;
    int stride = 1;
    for (int s = 0; s < k; ++s) {
        p->stride[s] = stride;
        stride *= p->radix[s];
    }

    const int n_split = n / 2 + 1;
    p->order = PyMem_Calloc(n, sizeof(int32_t));
    p->tw_re = PyMem_Calloc(n, sizeof(int16_t));
    p->tw_im = PyMem_Calloc(n, sizeof(int16_t));
    p->stw_re = PyMem_Calloc(n_split, sizeof(int16_t));
    p->stw_im = PyMem_Calloc(n_split, sizeof(int16_t));
    p->tw_for_re = PyMem_Calloc(n, sizeof(uint32_t));
    p->tw_for_im = PyMem_Calloc(n, sizeof(uint32_t));
    p->stw_for_re = PyMem_Calloc(n_split, sizeof(uint32_t));
    p->stw_for_im = PyMem_Calloc(n_split, sizeof(uint32_t));
    if (!p->order || !p->tw_re || !p->tw_im || !p->stw_re || !p->stw_im || !p->tw_for_re ||
        !p->tw_for_im || !p->stw_for_re || !p->stw_for_im)
        return -1;

    /* Position sum(d_s * span_s) holds input element sum(d_s * stride_s):
       the mixed-radix digit reversal of the recursive algorithm. */
    for (int pos = 0; pos < n; ++pos) {
        int left = pos, src = 0;
        for (int s = 0; s < k; ++s) {
            src += (left / p->span[s]) * p->stride[s];
            left %= p->span[s];
        }
        p->order[pos] = src;
    }
    for (int i = 0; i < n; ++i) {
        const double phase = -2 * pi * i / n;
        p->tw_re[i] = q15_of(cos(phase));
        p->tw_im[i] = q15_of(sin(phase));
        p->tw_for_re[i] = pair16(p->tw_re[i], (int16_t)-p->tw_im[i]);
        p->tw_for_im[i] = pair16(p->tw_im[i], p->tw_re[i]);
    }
    for (int i = 0; i < n / 2; ++i) {
        const double phase = -pi * ((double)(i + 1) / n + .5);
        p->stw_re[i] = q15_of(cos(phase));
        p->stw_im[i] = q15_of(sin(phase));
        p->stw_for_re[i] = pair16(p->stw_re[i], (int16_t)-p->stw_im[i]);
        p->stw_for_im[i] = pair16(p->stw_im[i], p->stw_re[i]);
    }
    return 0;
}

static int build_filterbank(Plan *p, float lower_hz, float upper_hz) {
    const int bands = p->channels + 1;
    const int spectrum = p->half + 1;
    int ok = -1;
    float *center = PyMem_Calloc(bands, sizeof(float));
    int *start = PyMem_Calloc(bands + 1, sizeof(int));
    int16_t *w_q = NULL, *u_q = NULL;
    if (!center || !start) goto done;

    /* Band edges equally spaced in mel, in float like the op. */
    const float mel_low = hz_to_mel(lower_hz);
    const float mel_high = hz_to_mel(upper_hz);
    const float mel_step = (mel_high - mel_low) / ((float)bands);
    for (int b = 0; b < bands; ++b) center[b] = mel_low + (mel_step * (b + 1));

    const float hz_per_bin = (float)(0.5 * p->sample_rate / ((float)spectrum - 1));
    const int first_bin = (int)(1.5 + lower_hz / hz_per_bin);  /* never DC */

    /* Band b: the bins after band b-1 whose mel is <= its upper edge. */
    int bin = first_bin;
    for (int b = 0; b < bands; ++b) {
        start[b] = bin;
        while (hz_to_mel(bin * hz_per_bin) <= center[b]) ++bin;
    }
    start[bands] = bin;
    if (bin >= spectrum) {
        PyErr_Format(PyExc_ValueError,
                     "the filterbank reaches FFT bin %d but a %d-point FFT has %d bins; "
                     "lower upper_band_limit",
                     bin, p->fft_size, spectrum);
        goto done;
    }
    p->bin_lo = first_bin;
    p->bin_hi = bin;

    /* A bin of band b at mel m has w = (center[b] - m) / (center[b] -
       center[b-1]): weight w towards channel b-1 (its falling edge) and
       1 - w towards channel b (its rising edge), both rounded to Q12. */
    const int nbins = bin - first_bin;
    w_q = PyMem_Calloc(nbins + 1, sizeof(int16_t));
    u_q = PyMem_Calloc(nbins + 1, sizeof(int16_t));
    p->ch_lo = PyMem_Calloc(p->channels, sizeof(int));
    p->ch_len = PyMem_Calloc(p->channels, sizeof(int));
    p->ch_off = PyMem_Calloc(p->channels, sizeof(int));
    p->ch_coef = PyMem_Calloc(2 * nbins + 1, sizeof(uint32_t));
    if (!w_q || !u_q || !p->ch_lo || !p->ch_len || !p->ch_off || !p->ch_coef) goto done;
    for (int b = 0; b < bands; ++b) {
        const float below = (b == 0) ? mel_low : center[b - 1];
        for (int j = start[b]; j < start[b + 1]; ++j) {
            const float w = (center[b] - hz_to_mel(j * hz_per_bin)) / (center[b] - below);
            w_q[j - first_bin] = (int16_t)floor(w * (float)(1 << FILTER_BITS) + 0.5);
            u_q[j - first_bin] = (int16_t)floor((1.0 - w) * (1 << FILTER_BITS) + 0.5);
        }
    }
    /* Channel c: rising edge over band c, then falling edge over band c+1,
       one contiguous run of bins. */
    int off = 0;
    for (int c = 0; c < p->channels; ++c) {
        p->ch_lo[c] = start[c];
        p->ch_len[c] = start[c + 2] - start[c];
        p->ch_off[c] = off;
        for (int j = start[c]; j < start[c + 1]; ++j) p->ch_coef[off++] = (uint16_t)u_q[j - first_bin];
        for (int j = start[c + 1]; j < start[c + 2]; ++j) p->ch_coef[off++] = (uint16_t)w_q[j - first_bin];
    }
    ok = 0;
done:
    PyMem_Free(center);
    PyMem_Free(start);
    PyMem_Free(w_q);
    PyMem_Free(u_q);
    return ok;
}

/* The op's gain curve (float math, powf) at noise estimate x in Q`input_bits`. */
static int16_t gain_at(float strength, float offset, int gain_bits, int input_bits, uint32_t x) {
    const float level = ((float)x) / ((uint32_t)1 << input_bits);
    const float gain = ((uint32_t)1 << gain_bits) * powf(level + offset, -strength);
    if (gain > 32767) return 32767;
    return (int16_t)(gain + 0.5f);
}

/* Piecewise quadratic gain table: for each power-of-two interval of the
   noise estimate, the value at its start and two polynomial coefficients. */
static void build_gain_lut(Plan *p, float strength, float offset, int gain_bits, int input_bits) {
    int16_t *lut = p->gain_lut;
    lut[0] = gain_at(strength, offset, gain_bits, input_bits, 0);
    lut[1] = gain_at(strength, offset, gain_bits, input_bits, 1);
    for (int interval = 2; interval <= GAIN_INTERVALS; ++interval) {
        const uint32_t x0 = (uint32_t)1 << (interval - 1);
        const uint32_t x1 = x0 + (x0 >> 1);
        const uint32_t x2 = (interval == GAIN_INTERVALS) ? x0 + (x0 - 1) : 2 * x0;
        const int32_t y0 = gain_at(strength, offset, gain_bits, input_bits, x0);
        const int32_t y1 = gain_at(strength, offset, gain_bits, input_bits, x1);
        const int32_t y2 = gain_at(strength, offset, gain_bits, input_bits, x2);
        const int32_t a1 = 4 * (y1 - y0) - (y2 - y0);
        const int32_t a2 = (y2 - y0) - a1;
        const int base = 4 * interval - 6;
        lut[base] = (int16_t)y0;
        lut[base + 1] = (int16_t)a1;
        lut[base + 2] = (int16_t)a2;
    }
}

/* Correction of the linear log2 estimate on each segment of the fraction:
   (log2(1 + f) - f) in Q16 at f = k / 128. */
static void build_log_lut(Plan *p) {
    const int segments = 1 << LOG_SEG_BITS;
    for (int k = 0; k <= segments; ++k) {
        const double f = (double)k / segments;
        p->log_lut[k] = (int32_t)lround((log2(1.0 + f) - f) * (1 << LOG_Q));
    }
    p->log_lut[segments + 1] = 0;
}

/* ------------------------------------------------------------------------ */
/* Stateless stage: LANES frames -> filterbank square roots                  */

typedef struct {
    int16_t *time;     /* portable: [fft_size][LANES] windowed samples */
    int16_t *re, *im;  /* portable: [half][LANES] complex FFT */
    int16_t *out_re, *out_im; /* portable: [half + 1][LANES] spectrum */
    int16_t *lanes;    /* AVX2: [LANES][fft_size] windowed samples */
    int16_t *z;        /* AVX2: [half][LANES] (re, im) pairs */
    uint32_t *energy;  /* both: [half + 1][LANES] */
} Scratch;

static void *zalloc(size_t bytes) {
    bytes = (bytes + 63) / 64 * 64;
    void *m = aligned_alloc(64, bytes);
    if (m) memset(m, 0, bytes);
    return m;
}

static void scratch_free(Scratch *s) {
    free(s->time);
    free(s->re);
    free(s->im);
    free(s->out_re);
    free(s->out_im);
    free(s->lanes);
    free(s->z);
    free(s->energy);
    memset(s, 0, sizeof(*s));
}

static int scratch_alloc(Scratch *s, const Plan *p) {
    const size_t n = (size_t)p->half + 1;
    memset(s, 0, sizeof(*s));
    s->energy = zalloc(n * LANES * sizeof(uint32_t));
    if (p->use_avx2) {
        s->lanes = zalloc((size_t)p->fft_size * LANES * sizeof(int16_t));
        s->z = zalloc(n * 2 * LANES * sizeof(int16_t));
        if (s->energy && s->lanes && s->z) return 0;
    } else {
        s->time = zalloc((size_t)p->fft_size * LANES * sizeof(int16_t));
        s->re = zalloc(n * LANES * sizeof(int16_t));
        s->im = zalloc(n * LANES * sizeof(int16_t));
        s->out_re = zalloc(n * LANES * sizeof(int16_t));
        s->out_im = zalloc(n * LANES * sizeof(int16_t));
        if (s->energy && s->time && s->re && s->im && s->out_re && s->out_im) return 0;
    }
    scratch_free(s);
    return -1;
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

/* Filterbank sums of `lanes` frames done: correct the sign-extension case,
   take the square roots, undo the input shift, store rows[l][c]. */
static void finish_channel(const Plan *p, const uint32_t *energy, int c, uint64_t *acc, uint32_t top_bits,
                           const int *shift, uint32_t *rows, int lanes) {
    if (top_bits & 0x80000000u) {
        /* An energy >= 2^31 is negative as int32 and the op widens it with
           sign extension: each adds w * (2^64 - 2^32) more. */
        const uint32_t *coef = p->ch_coef + p->ch_off[c];
        for (int j = 0; j < p->ch_len[c]; ++j) {
            const uint32_t *e = energy + (size_t)(p->ch_lo[c] + j) * LANES;
            for (int l = 0; l < LANES; ++l)
                if (e[l] & 0x80000000u) acc[l] -= (uint64_t)coef[j] << 32;
        }
    }
    for (int l = 0; l < lanes; ++l) rows[(size_t)l * p->channels + c] = sqrt_round(acc[l]) >> shift[l];
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

/* ---- portable path ---- */

/* kissfft's fixed-point helpers: Q15 product with rounding half up, and
   its per-stage scaling by 32767 / radix in Q15. Results wrap to int16. */
static inline int16_t q15_round(int32_t x) { return (int16_t)((x + (1 << 14)) >> 15); }
static inline int16_t scale_by(int16_t x, int32_t q15) { return q15_round((int32_t)x * q15); }

static void stage_radix2(const Plan *p, int16_t *restrict re, int16_t *restrict im, int s) {
    const int m = p->span[s], stride = p->stride[s];
    const int32_t q = 32767 / 2;
    const size_t d = (size_t)m * LANES;
    for (int g = 0; g < p->half; g += 2 * m) {
        for (int k = 0; k < m; ++k) {
            const int32_t wr = p->tw_re[k * stride], wi = p->tw_im[k * stride];
            int16_t *r0 = re + (size_t)(g + k) * LANES, *i0 = im + (size_t)(g + k) * LANES;
            LANE_LOOP (int l = 0; l < LANES; ++l) {
                const int16_t ar = scale_by(r0[l], q), ai = scale_by(i0[l], q);
                const int16_t br = scale_by(r0[d + l], q), bi = scale_by(i0[d + l], q);
                const int16_t tr = q15_round(br * wr - bi * wi), ti = q15_round(br * wi + bi * wr);
                r0[d + l] = (int16_t)(ar - tr);
                i0[d + l] = (int16_t)(ai - ti);
                r0[l] = (int16_t)(ar + tr);
                i0[l] = (int16_t)(ai + ti);
            }
        }
    }
}

static void stage_radix4(const Plan *p, int16_t *restrict re, int16_t *restrict im, int s) {
    const int m = p->span[s], stride = p->stride[s];
    const int32_t q = 32767 / 4;
    const size_t d = (size_t)m * LANES;
    for (int g = 0; g < p->half; g += 4 * m) {
        for (int k = 0; k < m; ++k) {
            const int32_t w1r = p->tw_re[k * stride], w1i = p->tw_im[k * stride];
            const int32_t w2r = p->tw_re[2 * k * stride], w2i = p->tw_im[2 * k * stride];
            const int32_t w3r = p->tw_re[3 * k * stride], w3i = p->tw_im[3 * k * stride];
            int16_t *r0 = re + (size_t)(g + k) * LANES, *i0 = im + (size_t)(g + k) * LANES;
            LANE_LOOP (int l = 0; l < LANES; ++l) {
                const int16_t ar = scale_by(r0[l], q), ai = scale_by(i0[l], q);
                const int16_t br = scale_by(r0[d + l], q), bi = scale_by(i0[d + l], q);
                const int16_t cr = scale_by(r0[2 * d + l], q), ci = scale_by(i0[2 * d + l], q);
                const int16_t er = scale_by(r0[3 * d + l], q), ei = scale_by(i0[3 * d + l], q);
                const int16_t t1r = q15_round(br * w1r - bi * w1i), t1i = q15_round(br * w1i + bi * w1r);
                const int16_t t2r = q15_round(cr * w2r - ci * w2i), t2i = q15_round(cr * w2i + ci * w2r);
                const int16_t t3r = q15_round(er * w3r - ei * w3i), t3i = q15_round(er * w3i + ei * w3r);
                const int16_t dr = (int16_t)(ar - t2r), di = (int16_t)(ai - t2i);
                const int16_t sr = (int16_t)(ar + t2r), si = (int16_t)(ai + t2i);
                const int16_t pr = (int16_t)(t1r + t3r), pi = (int16_t)(t1i + t3i);
                const int16_t qr = (int16_t)(t1r - t3r), qi = (int16_t)(t1i - t3i);
                r0[2 * d + l] = (int16_t)(sr - pr);
                i0[2 * d + l] = (int16_t)(si - pi);
                r0[l] = (int16_t)(sr + pr);
                i0[l] = (int16_t)(si + pi);
                r0[d + l] = (int16_t)(dr + qi);
                i0[d + l] = (int16_t)(di - qr);
                r0[3 * d + l] = (int16_t)(dr - qi);
                i0[3 * d + l] = (int16_t)(di + qr);
            }
        }
    }
}

static void frames_to_filterbank_portable(const Plan *p, Scratch *sc, const int16_t *const *frame,
                                          uint32_t *rows, int lanes) {
    const int n = p->half;
    int16_t *restrict time = sc->time;
    int16_t *restrict re = sc->re;
    int16_t *restrict im = sc->im;
    uint16_t mult[LANES];
    int shift[LANES];

    for (int l = 0; l < LANES; ++l) {
        int16_t peak = 0;
        if (l < lanes) {
            peak = window_frame(p, frame[l], time + l, LANES);
        } else {
            for (int i = 0; i < p->window_size; ++i) time[(size_t)i * LANES + l] = 0;
        }
        shift[l] = 15 - msb32((uint32_t)peak);
        mult[l] = (uint16_t)(1u << shift[l]);
    }

    /* Shift (wrapping, like the op's uint16 shift) and reorder the real
       samples as (even, odd) complex pairs in the FFT's input order. */
    for (int pos = 0; pos < n; ++pos) {
        const int16_t *even = time + (size_t)(2 * p->order[pos]) * LANES;
        const int16_t *odd = even + LANES;
        int16_t *dr = re + (size_t)pos * LANES, *di = im + (size_t)pos * LANES;
        LANE_LOOP (int l = 0; l < LANES; ++l) {
            dr[l] = (int16_t)(uint16_t)((uint32_t)(uint16_t)even[l] * mult[l]);
            di[l] = (int16_t)(uint16_t)((uint32_t)(uint16_t)odd[l] * mult[l]);
        }
    }

    for (int s = p->n_stages - 1; s >= 0; --s) {
        if (p->radix[s] == 4)
            stage_radix4(p, re, im, s);
        else
            stage_radix2(p, re, im, s);
    }

    /* Split the FFT of (even, odd) pairs into the real signal's spectrum.
       Bin 0 (DC) and bin n are never in the filterbank. */
    int16_t *restrict yr = sc->out_re;
    int16_t *restrict yi = sc->out_im;
    const int32_t q = 32767 / 2;
    for (int k = 1; k <= n / 2; ++k) {
        const int32_t wr = p->stw_re[k - 1], wi = p->stw_im[k - 1];
        const int16_t *ar = re + (size_t)k * LANES, *ai = im + (size_t)k * LANES;
        const int16_t *br = re + (size_t)(n - k) * LANES, *bi = im + (size_t)(n - k) * LANES;
        int16_t *lo_r = yr + (size_t)k * LANES, *lo_i = yi + (size_t)k * LANES;
        int16_t *hi_r = yr + (size_t)(n - k) * LANES, *hi_i = yi + (size_t)(n - k) * LANES;
        LANE_LOOP (int l = 0; l < LANES; ++l) {
            const int16_t fr = scale_by(ar[l], q), fi = scale_by(ai[l], q);
            const int16_t gr = scale_by(br[l], q), gi = scale_by((int16_t)-bi[l], q);
            const int16_t sr = (int16_t)(fr + gr), si = (int16_t)(fi + gi);
            const int16_t dr = (int16_t)(fr - gr), di = (int16_t)(fi - gi);
            const int16_t tr = q15_round(dr * wr - di * wi), ti = q15_round(dr * wi + di * wr);
            /* at k = n/2 both writes hit one bin; the second one stands */
            lo_r[l] = (int16_t)((sr + tr) >> 1);
            lo_i[l] = (int16_t)((si + ti) >> 1);
            hi_r[l] = (int16_t)((sr - tr) >> 1);
            hi_i[l] = (int16_t)((ti - si) >> 1);
        }
    }

    /* Energies: squares summed with uint32 wraparound. */
    uint32_t *restrict energy = sc->energy;
    uint32_t top_bits = 0;
    for (int j = p->bin_lo; j < p->bin_hi; ++j) {
        const int16_t *r = yr + (size_t)j * LANES, *i = yi + (size_t)j * LANES;
        uint32_t *e = energy + (size_t)j * LANES;
        LANE_LOOP (int l = 0; l < LANES; ++l) {
            const uint32_t v = (uint32_t)((int32_t)r[l] * r[l]) + (uint32_t)((int32_t)i[l] * i[l]);
            e[l] = v;
            top_bits |= v;
        }
    }

    /* Filterbank: Q12 weights times energies, summed in uint64. */
    for (int c = 0; c < p->channels; ++c) {
        uint64_t acc[LANES] = {0};
        const uint32_t *coef = p->ch_coef + p->ch_off[c];
        for (int j = 0; j < p->ch_len[c]; ++j) {
            const uint64_t w = coef[j];
            const uint32_t *e = energy + (size_t)(p->ch_lo[c] + j) * LANES;
            LANE_LOOP (int l = 0; l < LANES; ++l) acc[l] += w * e[l];
        }
        finish_channel(p, energy, c, acc, top_bits, shift, rows, lanes);
    }
}

/* ---- AVX2 path: the same arithmetic, 8 frames per register ---- */
#if HAVE_AVX2_PATH

/* Complex product of (re, im) int16 pairs with a twiddle, kissfft-rounded:
   pmaddwd forms re*wr - im*wi and re*wi + im*wr exactly in int32. */
AVX2_FN static inline __m256i cmul8(__m256i x, __m256i for_re, __m256i for_im) {
    const __m256i round = _mm256_set1_epi32(1 << 14);
    const __m256i r = _mm256_srai_epi32(_mm256_add_epi32(_mm256_madd_epi16(x, for_re), round), 15);
    const __m256i i = _mm256_srai_epi32(_mm256_add_epi32(_mm256_madd_epi16(x, for_im), round), 15);
    /* keep the low 16 bits of each: the int16 wraparound of the C code */
    return _mm256_blend_epi16(r, _mm256_slli_epi32(i, 16), 0xAA);
}

/* floor((a + b) / 2) and floor((a - b) / 2) per int16, without overflow */
AVX2_FN static inline __m256i half_sum(__m256i a, __m256i b) {
    return _mm256_add_epi16(_mm256_and_si256(a, b), _mm256_srai_epi16(_mm256_xor_si256(a, b), 1));
}
AVX2_FN static inline __m256i half_diff(__m256i a, __m256i b) {
    const __m256i nb = _mm256_xor_si256(b, _mm256_set1_epi16(-1)); /* a - b = a + ~b + 1 */
    return _mm256_sub_epi16(_mm256_or_si256(a, nb), _mm256_srai_epi16(_mm256_xor_si256(a, nb), 1));
}

/* sqrt_round of four uint64: a double estimate (exact halves, one
   rounding), then the same integer corrections as the scalar version. */
AVX2_FN static inline __m256i sqrt_round4(__m256i v) {
    const __m256d two52 = _mm256_set1_pd(4503599627370496.0);          /* 2^52 */
    const __m256d two84 = _mm256_set1_pd(19342813113834066795298816.0); /* 2^84 */
    const __m256i sign = _mm256_set1_epi64x(INT64_MIN);
    const __m256i ones = _mm256_set1_epi64x(-1);
    const __m256i low = _mm256_blend_epi32(v, _mm256_setzero_si256(), 0xAA);
    const __m256i high = _mm256_srli_epi64(v, 32);
    const __m256d low_d = _mm256_sub_pd(_mm256_castsi256_pd(_mm256_or_si256(low, _mm256_castpd_si256(two52))), two52);
    const __m256d high_d = _mm256_sub_pd(_mm256_castsi256_pd(_mm256_or_si256(high, _mm256_castpd_si256(two84))), two84);
    const __m256d root = _mm256_round_pd(_mm256_sqrt_pd(_mm256_add_pd(high_d, low_d)), _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __m256i r = _mm256_xor_si256(_mm256_castpd_si256(_mm256_add_pd(root, two52)), _mm256_castpd_si256(two52));
    r = _mm256_sub_epi64(r, _mm256_srli_epi64(r, 32)); /* 2^32 -> 0xFFFFFFFF */
    const __m256i v_signed = _mm256_xor_si256(v, sign); /* for unsigned compares */
    /* r -= (r * r > v) */
    __m256i square = _mm256_mul_epu32(r, r);
    r = _mm256_add_epi64(r, _mm256_cmpgt_epi64(_mm256_xor_si256(square, sign), v_signed));
    /* r += ((r + 1)^2 <= v) unless r is 0xFFFFFFFF */
    square = _mm256_mul_epu32(r, r);
    const __m256i next = _mm256_add_epi64(square, _mm256_add_epi64(_mm256_add_epi64(r, r), _mm256_set1_epi64x(1)));
    const __m256i at_top = _mm256_cmpeq_epi64(r, _mm256_set1_epi64x(0xFFFFFFFF));
    const __m256i next_fits = _mm256_xor_si256(_mm256_cmpgt_epi64(_mm256_xor_si256(next, sign), v_signed), ones);
    r = _mm256_sub_epi64(r, _mm256_andnot_si256(at_top, next_fits));
    /* round to nearest: remainder > r, unless r is at its cap */
    square = _mm256_mul_epu32(r, r);
    const __m256i rest = _mm256_sub_epi64(v, square); /* < 2^34 */
    const __m256i wide = _mm256_xor_si256(_mm256_cmpeq_epi64(high, _mm256_setzero_si256()), ones);
    const __m256i cap = _mm256_blendv_epi8(_mm256_set1_epi64x(0xFFFF), _mm256_set1_epi64x(0xFFFFFFFF), wide);
    const __m256i round_up = _mm256_andnot_si256(_mm256_cmpeq_epi64(r, cap), _mm256_cmpgt_epi64(rest, r));
    return _mm256_sub_epi64(r, round_up);
}

AVX2_FN static void sqrt_round4_store(uint64_t *four) {
    _mm256_storeu_si256((__m256i *)four, sqrt_round4(_mm256_loadu_si256((const __m256i *)four)));
}

#define LOAD(ptr) _mm256_load_si256((const __m256i *)(ptr))
#define STORE(ptr, v) _mm256_store_si256((__m256i *)(ptr), (v))

AVX2_FN static void fft_stages_avx2(const Plan *p, int16_t *z) {
    const __m256i q4 = _mm256_set1_epi16(32767 / 4), q2 = _mm256_set1_epi16(32767 / 2);
    const __m256i swap = _mm256_setr_epi8(2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13, 2, 3, 0, 1, 6, 7,
                                          4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
    const size_t elem = 2 * LANES; /* int16 per complex element */
    for (int s = p->n_stages - 1; s >= 0; --s) {
        const int m = p->span[s], stride = p->stride[s];
        const size_t d = (size_t)m * elem;
        if (p->radix[s] == 4) {
            for (int g = 0; g < p->half; g += 4 * m) {
                for (int k = 0; k < m; ++k) {
                    const __m256i w1r = _mm256_set1_epi32((int)p->tw_for_re[k * stride]);
                    const __m256i w1i = _mm256_set1_epi32((int)p->tw_for_im[k * stride]);
                    const __m256i w2r = _mm256_set1_epi32((int)p->tw_for_re[2 * k * stride]);
                    const __m256i w2i = _mm256_set1_epi32((int)p->tw_for_im[2 * k * stride]);
                    const __m256i w3r = _mm256_set1_epi32((int)p->tw_for_re[3 * k * stride]);
                    const __m256i w3i = _mm256_set1_epi32((int)p->tw_for_im[3 * k * stride]);
                    int16_t *z0 = z + (size_t)(g + k) * elem;
                    for (int h = 0; h < 2 * LANES; h += 16) {
                        const __m256i a = _mm256_mulhrs_epi16(LOAD(z0 + h), q4);
                        const __m256i b = _mm256_mulhrs_epi16(LOAD(z0 + d + h), q4);
                        const __m256i c = _mm256_mulhrs_epi16(LOAD(z0 + 2 * d + h), q4);
                        const __m256i e = _mm256_mulhrs_epi16(LOAD(z0 + 3 * d + h), q4);
                        const __m256i t1 = cmul8(b, w1r, w1i);
                        const __m256i t2 = cmul8(c, w2r, w2i);
                        const __m256i t3 = cmul8(e, w3r, w3i);
                        const __m256i dif = _mm256_sub_epi16(a, t2), sum = _mm256_add_epi16(a, t2);
                        const __m256i pl = _mm256_add_epi16(t1, t3), mi = _mm256_sub_epi16(t1, t3);
                        STORE(z0 + 2 * d + h, _mm256_sub_epi16(sum, pl));
                        STORE(z0 + h, _mm256_add_epi16(sum, pl));
                        /* dif -/+ i * mi: (dr + mi_i, di - mi_r) and (dr - mi_i, di + mi_r) */
                        const __m256i mis = _mm256_shuffle_epi8(mi, swap);
                        const __m256i up = _mm256_add_epi16(dif, mis), down = _mm256_sub_epi16(dif, mis);
                        STORE(z0 + d + h, _mm256_blend_epi16(up, down, 0xAA));
                        STORE(z0 + 3 * d + h, _mm256_blend_epi16(down, up, 0xAA));
                    }
                }
            }
        } else {
            for (int g = 0; g < p->half; g += 2 * m) {
                for (int k = 0; k < m; ++k) {
                    const __m256i wr = _mm256_set1_epi32((int)p->tw_for_re[k * stride]);
                    const __m256i wi = _mm256_set1_epi32((int)p->tw_for_im[k * stride]);
                    int16_t *z0 = z + (size_t)(g + k) * elem;
                    for (int h = 0; h < 2 * LANES; h += 16) {
                        const __m256i a = _mm256_mulhrs_epi16(LOAD(z0 + h), q2);
                        const __m256i b = _mm256_mulhrs_epi16(LOAD(z0 + d + h), q2);
                        const __m256i t = cmul8(b, wr, wi);
                        STORE(z0 + d + h, _mm256_sub_epi16(a, t));
                        STORE(z0 + h, _mm256_add_epi16(a, t));
                    }
                }
            }
        }
    }
}

AVX2_FN static void frames_to_filterbank_avx2(const Plan *p, Scratch *sc, const int16_t *const *frame,
                                              uint32_t *rows, int lanes) {
    const int n = p->half, fft = p->fft_size;
    int16_t *win = sc->lanes;
    int16_t *z = sc->z;
    int shift[LANES];

    /* Window each frame into its own row, then apply its shift (a uint16
       multiply by 2^shift is the op's wrapping uint16 shift). */
    for (int l = 0; l < LANES; ++l) {
        int16_t *row = win + (size_t)l * fft;
        int16_t peak = 0;
        if (l < lanes)
            peak = window_frame(p, frame[l], row, 1);
        else
            memset(row, 0, (size_t)p->window_size * sizeof(int16_t));
        shift[l] = 15 - msb32((uint32_t)peak);
        const uint32_t mult = 1u << shift[l];
        for (int i = 0; i < p->window_size; ++i) row[i] = (int16_t)(uint16_t)((uint16_t)row[i] * mult);
    }

    /* Gather (even, odd) sample pairs in FFT input order: element pos of
       lane l is the 32-bit word order[pos] of row l. */
    const __m256i row_lo = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(fft / 2));
    const __m256i row_hi = _mm256_add_epi32(row_lo, _mm256_set1_epi32(8 * (fft / 2)));
    for (int pos = 0; pos < n; ++pos) {
        const __m256i src = _mm256_set1_epi32(p->order[pos]);
        int16_t *dst = z + (size_t)pos * 2 * LANES;
        STORE(dst, _mm256_i32gather_epi32((const int *)win, _mm256_add_epi32(row_lo, src), 4));
        STORE(dst + 16, _mm256_i32gather_epi32((const int *)win, _mm256_add_epi32(row_hi, src), 4));
    }

    fft_stages_avx2(p, z);

    /* Split into the real spectrum and take energies of the bins in use:
       pmaddwd of a pair with itself is re^2 + im^2, wrapping like uint32. */
    const __m256i q2 = _mm256_set1_epi16(32767 / 2);
    const __m256i conj = _mm256_set1_epi32((int)pair16(1, -1));
    uint32_t *energy = sc->energy;
    __m256i top = _mm256_setzero_si256();
    for (int k = 1; k <= n / 2; ++k) {
        const int mirror = n - k;
        const int want_lo = k >= p->bin_lo && k < p->bin_hi && k != mirror;
        const int want_hi = mirror >= p->bin_lo && mirror < p->bin_hi;
        if (!want_lo && !want_hi) continue;
        const __m256i wr = _mm256_set1_epi32((int)p->stw_for_re[k - 1]);
        const __m256i wi = _mm256_set1_epi32((int)p->stw_for_im[k - 1]);
        for (int h = 0; h < 2; ++h) {
            const __m256i f = _mm256_mulhrs_epi16(LOAD(z + (size_t)k * 2 * LANES + 16 * h), q2);
            const __m256i g = _mm256_mulhrs_epi16(
                _mm256_sign_epi16(LOAD(z + (size_t)mirror * 2 * LANES + 16 * h), conj), q2);
            const __m256i sum = _mm256_add_epi16(f, g);
            const __m256i t = cmul8(_mm256_sub_epi16(f, g), wr, wi);
            if (want_lo) {
                const __m256i lo = half_sum(sum, t);
                const __m256i e = _mm256_madd_epi16(lo, lo);
                STORE(energy + (size_t)k * LANES + 8 * h, e);
                top = _mm256_or_si256(top, e);
            }
            if (want_hi) {
                /* (sum_r - t_r, t_i - sum_i) / 2 */
                const __m256i hi = half_diff(_mm256_blend_epi16(sum, t, 0xAA), _mm256_blend_epi16(t, sum, 0xAA));
                const __m256i e = _mm256_madd_epi16(hi, hi);
                STORE(energy + (size_t)mirror * LANES + 8 * h, e);
                top = _mm256_or_si256(top, e);
            }
        }
    }
    const uint32_t top_bits = _mm256_movemask_ps(_mm256_castsi256_ps(top)) ? 0x80000000u : 0;

    /* Per-lane shifts in the lane order of the sums below. */
    const __m256i shift_even0 = _mm256_setr_epi64x(shift[0], shift[2], shift[4], shift[6]);
    const __m256i shift_odd0 = _mm256_setr_epi64x(shift[1], shift[3], shift[5], shift[7]);
    const __m256i shift_even1 = _mm256_setr_epi64x(shift[8], shift[10], shift[12], shift[14]);
    const __m256i shift_odd1 = _mm256_setr_epi64x(shift[9], shift[11], shift[13], shift[15]);

    /* Filterbank: pmuludq takes the even 32-bit energies; shifting by 32
       brings the odd ones down. */
    for (int c = 0; c < p->channels; ++c) {
        __m256i even0 = _mm256_setzero_si256(), odd0 = even0, even1 = even0, odd1 = even0;
        const uint32_t *coef = p->ch_coef + p->ch_off[c];
        const uint32_t *e = energy + (size_t)p->ch_lo[c] * LANES;
        for (int j = 0; j < p->ch_len[c]; ++j, e += LANES) {
            const __m256i w = _mm256_set1_epi32((int)coef[j]);
            const __m256i e0 = LOAD(e), e1 = LOAD(e + 8);
            even0 = _mm256_add_epi64(even0, _mm256_mul_epu32(e0, w));
            odd0 = _mm256_add_epi64(odd0, _mm256_mul_epu32(_mm256_srli_epi64(e0, 32), w));
            even1 = _mm256_add_epi64(even1, _mm256_mul_epu32(e1, w));
            odd1 = _mm256_add_epi64(odd1, _mm256_mul_epu32(_mm256_srli_epi64(e1, 32), w));
        }
        uint64_t parts[4][4] __attribute__((aligned(32)));
        if (top_bits) { /* rare: needs the sign-extension correction first */
            STORE(parts[0], even0);
            STORE(parts[1], odd0);
            STORE(parts[2], even1);
            STORE(parts[3], odd1);
            uint64_t acc[LANES];
            for (int l = 0; l < LANES; ++l) acc[l] = parts[2 * (l / 8) + (l & 1)][(l % 8) / 2];
            finish_channel(p, energy, c, acc, top_bits, shift, rows, lanes);
            continue;
        }
        STORE(parts[0], _mm256_srlv_epi64(sqrt_round4(even0), shift_even0));
        STORE(parts[1], _mm256_srlv_epi64(sqrt_round4(odd0), shift_odd0));
        STORE(parts[2], _mm256_srlv_epi64(sqrt_round4(even1), shift_even1));
        STORE(parts[3], _mm256_srlv_epi64(sqrt_round4(odd1), shift_odd1));
        uint32_t *row = rows + c;
        for (int l = 0; l < lanes; ++l) row[(size_t)l * p->channels] = (uint32_t)parts[2 * (l / 8) + (l & 1)][(l % 8) / 2];
    }
}

#undef LOAD
#undef STORE
#endif /* HAVE_AVX2_PATH */

static void frames_to_filterbank(const Plan *p, Scratch *sc, const int16_t *const *frame, uint32_t *rows,
                                 int lanes) {
#if HAVE_AVX2_PATH
    if (p->use_avx2) {
        frames_to_filterbank_avx2(p, sc, frame, rows, lanes);
        return;
    }
#endif
    frames_to_filterbank_portable(p, sc, frame, rows, lanes);
}

/* ------------------------------------------------------------------------ */
/* Stateful stage: noise reduction, PCAN, log, one signal's frames in order  */

/* Most significant bit of x > 0, 1-based. */
static inline int msb_of_positive(uint32_t x) { return 32 - __builtin_clz(x); }

/* The stateful stage is written with selects rather than branches: the
   conditions depend on the data and would be mispredicted. */

/* PCAN gain for noise estimate x: quadratic in the fraction of x within its
   power-of-two interval. */
static inline int16_t gain_of(const int16_t *lut, uint32_t x) {
    const uint32_t xs = x > 2 ? x : 3;
    const int interval = msb_of_positive(xs);
    const int16_t *c = lut + 4 * interval - 6;
    const uint32_t up = xs << ((11 - interval) & 31), down = xs >> ((interval - 11) & 31);
    const int16_t frac = (int16_t)((interval < 11 ? up : down) & 0x3FF);
    /* int32 arithmetic that may overflow: wrap explicitly, as the op's
       compiled code does */
    int32_t y = ((int32_t)c[2] * frac) >> 5;
    y = (int32_t)((uint32_t)y + ((uint32_t)c[1] << 5));
    y = (int32_t)((uint32_t)y * (uint32_t)frac);
    y = (int32_t)((uint32_t)y + (1u << 14)) >> 15;
    y += c[0];
    return x <= 2 ? lut[x & 3] : (int16_t)y;
}

static inline uint32_t pcan_shrink(uint32_t x) {
    const uint32_t small = (x * x) >> (2 + 2 * SNR_BITS - PCAN_OUT_BITS); /* wraps where unused */
    const uint32_t large = (x >> (SNR_BITS - PCAN_OUT_BITS)) - (1u << PCAN_OUT_BITS);
    return x < (2u << SNR_BITS) ? small : large;
}

/* ln(x) * 2^scale_shift, rounded, from a table-corrected log2; 0 for x < 2. */
static inline uint32_t fixed_log(const int32_t *lut, int scale_shift, uint32_t x) {
    const uint32_t xs = x > 1 ? x : 2; /* keeps the table index valid */
    const uint32_t whole = (uint32_t)msb_of_positive(xs) - 1;
    const int32_t below = (int32_t)(xs - (1u << whole));
    /* both shifts are computed, one is used: unsigned, so neither overflows */
    const int32_t up = (int32_t)((uint32_t)below << ((LOG_Q - whole) & 31));
    const int32_t down = below >> ((whole - LOG_Q) & 31);
    const int32_t frac = whole < LOG_Q ? up : down;
    const uint32_t seg = (uint32_t)(frac >> (LOG_Q - LOG_SEG_BITS));
    const int32_t c0 = lut[seg], c1 = lut[seg + 1];
    const int32_t seg_start = (int32_t)(((1u << LOG_Q) >> LOG_SEG_BITS) * seg);
    const int32_t between = ((c1 - c0) * (frac - seg_start)) >> LOG_Q;
    const uint32_t log2_q16 = (whole << LOG_Q) + (uint32_t)(frac + c0 + between);
    const uint32_t half = 1u << (LOG_Q - 1);
    const uint32_t ln_q16 = (uint32_t)(((uint64_t)LN2_Q16 * log2_q16 + half) >> LOG_Q);
    const uint32_t scaled = ((ln_q16 << scale_shift) + half) >> LOG_Q;
    return x > 1 ? scaled : 0;
}

/* Noise reduction, PCAN and log over one signal's frames, in order,
   carrying its noise estimate. One pass per step keeps each loop simple
   enough for the compiler to vectorize. */
static inline __attribute__((always_inline)) void stateful_steps(const Plan *p, const uint32_t *rows, int frames,
                                                                  uint32_t *restrict estimate,
                                                                  uint16_t *restrict out,
                                                                  uint32_t *restrict value) {
    const int channels = p->channels, sb = p->smoothing_bits;
    const uint32_t even = p->even_smoothing, odd = p->odd_smoothing, keep_q14 = p->min_signal_remaining;
    const int enable_pcan = p->enable_pcan, snr_shift = p->snr_shift, enable_log = p->enable_log;
    const int correction = p->log_correction, scale_shift = p->scale_shift;
    const int16_t *gain_lut = p->gain_lut;
    const int32_t *log_lut = p->log_lut;
    for (int f = 0; f < frames; ++f) {
        const uint32_t *in = rows + (size_t)f * channels;
        uint16_t *o = out + (size_t)f * channels;
        /* noise reduction: a smoothed estimate in Q`sb`, subtracted */
        for (int c = 0; c < channels; ++c) {
            const uint32_t s = in[c];
            const uint32_t a = (c & 1) ? odd : even;
            const uint32_t scaled = s << sb;
            const uint32_t est = (uint32_t)(((uint64_t)scaled * a +
                                             (uint64_t)estimate[c] * ((1u << NR_BITS) - a)) >> NR_BITS);
            estimate[c] = est;
            const uint32_t left = (scaled - (est > scaled ? scaled : est)) >> sb;
            const uint32_t keep = (uint32_t)(((uint64_t)s * keep_q14) >> NR_BITS);
            value[c] = left > keep ? left : keep;
        }
        /* PCAN: a gain from the updated noise estimate */
        if (enable_pcan) {
            for (int c = 0; c < channels; ++c) {
                const uint32_t gain = (uint32_t)(int32_t)gain_of(gain_lut, estimate[c]);
                value[c] = pcan_shrink((uint32_t)(((uint64_t)value[c] * gain) >> snr_shift));
            }
        }
        if (enable_log) {
            for (int c = 0; c < channels; ++c) {
                const uint32_t v = correction < 0 ? value[c] >> -correction : value[c] << correction;
                value[c] = fixed_log(log_lut, scale_shift, v);
            }
        }
        for (int c = 0; c < channels; ++c) o[c] = (uint16_t)(value[c] < 0xFFFF ? value[c] : 0xFFFF);
    }
}

static void stateful_steps_portable(const Plan *p, const uint32_t *rows, int frames, uint32_t *estimate,
                                    uint16_t *out, uint32_t *value) {
    stateful_steps(p, rows, frames, estimate, out, value);
}

#if HAVE_AVX2_PATH
AVX2_FN static void stateful_steps_avx2(const Plan *p, const uint32_t *rows, int frames, uint32_t *estimate,
                                        uint16_t *out, uint32_t *value) {
    stateful_steps(p, rows, frames, estimate, out, value);
}
#endif

/* `value` is scratch of p->channels entries. */
static void filterbank_to_features(const Plan *p, const uint32_t *rows, int frames, uint32_t *estimate,
                                   uint16_t *out, uint32_t *value) {
#if HAVE_AVX2_PATH
    if (p->use_avx2) {
        stateful_steps_avx2(p, rows, frames, estimate, out, value);
        return;
    }
#endif
    stateful_steps_portable(p, rows, frames, estimate, out, value);
}

/* ------------------------------------------------------------------------ */
/* Python type                                                               */

static void Plan_dealloc(Plan *p) {
    PyMem_Free(p->window);
    PyMem_Free(p->order);
    PyMem_Free(p->tw_re);
    PyMem_Free(p->tw_im);
    PyMem_Free(p->stw_re);
    PyMem_Free(p->stw_im);
    PyMem_Free(p->tw_for_re);
    PyMem_Free(p->tw_for_im);
    PyMem_Free(p->stw_for_re);
    PyMem_Free(p->stw_for_im);
    PyMem_Free(p->ch_lo);
    PyMem_Free(p->ch_len);
    PyMem_Free(p->ch_off);
    PyMem_Free(p->ch_coef);
    Py_TYPE(p)->tp_free((PyObject *)p);
}

static int cpu_has_avx2(void) {
#if HAVE_AVX2_PATH
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
#else
    return 0;
#endif
}

static PyObject *Plan_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"sample_rate", "window_size", "window_step", "num_channels",
                               "lower_band_limit", "upper_band_limit", "smoothing_bits",
                               "even_smoothing", "odd_smoothing", "min_signal_remaining",
                               "enable_pcan", "pcan_strength", "pcan_offset", "gain_bits",
                               "enable_log", "scale_shift", "simd", NULL};
    /* CPython makes keyword-only arguments optional: start from markers
       and insist on every one but simd. */
    int sample_rate = INT_MIN, window_size = INT_MIN, window_step = INT_MIN, channels = INT_MIN,
        smoothing_bits = INT_MIN, enable_pcan = -1, gain_bits = INT_MIN, enable_log = -1, scale_shift = INT_MIN,
        simd = 1;
    double lower = NAN, upper = NAN, even = NAN, odd = NAN, min_remaining = NAN, strength = NAN, offset = NAN;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|$iiiiddidddpddipip", keywords, &sample_rate,
                                     &window_size, &window_step, &channels, &lower, &upper,
                                     &smoothing_bits, &even, &odd, &min_remaining, &enable_pcan,
                                     &strength, &offset, &gain_bits, &enable_log, &scale_shift, &simd))
        return NULL;
    const int ints[] = {sample_rate, window_size, window_step, channels, smoothing_bits, gain_bits, scale_shift};
    const double reals[] = {lower, upper, even, odd, min_remaining, strength, offset};
    int missing = enable_pcan < 0 || enable_log < 0;
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); ++i) missing |= ints[i] == INT_MIN;
    for (size_t i = 0; i < sizeof(reals) / sizeof(reals[0]); ++i) missing |= isnan(reals[i]);
    if (missing) {
        PyErr_SetString(PyExc_TypeError, "Plan() needs every keyword argument but simd (as numbers, not NaN)");
        return NULL;
    }
    if (sample_rate <= 0 || window_size < 4 || window_size > (1 << 20) || window_step <= 0 ||
        window_step > window_size) {
        PyErr_Format(PyExc_ValueError,
                     "need 4 <= window_size <= 2^20 and 0 < window_step <= window_size (samples), "
                     "got %d and %d",
                     window_size, window_step);
        return NULL;
    }
    if (channels <= 0 || channels > 4096) {
        PyErr_Format(PyExc_ValueError, "num_channels must be 1-4096, got %d", channels);
        return NULL;
    }
    if (!(lower >= 0) || !(upper > lower)) {
        PyErr_SetString(PyExc_ValueError, "need 0 <= lower_band_limit < upper_band_limit");
        return NULL;
    }
    if (smoothing_bits < 0 || smoothing_bits > 31 || scale_shift < 0 || scale_shift > 31) {
        PyErr_SetString(PyExc_ValueError, "smoothing_bits and scale_shift must be 0-31");
        return NULL;
    }
    const float even_f = (float)even, odd_f = (float)odd, min_f = (float)min_remaining;
    if (!(even_f >= 0 && even_f <= 1 && odd_f >= 0 && odd_f <= 1 && min_f >= 0 && min_f <= 1)) {
        PyErr_SetString(PyExc_ValueError, "even_smoothing, odd_smoothing and min_signal_remaining must be in [0, 1]");
        return NULL;
    }

    Plan *p = (Plan *)type->tp_alloc(type, 0);
    if (!p) return NULL;
    p->sample_rate = sample_rate;
    p->window_size = window_size;
    p->window_step = window_step;
    p->channels = channels;
    p->fft_size = 1;
    while (p->fft_size < window_size) p->fft_size <<= 1;
    p->half = p->fft_size / 2;
    p->use_avx2 = simd && cpu_has_avx2();

    if (build_window(p) < 0 || build_fft(p) < 0) {
        Py_DECREF(p);
        return PyErr_NoMemory();
    }
    if (build_filterbank(p, (float)lower, (float)upper) < 0) {
        if (!PyErr_Occurred()) PyErr_NoMemory();
        Py_DECREF(p);
        return NULL;
    }

    /* Q14 coefficients: float product truncated to uint16, as in the op. */
    p->smoothing_bits = smoothing_bits;
    p->even_smoothing = (uint16_t)(even_f * (1 << NR_BITS));
    p->odd_smoothing = (uint16_t)(odd_f * (1 << NR_BITS));
    p->min_signal_remaining = (uint16_t)(min_f * (1 << NR_BITS));

    /* The filterbank output is log2(fft_size) - 1 - 6 bits short of the
       scale the gain and log expect. */
    const int correction = msb32((uint32_t)p->fft_size) - 1 - FILTER_BITS / 2;
    p->enable_pcan = enable_pcan;
    if (enable_pcan && !((float)offset >= 0)) {
        /* a negative offset gives powf a negative base: NaN gains */
        PyErr_SetString(PyExc_ValueError, "pcan_offset must be >= 0");
        Py_DECREF(p);
        return NULL;
    }
    if (enable_pcan) {
        const int input_bits = smoothing_bits - correction;
        p->snr_shift = gain_bits - correction - SNR_BITS;
        if (input_bits < 0 || input_bits > 31 || gain_bits < 0 || gain_bits > 31 || p->snr_shift < 0) {
            PyErr_Format(PyExc_ValueError,
                         "with PCAN and a %d-point FFT, need smoothing_bits >= %d and %d <= gain_bits <= 31",
                         p->fft_size, correction, correction + SNR_BITS);
            Py_DECREF(p);
            return NULL;
        }
        build_gain_lut(p, (float)strength, (float)offset, gain_bits, input_bits);
    }
    p->enable_log = enable_log;
    p->scale_shift = scale_shift;
    p->log_correction = correction;
    build_log_lut(p);
    return (PyObject *)p;
}

/* A C-contiguous `ndim`-D buffer of element type `code` ('h', 'H' or 'I'). */
static int get_array(PyObject *obj, Py_buffer *view, int writable, char code, int ndim, const char *name) {
    const int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0) return -1;
    const char *fmt = view->format ? view->format : "B";
    if (*fmt == '@' || *fmt == '=' || *fmt == '<') ++fmt;
    const Py_ssize_t size = (code == 'I') ? 4 : 2;
    const int same = fmt[0] == code || (code == 'I' && fmt[0] == 'L');
    if (!same || fmt[1] != 0 || view->itemsize != size || view->ndim != ndim) {
        PyErr_Format(PyExc_TypeError, "%s must be a C-contiguous %d-D array of '%c', got format '%s' with %d dims",
                     name, ndim, code, view->format ? view->format : "B", view->ndim);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static Py_ssize_t frames_in(const Plan *p, Py_ssize_t samples) {
    return samples < p->window_size ? 0 : (samples - p->window_size) / p->window_step + 1;
}

/* Both stages over signals [0, signals); returns -1 when out of memory. */
static int run_batch(const Plan *p, const int16_t *pcm, Py_ssize_t signals, Py_ssize_t samples, uint16_t *out,
                     uint32_t *estimates) {
    const Py_ssize_t frames = frames_in(p, samples);
    if (frames == 0 || signals == 0) return 0;
    const Py_ssize_t group = frames >= GROUP_FRAMES ? 1 : GROUP_FRAMES / frames;
    uint32_t *rows = malloc((size_t)(group * frames) * p->channels * sizeof(uint32_t));
    uint32_t *value = malloc((size_t)p->channels * sizeof(uint32_t));
    Scratch sc;
    if (!rows || !value || scratch_alloc(&sc, p) < 0) {
        free(rows);
        free(value);
        return -1;
    }
    for (Py_ssize_t s0 = 0; s0 < signals; s0 += group) {
        const Py_ssize_t count = (signals - s0 < group) ? signals - s0 : group;
        const Py_ssize_t total = count * frames;
        for (Py_ssize_t f0 = 0; f0 < total; f0 += LANES) {
            const int lanes = (int)((total - f0 < LANES) ? total - f0 : LANES);
            const int16_t *starts[LANES];
            for (int l = 0; l < lanes; ++l) {
                const Py_ssize_t f = f0 + l;
                starts[l] = pcm + (s0 + f / frames) * samples + (f % frames) * p->window_step;
            }
            frames_to_filterbank(p, &sc, starts, rows + (size_t)f0 * p->channels, lanes);
        }
        for (Py_ssize_t s = 0; s < count; ++s)
            filterbank_to_features(p, rows + (size_t)(s * frames) * p->channels, (int)frames,
                                   estimates + (s0 + s) * p->channels, out + (s0 + s) * frames * p->channels,
                                   value);
    }
    scratch_free(&sc);
    free(rows);
    free(value);
    return 0;
}

static PyObject *Plan_run(Plan *p, PyObject *args) {
    PyObject *audio_obj, *out_obj, *estimate_obj;
    if (!PyArg_ParseTuple(args, "OOO", &audio_obj, &out_obj, &estimate_obj)) return NULL;
    Py_buffer audio, out, est;
    if (get_array(audio_obj, &audio, 0, 'h', 2, "audio") < 0) return NULL;
    if (get_array(out_obj, &out, 1, 'H', 3, "out") < 0) {
        PyBuffer_Release(&audio);
        return NULL;
    }
    if (get_array(estimate_obj, &est, 1, 'I', 2, "noise_estimate") < 0) {
        PyBuffer_Release(&audio);
        PyBuffer_Release(&out);
        return NULL;
    }
    const Py_ssize_t signals = audio.shape[0], samples = audio.shape[1];
    const Py_ssize_t frames = frames_in(p, samples);
    PyObject *result = NULL;
    if (out.shape[0] != signals || out.shape[1] != frames || out.shape[2] != p->channels ||
        est.shape[0] != signals || est.shape[1] != p->channels) {
        PyErr_Format(PyExc_ValueError,
                     "audio [%zd, %zd] needs out [%zd, %zd, %d] and noise_estimate [%zd, %d]", signals,
                     samples, signals, frames, p->channels, signals, p->channels);
    } else {
        int status;
        Py_BEGIN_ALLOW_THREADS;
        status = run_batch(p, audio.buf, signals, samples, out.buf, est.buf);
        Py_END_ALLOW_THREADS;
        if (status < 0)
            PyErr_NoMemory();
        else
            result = Py_NewRef(Py_None);
    }
    PyBuffer_Release(&audio);
    PyBuffer_Release(&out);
    PyBuffer_Release(&est);
    return result;
}

static PyObject *Plan_frames(Plan *p, PyObject *arg) {
    const Py_ssize_t samples = PyLong_AsSsize_t(arg);
    if (samples == -1 && PyErr_Occurred()) return NULL;
    return PyLong_FromSsize_t(frames_in(p, samples));
}

static PyObject *int_list(const int16_t *values, int n) {
    PyObject *list = PyList_New(n);
    for (int i = 0; list && i < n; ++i) {
        PyObject *v = PyLong_FromLong(values[i]);
        if (!v) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, i, v);
    }
    return list;
}

static PyObject *Plan_tables(Plan *p, PyObject *Py_UNUSED(ignored)) {
    int16_t log_lut[(1 << LOG_SEG_BITS) + 1];
    for (int i = 0; i <= (1 << LOG_SEG_BITS); ++i) log_lut[i] = (int16_t)p->log_lut[i];
    return Py_BuildValue("{sNsNsNsisi}", "window", int_list(p->window, p->window_size), "gain_lut",
                         int_list(p->gain_lut, GAIN_LUT_SIZE), "log_lut", int_list(log_lut, (1 << LOG_SEG_BITS) + 1),
                         "first_bin", p->bin_lo, "end_bin", p->bin_hi);
}

/* Test hook: the rounded square roots of a uint64 array, by either path. */
static PyObject *sqrt_round_hook(PyObject *Py_UNUSED(module), PyObject *args) {
    PyObject *values_obj, *out_obj;
    int simd;
    if (!PyArg_ParseTuple(args, "OOp", &values_obj, &out_obj, &simd)) return NULL;
    Py_buffer values, out;
    if (PyObject_GetBuffer(values_obj, &values, PyBUF_C_CONTIGUOUS) < 0) return NULL;
    if (PyObject_GetBuffer(out_obj, &out, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0) {
        PyBuffer_Release(&values);
        return NULL;
    }
    const Py_ssize_t n = values.len / 8;
    PyObject *result = NULL;
    if (values.len % 8 || out.len != n * 4) {
        PyErr_SetString(PyExc_ValueError, "need uint64 values and a uint32 out of the same length");
    } else if (simd && !cpu_has_avx2()) {
        PyErr_SetString(PyExc_RuntimeError, "this CPU has no AVX2");
    } else {
        const uint64_t *v = values.buf;
        uint32_t *o = out.buf;
        for (Py_ssize_t i = 0; i < n; i += 4) {
            uint64_t four[4] = {0, 0, 0, 0};
            for (int k = 0; k < 4 && i + k < n; ++k) four[k] = v[i + k];
#if HAVE_AVX2_PATH
            if (simd) sqrt_round4_store(four);
#endif
            for (int k = 0; k < 4 && i + k < n; ++k) o[i + k] = simd ? (uint32_t)four[k] : sqrt_round(four[k]);
        }
        result = Py_NewRef(Py_None);
    }
    PyBuffer_Release(&values);
    PyBuffer_Release(&out);
    return result;
}

static PyMethodDef module_methods[] = {
    {"_sqrt_round", sqrt_round_hook, METH_VARARGS,
     "_sqrt_round(values_uint64, out_uint32, simd) -- for tests: the frontend's rounded square root"},
    {NULL, NULL, 0, NULL},
};

static PyMethodDef Plan_methods[] = {
    {"run", (PyCFunction)Plan_run, METH_VARARGS,
     "run(audio, out, noise_estimate)\n\n"
     "audio: int16 [signals, samples]; out: uint16 [signals, frames, channels], written;\n"
     "noise_estimate: uint32 [signals, channels], each signal's state at its start,\n"
     "replaced by its state at its end. Releases the GIL."},
    {"frames", (PyCFunction)Plan_frames, METH_O, "frames(samples) -> frames a signal of that many samples gives"},
    {"tables", (PyCFunction)Plan_tables, METH_NOARGS, "tables() -> dict of derived tables (for tests)"},
    {NULL, NULL, 0, NULL},
};

static PyObject *Plan_get_int(PyObject *self, void *offset) {
    return PyLong_FromLong(*(const int *)((const char *)self + (size_t)offset));
}

static PyObject *Plan_get_simd(PyObject *self, void *Py_UNUSED(closure)) {
    return PyUnicode_FromString(((Plan *)self)->use_avx2 ? "avx2" : "portable");
}

static PyGetSetDef Plan_getset[] = {
    {"window_size", Plan_get_int, NULL, "window length in samples", (void *)offsetof(Plan, window_size)},
    {"window_step", Plan_get_int, NULL, "hop in samples", (void *)offsetof(Plan, window_step)},
    {"num_channels", Plan_get_int, NULL, "filterbank channels", (void *)offsetof(Plan, channels)},
    {"fft_size", Plan_get_int, NULL, "real FFT length", (void *)offsetof(Plan, fft_size)},
    {"simd", Plan_get_simd, NULL, "code path in use: 'avx2' or 'portable'", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject PlanType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "microkws.features._frontend.Plan",
    .tp_doc = PyDoc_STR("Plan(*, sample_rate, window_size, window_step, num_channels, ..., simd=True)\n\n"
                        "Tables of one frontend configuration. Window and step are in samples; the other\n"
                        "keywords are the TF op's. simd=False forces the portable code path."),
    .tp_basicsize = sizeof(Plan),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = Plan_new,
    .tp_dealloc = (destructor)Plan_dealloc,
    .tp_methods = Plan_methods,
    .tp_getset = Plan_getset,
};

static struct PyModuleDef frontend_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "microkws.features._frontend",
    .m_doc = "TFLM's audio frontend, batched and bit-exact with TensorFlow's audio_microfrontend op.",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__frontend(void) {
    if (PyType_Ready(&PlanType) < 0) return NULL;
    PyObject *m = PyModule_Create(&frontend_module);
    if (!m) return NULL;
    if (PyModule_AddObjectRef(m, "Plan", (PyObject *)&PlanType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
