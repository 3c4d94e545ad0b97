"""DeepAugment (Hendrycks et al., 2021): distort images by passing them through image-to-image networks
whose weights and activations are randomly perturbed.

Two networks as in the original: a convolutional auto-encoder (`CAE`, two stride-2 convolutions down,
two transposed convolutions up) and an EDSR-like super-resolution body (`EDSRLike`, residual blocks
with a global skip). Per image, one network is picked and perturbed from the image's own random stream:
multiplicative weight noise, negated and zeroed filters, permuted feature maps, and swapped activation
functions (relu / leaky / elu / tanh / sin), one draw per layer.

Weights: the paper's CAE/EDSR weights can be given as state-dict files in our module layout
(`weights={"cae": path, "edsr": path}`); the network then reconstructs its input and the perturbed
output is the distorted image, as in the original. The embedded default has no trained weights and
uses **randomly initialised networks** (fixed by `seed`): since a random network does not reconstruct
its input, the distortion is the *change* the perturbation causes, `x + s·(f_perturbed(x) − f(x))`,
rescaled to a random strength s (std in [strength_min, strength_max] of the 0..1 range). This emulates
a network that reconstructs exactly and is then perturbed; it is our guess, not the original recipe.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .seeding import image_rng

NETWORKS: tuple[str, ...] = ("cae", "edsr")
ACTIVATIONS = ("relu", "leaky", "elu", "tanh", "sin")


def _act(x: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "relu":
        return F.relu(x)
    if kind == "leaky":
        return F.leaky_relu(x, 0.2)
    if kind == "elu":
        return F.elu(x)
    if kind == "tanh":
        return torch.tanh(x)
    return torch.sin(x)


class CAE(nn.Module):
    """Convolutional auto-encoder: 3→C→2C (stride 2 twice) → C → 3 (transposed, stride 2 twice)."""

    n_acts = 3

    def __init__(self, channels: int = 32):
        super().__init__()
        c = channels
        self.enc1 = nn.Conv2d(3, c, 4, 2, 1)
        self.enc2 = nn.Conv2d(c, 2 * c, 4, 2, 1)
        self.dec1 = nn.ConvTranspose2d(2 * c, c, 4, 2, 1)
        self.dec2 = nn.ConvTranspose2d(c, 3, 4, 2, 1)

    def forward(self, x: torch.Tensor, p: Optional[Mapping[str, torch.Tensor]] = None,
                acts: Sequence[str] = ("relu",) * 3) -> torch.Tensor:
        p = p or dict(self.named_parameters())
        h = _act(F.conv2d(x, p["enc1.weight"], p["enc1.bias"], 2, 1), acts[0])
        h = _act(F.conv2d(h, p["enc2.weight"], p["enc2.bias"], 2, 1), acts[1])
        h = _act(F.conv_transpose2d(h, p["dec1.weight"], p["dec1.bias"], 2, 1), acts[2])
        return torch.sigmoid(F.conv_transpose2d(h, p["dec2.weight"], p["dec2.bias"], 2, 1))


class EDSRLike(nn.Module):
    """EDSR body at input resolution: head conv, `blocks` residual blocks (scale 0.1), tail conv, global skip."""

    def __init__(self, channels: int = 32, blocks: int = 4):
        super().__init__()
        self.blocks = blocks
        self.n_acts = blocks
        self.head = nn.Conv2d(3, channels, 3, 1, 1)
        self.body = nn.ModuleList(nn.Sequential(nn.Conv2d(channels, channels, 3, 1, 1), nn.Conv2d(channels, channels, 3, 1, 1))
                                  for _ in range(blocks))
        self.tail = nn.Conv2d(channels, 3, 3, 1, 1)

    def forward(self, x: torch.Tensor, p: Optional[Mapping[str, torch.Tensor]] = None,
                acts: Optional[Sequence[str]] = None) -> torch.Tensor:
        p = p or dict(self.named_parameters())
        acts = acts or ("relu",) * self.blocks
        h = F.conv2d(x, p["head.weight"], p["head.bias"], 1, 1)
        for i in range(self.blocks):
            r = _act(F.conv2d(h, p[f"body.{i}.0.weight"], p[f"body.{i}.0.bias"], 1, 1), acts[i])
            h = h + 0.1 * F.conv2d(r, p[f"body.{i}.1.weight"], p[f"body.{i}.1.bias"], 1, 1)
        return x + F.conv2d(h, p["tail.weight"], p["tail.bias"], 1, 1)


def perturb(net: nn.Module, rng: np.random.Generator) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Randomly perturbed parameters and activation kinds for one forward pass of `net`."""
    params: dict[str, torch.Tensor] = {}
    for name, w in net.named_parameters():
        w = w.detach()
        if w.ndim < 4:
            params[name] = w
            continue
        on = lambda a: torch.from_numpy(a).to(w.device)  # noqa: E731 — draws on the host, as on the CPU
        g = on(rng.standard_normal(w.shape).astype(np.float32))
        w = w * (1 + float(rng.uniform(0.1, 0.6)) * g)
        n_out = w.shape[0]
        if rng.random() < 0.3:  # negate some filters
            w = w * on(np.where(rng.random(n_out) < 0.2, -1.0, 1.0).astype(np.float32)).view(-1, 1, 1, 1)
        if rng.random() < 0.3:  # zero some filters
            w = w * on((rng.random(n_out) >= 0.2).astype(np.float32)).view(-1, 1, 1, 1)
        if rng.random() < 0.2 and n_out > 3:  # permute feature maps
            w = w[on(rng.permutation(n_out))]
        params[name] = w
    acts = [ACTIVATIONS[int(rng.integers(len(ACTIVATIONS)))] if rng.random() < 0.5 else "relu" for _ in range(net.n_acts)]
    return params, acts


def build_networks(seed: int = 0, channels: int = 32, edsr_blocks: int = 4,
                   weights: Optional[Mapping[str, Optional[str]]] = None) -> dict[str, nn.Module]:
    """The networks, random-initialised from `seed` or loaded from state-dict paths in `weights`."""
    from ..models.registry import load_state_checked, read_checkpoint

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        nets = {"cae": CAE(channels), "edsr": EDSRLike(channels, edsr_blocks)}
    for name, path in (weights or {}).items():
        if path:
            state = read_checkpoint(path, f"deepaugment {name}")
            load_state_checked(nets[name], state.get("state_dict", state), str(path), f"deepaugment {name}")
            nets[name].pretrained = True
    for net in nets.values():
        net.eval().requires_grad_(False)
    return nets


@torch.no_grad()
def deepaugment_image(image: np.ndarray, rng: np.random.Generator, nets: Mapping[str, nn.Module],
                      networks: Sequence[str] = NETWORKS, strength: tuple[float, float] = (0.04, 0.2)) -> np.ndarray:
    """One DeepAugment view of a uint8 HWC image."""
    net = nets[networks[int(rng.integers(len(networks)))]]
    x = torch.from_numpy(np.ascontiguousarray(image)).to(next(net.parameters()).device).permute(2, 0, 1)[None].float() / 255
    params, acts = perturb(net, rng)
    if getattr(net, "pretrained", False):
        y = net(x, params, acts)
    else:
        delta = net(x, params, acts) - net(x)
        delta = delta - delta.mean(dim=(2, 3), keepdim=True) * float(rng.random() < 0.5)
        y = x + delta * (float(rng.uniform(*strength)) / (delta.std() + 1e-8))
    y = y.clamp(0, 1).mul(255).round().to(torch.uint8)
    return y[0].permute(1, 2, 0).cpu().numpy()


def deepaugment_images(images: np.ndarray, seed: int, keys: Optional[Sequence[int]] = None, *, channels: int = 32,
                       edsr_blocks: int = 4, networks: Sequence[str] = NETWORKS,
                       strength: tuple[float, float] = (0.04, 0.2), weights: Optional[Mapping[str, Optional[str]]] = None,
                       net_seed: int = 0, progress: bool = False) -> np.ndarray:
    """DeepAugment views of uint8 NHWC images; image i uses the stream (seed, keys[i]) (default keys: indices)."""
    from tqdm import tqdm

    from .seeding import TAG

    from ..device import place

    nets = {k: place(n) for k, n in build_networks(net_seed, channels, edsr_blocks, weights).items()}  # params device
    keys = range(len(images)) if keys is None else keys
    out = np.empty_like(images)
    for i in tqdm(range(len(images)), desc="deepaugment", disable=not progress, mininterval=5):
        out[i] = deepaugment_image(images[i], image_rng(seed, keys[i], TAG["deepaugment"]), nets, networks, strength)
    return out
