"""Encode a splat set into SOG v2 textures and back (formats.md section 2), as pure array functions."""
