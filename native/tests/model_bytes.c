/* The tests' model file writer (model_bytes.h), from docs/model-file.md alone. */
#include "model_bytes.h"
#include "spec.h"

static const unsigned char MAGIC[8] = {0x89, 'L', 'S', 'T', 'M', 'R', 'T', '\n'};

uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
uint64_t get_u64(const unsigned char *p)
{
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}
void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
void put_u64(unsigned char *p, uint64_t v)
{
    put_u32(p, (uint32_t)v);
    put_u32(p + 4, (uint32_t)(v >> 32));
}
static void put_f32(unsigned char *p, float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    put_u32(p, u);
}

/* Bit by bit, no table: slower than the library's, and a different enough implementation to catch a wrong one. */
uint32_t zlib_crc32(const unsigned char *p, size_t n)
{
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

void reseal(unsigned char *bytes, size_t size)
{
    if (size >= 16) /* shorter: no checksum field to set */
        put_u32(bytes + AT_CRC, zlib_crc32(bytes + 16, size - 16));
}

/* Version 1's records lack activation_alpha and the 4 zero bytes: 16 bytes shorter, the array references 16 earlier. */
static size_t record_bytes(uint32_t version)
{
    return version == 1 ? FILE_RECORD_BYTES_V1 : FILE_RECORD_BYTES;
}
static size_t record_in(uint32_t version, int layer)
{
    return FILE_HEADER_BYTES + (size_t)layer * record_bytes(version);
}
static size_t ref_in(uint32_t version, int layer, int dir, int slot)
{
    const size_t arrays = version == 1 ? AT_RECORD_ARRAYS_V1 : AT_RECORD_ARRAYS;
    return record_in(version, layer) + arrays + 16 * (size_t)(dir * 6 + slot);
}

size_t record_at(int layer)
{
    return record_in(FILE_VERSION, layer);
}
size_t array_ref_at(int layer, int dir, int slot)
{
    return ref_in(FILE_VERSION, layer, dir, slot);
}
size_t array_ref_in(model_file f, int layer, int dir, int slot)
{
    return ref_in(f.version, layer, dir, slot);
}

int64_t desc_floats(const lstmrt_layer_desc *d, int dir, int slot)
{
    const int64_t I = d->input_size, H = d->hidden_size, P = d->proj_size;
    if (dir >= d->num_directions)
        return 0;
    switch (d->kind) {
    case LSTMRT_LAYER_LSTM:
    case LSTMRT_LAYER_GRU:
    case LSTMRT_LAYER_RNN: {
        const int64_t G = gate_count(d->kind) * H, lstm = d->kind == LSTMRT_LAYER_LSTM;
        const int64_t floats[6] = {G * I, G * (P > 0 ? P : H), G, G, lstm ? 3 * H : 0, lstm ? P * H : 0};
        return floats[slot];
    }
    case LSTMRT_LAYER_DENSE: return slot == 0 ? H * I : slot == 2 ? H : 0;
    case LSTMRT_LAYER_AFFINE: return slot == 0 || slot == 2 ? I : 0;
    case LSTMRT_LAYER_PRELU: return slot == 0 ? I : 0;
    case LSTMRT_LAYER_NORM: return slot == 0 || (slot == 2 && d->norm_mode == LSTMRT_NORM_LAYER) ? I : 0;
    case LSTMRT_LAYER_EMBEDDING: return slot == 0 ? (int64_t)d->num_embeddings * H : 0;
    default: return 0;
    }
}

static const float *slot_array(const lstmrt_direction_weights *w, int slot)
{
    const float *arrays[6] = {w->weight_ih, w->weight_hh, w->bias_ih, w->bias_hh, w->weight_peephole, w->weight_proj};
    return arrays[slot];
}

static size_t aligned(size_t n)
{
    return (n + FILE_ALIGN - 1) / FILE_ALIGN * FILE_ALIGN;
}

static void put_fields(unsigned char *r, const lstmrt_layer_desc *d, uint32_t version)
{
    const int32_t ints[10] = {(int32_t)d->kind,  d->input_size,     d->hidden_size,         d->proj_size,
                              d->num_embeddings, d->num_directions, (int32_t)d->merge_mode, d->activations[0],
                              d->activations[1], d->activations[2]};
    for (int i = 0; i < 10; i++)
        put_u32(r + 4 * i, (uint32_t)ints[i]);
    put_f32(r + 40, d->cell_clip);
    put_u32(r + 44, (uint32_t)d->linear_before_reset);
    put_u32(r + 48, (uint32_t)d->hold_masked_output);
    put_u32(r + 52, (uint32_t)d->go_backwards);
    put_u32(r + 56, (uint32_t)d->final_only);
    put_f32(r + 60, d->epsilon);
    put_u32(r + 64, (uint32_t)d->norm_mode);
    put_u32(r + 68, (uint32_t)d->pool_mode);
    put_u32(r + 72, (uint32_t)d->add_from);
    put_u32(r + 76, (uint32_t)d->add_offset);
    if (version >= 2) /* bytes 92 to 95 stay zero */
        for (int a = 0; a < 3; a++)
            put_f32(r + AT_FIELD_ALPHA + 4 * a, d->activation_alpha[a]);
}

static model_file write_model(uint32_t version, const lstmrt_layer_desc *layers, int num_layers, const char *options)
{
    const size_t options_bytes = options ? strlen(options) : 0, options_at = record_in(version, num_layers);
    /* First pass: the size, each array at the next 64-byte boundary after the options (the file ends on one too). */
    size_t size = aligned(options_at + options_bytes);
    for (int l = 0; l < num_layers; l++)
        for (int dir = 0; dir < 2; dir++)
            for (int slot = 0; slot < 6; slot++)
                if (slot_array(&layers[l].weights[dir], slot))
                    size = aligned(size + 4 * (size_t)desc_floats(&layers[l], dir, slot));
    model_file f = {arena_alloc(size), size, version};
    unsigned char *p = f.bytes;
    memcpy(p, MAGIC, sizeof MAGIC);
    put_u32(p + AT_VERSION, version);
    put_u64(p + AT_FILE_SIZE, size);
    put_u32(p + AT_NUM_LAYERS, (uint32_t)num_layers);
    put_u32(p + AT_RECORD_SIZE, (uint32_t)record_bytes(version));
    put_u64(p + AT_OPTIONS, options_bytes ? options_at : 0);
    put_u64(p + AT_OPTIONS + 8, options_bytes);
    if (options_bytes)
        memcpy(p + options_at, options, options_bytes);
    size_t at = aligned(options_at + options_bytes);
    for (int l = 0; l < num_layers; l++) {
        put_fields(p + record_in(version, l), &layers[l], version);
        for (int dir = 0; dir < 2; dir++)
            for (int slot = 0; slot < 6; slot++) {
                const float *w = slot_array(&layers[l].weights[dir], slot);
                if (!w)
                    continue; /* (0, 0): absent */
                const int64_t n = desc_floats(&layers[l], dir, slot);
                put_u64(p + ref_in(version, l, dir, slot), at);
                put_u64(p + ref_in(version, l, dir, slot) + 8, (uint64_t)n);
                for (int64_t i = 0; i < n; i++)
                    put_f32(p + at + 4 * i, w[i]);
                at = aligned(at + 4 * (size_t)n);
            }
    }
    reseal(p, size);
    return f;
}

model_file model_bytes(const lstmrt_layer_desc *layers, int num_layers, const char *options)
{
    return write_model(FILE_VERSION, layers, num_layers, options);
}
model_file model_bytes_v1(const lstmrt_layer_desc *layers, int num_layers, const char *options)
{
    return write_model(1, layers, num_layers, options);
}
