"""Shared trunk outputs across evaluations (evaluate.share_trunk): same results hit or miss, keyed by
trunk and data, close to evaluating without sharing."""

from __future__ import annotations

import numpy as np
import torch

from robustify.data.datasets import ArrayDataset
from robustify.evaluate.onepass import deterministic_part, iterate_arrays, run_onepass
from robustify.evaluate.suites import array_set
from robustify.evaluate.trunk_share import SharedTrunk, _digest
from robustify.models import Preprocess
from robustify.models.frozen import InferenceGraph
from robustify.models.student import create_student

PRE = Preprocess.for_model("resnet8_cifar", 32)


def _students():
    """Two distilled students of one model: same frozen trunk, different tunable part and heads."""
    torch.manual_seed(0)
    a = create_student("resnet8_cifar", n_tunable_blocks=2, head_depth=1, dropout_p=0.3, pretrained=False).eval()
    torch.manual_seed(0)
    b = create_student("resnet8_cifar", n_tunable_blocks=2, head_depth=1, dropout_p=0.3, pretrained=False).eval()
    with torch.no_grad():
        for n, p in b.named_parameters():
            if not n.startswith("trunk."):
                p.add_(0.05 * torch.randn_like(p))
    assert a.trunk_fingerprint() == b.trunk_fingerprint()
    return a, b


def _set(x, y, name="c/gaussian_noise/3"):
    return array_set(name, "c", True, lambda: ArrayDataset(name, x, y))


def _data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n)


def _run(share: SharedTrunk, model, es):
    return run_onepass(model, lambda z: z, share.batches(es), 5, 10, seed=3, pre=share.rest)


def test_second_student_reads_the_first_ones_trunk_outputs(tmp_path):
    a, b = _students()
    x, y = _data()
    es = _set(x, y)
    sa = SharedTrunk(tmp_path, a, PRE, 32, 16, True, "a")
    _run(sa, a, es)
    assert (sa.hits, sa.misses) == (0, 1) and len(list(sa.dir.glob("*.npz"))) == 1
    sb = SharedTrunk(tmp_path, b, PRE, 32, 16, True, "b")
    hit = _run(sb, b, es)
    assert (sb.hits, sb.misses) == (1, 0)
    # a hit gives exactly what computing the trunk gives (fresh cache directory)
    fresh = SharedTrunk(tmp_path / "fresh", b, PRE, 32, 16, True, "b")
    miss = _run(fresh, b, es)
    assert fresh.misses == 1
    for k in hit.arrays:
        assert np.array_equal(hit.arrays[k], miss.arrays[k]), k
    # and matches evaluating without sharing (one frozen graph of the whole deterministic part)
    plain = run_onepass(b, PRE, iterate_arrays(x, y, 16), 5, 10, seed=3, pre=InferenceGraph(b, deterministic_part(b)))
    assert np.array_equal(plain.y, hit.y)
    for k in plain.arrays:
        if k.startswith("pred_"):
            assert np.array_equal(plain.arrays[k], hit.arrays[k]), k
        else:
            np.testing.assert_allclose(plain.arrays[k], hit.arrays[k], rtol=1e-3, atol=1e-5, err_msg=k)


def test_other_trunk_or_other_images_never_hit(tmp_path):
    a, b = _students()
    x, y = _data()
    SharedTrunk(tmp_path, a, PRE, 32, 16, True, "a").batches(_set(x, y))  # fills the cache
    x2 = x.copy()
    x2[7, 3, 3, 0] ^= 1  # one pixel of one image
    s = SharedTrunk(tmp_path, a, PRE, 32, 16, True, "a")
    s.batches(_set(x2, y))
    s.batches(_set(x, y, name="c/gaussian_noise/4"))  # same images under another dataset name
    s.batches(_set(x, y))
    assert (s.hits, s.misses) == (1, 2)
    with torch.no_grad():
        next(b.trunk.parameters()).add_(1e-3)  # another trunk: another directory
    s2 = SharedTrunk(tmp_path, b, PRE, 32, 16, True, "b")
    s2.batches(_set(x, y))
    assert s2.dir != s.dir and (s2.hits, s2.misses) == (0, 1)


def test_unreadable_cache_file_is_rebuilt(tmp_path):
    a, _ = _students()
    x, y = _data()
    s = SharedTrunk(tmp_path, a, PRE, 32, 16, True, "a")
    first = np.concatenate([z for z, _ in s.batches(_set(x, y))])
    f = next(s.dir.glob("*.npz"))
    f.write_bytes(f.read_bytes()[:100])  # truncated by a kill or a full disk
    again = np.concatenate([z for z, _ in s.batches(_set(x, y))])
    assert s.misses == 2 and np.array_equal(first, again)


def _original_and_student(name="resnet8_cifar", k=2):
    """The pretrained original (random init here) and a distilled student of it: same trunk weights."""
    from robustify.models.registry import create_model

    torch.manual_seed(0)
    original = create_model(name, pretrained=False, num_classes=10).eval()
    torch.manual_seed(0)
    student = create_student(name, n_tunable_blocks=k, head_depth=1, dropout_p=0.3, pretrained=False).eval()
    return original, student


def test_original_cut_at_the_students_trunk_reads_their_outputs_and_gives_the_uncut_results(tmp_path):
    import copy

    from robustify.evaluate.onepass import SingleHeadModel
    from robustify.models.student import SplitSingleHead

    original, student = _original_and_student()
    cut = SplitSingleHead(copy.deepcopy(original), "cifar_resnet", 2).eval()
    assert cut.trunk_fingerprint() == student.trunk_fingerprint()
    x, y = _data()
    es = _set(x, y)
    _run(SharedTrunk(tmp_path, student, PRE, 32, 16, True, "student"), student, es)
    share = SharedTrunk(tmp_path, cut, PRE, 32, 16, True, "original")
    shared = _run(share, cut, es)
    assert (share.hits, share.misses) == (1, 0)
    whole = SingleHeadModel(original)
    plain = run_onepass(whole, PRE, iterate_arrays(x, y, 16), 5, 10, seed=3)
    assert np.array_equal(shared.get("pred", "single"), plain.get("pred", "single"))
    np.testing.assert_allclose(shared.get("probs", "single"), plain.get("probs", "single"), atol=1e-5)


def test_cut_efficientnet_keeps_its_dropout_and_its_mc_masks():
    """timm's forward_head drops out the pooled features with drop_rate; the cut head does the same,
    drawing the same masks, so MC-dropout evaluations of the cut and the uncut model are equal."""
    import copy

    from robustify.evaluate.onepass import SingleHeadModel, mc_probs
    from robustify.models.registry import create_model
    from robustify.models.student import SplitSingleHead

    torch.manual_seed(0)
    net = create_model("efficientnet_lite0", pretrained=False, num_classes=10).eval()
    net.drop_rate = 0.3
    whole, cut = SingleHeadModel(copy.deepcopy(net)), SplitSingleHead(copy.deepcopy(net), "efficientnet", 2).eval()
    assert cut.dropout_p == 0.3 and len(cut.tunable) == 2
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(whole(x), cut(x)) and torch.equal(whole.features(x), cut.features(x))
        torch.manual_seed(1)
        a = mc_probs(whole, x, 4)["single"]
        torch.manual_seed(1)
        b = mc_probs(cut, x, 4)["single"]
    assert torch.equal(a, b) and float(a.std(0).max()) > 0  # dropout is on, and the masks are the same


def test_evaluation_cuts_only_originals_of_distilled_students():
    from pathlib import Path

    from robustify.config import load_params
    from robustify.evaluate.onepass import SingleHeadModel
    from robustify.evaluate.runner import single_head
    from robustify.models.registry import create_model
    from robustify.models.student import SplitSingleHead

    root = Path(__file__).resolve().parents[1]
    params = load_params(root / "params.yaml")
    assert "resnet56_cifar" in params.models.students and params.evaluate.share_trunk
    cut = single_head(create_model("resnet56_cifar", pretrained=False), "resnet56_cifar", params)
    assert isinstance(cut, SplitSingleHead)
    assert len(cut.tunable) == params.distill.n_tunable_blocks["resnet56_cifar"]
    # not a distilled student here (a teacher), or sharing switched off: the model stays whole
    assert isinstance(single_head(create_model("resnet20_cifar", pretrained=False), "resnet20_cifar", params), SingleHeadModel)
    off = params.model_copy(update={"evaluate": params.evaluate.model_copy(update={"share_trunk": False})})
    assert isinstance(single_head(create_model("resnet56_cifar", pretrained=False), "resnet56_cifar", off), SingleHeadModel)


def test_prepare_leaves_a_dataset_another_job_computes_and_waits_for_it_at_the_end(tmp_path):
    """Two jobs on one trunk split the datasets: a held lock (the other job computing) is skipped, the
    rest is computed, then this job waits for the held one and reads what the other job stored."""
    import fcntl
    import threading

    a, _ = _students()
    sets = [_set(*_data(seed=i), name=f"c/gaussian_noise/{i}") for i in (1, 2, 3)]
    share = SharedTrunk(tmp_path, a, PRE, 32, 16, True, "a")
    other = SharedTrunk(tmp_path, a, PRE, 32, 16, True, "other job")
    held = share.path(sets[0].name, _digest(list(sets[0].batches(16))))
    held.parent.mkdir(parents=True)
    fh = open(held.with_name(held.name + ".lock"), "a")
    fcntl.flock(fh, fcntl.LOCK_EX)  # the other job is computing the first dataset
    worker = threading.Thread(target=share.prepare, args=(sets,))
    worker.start()
    others = [share.path(es.name, _digest(list(es.batches(16)))) for es in sets[1:]]
    for _ in range(200):  # this job does the second and third meanwhile …
        if all(p.is_file() for p in others):
            break
        worker.join(0.05)
    assert all(p.is_file() for p in others) and not held.is_file() and worker.is_alive()
    list(other.batches(sets[0]))  # … the other job stores the first and lets go
    fcntl.flock(fh, fcntl.LOCK_UN)
    fh.close()
    worker.join(30)
    assert not worker.is_alive()
    assert (share.misses, other.misses) == (2, 1)  # nothing computed twice
    assert all(list(share.batches(es)) for es in sets) and share.hits == 1  # the first: read, not computed
    assert not list(tmp_path.rglob("*.lock"))


def test_prepare_computes_a_dataset_whose_lock_was_let_go_without_a_file(tmp_path):
    """A job that died while computing leaves no cache file: the waiting job computes it itself."""
    import fcntl
    import threading

    a, _ = _students()
    es = _set(*_data())
    share = SharedTrunk(tmp_path, a, PRE, 32, 16, True, "a")
    path = share.path(es.name, _digest(list(es.batches(16))))
    path.parent.mkdir(parents=True)
    fh = open(path.with_name(path.name + ".lock"), "a")
    fcntl.flock(fh, fcntl.LOCK_EX)
    worker = threading.Thread(target=share.prepare, args=([es],))
    worker.start()
    worker.join(0.5)
    assert worker.is_alive() and not path.is_file()  # waiting
    fh.close()  # the holder is gone
    worker.join(30)
    assert path.is_file() and share.misses == 1


def test_prepare_without_flock_computes_unlocked(tmp_path, monkeypatch):
    """Some cluster filesystems refuse flock: evaluation then computes as if unlocked (files stay atomic)."""
    import fcntl

    def refuse(*_):
        raise OSError(38, "Function not implemented")

    a, _ = _students()
    es = _set(*_data())
    share = SharedTrunk(tmp_path, a, PRE, 32, 16, True, "a")
    monkeypatch.setattr(fcntl, "flock", refuse)
    share.prepare([es])
    assert share.misses == 1 and share.path(es.name, _digest(list(es.batches(16)))).is_file()
