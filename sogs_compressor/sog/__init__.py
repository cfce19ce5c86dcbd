"""The SOG v2 codec (PlayCanvas's format, formats.md section 2), one module per idea.

Each attribute's module holds its encoder, its device twin (where one exists) and its decoder side by side:
``means`` (positions), ``quats`` (rotations), ``scales``, ``colour`` (sh0 colour and opacity), ``sh_palette``
(the SH palette's centroids and labels), with ``codebook`` for the codebook-indexed values they share. Around
them: ``layout`` (texture geometry), ``meta`` (meta.json, built and strictly parsed), ``webp`` (lossless WebP
I/O), ``source`` (a bundle's or folder's files), ``encode`` (a splat set to textures and meta) and ``decode``
(a SOG's files back to a splat set). The readers and writers in ``read/`` and ``write/`` stay thin around these;
nothing here imports them.

The device twins import torch when called, so reading a SOG (``sogs-compressor info``, ``decompress``) stays
free of torch's start-up.
"""
