/*
 * Python side of microkws.features._frontend: the Plan type, the module,
 * and the batch driver that feeds many signals' frames through the two
 * stages.
 *
 * Our own code rather than TF's op: the extension computes the op's (and
 * TFLM's) features bit for bit, batched, 12x the op called per clip on two
 * cores (bench/RESULTS.md). Plan(...) holds the tables of one
 * configuration; Plan.run() processes a batch [signals, samples] with the
 * GIL released, so Python threads can share a batch between cores. Plan's
 * keywords come from the one list in _frontend.h (FE_KEYWORDS), which also
 * gives PLAN_OPTIONS.
 */
#include "_frontend.h"

/* ---- batch driver ------------------------------------------------------ */

static void *zalloc(size_t bytes) {
    bytes = (bytes + 63) / 64 * 64;
    void *m = fe_aligned_alloc(64, bytes);
    if (m) memset(m, 0, bytes);
    return m;
}

static void scratch_free(Scratch *s) {
    fe_aligned_free(s->time);
    fe_aligned_free(s->re);
    fe_aligned_free(s->im);
    fe_aligned_free(s->out_re);
    fe_aligned_free(s->out_im);
    fe_aligned_free(s->lanes);
    fe_aligned_free(s->z);
    fe_aligned_free(s->energy);
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

static Py_ssize_t frames_in(const Plan *p, Py_ssize_t samples) {
    return samples < p->window_size ? 0 : (samples - p->window_size) / p->window_step + 1;
}

/* The path was chosen once, in Plan(...): AVX2 where the CPU has it. */
static void frames_to_filterbank(const Plan *p, Scratch *sc, const int16_t *const *frame, uint32_t *rows,
                                 int lanes) {
#if HAVE_AVX2_PATH
    if (p->use_avx2) {
        fe_frames_to_filterbank_avx2(p, sc, frame, rows, lanes);
        return;
    }
#endif
    fe_frames_to_filterbank_portable(p, sc, frame, rows, lanes);
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
            fe_filterbank_to_features(p, rows + (size_t)(s * frames) * p->channels, (int)frames,
                                      estimates + (s0 + s) * p->channels, out + (s0 + s) * frames * p->channels,
                                      value);
    }
    scratch_free(&sc);
    free(rows);
    free(value);
    return 0;
}

/* ---- the Plan type ----------------------------------------------------- */

static void Plan_dealloc(Plan *p) {
    fe_plan_free(p);
    Py_TYPE(p)->tp_free((PyObject *)p);
}

/* What FE_KEYWORDS' kinds become: PyArg format, "not given" marker (CPython
   makes keyword-only arguments optional, so every one is checked), the
   Python type's name for PLAN_OPTIONS. */
#define FE_FORMAT_INT "i"
#define FE_FORMAT_REAL "d"
#define FE_FORMAT_BOOL "p"
#define FE_UNSET_INT INT_MIN
#define FE_UNSET_REAL NAN
#define FE_UNSET_BOOL (-1)
#define FE_IS_UNSET_INT(v) ((v) == INT_MIN)
#define FE_IS_UNSET_REAL(v) isnan(v)
#define FE_IS_UNSET_BOOL(v) ((v) < 0)
#define FE_PYTYPE_INT "int"
#define FE_PYTYPE_REAL "float"
#define FE_PYTYPE_BOOL "bool"

#define FE_AS_FORMAT(name, kind) FE_FORMAT_##kind
#define FE_AS_KEYWORD(name, kind) #name,
#define FE_AS_UNSET(name, kind) .name = FE_UNSET_##kind,
#define FE_AS_ADDRESS(name, kind) , &a.name
#define FE_AS_MISSING(name, kind) || FE_IS_UNSET_##kind(a.name)
#define FE_AS_OPTION(name, kind) {#name, FE_PYTYPE_##kind},

static PyObject *Plan_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {FE_KEYWORDS(FE_AS_KEYWORD) "simd", NULL};
    FeArgs a = {FE_KEYWORDS(FE_AS_UNSET) .simd = 1};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|$" FE_KEYWORDS(FE_AS_FORMAT) "p", keywords
                                     FE_KEYWORDS(FE_AS_ADDRESS), &a.simd))
        return NULL;
    if (0 FE_KEYWORDS(FE_AS_MISSING)) {
        PyErr_SetString(PyExc_TypeError, "Plan() needs every keyword argument but simd (as numbers, not NaN)");
        return NULL;
    }
    Plan *p = (Plan *)type->tp_alloc(type, 0);
    if (!p) return NULL;
    if (fe_plan_init(p, &a) < 0) {
        Py_DECREF(p);
        return NULL;
    }
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
    } else if (simd && !fe_cpu_has_avx2()) {
        PyErr_SetString(PyExc_RuntimeError, "this CPU has no AVX2");
    } else {
        const uint64_t *v = values.buf;
        uint32_t *o = out.buf;
        for (Py_ssize_t i = 0; i < n; i += 4) {
            uint64_t four[4] = {0, 0, 0, 0};
            for (int k = 0; k < 4 && i + k < n; ++k) four[k] = v[i + k];
#if HAVE_AVX2_PATH
            if (simd) fe_sqrt_round4_store(four);
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
    .m_doc = "TFLM's audio frontend, batched and bit-exact with TensorFlow's audio_microfrontend op.\n\n"
             "PLAN_OPTIONS: ((name, type name), ...) of Plan's keywords that are the op's options\n"
             "beyond window, step and channels, in order.",
    .m_size = -1,
    .m_methods = module_methods,
};

/* PLAN_OPTIONS: ((name, type name), ...) of the op's options, in order. */
static PyObject *plan_options(void) {
    static const struct {
        const char *name, *kind;
    } options[] = {FE_OPTIONS(FE_AS_OPTION)};
    const Py_ssize_t n = (Py_ssize_t)(sizeof(options) / sizeof(options[0]));
    PyObject *tuple = PyTuple_New(n);
    for (Py_ssize_t i = 0; tuple && i < n; ++i) {
        PyObject *item = Py_BuildValue("(ss)", options[i].name, options[i].kind);
        if (!item) {
            Py_CLEAR(tuple);
            break;
        }
        PyTuple_SET_ITEM(tuple, i, item);
    }
    return tuple;
}

PyMODINIT_FUNC PyInit__frontend(void) {
    if (PyType_Ready(&PlanType) < 0) return NULL;
    PyObject *m = PyModule_Create(&frontend_module);
    if (!m) return NULL;
    PyObject *options = plan_options();
    if (PyModule_AddObjectRef(m, "Plan", (PyObject *)&PlanType) < 0 || !options ||
        PyModule_AddObjectRef(m, "PLAN_OPTIONS", options) < 0) {
        Py_XDECREF(options);
        Py_DECREF(m);
        return NULL;
    }
    Py_DECREF(options);
    return m;
}
