/*
 * Plan setup of the micro frontend: argument checks and every table of one
 * configuration (Hann window, FFT factoring and twiddles, mel filterbank,
 * PCAN gain and log tables).
 *
 * Our own code rather than TF's op: the extension computes the op's (and
 * TFLM's) features bit for bit, batched, 12x the op called per clip on two
 * cores (bench/RESULTS.md). Exactness starts here: the tables use the op's
 * float/double mix (float mel scale and weights, double window and
 * twiddles, powf for the PCAN gains), so they are computed in C; numpy
 * would round differently.
 */
#include "_frontend.h"

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

int fe_plan_init(Plan *p, const FeArgs *a) {
    if (a->sample_rate <= 0 || a->window_size < 4 || a->window_size > (1 << 20) || a->window_step <= 0 ||
        a->window_step > a->window_size) {
        PyErr_Format(PyExc_ValueError,
                     "need 4 <= window_size <= 2^20 and 0 < window_step <= window_size (samples), "
                     "got %d and %d",
                     a->window_size, a->window_step);
        return -1;
    }
    if (a->num_channels <= 0 || a->num_channels > 4096) {
        PyErr_Format(PyExc_ValueError, "num_channels must be 1-4096, got %d", a->num_channels);
        return -1;
    }
    if (!(a->lower_band_limit >= 0) || !(a->upper_band_limit > a->lower_band_limit)) {
        PyErr_SetString(PyExc_ValueError, "need 0 <= lower_band_limit < upper_band_limit");
        return -1;
    }
    if (a->smoothing_bits < 0 || a->smoothing_bits > 31 || a->scale_shift < 0 || a->scale_shift > 31) {
        PyErr_SetString(PyExc_ValueError, "smoothing_bits and scale_shift must be 0-31");
        return -1;
    }
    const float even_f = (float)a->even_smoothing, odd_f = (float)a->odd_smoothing;
    const float min_f = (float)a->min_signal_remaining;
    if (!(even_f >= 0 && even_f <= 1 && odd_f >= 0 && odd_f <= 1 && min_f >= 0 && min_f <= 1)) {
        PyErr_SetString(PyExc_ValueError, "even_smoothing, odd_smoothing and min_signal_remaining must be in [0, 1]");
        return -1;
    }

    p->sample_rate = a->sample_rate;
    p->window_size = a->window_size;
    p->window_step = a->window_step;
    p->channels = a->num_channels;
    p->fft_size = 1;
    while (p->fft_size < a->window_size) p->fft_size <<= 1;
    p->half = p->fft_size / 2;
    p->use_avx2 = a->simd && fe_cpu_has_avx2();

    if (build_window(p) < 0 || build_fft(p) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    if (build_filterbank(p, (float)a->lower_band_limit, (float)a->upper_band_limit) < 0) {
        if (!PyErr_Occurred()) PyErr_NoMemory();
        return -1;
    }

    /* Q14 coefficients: float product truncated to uint16, as in the op. */
    p->smoothing_bits = a->smoothing_bits;
    p->even_smoothing = (uint16_t)(even_f * (1 << NR_BITS));
    p->odd_smoothing = (uint16_t)(odd_f * (1 << NR_BITS));
    p->min_signal_remaining = (uint16_t)(min_f * (1 << NR_BITS));

    /* The filterbank output is log2(fft_size) - 1 - 6 bits short of the
       scale the gain and log expect. */
    const int correction = msb32((uint32_t)p->fft_size) - 1 - FILTER_BITS / 2;
    p->enable_pcan = a->enable_pcan;
    if (a->enable_pcan && !((float)a->pcan_offset >= 0)) {
        /* a negative offset gives powf a negative base: NaN gains */
        PyErr_SetString(PyExc_ValueError, "pcan_offset must be >= 0");
        return -1;
    }
    if (a->enable_pcan) {
        const int input_bits = a->smoothing_bits - correction;
        p->snr_shift = a->gain_bits - correction - SNR_BITS;
        if (input_bits < 0 || input_bits > 31 || a->gain_bits < 0 || a->gain_bits > 31 || p->snr_shift < 0) {
            PyErr_Format(PyExc_ValueError,
                         "with PCAN and a %d-point FFT, need smoothing_bits >= %d and %d <= gain_bits <= 31",
                         p->fft_size, correction, correction + SNR_BITS);
            return -1;
        }
        build_gain_lut(p, (float)a->pcan_strength, (float)a->pcan_offset, a->gain_bits, input_bits);
    }
    p->enable_log = a->enable_log;
    p->scale_shift = a->scale_shift;
    p->log_correction = correction;
    build_log_lut(p);
    return 0;
}

void fe_plan_free(Plan *p) {
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
}
