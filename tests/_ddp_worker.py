"""Training jobs run both in one process and under `torchrun --nproc_per_node 2` (tests/test_ops.py).

    torchrun --nproc_per_node 2 tests/_ddp_worker.py {all|mlp|distill|teacher} OUTDIR
Rank 0 writes each job's trained weights to OUTDIR/<job>.pt; the test compares them with single-process training.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from robustify.train import distributed


def train_mlp(steps: int = 4, batch: int = 7) -> dict:
    """A tiny MLP through the helper (shard → DDP → scaled mean loss); batch 7 splits unevenly (4 + 3)."""
    dist = distributed.setup()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))
    ddp = distributed.wrap(model, dist)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(64, 6, generator=g), torch.randint(0, 3, (64,), generator=g)
    losses = []
    for step in range(steps):
        idx = torch.randperm(64, generator=torch.Generator().manual_seed(100 + step))[:batch]
        local, scale = distributed.shard(idx, dist)
        loss = F.cross_entropy(ddp(x[local]), y[local]) * scale
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(distributed.all_reduce_mean(loss.item() / scale, dist, weight=len(local)))
    return {"state": {k: v.detach().clone() for k, v in model.state_dict().items()}, "losses": losses}


def train_distill() -> dict:
    """The real distillation loop (`train.distill.train`), tiny student, BN frozen and no dropout so that
    per-rank batches are mathematically the global batch."""
    from robustify.models.student import create_student
    from robustify.train.distill import DistillData, TrainSettings, train
    from robustify.train.losses import LossWeights

    torch.manual_seed(0)
    student = create_student("resnet8_cifar", n_tunable_blocks=2, head_depth=1, dropout_p=0.0, pretrained=False)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 48, 3, 32, 32, generator=g)
    with torch.no_grad():
        student.eval()
        z = torch.stack([student.forward_trunk(v) for v in x])
    data = DistillData(z[0], z[1:], torch.randint(0, 10, (48,), generator=g), torch.randn(48, 10, generator=g),
                       torch.randn(2, 48, 10, generator=g))
    res = train(student, data, LossWeights(), TrainSettings(epochs=2, lr=1e-2, batch_size=16, freeze_bn=True), seed=3,
                progress=False)
    return {"state": {k: v.detach().clone() for k, v in student.trainable_state().items()}, "history": res["history"]}


def train_teacher(out: str = "") -> dict:
    """The real teacher/E2E/VPT loop (`train.teacher.robustify_teacher`), tiny random ResNet-8, AugMix + JSD.
    Its BatchNorm layers train on per-rank batch statistics, so it matches one process only loosely."""
    from robustify.config import TeachersConfig
    from robustify.models import create_model
    from robustify.train.teacher import robustify_teacher

    torch.manual_seed(0)
    model = create_model("resnet8_cifar", pretrained=False, num_classes=10)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, 40).astype(np.int64)
    res = robustify_teacher("resnet8_cifar", "augmix", 0, TeachersConfig(epochs=2, lr=0.02, batch_size=20), x, y,
                            out or "teacher_out.pt", model=model, progress=False)
    return {"state": {k: v.detach().clone() for k, v in res.model.state_dict().items()}, "history": res.epoch_loss}


JOBS = {"mlp": train_mlp, "distill": train_distill, "teacher": train_teacher}

if __name__ == "__main__":
    torch.set_num_threads(1)
    outdir = Path(sys.argv[2])
    for name in (JOBS if sys.argv[1] == "all" else [sys.argv[1]]):
        out = JOBS[name](str(outdir / "teacher_out.pt")) if name == "teacher" else JOBS[name]()
        dist = distributed.current()
        if dist.is_main:
            torch.save({**out, "world_size": dist.world_size}, outdir / f"{name}.pt")
    distributed.cleanup(distributed.current())
