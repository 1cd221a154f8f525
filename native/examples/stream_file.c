/*
 * stream_file: run a model file over a stream of frames, one step at a time, as a real-time program would.
 *
 *   stream_file MODEL.lstmrt < in.f32 > out.f32
 *
 * stdin holds input_size float32 per step, stdout gets output_size float32 per step, both raw in this machine's
 * byte order (numpy: x.astype(np.float32).tofile("in.f32"), np.fromfile("out.f32", np.float32)). An embedding model
 * reads its token ids as floats. Only the public header and the library are needed:
 *
 *   cc examples/stream_file.c -Iinclude build/liblstmrt.a -lm -pthread -o stream_file   (in native/; or make examples)
 */
#include <stdio.h>
#include <stdlib.h>

#include "lstmrt.h"

#ifdef _WIN32 /* raw floats: stop the C runtime translating line endings */
#include <fcntl.h>
#include <io.h>
#define BINARY_STDIO() (_setmode(_fileno(stdin), _O_BINARY), _setmode(_fileno(stdout), _O_BINARY))
#else
#define BINARY_STDIO() ((void)0)
#endif

static int fail(const char *what)
{
    fprintf(stderr, "stream_file: %s: %s\n", what, lstmrt_last_error());
    return 1;
}

/* Steps the stream once per frame of stdin until it ends; 0 on success. */
static int stream_frames(lstmrt_stream_t *stream, float *x, size_t input_size, float *y, size_t output_size)
{
    const size_t frame_bytes = input_size * sizeof *x;
    for (;;) {
        const size_t got = fread(x, 1, frame_bytes, stdin); /* bytes, so a partial float at the end is seen too */
        if (got == 0 && feof(stdin))
            return 0;
        if (got != frame_bytes) {
            fprintf(stderr, "stream_file: %s\n", ferror(stdin) ? "cannot read stdin" : "input ends inside a step");
            return 1;
        }
        if (lstmrt_stream_step(stream, x, NULL, y) != LSTMRT_STATUS_OK)
            return fail("step");
        if (fwrite(y, sizeof *y, output_size, stdout) != output_size) {
            fprintf(stderr, "stream_file: cannot write stdout\n");
            return 1;
        }
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL.lstmrt < in.f32 > out.f32\n", argv[0]);
        return 1;
    }
    BINARY_STDIO();
    lstmrt_model_t *model = NULL;
    if (lstmrt_model_load_file(argv[1], &model) != LSTMRT_STATUS_OK)
        return fail(argv[1]);
    /* A backward direction reads the sequence from its end: such a model cannot output a step before the last. */
    if (lstmrt_model_is_bidirectional(model)) {
        fprintf(stderr,
                "stream_file: %s is bidirectional (or goes backwards): it needs whole sequences, not steps "
                "(use lstmrt_model_predict)\n",
                argv[1]);
        lstmrt_model_free(model);
        return 1;
    }
    lstmrt_stream_t *stream = NULL; /* batch 1: one sequence, its state carried from step to step */
    if (lstmrt_stream_create(model, 1, &stream) != LSTMRT_STATUS_OK) {
        const int status = fail("stream");
        lstmrt_model_free(model);
        return status;
    }
    const size_t input_size = (size_t)lstmrt_model_input_size(model);
    const size_t output_size = (size_t)lstmrt_model_output_size(model);
    float *x = malloc(input_size * sizeof *x), *y = malloc(output_size * sizeof *y);
    int status = 1;
    if (!x || !y)
        fprintf(stderr, "stream_file: out of memory\n");
    else
        status = stream_frames(stream, x, input_size, y, output_size);
    if (status == 0 && fflush(stdout) != 0) {
        fprintf(stderr, "stream_file: cannot write stdout\n");
        status = 1;
    }
    free(x);
    free(y);
    lstmrt_stream_free(stream);
    lstmrt_model_free(model);
    return status;
}
