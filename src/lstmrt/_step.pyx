# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The per-step hot path of Stream.step.

Measured: a Cython call with this fast-path check costs ~65 ns against ~230 ns for the same pybind11 method, a
large share of a small model's step. So only this call lives here; it calls the C function whose address the
pybind11 binding hands over, and everything else — conversion of unusual inputs, precise error messages — stays
on the binding's slow path. Stream.step is the bound `step` method, not the object's __call__: a def method is
called with METH_FASTCALL, while tp_call builds an argument tuple each time (~20 ns of a 0.14 us step at I=1,
H=16). A long step (the binding's rule: batch x weights >= 1 MB) runs with the GIL released, the stream marked
busy meanwhile exactly as the binding marks it.

A token model (first layer an embedding) also takes integer ids here, without the binding's conversion through
Python (~3 us against ~0.3): a Python or NumPy int, or a native-order, C-contiguous integer array shaped as the
binding takes it. Each id is checked in its own integer type, where it is exact, and written as float32 into a
buffer the stream owns; any id outside [0, V) goes to the binding, which raises the message naming it.
V <= 2^24 (the runtime's dimension limit), so every valid id is exact in float32.

A model with one input feature (a sensor filter) also takes one stream's sample as a Python or NumPy float here,
converted to float32 into a float the step function owns (~0.5 us against ~5.7 through the binding)."""

cimport numpy as cnp
from cpython.float cimport PyFloat_Check
from cpython.long cimport PyLong_AsLongLongAndOverflow, PyLong_CheckExact
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t, uintptr_t

cnp.import_array()

import numpy

cdef object np_integer = numpy.integer
cdef object np_floating = numpy.floating

ctypedef int (*step_fn)(void *stream, const float *x, const uint8_t *active, float *y) noexcept nogil


cdef inline bint exact_f32(object a, int ndim, cnp.npy_intp *shape):
    if not cnp.PyArray_Check(a):
        return False
    cdef cnp.ndarray arr = <cnp.ndarray>a
    if cnp.PyArray_TYPE(arr) != cnp.NPY_FLOAT32 or not cnp.PyArray_IS_C_CONTIGUOUS(arr):
        return False
    if not cnp.PyArray_ISNOTSWAPPED(arr) or not cnp.PyArray_ISALIGNED(arr):  # a '>f4' is NPY_FLOAT32 too
        return False
    if cnp.PyArray_NDIM(arr) != ndim:
        return False
    cdef int i
    for i in range(ndim):
        if cnp.PyArray_DIM(arr, i) != shape[i]:
            return False
    return True


ctypedef fused token_id:
    int8_t
    int16_t
    int32_t
    int64_t
    uint8_t
    uint16_t
    uint32_t
    uint64_t


cdef inline bint ids_as_f32(const token_id *ids, cnp.npy_intp n, int64_t vocabulary, float *dst) noexcept:
    """False, with dst partly written, if any id is outside [0, vocabulary)."""
    cdef cnp.npy_intp i
    for i in range(n):
        if ids[i] < 0 or <uint64_t>ids[i] >= <uint64_t>vocabulary:
            return False
        dst[i] = <float>ids[i]
    return True


cdef bint integer_ids_as_f32(cnp.ndarray a, int64_t vocabulary, float *dst):
    """An integer array's ids into dst; False when its dtype is not one of these or an id is out of range."""
    cdef const void *p = cnp.PyArray_DATA(a)
    cdef cnp.npy_intp n = cnp.PyArray_SIZE(a)
    cdef int t = cnp.PyArray_TYPE(a)
    if t == cnp.NPY_INT64 or (t == cnp.NPY_LONGLONG and sizeof(long long) == 8):
        return ids_as_f32(<const int64_t *>p, n, vocabulary, dst)
    if t == cnp.NPY_INT32 or (t == cnp.NPY_LONG and sizeof(long) == 4):
        return ids_as_f32(<const int32_t *>p, n, vocabulary, dst)
    if t == cnp.NPY_UINT64 or (t == cnp.NPY_ULONGLONG and sizeof(long long) == 8):
        return ids_as_f32(<const uint64_t *>p, n, vocabulary, dst)
    if t == cnp.NPY_UINT32 or (t == cnp.NPY_ULONG and sizeof(long) == 4):
        return ids_as_f32(<const uint32_t *>p, n, vocabulary, dst)
    if t == cnp.NPY_INT16:
        return ids_as_f32(<const int16_t *>p, n, vocabulary, dst)
    if t == cnp.NPY_UINT16:
        return ids_as_f32(<const uint16_t *>p, n, vocabulary, dst)
    if t == cnp.NPY_INT8:
        return ids_as_f32(<const int8_t *>p, n, vocabulary, dst)
    if t == cnp.NPY_UINT8:
        return ids_as_f32(<const uint8_t *>p, n, vocabulary, dst)
    return False


cdef inline bint overlap(cnp.ndarray a, cnp.npy_intp a_bytes, cnp.ndarray b, cnp.npy_intp b_bytes):
    cdef const char *pa = <const char *>cnp.PyArray_DATA(a)
    cdef const char *pb = <const char *>cnp.PyArray_DATA(b)
    return pa < pb + b_bytes and pb < pa + a_bytes


cdef class StepFunction:
    """step(x, out=None) of one native stream."""

    cdef void *stream
    cdef unsigned char *busy  # the binding's busy flag (a C++ bool), read and written with the GIL held
    cdef step_fn fn
    cdef bint long_step       # a step long enough to release the GIL for (the binding decides)
    cdef object slow          # the binding's step: converts, validates and raises precisely
    cdef object native        # keeps the native stream (and so the model) alive
    cdef int ndim
    cdef cnp.npy_intp x_shape[2]
    cdef cnp.npy_intp y_shape[2]
    cdef cnp.npy_intp x_bytes, y_bytes  # of an exact float32 x and out (shapes fixed per stream)
    cdef int64_t vocabulary   # V of a token model's embedding, else 0
    cdef cnp.ndarray ids      # a token model's ids as float32, shaped as x (written only with the GIL held)
    cdef bint takes_sample    # one stream of a float model with one input feature: x may be a scalar
    cdef float sample         # that scalar as float32 (written only with the GIL held, while not busy)

    def __cinit__(self, native, tuple x_shape, tuple y_shape):
        stream, busy, fn, long_step, vocabulary = native._handles()
        self.long_step = long_step
        self.stream = <void *><uintptr_t>stream
        self.busy = <unsigned char *><uintptr_t>busy
        self.fn = <step_fn><uintptr_t>fn
        self.native = native
        self.slow = native.step
        self.ndim = len(x_shape)
        self.x_bytes = self.y_bytes = 4
        for i in range(self.ndim):
            self.x_shape[i] = x_shape[i]
            self.y_shape[i] = y_shape[i]
            self.x_bytes *= x_shape[i]
            self.y_bytes *= y_shape[i]
        self.vocabulary = vocabulary
        if vocabulary:
            self.ids = cnp.PyArray_EMPTY(self.ndim, self.x_shape, cnp.NPY_FLOAT32, 0)
        self.takes_sample = not vocabulary and self.ndim == 1 and self.x_shape[0] == 1

    cdef bint ids_in_buffer(self, object x) except -1:
        """Integer token ids x, all in [0, V), written into self.ids; False (nothing to rely on written) otherwise.
        Taken as the binding takes them: a scalar for one stream, or an array shaped as x with or without its
        trailing feature axis of 1."""
        cdef float *dst = <float *>cnp.PyArray_DATA(self.ids)
        cdef long long v
        cdef int overflow = 0
        cdef int i, nd
        cdef cnp.ndarray a
        if cnp.PyArray_Check(x):
            a = <cnp.ndarray>x
            if not cnp.PyArray_IS_C_CONTIGUOUS(a) or not cnp.PyArray_ISNOTSWAPPED(a) or not cnp.PyArray_ISALIGNED(a):
                return False
            nd = cnp.PyArray_NDIM(a)
            if nd != self.ndim and nd != self.ndim - 1:
                return False
            for i in range(nd):
                if cnp.PyArray_DIM(a, i) != self.x_shape[i]:
                    return False
            return integer_ids_as_f32(a, self.vocabulary, dst)
        if self.ndim != 1 or not (PyLong_CheckExact(x) or isinstance(x, np_integer)):  # bool is neither
            return False
        v = PyLong_AsLongLongAndOverflow(x, &overflow)
        if overflow or v < 0 or v >= self.vocabulary:
            return False
        dst[0] = <float>v
        return True

    def step(self, x, out=None):
        cdef const float *xp
        cdef bint given_f32
        if self.busy[0]:
            return self.slow(x, out)
        given_f32 = exact_f32(x, self.ndim, self.x_shape)
        if given_f32:
            xp = <const float *>cnp.PyArray_DATA(<cnp.ndarray>x)
        elif self.vocabulary and self.ids_in_buffer(x):
            xp = <const float *>cnp.PyArray_DATA(self.ids)  # private: out cannot overlap it
        elif self.takes_sample and (PyFloat_Check(x) or isinstance(x, np_floating)):
            self.sample = <float>x  # as NumPy converts to float32: round to nearest, inf beyond its range
            xp = &self.sample       # private, as ids
        else:
            return self.slow(x, out)
        if out is None:
            out = cnp.PyArray_EMPTY(self.ndim, self.y_shape, cnp.NPY_FLOAT32, 0)
        elif (not exact_f32(out, self.ndim, self.y_shape) or not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>out)
              or (given_f32 and overlap(<cnp.ndarray>x, self.x_bytes, <cnp.ndarray>out, self.y_bytes))):
            return self.slow(x, out)  # the binding copies an x that shares memory with out
        cdef float *yp = <float *>cnp.PyArray_DATA(<cnp.ndarray>out)
        cdef int status
        if self.long_step:  # as the binding does: busy while the GIL is released, so no other call can race
            self.busy[0] = 1
            with nogil:
                status = self.fn(self.stream, xp, NULL, yp)
            self.busy[0] = 0
        else:
            status = self.fn(self.stream, xp, NULL, yp)
        if status != 0:
            return self.slow(x, out)  # a C-side refusal (a float token id): the binding re-checks and raises
        return out
