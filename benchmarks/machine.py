"""What machine a benchmark ran on: the description saved with its results, and the file name."""

from __future__ import annotations

import os
import platform
import re

import torch


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what platform reports."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_id() -> str | None:
    """'family F model M' from /proc/cpuinfo: tells apart CPUs a VM names alike ('AMD EPYC')."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() in ("cpu family", "model") and key.strip() not in fields:
                    fields[key.strip()] = value.strip()
                if not line.strip():
                    break
    except OSError:
        return None
    return f"family {fields['cpu family']} model {fields['model']}" if len(fields) == 2 else None


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages: how busy a shared machine was (None where unknown)."""
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def describe(gpu: bool = False) -> dict[str, object]:
    """CPU model, cores, threads, load, torch version, and the GPU when asked for (and present)."""
    cuda = gpu and torch.cuda.is_available()
    return {
        "cpu": cpu_model(),
        "cpu_id": cpu_id(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "load_average_at_start": load_average(),
        "python": platform.python_version(),
        "gpu": torch.cuda.get_device_name() if cuda else None,
        "cuda": torch.version.cuda if cuda else None,
    }


def slug(machine: dict[str, object]) -> str:
    """A file name for the machine: 'amd-epyc-2-cores', 'nvidia-h100-80gb-hbm3' (the GPU when there is one)."""
    name = str(machine["gpu"]) if machine.get("gpu") else f"{machine['cpu']}-{machine['cores']}-cores"
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "unknown"
