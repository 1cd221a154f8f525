/* Model files (.lstmrt): every catalogue model written by the tests' own writer (model_bytes.h) loads to a model
 * bit-identical to lstmrt_model_create's, from memory at any alignment and from disk, as version 2 and (without
 * activation parameters) as version 1; every check of docs/model-file.md refuses its damaged file with the right
 * status and message; and no corruption of a small file of either version crashes the reader or a model it
 * accepts. */
#include "cases.h"
#include "model_bytes.h"
#include "spec.h"

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h> /* getpid: a temp file name of our own when builds test side by side */
#define PROCESS_ID() ((unsigned long)getpid())
#else
#define PROCESS_ID() 0ul
#endif

/* What Python's Model.save writes; the C library hands it back untouched. */
static const char OPTIONS[] = "{\"class\": \"Model\", \"return_sequences\": true, \"squeeze_output\": false}";

enum { FB = 2, FT = 37 }; /* predict / run shape of the round trips */

static model_file copy_file(model_file f)
{
    model_file c = {arena_alloc(f.size), f.size, f.version};
    memcpy(c.bytes, f.bytes, f.size);
    return c;
}

/* lstm 2-3 peephole + dense 3-2 + activation softmax: every slot kind of a small file, 1.6 KB. */
static void small_spec(spec *s)
{
    start_spec(s, 77, "file: lstm 2-3 peephole + dense 3-2 + softmax");
    push(s, LSTMRT_LAYER_LSTM, 2, 3);
    s->peephole[0] = 1;
    push(s, LSTMRT_LAYER_DENSE, 3, 2);
    push(s, LSTMRT_LAYER_ACTIVATION, 2, 0)->activations[0] = LSTMRT_ACT_SOFTMAX;
    add_weights(s);
}

/* The two models compute the same bits: predict, and a stream's run when the model streams. */
static void check_same_model(const spec *s, const lstmrt_model_t *want, const lstmrt_model_t *got)
{
    const int64_t O = spec_out(s);
    CHECK(lstmrt_model_input_size(got) == lstmrt_model_input_size(want));
    CHECK(lstmrt_model_output_size(got) == lstmrt_model_output_size(want));
    CHECK(lstmrt_model_state_size(got) == lstmrt_model_state_size(want));
    CHECK(lstmrt_model_weight_bytes(got) == lstmrt_model_weight_bytes(want));
    CHECK(lstmrt_model_is_bidirectional(got) == lstmrt_model_is_bidirectional(want));
    float *x = make_inputs(s, FB, FT), *a = new_floats(FB * FT * O), *b = new_floats(FB * FT * O);
    CHECK(lstmrt_model_predict(want, x, FB, FT, NULL, NULL, a) == LSTMRT_STATUS_OK);
    CHECK(lstmrt_model_predict(got, x, FB, FT, NULL, NULL, b) == LSTMRT_STATUS_OK);
    CHECK(same_bits(a, b, FB * FT * O));
    if (lstmrt_model_is_bidirectional(want))
        return;
    lstmrt_stream_t *sa = NULL, *sb = NULL;
    CHECK(lstmrt_stream_create(want, FB, &sa) == LSTMRT_STATUS_OK);
    CHECK(lstmrt_stream_create(got, FB, &sb) == LSTMRT_STATUS_OK);
    if (sa && sb) {
        CHECK(lstmrt_stream_run(sa, x, FT, a) == LSTMRT_STATUS_OK);
        CHECK(lstmrt_stream_run(sb, x, FT, b) == LSTMRT_STATUS_OK);
        CHECK(same_bits(a, b, FB * FT * O));
    }
    lstmrt_stream_free(sa);
    lstmrt_stream_free(sb);
}

static int same_f32(float a, float b)
{
    return memcmp(&a, &b, sizeof a) == 0;
}

static int same_fields(const lstmrt_layer_desc *a, const lstmrt_layer_desc *b)
{
    return a->kind == b->kind && a->input_size == b->input_size && a->hidden_size == b->hidden_size &&
           a->proj_size == b->proj_size && a->num_embeddings == b->num_embeddings &&
           a->num_directions == b->num_directions && a->merge_mode == b->merge_mode &&
           memcmp(a->activations, b->activations, sizeof a->activations) == 0 && same_f32(a->cell_clip, b->cell_clip) &&
           a->linear_before_reset == b->linear_before_reset && a->hold_masked_output == b->hold_masked_output &&
           a->go_backwards == b->go_backwards && a->final_only == b->final_only && same_f32(a->epsilon, b->epsilon) &&
           a->norm_mode == b->norm_mode && a->pool_mode == b->pool_mode && a->add_from == b->add_from &&
           a->add_offset == b->add_offset && same_f32(a->activation_alpha[0], b->activation_alpha[0]) &&
           same_f32(a->activation_alpha[1], b->activation_alpha[1]) &&
           same_f32(a->activation_alpha[2], b->activation_alpha[2]);
}

static const float *weight_slot(const lstmrt_direction_weights *w, int slot)
{
    const float *arrays[6] = {w->weight_ih, w->weight_hh, w->bias_ih, w->bias_hh, w->weight_peephole, w->weight_proj};
    return arrays[slot];
}

/* lstmrt_file_read: the header alone (layers NULL), then descs equal to the spec's, their weights in place. */
static void check_file_read(const spec *s, model_file f)
{
    lstmrt_file_info info;
    memset(&info, 0, sizeof info);
    CHECK(lstmrt_file_read(f.bytes, f.size, NULL, 0, &info) == LSTMRT_STATUS_OK);
    CHECK(info.num_layers == s->n);
    CHECK(info.options_bytes == strlen(OPTIONS) && memcmp(info.options, OPTIONS, info.options_bytes) == 0);
    lstmrt_layer_desc layers[MAX_LAYERS];
    if (!CHECK(lstmrt_file_read(f.bytes, f.size, layers, MAX_LAYERS, &info) == LSTMRT_STATUS_OK))
        return;
    for (int l = 0; l < s->n; l++) {
        CHECK(same_fields(&layers[l], &s->layers[l]));
        for (int dir = 0; dir < 2; dir++)
            for (int slot = 0; slot < 6; slot++) {
                const float *want = weight_slot(&s->layers[l].weights[dir], slot);
                const float *got = weight_slot(&layers[l].weights[dir], slot);
                const size_t at = (size_t)((uintptr_t)got - (uintptr_t)f.bytes); /* wraps if before the file */
                const size_t bytes = 4 * (size_t)desc_floats(&s->layers[l], dir, slot);
                if (!CHECK((want == NULL) == (got == NULL)) || !want)
                    continue;
                /* within the file before comparing: a reader reading the wrong offsets must fail, not crash, here */
                if (CHECK(at > 0 && at < f.size && bytes <= f.size - at && at % FILE_ALIGN == 0))
                    CHECK(same_bits(got, want, bytes / 4));
            }
    }
}

/* Every catalogue model: file bytes -> lstmrt_model_load is lstmrt_model_create, also from an odd address. */
void test_model_file_round_trip(void)
{
    for (int which = 0; which < NUM_SPECS; which++) {
        spec s;
        lstmrt_model_t *want = open_spec(which, &s), *got = NULL, *odd_got = NULL;
        const model_file f = model_bytes(s.layers, s.n, OPTIONS);
        CHECK(lstmrt_model_load(f.bytes, f.size, &got) == LSTMRT_STATUS_OK && got != NULL);
        CHECK(lstmrt_last_error()[0] == '\0');
        /* a C array compiled into a program may start anywhere: the loader copies it */
        unsigned char *odd = (unsigned char *)arena_alloc(f.size + 1) + 1;
        memcpy(odd, f.bytes, f.size);
        CHECK(lstmrt_model_load(odd, f.size, &odd_got) == LSTMRT_STATUS_OK && odd_got != NULL);
        if (want && got && odd_got) {
            check_same_model(&s, want, got);
            check_same_model(&s, want, odd_got);
        }
        check_file_read(&s, f);
        lstmrt_model_free(want);
        lstmrt_model_free(got);
        lstmrt_model_free(odd_got);
        arena_reset();
    }

    spec s;
    small_spec(&s);
    const model_file f = model_bytes(s.layers, s.n, OPTIONS);
    lstmrt_layer_desc layers[MAX_LAYERS];
    lstmrt_file_info info;
    /* lstmrt_file_read points the descs into the data: it must be float-aligned */
    unsigned char *odd = (unsigned char *)arena_alloc(f.size + 1) + 1;
    memcpy(odd, f.bytes, f.size);
    EXPECT_FAIL(lstmrt_file_read(odd, f.size, layers, MAX_LAYERS, &info), INVALID);
    CHECK(strstr(lstmrt_last_error(), "aligned") != NULL);
    CHECK(lstmrt_file_read(odd, f.size, NULL, 0, &info) == LSTMRT_STATUS_OK && info.num_layers == 3);
    EXPECT_FAIL(lstmrt_file_read(f.bytes, f.size, layers, 2, &info), INVALID);
    CHECK(strstr(lstmrt_last_error(), "3 layers; capacity is 2") != NULL);
    EXPECT_FAIL(lstmrt_file_read(NULL, f.size, layers, 3, &info), INVALID);
    EXPECT_FAIL(lstmrt_file_read(f.bytes, f.size, layers, 3, NULL), INVALID);
    /* no options: offset and size 0, and info->options an empty string */
    const model_file bare = model_bytes(s.layers, s.n, NULL);
    CHECK(get_u64(bare.bytes + AT_OPTIONS) == 0 && get_u64(bare.bytes + AT_OPTIONS + 8) == 0);
    CHECK(lstmrt_file_read(bare.bytes, bare.size, layers, 3, &info) == LSTMRT_STATUS_OK);
    CHECK(info.num_layers == 3 && info.options_bytes == 0 && info.options != NULL && info.options[0] == '\0');

    /* activation_alpha at bytes 80 to 91 of a record, bytes 92 to 95 zero: lstm 5-7's slots 1 and 2 */
    make_spec(29, &s);
    snprintf(context, sizeof context, "file: activation_alpha of %s", s.name);
    const model_file a = model_bytes(s.layers, s.n, NULL);
    uint32_t bits[3];
    memcpy(bits, s.layers[0].activation_alpha, sizeof bits);
    CHECK(bits[1] != 0 && bits[2] != 0);
    for (int k = 0; k < 3; k++)
        CHECK(get_u32(a.bytes + record_at(0) + AT_FIELD_ALPHA + 4 * k) == bits[k]);
    CHECK(get_u32(a.bytes + record_at(0) + AT_RECORD_ZERO) == 0);
    CHECK(lstmrt_file_read(a.bytes, a.size, layers, MAX_LAYERS, &info) == LSTMRT_STATUS_OK);
    CHECK(memcmp(layers[0].activation_alpha, bits, sizeof bits) == 0);
    arena_reset();
}

/* Version 1 files (272-byte records, no activation_alpha) still load: every catalogue model without activation
 * parameters (and their alphas are 0) loads from its version 1 file as from its desc, bit for bit. */
void test_model_file_version_1(void)
{
    int written = 0;
    for (int which = 0; which < NUM_SPECS; which++) {
        spec s;
        make_spec(which, &s);
        snprintf(context, sizeof context, "%s, version 1", s.name);
        int has_alpha = 0;
        for (int l = 0; l < s.n; l++)
            for (int k = 0; k < 3; k++)
                has_alpha |= s.layers[l].activation_alpha[k] != 0.0f;
        if (has_alpha) /* a version 1 file has no place for it */
            continue;
        lstmrt_model_t *want = create_model(&s), *got = NULL;
        const model_file f = model_bytes_v1(s.layers, s.n, OPTIONS);
        CHECK(get_u32(f.bytes + AT_VERSION) == 1 && get_u32(f.bytes + AT_RECORD_SIZE) == FILE_RECORD_BYTES_V1);
        CHECK(lstmrt_model_load(f.bytes, f.size, &got) == LSTMRT_STATUS_OK && got != NULL);
        CHECK(lstmrt_last_error()[0] == '\0');
        if (want && got)
            check_same_model(&s, want, got);
        check_file_read(&s, f);
        lstmrt_model_free(want);
        lstmrt_model_free(got);
        written++;
        arena_reset();
    }
    snprintf(context, sizeof context, "version 1 files");
    CHECK(written >= 29); /* the catalogue before activation parameters */
}

/* lstmrt_layer_weight_floats, the reader's count check, against the shapes of docs/math.md. */
void test_layer_weight_floats(void)
{
    for (int which = 0; which < NUM_SPECS; which++) {
        spec s;
        make_spec(which, &s);
        snprintf(context, sizeof context, "%s", s.name);
        for (int l = 0; l < s.n; l++)
            for (int dir = 0; dir < 2; dir++)
                for (int slot = 0; slot < 6; slot++)
                    CHECK(lstmrt_layer_weight_floats(&s.layers[l], dir, slot) == desc_floats(&s.layers[l], dir, slot));
        arena_reset();
    }
    spec s;
    start_spec(&s, 1, "lstmrt_layer_weight_floats out of range");
    lstmrt_layer_desc *d = push(&s, LSTMRT_LAYER_LSTM, 7, 17);
    d->proj_size = 5;
    CHECK(lstmrt_layer_weight_floats(d, 0, 1) == 4 * 17 * 5 && lstmrt_layer_weight_floats(d, 0, 5) == 5 * 17);
    CHECK(lstmrt_layer_weight_floats(d, 0, 6) == 0 && lstmrt_layer_weight_floats(d, 0, -1) == 0);
    CHECK(lstmrt_layer_weight_floats(d, 2, 0) == 0 && lstmrt_layer_weight_floats(d, -1, 0) == 0);
    CHECK(lstmrt_layer_weight_floats(NULL, 0, 0) == -1);
    d->proj_size = -1;
    CHECK(lstmrt_layer_weight_floats(d, 0, 0) == -1);
    d->proj_size = 0;
    d->hidden_size = 0;
    CHECK(lstmrt_layer_weight_floats(d, 0, 0) == -1);
    d->hidden_size = 17;
    d->input_size = (1 << 24) + 1;
    CHECK(lstmrt_layer_weight_floats(d, 0, 0) == -1);
    d->input_size = 7;
    d->kind = (lstmrt_layer_kind)99;
    CHECK(lstmrt_layer_weight_floats(d, 0, 0) == -1);
    d->kind = LSTMRT_LAYER_EMBEDDING;
    d->num_embeddings = 0;
    CHECK(lstmrt_layer_weight_floats(d, 0, 0) == -1);
    arena_reset();
}

/* Writes bytes to `path`; 0 if it could not. */
static int write_file(const char *path, const unsigned char *bytes, size_t size)
{
    FILE *out = fopen(path, "wb");
    if (!out)
        return 0;
    const int ok = fwrite(bytes, 1, size, out) == size;
    return fclose(out) == 0 && ok;
}

void test_model_file_load_file(void)
{
    spec s;
    small_spec(&s);
    lstmrt_model_t *want = create_model(&s), *got = (lstmrt_model_t *)&s;
    const model_file f = model_bytes(s.layers, s.n, OPTIONS);
    char path[64];
    snprintf(path, sizeof path, "test_lstmrt_%lu.lstmrt", PROCESS_ID()); /* in the current directory */
    if (!CHECK(write_file(path, f.bytes, f.size))) {
        lstmrt_model_free(want);
        return;
    }
    CHECK(lstmrt_model_load_file(path, &got) == LSTMRT_STATUS_OK && got != NULL);
    if (want && got)
        check_same_model(&s, want, got);
    lstmrt_model_free(got);
    /* the file's checks apply to a file on disk too */
    if (CHECK(write_file(path, f.bytes, f.size - 1))) {
        EXPECT_FAIL(lstmrt_model_load_file(path, &got), INVALID);
        CHECK(got == NULL && strstr(lstmrt_last_error(), "truncated") != NULL);
    }
    if (CHECK(write_file(path, f.bytes, 0))) {
        EXPECT_FAIL(lstmrt_model_load_file(path, &got), INVALID);
        CHECK(strstr(lstmrt_last_error(), "not an lstmrt model file") != NULL);
    }
    remove(path);
    got = (lstmrt_model_t *)&s;
    EXPECT_FAIL(lstmrt_model_load_file(path, &got), INVALID);
    CHECK(got == NULL && strstr(lstmrt_last_error(), "cannot open") != NULL && strstr(lstmrt_last_error(), path));
    EXPECT_FAIL(lstmrt_model_load_file(NULL, &got), INVALID);
    /* A directory opens on POSIX, where ftell says LONG_MAX: refused as unreadable, not by a huge allocation. */
    got = (lstmrt_model_t *)&s;
    EXPECT_FAIL(lstmrt_model_load_file(".", &got), INVALID);
    CHECK(got == NULL && strstr(lstmrt_last_error(), "cannot read .") != NULL);
    EXPECT_FAIL(lstmrt_model_load_file(path, NULL), INVALID);
    lstmrt_model_free(want);
    arena_reset();
}

/* A damaged file: lstmrt_model_load fails with `want` and a message holding `words`, leaves *out NULL, and
 * lstmrt_file_read (Python's path: the header, then the descs) fails with the same status and message. */
static void load_fails(const unsigned char *bytes, size_t size, lstmrt_status want, const char *words, int line)
{
    lstmrt_model_t *m = (lstmrt_model_t *)&m;
    expect_status(lstmrt_model_load(bytes, size, &m), want, line, "lstmrt_model_load");
    char message[512];
    snprintf(message, sizeof message, "%s", lstmrt_last_error());
    if (!check_(strstr(message, words) != NULL, line, words))
        printf("  message: %s\n", message);
    check_(m == NULL, line, "*out is NULL after a failed load");
    lstmrt_file_info info;
    lstmrt_status s = lstmrt_file_read(bytes, size, NULL, 0, &info);
    if (s == LSTMRT_STATUS_OK) {
        lstmrt_layer_desc *layers = arena_alloc((size_t)info.num_layers * sizeof *layers);
        s = lstmrt_file_read(bytes, size, layers, info.num_layers, &info);
    }
    check_(s == want && strcmp(lstmrt_last_error(), message) == 0, line, "lstmrt_file_read fails the same way");
}
#define LOAD_FAILS(file, want, words) load_fails((file).bytes, (file).size, want, words, __LINE__)

/* Every check of docs/model-file.md ("What a reader checks"), one damage at a time, past the checksum. */
void test_model_file_errors(void)
{
    spec s;
    small_spec(&s);
    const model_file base = model_bytes(s.layers, s.n, OPTIONS);
    const size_t size = base.size, options_at = get_u64(base.bytes + AT_OPTIONS);
    lstmrt_model_t *m = NULL;
    CHECK(lstmrt_model_load(base.bytes, size, &m) == LSTMRT_STATUS_OK);
    lstmrt_model_free(m);
    model_file f;
    /* Edits a copy of the file, reseals it, and expects the reader to refuse it: one case per line. */
#define DAMAGED(name, edit, want, words)                                                                               \
    do {                                                                                                               \
        snprintf(context, sizeof context, "model file: %s", name);                                                     \
        f = copy_file(base);                                                                                           \
        edit;                                                                                                          \
        reseal(f.bytes, f.size);                                                                                       \
        LOAD_FAILS(f, want, words);                                                                                    \
    } while (0)
#define U32(at, v) put_u32(f.bytes + (at), (uint32_t)(v))
#define U64(at, v) put_u64(f.bytes + (at), (uint64_t)(v))

    /* the header */
    DAMAGED("magic", f.bytes[1] = 'l', INVALID, "not an lstmrt model file");
    DAMAGED("magic mangled as text", f.bytes[0] = 0x0A, INVALID, "not an lstmrt model file");
    DAMAGED("shorter than the magic", f.size = 7, INVALID, "not an lstmrt model file");
    DAMAGED("shorter than a header", f.size = 40, INVALID, "model file of 40 bytes: truncated");
    DAMAGED("version 3", U32(AT_VERSION, 3), LSTMRT_STATUS_UNSUPPORTED, "version 3");
    CHECK(strstr(lstmrt_last_error(), "reads versions 1 to 2") != NULL);
    DAMAGED("version 0", U32(AT_VERSION, 0), LSTMRT_STATUS_UNSUPPORTED, "version 0");
    snprintf(context, sizeof context, "model file: truncated");
    load_fails(base.bytes, size - 1, INVALID, "truncated", __LINE__);
    snprintf(context, sizeof context, "model file: bytes after its end");
    f = (model_file){arena_alloc(size + 1), size + 1, base.version};
    memcpy(f.bytes, base.bytes, size);
    LOAD_FAILS(f, INVALID, "bytes after its end");
    snprintf(context, sizeof context, "model file: damaged weight");
    f = copy_file(base);
    f.bytes[size - 100] ^= 0x10; /* not resealed */
    LOAD_FAILS(f, INVALID, "checksum");
    f = copy_file(base);
    f.bytes[AT_CRC] ^= 0x01;
    LOAD_FAILS(f, INVALID, "checksum");
    DAMAGED("0 layers", U32(AT_NUM_LAYERS, 0), INVALID, "0 layers (1 to 4096)");
    DAMAGED("4097 layers", U32(AT_NUM_LAYERS, 4097), INVALID, "4097 layers (1 to 4096)");
    DAMAGED("record size 271", U32(AT_RECORD_SIZE, 271), INVALID, "records of 271 bytes");
    DAMAGED("version 1's record size in version 2", U32(AT_RECORD_SIZE, FILE_RECORD_BYTES_V1), INVALID,
            "records of 272 bytes; version 2 has 288");
    DAMAGED("version 1 with version 2's records", U32(AT_VERSION, 1), INVALID,
            "records of 288 bytes; version 1 has 272");
    DAMAGED("records beyond the file", U32(AT_NUM_LAYERS, 100), INVALID, "cannot hold its 100 layer records");
    DAMAGED("options past the end", U64(AT_OPTIONS, size - 2), INVALID, "options");
    CHECK(strstr(lstmrt_last_error(), "outside the file") != NULL);
    DAMAGED("options in the header", U64(AT_OPTIONS, 16), INVALID, "outside the file");
    DAMAGED("options in the records", U64(AT_OPTIONS, record_at(2)), INVALID, "outside the file");
    DAMAGED("options size wraps around", U64(AT_OPTIONS + 8, UINT64_MAX), INVALID, "outside the file");
    DAMAGED("options offset wraps around", (U64(AT_OPTIONS, UINT64_MAX - 3), U64(AT_OPTIONS + 8, 8)), INVALID,
            "outside the file");

    /* the array references (layer 0, an LSTM 2-3: weight_ih of 24 floats) */
    const size_t ih = array_ref_at(0, 0, 0), ih_at = get_u64(base.bytes + ih);
    CHECK(ih_at > options_at && get_u64(base.bytes + ih + 8) == 24);
    DAMAGED("array at the end", U64(ih, size), INVALID, "does not lie within the file's weights");
    DAMAGED("array past the end", U64(ih, size + 64), INVALID, "does not lie within");
    DAMAGED("array across the end", U64(ih, size - 4), INVALID, "does not lie within");
    DAMAGED("array one float past the end", U64(ih, size - 4 * 23), INVALID, "does not lie within");
    DAMAGED("array offset 2", U64(ih, ih_at + 2), INVALID, "offsets a multiple of 4");
    DAMAGED("array in the header", U64(ih, 16), INVALID, "does not lie within");
    DAMAGED("array at 0", U64(ih, 0), INVALID, "does not lie within");
    DAMAGED("array in the records", U64(ih, record_at(1)), INVALID, "does not lie within");
    DAMAGED("array count wraps offset + 4 * count", U64(ih + 8, UINT64_MAX / 4 + 2), INVALID, "does not lie within");
    DAMAGED("array of 2^62 floats", U64(ih + 8, UINT64_C(1) << 62), INVALID, "does not lie within");
    DAMAGED("array offset near 2^64", U64(ih, UINT64_MAX - 3), INVALID, "does not lie within");
    DAMAGED("offset with no floats", U64(array_ref_at(0, 0, 4) + 8, 0), INVALID,
            "layer 0 direction 0: weight_peephole is empty but has offset");

    /* counts against the layer's sizes */
    DAMAGED("weight_ih one float short", U64(ih + 8, 23), INVALID,
            "layer 0 direction 0: weight_ih holds 23 floats; the layer's sizes need 24");
    DAMAGED("weight_hh one float long", U64(array_ref_at(0, 0, 1) + 8, 37), INVALID, "weight_hh holds 37 floats");
    DAMAGED(
        "bias of an activation layer",
        (U64(array_ref_at(2, 0, 2), get_u64(base.bytes + array_ref_at(1, 0, 2))), U64(array_ref_at(2, 0, 2) + 8, 2)),
        INVALID, "layer 2 direction 0: bias_ih holds 2 floats; the layer's sizes need 0");
    DAMAGED("backward weights of a forward layer",
            (U64(array_ref_at(0, 1, 0), ih_at), U64(array_ref_at(0, 1, 0) + 8, 24)), INVALID,
            "layer 0 direction 1: weight_ih holds 24 floats; the layer's sizes need 0");
    DAMAGED("projection of an unprojected lstm", (U64(array_ref_at(0, 0, 5), ih_at), U64(array_ref_at(0, 0, 5) + 8, 9)),
            INVALID, "weight_proj holds 9 floats; the layer's sizes need 0");

    /* fields model_create refuses */
    DAMAGED("kind 99", U32(record_at(0) + AT_FIELD_KIND, 99), INVALID, "layer 0: unknown layer kind 99");
    DAMAGED("hidden_size 0", U32(record_at(0) + AT_FIELD_HIDDEN, 0), INVALID, "layer 0: hidden_size 0");
    DAMAGED("hidden_size -1", U32(record_at(1) + AT_FIELD_HIDDEN, -1), INVALID, "layer 1: hidden_size -1");
    DAMAGED("a broken chain", U32(record_at(1) + AT_FIELD_INPUT, 4), INVALID, "layer 1: input_size 4 but layer 0");
    DAMAGED("weight_hh absent", (U64(array_ref_at(0, 0, 1), 0), U64(array_ref_at(0, 0, 1) + 8, 0)), INVALID,
            "weight_ih and weight_hh are required");
    DAMAGED("NaN cell clip", U32(record_at(0) + AT_FIELD_CELL_CLIP, 0x7FC00000u), INVALID, "cell_clip");

    /* activation_alpha (the lstm's sigmoid/tanh/tanh, the dense layer's linear and the softmax take none) and the
       zero bytes after it */
    DAMAGED("alpha of a linear dense layer", U32(record_at(1) + AT_FIELD_ALPHA, 0x3F000000u), INVALID,
            "layer 1: activation_alpha[0] = 0.5 is not a parameter");
    DAMAGED("NaN alpha of a tanh", U32(record_at(0) + AT_FIELD_ALPHA + 8, 0x7FC00000u), INVALID,
            "layer 0: activation_alpha[2] = ");
    DAMAGED("alpha in a slot an activation layer does not read", U32(record_at(2) + AT_FIELD_ALPHA + 4, 0x3F800000u),
            INVALID, "layer 2: activation_alpha[1] = 1 ");
    DAMAGED("byte 92", f.bytes[record_at(0) + AT_RECORD_ZERO] = 1, INVALID,
            "layer 0: bytes 92 to 95 of its record are not zero");
    DAMAGED("byte 95", f.bytes[record_at(2) + AT_RECORD_ZERO + 3] = 0x80, INVALID,
            "layer 2: bytes 92 to 95 of its record are not zero");
#undef DAMAGED
#undef U32
#undef U64

    /* parameters outside their activation's domain: gru 4-6 + dense celu(0.5) + ... + dense hard_shrink(0.7) */
    spec p;
    make_spec(30, &p);
    const model_file params = model_bytes(p.layers, p.n, OPTIONS);
    snprintf(context, sizeof context, "model file: celu(0)");
    f = copy_file(params);
    put_u32(f.bytes + record_at(1) + AT_FIELD_ALPHA, 0);
    reseal(f.bytes, f.size);
    LOAD_FAILS(f, INVALID, "layer 1: activation_alpha[0] = 0 is not a parameter");
    snprintf(context, sizeof context, "model file: hard_shrink(-0.7)");
    f = copy_file(params);
    f.bytes[record_at(3) + AT_FIELD_ALPHA + 3] ^= 0x80; /* the sign bit */
    reseal(f.bytes, f.size);
    LOAD_FAILS(f, INVALID, "layer 3: activation_alpha[0] = -0.7 is not a parameter");

    /* a prelu's slope: one float short, or absent (count 0 and offset 0, as a writer puts an absent array) */
    spec r;
    start_spec(&r, 79, "file: prelu 3 + dense 3-2");
    push(&r, LSTMRT_LAYER_PRELU, 3, 0);
    push(&r, LSTMRT_LAYER_DENSE, 3, 2);
    add_weights(&r);
    const model_file prelu = model_bytes(r.layers, r.n, OPTIONS);
    const size_t slope = array_ref_at(0, 0, 0);
    CHECK(lstmrt_model_load(prelu.bytes, prelu.size, &m) == LSTMRT_STATUS_OK);
    lstmrt_model_free(m);
    snprintf(context, sizeof context, "model file: prelu slope one float short");
    f = copy_file(prelu);
    put_u64(f.bytes + slope + 8, 2);
    reseal(f.bytes, f.size);
    LOAD_FAILS(f, INVALID, "layer 0 direction 0: weight_ih holds 2 floats; the layer's sizes need 3");
    snprintf(context, sizeof context, "model file: prelu without a slope");
    f = copy_file(prelu);
    put_u64(f.bytes + slope, 0);
    put_u64(f.bytes + slope + 8, 0);
    reseal(f.bytes, f.size);
    LOAD_FAILS(f, INVALID, "layer 0: prelu slope (weight_ih) is NULL");

    snprintf(context, sizeof context, "model file: NULL arguments");
    m = (lstmrt_model_t *)&s;
    EXPECT_FAIL(lstmrt_model_load(NULL, size, &m), INVALID);
    CHECK(m == NULL && strstr(lstmrt_last_error(), "data is NULL") != NULL);
    EXPECT_FAIL(lstmrt_model_load(base.bytes, size, NULL), INVALID);
    arena_reset();
}

/* Loads a damaged file: refused with a status and a message, or accepted as a model that predicts (or refuses its
 * input) and streams cleanly. Returns 1 when it loaded. */
static int load_damaged(const unsigned char *bytes, size_t size)
{
    lstmrt_model_t *m = (lstmrt_model_t *)&m;
    const lstmrt_status s = lstmrt_model_load(bytes, size, &m);
    if (s != LSTMRT_STATUS_OK) {
        CHECK(s == INVALID || s == LSTMRT_STATUS_UNSUPPORTED);
        CHECK(m == NULL && lstmrt_last_error()[0] != '\0');
        return 0;
    }
    if (!CHECK(m != NULL))
        return 0;
    enum { B = 1, T = 4 };
    const int64_t I = lstmrt_model_input_size(m), O = lstmrt_model_output_size(m);
    float *x = malloc((size_t)(B * T * I) * sizeof *x), *y = malloc((size_t)(B * T * O) * sizeof *y);
    if (CHECK(x && y)) {
        for (int64_t i = 0; i < B * T * I; i++)
            x[i] = (float)(i % 2); /* token ids too */
        const lstmrt_status p = lstmrt_model_predict(m, x, B, T, NULL, NULL, y);
        CHECK(p == LSTMRT_STATUS_OK || p == INVALID);
        lstmrt_stream_t *st = NULL;
        const lstmrt_status c = lstmrt_stream_create(m, B, &st);
        CHECK(c == LSTMRT_STATUS_OK || c == LSTMRT_STATUS_UNSUPPORTED);
        if (st) {
            const lstmrt_status r = lstmrt_stream_run(st, x, T, y);
            CHECK(r == LSTMRT_STATUS_OK || r == INVALID);
        }
        lstmrt_stream_free(st);
    }
    free(x);
    free(y);
    lstmrt_model_free(m);
    return 1;
}

/* embedding 4x2 + norm 2 + prelu 2 + bi-gru 2-2 + add + average pool 4 + dense 4-2: the other kinds and fields of a
 * record. */
static void kinds_spec(spec *s)
{
    start_spec(s, 78, "file: embedding, norm, prelu, bi-gru, add, pool, dense");
    push(s, LSTMRT_LAYER_EMBEDDING, 1, 2)->num_embeddings = 4;
    push(s, LSTMRT_LAYER_NORM, 2, 0)->epsilon = 1e-3f;
    push(s, LSTMRT_LAYER_PRELU, 2, 0);
    lstmrt_layer_desc *d = push(s, LSTMRT_LAYER_GRU, 2, 2);
    d->num_directions = 2;
    d->linear_before_reset = 0;
    push(s, LSTMRT_LAYER_ADD, 4, 0)->add_from = 4;
    push(s, LSTMRT_LAYER_GLOBAL_POOL, 4, 0)->pool_mode = LSTMRT_POOL_AVERAGE;
    push(s, LSTMRT_LAYER_DENSE, 4, 2);
    add_weights(s);
}

/* No damage crashes the reader: every byte XOR'd by a few masks (resealed past the checksum, so the deeper checks
 * see it), every truncation, and every truncation whose header is made to agree. */
static void corruption_sweep(const spec *s, model_file f)
{
    unsigned char *damaged = arena_alloc(f.size);
    static const unsigned char masks[] = {0x01, 0x80, 0xFF};
    int loaded = 0, refused = 0;
    for (size_t at = 0; at < f.size; at++)
        for (size_t k = 0; k < sizeof masks; k++) {
            snprintf(context, sizeof context, "%s v%u: byte %zu ^ 0x%02x", s->name, (unsigned)f.version, at, masks[k]);
            memcpy(damaged, f.bytes, f.size);
            damaged[at] ^= masks[k];
            if (at >= 16)
                reseal(damaged, f.size);
            const int ok = load_damaged(damaged, f.size);
            if (at < 16) /* magic, version, checksum */
                CHECK(!ok);
            loaded += ok;
            refused += !ok;
        }
    snprintf(context, sizeof context, "%s: some damage loads (weights), some does not", s->name);
    CHECK(loaded > 0 && refused > 0);

    /* Past the last array only the 64-byte padding is left: a file cut there, its header agreeing, still loads. */
    size_t weights_end = 0;
    for (int l = 0; l < s->n; l++)
        for (int dir = 0; dir < 2; dir++)
            for (int slot = 0; slot < 6; slot++) {
                const size_t ref = array_ref_in(f, l, dir, slot);
                const size_t end = get_u64(f.bytes + ref) + 4 * get_u64(f.bytes + ref + 8);
                weights_end = end > weights_end ? end : weights_end;
            }
    for (size_t n = 0; n < f.size; n++) {
        snprintf(context, sizeof context, "%s v%u: truncated to %zu bytes", s->name, (unsigned)f.version, n);
        lstmrt_model_t *m = (lstmrt_model_t *)&m;
        EXPECT_FAIL(lstmrt_model_load(f.bytes, n, &m), INVALID);
        CHECK(m == NULL);
        if (n < 24)
            continue;
        memcpy(damaged, f.bytes, n);
        put_u64(damaged + AT_FILE_SIZE, n);
        reseal(damaged, n);
        CHECK(load_damaged(damaged, n) == (n >= weights_end));
    }
}

/* Run under ASan/UBSan by `make asan`, and by the valgrind workload (test_cycles.c). */
void test_model_file_corruption(void)
{
    spec s;
    small_spec(&s);
    corruption_sweep(&s, model_bytes(s.layers, s.n, OPTIONS));
    corruption_sweep(&s, model_bytes_v1(s.layers, s.n, OPTIONS));
    kinds_spec(&s);
    corruption_sweep(&s, model_bytes(s.layers, s.n, OPTIONS));
    arena_reset();
}
