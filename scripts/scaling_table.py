"""The expected data-parallel scaling of every registered network, from its parameters and MACs (a model, not a
measurement): what `docs/scaling.md` shows.

    python scripts/scaling_table.py                      # the markdown table on stdout
    python scripts/scaling_table.py --batch 128 --gpu-tflops 400 --utilisation 0.4 --link-gbs 450 --ib-gbs 25

Per training step and GPU, with B images per GPU:
- compute: 3 × 2 × MACs × B floating-point operations (forward, and a backward twice as costly), at
  `utilisation` × `gpu_tflops`;
- communication: DDP all-reduces every gradient once per step. A ring all-reduce of S bytes over N GPUs
  sends and receives 2 (N − 1)/N × S per GPU, so at most 2 S; gradients in fp32 (DDP's default) are
  S = 4 × parameters bytes;
- DDP overlaps the all-reduce of gradient buckets with the rest of the backward pass, so a step costs
  about max(compute, communication) rather than their sum while communication stays below the backward's
  two thirds of compute; the ratio communication / compute tells which side a network is on.
Inside one node the link is NVLink-class (`link_gbs`, GB/s per GPU and direction); between nodes it is
the network (`ib_gbs`: 25 GB/s is one 200 Gb/s InfiniBand or RoCE port per GPU).
"""
from __future__ import annotations

import argparse

import convzoo
from convzoo.render import md_table


def rows(batch: int, tflops: float, utilisation: float, link_gbs: float, ib_gbs: float, world: int) -> list[list[str]]:
    out = []
    for name in convzoo.list_models():
        info = convzoo.model_info(name)
        size = info.input_size
        totals = convzoo.analyze(name, input_size=size).totals
        compute_s = 6 * totals.macs * batch / (tflops * 1e12 * utilisation)
        grad_bytes = 4 * totals.trainable_params
        ring = 2 * (world - 1) / world * grad_bytes
        nvlink_s, ib_s = ring / (link_gbs * 1e9), ring / (ib_gbs * 1e9)
        out.append([name, f"{size[1]}", f"{totals.trainable_params / 1e6:.1f} M", f"{totals.macs / 1e9:.2f} G",
                    f"{grad_bytes / 1e6:.0f} MB", f"{1e3 * compute_s:.1f}", f"{1e3 * nvlink_s:.2f}",
                    f"{nvlink_s / compute_s:.2f}", f"{1e3 * ib_s:.1f}", f"{ib_s / compute_s:.2f}"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=128, help="images per GPU and step")
    ap.add_argument("--gpu-tflops", type=float, default=400.0, help="dense bf16 peak of one GPU")
    ap.add_argument("--utilisation", type=float, default=0.4, help="the fraction of the peak a training step reaches")
    ap.add_argument("--link-gbs", type=float, default=450.0, help="GB/s per GPU inside a node (NVLink)")
    ap.add_argument("--ib-gbs", type=float, default=25.0, help="GB/s per GPU between nodes")
    ap.add_argument("--world", type=int, default=8, help="GPUs in the ring")
    a = ap.parse_args()
    head = ["network", "input", "params", "MACs/img", "grads/step", "compute ms", "NVLink ms", "comm/compute",
            "IB ms", "comm/compute (IB)"]
    print("\n".join(md_table(head, rows(a.batch, a.gpu_tflops, a.utilisation, a.link_gbs, a.ib_gbs, a.world),
                             right=[False] + [True] * (len(head) - 1))))


if __name__ == "__main__":
    main()
