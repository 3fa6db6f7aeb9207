/*
 * Stateless stage of the micro frontend in portable C: LANES frames at a
 * time through window, shift, kissfft's int16 real FFT, energies,
 * filterbank and square roots. CPUs without AVX2 (and simd=False) run
 * this; _frontend_avx2.c must give the same values bit for bit.
 *
 * Our own code rather than TF's op: the extension computes the op's (and
 * TFLM's) features bit for bit, batched, 12x the op called per clip on two
 * cores (bench/RESULTS.md). Here each array element holds one value per
 * frame ([...][LANES]) and every inner loop runs over lanes, which the
 * compiler vectorizes.
 */
#include "_frontend.h"

/* Filterbank sums of `lanes` frames done: correct the sign-extension case,
   take the square roots, undo the input shift, store rows[l][c]. */
void fe_finish_channel(const Plan *p, const uint32_t *energy, int c, uint64_t *acc, uint32_t top_bits,
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

void fe_frames_to_filterbank_portable(const Plan *p, Scratch *sc, const int16_t *const *frame, uint32_t *rows,
                                      int lanes) {
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
        fe_finish_channel(p, energy, c, acc, top_bits, shift, rows, lanes);
    }
}
