/*
 * microkws.dataset._mix: the arithmetic of augment()'s common case in one
 * pass per row. Each row of a training batch is its word clip shifted and
 * scaled, plus a slice of background noise at a volume, saturated and
 * truncated to int16, which numpy does in five passes with two temporary
 * arrays per row (about half of the batch producers' CPU time).
 *
 * Our own code rather than a library's: no array library fuses this chain
 * without a compiler at run time, and it must give numpy's result bit for
 * bit (tests/test_dataset.py::test_augment_kernel_is_numpy_bit_for_bit), so
 * that a run's batches do not depend on which path made them. The rules
 * that keep it exact:
 *  - every product and sum is rounded to float as numpy's float32 arrays
 *    are: built with -ffp-contract=off, so no product and sum fuse into an
 *    FMA (whose single rounding would differ);
 *  - the sum is (clip x gain) + (volume x noise), the order numpy adds in;
 *  - saturation to [-32768, 32767], then C's cast, which truncates toward
 *    zero as numpy's astype does.
 * A row is cut into segments (before the clip, the clip, after it; before
 * and after the noise starts) and each segment has its own branch-free
 * loop, which compilers vectorise; with a test per sample it was 1.25x numpy,
 * with the segments 4.3x (AVX2) and 2.1x (SSE2). The loops are compiled
 * twice, the second time with target("avx2"), and the CPU picks at run time,
 * as the frontend does.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define HAVE_AVX2_PATH 1
#define AVX2_FN __attribute__((target("avx2")))
#else
#define HAVE_AVX2_PATH 0
#endif

typedef struct {
    const int16_t *clip;  /* the row's word clip, or NULL (a silence row) */
    Py_ssize_t shift;     /* clip sample j lands at row position lead + j + shift */
    float gain;
    const float *noise;   /* noise[i] is added at row position i, or NULL */
    Py_ssize_t noise_start, noise_stop;
    float volume;
} Row;

static inline int16_t saturate(float x) {
    x = x < -32768.0f ? -32768.0f : x;
    x = x > 32767.0f ? 32767.0f : x;
    return (int16_t)x;
}

static inline Py_ssize_t clamp(Py_ssize_t v, Py_ssize_t lo, Py_ssize_t hi) { return v < lo ? lo : v > hi ? hi : v; }

/* One segment [a, b) of a row, with or without clip and noise; row position i holds clip sample i - at. */
static inline void segment(int16_t *restrict o, const int16_t *restrict c, Py_ssize_t at, float g,
                           const float *restrict z, float v, Py_ssize_t a, Py_ssize_t b) {
    if (c && z) {
        for (Py_ssize_t i = a; i < b; ++i) o[i] = saturate((float)c[i - at] * g + v * z[i]);
    } else if (c) {
        for (Py_ssize_t i = a; i < b; ++i) o[i] = saturate((float)c[i - at] * g);
    } else if (z) {
        for (Py_ssize_t i = a; i < b; ++i) o[i] = saturate(v * z[i]);
    } else if (b > a) {
        memset(o + a, 0, (size_t)(b - a) * sizeof(int16_t));
    }
}

static inline void mix_row(int16_t *o, const Row *r, Py_ssize_t lead, Py_ssize_t length) {
    const Py_ssize_t total = lead + length;
    /* Where the clip lies in the row: [clip_a, clip_b), its sample j at row position j + at. */
    const Py_ssize_t at = lead + r->shift;
    const Py_ssize_t clip_a = r->clip ? clamp(at, lead, total) : 0;
    const Py_ssize_t clip_b = r->clip ? clamp(at + length, lead, total) : 0;
    const Py_ssize_t noise_a = r->noise ? r->noise_start : total, noise_b = r->noise ? r->noise_stop : total;
    Py_ssize_t cuts[6] = {0, clip_a, clip_b, noise_a, noise_b, total};
    for (int i = 1; i < 6; ++i)  /* sort the five cuts after 0: insertion sort of a handful */
        for (int j = i; j > 0 && cuts[j] < cuts[j - 1]; --j) {
            const Py_ssize_t t = cuts[j];
            cuts[j] = cuts[j - 1];
            cuts[j - 1] = t;
        }
    for (int s = 0; s < 5; ++s) {
        const Py_ssize_t a = cuts[s], b = cuts[s + 1];
        if (b <= a) continue;
        const int in_clip = r->clip && a >= clip_a && b <= clip_b;
        const int in_noise = r->noise && a >= noise_a && b <= noise_b;
        segment(o, in_clip ? r->clip : NULL, at, r->gain, in_noise ? r->noise : NULL, r->volume, a, b);
    }
}

static void mix_rows_portable(int16_t *out, const Row *rows, Py_ssize_t count, Py_ssize_t lead, Py_ssize_t length) {
    for (Py_ssize_t r = 0; r < count; ++r) mix_row(out + r * (lead + length), rows + r, lead, length);
}

#if HAVE_AVX2_PATH
AVX2_FN static void mix_rows_avx2(int16_t *out, const Row *rows, Py_ssize_t count, Py_ssize_t lead,
                                  Py_ssize_t length) {
    for (Py_ssize_t r = 0; r < count; ++r) mix_row(out + r * (lead + length), rows + r, lead, length);
}
#endif

static int use_avx2(void) {
#if HAVE_AVX2_PATH
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
#else
    return 0;
#endif
}

/* A C-contiguous buffer of `itemsize`-byte items with `ndim` dimensions (0: any). */
static int get_buffer(PyObject *obj, Py_buffer *view, int writable, Py_ssize_t itemsize, int ndim, const char *name) {
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0)) < 0)
        return -1;
    if (view->itemsize != itemsize || (ndim && view->ndim != ndim)) {
        PyErr_Format(PyExc_ValueError, "%s: expected %d-byte items in %d dimensions", name, (int)itemsize, ndim);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static PyObject *mix_rows(PyObject *self, PyObject *args) {
    PyObject *out_obj, *clips_obj, *words_obj, *shifts_obj, *gains_obj, *noises, *starts_obj, *volumes_obj;
    Py_ssize_t lead;
    int simd = 1;
    if (!PyArg_ParseTuple(args, "OOOOOO!OOn|p:mix_rows", &out_obj, &clips_obj, &words_obj, &shifts_obj, &gains_obj,
                          &PyList_Type, &noises, &starts_obj, &volumes_obj, &lead, &simd))
        return NULL;
    Py_buffer out, clips, words, shifts, gains, starts, volumes;
    Py_buffer *views[7] = {&out, &clips, &words, &shifts, &gains, &starts, &volumes};
    int got = 0;
    PyObject *result = NULL;
    Py_buffer *noise_views = NULL;
    Py_ssize_t noise_got = 0;
    Row *rows = NULL;
    if (get_buffer(out_obj, &out, 1, 2, 2, "out") < 0) goto done;
    got++;
    if (get_buffer(clips_obj, &clips, 0, 2, 2, "clips") < 0) goto done;
    got++;
    if (get_buffer(words_obj, &words, 0, 1, 1, "words") < 0) goto done;
    got++;
    if (get_buffer(shifts_obj, &shifts, 0, 8, 1, "shifts") < 0) goto done;
    got++;
    if (get_buffer(gains_obj, &gains, 0, 4, 1, "gains") < 0) goto done;
    got++;
    if (get_buffer(starts_obj, &starts, 0, 8, 1, "starts") < 0) goto done;
    got++;
    if (get_buffer(volumes_obj, &volumes, 0, 4, 1, "volumes") < 0) goto done;
    got++;
    const Py_ssize_t count = clips.shape[0], length = clips.shape[1];
    if (lead < 0 || out.shape[0] != count || out.shape[1] != lead + length || words.shape[0] != count ||
        shifts.shape[0] != count || gains.shape[0] != count || starts.shape[0] != count ||
        volumes.shape[0] != count || PyList_GET_SIZE(noises) != count) {
        PyErr_SetString(PyExc_ValueError, "mix_rows: out must be [n, lead + samples] and every row list n long");
        goto done;
    }
    rows = PyMem_Calloc((size_t)(count ? count : 1), sizeof(Row));
    noise_views = PyMem_Calloc((size_t)(count ? count : 1), sizeof(Py_buffer));
    if (!rows || !noise_views) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t r = 0; r < count; ++r) {
        Row *row = rows + r;
        const Py_ssize_t shift = ((const int64_t *)shifts.buf)[r];
        if (shift <= -length || shift >= length) {
            PyErr_SetString(PyExc_ValueError, "mix_rows: a shift must be shorter than the clip");
            goto done;
        }
        row->clip = ((const uint8_t *)words.buf)[r] ? (const int16_t *)clips.buf + r * length : NULL;
        row->shift = shift;
        row->gain = ((const float *)gains.buf)[r];
        row->volume = ((const float *)volumes.buf)[r];
        PyObject *noise = PyList_GET_ITEM(noises, r);
        if (noise == Py_None) continue;
        if (get_buffer(noise, noise_views + r, 0, 4, 1, "noise") < 0) goto done;
        noise_got = r + 1;
        row->noise = (const float *)noise_views[r].buf;
        row->noise_stop = noise_views[r].shape[0] < lead + length ? noise_views[r].shape[0] : lead + length;
        row->noise_start = clamp(((const int64_t *)starts.buf)[r], 0, row->noise_stop);
    }
    const int avx2 = simd && use_avx2();
    Py_BEGIN_ALLOW_THREADS;
#if HAVE_AVX2_PATH
    if (avx2)
        mix_rows_avx2(out.buf, rows, count, lead, length);
    else
#endif
        mix_rows_portable(out.buf, rows, count, lead, length);
    Py_END_ALLOW_THREADS;
    (void)avx2;
    result = Py_NewRef(Py_None);
done:
    for (Py_ssize_t r = 0; r < noise_got; ++r)
        if (noise_views[r].obj) PyBuffer_Release(noise_views + r);
    PyMem_Free(noise_views);
    PyMem_Free(rows);
    for (int i = 0; i < got; ++i) PyBuffer_Release(views[i]);
    return result;
}

static PyObject *simd(PyObject *self, PyObject *unused) {
    return PyUnicode_FromString(use_avx2() ? "avx2" : "portable");
}

static PyMethodDef methods[] = {
    {"mix_rows", mix_rows, METH_VARARGS,
     "mix_rows(out, clips, words, shifts, gains, noises, starts, volumes, lead, simd=True)\n\n"
     "out[r] (int16, lead + samples) = saturate(clip r shifted by shifts[r] after `lead` zeros, times gains[r], "
     "where words[r], plus volumes[r] x noises[r] from starts[r] on, where noises[r] is not None), truncated "
     "to int16; the GIL is released. simd=False: the portable loops even where the CPU has AVX2."},
    {"simd", simd, METH_NOARGS, "the code path mix_rows takes on this CPU: 'avx2' or 'portable'"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_mix", "augment()'s clip-and-noise mix in C.", -1, methods};

PyMODINIT_FUNC PyInit__mix(void) { return PyModule_Create(&module); }
