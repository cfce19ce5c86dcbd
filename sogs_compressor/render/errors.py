"""Errors a user can cause while rendering or comparing scenes (each one clear line, exit code 3)."""

from __future__ import annotations

from sogs_compressor.errors import InputError


class RenderError(InputError):
    """A scene or camera that cannot produce a picture."""


class NothingVisibleError(RenderError):
    """Every splat is behind the camera, outside the picture or fully transparent."""


class CamerasFileError(RenderError):
    """A ``cameras.json`` (3DGS training cameras) that is missing, unreadable or malformed."""


class CameraSpecError(RenderError):
    """A ``--camera``/``--up``/``--size``/``--view`` value that cannot be used."""
