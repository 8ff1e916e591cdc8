"""The fastest numeric precision on the hardware at hand, measured rather than assumed.

Machines differ more than their names say: one CPU of this project had no bf16 instructions
(bf16 ran 3x *slower* than fp32), another had AMX (bf16 matmuls 5-7x faster). ``--precision auto``
therefore times a few steps of the actual network in fp32 and in bf16 autocast, on the device it
will run on, and takes bf16 only when it is clearly faster (:data:`MIN_SPEEDUP`), so a tie never
flips the choice from run to run. Where bf16 is not native (no ``avx512_bf16``/``amx_bf16`` flag
on an x86 CPU, a GPU without bf16) nothing is timed: fp32. The choice and its timings are
recorded with the run (``run.json``) or the catalogue (``config``).
"""

from __future__ import annotations

import copy
import platform
import time
from functools import cache

import torch

FP32, BF16 = "32-true", "bf16-mixed"
#: bf16 must beat fp32 by this factor to be chosen (timing noise on a shared machine is ~10 %).
MIN_SPEEDUP = 1.25
PRECISIONS = ("auto", FP32, BF16)


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
                     steps: int = 4) -> tuple[str, dict]:
    """``("bf16-mixed" | "32-true", probe)`` for ``net`` on a representative batch.

    ``images``/``extra`` sit on the device to decide for; ``net`` is copied (its weights, batch-norm
    statistics and the global RNG are left as they were). ``probe`` holds the timings (seconds per
    batch) and the reason, for the run's record.
    """
    device = images.device
    if not bf16_native(device):
        return FP32, {"reason": f"no native bf16 on {device.type}", "chosen": FP32}
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
    chosen = BF16 if fp32 / max(bf16, 1e-9) >= MIN_SPEEDUP else FP32
    return chosen, {"fp32_s": round(fp32, 5), "bf16_s": round(bf16, 5), "speedup": round(fp32 / max(bf16, 1e-9), 3),
                    "min_speedup": MIN_SPEEDUP, "batch": int(len(images)), "device": str(device), "chosen": chosen}
