"""Every raw file the embedded profile uses: its pinned sha256 and where it comes from without a mirror.

A mirror (ROBUSTIFY_DATA_MIRROR or params `data.mirror`) is a directory holding these files and a
MANIFEST.json; files are verified against the sha256 pinned here. Without a mirror, `url` is fetched
(weights, metadata) or `build` makes the file from its canonical download (datasets); built arrays
cannot reproduce the mirror's bytes, so they are checked by array shapes instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

WISE_FT = "https://raw.githubusercontent.com/mlfoundations/wise-ft/58b7a4b343b09dc06606aa929c2ef51accced8d1/src/datasets/objectnet_metadata/"
AKAMASTER = "https://github.com/akamaster/pytorch_resnet_cifar10/raw/d5489e8995e81e91ce6b1d69dcc98ad579b0b153/pretrained_models/"


@dataclass(frozen=True)
class Source:
    name: str
    sha256: str
    url: Optional[str] = None  # fetched as is
    build: Optional[str] = None  # name of a builder in robustify.data.build


SOURCES: dict[str, Source] = {
    s.name: s
    for s in [
        Source("cifar10.npz", "06accacfe27063aeb9a506ba99ab1dbc9f2db73c9c31fcc216bc1bb2a9d976b3", build="cifar10"),
        Source("pacs_64.npz", "a2add0c51c4c433454fea21ee5687014db5d712e5a51c3196255272b5e10696d", build="pacs"),
        Source("imagenet_samples_96.npz", "fcc9508bfc71fe8e67081f2a0bcc720746142db7b413c9df32aa39054f571f68", build="imagenet_samples"),
        Source("resnet20-12fca82f.th", "12fca82f0bebc4135bf1f32f6e3710e61d5108578464b84fd6d7f5c1b04036c8", url=AKAMASTER + "resnet20-12fca82f.th"),
        Source("resnet56-4bfd9763.th", "4bfd97631478d6b638d2764fd2baff3edb1d7d82252d54439343b6596b9b5367", url=AKAMASTER + "resnet56-4bfd9763.th"),
        Source("folder_to_objectnet_label.json", "ccef32f7421b23619fd55bdbd58f3dc2f323d18e169e37bce94326a601de90db", url=WISE_FT + "folder_to_objectnet_label.json"),
        Source("objectnet_to_imagenet_1k.json", "9a6e167524548a653a8ec7f149d9f0880346f6d0218136f41ae57c37c8deac97", url=WISE_FT + "objectnet_to_imagenet_1k.json"),
        Source("pytorch_to_imagenet_2012_id.json", "2aa72a1bc3824ebc7505db2411fa345ce39c739241aead5274e6aca771219746", url=WISE_FT + "pytorch_to_imagenet_2012_id.json"),
    ]
}
