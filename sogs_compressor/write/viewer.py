"""``NAME.html`` beside every SOG: a one-file page that shows the scene in the PlayCanvas engine with the numbers
of its report, so that users can look rather than read.

The engine is a dependency loaded by URL (a pinned jsDelivr copy of the ``playcanvas`` npm package, checked with
Subresource Integrity; ``--viewer-engine`` points the page at another copy). The page loads the SOG beside it by a
relative URL, so the folder can be moved or uploaded as it is; browsers do not fetch from ``file://`` pages, so the
folder must be served over http (``python -m http.server``). Every value written into the page is escaped: scene
names come from user file names and S3 keys.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from urllib.parse import quote

import numpy as np

from sogs_compressor import __version__
from sogs_compressor.result import CompressionResult, OutputFile
from sogs_compressor.units import human_bytes
from sogs_compressor.write.sog import _atomic_write

ENGINE_VERSION = "2.23.3"
"""The pinned PlayCanvas engine. SOG v2 (``.sog`` bundles and v2 ``meta.json``) loads from engine 2.11.0 on."""
ENGINE_URL = f"https://cdn.jsdelivr.net/npm/playcanvas@{ENGINE_VERSION}/build/playcanvas.min.js"
ENGINE_INTEGRITY = "sha384-nTbINhI/eBhh57g5Vb+ioTPLqibNK2Rvd7K+0Q+ZH54VXtdMzfUa5FJktuOlyjTo"
"""SRI digest of ``build/playcanvas.min.js`` in the npm package ``playcanvas@ENGINE_VERSION`` (jsDelivr serves
npm files unchanged; the browser test checks this against the package npm installs)."""

BACKGROUND = (0.09, 0.1, 0.12)
"""The canvas's clear colour (0-1 RGB): a dark grey, against which both black and white parts of a scene show."""
FOV_Y_DEG = 50.0
"""The vertical field of view, the quality check's (``render.camera.orbit_cameras``)."""
START_ELEVATION_DEG = 20.0
"""The first view looks from the quality check's first orbit camera (azimuth 0, 20 degrees up)."""


def viewer_path(output_dir: Path, name: str) -> Path:
    return Path(output_dir) / f"{name}.html"


FRAMING_SAMPLE = 250_000
"""At most this many positions (an even stride) set the framing. Below it the first view is exactly the quality
check's first orbit view; above it the subsample's percentiles differ slightly. On a 4M-splat scene (a loaded
2-core VM) the framing took 0.27-0.46 s this way, 1.5-2.8 s with the quality check's 1M-point measure."""


def framing(positions: np.ndarray) -> dict:
    """Where the page's orbit camera looks: the quality check's orbit frame (robust bounds, world up -y) of the
    (sanitized: finite) ``positions``, so the first view is the preview's first orbit view."""
    from sogs_compressor.render.camera import orbit_frame

    frame = orbit_frame(positions[:: len(positions) // FRAMING_SAMPLE + 1])

    def vector(v: np.ndarray) -> list[float]:
        return [round(float(x), 6) for x in v]

    return {"centre": vector(frame.centre), "radius": round(float(frame.radius), 6), "up": vector(frame.up),
            "axisA": vector(frame.axis_a), "axisB": vector(frame.axis_b), "azimuth": 0.0,
            "elevation": START_ELEVATION_DEG, "fovY": FOV_Y_DEG, "margin": 1.05}


def scene_source(result: CompressionResult, page_dir: Path | None = None) -> str | None:
    """The page-relative URL of the SOG the page loads: the bundle if there is one, else the folder's meta.json
    (the engine loads both by URL; with several inputs a scene's folder layout sits in a subfolder); a Streamed
    SOG's lod-meta.json first (the engine streams its chunks)."""
    for role in ("lod-meta", "bundle", "meta"):
        for output in result.output_files:
            if output.role == role:
                path = Path(output.path)
                relative = Path(os.path.relpath(path, page_dir)) if page_dir is not None else Path(path.name)
                return "./" + "/".join(quote(part) for part in relative.parts)
    return None


def report_rows(result: CompressionResult) -> list[tuple[str, str]]:
    """(label, value) pairs of the report's key numbers, as plain text (escaped when written)."""
    counts = result.counts
    dropped = sum((counts.get("dropped") or {}).values())
    rows = [
        ("input", f"{Path(result.input_path).name} ({result.input_format})"),
        ("input size", f"{human_bytes(result.input_bytes)} ({result.input_bytes:,} bytes)"),
        ("output size", f"{human_bytes(result.output_bytes)} ({result.output_bytes:,} bytes)"),
        ("ratio", f"{result.ratio:.2f}x"),
        ("splats", f"{counts.get('output', 0):,}" + (f" ({dropped:,} of {counts.get('input', 0):,} dropped)"
                                                       if dropped else "")),
        ("SH bands", f"{result.sh_degree_out}" + (f" (input {result.sh_degree_in})"
                                                  if result.sh_degree_in != result.sh_degree_out else "")),
    ]
    summary = (result.quality or {}).get("summary") or {}
    psnr, content, ssim = (summary.get(key) or {} for key in ("psnr", "psnr_content", "ssim"))
    if psnr.get("mean") is not None:
        worst = f", {psnr['worst']:.2f} dB worst view" if psnr.get("worst") is not None else ""
        rows.append(("PSNR", f"{psnr['mean']:.2f} dB mean{worst}"))
    if content.get("mean") is not None:
        rows.append(("content PSNR", f"{content['mean']:.2f} dB"))
    if ssim.get("mean") is not None:
        rows.append(("SSIM", f"{ssim['mean']:.4f}"))
    if (result.quality or {}).get("error"):
        rows.append(("quality", f"not measured: {result.quality['error']}"))
    return rows


def script_json(value: dict) -> str:
    """JSON that cannot end the ``<script>`` element it sits in (``<``, ``>``, ``&`` as ``\\u`` escapes)."""
    text = json.dumps(value, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def viewer_html(name: str, result: CompressionResult, view: dict, engine_url: str | None = None,
                page_dir: Path | None = None) -> str:
    """The page for ``result``'s SOG. ``view``: ``framing``'s dict; ``engine_url``: None = the pinned engine;
    ``page_dir``: the folder the page is written to (the SOG's URL is relative to it)."""
    src = scene_source(result, page_dir)
    if src is None:
        raise ValueError("no SOG among the result's output files")
    engine = engine_url or ENGINE_URL
    integrity = f' integrity="{ENGINE_INTEGRITY}" crossorigin="anonymous"' if engine_url is None else ""
    preview = (result.quality or {}).get("preview")
    e = html.escape
    rows = "\n".join(f"<tr><th>{e(label)}</th><td>{e(value)}</td></tr>" for label, value in report_rows(result))
    figure = (f'<figure><a href="./{e(quote(preview))}"><img src="./{e(quote(preview))}" '
              f'alt="preview: original | compressed | difference x8"></a>'
              f"<figcaption>original | compressed | difference &times;8</figcaption></figure>") if preview else ""
    config = script_json({"name": name, "src": src, "engine": engine, "background": list(BACKGROUND), **view})
    return PAGE.format(title=e(name), rows=rows, figure=figure, config=config, engine=e(engine),
                       integrity=integrity, script=SCRIPT, version=e(__version__))


def write_viewer(output_dir: Path, name: str, result: CompressionResult, positions: np.ndarray,
                 engine_url: str | None = None) -> OutputFile:
    """Write ``NAME.html`` beside the SOG (temp name, then renamed); its output entry (role ``viewer``)."""
    path = viewer_path(output_dir, name)
    page = viewer_html(name, result, framing(positions), engine_url, output_dir).encode("utf-8")
    _atomic_write(path, lambda tmp: tmp.write_bytes(page))
    return OutputFile(path=str(path), bytes=path.stat().st_size, role="viewer")


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{title} - sogs-compressor</title>
<style>
html, body {{ margin: 0; height: 100%; background: #171a1f; color: #e6e6e6; font: 14px/1.4 system-ui, sans-serif; }}
body {{ display: flex; }}
main {{ flex: 1; position: relative; min-width: 0; }}
canvas {{ display: block; width: 100%; height: 100%; touch-action: none; cursor: grab; }}
#status {{ position: absolute; left: 1em; top: 1em; margin: 0; max-width: 80%; }}
aside {{ width: 20em; flex: none; overflow: auto; padding: 0 1em; background: #20242b; }}
h1 {{ font-size: 1.1em; word-break: break-all; }}
th {{ text-align: left; font-weight: normal; white-space: nowrap; color: #9aa3ad; padding-right: 1em; vertical-align: top; }}
figure {{ margin: 1em 0; }} img {{ width: 100%; }} figcaption, .hint {{ color: #9aa3ad; font-size: 0.9em; }}
@media (max-width: 32em) {{ body {{ flex-direction: column; }} main {{ flex: none; height: 65vh; }}
  aside {{ width: auto; }} }}
</style>
</head>
<body>
<main><canvas id="scene"></canvas><p id="status">loading&hellip;</p></main>
<aside>
<h1>{title}</h1>
<table>
{rows}
</table>
{figure}
<p class="hint">Drag to orbit, wheel to zoom, double-click to reset. Written by sogs-compressor {version}.</p>
</aside>
<script id="sogs-viewer-config" type="application/json">{config}</script>
<script src="{engine}"{integrity}></script>
<script>
{script}
</script>
</body>
</html>
"""

SCRIPT = """(() => {
  'use strict';
  // For tests and scripts: frames counts the frames drawn after the scene loaded and its first depth sort came
  // back (the first one that shows it).
  const state = window.sogsViewer = { frames: 0, loaded: false, sorted: 0, error: null };
  const status = document.getElementById('status');
  const config = JSON.parse(document.getElementById('sogs-viewer-config').textContent);
  const fail = (message) => {
    state.error = String(message);
    status.textContent = state.error;
    status.hidden = false;
    console.error('sogs viewer: ' + state.error);
  };
  if (location.protocol === 'file:') {
    fail('Browsers do not load files into a page opened from disk: serve this folder over http, e.g. ' +
         'python -m http.server 8000 in it, and open http://localhost:8000/' + location.pathname.split('/').pop());
    return;
  }
  if (typeof pc === 'undefined') {
    fail('The PlayCanvas engine did not load from ' + config.engine +
         '. This page must be served over http (python -m http.server), with the engine reachable.');
    return;
  }
  const canvas = document.getElementById('scene');
  let app;
  try {
    app = new pc.Application(canvas, { graphicsDeviceOptions: { antialias: false } });
  } catch (error) {
    fail('This browser could not start WebGL 2, which the PlayCanvas engine needs: ' + error);
    return;
  }
  app.setCanvasFillMode(pc.FILLMODE_NONE);
  app.setCanvasResolution(pc.RESOLUTION_AUTO);
  const resize = () => { app.resizeCanvas(canvas.clientWidth, canvas.clientHeight); place(); };

  // Orbit camera: azimuth/elevation around the scene's centre in its frame (axisA, axisB, up), distance
  // framed so the scene's robust bounds fit the narrower field of view, times the zoom.
  const vec = (a) => new pc.Vec3(a[0], a[1], a[2]);
  const centre = vec(config.centre), up = vec(config.up), axisA = vec(config.axisA), axisB = vec(config.axisB);
  const orbit = { azimuth: config.azimuth, elevation: config.elevation, zoom: 1 };
  const camera = new pc.Entity('camera');
  camera.addComponent('camera', { clearColor: new pc.Color(...config.background), fov: config.fovY });
  app.root.addChild(camera);
  const place = () => {
    const halfY = config.fovY * Math.PI / 360;
    const halfX = Math.atan(Math.tan(halfY) * canvas.clientWidth / Math.max(1, canvas.clientHeight));
    const distance = orbit.zoom * config.margin * config.radius / Math.sin(Math.min(halfX, halfY));
    const az = orbit.azimuth * Math.PI / 180, el = orbit.elevation * Math.PI / 180;
    const eye = new pc.Vec3().copy(axisA).mulScalar(Math.cos(az) * Math.cos(el))
      .add(new pc.Vec3().copy(axisB).mulScalar(Math.sin(az) * Math.cos(el)))
      .add(new pc.Vec3().copy(up).mulScalar(Math.sin(el)))
      .mulScalar(distance).add(centre);
    camera.setPosition(eye);
    camera.lookAt(centre, up);
    camera.camera.nearClip = distance / 1000;
    camera.camera.farClip = distance * 100 + config.radius * 10;
  };
  const clamp = (x, low, high) => Math.min(high, Math.max(low, x));
  let drag = null;
  canvas.addEventListener('pointerdown', (event) => {
    drag = { x: event.clientX, y: event.clientY };
    canvas.setPointerCapture(event.pointerId);
  });
  canvas.addEventListener('pointermove', (event) => {
    if (!drag) return;
    orbit.azimuth -= (event.clientX - drag.x) * 0.3;
    orbit.elevation = clamp(orbit.elevation + (event.clientY - drag.y) * 0.3, -89, 89);
    drag = { x: event.clientX, y: event.clientY };
    place();
  });
  const release = () => { drag = null; };
  canvas.addEventListener('pointerup', release);
  canvas.addEventListener('pointercancel', release);
  canvas.addEventListener('wheel', (event) => {
    event.preventDefault();
    orbit.zoom = clamp(orbit.zoom * Math.exp(event.deltaY * 0.001), 0.02, 50);
    place();
  }, { passive: false });
  canvas.addEventListener('dblclick', () => {
    Object.assign(orbit, { azimuth: config.azimuth, elevation: config.elevation, zoom: 1 });
    place();
  });
  window.addEventListener('resize', resize);
  resize();

  const asset = new pc.Asset(config.name, 'gsplat', { url: config.src });
  asset.on('progress', (received, total) => {
    if (total > 0) status.textContent = 'loading ' + Math.round(100 * received / total) + '%';
  });
  asset.on('load', () => {
    const scene = new pc.Entity('scene');
    scene.addComponent('gsplat', { asset });
    app.root.addChild(scene);
    state.loaded = true;
    status.hidden = true;
  });
  asset.on('error', (error) => fail('Could not load ' + config.src + ': ' + error));
  app.scene.on('gsplat:sorted', () => { state.sorted += 1; });
  app.on('frameend', () => { if (state.loaded && state.sorted > 0) state.frames += 1; });
  app.assets.add(asset);
  app.assets.load(asset);
  app.start();
})();"""
