"""Benchmark cases: convolution shapes taken from the textbook and from real architectures.

Every case is one conv2d call, ``conv2d(x[N, C, H, W], w[K, C/groups, R, S], bias[K])``,
timed in each of MODES. Batch sizes are kept small (1-8) so that these suites fit in about
five minutes on a 2-core machine; the per-image shapes are the architectures' own (224x224
input).
"""

from dataclasses import dataclass
from typing import Dict, Tuple

from fastconv.shapes import conv_out_size

# Forward; forward and backward w.r.t. input, weight and bias.
MODES = ("fwd", "fwd+bwd")


@dataclass(frozen=True)
class Case:
    name: str
    N: int
    C: int
    H: int
    W: int
    K: int
    R: int
    S: int
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    groups: int = 1
    bias: bool = False
    source: str = ""

    @property
    def out_hw(self) -> Tuple[int, int]:
        def size(n, k):
            return conv_out_size(n, k, self.padding, self.stride, self.dilation)

        return size(self.H, self.R), size(self.W, self.S)

    @property
    def conv_kwargs(self) -> Dict[str, int]:
        """The keyword arguments of conv2d (fastconv's and torch's) besides the tensors."""
        return {
            "stride": self.stride,
            "padding": self.padding,
            "dilation": self.dilation,
            "groups": self.groups,
        }

    @property
    def flops(self) -> int:
        """Forward multiply-adds x 2: 2*N*K*P*Q*(C/groups)*R*S."""
        p, q = self.out_hw
        return 2 * self.N * self.K * p * q * (self.C // self.groups) * self.R * self.S

    @property
    def single_plane(self) -> bool:
        """The textbook's corr2d can compute it: one image, one channel in and out."""
        return (self.N, self.C, self.K, self.groups, self.stride, self.dilation) == (1,) * 6

    @property
    def shape(self) -> str:
        s = f"{self.N}x{self.C}x{self.H}x{self.W} * {self.K}x{self.C // self.groups}"
        s += f"x{self.R}x{self.S}"
        for label, value, default in (
            ("s", self.stride, 1),
            ("p", self.padding, 0),
            ("d", self.dilation, 1),
            ("g", self.groups, 1),
        ):
            if value != default:
                s += f" {label}{value}"
        return s


@dataclass(frozen=True)
class Suite:
    name: str
    reason: str
    cases: Tuple[Case, ...]
    quick: Tuple[str, ...]  # the names of the cases --quick runs


def _depthwise(name, n, c, hw, k, stride=1, bias=False, source=""):
    return Case(name, n, c, hw, hw, c, k, k, stride, k // 2, 1, c, bias, source)


def _same(name, hw, k, source):
    return Case(name, 1, 1, hw, hw, 1, k, k, padding=k // 2, source=source)


D2L = "Dive into Deep Learning, sec. 7.2"

TEXTBOOK = Suite(
    "textbook",
    "The textbook's own corr2d workload: single-channel images and kernels, plus RGB filtering.",
    (
        Case("d2l-3x3", 1, 1, 3, 3, 1, 2, 2, source=f"{D2L}: X 3x3, K 2x2 worked example"),
        Case("d2l-edge", 1, 1, 6, 8, 1, 1, 2, source=f"{D2L}: 6x8 edge image, K=[1,-1]"),
        Case("gray64-sobel3", 1, 1, 64, 64, 1, 3, 3, source="64^2 grayscale, 3x3 Sobel"),
        Case("gray64-blur7", 1, 1, 64, 64, 1, 7, 7, source="64^2 grayscale, 7x7 Gaussian"),
        Case("gray256-sobel3", 1, 1, 256, 256, 1, 3, 3, source="256^2 grayscale, 3x3 Sobel"),
        Case("gray256-blur5", 1, 1, 256, 256, 1, 5, 5, source="256^2 grayscale, 5x5 Gaussian"),
        Case("gray1024-sobel3", 1, 1, 1024, 1024, 1, 3, 3, source="1 MP grayscale, 3x3 Sobel"),
        Case("gray1024-blur7", 1, 1, 1024, 1024, 1, 7, 7, source="1 MP grayscale, 7x7 Gaussian"),
        Case("gray2048-blur5", 1, 1, 2048, 2048, 1, 5, 5, source="4 MP grayscale, 5x5 Gaussian"),
        _depthwise("rgb224-blur3", 8, 3, 224, 3, source="per-channel 3x3 blur of RGB 224^2"),
        _depthwise("rgb224-blur5", 8, 3, 224, 5, source="per-channel 5x5 blur of RGB 224^2"),
    ),
    ("d2l-3x3", "gray64-sobel3", "rgb224-blur3"),
)

MBV2 = "MobileNetV2 (Sandler et al. 2018), 224^2 input"
EFFB0 = "EfficientNet-B0 (Tan & Le 2019), 224^2 input"
DEPTHWISE = Suite(
    "depthwise",
    "Depthwise (groups == channels) layers of mobile and large-kernel nets: few FLOPs per "
    "byte, so memory traffic and vector layout decide, not GEMM.",
    (
        _depthwise("mbv2-dw32", 8, 32, 112, 3, source=f"{MBV2}, block 1 dw 3x3"),
        _depthwise("mbv2-dw96-s2", 8, 96, 112, 3, 2, source=f"{MBV2}, block 2 dw 3x3 s2"),
        _depthwise("mbv2-dw144", 8, 144, 56, 3, source=f"{MBV2}, block 3 dw 3x3"),
        _depthwise("mbv2-dw384", 8, 384, 14, 3, source=f"{MBV2}, block 8 dw 3x3"),
        _depthwise("effb0-dw240-5x5", 8, 240, 28, 5, source=f"{EFFB0}, stage 4 MBConv6 k5"),
        _depthwise("effb0-dw672-5x5-s2", 8, 672, 14, 5, 2, source=f"{EFFB0}, stage 6 k5 s2"),
        _depthwise(
            "convnext-dw96-7x7", 2, 96, 56, 7, bias=True, source="ConvNeXt-T (Liu 2022), stage 1"
        ),
        _depthwise(
            "replk-dw256-13x13",
            1,
            256,
            28,
            13,
            source="RepLKNet-13 (Ding et al. 2022, kernels 13-13-13-13), stage 2",
        ),
        _depthwise(
            "replk-dw128-31x31", 1, 128, 56, 31, source="RepLKNet-31B (Ding et al. 2022), stage 1"
        ),
    ),
    ("mbv2-dw144", "convnext-dw96-7x7"),
)

R18 = "ResNet-18 (He et al. 2016), 224^2 input"
DENSE = Suite(
    "dense",
    "Dense convolutions of classic CNNs, where torch's oneDNN/cuDNN GEMM paths are strongest.",
    (
        Case("r18-conv2-3x3", 4, 64, 56, 56, 64, 3, 3, padding=1, source=f"{R18}, conv2_x"),
        Case("r18-conv3-3x3", 4, 128, 28, 28, 128, 3, 3, padding=1, source=f"{R18}, conv3_x"),
        Case("r18-conv4-3x3", 4, 256, 14, 14, 256, 3, 3, padding=1, source=f"{R18}, conv4_x"),
        Case("r18-conv5-3x3", 4, 512, 7, 7, 512, 3, 3, padding=1, source=f"{R18}, conv5_x"),
        Case(
            "r50-1x1-reduce",
            4,
            256,
            56,
            56,
            64,
            1,
            1,
            source="ResNet-50 conv2_x bottleneck 256->64",
        ),
        Case(
            "r50-1x1-expand",
            4,
            64,
            56,
            56,
            256,
            1,
            1,
            source="ResNet-50 conv2_x bottleneck 64->256",
        ),
        Case(
            "resnet-stem-7x7",
            4,
            3,
            224,
            224,
            64,
            7,
            7,
            stride=2,
            padding=3,
            source="ResNet stem conv1 7x7 s2",
        ),
        Case(
            "deeplab-3x3-d2",
            2,
            256,
            28,
            28,
            256,
            3,
            3,
            padding=2,
            dilation=2,
            source="DeepLabv3-ResNet50 (torchvision), layer3 dilated 3x3, output stride 8",
        ),
        Case(
            "resnext-3x3-g32",
            2,
            128,
            56,
            56,
            128,
            3,
            3,
            padding=1,
            groups=32,
            source="ResNeXt-50 32x4d (Xie et al. 2017), conv2 grouped 3x3",
        ),
    ),
    ("r18-conv2-3x3", "r50-1x1-reduce"),
)

SWEEP = Suite(
    "sweep",
    "Scaling: single-channel 'same' correlation over image size (3x3) and kernel size (512^2).",
    tuple(
        _same(f"img{n}-k3", n, 3, "image-size sweep, 3x3 'same'")
        for n in (64, 128, 256, 512, 1024, 2048)
    )
    + tuple(
        _same(f"k{k}-img512", 512, k, "kernel-size sweep, 512^2 'same'")
        for k in (3, 5, 7, 9, 13, 17, 23, 31)
    ),
    ("img64-k3", "img512-k3", "k13-img512"),
)


def _image(name, h, w, k, n=1, source=""):
    """A single-channel image filtered with one k x k kernel, same-size (zero border) output:
    what cv2.filter2D and scipy.ndimage.correlate compute."""
    return Case(name, n, 1, h, w, 1, k, k, padding=k // 2, source=source)


FILTER = Suite(
    "filter",
    "Image filtering, fastconv against the libraries users pick for it (cv2.filter2D, "
    "scipy): one channel, one kernel, images from the textbook's 6x8 to 4K.",
    (
        Case("edge-6x8", 1, 1, 6, 8, 1, 1, 2, source=f"{D2L}: 6x8 edge image, K=[1,-1], valid"),
        _image("image64-k3", 64, 64, 3, source="64^2 icon, 3x3"),
        _image("image256-k3", 256, 256, 3, source="256^2, 3x3 Sobel"),
        _image("image256-k5", 256, 256, 5, source="256^2, 5x5 Gaussian"),
        _image("image512-k7", 512, 512, 7, source="512^2, 7x7 Gaussian"),
        _image("image512-k31", 512, 512, 31, source="512^2, 31x31 blur"),
        _image("image1024-k3", 1024, 1024, 3, source="1 MP, 3x3"),
        _image("image1024-k5", 1024, 1024, 5, source="1 MP, 5x5"),
        _image("image1024-k15", 1024, 1024, 15, source="1 MP, 15x15"),
        _image("image1024-k31", 1024, 1024, 31, source="1 MP, 31x31 (OpenCV goes to a DFT)"),
        _image("image2048-k3", 2048, 2048, 3, source="4 MP, 3x3"),
        _image("hd-k9", 1080, 1920, 9, source="full HD frame, 9x9"),
        _image("4k-k3", 2160, 3840, 3, source="4K UHD frame, 3x3"),
        _image("4k-k5", 2160, 3840, 5, source="4K UHD frame, 5x5"),
        _image("batch8-image256-k5", 256, 256, 5, n=8, source="8 images of 256^2, 5x5"),
    ),
    ("edge-6x8", "image256-k3", "image1024-k31"),
)

SUITES: Dict[str, Suite] = {s.name: s for s in (TEXTBOOK, FILTER, DEPTHWISE, DENSE, SWEEP)}


def select(names, quick=False):
    """The suites named (in the order given) with the cases to run."""
    out = []
    for name in names:
        if name not in SUITES:
            raise ValueError(f"unknown suite {name!r}; choose from {', '.join(SUITES)}")
        suite = SUITES[name]
        cases = tuple(c for c in suite.cases if not quick or c.name in suite.quick)
        out.append((suite, cases))
    return out
