"""The fastest numeric precision on the hardware at hand, measured rather than assumed.

Machines differ more than their names say: one CPU of this project had no bf16 instructions
(bf16 ran 3x *slower* than fp32), another had AMX (bf16 matmuls 5-7x faster). ``--precision auto``
therefore times a few steps of the actual network in fp32 and in bf16 autocast, on the device it
will run on, and takes bf16 only when it is clearly faster (:data:`MIN_SPEEDUP`), so a tie never
flips the choice from run to run. Where bf16 is not native (no ``avx512_bf16``/``amx_bf16`` flag
on an x86 CPU, a GPU without bf16) nothing is timed: fp32. The choice and its timings are
recorded with the run (``run.json``) or the catalogue (``config``).

``auto`` is the default of ``train`` and ``predict``, so the same command must give the same
result every time on one machine. A timing near the margin could flip between runs (it did: an
inference speed-up of 1.16-1.27x on an AMX CPU), so every timed decision is **cached per machine**
(``precision.json`` in :func:`cache_dir`) under a key of what decides it: the CPU or GPU model, the
torch version and thread count, the network's class and parameter shapes, the batch shape and the
mode (training or inference). The first run on a machine times; every later one with the same key
reads the cached choice (recorded as ``"cached": true``). A step with less arithmetic than
:data:`MIN_STEP_FLOP` (forward FLOPs of the batch, x3 when training) keeps fp32 untimed: it takes
milliseconds, a probe of it measures dispatch overheads rather than arithmetic, and its precision
cannot matter to the run's time. The rule counts work instead of timing it, so it decides the same
on every machine, however loaded (it keeps the test suite's tiny networks in fp32 everywhere).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import platform
import time
from functools import cache
from pathlib import Path

import torch

log = logging.getLogger(__name__)

FP32, BF16 = "32-true", "bf16-mixed"
#: bf16 must beat fp32 by this factor to be chosen (timing noise on a shared machine is ~10 %).
MIN_SPEEDUP = 1.25
PRECISIONS = ("auto", FP32, BF16)


def check_precision(precision) -> None:
    """Refuse (:class:`~deepdip.errors.DeepdipError`) a precision deepdip's own executors do not run."""
    from deepdip.errors import DeepdipError

    if precision not in PRECISIONS:
        raise DeepdipError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")


#: A step with fewer FLOPs than this keeps fp32 untimed (2 GFLOP: 5-20 ms on the CPUs measured).
MIN_STEP_FLOP = 2e9
#: Environment variable naming the folder of the per-machine decision cache.
CACHE_ENV = "DEEPDIP_CACHE_DIR"


@cache
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags (Linux ``/proc/cpuinfo``); empty where they cannot be read."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


@cache
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else :func:`platform.processor`."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS has one, else ``os.cpu_count``)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


#: On a CPU, the training process's cores at or below which its batches are read in-process
CPU_INPROCESS_LOADING_CORES = 2


def default_loader_workers(on_cpu: bool, processes: int = 1) -> int:
    """DataLoader worker processes per training process when ``--workers`` is not given.

    A GPU: 4 (the GPU waits for batches; the CPU cores are free). A CPU with at most
    ``CPU_INPROCESS_LOADING_CORES`` cores per training process: 0, the batches read in the
    training process. Measured on 2 cores (docs/benchmarks.md, "Inside deepdip train"): one worker
    made ``deepdip train`` 70-72 % of the bare step, in-process reading 95-102 % — the worker's reads
    and inter-process copies ran on the cores the step's threads use, and oneDNN splits each
    convolution statically over its threads, so a thread that loses its core stalls the step. More
    cores per process: 1 (not measured on such a machine yet). The result does not depend on the
    choice: batches, augmentation and dropout are drawn in the training process.
    """
    if not on_cpu:
        return 4
    return 0 if usable_cores() // max(1, processes) <= CPU_INPROCESS_LOADING_CORES else 1


#: Most memory the training images of one training run are kept in, decoded (see image_cache_bytes)
IMAGE_CACHE_MAX_BYTES = 4 * 2**30


def image_cache_bytes(readers: int = 1) -> int:
    """Bytes of decoded training images each of ``readers`` reading processes may keep in memory.

    ``min(IMAGE_CACHE_MAX_BYTES, physical memory / 8)`` shared out over the processes that read
    batches (every DataLoader worker, or the training process itself, keeps its own cache). A
    training set that fits is read from the store once, in its first epoch; the later epochs take
    their batches from memory (on 2 cores the reads were 11-15 % of the epoch, measured in
    docs/benchmarks.md "Inside deepdip train"). One that does not fit is read block by block every
    epoch through a small cache, as before: memory stays bounded whatever the store's size.
    """
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):   # not a POSIX system: the fixed cap
        physical = 8 * IMAGE_CACHE_MAX_BYTES
    return int(min(IMAGE_CACHE_MAX_BYTES, physical // 8) // max(1, readers))


def cache_dir() -> Path:
    """Where per-machine decisions are kept: ``$DEEPDIP_CACHE_DIR``, else ``$XDG_CACHE_HOME/deepdip``,
    else ``~/.cache/deepdip``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "deepdip"


def decision_key(net: torch.nn.Module, images: torch.Tensor, extra: torch.Tensor, *, train: bool) -> str:
    """A digest of everything a precision probe's outcome depends on (see the module docstring)."""
    device = images.device
    hw = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()
    shapes = [(n, tuple(p.shape)) for n, p in net.named_parameters()] + [(n, tuple(b.shape)) for n, b in
                                                                         net.named_buffers()]
    what = {"hardware": hw, "bf16_flags": sorted({"avx512_bf16", "amx_bf16"} & cpu_flags()), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "net": type(net).__name__, "shapes": shapes,
            "images": (tuple(images.shape), str(images.dtype)), "extra": tuple(extra.shape), "train": bool(train)}
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _read_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _remember(key: str, probe: dict) -> None:
    """Add one decision to the cache (atomically; a cache that cannot be written only costs a probe)."""
    from deepdip.atomic import write_json_atomic

    path = cache_dir() / "precision.json"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, {**_read_cache(path), key: probe})
    except OSError as err:
        log.warning("could not cache the precision decision in %s (%s): later runs will probe again", path, err)


def bf16_native(device: torch.device) -> bool:
    """Whether ``device`` has bf16 arithmetic in hardware (worth timing at all)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type != "cpu":
        return False
    flags = cpu_flags()
    if not flags:   # unknown (not Linux, or an ARM CPU): let the timing decide
        return platform.machine().lower() in ("arm64", "aarch64")
    return bool({"avx512_bf16", "amx_bf16"} & flags)


def _step(net: torch.nn.Module, images, extra, opt, *, bf16: bool, train: bool) -> float:
    """Seconds of one forward(+backward+SGD) pass of ``net`` on one batch."""
    device = images.device
    t0 = time.perf_counter()
    with torch.set_grad_enabled(train), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        out = net(images, extra).float()
    if opt is not None:
        opt.zero_grad(set_to_none=True)
        out.logsumexp(dim=1).mean().backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def choose_precision(net: torch.nn.Module, images: torch.Tensor, extra: torch.Tensor, *, train: bool,
                     steps: int = 4, use_cache: bool = True) -> tuple[str, dict]:
    """``("bf16-mixed" | "32-true", probe)`` for ``net`` on a representative batch.

    ``images``/``extra`` sit on the device to decide for; ``net`` is copied (its weights, batch-norm
    statistics and the global RNG are left as they were). ``probe`` holds the timings (seconds per
    batch) and the reason, for the run's record. With ``use_cache`` a decision already taken on this
    machine for the same key (:func:`decision_key`) is returned as it was, and a new one is cached.
    """
    device = images.device
    if not bf16_native(device):
        return FP32, {"reason": f"no native bf16 on {device.type}", "chosen": FP32}
    flop = step_flop(net, images, extra, train=train)
    if flop < MIN_STEP_FLOP:
        return FP32, {"reason": f"{flop / 1e9:.2f} GFLOP per step < {MIN_STEP_FLOP / 1e9:g}: too little for the "
                                "precision to matter", "step_flop": flop, "chosen": FP32}
    key = decision_key(net, images, extra, train=train)
    if use_cache:
        known = _read_cache(cache_dir() / "precision.json").get(key)
        if isinstance(known, dict) and known.get("chosen") in (FP32, BF16):
            return str(known["chosen"]), {**known, "cached": True}
    chosen, probe = _probe(net, images, extra, train=train, steps=steps)
    probe["key"] = key
    if use_cache:
        _remember(key, probe)
    return chosen, {**probe, "cached": False}


def step_flop(net: torch.nn.Module, images: torch.Tensor, extra: torch.Tensor, *, train: bool) -> int:
    """The FLOPs of one step on this batch: forward of one image (``torch.utils.flop_counter``) x batch,
    x3 for a training step (backward ~ twice the forward)."""
    from torch.utils.flop_counter import FlopCounterMode

    param = next(net.parameters(), None)
    dev = param.device if param is not None else images.device
    was_training = net.training
    net.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(images[:1].to(dev), extra[:1].to(dev))
    net.train(was_training)
    return int(counter.get_total_flops()) * len(images) * (3 if train else 1)


def _probe(net: torch.nn.Module, images: torch.Tensor, extra: torch.Tensor, *, train: bool,
           steps: int) -> tuple[str, dict]:
    """Interleaved timed steps in fp32 and bf16, the decision by :data:`MIN_SPEEDUP`."""
    device = images.device
    rng = torch.get_rng_state()
    probe_net = copy.deepcopy(net).to(device)
    probe_net.train(train)
    if images.dim() == 4 and device.type == "cpu":
        images = images.contiguous(memory_format=torch.channels_last)
        probe_net = probe_net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    params = [p for p in probe_net.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.0) if train and params else None
    # Interleaved, fastest of each after a first (warm-up) pair: a burst of load from another
    # process slows both alike instead of deciding the comparison.
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(max(2, steps)):
        for use_bf16 in (False, True):
            times[use_bf16].append(_step(probe_net, images, extra, opt, bf16=use_bf16, train=train))
    fp32, bf16 = min(times[False][1:]), min(times[True][1:])
    torch.set_rng_state(rng)
    speedup = fp32 / max(bf16, 1e-9)
    chosen = BF16 if speedup >= MIN_SPEEDUP else FP32
    return chosen, {"fp32_s": round(fp32, 5), "bf16_s": round(bf16, 5), "speedup": round(speedup, 3),
                    "min_speedup": MIN_SPEEDUP, "batch": int(len(images)), "device": str(device), "chosen": chosen}
