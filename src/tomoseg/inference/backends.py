"""Backends: the device seam of the segment engine.

A backend offers two things:

- ``backend(x) -> p``: probabilities (float32, [0, 1]) of a batch of normalized windows, float32 of shape
  (n, 1, z, y, x); used by :func:`~tomoseg.inference.predict` and ``predict_whole``;
- ``backend.run_windows(windows, stats) -> iterator of (tile, core)``: the streaming path of ``segment``.
  ``windows`` yields ``(tile, raw)``: a :class:`~tomoseg.inference.tiling.Tile` and its read window as read
  from the file (the volume's dtype, padded, shape = ``tile.read``); the backend normalizes with ``stats``,
  runs the model, applies the sigmoid and yields ``(tile, uint8 core)`` (``to_uint8`` of the probabilities of
  ``tile.core_in_read``) for every window, in any order, pulling windows only as fast as it computes
  (``len(windows)`` says how many will come, for a backend that plans batches). Where
  normalization, sigmoid and quantization run (CPU or device) is the backend's business.
  ``backend.readers`` (int) is how many windows the engine reads ahead (reader threads); ``backend.name``
  names it in the provenance.

``torch`` runs on CPU or CUDA (with fp16/bf16 autocast); ``openvino`` runs on the CPU, several times faster
there, with asynchronous infer requests and on-disk caches of the converted and compiled model.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import TomosegError
from .model_file import ir_record, ir_stem
from .normalization import normalize

PRECISIONS = ("f32", "bf16", "fp16")
# OpenVINO sets the process's locale to "C" while it compiles a model with a cache folder, then sets back the one it
# found: two compiles at once (segment's preparation thread and its main thread, or two runs in one process) left
# the locale at "C" for good, and Python's default text encoding became ASCII for the rest of the user's process
# (3 times in 10 with three threads). OpenVINO's model compiles, reads and conversions run one at a time.
_OPENVINO_ONE_AT_A_TIME = threading.Lock()


@dataclass(frozen=True)
class BackendConfig:
    backend: str = "auto"      # auto | torch | openvino
    device: str = "auto"       # auto | cpu | cuda | cuda:N
    precision: str = "f32"     # f32 | bf16 | fp16 (fp16 on CUDA only)

    def __post_init__(self):
        if self.backend not in ("auto", "torch", "openvino"):
            raise TomosegError(f"backend {self.backend!r} must be auto, torch or openvino")
        if self.precision not in PRECISIONS:
            raise TomosegError(f"precision {self.precision!r} must be one of {PRECISIONS}")
        if not (self.device in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:\d+", str(self.device))):
            raise TomosegError(f"device {self.device!r} must be auto, cpu, cuda or cuda:N (N: a GPU's number, 0 up)")


def openvino_available() -> bool:
    return importlib.util.find_spec("openvino") is not None


def cuda_available() -> bool:
    """Whether PyTorch sees a CUDA GPU; without importing PyTorch where no GPU driver is present (Linux)."""
    import sys

    if "torch" not in sys.modules and sys.platform.startswith("linux") and not any(
            os.path.exists(p) for p in ("/dev/nvidiactl", "/dev/nvidia0", "/dev/dxg", "/dev/kfd")):
        return False
    import torch

    return torch.cuda.is_available()


def resolve(config: BackendConfig) -> tuple[str, str]:
    """The (backend, device) that ``auto`` stands for here."""
    device = config.device
    if device == "auto":
        device = "cuda" if cuda_available() else "cpu"
    if device.startswith("cuda") and not cuda_available():
        raise TomosegError(f"--device {config.device}: no CUDA GPU is visible to PyTorch; use --device cpu")
    if device.startswith("cuda:"):
        import torch

        if int(device.split(":")[1]) >= torch.cuda.device_count():
            raise TomosegError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                               "numbered from 0 (CUDA_VISIBLE_DEVICES chooses which)")
    backend = config.backend
    if backend == "auto":
        backend = "openvino" if device == "cpu" and openvino_available() else "torch"
    if backend == "openvino":
        if not device == "cpu":
            raise TomosegError("the openvino backend runs on the CPU; use --backend torch for CUDA")
        if not openvino_available():
            from ..errors import needs_package

            raise needs_package("the openvino backend", "openvino", "or use --backend torch")
    if config.precision == "fp16" and not device.startswith("cuda"):
        raise TomosegError("fp16 precision needs CUDA; on the CPU use f32 or bf16")
    return backend, device


def expit(logits: np.ndarray) -> np.ndarray:
    """The sigmoid, in float32, without overflow (and without importing scipy.special: 0.2-0.6 s of start-up)."""
    out = np.multiply(logits, np.float32(0.5), dtype=np.float32)
    np.tanh(out, out=out)
    out *= np.float32(0.5)
    out += np.float32(0.5)
    return out


NAN_OUTPUT = ("the model's output holds NaN (not a number) for this input: its weights overflow float32 (a "
              "diverged training?) or the precision is too narrow; use --precision f32, an earlier checkpoint "
              "(best.safetensors), or train again with a lower learning rate")


def check_no_nan(values: np.ndarray) -> None:
    """Refuse NaN probabilities, which the cast to uint8 would turn into 0 without a word (review MF13: a model
    of finite but huge weights overflows and gave an empty map); infinite logits are fine (probability 0 or 1)."""
    if np.isnan(values).any():
        raise TomosegError(NAN_OUTPUT)


def to_uint8(prob: np.ndarray) -> np.ndarray:
    """Probabilities in [0, 1] to the paper's 0–255 scale (NaN refused: :func:`check_no_nan`)."""
    check_no_nan(prob)
    return np.rint(np.clip(prob, 0.0, 1.0) * 255.0).astype(np.uint8)


def sigmoid_uint8(logits: np.ndarray, slab: int = 4) -> np.ndarray:
    """``to_uint8(expit(logits))``, the same float32 operations bit for bit, a few slices at a time through one
    small buffer: 3-4x faster on a window (the work stays in the CPU's cache, and no window-sized float32
    temporaries are allocated: their first touch costs page faults in a fresh process)."""
    logits = np.asarray(logits)
    if logits.ndim == 0 or logits.size == 0:
        return to_uint8(expit(logits)).reshape(logits.shape)
    out = np.empty(logits.shape, np.uint8)
    buffer = np.empty((min(slab, logits.shape[0]),) + logits.shape[1:], np.float32)
    for z in range(0, logits.shape[0], slab):
        part = logits[z:z + slab]
        b = buffer[:part.shape[0]]
        np.multiply(part, np.float32(0.5), out=b, dtype=np.float32)
        np.tanh(b, out=b)
        check_no_nan(b)
        b *= np.float32(0.5)
        b += np.float32(0.5)
        np.clip(b, 0.0, 1.0, out=b)
        b *= np.float32(255.0)
        np.rint(b, out=b)
        out[z:z + slab] = b
    return out


def cache_dir() -> Path | None:
    """Where compiled models are kept between runs: ``$TOMOSEG_CACHE_DIR`` (empty: no cache), else the user's
    cache folder (``$XDG_CACHE_HOME/tomoseg``, ``~/.cache/tomoseg``, ``%LOCALAPPDATA%/tomoseg``)."""
    if "TOMOSEG_CACHE_DIR" in os.environ:
        value = os.environ["TOMOSEG_CACHE_DIR"]
        return Path(value) if value else None
    base = os.environ.get("XDG_CACHE_HOME") or os.environ.get("LOCALAPPDATA") or Path.home() / ".cache"
    return Path(base) / "tomoseg"


def model_key(model) -> str:
    """Names the model's converted form in the cache: ``model.cache_key`` where the model came from a file
    (see :mod:`.model_file`) and its weights are still those loaded, else a digest of its weights and
    architecture (:func:`tomoseg.model.weights_digest`) and the tomoseg version."""
    from .._version import __version__
    from .model_file import model_identity

    identity = model_identity(model)  # the file's SHA-256 while the weights are the file's
    key = getattr(model, "cache_key", None)
    if key and identity == getattr(model, "sha256", None):
        return key
    return hashlib.sha256(f"{__version__} {identity}".encode()).hexdigest()[:24]


def run_windows_one_by_one(backend, windows, stats) -> Iterator[tuple]:
    """The plain ``run_windows``: normalize, run and quantize one window after another."""
    for tile, raw in windows:
        prob = backend(normalize(raw, stats)[None, None])[0, 0]
        yield tile, to_uint8(prob[tile.core_in_read])


class TorchBackend:
    """PyTorch on the CPU or CUDA (one window at a time; autocast for bf16/fp16). The network runs with its
    BatchNorms folded and in the memory order that pays on the device (:func:`~tomoseg.model.inference_copy`,
    :func:`~tomoseg.memory_order.channels_last_pays`): on the CPU 2.2x as fast as the model as trained."""

    def __init__(self, model, device: str, precision: str = "f32", *, channels_last: bool | None = None):
        import torch

        from ..model import inference_copy

        if not hasattr(model, "state_dict"):  # a ModelFile
            model = model.load()
        self.device = torch.device(device)
        # the decoder rewritten (inference_graph): on 2 CPU cores 1.24x as fast (docs/segment.md)
        self.model = inference_copy(model, self.device, channels_last=channels_last, precision=precision,
                                    rewrite=True)
        self.dtype = {"f32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
        self.name = f"torch-{self.device.type}-{precision}"
        self.readers = 1

    def _memory(self):
        """On the CPU, glibc keeps freed activations for the next layer and window (cpu_memory: 1.5x as fast)."""
        from ..cpu_memory import kept_on

        return kept_on(self.device)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        import torch

        t = torch.from_numpy(np.ascontiguousarray(x)).to(self.device, non_blocking=True)
        with self._memory(), torch.inference_mode():
            if self.dtype is not None:
                with torch.autocast(self.device.type, dtype=self.dtype):
                    logits = self.model(t)
            else:
                logits = self.model(t)
            return torch.sigmoid(logits.float()).cpu().numpy()

    def run_windows(self, windows, stats) -> Iterator[tuple]:
        with self._memory():
            yield from run_windows_one_by_one(self, windows, stats)


class OpenVINOBackend:
    """OpenVINO on the CPU: one compiled model per window shape, several infer requests in flight.

    The model is converted from PyTorch once per weights (its inference copy with the decoder rewritten,
    :mod:`tomoseg.inference_graph`, 1.3x as fast on 2 cores; a small traced example, shapes left dynamic) and
    kept as OpenVINO IR in :func:`cache_dir`; each window shape is compiled from it with OpenVINO's own
    model cache in the same folder, so a second run neither traces nor compiles again. Only the most recent
    window shape stays compiled (memory stays that of one shape).
    """

    def __init__(self, model, precision: str = "f32", threads: int | None = None, *,
                 requests: int = 2, hint: str = "LATENCY", cache: Path | None | str = "default"):
        import openvino as ov

        self._ov = ov
        self.core = ov.Core()
        # a module (left as it is: converted from its inference copy, on the CPU) or a ModelFile
        self.model = model
        # OpenVINO pins its threads to cores by default, each process from the first core on: two Dask workers of
        # one thread each then share one core and each runs at half speed (measured: 1.14 s against 0.57 s a
        # window, two processes on this project's 2 cores). Unpinned, one process is as fast as pinned.
        self.properties = {"INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
                           "PERFORMANCE_HINT": hint, "ENABLE_CPU_PINNING": False}
        if threads:
            self.properties["INFERENCE_NUM_THREADS"] = int(threads)
        self.requests = int(requests)
        self.cache = cache_dir() if cache == "default" else (Path(cache) if cache else None)
        if self.cache is not None:
            try:
                (self.cache / "openvino").mkdir(parents=True, exist_ok=True)
                self.core.set_property({"CACHE_DIR": str(self.cache / "openvino")})
            except OSError:
                self.cache = None  # an unwritable cache folder costs time, not correctness
        self._ir = None
        self._compiled: tuple | None = None
        self.name = f"openvino-cpu-{precision}"
        self.readers = 1
        self._dynamic_model()  # here, not in prepare() on another thread: converting it imports PyTorch

    def _dynamic_model(self):
        if self._ir is None:
            ir = (self.cache / "openvino" / f"{ir_stem(model_key(self.model))}.xml"
                  if self.cache is not None else None)
            if ir is not None:
                self._ir = self._read_ir(ir)
            if self._ir is None:
                import torch

                from ..model import inference_copy

                if not hasattr(self.model, "state_dict"):
                    self.model = self.model.load()
                d = self.model.config.divisor
                net = inference_copy(self.model, "cpu", channels_last=False, rewrite=True)
                with warnings.catch_warnings(), torch.no_grad(), _OPENVINO_ONE_AT_A_TIME:
                    warnings.simplefilter("ignore")  # tracing warnings about the input-size check
                    self._ir = self._ov.convert_model(
                        net, example_input=torch.zeros(1, 1, 2 * d, 2 * d, 2 * d),
                        input=[self._ov.PartialShape([-1, 1, -1, -1, -1])])
                if ir is not None:
                    self._save_ir(ir)
        return self._ir

    def _read_ir(self, ir: Path):
        """The cached converted model, read from the very bytes checked against the digests recorded when it was
        written (:func:`.model_file.ir_record`); None where there is none. A copy that is damaged (truncated,
        emptied, changed), does not match its record or has none, or that OpenVINO cannot read, is removed with a
        note, and the model is converted again: never an OpenVINO error on every run, nor other weights."""
        import json

        weights_file, record = ir.with_suffix(".bin"), ir_record(ir)
        if not ir.exists() and not weights_file.exists():
            return None
        try:
            xml, weights = ir.read_bytes(), np.fromfile(weights_file, np.uint8)
            expected = json.loads(record.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            reason = f"lacks {Path(exc.filename).name} (an earlier tomoseg's copy, or its writing was interrupted)"
        except (OSError, ValueError) as exc:
            reason = f"cannot be read ({exc})"
        else:
            if not isinstance(expected, dict) or expected.get("xml") != hashlib.sha256(xml).hexdigest() \
                    or expected.get("bin") != hashlib.sha256(weights).hexdigest():
                reason = "does not match the SHA-256 digests recorded when it was written (damaged or changed)"
            else:
                try:
                    with _OPENVINO_ONE_AT_A_TIME:
                        return self.core.read_model(xml.decode("utf-8"), self._ov.Tensor(weights))
                except (RuntimeError, UnicodeDecodeError) as exc:
                    reason = f"cannot be read by OpenVINO ({str(exc).strip().splitlines()[-1][:200]})"
        from ..errors import warn

        warn(f"{ir}: the cached OpenVINO copy of the model {reason}; removed, and the model converted again")
        for p in (ir, weights_file, record):
            try:
                p.unlink(missing_ok=True)
            except OSError:
                pass
        return None

    def _save_ir(self, ir: Path) -> None:
        """The converted model into the cache: ``.xml``, ``.bin`` and the record of their digests, each written
        to a temporary name, flushed to the disk and renamed (the record last: a copy without it is not used)."""
        import json

        tmp = ir.with_name(f"{ir.stem}.{os.getpid()}.partial.xml")
        tmp_record = ir_record(tmp)
        try:
            self._ov.save_model(self._ir, str(tmp), compress_to_fp16=False)  # f32 weights: exact
            digests = {}
            for kind, path in (("xml", tmp), ("bin", tmp.with_suffix(".bin"))):
                with open(path, "rb+") as fh:
                    digests[kind] = hashlib.sha256(fh.read()).hexdigest()
                    os.fsync(fh.fileno())
            with open(tmp_record, "w", encoding="utf-8") as fh:
                json.dump(digests, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp.with_suffix(".bin"), ir.with_suffix(".bin"))
            os.replace(tmp, ir)
            os.replace(tmp_record, ir_record(ir))
        except OSError:
            for p in (tmp, tmp.with_suffix(".bin"), tmp_record):
                try:
                    p.unlink(missing_ok=True)
                except OSError:
                    pass

    def _compile(self, shape):
        shape = tuple(int(s) for s in shape)
        if self._compiled is None or self._compiled[0] != shape:
            self._compiled = None  # free the previous shape's buffers first
            model = self._dynamic_model().clone()
            model.reshape({0: self._ov.PartialShape(list(shape))})
            with _OPENVINO_ONE_AT_A_TIME:
                self._compiled = (shape, self.core.compile_model(model, "CPU", self.properties))
        return self._compiled[1]

    def prepare(self, window) -> None:
        """Compile (or load from the cache) the model for windows of shape ``window`` (z, y, x) ahead of use;
        native code only (safe on another thread)."""
        self._compile((1, 1, *window))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        logits = self._compile(x.shape)(x)[0]
        return expit(logits).astype(np.float32, copy=False)

    def run_windows(self, windows, stats) -> Iterator[tuple]:
        """Windows through ``requests`` asynchronous infer requests taken in turn: the next window is normalized
        and started while the others run; a request's result (its uint8 core) is taken when its turn comes
        again, so cores come back in order.

        No Python callback runs on OpenVINO's threads, and inputs are copied into the requests' own tensors
        (``share_inputs=False``): those threads never wait for Python's lock. With callbacks, Ctrl-C could
        deadlock: the KeyboardInterrupt's traceback freed the compiled model on the main thread, holding that
        lock, while a stream thread waited for it, and the model's destructor joined that thread (review D2:
        "interrupted", then a hang, in about one Ctrl-C of three on a loaded machine)."""
        slots, shape, turn = [], None, 0  # [request, tile or None] in the order they take windows

        def take(slot):
            request, tile = slot
            request.wait()  # releases Python's lock while the request runs
            slot[1] = None
            return tile, sigmoid_uint8(request.get_output_tensor(0).data[0, 0][tile.core_in_read])

        def flush():
            for k in range(len(slots)):  # the oldest first: cores in the order their windows came
                slot = slots[(turn + k) % len(slots)]
                if slot[1] is not None:
                    yield take(slot)

        try:
            for tile, raw in windows:
                x = normalize(raw, stats)[None, None]
                if x.shape != shape:
                    yield from flush()
                    shape, turn = x.shape, 0
                    compiled = self._compile(shape)
                    slots = [[compiled.create_infer_request(), None] for _ in range(max(1, self.requests))]
                slot = slots[turn]
                if slot[1] is not None:
                    yield take(slot)
                slot[0].start_async({0: x}, share_inputs=False)
                slot[1] = tile
                turn = (turn + 1) % len(slots)
            yield from flush()
        finally:  # an error or Ctrl-C with requests running: let them end before they and the model are freed
            for request, tile in slots:
                if tile is not None:
                    request.wait()


def env_threads() -> int | None:
    """``TOMOSEG_THREADS``: the threads the network may use in this process (None: unset, the library's own
    choice; the CLI refuses a value that is not a positive whole number before any work)."""
    value = os.environ.get("TOMOSEG_THREADS", "").strip()
    try:
        return max(1, int(value)) if value else None
    except ValueError:
        raise TomosegError(f"TOMOSEG_THREADS={value!r}: give a positive whole number of threads, or unset it") \
            from None


def use_torch_threads(threads: int) -> None:
    """PyTorch's CPU threads set to ``threads``, when a backend is made (not at import: tomoseg changes nothing
    by being imported). The inter-op pool only where it is not started yet: PyTorch allows that once."""
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    try:
        if torch.get_num_interop_threads() > threads:
            torch.set_num_interop_threads(threads)
    except RuntimeError:  # already started (an earlier run in this process): it keeps its size
        pass


def make_backend(model, config: BackendConfig = BackendConfig()):
    """The backend ``config`` asks for. Every backend offers ``backend(x) -> p`` on a batch
    and ``backend.run_windows(windows, stats)`` on a stream of (tile, raw window) pairs; some also
    ``backend.prepare(window)``, the work before a first window of that shape that need not wait for it, and
    ``backend.resident_input``: whether to read windows from a copy of the volume the statistics pass keeps in
    memory where it fits (``engine.resident_copy``; for a GPU, whose network may outrun decompression; off until
    measured there)."""
    backend, device = resolve(config)
    threads = env_threads()
    if backend == "openvino":
        return OpenVINOBackend(model, config.precision, threads)
    if threads:
        use_torch_threads(threads)
    if device.startswith("cuda"):
        from .cuda_pipeline import CudaBackend

        return CudaBackend(model, device, config.precision)
    return TorchBackend(model, device, config.precision)


def prepare_meanwhile(backend, window=None):
    """A future that is done once ``backend`` is prepared for windows of shape ``window`` (z, y, x), where it can
    be, on a thread of its own while the caller goes on (``segment`` reads the volume's statistics meanwhile):
    OpenVINO compiles the window's shape (or loads it from its cache), CUDA loads cuDNN. Only ``prepare`` runs
    there, native code that imports nothing: the backend itself is made on the calling thread, so that every
    module it needs (PyTorch, OpenVINO) is imported there. A module half-imported on another thread is a deadlock
    for any code that finds it in ``sys.modules``: it hung ``segment --backend torch``, whose statistics pass
    counts with PyTorch where it is loaded. Errors come out of ``result()``."""
    from concurrent.futures import Future

    from ..thread_pool import ThreadPool

    if window is None or not hasattr(backend, "prepare"):
        done: Future = Future()
        done.set_result(None)
        return done
    pool = ThreadPool(1, thread_name_prefix="tomoseg-backend")
    try:
        return pool.submit(backend.prepare, tuple(int(s) for s in window))
    finally:
        pool.shutdown(wait=False)  # the preparation goes on; the thread ends with it
