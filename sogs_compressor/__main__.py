from sogs_compressor.cli import run

run()
