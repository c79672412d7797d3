"""Resolve the ``device`` config key once."""
from __future__ import annotations

import functools

import os
import re

import torch

from .errors import ConfigError


def resolve_device(spec: str) -> torch.device:
    """Map auto|cpu|cuda|cuda:N|mps to an available torch.device, or raise ConfigError."""
    spec = str(spec).strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    m = re.fullmatch(r"cuda(?::(\d+))?", spec)
    if m:
        if not torch.cuda.is_available():
            raise ConfigError(f"device={spec}: CUDA is not available on this machine; use device=cpu or device=auto")
        idx = int(m.group(1) or 0)
        if idx >= torch.cuda.device_count():
            raise ConfigError(f"device={spec}: only {torch.cuda.device_count()} CUDA device(s) present (cuda:0..)")
        return torch.device("cuda", idx)
    if spec == "mps":
        if not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
            raise ConfigError("device=mps: MPS is not available on this machine; use device=cpu or device=auto")
        return torch.device("mps")
    raise ConfigError(f"device={spec!r} is not understood; use auto, cpu, cuda, cuda:N or mps")


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask: what a cluster job or a taskset grants)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def set_threads(spec: int | str) -> int:
    """Fix torch's intra-op thread count from the ``threads`` key (auto: ``usable_cpus()``) and return it.

    A launcher's worker inherits a smaller default (joblib sets OMP_NUM_THREADS to cores / jobs), and CPU
    kernels split their sums by thread, so a job's numbers would depend on how it was launched."""
    if spec == "auto":
        n = usable_cpus()
    elif isinstance(spec, int) and not isinstance(spec, bool) and 1 <= spec <= 1024:
        n = spec
    else:
        raise ConfigError(f"threads={spec!r} is invalid: use auto (every CPU this process may use) or an integer "
                          "in [1, 1024]")
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def _cpu_flags() -> set[str]:
    """CPU feature flags from /proc/cpuinfo (empty where it does not exist, e.g. macOS)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_model() -> str:
    """The CPU's model name (lscpu's "Model name", else /proc/cpuinfo's "model name", else platform's)."""
    import platform
    import subprocess

    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return platform.processor() or "unknown CPU"


@functools.lru_cache(maxsize=None)
def machine(device_type: str = "cpu") -> dict[str, str]:
    """What a row's numbers were computed on: the CPU's model, family and widest ISA class (seeded figures agree
    within one class, not across), the device type and torch's version. Kept in every metrics row, so a run
    resumed on another machine shows where its generations were made."""
    flags, family = _cpu_flags(), "?"
    try:
        with open("/proc/cpuinfo") as f:
            family = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("cpu family")), "?")
    except OSError:
        pass
    isa = next((name for name, flag in (("amx", "amx_bf16"), ("avx512_bf16", "avx512_bf16"), ("avx512", "avx512f"),
                                        ("avx2", "avx2")) if flag in flags), "other")
    out = {"cpu": cpu_model(), "cpu_family": family, "isa": isa, "device": device_type, "torch": str(torch.__version__)}
    if device_type == "cuda":  # the GPU's name and the CUDA runtime torch was built with
        out["gpu"] = torch.cuda.get_device_name(torch.cuda.current_device())
        out["cuda"] = str(torch.version.cuda)
    return out


def make_deterministic(device: torch.device) -> None:
    """On CUDA: deterministic cuDNN convolutions (no autotuned, atomic-add backward algorithms), deterministic
    kernels where torch has them, and the cuBLAS workspace setting they need, so two runs of one seed, or a resumed
    and an uninterrupted one, give the same numbers. The CPU path is left as it is (its kernels already are)."""
    if device.type != "cuda":
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)  # an op without a deterministic kernel warns, by name


def native_bf16(device: torch.device) -> bool:
    """True where bf16 matmuls/convs run natively: CUDA with bf16 support, or a CPU with AMX or AVX512-BF16."""
    if device.type == "cuda":  # native only: an emulated bf16 (pre-Ampere) is slower than fp32
        try:
            return bool(torch.cuda.is_bf16_supported(including_emulation=False))
        except TypeError:  # an older torch without the argument: compute capability 8.0 (Ampere) or newer
            return torch.cuda.get_device_capability(device)[0] >= 8
    if device.type == "cpu":
        try:
            onednn = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            onednn = False
        return onednn and bool(_cpu_flags() & {"avx512_bf16", "amx_bf16"})
    return False


def bf16_autocast(device: torch.device, enabled: bool):
    """bf16 autocast on ``device`` when ``enabled``; a no-op context otherwise (whatever the device)."""
    return torch.autocast(device.type if enabled else "cpu", dtype=torch.bfloat16, enabled=enabled)


def resolve_bf16(setting: object, device: torch.device, key: str = "generator.bf16") -> bool:
    """Map auto|true|false to whether bf16 autocast is used on ``device`` (auto: where it is native)."""
    if isinstance(setting, str) and setting.strip().lower() == "auto":
        return native_bf16(device)
    if isinstance(setting, bool):
        if setting and device.type not in ("cpu", "cuda"):
            raise ConfigError(f"{key}=true: bf16 autocast is supported on cpu and cuda, not {device.type}; "
                              f"use {key}=auto or false")
        return setting
    raise ConfigError(f"{key}={setting!r} is invalid: choose auto, true or false")
