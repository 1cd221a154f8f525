// The binding: arrays to pointers, status codes to exceptions, GIL policy. No math, no policy: validation with
// friendly messages and conversion of unusual inputs live in Python (lstmrt/_arrays.py), called only when the
// input is not already a float32 C-contiguous array of the exact shape.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

extern "C" {
#include "lstmrt.h"
}

namespace py = pybind11;
using f32array = py::array_t<float, py::array::c_style>;

namespace
{

// Calls this long run with the GIL released; shorter ones are faster without the release/acquire pair (~0.2 us).
// A step's work is its weights read once per row: 1 MB of them is ~10 us on a current core.
constexpr int64_t kReleaseGilFloats = 4096;
constexpr double kReleaseGilStepBytes = 1 << 20;

[[noreturn]] void raise_status(lstmrt_status s)
{
    std::string msg = lstmrt_last_error();
    if (msg.empty())
        msg = lstmrt_status_string(s);
    if (s == LSTMRT_STATUS_OUT_OF_MEMORY)
        throw std::bad_alloc();
    if (s == LSTMRT_STATUS_UNSUPPORTED)
        throw py::type_error(msg); // replaced by a precise Python error where the caller can know better
    throw py::value_error(msg);
}

void check(lstmrt_status s)
{
    if (s != LSTMRT_STATUS_OK)
        raise_status(s);
}

// Fast path test: already a native-order, aligned float32 C-contiguous array of exactly this shape.
bool exact_f32(const py::handle &obj, const std::vector<py::ssize_t> &shape)
{
    if (!f32array::check_(obj)) // also false for a byte-swapped float32
        return false;
    auto a = py::reinterpret_borrow<py::array>(obj);
    constexpr int kAligned = 0x0100; // NPY_ARRAY_ALIGNED
    if (!(a.flags() & py::array::c_style) || !(a.flags() & kAligned) || a.ndim() != (py::ssize_t)shape.size())
        return false;
    for (size_t i = 0; i < shape.size(); i++)
        if (a.shape(i) != shape[i])
            return false;
    return true;
}

// Slow path: lstmrt._arrays.coerce_input raises a precise error or returns a converted array.
f32array coerce_input(const py::handle &obj, const std::vector<py::ssize_t> &shape, const char *name, bool tokens)
{
    py::tuple t(shape.size());
    for (size_t i = 0; i < shape.size(); i++)
        t[i] = shape[i];
    return py::module_::import("lstmrt._arrays").attr("coerce_input")(obj, t, name, tokens).cast<f32array>();
}

f32array input_array(const py::handle &obj, const std::vector<py::ssize_t> &shape, const char *name, bool tokens)
{
    if (exact_f32(obj, shape))
        return py::reinterpret_borrow<f32array>(obj);
    return coerce_input(obj, shape, name, tokens);
}

// After the C runtime refused token ids: it saw them as float32 (2^40 given as an int64 arrives rounded) and
// names a position in its own buffer, so lstmrt._arrays.token_problem names the id as the caller gave it and
// where it is in the caller's array. Only on this error path: a valid step pays nothing.
void refuse_tokens(const py::handle &ids, const py::tuple &axes, int32_t num_embeddings)
{
    py::object problem = py::module_::import("lstmrt._arrays").attr("token_problem")(ids, axes, num_embeddings);
    if (!problem.is_none())
        throw py::value_error(problem.cast<std::string>());
}

f32array output_array(const py::object &out, const std::vector<py::ssize_t> &shape)
{
    if (out.is_none())
        return f32array(shape);
    if (!exact_f32(out, shape)) {
        py::tuple t(shape.size());
        for (size_t i = 0; i < shape.size(); i++)
            t[i] = shape[i];
        py::module_::import("lstmrt._arrays").attr("reject_output")(out, t);
    }
    auto a = py::reinterpret_borrow<f32array>(out);
    if (!a.writeable())
        throw py::value_error("out is read-only");
    return a;
}

// out may be x itself, or share memory with it (step(x, out=x)); a layer that writes y while it still reads x
// (a Dense head alone, say) would then read its own outputs. Such an x is copied first, as NumPy's ufuncs do.
f32array unaliased_input(f32array x, const f32array &y)
{
    const char *xb = reinterpret_cast<const char *>(x.data()), *yb = reinterpret_cast<const char *>(y.data());
    if (xb >= yb + y.nbytes() || yb >= xb + x.nbytes())
        return x;
    f32array copy(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
    std::memcpy(copy.mutable_data(), x.data(), (size_t)x.nbytes());
    return copy;
}

struct Model {
    lstmrt_model_t *ptr = nullptr;
    bool tokens = false; // first layer is an embedding: integer inputs are token ids
    int32_t num_embeddings = 0;
    explicit Model(const py::list &layers);
    ~Model() { lstmrt_model_free(ptr); }
    Model(const Model &) = delete;
    Model &operator=(const Model &) = delete;
};

// One field of a layer dict: KeyError when missing (pybind11's), TypeError naming the field when it does not
// convert (pybind11 would raise RuntimeError "Unable to cast").
std::string type_name(const py::handle &value)
{
    return py::str(py::type::of(value).attr("__name__"));
}

// Casting a Python value: pybind11 reports a failure as cast_error (RuntimeError in Python) or, when a Python
// conversion ran (a list to an array), as that conversion's TypeError/ValueError. Both become `message`.
template <typename T> T cast_or_type_error(const py::object &value, const std::string &message)
{
    try {
        return value.cast<T>();
    } catch (const py::cast_error &) {
        throw py::type_error(message + " (got " + type_name(value) + ")");
    } catch (py::error_already_set &e) {
        if (!e.matches(PyExc_TypeError) && !e.matches(PyExc_ValueError))
            throw;
        throw py::type_error(message + " (got " + type_name(value) + ": " + e.what() + ")");
    }
}

template <typename T> T field(const py::dict &d, const char *key, size_t layer)
{
    return cast_or_type_error<T>(d[key], "layer " + std::to_string(layer) + ": field '" + key + "' has the wrong type");
}

// The weight arrays of a direction, in the order of lstmrt_direction_weights (lstmrt_layer_weight_floats' slots).
const char *const kWeights[] = {"weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_peephole", "weight_proj"};

// The weight `key` of direction dict `w` as a float32 C-contiguous array (kept alive in `keep`), its size checked
// against what the desc makes the C runtime read. NULL when absent.
const float *weight_ptr(const py::dict &w, const char *key, const lstmrt_layer_desc &L, int32_t direction, int32_t slot,
                        size_t layer, std::vector<f32array> &keep)
{
    if (!w.contains(key) || w[key].is_none())
        return nullptr;
    f32array arr = cast_or_type_error<f32array>(w[key], "layer " + std::to_string(layer) + ": " + key +
                                                            " must be a float32 array");
    // the C API takes bare pointers: this is the last place that knows the array's length
    const int64_t need = lstmrt_layer_weight_floats(&L, direction, slot);
    if (need > 0 && arr.size() != need)
        throw py::value_error("layer " + std::to_string(layer) + ": " + key + " has " + std::to_string(arr.size()) +
                              " elements but kind " + std::to_string((int)L.kind) + " with input_size " +
                              std::to_string(L.input_size) + ", hidden_size " + std::to_string(L.hidden_size) +
                              " needs " + std::to_string(need));
    keep.push_back(arr);
    return keep.back().data();
}

// Layers arrive as dicts mirroring lstmrt_layer_desc (built by lstmrt/layers.py). Every field is converted with
// a precise TypeError, and every weight array's length is checked against the sizes before C reads it.
Model::Model(const py::list &layers)
{
    std::vector<f32array> keep; // the arrays stay alive until lstmrt_model_create has copied them
    std::vector<lstmrt_layer_desc> descs;
    for (auto item : layers) {
        const size_t i = descs.size();
        if (!py::isinstance<py::dict>(item))
            throw py::type_error("layer " + std::to_string(i) + ": expected a dict");
        auto d = py::reinterpret_borrow<py::dict>(item);
        lstmrt_layer_desc L;
        std::memset(&L, 0, sizeof L);
        L.kind = (lstmrt_layer_kind)field<int>(d, "kind", i);
        L.input_size = field<int32_t>(d, "input_size", i);
        L.hidden_size = field<int32_t>(d, "hidden_size", i);
        L.proj_size = field<int32_t>(d, "proj_size", i);
        L.num_embeddings = field<int32_t>(d, "num_embeddings", i);
        L.num_directions = field<int32_t>(d, "num_directions", i);
        L.merge_mode = (lstmrt_merge_mode)field<int>(d, "merge_mode", i);
        auto acts = field<std::vector<int>>(d, "activations", i);
        for (size_t a = 0; a < acts.size() && a < 3; a++)
            L.activations[a] = (lstmrt_activation)acts[a];
        auto alphas = field<std::vector<float>>(d, "activation_alpha", i);
        for (size_t a = 0; a < alphas.size() && a < 3; a++)
            L.activation_alpha[a] = alphas[a];
        L.cell_clip = field<float>(d, "cell_clip", i);
        L.linear_before_reset = field<int32_t>(d, "linear_before_reset", i);
        L.hold_masked_output = field<int32_t>(d, "hold_masked_output", i);
        L.go_backwards = field<int32_t>(d, "go_backwards", i);
        L.final_only = field<int32_t>(d, "final_only", i);
        L.epsilon = field<float>(d, "epsilon", i);
        L.norm_mode = (lstmrt_norm_mode)field<int>(d, "norm_mode", i);
        L.pool_mode = (lstmrt_pool_mode)field<int>(d, "pool_mode", i);
        L.add_from = field<int32_t>(d, "add_from", i);
        L.add_offset = field<int32_t>(d, "add_offset", i);
        auto dirs = field<py::list>(d, "weights", i);
        for (size_t k = 0; k < dirs.size() && k < 2; k++) {
            if (!py::isinstance<py::dict>(dirs[k]))
                throw py::type_error("layer " + std::to_string(i) + ": weights must be a list of dicts");
            auto w = py::reinterpret_borrow<py::dict>(dirs[k]);
            const float **slots[] = {&L.weights[k].weight_ih, &L.weights[k].weight_hh,       &L.weights[k].bias_ih,
                                     &L.weights[k].bias_hh,   &L.weights[k].weight_peephole, &L.weights[k].weight_proj};
            for (size_t j = 0; j < 6; j++)
                *slots[j] = weight_ptr(w, kWeights[j], L, (int32_t)k, (int32_t)j, i, keep);
        }
        descs.push_back(L);
    }
    if (descs.empty())
        throw py::value_error("a model needs at least one layer");
    check(lstmrt_model_create(descs.data(), (int32_t)descs.size(), &ptr));
    tokens = descs[0].kind == LSTMRT_LAYER_EMBEDDING;
    num_embeddings = descs[0].num_embeddings;
}

// A model file's layers as the dicts Model takes (each weight a flat float32 copy), and its options (JSON bytes for
// the Python package). lstmrt_file_read checks the whole file; its weights are read in place, so a buffer that is
// not 4-byte aligned is copied first.
py::tuple read_model_file(const py::buffer &file)
{
    const py::buffer_info buf = file.request();
    if (buf.ndim != 1 || buf.itemsize != 1)
        throw py::type_error("a model file's bytes must be a 1-D byte buffer");
    const void *data = buf.ptr;
    std::vector<float> aligned;
    if (reinterpret_cast<uintptr_t>(data) % alignof(float) != 0) {
        aligned.resize((size_t)buf.size / sizeof(float) + 1);
        std::memcpy(aligned.data(), buf.ptr, (size_t)buf.size);
        data = aligned.data();
    }
    lstmrt_file_info info;
    check(lstmrt_file_read(data, (size_t)buf.size, nullptr, 0, &info));
    std::vector<lstmrt_layer_desc> descs((size_t)info.num_layers);
    check(lstmrt_file_read(data, (size_t)buf.size, descs.data(), info.num_layers, &info));
    py::list layers;
    for (const lstmrt_layer_desc &L : descs) {
        py::dict d;
        d["kind"] = (int)L.kind;
        d["input_size"] = L.input_size;
        d["hidden_size"] = L.hidden_size;
        d["proj_size"] = L.proj_size;
        d["num_embeddings"] = L.num_embeddings;
        d["num_directions"] = L.num_directions;
        d["merge_mode"] = (int)L.merge_mode;
        d["activations"] = py::make_tuple((int)L.activations[0], (int)L.activations[1], (int)L.activations[2]);
        d["activation_alpha"] = py::make_tuple(L.activation_alpha[0], L.activation_alpha[1], L.activation_alpha[2]);
        d["cell_clip"] = L.cell_clip;
        d["linear_before_reset"] = L.linear_before_reset;
        d["hold_masked_output"] = L.hold_masked_output;
        d["go_backwards"] = L.go_backwards;
        d["final_only"] = L.final_only;
        d["epsilon"] = L.epsilon;
        d["norm_mode"] = (int)L.norm_mode;
        d["pool_mode"] = (int)L.pool_mode;
        d["add_from"] = L.add_from;
        d["add_offset"] = L.add_offset;
        py::list dirs;
        for (int32_t k = 0; k < L.num_directions; k++) {
            const lstmrt_direction_weights &w = L.weights[k];
            const float *const slots[] = {w.weight_ih, w.weight_hh,       w.bias_ih,
                                          w.bias_hh,   w.weight_peephole, w.weight_proj};
            py::dict arrays;
            for (int32_t j = 0; j < 6; j++) {
                if (!slots[j]) {
                    arrays[kWeights[j]] = py::none();
                    continue;
                }
                f32array a(lstmrt_layer_weight_floats(&L, k, j));
                std::memcpy(a.mutable_data(), slots[j], (size_t)a.nbytes());
                arrays[kWeights[j]] = a;
            }
            dirs.append(arrays);
        }
        d["weights"] = dirs;
        layers.append(d);
    }
    return py::make_tuple(layers, py::bytes(info.options, info.options_bytes));
}

struct Stream;

// One stream used from two threads at once: calls that release the GIL mark the stream busy (the flag is only
// read and written with the GIL held), and any other call on it meanwhile raises instead of racing.
struct BusyGuard {
    bool &flag;
    explicit BusyGuard(bool &f) : flag(f)
    {
        if (flag)
            throw std::runtime_error("stream is in use by another thread; use one stream per thread (Stream.copy())");
        flag = true;
    }
    ~BusyGuard() { flag = false; }
};

struct Stream {
    std::shared_ptr<Model> model; // keeps the model alive as long as the stream
    lstmrt_stream_t *ptr = nullptr;
    bool busy = false;
    int32_t batch;
    bool batched;
    bool long_step = false; // a step long enough to release the GIL for (the Cython fast path does the same)
    std::vector<py::ssize_t> x_shape, y_shape;

    Stream(std::shared_ptr<Model> m, int32_t n, bool is_batched) : model(std::move(m)), batch(n), batched(is_batched)
    {
        check(lstmrt_stream_create(model->ptr, n, &ptr));
        init_shapes();
    }
    Stream(Stream &other) : model(other.model), batch(other.batch), batched(other.batched)
    {
        BusyGuard guard(other.busy);
        check(lstmrt_stream_copy(other.ptr, &ptr));
        init_shapes();
    }
    ~Stream() { lstmrt_stream_free(ptr); }

    void init_shapes()
    {
        const py::ssize_t I = lstmrt_model_input_size(model->ptr), O = lstmrt_model_output_size(model->ptr);
        x_shape = batched ? std::vector<py::ssize_t>{batch, I} : std::vector<py::ssize_t>{I};
        y_shape = batched ? std::vector<py::ssize_t>{batch, O} : std::vector<py::ssize_t>{O};
        long_step = (double)batch * (double)lstmrt_model_weight_bytes(model->ptr) >= kReleaseGilStepBytes ||
                    (int64_t)batch * I >= kReleaseGilFloats;
    }

    py::array step(const py::handle &x, const py::object &out)
    {
        BusyGuard guard(busy);
        f32array xa = input_array(x, x_shape, "x", model->tokens);
        f32array ya = output_array(out, y_shape);
        xa = unaliased_input(xa, ya);
        float *y = ya.mutable_data();
        const float *xp = xa.data();
        lstmrt_status s;
        if (long_step) {
            py::gil_scoped_release release;
            s = lstmrt_stream_step(ptr, xp, nullptr, y);
        } else {
            s = lstmrt_stream_step(ptr, xp, nullptr, y);
        }
        if (s != LSTMRT_STATUS_OK && model->tokens)
            refuse_tokens(x, batched ? py::make_tuple("row") : py::tuple(), model->num_embeddings);
        check(s);
        return ya;
    }

    py::array run(const py::handle &x, py::ssize_t steps, const py::object &out)
    {
        const py::ssize_t I = x_shape.back(), O = y_shape.back();
        std::vector<py::ssize_t> xs =
            batched ? std::vector<py::ssize_t>{batch, steps, I} : std::vector<py::ssize_t>{steps, I};
        std::vector<py::ssize_t> ys =
            batched ? std::vector<py::ssize_t>{batch, steps, O} : std::vector<py::ssize_t>{steps, O};
        BusyGuard guard(busy);
        f32array xa = input_array(x, xs, "X", model->tokens);
        f32array ya = output_array(out, ys);
        xa = unaliased_input(xa, ya);
        const float *xp = xa.data();
        float *y = ya.mutable_data();
        lstmrt_status s;
        {
            py::gil_scoped_release release; // BusyGuard keeps other threads off this stream meanwhile
            s = lstmrt_stream_run(ptr, xp, steps, y);
        }
        check(s);
        return ya;
    }

    py::array get_state()
    {
        BusyGuard guard(busy);
        f32array st(std::vector<py::ssize_t>{(py::ssize_t)(batch * lstmrt_model_state_size(model->ptr))});
        check(lstmrt_stream_get_state(ptr, st.mutable_data()));
        return st;
    }

    void set_state(const f32array &st)
    {
        BusyGuard guard(busy);
        if (st.size() != batch * lstmrt_model_state_size(model->ptr))
            throw py::value_error("state has the wrong number of elements");
        check(lstmrt_stream_set_state(ptr, st.data()));
    }
};

py::array predict(const std::shared_ptr<Model> &m, const f32array &x, const py::object &lengths, const py::object &mask,
                  int32_t threads)
{
    if (x.ndim() != 3 || x.shape(2) != lstmrt_model_input_size(m->ptr))
        throw py::value_error("predict expects a (batch, steps, input_size) float32 array");
    const int64_t B = x.shape(0), T = x.shape(1);
    std::vector<int32_t> lens;
    if (!lengths.is_none()) {
        lens = lengths.cast<std::vector<int32_t>>();
        if ((int64_t)lens.size() != B)
            throw py::value_error("lengths must have one entry per sequence");
    }
    py::array_t<uint8_t, py::array::c_style | py::array::forcecast> mask_arr;
    if (!mask.is_none()) {
        mask_arr = mask.cast<py::array_t<uint8_t, py::array::c_style | py::array::forcecast>>();
        if (mask_arr.ndim() != 2 || mask_arr.shape(0) != B || mask_arr.shape(1) != T)
            throw py::value_error("mask must have shape (batch, steps)");
    }
    f32array y(std::vector<py::ssize_t>{B, T, lstmrt_model_output_size(m->ptr)});
    const float *xp = x.data();
    float *yp = y.mutable_data();
    const int32_t *lp = lens.empty() ? nullptr : lens.data();
    const uint8_t *mp = mask.is_none() ? nullptr : mask_arr.data();
    lstmrt_status s;
    {
        py::gil_scoped_release release; // the model is immutable: safe to share while other threads run
        s = lstmrt_model_predict_threads(m->ptr, xp, B, T, lp, mp, yp, threads);
    }
    check(s);
    return y;
}

// Benchmark probes (lstmrt bench times their passes): one object per thread, the GIL released meanwhile.
struct Probe {
    lstmrt_probe_t *ptr = nullptr;
    explicit Probe(int64_t stream_bytes) { check(lstmrt_probe_create(stream_bytes, &ptr)); }
    ~Probe() { lstmrt_probe_free(ptr); }
    Probe(const Probe &) = delete;
    Probe &operator=(const Probe &) = delete;

    template <void (*pass)(lstmrt_probe_t *, int64_t)> void run(int64_t passes)
    {
        if (passes < 0)
            throw py::value_error("passes must be >= 0, got " + std::to_string(passes));
        py::gil_scoped_release release;
        pass(ptr, passes);
    }
};

} // namespace

PYBIND11_MODULE(_native, mod)
{
    mod.doc() = "lstmrt C runtime binding (internal: use the lstmrt package)";
    py::class_<Model, std::shared_ptr<Model>>(mod, "Model")
        .def(py::init<const py::list &>())
        .def_property_readonly("input_size", [](const Model &m) { return lstmrt_model_input_size(m.ptr); })
        .def_property_readonly("output_size", [](const Model &m) { return lstmrt_model_output_size(m.ptr); })
        .def_property_readonly("state_size", [](const Model &m) { return lstmrt_model_state_size(m.ptr); })
        .def_property_readonly("weight_bytes", [](const Model &m) { return lstmrt_model_weight_bytes(m.ptr); })
        .def_property_readonly("bidirectional",
                               [](const Model &m) { return lstmrt_model_is_bidirectional(m.ptr) != 0; })
        .def("predict", &predict, py::arg("x"), py::arg("lengths") = py::none(), py::arg("mask") = py::none(),
             py::arg("threads") = 1);
    py::class_<Stream>(mod, "Stream")
        .def(py::init<std::shared_ptr<Model>, int32_t, bool>())
        .def("step", &Stream::step, py::arg("x"), py::arg("out") = py::none())
        .def("run", &Stream::run, py::arg("x"), py::arg("steps"), py::arg("out") = py::none())
        .def("reset",
             [](Stream &s) {
                 BusyGuard guard(s.busy);
                 lstmrt_stream_reset(s.ptr);
             })
        .def("get_state", &Stream::get_state)
        .def("set_state", &Stream::set_state)
        .def("copy", [](Stream &s) { return new Stream(s); })
        // for lstmrt._step (the Cython hot path): stream pointer, busy flag, step function as integers, and
        // whether a step is long enough to release the GIL (the Cython step then marks the stream busy, as step())
        .def("_handles",
             [](Stream &s) {
                 return py::make_tuple((uintptr_t)s.ptr, (uintptr_t)&s.busy, (uintptr_t)&lstmrt_stream_step,
                                       s.long_step, s.model->tokens ? s.model->num_embeddings : 0);
             })
        .def_property_readonly("x_shape", [](const Stream &s) { return py::tuple(py::cast(s.x_shape)); })
        .def_property_readonly("y_shape", [](const Stream &s) { return py::tuple(py::cast(s.y_shape)); })
        .def_property_readonly("batch", [](const Stream &s) { return s.batch; })
        .def("set_threads",
             [](Stream &s, int32_t threads) {
                 BusyGuard guard(s.busy);
                 check(lstmrt_stream_set_threads(s.ptr, threads));
             })
        .def_property_readonly("threads", [](const Stream &s) { return lstmrt_stream_threads(s.ptr); });
    py::class_<Probe>(mod, "Probe")
        .def(py::init<int64_t>(), py::arg("stream_bytes"))
        .def("stream", &Probe::run<lstmrt_probe_stream>, py::arg("passes"))
        .def("compute", &Probe::run<lstmrt_probe_compute>, py::arg("passes"))
        .def_property_readonly("stream_bytes", [](const Probe &p) { return lstmrt_probe_stream_bytes(p.ptr); })
        .def_property_readonly("compute_flops", [](const Probe &p) { return lstmrt_probe_compute_flops(p.ptr); });
    mod.def("read_model_file", &read_model_file, py::arg("data"));
    mod.def("kernel_tier", []() { return std::string(lstmrt_kernel_tier()); });
    mod.def("cpu_features", []() { return std::string(lstmrt_cpu_features()); });
    mod.attr("ACTIVATION_COUNT") = (int)LSTMRT_ACT_COUNT;
    mod.attr("MAX_STREAM_BATCH") = (int)LSTMRT_MAX_STREAM_BATCH;
    mod.attr("MAX_THREADS") = (int)LSTMRT_MAX_THREADS;
}
