#!/usr/bin/env python3
"""End-to-end check of the compression job on this machine (and in Dockerfile.minimal when Docker is there).

    python test_sogs_local.py [--device cpu|cuda|auto] [--no-docker] [--keep]

It writes two synthetic 3DGS scenes (one in a sub-folder), runs the job entrypoint ``compress_model.py``
against a temporary input/output tree and a temporary /opt/ml, then checks what a user would rely on:

* every scene has its own folder with a ``.sog`` bundle and a ``meta.json`` + WebP directory;
* the SOG decodes (an independent decoder here, written from the format spec): version 2, splat count, texture
  geometry, quaternion modes, codebooks; decoded positions and opacities match the input within quantization;
* ``compression_report.json`` / ``.txt`` and ``job_report-<host>.json`` / ``.txt`` parse and count right;
* a rerun into the same output with a truncated PLY added reuses the finished scenes, and fails with exit
  code 14 and a UTF-8 message of at most 1 KB.

With a Docker engine (and without ``--no-docker``) it then builds Dockerfile.minimal and runs the same job in
the image. Prints one PASS/FAIL line per check and exits 1 if any check failed.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
COEFFS_PER_BAND = (0, 3, 8, 15)
PER_SPLAT_TEXTURES = ("means", "scales", "quats", "sh0")
SCENES = {"chair.ply": (2000, 3), "sub/table.ply": (1000, 1)}  # relative path: (splats, SH degree)
DOCKER_IMAGE = "sogs-compressor:local-test"


class Checks:
    """Collects PASS/FAIL lines; a failed check never stops the others."""

    def __init__(self) -> None:
        self.failed = 0

    def check(self, ok: bool, what: str, detail: str = "") -> bool:
        print(f"{'PASS' if ok else 'FAIL'}  {what}" + (f"  ({detail})" if detail and not ok else ""), flush=True)
        self.failed += not ok
        return ok


# --- input -------------------------------------------------------------------------------------------------

def synthetic_scene(count: int, sh_degree: int, seed: int) -> dict[str, np.ndarray]:
    """Plausible trained-splat statistics: a blob of small, mostly opaque, coloured Gaussians."""
    rng = np.random.default_rng(seed)
    rest = 3 * COEFFS_PER_BAND[sh_degree]
    return {
        "positions": rng.normal(0.0, 1.5, (count, 3)).astype(np.float32),
        "log_scales": rng.uniform(-5.0, -2.0, (count, 3)).astype(np.float32),
        "rotations": rng.normal(0.0, 1.0, (count, 4)).astype(np.float32),
        "opacity": rng.normal(1.0, 2.0, count).astype(np.float32),
        "f_dc": rng.normal(0.0, 0.8, (count, 3)).astype(np.float32),
        "f_rest": rng.normal(0.0, 0.15, (count, rest)).astype(np.float32),
    }


def write_ply(path: Path, scene: dict[str, np.ndarray]) -> None:
    """A standard binary little-endian 3DGS PLY (INRIA property names and order)."""
    names = (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
             + [f"f_rest_{i}" for i in range(scene["f_rest"].shape[1])]
             + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"])
    count = scene["positions"].shape[0]
    columns = np.concatenate([
        scene["positions"], np.zeros((count, 3), np.float32), scene["f_dc"], scene["f_rest"],
        scene["opacity"][:, None], scene["log_scales"], scene["rotations"]], axis=1).astype("<f4")
    header = "ply\nformat binary_little_endian 1.0\nelement vertex {}\n{}end_header\n".format(
        count, "".join(f"property float {name}\n" for name in names))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header.encode("ascii") + columns.tobytes())


def make_inputs(folder: Path) -> dict[str, dict[str, np.ndarray]]:
    scenes = {}
    for seed, (rel, (count, degree)) in enumerate(SCENES.items()):
        scenes[rel] = synthetic_scene(count, degree, seed)
        write_ply(folder / rel, scenes[rel])
    return scenes


# --- an independent SOG v2 decoder (formats.md section 2) ---------------------------------------------------

def strict_json(data: bytes | str) -> object:
    def reject(token: str) -> None:
        raise ValueError(f"non-standard JSON constant {token}")

    return json.loads(data, parse_constant=reject)


def rgba(data: bytes) -> np.ndarray:
    """Texels as (H, W, 4) uint8. A lossless WebP whose alpha is all 255 may be stored without alpha; browsers
    then read A = 255, so it is read the same way here."""
    image = Image.open(io.BytesIO(data))
    if image.format != "WEBP" or image.mode not in ("RGBA", "RGB"):
        raise ValueError(f"texture is {image.format} {image.mode}, expected a lossless RGBA WebP")
    if b"VP8L" not in data[:64]:
        raise ValueError("texture is lossy WebP (VP8): lossy coding corrupts the SOG's indices")
    return np.asarray(image.convert("RGBA"))


def decode_sog(meta: dict, read) -> dict[str, np.ndarray]:
    """Positions, opacities and SH labels of a SOG v2 given its meta.json and a file reader; ValueError if invalid."""
    if meta.get("version") != 2:
        raise ValueError(f"version {meta.get('version')!r}, expected 2")
    count = meta["count"]
    textures = {}
    for key in PER_SPLAT_TEXTURES + (("shN",) if "shN" in meta else ()):
        for name in meta[key]["files"]:
            textures[name] = rgba(read(name))
    widths = {textures[meta[k]["files"][0]].shape[1] for k in PER_SPLAT_TEXTURES}
    if len(widths) != 1:
        raise ValueError(f"per-splat textures differ in width: {sorted(widths)}")
    for key in ("scales", "sh0") + (("shN",) if "shN" in meta else ()):
        book = np.asarray(meta[key]["codebook"], dtype=np.float64)
        if book.shape != (256,) or not np.isfinite(book).all():
            raise ValueError(f"{key}.codebook must be 256 finite numbers")

    def texels(name: str) -> np.ndarray:
        pixels = textures[name].reshape(-1, 4)
        if pixels.shape[0] < count:
            raise ValueError(f"{name} holds {pixels.shape[0]} texels for {count} splats")
        return pixels[:count].astype(np.int64)

    low, high = (texels(name) for name in meta["means"]["files"])
    q = (high[:, :3] << 8) | low[:, :3]
    mins, maxs = np.asarray(meta["means"]["mins"]), np.asarray(meta["means"]["maxs"])
    n = mins + (maxs - mins) * q / 65535.0
    positions = np.sign(n) * np.expm1(np.abs(n))

    quats = texels(meta["quats"]["files"][0])
    if not ((quats[:, 3] >= 252) & (quats[:, 3] <= 255)).all():
        raise ValueError("quats alpha outside 252..255")

    opacity = texels(meta["sh0"]["files"][0])[:, 3] / 255.0
    decoded = {"positions": positions, "opacity": opacity}
    if "shN" in meta:
        bands = meta["shN"]["bands"]
        centroids = textures[meta["shN"]["files"][0]]
        if centroids.shape[1] != 64 * COEFFS_PER_BAND[bands]:
            raise ValueError(f"shN centroids {centroids.shape[1]} wide for {bands} bands")
        if centroids.shape[0] * 64 < meta["shN"]["count"]:
            raise ValueError(f"shN centroids hold fewer than shN.count = {meta['shN']['count']} entries")
        label = texels(meta["shN"]["files"][1])
        label = label[:, 0] + 256 * label[:, 1]
        if label.max(initial=0) >= meta["shN"]["count"]:
            raise ValueError("shN label beyond shN.count")
        decoded["bands"] = bands
    else:
        decoded["bands"] = 0
    return decoded


def sog_from_bundle(path: Path) -> tuple[dict, dict]:
    with zipfile.ZipFile(path) as bundle:
        if bundle.comment:
            raise ValueError("the .sog has a ZIP comment (the PlayCanvas engine cannot read it)")
        meta = strict_json(bundle.read("meta.json"))
        return meta, decode_sog(meta, bundle.read)


def sog_from_folder(folder: Path) -> tuple[dict, dict]:
    meta = strict_json((folder / "meta.json").read_bytes())
    return meta, decode_sog(meta, lambda name: (folder / name).read_bytes())


# --- checks ------------------------------------------------------------------------------------------------

def close_sorted(decoded: np.ndarray, original: np.ndarray) -> float:
    """Largest gap between the sorted values (SOG reorders splats, so compare distributions element-wise)."""
    return float(np.max(np.abs(np.sort(decoded, axis=0) - np.sort(original, axis=0))))


def check_scene(checks: Checks, out: Path, rel: str, scene: dict[str, np.ndarray]) -> None:
    stem = Path(rel).with_suffix("")
    folder = out / stem
    count = scene["positions"].shape[0]
    degree = COEFFS_PER_BAND.index(scene["f_rest"].shape[1] // 3)
    bundle = folder / f"{stem.name}.sog"
    decoded_forms = {}
    for label, loader, target in (("bundle", sog_from_bundle, bundle), ("directory", sog_from_folder, folder)):
        try:
            decoded_forms[label] = loader(target)
            checks.check(True, f"{rel}: {label} SOG decodes")
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
            checks.check(False, f"{rel}: {label} SOG decodes", f"{type(error).__name__}: {error}")
    for label, (meta, decoded) in decoded_forms.items():
        checks.check(meta["count"] == count, f"{rel}: {label} count {meta['count']} == {count}")
        checks.check(decoded["bands"] == degree, f"{rel}: {label} SH bands {decoded['bands']} == {degree}")
        # 16-bit log-space positions: the step is at most ~(range of log|v|)/65535 relative to |v|+1.
        gap = close_sorted(decoded["positions"], scene["positions"].astype(np.float64))
        limit = 1e-3 * (1.0 + float(np.abs(scene["positions"]).max()))
        checks.check(gap <= limit, f"{rel}: {label} positions within quantization", f"gap {gap:.2e} > {limit:.2e}")
        alpha = 1.0 / (1.0 + np.exp(-scene["opacity"].astype(np.float64)))
        gap = close_sorted(decoded["opacity"], alpha)
        checks.check(gap <= 1.0 / 255 + 1e-6, f"{rel}: {label} opacities within 1/255", f"gap {gap:.4f}")
    if len(decoded_forms) == 2:
        checks.check(decoded_forms["bundle"][0] == decoded_forms["directory"][0],
                     f"{rel}: bundle and directory carry the same meta.json")

    try:
        report = strict_json((folder / "compression_report.json").read_bytes())
        splats = report.get("splats", {})
        checks.check(report.get("status") == "ok" and splats.get("input") == count and splats.get("output") == count,
                     f"{rel}: compression_report.json says ok, {count} splats in and out",
                     f"status {report.get('status')}, splats {splats}")
        text = (folder / "compression_report.txt").read_text(encoding="utf-8")
        checks.check(bool(text.strip()), f"{rel}: compression_report.txt is there")
    except (OSError, ValueError) as error:
        checks.check(False, f"{rel}: scene reports parse", str(error))


def read_message(root: Path) -> str | None:
    path = root / "output" / "message"
    return path.read_bytes().decode("utf-8") if path.exists() else None


def check_job_report(checks: Checks, out: Path, scenes: int, failed: int, exit_code: int, reused: int = 0) -> None:
    reports = sorted(out.glob("job_report-*.json"))
    if not checks.check(len(reports) == 1, "one job_report-<host>.json", f"found {[p.name for p in reports]}"):
        return
    try:
        report = strict_json(reports[0].read_bytes())
    except ValueError as error:
        checks.check(False, "job report parses", str(error))
        return
    totals = report.get("totals", {})
    checks.check(totals.get("scenes") == scenes and totals.get("failed") == failed
                 and totals.get("files_processed") == scenes - failed and totals.get("reused") == reused
                 and report.get("exit_code") == exit_code,
                 f"job report counts {scenes} scenes, {failed} failed, {reused} reused, exit {exit_code}",
                 f"totals {totals}, exit {report.get('exit_code')}")
    checks.check(reports[0].with_suffix(".txt").exists(), "job report text is there")


def check_message(checks: Checks, root: Path, must_exist: bool) -> None:
    try:
        message = read_message(root)
    except UnicodeDecodeError:
        checks.check(False, "message file is UTF-8")
        return
    if message is None:
        checks.check(not must_exist, "message file written")
        return
    size = len(message.encode("utf-8"))
    checks.check(size <= 1024 and message.strip() != "", f"message file is UTF-8, {size} <= 1024 bytes")


def run_job(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    print("$ " + " ".join(command), flush=True)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)


def tail(result: subprocess.CompletedProcess, lines: int = 6) -> str:
    """The last lines the job printed, for a failed check."""
    return "\n".join((result.stderr or result.stdout or "").strip().splitlines()[-lines:])


def job_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("LOG_LEVEL", "WARNING")
    return env


def run_local(checks: Checks, work: Path, device: str) -> None:
    entry = HERE / "compress_model.py"
    if not checks.check(entry.exists(), f"job entrypoint {entry} exists"):
        return
    inputs, out, root = work / "in", work / "out", work / "opt_ml"
    scenes = make_inputs(inputs)
    result = run_job([sys.executable, str(entry), "--input", str(inputs), "--output", str(out),
                      "--opt-ml-root", str(root), "--device", device, "--layout", "both"], job_env())
    if not checks.check(result.returncode == 0, f"job exits 0 (exit {result.returncode})", tail(result)):
        return
    for rel, scene in scenes.items():
        check_scene(checks, out, rel, scene)
    check_job_report(checks, out, scenes=len(scenes), failed=0, exit_code=0)
    check_message(checks, root, must_exist=False)

    # A rerun into the same output with a truncated PLY added: the finished scenes are reused (not redone, not
    # lost), the broken one fails the job with its own exit code and a message of at most 1 KB.
    rerun_in, rerun_root = work / "rerun_in", work / "rerun_opt_ml"
    shutil.copytree(inputs, rerun_in)
    write_ply(rerun_in / "broken.ply", synthetic_scene(500, 0, 9))
    broken = (rerun_in / "broken.ply").read_bytes()
    (rerun_in / "broken.ply").write_bytes(broken[: len(broken) - 1000])
    result = run_job([sys.executable, str(entry), "--input", str(rerun_in), "--output", str(out),
                      "--opt-ml-root", str(rerun_root), "--device", device, "--layout", "both"], job_env())
    checks.check(result.returncode == 14, "rerun with a truncated PLY exits 14 (size does not match header)",
                 f"exit {result.returncode}: {tail(result)}")
    checks.check("Traceback" not in result.stderr, "no traceback on bad input", tail(result))
    check_message(checks, rerun_root, must_exist=True)
    check_job_report(checks, out, scenes=len(scenes) + 1, failed=1, exit_code=result.returncode,
                     reused=len(scenes))
    for rel, scene in scenes.items():  # still there and intact after the failed rerun
        check_scene(checks, out, rel, scene)


def docker_engine(timeout: float = 20) -> str | None:
    """None when a Docker engine answers, else why not."""
    if shutil.which("docker") is None:
        return "no docker executable on PATH"
    try:
        probe = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True,
                               text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "docker info timed out"
    if probe.returncode != 0:
        return "no Docker engine: " + (probe.stderr.strip().splitlines() or ["docker info failed"])[-1]
    return None


def run_docker(checks: Checks, work: Path) -> None:
    if not (HERE / "Dockerfile.minimal").exists():
        print("SKIP  docker: Dockerfile.minimal is not beside this script (running inside an image?)")
        return
    reason = docker_engine()
    if reason:
        print(f"SKIP  docker: {reason}")
        return
    build = subprocess.run(["docker", "build", "-f", str(HERE / "Dockerfile.minimal"), "-t", DOCKER_IMAGE, str(HERE)],
                           capture_output=True, text=True, timeout=3600)
    if not checks.check(build.returncode == 0, "docker build -f Dockerfile.minimal", build.stderr[-2000:]):
        return
    inputs, out, root = work / "docker_in", work / "docker_out", work / "docker_opt_ml"
    for folder in (out, root):
        folder.mkdir(parents=True)
    scenes = make_inputs(inputs)
    user = f"{os.getuid()}:{os.getgid()}" if hasattr(os, "getuid") else "0:0"
    result = run_job(["docker", "run", "--rm", "--user", user, "-e", "LOG_LEVEL=WARNING",
                      "-v", f"{inputs}:/data/in:ro", "-v", f"{out}:/data/out", "-v", f"{root}:/opt/ml",
                      DOCKER_IMAGE, "--input", "/data/in", "--output", "/data/out", "--layout", "both"], job_env())
    if not checks.check(result.returncode == 0, "job in Dockerfile.minimal exits 0", tail(result)):
        return
    for rel, scene in scenes.items():
        check_scene(checks, out, rel, scene)
    check_job_report(checks, out, scenes=len(scenes), failed=0, exit_code=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="device for the local run (default: cpu)")
    parser.add_argument("--no-docker", action="store_true", help="skip the Docker part")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder and print its path")
    args = parser.parse_args(argv)

    checks = Checks()
    work = Path(tempfile.mkdtemp(prefix="sogs-local-test-"))
    try:
        run_local(checks, work, args.device)
        if args.no_docker:
            print("SKIP  docker: --no-docker")
        else:
            run_docker(checks, work)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"{'FAILED' if checks.failed else 'OK'}: {checks.failed} check(s) failed")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
