"""Images/s of the batched Fast AutoAugment pipeline vs the same policy applied per image with PIL.

Both sides run the full training augmentation of Appendix A.2 (Lim et al. 2019) on CIFAR-shaped
uint8 images: policy (one sub-policy per image, each op fires with its probability) -> random crop
(padding 4) + horizontal flip -> normalisation -> Cutout 16. The per-image side is the way the
authors' code runs it (PIL ops image by image, ``tests/augment_reference.py``); the batched
side is ``companion.data.augment.make_augment("fast-autoaugment", ...)``. Both use one CPU thread by
default (``--threads``), so the ratio measures the batching, not parallelism.

    .venv/bin/python benchmarks/bench_augment.py [--images 2048] [--batch 512] [--device cpu]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from companion.data import augment, fast_autoaugment

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the PIL reference lives with the tests
from augment_reference import pil_op  # noqa: E402


def per_image_pipeline(
    x_nhwc: np.ndarray, policy: list, dataset: str, rng: random.Random
) -> torch.Tensor:
    """The whole augmentation, image by image: PIL policy, numpy crop/flip/normalise/cutout."""
    mean = np.array(augment.MEAN[dataset], np.float32)
    std = np.array(augment.STD[dataset], np.float32)
    side = augment.CUTOUT_SIDE[dataset]
    out = []
    for img_array in x_nhwc:
        img = Image.fromarray(img_array)
        for name, prob, level in rng.choice(policy):
            if rng.random() < prob:
                low, high = fast_autoaugment.OP_RANGES[name]
                v = level * (high - low) + low
                if name in fast_autoaugment.SIGNED_OPS and rng.random() < 0.5:
                    v = -v
                img = pil_op(img, name, v, rng)
        a = np.pad(np.asarray(img), ((4, 4), (4, 4), (0, 0)))
        top, left = rng.randrange(9), rng.randrange(9)
        a = a[top : top + 32, left : left + 32]
        if rng.random() < 0.5:
            a = a[:, ::-1]
        a = (a.astype(np.float32) / 255.0 - mean) / std
        y0, x0 = rng.randrange(32) - side // 2, rng.randrange(32) - side // 2
        a[max(0, y0) : max(0, y0 + side), max(0, x0) : max(0, x0 + side)] = 0
        out.append(a.transpose(2, 0, 1))
    return torch.from_numpy(np.stack(out))


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=512, help="batch size of the batched pipeline")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dataset", default="cifar10", choices=sorted(augment.POLICY_FOR))
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    rng = np.random.default_rng(0)
    x_nhwc = rng.integers(0, 256, size=(args.images, 32, 32, 3), dtype=np.uint8)
    x = torch.from_numpy(x_nhwc).permute(0, 3, 1, 2).contiguous().to(args.device)
    policy = fast_autoaugment.load_policy(augment.POLICY_FOR[args.dataset])
    batched_aug = augment.make_augment("fast-autoaugment", args.dataset)
    gen = torch.Generator(device=args.device).manual_seed(0)

    def batched():
        for start in range(0, args.images, args.batch):
            batched_aug(x[start : start + args.batch], gen)
        if x.is_cuda:
            torch.cuda.synchronize()

    def per_image():
        per_image_pipeline(x_nhwc, policy, args.dataset, random.Random(0))

    batched()  # warm-up (policy tables, kernels)
    b_best, b_med = best_of(batched, args.repeats)
    p_best, p_med = best_of(per_image, args.repeats)
    n = args.images
    print(f"Fast AutoAugment pipeline ({args.dataset} policy), {n} images 32x32x3, "
          f"{args.threads} CPU thread(s), batched on {args.device} in batches of {args.batch}")
    for label, best, median in (("per-image PIL", p_best, p_med), ("batched torch", b_best, b_med)):
        rate = f"{n / best:10.0f} images/s (best of {args.repeats}; median {n / median:.0f})"
        print(f"  {label} : {rate}")
    print(f"  ratio batched / per-image: {p_best / b_best:.1f}x")


if __name__ == "__main__":
    main()
