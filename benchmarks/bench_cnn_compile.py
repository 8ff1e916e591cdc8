"""Does torch.compile speed up pasquet19 training on this CPU? Eager vs compiled step, MFU vs a same-run matmul peak.

    flock /tmp/deepdip-cpu.lock python benchmarks/bench_cnn_compile.py

(Session 2, torch 2.13.0 CPU: compiling the backward fails inside inductor; see docs/benchmarks.md.)
"""
import time

import torch
import torch.nn.functional as F

from deepdip.models import count_flops, create_model

torch.set_num_threads(2)


def peak():
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    torch.mm(a, b)
    t = time.perf_counter()
    n = 0
    while time.perf_counter() - t < 3:
        torch.mm(a, b)
        n += 1
    return 2 * 2048**3 * n / (time.perf_counter() - t)


def bench(net, secs=10):
    x = torch.randn(128, 5, 64, 64).contiguous(memory_format=torch.channels_last)
    e = torch.randn(128, 1)
    y = torch.randint(0, 180, (128,))
    opt = torch.optim.AdamW(net.parameters(), 1e-4)

    def step():
        loss = F.cross_entropy(net(x, e), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    t0 = time.perf_counter()
    step()
    step()
    warm = time.perf_counter() - t0
    t = time.perf_counter()
    n = 0
    while time.perf_counter() - t < secs:
        step()
        n += 1
    return 128 * n / (time.perf_counter() - t), warm


fl = count_flops(create_model('pasquet19', 5, 180, 64))
for _rep in range(1):
    p = peak()
    torch.manual_seed(0)
    net = create_model('pasquet19', 5, 180, 64).to(memory_format=torch.channels_last)
    ips, _ = bench(net)
    print(f"eager    {ips:.1f} img/s MFU {3*fl*ips/p:.0%} (peak {p/1e9:.0f})", flush=True)
    torch.manual_seed(0)
    net = torch.compile(dynamic=False,
                        model=create_model('pasquet19', 5, 180, 64).to(memory_format=torch.channels_last))
    ips, warm = bench(net)
    print(f"compiled {ips:.1f} img/s MFU {3*fl*ips/p:.0%} (compile+2 steps {warm:.0f} s)", flush=True)
