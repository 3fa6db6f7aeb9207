/*
 * The translation unit of microkws.features._frontend, TFLM's audio
 * frontend: bit-exact with TensorFlow's audio_microfrontend op and TFLM's
 * device features, batched, 12x the op called per clip on two cores
 * (bench/RESULTS.md). Our own code because the op does one clip, one frame
 * at a time; _frontend.h says how the layers below fit together.
 *
 * Why one unit of several files: built as separate units, the portable
 * path ran 4-8% slower (GCC 12, -O3): its speed depends on the compiler
 * inlining both stages into the batch loop (run_batch), and which of them
 * it could see changed the code it generated for the FFT. Included here,
 * in this order, the compiler sees what it saw before the split, and the
 * code is the same. Each layer file also compiles on its own.
 */
#define FE_ONE_UNIT 1

#include "_frontend_plan.c"
#include "_frontend_fft.c"
#include "_frontend_avx2.c"
#include "_frontend_stateful.c"
#include "_frontend_module.c"
