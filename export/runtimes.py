"""Run any exported artifact in the runtime that will run it on the device, behind one interface.

    runner = load_runner(path, format, threads=None)
    runner.predict(x)            # x: preprocessed float32 NHWC batch -> float32 outputs (N, ...) (one output)
    runner.predict_all(x)        # every output: [float32 (N, ...)] in the order of runner.output_names
    runner.latency_ms(x_one, runs=30, warmup=5)   # list of per-call milliseconds at batch 1
    runner.inputs, runner.outputs                 # [{"name","shape","dtype","quantization"}]

`threads` None means every core in every runtime (LiteRT's own default is one thread: ResNet-50 fp32 verification
took 92 ms a sample in LiteRT against 36 ms in onnxruntime on a 2-core Xeon, same run).
Runtimes: TFLite -> `ai_edge_litert` Interpreter (num_threads), ONNX -> onnxruntime (intra_op threads),
micro (a TFLM `.cc` source) -> the array it holds in the `ai_edge_litert` Interpreter,
SavedModel -> TensorFlow, keras -> Keras. Int8 input/output tensors are quantized/dequantized with the
scale and zero point recorded in the file, so callers always pass and receive float32. A uint8 input tensor
(a `--raw-input` artifact: preprocessing in the graph) gets the pixels as they are (`feed_for`). Artifacts with a
static batch of 1 are run one sample at a time. This API is stable: benchmarks import it.

Several outputs (`export.outputs`): every runtime names them by the SavedModel signature key (`output_0`, ...
or a dict model's keys; `signature_key` in `runner.outputs`) and lists them in `natural_order`, matched by
name (TFLite sorts signature outputs as strings, ONNX keeps its graph order). `predict`/`run_batch` serve
one-output models and raise a UserError naming the outputs otherwise; `predict_all`/`run_all` serve every model.

Example:
    >>> import keras, tempfile
    >>> from export.converters.tflite import convert
    >>> from export.serving_graph import to_saved_model
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    >>> path = os.path.join(tempfile.mkdtemp(), "m_fp32.tflite")
    >>> _ = open(path, "wb").write(convert(to_saved_model(model, path + ".saved_model")["path"], "fp32"))
    >>> runner = load_runner(path, "tflite", threads=1)  # batch 1 in the file: run one sample at a time
    >>> runner.predict(np.ones((2, 4), "float32")).shape, runner.inputs[0]["shape"]
    ((2, 3), [1, 4])
"""
import os
import time

import numpy as np

from export.core.errors import UserError
from export.core.tensors import PIXELS, dequantize, feed_for, quantize  # noqa: F401 - part of this stable API
from export.outputs import in_order, keras_output_shapes, natural_order

CHUNK = 64  # batch size used for artifacts with a dynamic batch dimension
# Keras predict's batch: TensorFlow (oneDNN) keeps memory of the largest batch it ran. ResNet-50 224², Xeon 2 cores:
# batch 64 left +700 MB resident after predict, 16 +230 MB, 8 +110 MB, at the same speed (61-83 ms an image)
KERAS_BATCH = 16


def _tensor_info(name, shape, dtype, scale=None, zero_point=None, signature_key=None):
    quantization = None if not scale else {"scale": float(scale), "zero_point": int(zero_point)}
    info = {"name": name, "shape": [int(d) if d is not None else -1 for d in shape], "dtype": str(dtype),
            "quantization": quantization}
    return info if signature_key is None else {**info, "signature_key": signature_key}


class Runner:
    """Common behaviour: batching by the artifact's batch size and batch-1 latency measurement."""

    batch = None  # 1 for static batch-1 artifacts, None for dynamic
    outputs = ()  # tensor infos, in export.outputs.natural_order of their signature keys

    @property
    def output_names(self):
        """The outputs' signature keys, in the order `run_all`/`predict_all` return them."""
        return [o.get("signature_key", o["name"]) for o in self.outputs]

    def run_all(self, x):
        """Every output of one batch, in `output_names` order (subclasses implement this or `run_batch`)."""
        return [self.run_batch(x)]

    def run_batch(self, x):
        """The output of one batch, for a one-output artifact."""
        self.check_one_output()
        return self.run_all(x)[0]

    def check_one_output(self):
        """UserError naming the outputs when there are several (callers then use run_all/predict_all)."""
        if len(self.outputs) > 1:
            raise UserError(f"the model has {len(self.outputs)} outputs ({', '.join(self.output_names)}); "
                            "this needs a one-output model (use predict_all for every output)")

    def predict(self, x):
        """Float32 outputs for a preprocessed float32 batch (any N), for a one-output artifact."""
        self.check_one_output()
        x = np.asarray(x, dtype="float32")
        step = self.batch or CHUNK
        return np.concatenate([self.run_batch(x[i:i + step]) for i in range(0, len(x), step)])

    def predict_all(self, x):
        """[float32 (N, ...) per output] in `output_names` order, for a preprocessed float32 batch (any N)."""
        x = np.asarray(x, dtype="float32")
        step = self.batch or CHUNK
        chunks = [self.run_all(x[i:i + step]) for i in range(0, len(x), step)]
        return [np.concatenate(parts) for parts in zip(*chunks)]

    def latency_ms(self, x_one, runs=30, warmup=5):
        """Milliseconds of `runs` single-sample calls (every output computed) after `warmup` untimed calls."""
        x_one = np.asarray(x_one, dtype="float32")[:1]
        call = self.run_all if len(self.outputs) > 1 else self.run_batch
        for _ in range(warmup):
            call(x_one)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            call(x_one)
            times.append((time.perf_counter() - start) * 1000.0)
        return times


class TFLiteRunner(Runner):
    """A .tflite file in the ai_edge_litert interpreter."""

    def __init__(self, path, threads=None):
        from ai_edge_litert.interpreter import Interpreter

        from export.core.quiet import native_noise_filtered

        with native_noise_filtered():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
            self.interpreter = Interpreter(**self.interpreter_options(path), num_threads=threads or os.cpu_count())
            self.interpreter.allocate_tensors()
        self.input, = self.interpreter.get_input_details()
        self.batch = 1 if int(self.input["shape_signature"][0]) == 1 else None
        self.inputs = [self._info(self.input)]
        details = self._output_details()
        self.output_details = [details[name] for name in natural_order(details)]
        self.outputs = [self._info(detail, name) for name, detail in zip(natural_order(details), self.output_details)]
        self._shape = None

    def _output_details(self):
        """{signature key: tensor detail} of serving_default (files without signatures: output_i by position)."""
        signatures = self.interpreter.get_signature_list()
        if SERVING in signatures:
            return self.interpreter.get_signature_runner(SERVING).get_output_details()
        return {f"output_{i}": detail for i, detail in enumerate(self.interpreter.get_output_details())}

    @staticmethod
    def interpreter_options(path):
        """The Interpreter's model (and kernel) arguments for the artifact at `path`."""
        return {"model_path": os.fspath(path)}

    @staticmethod
    def _info(detail, signature_key=None):
        scale, zero_point = detail["quantization"]
        quantized = np.issubdtype(detail["dtype"], np.integer)
        return _tensor_info(detail["name"], detail["shape_signature"], np.dtype(detail["dtype"]).name,
                            scale if quantized else None, zero_point, signature_key)

    def run_all(self, x):
        if self.batch is None and self._shape != x.shape:
            self.interpreter.resize_tensor_input(self.input["index"], x.shape)
            self.interpreter.allocate_tensors()
            self._shape = x.shape
        self.interpreter.set_tensor(self.input["index"], feed_for(x, self.inputs[0]))
        self.interpreter.invoke()
        return [self._float(self.interpreter.get_tensor(detail["index"]), info["quantization"])
                for detail, info in zip(self.output_details, self.outputs)]

    @staticmethod
    def _float(out, quantization):
        return dequantize(out, quantization) if quantization else out.astype("float32")


class MicroSourceRunner(TFLiteRunner):
    """The flatbuffer array of a TensorFlow Lite Micro source (`<name>_model_data.cc`) in the ai_edge_litert
    interpreter: the bytes parsed back from the .cc (`export.micro.source.read_array`), so a wrong array fails,
    run with LiteRT's reference kernels, whose integer arithmetic TFLM's kernels share (measured: outputs
    bit-identical to the TFLM interpreter on held-out digits; the default XNNPACK kernels differ by a few steps)."""

    @staticmethod
    def interpreter_options(path):
        from ai_edge_litert.interpreter import OpResolverType

        from export.micro.source import read_array

        return {"model_content": read_array(path), "experimental_op_resolver_type": OpResolverType.BUILTIN_REF}


class OnnxRunner(Runner):
    """An .onnx file in onnxruntime (CPU)."""

    def __init__(self, path, threads=None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(os.fspath(path), options, providers=["CPUExecutionProvider"])
        graph_input, = self.session.get_inputs()
        self.input_name = graph_input.name
        self.batch = 1 if graph_input.shape[0] == 1 else None
        self.inputs = [_tensor_info(i.name, [d if isinstance(d, int) else None for d in i.shape],
                                    i.type.replace("tensor(", "").replace(")", "").replace("float", "float32"))
                       for i in self.session.get_inputs()]
        graph_outputs = {o.name: o for o in self.session.get_outputs()}
        self.outputs = [_tensor_info(o.name, [d if isinstance(d, int) else None for d in o.shape],
                                     o.type.replace("tensor(", "").replace(")", "").replace("float", "float32"),
                                     signature_key=o.name)
                        for o in map(graph_outputs.get, natural_order(graph_outputs))]

    def run_all(self, x):
        outputs = self.session.run(self.output_names, {self.input_name: feed_for(x, self.inputs[0])})
        return [out.astype("float32") for out in outputs]


class SavedModelRunner(Runner):
    """A SavedModel directory's serving_default signature in TensorFlow."""

    def __init__(self, path, threads=None):
        import tensorflow as tf

        _set_tf_threads(threads)
        self.loaded = tf.saved_model.load(os.fspath(path))  # owns the variables the signature reads
        self.signature = self.loaded.signatures["serving_default"]
        (self.input_name, spec), = self.signature.structured_input_signature[1].items()
        self.batch = 1 if spec.shape[0] == 1 else None
        specs = self.signature.structured_outputs
        self.inputs = [_tensor_info(self.input_name, spec.shape.as_list(), spec.dtype.name)]
        self.outputs = [_tensor_info(name, specs[name].shape.as_list(), specs[name].dtype.name, signature_key=name)
                        for name in natural_order(specs)]
        self._tf = tf

    def run_all(self, x):
        result = self.signature(**{self.input_name: self._tf.constant(feed_for(x, self.inputs[0]))})
        return [result[name].numpy() for name in self.output_names]


class KerasRunner(Runner):
    """A Keras model (a .keras file, or an in-memory model via `KerasRunner.from_model`)."""

    def __init__(self, path, threads=None):
        from export.core.metadata import load_model

        _set_tf_threads(threads)
        self.use(load_model(os.fspath(path), safe_mode=True)[0])  # one-line UserError for refused/corrupt files

    @classmethod
    def from_model(cls, model):
        """Wrap an already-loaded Keras (or tf_keras) model."""
        runner = cls.__new__(cls)
        runner.use(model)
        return runner

    def use(self, model):
        import tensorflow as tf

        self.model = model
        self._call = tf.function(lambda x: model(x, training=False))  # graph mode: fair batch-1 latency
        self.inputs = [_tensor_info(model.inputs[0].name, model.input_shape, "float32")]
        self.outputs = [_tensor_info(name, shape, "float32", signature_key=name)
                        for name, shape in keras_output_shapes(model).items()]

    def predict(self, x):
        self.check_one_output()
        return self.predict_all(x)[0]

    def predict_all(self, x):
        found = self.model.predict(np.asarray(x, dtype="float32"), batch_size=KERAS_BATCH, verbose=0)
        return in_order(found, self.output_names)

    def run_all(self, x):
        return in_order(self._call(x), self.output_names)


def _set_tf_threads(threads):
    if not threads:
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(int(threads))
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # already initialized in this process; keep the existing setting
        pass


SERVING = "serving_default"  # the signature every converter writes
RUNNERS = {"tflite": TFLiteRunner, "onnx": OnnxRunner, "saved_model": SavedModelRunner, "keras": KerasRunner,
           "micro": MicroSourceRunner}


def load_runner(path, format, threads=None):
    """A runner for the artifact at `path` of `format` (tflite, onnx, saved_model, keras, micro).

    Example:
        >>> runner = load_runner("saved_models/resnet20_digits.keras", "keras", threads=1)
        >>> runner.predict(np.zeros((2, 32, 32, 3), "float32")).shape
        (2, 10)
    """
    if format not in RUNNERS:
        raise UserError(f"no runtime for format {format!r}; allowed: {', '.join(RUNNERS)}")
    if not os.path.exists(path):
        raise UserError(f"artifact {os.fspath(path)!r} does not exist")
    try:
        return RUNNERS[format](path, threads)
    except UserError:
        raise
    except Exception as error:  # a corrupt or foreign file: the runtime's own parser refused it
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise UserError(f"cannot load {format} artifact {os.fspath(path)!r}: {reason}") from None
