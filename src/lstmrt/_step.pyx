# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The per-step hot path of Stream.step.

Measured: a Cython call with this fast-path check costs ~65 ns against ~230 ns for the same pybind11 method, a
large share of a small model's step. So only this call lives here; it calls the C function whose address the
pybind11 binding hands over, and everything else — conversion of unusual inputs, precise error messages — stays
on the binding's slow path. Stream.step is the bound `step` method, not the object's __call__: a def method is
called with METH_FASTCALL, while tp_call builds an argument tuple each time (~20 ns of a 0.14 us step at I=1,
H=16). A long step (the binding's rule: batch x weights >= 1 MB) runs with the GIL released, the stream marked
busy meanwhile exactly as the binding marks it."""

cimport numpy as cnp
from libc.stdint cimport uint8_t, uintptr_t

cnp.import_array()

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

    def __cinit__(self, native, tuple x_shape, tuple y_shape):
        stream, busy, fn, long_step = native._handles()
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

    def step(self, x, out=None):
        if self.busy[0] or not exact_f32(x, self.ndim, self.x_shape):
            return self.slow(x, out)
        if out is None:
            out = cnp.PyArray_EMPTY(self.ndim, self.y_shape, cnp.NPY_FLOAT32, 0)
        elif (not exact_f32(out, self.ndim, self.y_shape) or not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>out)
              or overlap(<cnp.ndarray>x, self.x_bytes, <cnp.ndarray>out, self.y_bytes)):
            return self.slow(x, out)  # the binding copies an x that shares memory with out
        cdef const float *xp = <const float *>cnp.PyArray_DATA(<cnp.ndarray>x)
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
            return self.slow(x, out)  # a C-side refusal (token id): the binding re-checks and raises
        return out
