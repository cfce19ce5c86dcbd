"""Level of detail: fewer splats that look like more (decimation; later the streamed-SOG pyramid)."""
