"""Training throughput: our pipeline vs the standard torchvision one, and ResNet-50 (BENCHMARKS.md).

    python scripts/bench_train.py                    # CPU: FCN on all 50,000 images, ResNet-18
                                                     # on a 256-image slice, ResNet-50 2 steps
    python scripts/bench_train.py --device cuda      # GPU: full 50,000-image epochs

Part 1 trains one epoch on synthetic CIFAR-shaped data (uint8, 3x32x32, 10 classes) with AGD,
square loss, batch 128, random crop + flip, both ways, in the same run:
- ours: agd.data.DeviceLoader (data on the device, augmentation per batch on the device) and
  agd.train.train (metrics on the device, read once per epoch; AGD reports its own update
  size); on CUDA, bf16 autocast and channels_last for the CNN as `amp=auto channels_last=auto`.
- reference: a torchvision Dataset of PIL images with per-sample RandomCrop(32, padding=4),
  RandomHorizontalFlip, ToTensor, Normalize; a DataLoader (--ref-workers worker processes);
  per step `.to(device)`, the readable AGD step (`foreach=False`, one tensor at a time), and
  `.item()` for loss, accuracy and the relative update size (from a clone of the weights), i.e.
  the same per-step metrics ours keeps.
Samples/second = images in the epoch / wall time of the epoch (ours includes its end-of-epoch
metric read and a one-batch test pass).

Part 2 trains ResNet-50 (ImageNet layout, 1000 classes, cross-entropy) on one synthetic
224x224 batch kept on the device, reporting images/second and the AGD step's share of the
iteration (bf16 autocast + channels_last on CUDA).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image
from torch import nn

from agd import AGD, init_weights
from agd.data import DeviceLoader
from agd.functional import relative_update_size
from agd.losses import SquareLoss
from agd.models import ResNet50ImageNet
from agd.train import train
from experiments.bench.optimizer import build, hardware, model_names, select_device

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)  # CIFAR-10 (docs/data.md)


# ---------------------------------------------------------------- models

def resnet50_imagenet() -> tuple[nn.Module, str]:
    return ResNet50ImageNet(input_shape=(3, 224, 224), num_classes=1000), "agd.models.ResNet50ImageNet"


# ---------------------------------------------------------------- part 1: one epoch

def synthetic_cifar(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=gen)
    return x, torch.randint(0, 10, (n,), generator=gen)


def ours_epoch(name: str, x, y, batch: int, device, use_compile: bool, amp: str = "auto") -> float:
    torch.manual_seed(0)
    model, _ = build(name)
    init_weights(model)
    model.to(device)
    cnn = any(p.dim() == 4 for p in model.parameters())
    fast = cnn and device.type == "cuda"  # what amp=auto channels_last=auto resolve to
    if fast:
        model.to(memory_format=torch.channels_last)
    amp_dtype = torch.bfloat16 if amp == "bf16" or (amp == "auto" and fast) else None
    opt = AGD(model.parameters(), check_finite=False)
    train_loader = DeviceLoader(x, y, batch, mean=MEAN, std=STD, shuffle=True, augment=True,
                                device=device)
    test_loader = DeviceLoader(x[:batch], y[:batch], batch, mean=MEAN, std=STD, device=device)
    run_model = torch.compile(model) if use_compile else model
    if use_compile:  # compile outside the timed epoch, on a short warm-up epoch
        warm = DeviceLoader(x[:2 * batch], y[:2 * batch], batch, mean=MEAN, std=STD,
                            augment=True, device=device)
        train(run_model, opt, warm, test_loader, SquareLoss(10), 1, progress=False,
              amp_dtype=amp_dtype, channels_last=fast)
    _sync(device)
    start = time.perf_counter()
    train(run_model, opt, train_loader, test_loader, SquareLoss(10), 1, progress=False,
          amp_dtype=amp_dtype, channels_last=fast)
    _sync(device)
    return len(x) / (time.perf_counter() - start)


class PILImages(torch.utils.data.Dataset):
    """CIFAR-10 the way torchvision.datasets.CIFAR10 serves it: HWC uint8 → PIL → transform."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, transform):
        self.images = x.permute(0, 2, 3, 1).numpy()  # HWC, as CIFAR10.data
        self.targets = y.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index):
        return self.transform(Image.fromarray(self.images[index])), self.targets[index]


def reference_epoch(name: str, x, y, batch: int, device, workers: int) -> float:
    torch.manual_seed(0)
    model, _ = build(name)
    init_weights(model)
    model.to(device)
    opt = AGD(model.parameters(), foreach=False)
    transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                           T.Normalize(MEAN, STD)])
    loader = torch.utils.data.DataLoader(PILImages(x, y, transform), batch_size=batch, shuffle=True,
                                         num_workers=workers, pin_memory=device.type == "cuda",
                                         persistent_workers=False)
    weights = [p for p in model.parameters() if p.dim() >= 2]
    losses, accs, etas, updates = [], [], [], []
    _sync(device)
    start = time.perf_counter()
    model.train()
    for images, labels in loader:
        images, labels = images.to(device), labels.to(device)
        before = [w.detach().clone() for w in weights]
        out = model(images)
        target = nn.functional.one_hot(labels, 10).float() * math.sqrt(10)
        loss = ((out - target) ** 2).mean()
        model.zero_grad()
        loss.backward()
        etas.append(opt.step())
        with torch.no_grad():
            updates.append(sum(((w - b).norm() / b.norm()).item()
                               for w, b in zip(weights, before, strict=True)) / len(weights))
        losses.append(loss.item())
        accs.append((out.argmax(1) == labels).float().mean().item())
    _sync(device)
    return len(x) / (time.perf_counter() - start)


# ---------------------------------------------------------------- part 2: ResNet-50

def resnet50_throughput(batch: int, steps: int, warmup: int, device) -> dict:
    torch.manual_seed(0)
    model, source = resnet50_imagenet()
    init_weights(model)
    model.to(device)
    fast = device.type == "cuda"
    if fast:
        model.to(memory_format=torch.channels_last)
    opt = AGD(model.parameters(), check_finite=False)
    gen = torch.Generator().manual_seed(0)
    raw = torch.randint(0, 256, (batch, 3, 224, 224), dtype=torch.uint8, generator=gen).to(device)
    labels = torch.randint(0, 1000, (batch,), generator=gen).to(device)
    loss_fn = nn.CrossEntropyLoss()
    mean = torch.tensor((0.485, 0.456, 0.406), device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor((0.229, 0.224, 0.225), device=device).view(1, 3, 1, 1) * 255

    def forward_backward():
        x = (raw.float() - mean) / std
        if fast:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=fast):
            out = model(x)
        loss = loss_fn(out.float(), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()

    for _ in range(warmup):
        forward_backward()
        opt.step()
    iteration, step = [], []
    for _ in range(steps):
        _sync(device)
        t0 = time.perf_counter()
        forward_backward()
        _sync(device)
        t1 = time.perf_counter()
        opt.step()
        _sync(device)
        t2 = time.perf_counter()
        iteration.append(t2 - t0)
        step.append(t2 - t1)
    it, st = statistics.median(iteration), statistics.median(step)
    return {"source": source, "images_per_s": batch / it, "iteration_ms": it * 1e3,
            "step_ms": st * 1e3, "share": st / it}


def update_size_cost(images: int, batch: int, device, repeats: int = 3) -> list[tuple[str, float]]:
    """Epoch time of FCN 8x256 with the relative-update-size metric off, as AGD reports it
    from its step, and measured from a copy of every weight every step (then the difference
    and two norms), median of `repeats` interleaved epochs."""
    class CloneEveryStep(AGD):
        def step(self, closure=None):
            weights = [p for group in self.param_groups for p in group["params"]]
            before = torch._foreach_mul(weights, 1.0)
            eta = super().step(closure)
            self.last_update_size = relative_update_size(before, weights)
            return eta

    x, y = synthetic_cifar(images)
    loader = DeviceLoader(x, y, batch, mean=MEAN, std=STD, shuffle=True, augment=True, device=device)
    test = DeviceLoader(x[:batch], y[:batch], batch, mean=MEAN, std=STD, device=device)
    variants = {"off": (AGD, False), "reported by AGD's step": (AGD, True),
                "copy of every weight each step": (CloneEveryStep, False)}
    times = {name: [] for name in variants}
    for _ in range(repeats):
        for name, (cls, track) in variants.items():
            torch.manual_seed(0)
            model = init_weights(build("fcn8x256")[0]).to(device)
            opt = cls(model.parameters(), check_finite=False)
            _sync(device)
            start = time.perf_counter()
            train(model, opt, loader, test, SquareLoss(10), 1, track_update_size=track, progress=False)
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return [(name, statistics.median(ts)) for name, ts in times.items()]


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def parse_args(argv=None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    parser.add_argument("--models", default="fcn8x256,resnet18")
    parser.add_argument("--images", type=int, default=50_000, help="images in the FCN epoch")
    parser.add_argument("--cnn-images", type=int, default=None,
                        help="images in a CNN's epoch (default 50,000 on CUDA, 256 on CPU)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--ref-workers", type=int, default=2, help="DataLoader workers (reference)")
    parser.add_argument("--compile", action="store_true", help="torch.compile our model")
    parser.add_argument("--amp", default="auto", choices=["auto", "bf16", "off"],
                        help="ours: autocast as the config key amp (auto = bf16 for CNNs on CUDA)")
    parser.add_argument("--imagenet-batch", type=int, default=None, help="default 256 CUDA, 4 CPU")
    parser.add_argument("--imagenet-steps", type=int, default=None, help="default 30 CUDA, 2 CPU")
    parser.add_argument("--skip-imagenet", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--update-size-cost", type=int, default=0, metavar="IMAGES",
                        help="only time FCN 8x256 epochs of IMAGES images with the update-size "
                             "metric off / from AGD's step / from a weight copy, and exit")
    args = parser.parse_args(argv)
    return args, model_names(parser, args.models)


def print_update_size_cost(args, device) -> None:
    rows = update_size_cost(args.update_size_cost, args.batch, device)
    print(f"# update-size metric cost: FCN 8x256, {args.update_size_cost:,} images, batch "
          f"{args.batch}, {device.type}, {torch.get_num_threads()} threads, median of 3")
    print("| update-size metric | epoch time (s) | vs off |")
    print("|---|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.2f} | {100 * (seconds / rows[0][1] - 1):+.1f}% |")


def print_epochs(args, names: list[str], device, cnn_images: int) -> None:
    print("| model | images in the epoch | ours (images/s) | reference (images/s) | ours / reference |")
    print("|---|---|---|---|---|")
    for name in names:
        n = args.images if name.startswith("fcn") else cnn_images
        x, y = synthetic_cifar(n)
        ref = reference_epoch(name, x, y, args.batch, device, args.ref_workers)
        ours = ours_epoch(name, x, y, args.batch, device, args.compile, args.amp)
        limited = "" if n == 50_000 else " (limited)"
        flags = "".join(f", {f}" for f, on in (("compile", args.compile), ("amp=bf16", args.amp == "bf16"))
                        if on)
        print(f"| {name} ({build(name)[1]}{flags}) | {n:,}{limited} | {ours:,.0f} | {ref:,.0f} | "
              f"{ours / ref:.2f}x |", flush=True)


def print_resnet50(args, device) -> None:
    cuda = device.type == "cuda"
    batch = args.imagenet_batch or (256 if cuda else 4)
    steps = args.imagenet_steps or (30 if cuda else 2)
    result = resnet50_throughput(batch, steps, warmup=3 if cuda else 1, device=device)
    print()
    print(f"ResNet-50 ImageNet-shaped synthetic ({result['source']}), batch {batch}, median of "
          f"{steps} steps{', bf16 autocast + channels_last' if cuda else ', fp32'}:")
    print()
    print("| images/s | iteration (ms) | AGD step (ms) | AGD step share |")
    print("|---|---|---|---|")
    print(f"| {result['images_per_s']:,.1f} | {result['iteration_ms']:.1f} | {result['step_ms']:.2f} | "
          f"{100 * result['share']:.2f}% |")


def main(argv=None) -> int:
    np.seterr(all="ignore")
    args, names = parse_args(argv)
    device = select_device(args.device, args.threads)
    if args.update_size_cost:
        print_update_size_cost(args, device)
        return 0
    cuda = device.type == "cuda"
    cnn_images = args.cnn_images or (50_000 if cuda else 256)
    print(f"# training throughput: {device.type} ({hardware(device)}), torch {torch.__version__}, "
          f"batch {args.batch}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    if not cuda:
        print(f"# CPU run: a CNN's epoch is limited to {cnn_images:,} images and ResNet-50 to a "
              "small batch and a few steps (--cnn-images, --imagenet-batch, --imagenet-steps); "
              "these are not full-size figures")
    print()
    print_epochs(args, names, device, cnn_images)
    if not args.skip_imagenet:
        print_resnet50(args, device)
    return 0
