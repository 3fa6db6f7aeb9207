/*
 * Stateful stage of the micro frontend: noise reduction, PCAN gain control
 * and the fixed-point log, walking one signal's frames in order and
 * carrying its per-channel noise estimate.
 *
 * Our own code rather than TF's op: the extension computes the op's (and
 * TFLM's) features bit for bit, batched, 12x the op called per clip on two
 * cores (bench/RESULTS.md). Only this stage depends on earlier frames, so
 * it runs per signal after the stateless stage has done a group of frames,
 * looping over channels. The same C is compiled twice, plain and with
 * target("avx2"), so the compiler vectorizes it for AVX2 where the CPU has
 * it; it is integer C either way and gives the same values.
 */
#include "_frontend.h"

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
static FE_ALWAYS_INLINE void stateful_steps(const Plan *p, const uint32_t *rows, int frames,
                                             uint32_t *restrict estimate, uint16_t *restrict out,
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

void fe_filterbank_to_features(const Plan *p, const uint32_t *rows, int frames, uint32_t *estimate, uint16_t *out,
                               uint32_t *value) {
#if HAVE_AVX2_PATH
    if (p->use_avx2) {
        stateful_steps_avx2(p, rows, frames, estimate, out, value);
        return;
    }
#endif
    stateful_steps_portable(p, rows, frames, estimate, out, value);
}
