"""Typed mirror of params.yaml. `extra="forbid"` everywhere: a typo is an error, never a silent default.

params.yaml is the one parameter file (Snakemake configfile, DVC params); presets under
workflow/presets/ are merged over it the way Snakemake merges `--configfile` (recursive dict update).
The JSON schema in workflow/schemas/params.schema.json is exported from `Params` (test keeps it in sync).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .augment.names import DEFAULT_SCHEME, SCHEMES
from .errors import ConfigError
from .models.names import MODEL_NAMES
from .corruptions.names import CORRUPTIONS as CORRUPTION_NAMES

DEVICE_PATTERN = r"^(auto|cpu|cuda(:\d+)?)$"  # params device, --device (robustify.device checks it too)
ModelName = Literal[MODEL_NAMES]  # type: ignore[valid-type]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


def known_names(values: list[str], valid: tuple, what: str) -> list[str]:
    """Names from a registry, each once; an unknown one gets a did-you-mean."""
    for name in values:
        if name not in valid:
            guess = difflib.get_close_matches(name, valid, n=1)
            hint = f"did you mean '{guess[0]}'?" if guess else f"valid: {', '.join(valid)}"
            raise ValueError(f"unknown {what} '{name}'; {hint}")
    if len(set(values)) != len(values):
        raise ValueError(f"a {what} is listed twice; list each once")
    return values


class DataConfig(Strict):
    """Where raw data comes from and where prepared data goes."""

    mirror: Optional[str] = Field(None, description="directory with MANIFEST.json; env ROBUSTIFY_DATA_MIRROR overrides")
    cache: str = Field("~/.cache/robustify", description="download cache used when there is no mirror")
    root: str = Field("data", description="prepared datasets and caches (DVC outputs)")
    val_per_class: int = Field(100, ge=0, le=900, description="CIFAR-10 train images per class held out for validation")
    train_per_class: Optional[int] = Field(None, ge=1, le=1000, description="cap on train images per class (smoke runs); null = all")
    test_per_class: Optional[int] = Field(None, ge=1, le=1000, description="cap on test images per class (smoke runs); null = all")
    paper: "PaperDataConfig" = Field(default_factory=lambda: PaperDataConfig())


class PaperDataConfig(Strict):
    """User-supplied data of the paper profile (ImageFolder trees); unused by the embedded default."""

    imagenet_train: Optional[str] = None
    imagenet_val: Optional[str] = None
    imagenet_c: Optional[str] = None
    imagenet_r: Optional[str] = None
    imagenet_a: Optional[str] = None
    imagenet_sketch: Optional[str] = None
    imagenet_v2: Optional[str] = None
    objectnet: Optional[str] = None


DataConfig.model_rebuild()


class ModelsConfig(Strict):
    students: list[ModelName] = Field(min_length=1)
    teachers: list[ModelName] = Field(min_length=1)
    image_size: dict[ModelName, int] = Field(default_factory=dict, description="input size per model (px); default: the model's own")
    weights: dict[ModelName, str] = Field(default_factory=dict, description="local weight files for models without shipped weights (paper preset)")

    @field_validator("image_size")
    @classmethod
    def _sizes(cls, v: dict[str, int]) -> dict[str, int]:
        for name, size in v.items():
            if not 16 <= size <= 1024:
                raise ValueError(f"image_size of {name} must be within 16..1024 px, got {size}")
        return v


class LinearProbeConfig(Strict):
    """Multinomial logistic regression on frozen pooled features (the LP baseline and the LP head of ImageNet students)."""

    students: list[ModelName] = Field(default_factory=list, description="students that need a linear-probe head")
    weight_decays: list[float] = Field([1e-3, 1e-2, 3e-2, 1e-1, 3e-1], min_length=1,
                                       description="L2 strengths tried; the best on the validation split is kept")
    max_iter: int = Field(100, ge=1, le=10_000, description="L-BFGS iterations")

    @field_validator("weight_decays")
    @classmethod
    def _non_negative(cls, v: list[float]) -> list[float]:
        if any(w < 0 for w in v):
            raise ValueError("weight decays must be >= 0")
        return v
    batch_size: int = Field(128, ge=1, description="feature extraction batch size")


class TrackingConfig(Strict):
    uri: Optional[str] = Field(None, description="MLflow tracking URI; default sqlite:///mlflow.db at the repo root; env MLFLOW_TRACKING_URI overrides")
    experiment: str = Field("robustify", min_length=1)


EMBEDDED_SUITES = ("clean", "c", "r", "sketch", "objectnet", "objectnet_c")
PAPER_SUITES = ("imagenet", "imagenet_c", "imagenet_r", "imagenet_a", "imagenet_sketch", "imagenet_v2", "imagenet_objectnet", "imagenet_objectnet_c")
PROBE_SUITES = ("transfer", "retention")
SuiteName = Literal[EMBEDDED_SUITES + PAPER_SUITES + PROBE_SUITES]  # type: ignore[valid-type]


class EvaluateConfig(Strict):
    """One-pass MC-dropout evaluation (issue 8): every selection rule and Fcorrect from one pass per dataset."""

    mc_passes: int = Field(10, ge=1, le=1000, description="T: stochastic passes of the heads per image (trunk runs once)")
    dropout_p: Optional[float] = Field(None, ge=0.0, lt=1.0, description="override the heads' dropout p at test time (heads with pre_logits/classifier); null = the model's own")
    beta: float = Field(1.0, ge=0.0, description="weight of KL(p_combined || p_h) in the selection score u_h + beta*KL")
    suites: list[SuiteName] = Field(default_factory=lambda: ["clean", "c", "r", "sketch", "objectnet", "objectnet_c", "transfer", "retention"],
                                    description="datasets to evaluate: embedded analogues, paper folders, transfer/retention probes")
    c_severities: list[int] = Field(default_factory=lambda: [1, 2, 3, 4, 5], description="CIFAR-10-C / ObjectNet-C severities read")
    c_corruptions: list[str] = Field(default_factory=list, description="corruptions read from the corrupted copies; empty = all in their manifest")
    per_class: Optional[int] = Field(None, ge=1, description="at most this many images per class and dataset (null = all); smoke runs")
    batch_size: int = Field(32, ge=1, le=65536, description="inference batch; small ones stay in the CPU caches (Lite0 @ 96 px: 1.3 ms/img at 32 vs 3.1 at 256)")
    freeze: bool = Field(True, description="run trunk/tunable/pre-logits as a frozen TorchScript graph (BN folded; 1.1-1.5x on CPU); false = eager")
    share_trunk: bool = Field(True, description="distilled students with one frozen trunk (every teacher, scheme, variant and seed), "
                              "and the pretrained original and linear probe they start from, share its outputs per dataset, "
                              "cached under <data.root>/cache/eval_trunk; false = every evaluation runs the trunk")
    seed: int = Field(0, description="seed of the dropout masks")
    store_probs: bool = Field(True, description="keep the per-head mean probabilities in the per-sample file (float16)")
    transfer_domain: str = Field("photo", description="PACS domain of the PACS-7 transfer probe")
    transfer_test_fraction: float = Field(0.3, gt=0.0, lt=1.0, description="stratified test share of the PACS-7 transfer probe")
    transfer_weight_decay: float = Field(1e-4, ge=0.0)
    transfer_max_iter: int = Field(200, ge=1, le=10_000, description="L-BFGS iterations of the transfer probe")
    paper_paths: dict[str, str] = Field(default_factory=dict, description="paper preset: suite name -> image-folder root (imagenet, imagenet_c, ...)")
    imagenet_names_2012: Optional[str] = Field(None, description="optional wise-ft imagenet_to_label_2012_v2 file; default: timm lemmas ordered by pytorch_to_imagenet_2012_id.json")

    @field_validator("c_severities")
    @classmethod
    def _severities(cls, v: list[int]) -> list[int]:
        bad = [s for s in v if s not in (1, 2, 3, 4, 5)]
        if bad or not v:
            raise ValueError(f"severities must be a non-empty subset of 1..5, got {v}")
        return sorted(set(v))

    @field_validator("paper_paths")
    @classmethod
    def _paper_keys(cls, v: dict[str, str]) -> dict[str, str]:
        bad = [k for k in v if k not in PAPER_SUITES]
        if bad:
            raise ValueError(f"paper_paths keys {bad} are not paper suites {list(PAPER_SUITES)}")
        return v


class AugMixConfig(Strict):
    """AugMix (torchvision op, original op set) — AugMix paper defaults."""

    severity: int = Field(3, ge=1, le=10, description="magnitude bins used (of 10)")
    width: int = Field(3, ge=1, le=10, description="augmentation chains mixed")
    depth: int = Field(-1, ge=-1, le=10, description="ops per chain; -1 = random 1..3")
    alpha: float = Field(1.0, gt=0, description="Dirichlet/Beta concentration")
    all_ops: bool = Field(False, description="add brightness/contrast/colour/sharpness (overlap the test corruptions; off as in the paper)")

    @field_validator("depth")
    @classmethod
    def _depth(cls, v: int) -> int:
        if v == 0:
            raise ValueError("depth must be -1 (random 1..3) or ≥ 1")
        return v


class PixMixConfig(Strict):
    """PixMix with procedurally generated fractals (authors' CIFAR defaults k=4, β=3)."""

    k: int = Field(4, ge=0, le=10, description="maximum mixing rounds")
    beta: float = Field(3.0, gt=0)
    severity: int = Field(3, ge=1, le=10, description="severity of the single augmentation ops")
    fractals: int = Field(1000, ge=1, le=100_000, description="fractal pictures generated (our IFS code)")
    fractal_seed: int = 0


class DeepAugmentConfig(Strict):
    """DeepAugment with perturbed CAE / EDSR-like networks (random-init unless weight paths are given)."""

    p_source: float = Field(0.5, ge=0, le=1, description="augmix_deepaugment: probability a view starts from the DeepAugment image")
    channels: int = Field(32, ge=4, le=256)
    edsr_blocks: int = Field(4, ge=1, le=32)
    strength_min: float = Field(0.04, ge=0, le=1, description="random-init nets: distortion std range (0..1 pixel scale)")
    strength_max: float = Field(0.2, ge=0, le=1)
    net_seed: int = Field(0, description="initialisation of the random networks")
    seed: int = Field(0, description="per-image perturbations of the pre-generated pool")
    cae_weights: Optional[str] = Field(None, description="paper option: CAE state dict (our module layout)")
    edsr_weights: Optional[str] = Field(None, description="paper option: EDSR state dict (our module layout)")

    @model_validator(mode="after")
    def _range(self) -> "DeepAugmentConfig":
        if self.strength_min > self.strength_max:
            raise ValueError(f"strength_min {self.strength_min} > strength_max {self.strength_max}")
        return self


class TeachersConfig(Strict):
    """Teacher robustification: fine-tune each teacher from its pretrained weights under each scheme."""

    schemes: list[str] = Field(default_factory=lambda: [DEFAULT_SCHEME], min_length=1, description=f"subset of {', '.join(SCHEMES)}")
    seeds: Optional[list[int]] = Field(None, min_length=1, description="seeds of the robust teachers; null = the top-level seeds. "
                                       "A distillation run of seed s uses the teacher of seed s where one was trained, else the "
                                       "first of these: a one-off teacher can serve every distillation seed")
    epochs: int | dict[str, int] = Field(5, description="fine-tuning epochs; a mapping teacher -> epochs gives each teacher its own budget")
    lr: float = Field(0.05, gt=0, le=10, description="peak learning rate of the one-cycle schedule (SGD, Nesterov)")
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(5e-4, ge=0)
    batch_size: int = Field(128, ge=2, le=4096)
    micro_batch: int = Field(32, ge=0, le=65536, description="images per forward (views included) when no layer depends on the batch "
                             "(frozen BatchNorm, as VPT trains): gradients accumulate, the update is the same; 0 = whole batch")
    warmup: float = Field(0.15, ge=0, le=0.9, description="fraction of steps rising to the peak lr")
    jsd_lambda: float = Field(12.0, ge=0, description="weight of the JSD consistency term (schemes with AugMix)")
    train_per_class: Optional[int] = Field(None, ge=1, description="limit training images per class (smoke runs); null = the whole train split")
    augmix: AugMixConfig = Field(default_factory=AugMixConfig)
    pixmix: PixMixConfig = Field(default_factory=PixMixConfig)
    deepaugment: DeepAugmentConfig = Field(default_factory=DeepAugmentConfig)
    test_c_per_class: int = Field(0, ge=0, le=1000, description="CIFAR-10 test images per class in the teacher record's own "
                                  "CIFAR-10-C estimate; 0 = none (the workflow's evaluation of the teacher measures the same cells)")
    val_c_per_class: int = Field(30, ge=1, le=900, description="validation images per class for the teacher–student robustness gap")
    severities: list[int] = Field(default_factory=lambda: [1, 2, 3, 4, 5], min_length=1)
    gap_student: ModelName = Field("resnet56_cifar", description="plain pretrained student the teacher must beat on corrupted validation images")
    corruption_seed: int = 0

    @field_validator("schemes")
    @classmethod
    def _schemes(cls, v: list[str]) -> list[str]:
        return known_names(v, SCHEMES, "scheme")

    @field_validator("epochs")
    @classmethod
    def _epochs(cls, v):
        if isinstance(v, int):
            items = {"epochs": v}
        else:
            items = v
            known_names(list(v), MODEL_NAMES, "teacher")
        for k, n in items.items():
            if not 1 <= n <= 1000:
                raise ValueError(f"{k}: {n} epochs; give 1 to 1000")
        return v

    def for_teacher(self, teacher: str) -> "TeachersConfig":
        """This config with `epochs` resolved for `teacher` (the int itself, or its entry in the mapping)."""
        if isinstance(self.epochs, int):
            return self
        if teacher not in self.epochs:
            raise ConfigError(f"teachers.epochs has no entry for {teacher}; add '{teacher}: N' or give one number")
        return self.model_copy(update={"epochs": self.epochs[teacher]})

    @field_validator("severities")
    @classmethod
    def _severities(cls, v: list[int]) -> list[int]:
        if any(s not in (1, 2, 3, 4, 5) for s in v):
            raise ValueError("severities must be within 1..5")
        return v


class DistillConfig(Strict):
    """Uncertainty-based distillation into the three-head student (DESIGN.md §1, issue 7)."""

    model_config = ConfigDict(extra="forbid", validate_default=True, populate_by_name=True)

    pairs: dict[ModelName, list[ModelName]] = Field(
        default_factory=lambda: {"resnet56_cifar": ["resnet20_cifar"], "efficientnet_lite0": ["resnet20_cifar", "resnet56_cifar"]},
        description="student -> its teachers; the workflow runs the pairs with the student in models.students and the teacher in models.teachers")
    schemes: list[str] = Field(default_factory=lambda: [DEFAULT_SCHEME], min_length=1, description="teacher schemes distilled from")
    variants: list[Literal["full", "no_kd"]] = Field(default_factory=lambda: ["full", "no_kd"], min_length=1,
                                                     description="full = DESIGN.md §1 losses; no_kd = CE only (w/o KD, APT)")
    n_tunable_blocks: dict[ModelName, int] = Field(
        default_factory=lambda: {"resnet56_cifar": 3, "resnet20_cifar": 3, "resnet8_cifar": 2, "efficientnet_lite0": 2,
                                 "efficientnet_lite2": 2, "tiny_vit": 2, "tiny_clip": 1, "vit_l14_clip": 4, "vit_b16_clip": 4,
                                 "vit_b16": 4, "resnet50": 2, "resnet101": 2},
        description="blocks after the frozen trunk (shared tunable part + the heads' private blocks), per student")
    head_depth: int = Field(1, ge=0, le=64, description="last blocks each head owns a private copy of; 0 = classifier only")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="dropout p before each head's classifier (also the MC-dropout p)")
    alpha: float = Field(0.5, ge=0.0, le=1.0, description="weight of CE vs KD in each head's loss")
    tau: float = Field(1.0, gt=0.0, description="KD temperature")
    gamma: float = Field(1.0, ge=0.0, description="weight of the combined head's terms")
    lam: float = Field(1.0, ge=0.0, alias="lambda", description="weight of L_aug vs L_clean")
    kd_weighting: Literal["none", "teacher_confidence", "teacher_correct"] = Field(
        "teacher_correct", description="per-sample KD weight: none (exactly DESIGN.md §1), the teacher's max probability, "
        "or 1 where the teacher is right (default: measured in studies/distill_study.py)")
    epochs: int = Field(3, ge=1, le=1000)
    views_per_image: int = Field(3, ge=1, le=100, description="K cached augmented views per image; epoch e uses view e mod K")
    lr: float = Field(1e-3, gt=0.0, le=1.0, description="AdamW learning rate (cosine decay to 0)")
    weight_decay: float = Field(0.0, ge=0.0)
    batch_size: int = Field(128, ge=2, le=8192, description="clean images per step (plus as many views)")
    freeze_bn: bool = Field(False, description="keep BatchNorm statistics of the tunable part and heads frozen")
    zero_shot: list[ModelName] = Field(default_factory=list, description="open_clip students whose heads start from prompt embeddings")
    init_head: dict[ModelName, str] = Field(default_factory=dict,
                                            description="linear-probe head file per student; default results/checkpoints/linear_probe/{student}.pt for linear_probe.students")
    teacher_checkpoint: str = Field("results/checkpoints/teachers/{teacher}_{scheme}_s{seed}.pt",
                                    description="robust teacher checkpoint pattern; 'pretrained' = the plain pretrained teacher")
    cache_dtype: Literal["float16", "float32"] = Field("float16", description="storage type of cached trunk outputs")
    cache_batch_size: int = Field(32, ge=1, le=65536, description="batch size of the one-off trunk/teacher passes")
    train_per_class: Optional[int] = Field(None, ge=1, description="limit training and validation images per class (smoke runs); null = whole splits")

    @field_validator("schemes")
    @classmethod
    def _schemes(cls, v: list[str]) -> list[str]:
        return known_names(v, SCHEMES, "scheme")

    @model_validator(mode="after")
    def _depths(self) -> "DistillConfig":
        for s in self.pairs:
            k = self.n_tunable_blocks.get(s)
            if k is None:
                raise ValueError(f"n_tunable_blocks has no entry for student {s}; add one")
            if k < self.head_depth:
                raise ValueError(f"n_tunable_blocks[{s}]={k} is smaller than head_depth={self.head_depth}")
        return self


BASELINE_METHODS = ("original", "linear_probe", "e2e", "wise_e2e", "vpt", "apt", "zero_shot")


class BaselinesConfig(Strict):
    """Baselines of the paper's tables (issue 9): E2E AugMix fine-tuning, WiSE-E2E, VPT, APT, zero-shot, original, LP.

    E2E and VPT run the teacher-robustification loop (crop/flip + `scheme` views, CE + λ·JSD, SGD
    one-cycle) on the student: E2E on all weights, VPT on the prompts and the classifier only. The
    augmentation settings (AugMix severity, width, …) are those of `teachers`.
    """

    methods: list[Literal[BASELINE_METHODS]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: ["original", "linear_probe", "e2e", "wise_e2e", "vpt", "apt"],
        description="baselines the workflow runs; zero_shot needs open_clip students")
    seeds: Optional[list[int]] = Field(None, min_length=1, description="seeds of the trained baselines (E2E, WiSE-E2E, VPT, the "
                                       "apt method); null = the top-level seeds. APT as distill variant no_kd follows the top-level seeds")
    scheme: str = Field("augmix", description="views of E2E and VPT (AugMix + JSD = the paper's E2E); a scheme of teachers.schemes' list")
    train_per_class: Optional[int] = Field(None, ge=1, description="cap on E2E/VPT training images per class (smoke runs, the default budget); null = the whole train split")
    e2e_epochs: int = Field(3, ge=1, le=1000)
    e2e_lr: float = Field(0.01, gt=0, le=10, description="peak learning rate (SGD Nesterov, one-cycle); lower than a teacher's: the student is fine-tuned, not retrained")
    e2e_batch_size: int = Field(128, ge=2, le=4096, description="source images per step (each with its views)")
    e2e_weight_decay: float = Field(5e-4, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    warmup: float = Field(0.15, ge=0, le=0.9, description="fraction of steps rising to the peak lr (E2E and VPT)")
    jsd_lambda: float = Field(12.0, ge=0, description="weight of the JSD term (AugMix paper)")
    wise_alphas: list[float] = Field(default_factory=lambda: [0.25, 0.5, 0.75], min_length=1,
                                     description="WiSE-E2E: weights (1-α)·θ_original + α·θ_e2e, classifier included")
    vpt_tokens: int = Field(10, ge=1, le=512, description="ViT students: prompt tokens per block (VPT-deep)")
    vpt_pad: int = Field(4, ge=1, le=256, description="CNN students: width in px (at the model's input size) of the learnable padding prompt")
    vpt_epochs: int = Field(3, ge=1, le=1000)
    vpt_lr: float = Field(0.05, gt=0, le=100, description="peak learning rate of the prompts and the classifier (SGD Nesterov, one-cycle)")
    vpt_batch_size: int = Field(128, ge=2, le=4096)
    apt_teacher: Optional[ModelName] = Field(None, description="label of the APT run (no teacher is used); null = none")

    @field_validator("scheme")
    @classmethod
    def _scheme(cls, v: str) -> str:
        return known_names([v], SCHEMES, "scheme")[0]

    @field_validator("wise_alphas")
    @classmethod
    def _alphas(cls, v: list[float]) -> list[float]:
        if any(not 0.0 <= a <= 1.0 for a in v):
            raise ValueError(f"WiSE alphas must be within 0..1, got {v}")
        if len(set(v)) != len(v):
            raise ValueError("wise_alphas repeat; list each once")
        return v


class CorruptionsConfig(Strict):
    """Corrupted copies (issue 5): CIFAR-10-C from the test set, the ObjectNet-C analogue from PACS photo dog+horse."""

    engine: Literal["ours", "reference"] = Field("ours", description="ours = batched torch engine; reference = imagecorruptions-imaug per image (imagenet table only)")
    table: Literal["cifar", "imagenet"] = Field("cifar", description="severity constants of CIFAR-10-C: cifar = make_cifar_c.py, imagenet = ImageNet-C")
    names: list[str] = Field(default_factory=lambda: list(CORRUPTION_NAMES), min_length=1, description="corruptions to generate (canonical ImageNet-C names)")
    severities: list[int] = Field(default_factory=lambda: [1, 2, 3, 4, 5], min_length=1, description="severities to generate, each 1..5")
    c_subset_per_class: Optional[int] = Field(100, ge=1, le=1000, description="CIFAR-10 test images per class in CIFAR-10-C (first N of each class); null = all 1000")
    objectnet_c: Literal["cifar", "imagenet"] = Field("cifar", description="severity table of the ObjectNet-C analogue (64-px PACS photos); the paper preset uses imagenet at 224 px")
    objectnet_root: Optional[str] = Field(None, description="paper preset: ObjectNet image folder (root/<class>/*.png); null = the PACS photo dog+horse analogue")
    objectnet_size: int = Field(224, ge=32, le=1024, description="ObjectNet protocol: crop the 1-px border, resize + centre-crop to this size")
    chunk_size: int = Field(1000, ge=1, description="images per output .npz chunk (a kill loses at most one chunk)")
    seed: int = Field(0, ge=0, description="base seed; image seeds = image_seeds(seed, index, corruption, severity)")

    @field_validator("names")
    @classmethod
    def _known_names(cls, v: list[str]) -> list[str]:
        return known_names(v, CORRUPTION_NAMES, "corruption")

    @field_validator("severities")
    @classmethod
    def _severities(cls, v: list[int]) -> list[int]:
        bad = [s for s in v if not 1 <= s <= 5]
        if bad:
            raise ValueError(f"severities must be within 1..5, got {bad}")
        if len(set(v)) != len(v):
            raise ValueError("severities are listed twice; list each once")
        return v


class ReportConfig(Strict):
    """Report knobs (issue 10): which scheme the main table shows and the thresholds of the paper's claims."""

    main_scheme: Optional[Literal[SCHEMES]] = Field(DEFAULT_SCHEME, description="teacher scheme of ours/APT in main.csv and the claims (paper default AugMix+DeepAugment); null = every scheme, averaged")  # type: ignore[valid-type]
    clean_tolerance: float = Field(0.5, ge=0, description="ours' clean accuracy may be this many points below the linear probe (or original)")
    probe_tolerance: float = Field(0.5, ge=0, description="ours' transfer/retention may be this many points below the original model")
    cost_ratio: float = Field(5.0, gt=0, description="ours must be at least this many times cheaper per training image than WiSE-E2E")
    gflops_overhead_pct: float = Field(5.0, ge=0, description="largest inference GFLOPs overhead of ours over one plain forward, % (paper: +3%)")
    pixmix_schemes: list[Literal[SCHEMES]] = Field(default_factory=lambda: ["pixmix", "pixmix_augmix"], description="PixMix-based teacher schemes compared with reference_scheme")  # type: ignore[valid-type]
    reference_scheme: Literal[SCHEMES] = Field("augmix_deepaugment", description="the scheme PixMix-based teachers are compared with")  # type: ignore[valid-type]
    figure_formats: list[Literal["png", "pdf", "svg"]] = Field(default_factory=lambda: ["png", "pdf"], min_length=1, description="file formats of every figure")
    dpi: int = Field(150, ge=50, le=600, description="PNG resolution")


class Params(Strict):
    seeds: list[int] = Field(min_length=1, description="seed grid axis of every training stage")
    threads: int = Field(0, ge=0, le=256, description="torch intra-op threads per job; 0 = cores / concurrent jobs")
    device: str = Field("auto", pattern=DEVICE_PATTERN,
                        description="where models train and evaluate: auto = the GPU when torch sees one, else the CPU; cpu; cuda; cuda:N")
    data: DataConfig = Field(default_factory=DataConfig)
    models: ModelsConfig
    linear_probe: LinearProbeConfig = Field(default_factory=LinearProbeConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    teachers: TeachersConfig = Field(default_factory=TeachersConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    distill: DistillConfig = Field(default_factory=DistillConfig)
    corruptions: CorruptionsConfig = Field(default_factory=CorruptionsConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    baselines: BaselinesConfig = Field(default_factory=BaselinesConfig)

    @property
    def teacher_seeds(self) -> list[int]:
        return self.teachers.seeds or self.seeds

    @property
    def baseline_seeds(self) -> list[int]:
        return self.baselines.seeds or self.seeds

    def teacher_seed(self, seed: int) -> int:
        """Seed of the robust teacher that a distillation run of `seed` learns from."""
        return teacher_seed_for(seed, self.teacher_seeds)

    @model_validator(mode="after")
    def _lp_students_are_students(self) -> "Params":
        extra = [s for s in self.linear_probe.students if s not in self.models.students]
        if extra:
            raise ValueError(f"linear_probe.students {extra} are not in models.students {self.models.students}")
        return self


# ---------------------------------------------------------------------------------------------
# loading, merging, hashing


def teacher_seed_for(seed: int, teacher_seeds: list[int]) -> int:
    """The teacher of the same seed where one was trained, else the first teacher seed (shared by the
    Snakefile's inputs and `robustify distill`, so the two cannot disagree)."""
    return int(seed) if int(seed) in teacher_seeds else int(teacher_seeds[0])


def deep_update(base: dict, update: dict) -> dict:
    """Recursive dict update, as Snakemake applies --configfile over configfile."""
    out = dict(base)
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_update(out[k], v)
        else:
            out[k] = v
    return out


def read_yaml(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such parameter file; pass an existing --params/--configfile path")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{where} is not valid YAML ({getattr(e, 'problem', e)}); fix the syntax") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections, got {type(data).__name__}; "
                          "write `section: {key: value}` as in params.yaml")
    return data


def load_params(params: str | os.PathLike = "params.yaml", presets: list[str | os.PathLike] | tuple = ()) -> Params:
    """Read params.yaml, merge presets over it in order, validate."""
    raw = read_yaml(params)
    sources = [str(params)]
    for p in presets:
        raw = deep_update(raw, read_yaml(p))
        sources.append(str(p))
    return validate(raw, source=" + ".join(sources))


def validate(raw: dict, source: str = "config") -> Params:
    try:
        return Params.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(f"{source}: {describe_validation_error(e, raw)}") from None


def describe_validation_error(e: ValidationError, raw: dict) -> str:
    """First error as one line: where, what, and a fix (a close key name where we can guess one)."""
    err = e.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        parent = err["loc"][:-1]
        key = str(err["loc"][-1])
        allowed = _fields_at(parent)
        guess = difflib.get_close_matches(key, allowed, n=1)
        hint = f"did you mean '{guess[0]}'?" if guess else f"valid keys: {', '.join(allowed)}"
        more = f" (+{len(e.errors()) - 1} more problems)" if len(e.errors()) > 1 else ""
        return f"unknown key '{loc}'; {hint}{more}"
    if kind == "literal_error":
        value = err.get("input")
        guess = difflib.get_close_matches(str(value), MODEL_NAMES, n=1)
        hint = f"did you mean '{guess[0]}'?" if guess else f"registered models: {', '.join(MODEL_NAMES)}"
        return f"{loc}: unknown name '{value}'; {hint}"
    if kind == "missing":
        return f"{loc}: required key is missing; add it (see params.yaml for the default)"
    value = err.get("input")
    msg = str(err["msg"]).removeprefix("Value error, ")
    got = f" (got {value!r})" if len(repr(value)) <= 80 else ""  # issue 11: never dump a whole section into the line
    return f"{loc + ': ' if loc else ''}{msg}{got}; fix the value"


def _fields_at(loc: tuple) -> list[str]:
    model: Any = Params
    for part in loc:
        field = model.model_fields.get(str(part)) if hasattr(model, "model_fields") else None
        if field is None:
            return []
        model = field.annotation
    return sorted(getattr(model, "model_fields", {}).keys())


def params_hash(obj: Any) -> str:
    """Short stable hash of a (sub)config, stored in every record."""
    if isinstance(obj, BaseModel):
        obj = obj.model_dump(mode="json")
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def json_schema() -> dict:
    schema = Params.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "robustify params.yaml"
    return schema
