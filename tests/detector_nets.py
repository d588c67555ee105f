"""Detector-shaped test networks with the module names of real detectors (PyPI torchvision / Ultralytics / YOLOX do
not import beside the CPU torch used here, so the hook tests run on these stand-ins).

- :class:`TinyFasterRCNN`: ``backbone`` is a ResNet-style ``body`` (conv1, bn1, relu, maxpool, layer1..layer4) plus an
  FPN (``fpn.inner_blocks``, ``fpn.layer_blocks``, ``fpn.extra_blocks``) returning an ``OrderedDict`` with keys
  '0'-'3' at strides 4/8/16/32 and 'pool' at 64, as torchvision's ``BackboneWithFPN``.
- :class:`TinyYOLOX`: ``backbone`` is a PAFPN (``backbone.backbone`` CSPDarknet-like dark2..dark5, lateral and
  bottom-up convs) returning the tuple (P3, P4, P5) at strides 8/16/32, then a ``head``.
- :class:`TinyYOLOv8`: an Ultralytics-style ``DetectionModel`` whose ``model`` is a layer list with ``.f`` (input
  indices) and ``.i``; the last layer is a ``Detect`` whose ``.f`` lists its P3/P4/P5 inputs.

Each counts its backbone passes (``backbone_calls``) so tests can check one pass per frame.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


# ---------------------------------------------------------------------------------------------------- torchvision-like
class _Body(nn.Module):
    def __init__(self, widths: tuple[int, int, int, int]) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = _conv(8, widths[0], 1)
        self.layer2 = _conv(widths[0], widths[1], 2)
        self.layer3 = _conv(widths[1], widths[2], 2)
        self.layer4 = _conv(widths[2], widths[3], 2)

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        out: OrderedDict[str, Tensor] = OrderedDict()
        for i, layer in enumerate((self.layer1, self.layer2, self.layer3, self.layer4)):
            x = layer(x)
            out[str(i)] = x
        return out


class _LastLevelMaxPool(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool2d(x, 1, 2, 0)


class _FPN(nn.Module):
    def __init__(self, widths: tuple[int, ...], out_channels: int) -> None:
        super().__init__()
        self.inner_blocks = nn.ModuleList(nn.Sequential(nn.Conv2d(w, out_channels, 1)) for w in widths)
        self.layer_blocks = nn.ModuleList(nn.Sequential(nn.Conv2d(out_channels, out_channels, 3, 1, 1)) for _ in widths)
        self.extra_blocks = _LastLevelMaxPool()

    def forward(self, x: OrderedDict[str, Tensor]) -> OrderedDict[str, Tensor]:
        names, feats = list(x.keys()), list(x.values())
        last = self.inner_blocks[-1](feats[-1])
        results = [self.layer_blocks[-1](last)]
        for idx in range(len(feats) - 2, -1, -1):
            lateral = self.inner_blocks[idx](feats[idx])
            last = lateral + F.interpolate(last, size=lateral.shape[-2:], mode="nearest")
            results.insert(0, self.layer_blocks[idx](last))
        out = OrderedDict(zip(names, results, strict=True))
        out["pool"] = self.extra_blocks(results[-1])
        return out


class TinyBackboneWithFPN(nn.Module):
    """torchvision ``BackboneWithFPN`` look-alike: OrderedDict '0'-'3' (strides 4-32) and 'pool' (64)."""

    def __init__(self, widths: tuple[int, int, int, int] = (8, 16, 24, 32), out_channels: int = 16) -> None:
        super().__init__()
        self.body = _Body(widths)
        self.fpn = _FPN(widths, out_channels)
        self.out_channels = out_channels
        self.calls = 0

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        self.calls += 1
        return self.fpn(self.body(x))


class TinyFasterRCNN(nn.Module):
    """A detector with torchvision's top-level names: ``backbone`` (FPN) and a toy ``rpn`` scoring head."""

    def __init__(self, out_channels: int = 16) -> None:
        super().__init__()
        self.backbone = TinyBackboneWithFPN(out_channels=out_channels)
        self.rpn = nn.Conv2d(out_channels, 1, 1)

    @property
    def backbone_calls(self) -> int:
        return self.backbone.calls

    def forward(self, images: Tensor) -> list[dict[str, Tensor]]:
        feats = self.backbone(images)
        score = self.rpn(feats["2"]).flatten(1)
        return [{"scores": s.sigmoid(), "boxes": torch.zeros(s.numel(), 4)} for s in score]


# ---------------------------------------------------------------------------------------------------- YOLOX-like
class _CSPDarknet(nn.Module):
    def __init__(self, w: int) -> None:
        super().__init__()
        self.stem = _conv(3, w, 2)
        self.dark2 = _conv(w, 2 * w, 2)
        self.dark3 = _conv(2 * w, 4 * w, 2)
        self.dark4 = _conv(4 * w, 8 * w, 2)
        self.dark5 = _conv(8 * w, 16 * w, 2)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        x = self.dark2(self.stem(x))
        c3 = self.dark3(x)
        c4 = self.dark4(c3)
        c5 = self.dark5(c4)
        return {"dark3": c3, "dark4": c4, "dark5": c5}


class TinyPAFPN(nn.Module):
    """YOLOX ``YOLOPAFPN`` look-alike: returns (P3, P4, P5) at strides 8/16/32 with 4w, 8w, 16w channels."""

    def __init__(self, w: int = 4) -> None:
        super().__init__()
        self.backbone = _CSPDarknet(w)
        self.lateral_conv0 = nn.Conv2d(16 * w, 8 * w, 1)
        self.C3_p4 = _conv(16 * w, 8 * w)
        self.reduce_conv1 = nn.Conv2d(8 * w, 4 * w, 1)
        self.C3_p3 = _conv(8 * w, 4 * w)
        self.bu_conv2 = _conv(4 * w, 4 * w, 2)
        self.C3_n3 = _conv(8 * w, 8 * w)
        self.bu_conv1 = _conv(8 * w, 8 * w, 2)
        self.C3_n4 = _conv(16 * w, 16 * w)
        self.calls = 0

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        self.calls += 1
        f = self.backbone(x)
        x0 = self.lateral_conv0(f["dark5"])
        f_out0 = self.C3_p4(torch.cat([F.interpolate(x0, scale_factor=2.0), f["dark4"]], 1))
        x1 = self.reduce_conv1(f_out0)
        pan_out2 = self.C3_p3(torch.cat([F.interpolate(x1, scale_factor=2.0), f["dark3"]], 1))
        pan_out1 = self.C3_n3(torch.cat([self.bu_conv2(pan_out2), x1], 1))
        pan_out0 = self.C3_n4(torch.cat([self.bu_conv1(pan_out1), x0], 1))
        return pan_out2, pan_out1, pan_out0


class TinyYOLOX(nn.Module):
    """YOLOX look-alike: ``backbone`` (PAFPN tuple) then a per-level ``head``."""

    def __init__(self, w: int = 4) -> None:
        super().__init__()
        self.backbone = TinyPAFPN(w)
        self.head = nn.ModuleList(nn.Conv2d(c, 6, 1) for c in (4 * w, 8 * w, 16 * w))

    @property
    def backbone_calls(self) -> int:
        return self.backbone.calls

    def forward(self, x: Tensor) -> Tensor:
        feats = self.backbone(x)
        return torch.cat([h(f).flatten(2) for h, f in zip(self.head, feats, strict=True)], dim=2)


# ---------------------------------------------------------------------------------------------------- Ultralytics-like
class _Layer(nn.Module):
    def __init__(self, module: nn.Module, f: int | list[int], i: int) -> None:
        super().__init__()
        self.m = module
        self.f = f
        self.i = i

    def forward(self, x: Tensor | list[Tensor]) -> Tensor:
        if isinstance(x, list):
            x = torch.cat(x, 1)
        return self.m(x)


class _Detect(nn.Module):
    def __init__(self, channels: tuple[int, int, int], f: list[int], i: int) -> None:
        super().__init__()
        self.cv = nn.ModuleList(nn.Conv2d(c, 5, 1) for c in channels)
        self.f = f
        self.i = i
        self.stride = torch.tensor([8.0, 16.0, 32.0])

    def forward(self, x: list[Tensor]) -> Tensor:
        return torch.cat([cv(t).flatten(2) for cv, t in zip(self.cv, x, strict=True)], dim=2)


class TinyYOLOv8(nn.Module):
    """Ultralytics ``DetectionModel`` look-alike: ``model`` layer list run by ``.f``; ``Detect.f = [10, 13, 16]``."""

    def __init__(self, w: int = 4) -> None:
        super().__init__()
        up = nn.Upsample(scale_factor=2.0, mode="nearest")
        spec: list[tuple[nn.Module, int | list[int]]] = [
            (_conv(3, w, 2), -1),  # 0  /2
            (_conv(w, 2 * w, 2), -1),  # 1  /4
            (_conv(2 * w, 4 * w, 2), -1),  # 2  /8
            (_conv(4 * w, 8 * w, 2), -1),  # 3  /16
            (_conv(8 * w, 16 * w, 2), -1),  # 4  /32
            (up, -1),  # 5
            (nn.Identity(), [-1, 3]),  # 6  concat
            (_conv(24 * w, 8 * w), -1),  # 7
            (up, -1),  # 8
            (nn.Identity(), [-1, 2]),  # 9  concat
            (_conv(12 * w, 4 * w), -1),  # 10 P3 out
            (_conv(4 * w, 4 * w, 2), -1),  # 11
            (nn.Identity(), [-1, 7]),  # 12 concat
            (_conv(12 * w, 8 * w), -1),  # 13 P4 out
            (_conv(8 * w, 8 * w, 2), -1),  # 14
            (nn.Identity(), [-1, 4]),  # 15 concat
            (_conv(24 * w, 16 * w), -1),  # 16 P5 out
        ]
        layers: list[nn.Module] = [_Layer(m, f, i) for i, (m, f) in enumerate(spec)]
        layers.append(_Detect((4 * w, 8 * w, 16 * w), [10, 13, 16], len(spec)))
        self.model = nn.Sequential(*layers)
        self.backbone_calls = 0

    def forward(self, x: Tensor) -> Tensor:
        self.backbone_calls += 1
        y: list[Tensor | list[Tensor]] = []
        out: Tensor | list[Tensor] = x
        for m in self.model:
            f = m.f
            if f != -1:
                out = y[f] if isinstance(f, int) else [out if j == -1 else y[j] for j in f]  # type: ignore[misc]
            out = m(out)
            y.append(out)
        assert isinstance(out, Tensor)
        return out
