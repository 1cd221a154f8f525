/* The tests' own writer of model files (.lstmrt, docs/model-file.md): written from the spec, not from the library's
 * reader or the Python writer, so a round trip checks all three against the document. Also the little-endian field
 * access and the CRC the corruption tests need to edit a file and still reach the checks behind its checksum. */
#ifndef LSTMRT_TESTS_MODEL_BYTES_H
#define LSTMRT_TESTS_MODEL_BYTES_H

#include "harness.h"

/* Offsets of docs/model-file.md, version 2 (the one model_bytes writes; _V1: version 1's differences). */
enum {
    FILE_VERSION = 2,
    FILE_HEADER_BYTES = 64,
    FILE_RECORD_BYTES = 288,
    FILE_RECORD_BYTES_V1 = 272,
    FILE_ALIGN = 64,          /* the writer starts each weight array on a 64-byte boundary */
    AT_VERSION = 8,           /* u32 */
    AT_CRC = 12,              /* u32, of bytes 16 to the end */
    AT_FILE_SIZE = 16,        /* u64 */
    AT_NUM_LAYERS = 24,       /* u32 */
    AT_RECORD_SIZE = 28,      /* u32 */
    AT_OPTIONS = 32,          /* u64 offset, then u64 size */
    AT_FIELD_KIND = 0,        /* in a record: i32 */
    AT_FIELD_INPUT = 4,       /* in a record: i32 */
    AT_FIELD_HIDDEN = 8,      /* in a record: i32 */
    AT_FIELD_CELL_CLIP = 40,  /* in a record: f32 */
    AT_FIELD_ALPHA = 80,      /* in a record: f32 x 3 (version 2) */
    AT_RECORD_ZERO = 92,      /* in a record: 4 zero bytes (version 2) */
    AT_RECORD_ARRAYS = 96,    /* in a record: 2 directions x 6 slots x (u64 offset, u64 floats) */
    AT_RECORD_ARRAYS_V1 = 80, /* version 1 has no activation_alpha and zero bytes before them */
};

/* A model file in the arena: its bytes (calloc-aligned, so 4-byte aligned), size and format version. */
typedef struct model_file {
    unsigned char *bytes;
    size_t size;
    uint32_t version;
} model_file;

/* The file of these descs: every non-NULL weight array with the floats its layer's sizes give it, options verbatim
 * (none when NULL or empty), the CRC set. */
model_file model_bytes(const lstmrt_layer_desc *layers, int num_layers, const char *options);
/* The same as version 1, as an lstmrt before activation parameters wrote it: the records have no activation_alpha
 * (the descs' are not written: the tests give this writer descs whose alphas are 0). */
model_file model_bytes_v1(const lstmrt_layer_desc *layers, int num_layers, const char *options);

/* Floats array `slot` (the order of lstmrt_direction_weights) holds for a valid desc when given: an independent
 * statement of docs/math.md's shapes, to check lstmrt_layer_weight_floats against. */
int64_t desc_floats(const lstmrt_layer_desc *d, int dir, int slot);

/* Where layer `layer`'s record, and its array reference (offset; floats 8 bytes later), start in a version 2 file;
 * array_ref_in: in file f, of either version. */
size_t record_at(int layer);
size_t array_ref_at(int layer, int dir, int slot);
size_t array_ref_in(model_file f, int layer, int dir, int slot);

uint32_t get_u32(const unsigned char *p);
uint64_t get_u64(const unsigned char *p);
void put_u32(unsigned char *p, uint32_t v);
void put_u64(unsigned char *p, uint64_t v);
uint32_t zlib_crc32(const unsigned char *p, size_t n);
/* Recomputes the CRC after an edit (a file under 16 bytes has none), so a reader gets past the checksum to the
 * check under test. */
void reseal(unsigned char *bytes, size_t size);

#endif
