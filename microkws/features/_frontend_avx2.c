/*
 * Stateless stage of the micro frontend with AVX2 intrinsics: the
 * arithmetic of _frontend_fft.c, bit for bit, LANES (16) frames per pass,
 * a register holding 8 of them as (re, im) pairs. pmulhrsw is exactly
 * kissfft's Q15 scaling with rounding half up, and pmaddwd its complex
 * product in exact int32.
 *
 * Our own code rather than TF's op: the extension computes the op's (and
 * TFLM's) features bit for bit, batched, 12x the op called per clip on two
 * cores (bench/RESULTS.md), most of it from this path. Functions carry
 * target("avx2") rather than the unit being built with -mavx2, so one
 * binary runs on any x86-64 and picks its path at run time (Plan.simd).
 * Compilers without that attribute (MSVC) build only fe_cpu_has_avx2,
 * which says no.
 */
#include "_frontend.h"

int fe_cpu_has_avx2(void) {
#if HAVE_AVX2_PATH
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
#else
    return 0;
#endif
}

#if HAVE_AVX2_PATH
#include <immintrin.h>

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

AVX2_FN void fe_sqrt_round4_store(uint64_t *four) {
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

AVX2_FN void fe_frames_to_filterbank_avx2(const Plan *p, Scratch *sc, const int16_t *const *frame, uint32_t *rows,
                                          int lanes) {
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
        FE_ALIGNED(32) uint64_t parts[4][4];
        if (top_bits) { /* rare: needs the sign-extension correction first */
            STORE(parts[0], even0);
            STORE(parts[1], odd0);
            STORE(parts[2], even1);
            STORE(parts[3], odd1);
            uint64_t acc[LANES];
            for (int l = 0; l < LANES; ++l) acc[l] = parts[2 * (l / 8) + (l & 1)][(l % 8) / 2];
            fe_finish_channel(p, energy, c, acc, top_bits, shift, rows, lanes);
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
