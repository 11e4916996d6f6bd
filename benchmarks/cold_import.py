"""Cold import of the ingestion handler against ``import boto3`` alone, from the real zip.

Builds the Lambda zip (``filegate.package.build``), unpacks it, and makes the runtime's package
directory (``filegate.local.runtime.runtime_packages_dir``: boto3, botocore and their
dependencies only). Each sample is a FRESH ``python -I -S`` subprocess whose ``sys.path`` is
exactly [unpacked zip, runtime packages], with the function's environment. Measured, interleaved
so machine noise hits every variant alike (median of ``--runs``, default 9):

- ``interpreter``: ``pass`` (interpreter start-up, the floor every variant pays);
- ``boto3``: ``import boto3``;
- ``handler``: ``import filegate.ingest.handler`` (the Lambda's init phase: boto3 is deferred);
- ``handler+clients``: the import plus ``build_ingestor()`` (boto3 imported, S3 and DynamoDB
  clients made): what the first invocation of a cold container adds on top.
- ``handler+clients, runtime SDK``: the same with the zip's own SDK (boto3, botocore and their
  dependencies, which the zip ships) removed, so the runtime's copy is imported: what bundling
  the SDK costs or saves.

Each variant reports the process wall time and ``-X importtime``'s cumulative time for its
top-level import (which excludes interpreter start-up). The ratio handler / boto3 is the figure.

    .venv/bin/python benchmarks/cold_import.py [--runs 9]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import median, save, table
from filegate import package
from filegate.local.runtime import runtime_packages_dir

PRELUDE = "import sys; sys.path[:0] = sys.argv[1:3]\n"
BUILD_INGESTOR = "import filegate.ingest.handler as h; h.build_ingestor()"
VARIANTS = {
    "interpreter": ("pass", None),
    "boto3": ("import boto3", "boto3"),
    "handler": ("import filegate.ingest.handler", "filegate.ingest.handler"),
    "handler+clients": (BUILD_INGESTOR, "filegate.ingest.handler"),
    "handler+clients, runtime SDK": (BUILD_INGESTOR, "filegate.ingest.handler"),
}
# The top-level names the SDK's distributions put into the zip.
SDK_TOP_LEVEL = ("boto3", "botocore", "s3transfer", "jmespath", "urllib3", "dateutil", "six.py")
_IMPORTTIME = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)")


def prepare(work: Path) -> tuple[Path, Path, Path]:
    """The unpacked zip, the same without its SDK, and the runtime packages directory."""
    built = package.build(work / "lambda.zip")
    code, without_sdk = work / "code", work / "code-without-sdk"
    with zipfile.ZipFile(built.path) as archive:
        archive.extractall(code)
        archive.extractall(without_sdk)
    for name in SDK_TOP_LEVEL:
        path = without_sdk / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    return code, without_sdk, runtime_packages_dir(work)


def code_for(variant: str, code: Path, without_sdk: Path) -> Path:
    return without_sdk if variant.endswith("runtime SDK") else code


def lambda_env() -> dict[str, str]:
    """The template's function environment, pointed nowhere (no call is made)."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        "AWS_REGION": "eu-central-1",
        "AWS_DEFAULT_REGION": "eu-central-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_LAMBDA_FUNCTION_NAME": "filegate-ingest",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
        "DDB_TABLE": "filegate-ledger",
        "UPLOAD_BUCKET": "filegate-uploads",
        "POWERTOOLS_SERVICE_NAME": "filegate-ingest",
        "POWERTOOLS_METRICS_NAMESPACE": "filegate",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "LOG_LEVEL": "INFO",
    }


def sample(code: Path, runtime: Path, variant: str) -> tuple[float, float | None]:
    """One fresh process: (wall ms, -X importtime cumulative ms of the top-level import)."""
    statement, module = VARIANTS[variant]
    command = [sys.executable, "-I", "-S", "-X", "importtime", "-c", PRELUDE + statement]
    started = time.perf_counter()
    done = subprocess.run(
        [*command, str(code), str(runtime)],
        env=lambda_env(),
        capture_output=True,
        text=True,
        check=False,
        cwd=code,
    )
    wall_ms = (time.perf_counter() - started) * 1000
    if done.returncode != 0:
        raise RuntimeError(f"{variant} failed:\n{done.stderr[-2000:]}")
    return wall_ms, _cumulative_ms(done.stderr, module)


def _cumulative_ms(stderr: str, module: str | None) -> float | None:
    if module is None:
        return None
    for line in stderr.splitlines():
        match = _IMPORTTIME.match(line)
        if match and match.group(4) == module and match.group(3) == " ":
            return int(match.group(2)) / 1000
    return None


def measure(runs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="filegate-import-") as work:
        code, without_sdk, runtime = prepare(Path(work))
        for variant in VARIANTS:  # warm the page cache and write no .pyc into the zip dir
            sample(code_for(variant, code, without_sdk), runtime, variant)
        walls: dict[str, list[float]] = {v: [] for v in VARIANTS}
        imports: dict[str, list[float]] = {v: [] for v in VARIANTS}
        for _ in range(runs):
            for variant in VARIANTS:
                wall, cumulative = sample(code_for(variant, code, without_sdk), runtime, variant)
                walls[variant].append(wall)
                if cumulative is not None:
                    imports[variant].append(cumulative)
    medians = {
        v: {
            "wall_ms": median(walls[v]),
            "importtime_ms": median(imports[v]) if imports[v] else None,
        }
        for v in VARIANTS
    }
    start_up = medians["interpreter"]["wall_ms"]

    def ratio(variant: str, key: str) -> float:
        return float(medians[variant][key] / medians["boto3"][key])

    return {
        "runs": runs,
        "medians": medians,
        "samples_wall_ms": walls,
        "ratio_handler_vs_boto3_wall": ratio("handler", "wall_ms"),
        "ratio_handler_vs_boto3_importtime": ratio("handler", "importtime_ms"),
        "ratio_handler_vs_boto3_wall_net_of_startup": (medians["handler"]["wall_ms"] - start_up)
        / (medians["boto3"]["wall_ms"] - start_up),
        "ratio_handler_clients_vs_boto3_wall": ratio("handler+clients", "wall_ms"),
        "ratio_bundled_vs_runtime_sdk_wall": float(
            medians["handler+clients"]["wall_ms"]
            / medians["handler+clients, runtime SDK"]["wall_ms"]
        ),
    }


def render(figures: dict[str, Any]) -> str:
    medians = figures["medians"]
    rows = []
    for variant, values in medians.items():
        importtime = values["importtime_ms"]
        rows.append(
            [
                variant,
                f"{values['wall_ms']:.0f}",
                "-" if importtime is None else f"{importtime:.0f}",
                f"{values['wall_ms'] / medians['boto3']['wall_ms']:.2f}",
            ]
        )
    headers = ["variant", "wall ms (median)", "importtime ms (median)", "wall / boto3"]
    return (
        table(headers, rows)
        + f"\nhandler / boto3: wall {figures['ratio_handler_vs_boto3_wall']:.2f},"
        + " net of interpreter start-up"
        + f" {figures['ratio_handler_vs_boto3_wall_net_of_startup']:.2f},"
        + f" -X importtime {figures['ratio_handler_vs_boto3_importtime']:.2f}"
        + "\nhandler+clients, bundled SDK / runtime SDK: wall"
        + f" {figures['ratio_bundled_vs_runtime_sdk_wall']:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    figures = measure(max(7, args.runs))
    print(
        f"cold import, fresh `python -I -S` processes, median of {figures['runs']} interleaved runs"
    )
    print(render(figures))
    save("cold_import", figures)


if __name__ == "__main__":
    main()
