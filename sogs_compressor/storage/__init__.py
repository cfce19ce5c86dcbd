"""Where the job's files live, behind one interface (``base.Storage``): the local disk and S3.

The job lists, reads, downloads, uploads and deletes through it, so gathering inputs, cache look-ups and
promotion are written once; ``location`` is the one place that picks a back end for a path or ``s3://`` URI.
"""
