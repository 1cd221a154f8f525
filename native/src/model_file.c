/* Model files (.lstmrt): the layer descs of a model and its float32 weights in one little-endian file (layout:
 * docs/model-file.md). Files come from anywhere, so every offset, count and size is checked against the buffer, and
 * the descs pass model creation's validation, before a weight is read. Integers are decoded byte by byte (any host
 * order); the weights are used in place, which needs a little-endian host. No errno: some 32-bit multilib setups
 * lack the kernel headers <errno.h> pulls in, and the library builds everywhere without it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define FAIL(...) lstmrt__fail(LSTMRT_STATUS_INVALID_ARGUMENT, __VA_ARGS__)

enum {
    FORMAT_VERSION = 2, /* the version written; version 1 is read too */
    HEADER_BYTES = 64,
    SLOTS = 6,
};
/* A layer record, per version: fields of 4 bytes (version 2 adds activation_alpha and 4 zero bytes to the 20 of
 * version 1), then 2 directions x 6 arrays x (offset, count) of 8 bytes. */
static const uint32_t RECORD_BYTES[FORMAT_VERSION + 1] = {0, 272, 288};
static const uint32_t RECORD_ARRAYS_AT[FORMAT_VERSION + 1] = {0, 80, 96};
static const unsigned char MAGIC[8] = {0x89, 'L', 'S', 'T', 'M', 'R', 'T', '\n'};
static const char *const SLOT_NAMES[SLOTS] = {"weight_ih", "weight_hh",       "bias_ih",
                                              "bias_hh",   "weight_peephole", "weight_proj"};

static uint32_t u32_at(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t u64_at(const unsigned char *p)
{
    return (uint64_t)u32_at(p) | (uint64_t)u32_at(p + 4) << 32;
}

static int32_t i32_at(const unsigned char *p)
{
    const uint32_t u = u32_at(p);
    int32_t v;
    memcpy(&v, &u, sizeof v);
    return v;
}

static float f32_at(const unsigned char *p)
{
    const uint32_t u = u32_at(p);
    float v;
    memcpy(&v, &u, sizeof v);
    return v;
}

/* CRC-32 as zlib computes it (reflected polynomial 0xEDB88320), eight bytes per step (slicing-by-8: a 13 MB file
 * in ~4 ms where a byte at a time takes ~30). Its 8 KB of tables are built per call, on the heap: no shared state,
 * no large stack frame on a small board. */
static lstmrt_status crc32_of(const unsigned char *p, uint64_t n, uint32_t *out)
{
    uint32_t (*t)[256] = malloc(8 * sizeof *t);
    if (!t)
        return lstmrt__fail(LSTMRT_STATUS_OUT_OF_MEMORY, "cannot allocate the checksum tables");
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        t[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++) /* t[k][b]: the CRC of byte b followed by k zero bytes */
        for (int k = 1; k < 8; k++)
            t[k][i] = (t[k - 1][i] >> 8) ^ t[0][t[k - 1][i] & 0xFFu];
    uint32_t crc = 0xFFFFFFFFu;
    for (; n >= 8; p += 8, n -= 8) {
        const uint32_t a = crc ^ u32_at(p), b = u32_at(p + 4);
        crc = t[7][a & 0xFFu] ^ t[6][(a >> 8) & 0xFFu] ^ t[5][(a >> 16) & 0xFFu] ^ t[4][a >> 24] ^ t[3][b & 0xFFu] ^
              t[2][(b >> 8) & 0xFFu] ^ t[1][(b >> 16) & 0xFFu] ^ t[0][b >> 24];
    }
    for (; n > 0; p++, n--)
        crc = t[0][(crc ^ *p) & 0xFFu] ^ (crc >> 8);
    free(t);
    *out = crc ^ 0xFFFFFFFFu;
    return LSTMRT_STATUS_OK;
}

static int little_endian_host(void)
{
    const uint32_t one = 1;
    unsigned char first;
    memcpy(&first, &one, 1);
    return first == 1;
}

/* The header: magic, version, size, checksum (when `whole`: the call that reads the layers), layer count and record
 * size, options. */
static lstmrt_status read_header(const unsigned char *p, size_t size, int whole, lstmrt_file_info *info)
{
    if (size < sizeof MAGIC || memcmp(p, MAGIC, sizeof MAGIC) != 0)
        return FAIL("not an lstmrt model file (no lstmrt header)");
    if (size < HEADER_BYTES)
        return FAIL("model file of %zu bytes: truncated (its header alone has %d)", size, HEADER_BYTES);
    const uint32_t version = u32_at(p + 8);
    if (version < 1 || version > FORMAT_VERSION)
        return lstmrt__fail(LSTMRT_STATUS_UNSUPPORTED,
                            "model file format version %u; this lstmrt reads versions 1 to %d (a newer lstmrt wrote "
                            "it?)",
                            (unsigned)version, FORMAT_VERSION);
    const uint64_t declared = u64_at(p + 16);
    if (declared != (uint64_t)size)
        return FAIL("model file of %llu bytes, but its header says %llu: %s", (unsigned long long)size,
                    (unsigned long long)declared, declared > (uint64_t)size ? "truncated" : "bytes after its end");
    if (whole) {
        uint32_t crc = 0;
        const lstmrt_status s = crc32_of(p + 16, (uint64_t)size - 16, &crc);
        if (s != LSTMRT_STATUS_OK)
            return s;
        if (crc != u32_at(p + 12))
            return FAIL("model file damaged: checksum %08x, header says %08x", (unsigned)crc, (unsigned)u32_at(p + 12));
    }
    const uint32_t layers = u32_at(p + 24), record = u32_at(p + 28);
    if (layers < 1 || layers > LSTMRT_MAX_LAYERS)
        return FAIL("model file has %u layers (1 to %d)", (unsigned)layers, LSTMRT_MAX_LAYERS);
    if (record != RECORD_BYTES[version])
        return FAIL("model file layer records of %u bytes; version %u has %u", (unsigned)record, (unsigned)version,
                    (unsigned)RECORD_BYTES[version]);
    const uint64_t records_end = HEADER_BYTES + (uint64_t)layers * record;
    if (records_end > (uint64_t)size)
        return FAIL("model file of %llu bytes cannot hold its %u layer records", (unsigned long long)size,
                    (unsigned)layers);
    const uint64_t options_at = u64_at(p + 32), options_bytes = u64_at(p + 40);
    if (options_bytes && (options_at < records_end || options_at > size || options_bytes > size - options_at))
        return FAIL("model file options (%llu bytes at %llu) lie outside the file", (unsigned long long)options_bytes,
                    (unsigned long long)options_at);
    info->num_layers = (int32_t)layers;
    info->options = options_bytes ? (const char *)p + options_at : "";
    info->options_bytes = (size_t)options_bytes;
    return LSTMRT_STATUS_OK;
}

static void read_fields(const unsigned char *r, uint32_t version, lstmrt_layer_desc *d)
{
    memset(d, 0, sizeof *d);
    d->kind = (lstmrt_layer_kind)i32_at(r);
    d->input_size = i32_at(r + 4);
    d->hidden_size = i32_at(r + 8);
    d->proj_size = i32_at(r + 12);
    d->num_embeddings = i32_at(r + 16);
    d->num_directions = i32_at(r + 20);
    d->merge_mode = (lstmrt_merge_mode)i32_at(r + 24);
    for (int a = 0; a < 3; a++)
        d->activations[a] = (lstmrt_activation)i32_at(r + 28 + 4 * a);
    d->cell_clip = f32_at(r + 40);
    d->linear_before_reset = i32_at(r + 44);
    d->hold_masked_output = i32_at(r + 48);
    d->go_backwards = i32_at(r + 52);
    d->final_only = i32_at(r + 56);
    d->epsilon = f32_at(r + 60);
    d->norm_mode = (lstmrt_norm_mode)i32_at(r + 64);
    d->pool_mode = (lstmrt_pool_mode)i32_at(r + 68);
    d->add_from = i32_at(r + 72);
    d->add_offset = i32_at(r + 76);
    for (int a = 0; a < 3 && version >= 2; a++)
        d->activation_alpha[a] = f32_at(r + 80 + 4 * a);
}

static const float **slot_of(lstmrt_direction_weights *w, int slot)
{
    const float **slots[SLOTS] = {&w->weight_ih, &w->weight_hh,       &w->bias_ih,
                                  &w->bias_hh,   &w->weight_peephole, &w->weight_proj};
    return slots[slot];
}

/* Points the desc's weights into the file after checking that each array lies inside it, after the records. */
static lstmrt_status read_arrays(const unsigned char *p, uint64_t size, uint64_t data_at, const unsigned char *refs,
                                 lstmrt_layer_desc *d, int32_t index)
{
    for (int dir = 0; dir < 2; dir++)
        for (int slot = 0; slot < SLOTS; slot++) {
            const unsigned char *ref = refs + 16 * (dir * SLOTS + slot);
            const uint64_t at = u64_at(ref), count = u64_at(ref + 8);
            if (count == 0) {
                if (at != 0)
                    return FAIL("layer %d direction %d: %s is empty but has offset %llu", index, dir, SLOT_NAMES[slot],
                                (unsigned long long)at);
                continue;
            }
            if (at % 4 != 0 || at < data_at || at > size || count > (size - at) / 4)
                return FAIL("layer %d direction %d: %s (%llu floats at offset %llu) does not lie within the file's "
                            "weights (bytes %llu to %llu, offsets a multiple of 4)",
                            index, dir, SLOT_NAMES[slot], (unsigned long long)count, (unsigned long long)at,
                            (unsigned long long)data_at, (unsigned long long)size);
            *slot_of(&d->weights[dir], slot) = (const float *)(const void *)(p + at);
        }
    return LSTMRT_STATUS_OK;
}

/* Each array the file gives has exactly the floats the desc's (validated) sizes make the runtime read. */
static lstmrt_status check_counts(const unsigned char *refs, const lstmrt_layer_desc *d, int32_t index)
{
    for (int dir = 0; dir < 2; dir++)
        for (int slot = 0; slot < SLOTS; slot++) {
            const uint64_t count = u64_at(refs + 16 * (dir * SLOTS + slot) + 8);
            const int64_t need = lstmrt_layer_weight_floats(d, dir, slot);
            if (count != 0 && (need < 0 || count != (uint64_t)need))
                return FAIL("layer %d direction %d: %s holds %llu floats; the layer's sizes need %lld", index, dir,
                            SLOT_NAMES[slot], (unsigned long long)count, (long long)need);
        }
    return LSTMRT_STATUS_OK;
}

lstmrt_status lstmrt_file_read(const void *data, size_t size, lstmrt_layer_desc *layers, int32_t capacity,
                               lstmrt_file_info *info)
{
    lstmrt__clear_error();
    if (!data || !info)
        return FAIL("data and info must not be NULL");
    const unsigned char *p = data;
    lstmrt_status s = read_header(p, size, layers != NULL, info);
    if (s != LSTMRT_STATUS_OK || !layers)
        return s;
    if (capacity < info->num_layers)
        return FAIL("the file has %d layers; capacity is %d", info->num_layers, capacity);
    if (!little_endian_host())
        return lstmrt__fail(LSTMRT_STATUS_UNSUPPORTED, "model files hold little-endian floats; this host is not");
    if ((uintptr_t)p % 4 != 0) /* the weights are read in place as floats */
        return FAIL("data must be 4-byte aligned (lstmrt_model_load copies unaligned data)");
    const uint32_t version = u32_at(p + 8), record_bytes = RECORD_BYTES[version];
    const uint64_t data_at = HEADER_BYTES + (uint64_t)info->num_layers * record_bytes;
    for (int32_t l = 0; l < info->num_layers; l++) {
        const unsigned char *record = p + HEADER_BYTES + (size_t)l * record_bytes;
        if (version >= 2 && u32_at(record + 92) != 0)
            return FAIL("layer %d: bytes 92 to 95 of its record are not zero", l);
        read_fields(record, version, &layers[l]);
        if ((s = read_arrays(p, size, data_at, record + RECORD_ARRAYS_AT[version], &layers[l], l)) != LSTMRT_STATUS_OK)
            return s;
    }
    if ((s = lstmrt__validate_layers(layers, info->num_layers)) != LSTMRT_STATUS_OK)
        return s;
    for (int32_t l = 0; l < info->num_layers; l++) {
        const unsigned char *refs = p + HEADER_BYTES + (size_t)l * record_bytes + RECORD_ARRAYS_AT[version];
        if ((s = check_counts(refs, &layers[l], l)) != LSTMRT_STATUS_OK)
            return s;
    }
    return LSTMRT_STATUS_OK;
}

lstmrt_status lstmrt_model_load(const void *data, size_t size, lstmrt_model_t **out)
{
    lstmrt__clear_error();
    if (!out)
        return FAIL("out is NULL");
    *out = NULL;
    if (!data)
        return FAIL("data is NULL");
    if ((uintptr_t)data % 4 != 0) { /* a byte array compiled into a program may sit anywhere: read an aligned copy */
        void *copy = malloc(size ? size : 1);
        if (!copy)
            return lstmrt__fail(LSTMRT_STATUS_OUT_OF_MEMORY, "cannot copy a model file of %zu bytes", size);
        memcpy(copy, data, size);
        lstmrt_status s = lstmrt_model_load(copy, size, out);
        free(copy);
        return s;
    }
    lstmrt_file_info info;
    lstmrt_status s = lstmrt_file_read(data, size, NULL, 0, &info);
    if (s != LSTMRT_STATUS_OK)
        return s;
    lstmrt_layer_desc *layers = malloc((size_t)info.num_layers * sizeof *layers);
    if (!layers)
        return lstmrt__fail(LSTMRT_STATUS_OUT_OF_MEMORY, "cannot allocate %d layer descs", info.num_layers);
    s = lstmrt_file_read(data, size, layers, info.num_layers, &info);
    if (s == LSTMRT_STATUS_OK)
        s = lstmrt_model_create(layers, info.num_layers, out);
    free(layers);
    return s;
}

lstmrt_status lstmrt_model_load_file(const char *path, lstmrt_model_t **out)
{
    lstmrt__clear_error();
    if (!out)
        return FAIL("out is NULL");
    *out = NULL;
    if (!path)
        return FAIL("path is NULL");
    FILE *f = fopen(path, "rb");
    if (!f)
        return FAIL("cannot open %s (missing or not readable)", path);
    if (fgetc(f) == EOF && ferror(f)) { /* a directory opens on POSIX (then ftell says LONG_MAX): reading fails */
        lstmrt_status s = FAIL("cannot read %s (a directory?)", path);
        fclose(f);
        return s;
    }
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        size = ftell(f);
    void *data = NULL;
    lstmrt_status s = LSTMRT_STATUS_OK;
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0)
        s = FAIL("cannot read %s: not a regular file", path);
    else if (!(data = malloc(size ? (size_t)size : 1)))
        s = lstmrt__fail(LSTMRT_STATUS_OUT_OF_MEMORY, "cannot allocate %ld bytes to read %s", size, path);
    else if (fread(data, 1, (size_t)size, f) != (size_t)size)
        s = FAIL("cannot read %s: %s", path, ferror(f) ? "read error" : "shorter than its size");
    fclose(f);
    if (s == LSTMRT_STATUS_OK)
        s = lstmrt_model_load(data, (size_t)size, out);
    free(data);
    return s;
}
