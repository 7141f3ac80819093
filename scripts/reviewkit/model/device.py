"""Where a model generates: a device choice (auto, cpu, cuda, cuda:N) resolved to a torch device and dtype.

On a CUDA device the model runs in bf16 where the GPU supports it natively, else in fp32; never in
fp16, where T5's activations overflow. On the CPU it runs in fp32.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass

import torch

from ..common.errors import DeviceError

CHOICES_HELP = ("auto (a CUDA GPU when there is one, else the CPU), cpu, cuda (the first GPU, cuda:0) or cuda:N "
                "(GPU number N, from 0); a GPU generates in bf16 where it supports it, else in fp32; the CPU in fp32")
_CHOICE = re.compile(r"auto|cpu|cuda(:[0-9]+)?")
_PRECISION = {torch.float32: "fp32", torch.bfloat16: "bf16"}


@dataclass(frozen=True)
class GenerationDevice:
    device: torch.device
    dtype: torch.dtype
    gpu_name: str = ""

    @property
    def label(self) -> str:
        """`cuda:0 (NVIDIA H200, bf16)` or `cpu (fp32)`: what the reviews depend on, without the thread count."""
        if self.device.type == "cuda":
            return f"{self.device} ({self.gpu_name}, {_PRECISION[self.dtype]})"
        return f"{self.device} ({_PRECISION[self.dtype]})"

    @property
    def description(self) -> str:
        """The label, with the CPU's thread count: `cpu (fp32, 2 threads)`."""
        if self.device.type == "cuda":
            return self.label
        threads = torch.get_num_threads()
        return f"{self.device} ({_PRECISION[self.dtype]}, {threads} thread{'' if threads == 1 else 's'})"


def device_choice(text: str) -> str:
    """An argparse `type`: auto, cpu, cuda or cuda:N."""
    if not _CHOICE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda or cuda:N (N a GPU number from 0), got {text!r}")
    return text


def resolve_device(choice: str) -> GenerationDevice:
    """The device and dtype of a `device_choice`; DeviceError when it asks for a GPU this machine does not have."""
    if choice == "cpu" or (choice == "auto" and not torch.cuda.is_available()):
        return GenerationDevice(torch.device("cpu"), torch.float32)
    if not torch.cuda.is_available():
        raise DeviceError(f"device {choice} requested, but CUDA is not available here "
                          f"(no GPU, or a CPU-only build of torch {torch.__version__}): choose cpu or auto")
    index = int(choice.partition(":")[2] or 0)
    count = torch.cuda.device_count()
    if index >= count:
        raise DeviceError(f"device {choice} requested, but this machine has {count} CUDA device(s): "
                          f"cuda:0 to cuda:{count - 1}")
    with torch.cuda.device(index):  # is_bf16_supported asks the current device
        bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
    return GenerationDevice(torch.device("cuda", index), torch.bfloat16 if bf16 else torch.float32,
                            torch.cuda.get_device_name(index))
