"""The device verifier (read back, decode into tensors, errors on the device) against the host verifier: same
decoded values, same numbers. Runs on the CPU here and on CUDA where a GPU is present."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from sogs_compressor.errors import OutputError
from sogs_compressor.options import CompressOptions
from sogs_compressor.order.morton import morton_order
from sogs_compressor.pipeline import compress_splats
from sogs_compressor.read.sog import read_sog
from sogs_compressor.render.quality import default_cameras
from sogs_compressor.render.rasterize import prepare, render
from sogs_compressor.sample import generate_scene
from sogs_compressor.sog.decode import open_sog, read_meta
from sogs_compressor.sog.meta import texture_names
from sogs_compressor.sog.webp import RoundTripError, WebpEncoder, decode_webp, uniform_effort
from sogs_compressor.splats import COLUMNS
from sogs_compressor.splats_torch import SplatTensors
from sogs_compressor.verify.decode import confirm_written, decode_on_device
from sogs_compressor.verify.metrics import attribute_errors
from sogs_compressor.verify.metrics_torch import attribute_errors_torch, percentile

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def bundle_of(result):
    return next(f for f in result.output_files if f.role == "bundle")


def decode_written(result, device: torch.device) -> SplatTensors:
    """The written bundle's textures (WebP-decoded) and meta, decoded by the device decoder."""
    get, _, close = open_sog(bundle_of(result).path)
    try:
        meta = read_meta(get)
        images = {name: decode_webp(get(name)) for name in texture_names(meta)}
    finally:
        close()
    return decode_on_device(meta, images, device)


def decode_output(result):
    return read_sog(bundle_of(result).path).splats


@pytest.fixture(scope="module", params=[0, 2, 3])
def written(request, tmp_path_factory):
    """(ordered input, compression result) of a small scene of each SH degree, written as bundle + folder."""
    scene = generate_scene(9_000, sh_degree=request.param, seed=4 + request.param)
    out = tmp_path_factory.mktemp(f"sh{request.param}")
    result = compress_splats(scene, out, "scene", CompressOptions(device="cpu", layout="both", verify=False,
                                                                   quality_check="off", iterations=3))
    return scene.take(morton_order(scene.positions)), result


@pytest.mark.parametrize("device", DEVICES)
def test_device_decode_gives_the_host_readers_values(written, device) -> None:
    _, result = written
    host = decode_output(result)
    tensors = decode_written(result, torch.device(device))
    assert tensors.device.type == device and tensors.model == host.model
    for name in COLUMNS:
        expected, got = getattr(host, name), getattr(tensors, name).cpu().numpy()
        assert got.dtype == np.float32 and got.shape == expected.shape, name
        if device == "cpu":
            assert np.array_equal(got, expected), name
        else:  # CUDA's expm1/log may differ from libm in the last bit before the float32 rounding
            np.testing.assert_allclose(got, expected, rtol=2e-7, atol=1e-30, err_msg=name)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("staged", [False, True])
def test_device_errors_equal_the_host_errors(written, device, staged) -> None:
    ordered, result = written
    expected = attribute_errors(ordered, decode_output(result))
    decoded = decode_written(result, torch.device(device))
    reference = SplatTensors.from_splats(ordered, device) if staged else ordered
    got = attribute_errors_torch(reference, decoded)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-15), key


def test_device_errors_are_blocked_without_changing_the_numbers(written, monkeypatch) -> None:
    ordered, result = written
    decoded = decode_written(result, torch.device("cpu"))
    whole = attribute_errors_torch(ordered, decoded)
    monkeypatch.setattr("sogs_compressor.verify.metrics_torch.verify_block_rows", lambda device: 1000)
    blocked = attribute_errors_torch(ordered, decoded)
    for key, value in whole.items():
        assert blocked[key] == pytest.approx(value, rel=1e-12, abs=1e-15), key


@pytest.mark.parametrize("n", [1, 2, 7, 100, 1001])
@pytest.mark.parametrize("percent", [0, 2, 50, 98, 99, 100])
def test_percentile_is_numpys_linear_rule(n, percent) -> None:
    values = np.random.default_rng(n).normal(size=n) ** 3
    assert percentile(torch.from_numpy(values), percent) == pytest.approx(np.percentile(values, percent), rel=1e-15,
                                                                          abs=1e-300)


@pytest.mark.parametrize("device", DEVICES)
def test_renders_of_tensors_equal_renders_of_the_host_set(written, device) -> None:
    ordered, _ = written
    cameras = default_cameras(ordered, "fast", size=48)
    tensors = SplatTensors.from_splats(ordered, device)
    assert [c.to_dict() for c in default_cameras(tensors, "fast", size=48)] == [c.to_dict() for c in cameras]
    from_host, from_tensors = prepare(ordered, device), prepare(tensors, device)
    for cam in cameras[:2]:
        a, b = render(from_host, cam, allow_empty=True), render(from_tensors, cam, allow_empty=True)
        assert torch.equal(a.image, b.image) and a.pairs == b.pairs


def test_files_that_differ_from_what_was_encoded_fail_the_read_back(written, tmp_path) -> None:
    _, result = written
    bundle = bundle_of(result)
    get, _, close = open_sog(bundle.path)
    meta = read_meta(get)
    webps = {name: get(name) for name in texture_names(meta)}
    close()
    sog_files = [f for f in result.output_files if f.role in ("bundle", "texture", "meta")]
    confirm_written(sog_files, meta, webps)  # as written: passes
    broken = tmp_path / "broken.sog"
    with zipfile.ZipFile(bundle.path) as source, zipfile.ZipFile(broken, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            target.writestr(info, data[:-1] + bytes([data[-1] ^ 1]) if info.filename == "quats.webp" else data)
    with pytest.raises(OutputError, match="quats.webp"):
        confirm_written([type(bundle)(path=str(broken), bytes=0, role="bundle")], meta, webps)
    texture = next(f for f in sog_files if f.role == "texture")
    copy = tmp_path / Path(texture.path).name
    copy.write_bytes(Path(texture.path).read_bytes()[:-3])
    with pytest.raises(OutputError, match="differs"):
        confirm_written([type(texture)(path=str(copy), bytes=0, role="texture")], meta, webps)


def test_a_webp_that_does_not_decode_to_its_texture_fails_the_round_trip(monkeypatch) -> None:
    image = np.random.default_rng(0).integers(0, 256, (8, 8, 4), dtype=np.uint8)
    encoder = WebpEncoder(uniform_effort(1, 0), round_trip=True)
    encoder.submit("fine.webp", image)
    assert set(encoder.results()) == {"fine.webp"}
    monkeypatch.setattr("sogs_compressor.sog.webp.decode_webp", lambda data: np.zeros((8, 8, 4), np.uint8))
    encoder = WebpEncoder(uniform_effort(1, 0), round_trip=True)
    encoder.submit("bad.webp", image)
    with pytest.raises(RoundTripError, match="bad.webp"):
        encoder.results()


def test_the_pipeline_verifies_round_trip_and_read_back(written, tmp_path) -> None:
    _, unverified = written
    assert "read_back" not in unverified.timings and "verify" not in unverified.timings
    scene = generate_scene(3_000, sh_degree=1, seed=3)
    result = compress_splats(scene, tmp_path, "v", CompressOptions(device="cpu", layout="both", quality_check="off",
                                                                   iterations=2))
    assert {"verify", "read_back", "webp_wait", "write"} <= set(result.timings)
    assert set(result.textures) == set(texture_names(read_meta(open_sog(tmp_path / "v.sog")[0])))
    assert all("round_trip_s" in stats and stats["bytes"] > 0 for stats in result.textures.values())
    expected = attribute_errors(scene.take(morton_order(scene.positions)), read_sog(tmp_path / "v.sog").splats)
    assert result.errors == pytest.approx(expected, rel=1e-12)
