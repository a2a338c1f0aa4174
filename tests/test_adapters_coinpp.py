"""COINppAdapter: base network layout, patches, meta-learning, COIN++'s quantizer, COIN++ + SINR, round
trips, byte accounting, pickle-free base files and official checkpoints."""

from __future__ import annotations

import argparse
import copy
import pickle

import numpy as np
import pytest
import torch

from sinr_adapters.framework.images import load_image
from sinr_adapters.framework.sinr_options import SINROptions
from sinr_adapters.methods.coinpp.adapter import COINppAdapter, load_coinpp_checkpoint
from sinr_adapters.methods.coinpp.model import COINppModel, ModulatedSiren, patch_coordinates, patchify
from sinr_codecs.errors import StreamError

SIZE = 20  # not a multiple of the patch: exercises the padding
PATCH = 8
TRAIN = ("rocket", "motorcycle", "retina", "hubble_deep_field")


pytestmark = pytest.mark.usefixtures("one_thread")


def small(**kw) -> COINppAdapter:
    return COINppAdapter(**{"width": 16, "layers": 3, "latent_dim": 8, "patch": PATCH, "bits": 6, **kw})


@pytest.fixture(scope="module")
def meta():
    return small().meta_learn([load_image(n, 24) for n in TRAIN], outer_steps=120, batch_size=8, outer_lr=2e-3,
                              device="cpu", progress=False)


@pytest.fixture(scope="module")
def fitted(meta):
    signal = meta.signal_from_image(load_image("astronaut", SIZE), name="astronaut")
    model, log = meta.fit(signal, device="cpu")
    return meta, signal, model, log


def test_configuration_and_state_dict_keys():
    a = small()
    net = a.build_model()
    assert list(net.state_dict()) == ["net.0.linear.weight", "net.0.linear.bias", "net.1.linear.weight",
                                      "net.1.linear.bias", "last_layer.linear.weight", "last_layer.linear.bias",
                                      "modulation_net.net.weight", "modulation_net.net.bias"]
    assert net.state_dict()["modulation_net.net.weight"].shape == (16 * 2, 8)  # [hidden * (layers - 1), latent]
    with pytest.raises(ValueError):
        small(layers=1)
    with pytest.raises(ValueError):
        small(bits=9)
    with pytest.raises(ValueError, match="base network"):
        a.fit(a.signal_from_image(load_image("astronaut", 16)))


def test_zero_latent_is_plain_siren_plus_half():
    net = small().build_model()
    x = torch.rand(2, 5, 2)
    out = net.modulated_forward(x, torch.zeros(2, 8))
    h = x
    shifts = net.modulation_net.net.bias.view(2, 16)  # a zero latent leaves only the map's bias
    for i, layer in enumerate(net.net):
        h = torch.sin(layer.activation.w0 * (layer.linear(h) + shifts[i]))
    torch.testing.assert_close(out, net.last_layer.linear(h) + 0.5)


def test_patches_and_pixel_lookup():
    img = torch.rand(SIZE, SIZE + 3, 3)
    p = patchify(img, (PATCH, PATCH))
    assert p.shape == (3 * 3, PATCH * PATCH, 3)
    torch.testing.assert_close(p[0].reshape(PATCH, PATCH, 3), img[:PATCH, :PATCH])
    torch.testing.assert_close(p[4].reshape(PATCH, PATCH, 3), img[PATCH:2 * PATCH, PATCH:2 * PATCH])
    # reflection padding at the bottom: row SIZE is row SIZE - 2
    torch.testing.assert_close(p[6].reshape(PATCH, PATCH, 3)[SIZE - 2 * PATCH], img[SIZE - 2, :PATCH])
    # the per-pixel model agrees with the batched per-patch forward
    net = small().build_model()
    latents = torch.randn(9, 8) * 0.1
    model = COINppModel(net, latents, (SIZE, SIZE + 3), (PATCH, PATCH))
    a = small()
    coords = a.coordinates((SIZE, SIZE + 3))
    per_pixel = model(coords).reshape(SIZE, SIZE + 3, 3)
    per_patch = net.modulated_forward(patch_coordinates((PATCH, PATCH)).expand(9, -1, -1), latents)
    torch.testing.assert_close(per_pixel[PATCH:2 * PATCH, :PATCH].reshape(-1, 3), per_patch[3], atol=1e-5, rtol=1e-5)


def test_meta_learning_and_fitting_improve(meta, fitted):
    assert meta.meta_info["final_psnr"] > meta.meta_info["first_psnr"] + 5
    assert meta.quantizer is not None and meta.quantizer[1] > 0
    fo = small().meta_learn([load_image("rocket", 16)], outer_steps=3, batch_size=4, first_order=True,
                            calibrate=False, device="cpu", progress=False)
    assert fo.quantizer is None and fo.meta_info["first_order"] is True and fo.base is not None
    adapter, signal, model, log = fitted
    zero = COINppModel(adapter.build_model(), torch.zeros_like(model.latents), (SIZE, SIZE), adapter.patch)
    assert adapter.psnr(model, signal) > adapter.psnr(zero, signal) + 1.0
    assert log.psnr[-1] > log.psnr[0]
    more, _ = adapter.fit(signal, steps=10, device="cpu")
    assert adapter.psnr(more, signal) >= adapter.psnr(model, signal) - 0.1
    # the base network is meta-learned once and not touched by fitting
    torch.testing.assert_close(model.base.state_dict(), adapter.build_model().state_dict())


def test_plain_round_trip_and_byte_count(fitted):
    adapter, signal, model, _ = fitted
    before = adapter.psnr(model, signal)
    data, info = adapter.compress_with_info(copy.deepcopy(model), signal, finetune_steps=0, progress=False)
    # everything written is counted: header + varint + Brotli(latent integers); the base network is not sent
    assert len(data) == info["header_bytes"] + info["int_bytes"] + info["checksum_bytes"]
    assert info["num_patches"] == 9
    dec = adapter.decompress(data)
    assert dec.shape == (SIZE, SIZE, 3) and dec.header["sinr"] is False
    after = adapter.psnr(dec.model, signal)
    assert after == pytest.approx(info["psnr_finetuned"], abs=1e-6)
    assert after > before - 1.0  # 6-bit latents cost little
    q, deq = adapter.quantize_latents(model.latents)
    assert int(q.min()) >= 0 and int(q.max()) <= 63
    torch.testing.assert_close(dec.model.latents.detach(), deq)
    assert adapter.decode(data).shape == (SIZE, SIZE, 3)
    # quantization-aware fine-tuning of the latents does not make things worse
    tuned, _ = adapter.compress_with_info(copy.deepcopy(model), signal, finetune_steps=20, progress=False)
    assert adapter.psnr(adapter.decompress(tuned).model, signal) >= after - 1e-6


def test_sinr_round_trip(fitted):
    from sinr_codecs.sparse import SparseCode

    adapter, signal, model, _ = fitted
    opts = SINROptions(sparsity=4, value_bits=8)
    data, info = adapter.compress_with_info(copy.deepcopy(model), signal, sinr=opts, finetune_steps=0, progress=False)
    assert info["sinr_tensors"] == ["latents"]
    assert len(data) == info["header_bytes"] + info["sinr_bytes"] + info["checksum_bytes"]
    dec = adapter.decompress(data)
    assert dec.header["sinr"] is True
    assert adapter.psnr(dec.model, signal) == pytest.approx(info["psnr_finetuned"], abs=1e-4)
    # rows = patches' latents ("auto" means "rows" for COIN++), exactly OMP's code at 8 bits
    code = SparseCode.fit(model.latents.detach(), sparsity=4, dictionary_ratio=8.0, seed=0, layout="rows", device="cpu")
    assert code.k1 == 8 and code.n_vectors == 9
    torch.testing.assert_close(dec.model.latents.detach(), code.quantized(8).reconstruct(), atol=1e-6, rtol=1e-5)
    # fine-tuning the sparse values (support fixed) recovers PSNR, at the same size
    d1, _ = adapter.compress_with_info(copy.deepcopy(model), signal, sinr=opts, finetune_steps=30, progress=False)
    assert adapter.psnr(adapter.decompress(d1).model, signal) >= adapter.psnr(dec.model, signal) - 1e-6
    assert abs(len(d1) - len(data)) < 0.15 * len(data)


def test_base_file_round_trip_is_exact(meta, fitted, tmp_path):
    _, signal, model, _ = fitted
    path = tmp_path / "base.npz"
    meta.save_base(path)
    with np.load(path, allow_pickle=False) as z:  # no pickle anywhere
        assert "__config__" in z.files
    loaded = COINppAdapter.from_base_file(path)
    assert loaded.config() == meta.config() and loaded.settings() == meta.settings()
    assert loaded.meta_info == pytest.approx(meta.meta_info)
    for k, v in meta.base.items():
        assert torch.equal(loaded.base[k], v)
    assert loaded.base_fingerprint() == meta.base_fingerprint()
    data = meta.compress(copy.deepcopy(model), signal, progress=False)
    np.testing.assert_array_equal(loaded.decode(data), meta.decode(data))
    with pytest.raises(ValueError, match="save_base"):
        bad = tmp_path / "other.npz"
        np.savez(bad, x=np.zeros(3))
        COINppAdapter.from_base_file(bad)


def test_streams_refuse_other_bases(meta, fitted):
    adapter, signal, model, _ = fitted
    data = adapter.compress(copy.deepcopy(model), signal, progress=False)
    other = small(base=meta.base, quantizer=(meta.quantizer[0], meta.quantizer[1] * 2),
                  inner_steps=meta.inner_steps, inner_lr=meta.inner_lr)
    with pytest.raises(StreamError, match="base network"):
        other.decompress(data)
    with pytest.raises(ValueError, match="base network"):
        small().decompress(data)
    with pytest.raises(ValueError, match="calibrate"):
        small(base=meta.base).compress(copy.deepcopy(model), signal)


def test_rate_aware_latents_round_trip_and_bind_the_base(meta, fitted):
    from sinr_adapters.rate_coding import rate_aware as ra
    from sinr_adapters.rate_coding import stream as rate_stream

    adapter, signal, model, _ = fitted
    for sinr in (None, SINROptions(sparsity=4, value_bits=8, dictionary_ratio=2)):
        data, info = ra.compress(adapter, model, signal, ra.RateAwareOptions(lam=1e-3, steps=5), sinr=sinr)
        dec = rate_stream.decompress(adapter, data)
        assert tuple(dec.model.latents.shape) == (9, 8)   # the 3 x 3 patch grid of a padded 20-px image
        assert adapter.psnr(dec.model, signal) == pytest.approx(info["psnr_finetuned"], abs=1e-4)
    other = small(base={k: v + 1e-3 for k, v in meta.base.items()}, quantizer=meta.quantizer)
    with pytest.raises(StreamError, match="base network"):
        rate_stream.decompress(other, data)
    with pytest.raises(ValueError, match="own weights"):   # the latents start from zero, not from a seed
        ra.seeded_init(adapter, 3)


def _official_args(**kw) -> argparse.Namespace:
    args = {"num_layers": 3, "dim_hidden": 16, "w0": 30.0, "modulate_scale": 0, "modulate_shift": 1, "use_latent": 1,
            "latent_dim": 8, "modulation_net_dim_hidden": 64, "modulation_net_num_layers": 1, "seed": -1,
            "outer_lr": 3e-6, "inner_lr": 1e-2, "inner_steps": 3, "batch_size": 16, "num_epochs": 100,
            "train_dataset": "vimeo90k", "test_dataset": "kodak", "patch_shape": [PATCH, PATCH], "device": "cpu"}
    args.update(kw)
    return argparse.Namespace(**args)


def test_official_checkpoint_maps_every_key(tmp_path):
    torch.manual_seed(3)
    net = ModulatedSiren(dim_in=2, dim_hidden=16, dim_out=3, num_layers=3, latent_dim=8)
    path = tmp_path / "model.pt"
    torch.save({"args": _official_args(), "state_dict": net.state_dict()}, path)
    adapter, report = load_coinpp_checkpoint(path, quantizer=(0.0, 0.01))
    assert sorted(report.mapped) == sorted(net.state_dict()) and not report.missing and not report.unexpected
    assert adapter.config()["patch"] == [PATCH, PATCH] and adapter.inner_steps == 3
    x, lat = torch.rand(2, 7, 2), torch.randn(2, 8)
    torch.testing.assert_close(adapter.build_model().modulated_forward(x, lat), net.modulated_forward(x, lat))
    # the Namespace is allowed for this load only, not globally
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
    with pytest.raises(ValueError, match="modulate_scale"):
        load_coinpp_checkpoint({"args": _official_args(modulate_scale=1), "state_dict": net.state_dict()})
    with pytest.raises(ValueError, match="patch="):
        load_coinpp_checkpoint({"args": _official_args(patch_shape=[-1]), "state_dict": net.state_dict()})
    sd = dict(net.state_dict())
    sd["extra"] = torch.zeros(1)
    with pytest.raises(ValueError, match="unexpected"):
        load_coinpp_checkpoint({"args": _official_args(), "state_dict": sd})
    _, rep2 = load_coinpp_checkpoint({"args": _official_args(), "state_dict": sd}, strict=False)
    assert rep2.unexpected == ["extra"]
